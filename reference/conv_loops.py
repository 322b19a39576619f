"""Plain-loop reference for conv2d, forward and backward: stride, padding (incl. 'same'), dilation, groups, layouts.

The loops work in NHWC: x (N, H, W, C_in), w (kh, kw, C_in // groups, C_out). An NCHW call (PyTorch layouts:
x (N, C_in, H, W), w (C_out, C_in // groups, kh, kw)) is transposed to NHWC on the way in, and its results
back on the way out. Every function walks the output one window at a time (loops over n, ho, wo and the
output channel), so each line can be checked against the formula in the spec. Clarity over speed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import (
    ConvPadding,
    IntOrPair,
    Pads,
    as_float,
    as_pads,
    check_data_format,
    check_dout,
    checked_pair,
    conv_out_size,
    conv_pads,
    from_nhwc,
    pad_hw_sides,
    to_nhwc,
    weight_from_nhwc,
    weight_to_nhwc,
)

__all__ = ["ConvCache", "conv2d_backward", "conv2d_forward"]


class ConvCache(NamedTuple):
    """What conv2d_backward needs: the float inputs (in NHWC) and the normalized hyperparameters."""

    x: np.ndarray  # (N, H, W, C_in) in the compute dtype; an NCHW x is stored transposed to NHWC
    w: np.ndarray  # (kh, kw, C_in // groups, C_out) in the compute dtype; an NCHW w is stored in this layout
    b: np.ndarray | None  # as given ((C_out,) or (1, 1, 1, C_out)), in the compute dtype, or None
    stride: tuple[int, int]  # (sh, sw)
    padding: Pads | tuple[int, int]  # ((top, bottom), (left, right)); a symmetric (ph, pw) is accepted too
    dilation: tuple[int, int] = (1, 1)  # (dh, dw)
    groups: int = 1
    data_format: str = "NHWC"  # the layout of the forward call's x, w and out (and of dx, dw)


def _check_groups(groups: int, c_in: int, c_out: int, w_c_in: int) -> int:
    """Validate ``groups`` against the channel counts; return C_in // groups."""
    if int(groups) != groups or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in} and C_out={c_out}")
    if w_c_in != c_in // groups:
        raise ValueError(f"w has {w_c_in} input channels, expected C_in // groups = {c_in // groups}")
    return c_in // groups


def conv2d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrPair = 1,
    padding: ConvPadding = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    data_format: str = "NHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvCache]:
    """2-D convolution (cross-correlation) with zero padding, PyTorch's conv2d semantics.

    Parameters
    ----------
    x : (N, H, W, C_in) for NHWC, (N, C_in, H, W) for NCHW
    w : (kh, kw, C_in // groups, C_out) for NHWC, (C_out, C_in // groups, kh, kw) for NCHW
    b : (C_out,) or (1, 1, 1, C_out) or None
    stride, dilation : int or (h, w) pair, >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same' (stride 1 only; total pad
        ``d*(k - 1)`` per axis, the odd one on the bottom/right)
    groups : divides C_in and C_out; output channel co reads the input channels of group
        ``g = co // (C_out // groups)``: ``g*(C_in // groups) ... (g + 1)*(C_in // groups) - 1``
    data_format : 'NHWC' or 'NCHW'
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    out : (N, Ho, Wo, C_out) (NCHW: (N, C_out, Ho, Wo)), ``Ho = (H + top + bottom - dh*(kh - 1) - 1) // sh + 1``;
        ``out[n, ho, wo, co] = sum_{i, j, c} xpad[n, ho*sh + i*dh, wo*sw + j*dw, g*Cg + c] * w[i, j, c, co] + b[co]``
    cache : ConvCache
    """
    check_data_format(data_format)
    x = as_float(x)
    w = as_float(w)
    dtype = np.result_type(x, w)
    x = to_nhwc(x.astype(dtype, copy=False), data_format)
    w = weight_to_nhwc(w.astype(dtype, copy=False), data_format)
    if b is not None:
        b = as_float(b).astype(dtype, copy=False)
    sh, sw = checked_pair(stride, "stride", 1)
    dh, dw = checked_pair(dilation, "dilation", 1)
    n_batch, h_in, w_in, c_in = x.shape
    kh, kw, w_c_in, c_out = w.shape
    c_group = _check_groups(groups, c_in, c_out, w_c_in)  # input channels per group
    out_group = c_out // groups  # output channels per group
    pads = conv_pads(padding, (kh, kw), (dh, dw), (sh, sw))
    h_out = conv_out_size(h_in, kh, sh, pads[0], dh)
    w_out = conv_out_size(w_in, kw, sw, pads[1], dw)
    bias = np.zeros(c_out, dtype=dtype) if b is None else b.reshape(c_out)

    x_pad = pad_hw_sides(x, pads, 0.0)
    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # effective (dilated) kernel size
    out = np.zeros((n_batch, h_out, w_out, c_out), dtype=dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                for co in range(c_out):
                    g = co // out_group  # the group of output channel co
                    rows = slice(top, top + ext_h, dh)  # kh rows, dh apart
                    cols = slice(left, left + ext_w, dw)  # kw columns, dw apart
                    chans = slice(g * c_group, (g + 1) * c_group)  # the input channels of group g
                    window = x_pad[n, rows, cols, chans]  # (kh, kw, C_in // groups)
                    out[n, ho, wo, co] = np.sum(window * w[:, :, :, co]) + bias[co]
    cache = ConvCache(x, w, b, (sh, sw), pads, (dh, dw), int(groups), data_format)
    return from_nhwc(out, data_format), cache


def conv2d_backward(
    dout: ArrayLike, cache: ConvCache, *, workspace: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv2d_forward.

    Parameters
    ----------
    dout : (N, Ho, Wo, C_out) (NCHW: (N, C_out, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : ConvCache from conv2d_forward
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    x, w, b, (sh, sw), padding, (dh, dw), groups, data_format = cache
    pads = as_pads(padding)
    dtype = x.dtype
    kh, kw, c_group, c_out = w.shape
    h_out = conv_out_size(x.shape[1], kh, sh, pads[0], dh)
    w_out = conv_out_size(x.shape[2], kw, sw, pads[1], dw)
    dout = check_dout(dout, (x.shape[0], h_out, w_out, c_out), dtype, data_format)
    n_batch = x.shape[0]
    out_group = c_out // groups
    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1

    x_pad = pad_hw_sides(x, pads, 0.0)
    dx_pad = np.zeros_like(x_pad)
    dw_ = np.zeros_like(w)
    db = np.zeros(c_out, dtype=dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                for co in range(c_out):
                    g = co // out_group
                    rows = slice(top, top + ext_h, dh)
                    cols = slice(left, left + ext_w, dw)
                    chans = slice(g * c_group, (g + 1) * c_group)
                    grad = dout[n, ho, wo, co]
                    dx_pad[n, rows, cols, chans] += w[:, :, :, co] * grad
                    dw_[:, :, :, co] += x_pad[n, rows, cols, chans] * grad
                    db[co] += grad
    (top_pad, _), (left_pad, _) = pads
    dx = dx_pad[:, top_pad : top_pad + x.shape[1], left_pad : left_pad + x.shape[2], :]  # drop the padding
    if b is not None:
        db = db.reshape(b.shape)
    if data_format == "NHWC":
        return dx.copy(), dw_, db
    return from_nhwc(dx, data_format), weight_from_nhwc(dw_, data_format), db
