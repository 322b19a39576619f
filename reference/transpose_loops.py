"""Plain-loop reference for conv_transpose2d, forward and backward (PyTorch's conv_transpose2d semantics).

The transposed convolution is the gradient of conv2d with respect to its input, used as a layer. The loops
work in NHWC: x (N, H, W, C_in), w (kh, kw, C_out // groups, C_in) -- the NHWC conv2d weight of the
convolution being transposed (that conv maps C_out channels to C_in). An NCHW call uses PyTorch's layouts,
x (N, C_in, H, W) and w (C_in, C_out // groups, kh, kw), transposed to NHWC on the way in and back on the way
out. The forward is the direct scatter: every input pixel times the kernel, added into the output.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import (
    IntOrPair,
    as_float,
    check_data_format,
    check_dout,
    checked_pair,
    from_nhwc,
    to_nhwc,
    weight_from_nhwc,
    weight_to_nhwc,
)

__all__ = ["ConvTransposeCache", "conv_transpose2d_backward", "conv_transpose2d_forward"]


class ConvTransposeCache(NamedTuple):
    """What conv_transpose2d_backward needs: the float inputs (in NHWC) and the normalized hyperparameters."""

    x: np.ndarray  # (N, H, W, C_in) in the compute dtype; an NCHW x is stored transposed to NHWC
    w: np.ndarray  # (kh, kw, C_out // groups, C_in) in the compute dtype; an NCHW w is stored in this layout
    b: np.ndarray | None  # as given ((C_out,)), in the compute dtype, or None
    stride: tuple[int, int]  # (sh, sw)
    padding: tuple[int, int]  # (ph, pw): cropped from both sides of the full output
    output_padding: tuple[int, int]  # (oph, opw): extra rows / columns at the bottom / right
    dilation: tuple[int, int]  # (dh, dw)
    groups: int
    data_format: str  # the layout of the forward call's x, w and out (and of dx, dw)
    out_hw: tuple[int, int]  # (Ho, Wo)


def _full_size(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Size along one axis of the uncropped scatter target: the last window ends at (size - 1)*s + d*(k - 1)."""
    return (size - 1) * stride + dilation * (kernel - 1) + 1


def conv_transpose2d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    data_format: str = "NHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvTransposeCache]:
    """2-D transposed convolution, PyTorch's conv_transpose2d.

    Parameters
    ----------
    x : (N, H, W, C_in) for NHWC, (N, C_in, H, W) for NCHW
    w : (kh, kw, C_out // groups, C_in) for NHWC, (C_in, C_out // groups, kh, kw) for NCHW
    b : (C_out,) or None
    stride, dilation : int or (h, w) pair, >= 1
    padding : int or (ph, pw) pair, >= 0: rows / columns cropped from each side of the full output
    output_padding : int or pair, >= 0 and smaller than stride or dilation (per axis): rows / columns added
        at the bottom / right
    groups : divides C_in and C_out; input channel ci (group ``g = ci // (C_in // groups)``) feeds output
        channels ``g*(C_out // groups) + c`` through ``w[:, :, c, ci]``
    data_format : 'NHWC' or 'NCHW'
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    out : (N, Ho, Wo, C_out) (NCHW: (N, C_out, Ho, Wo)), ``Ho = (H - 1)*sh - 2*ph + dh*(kh - 1) + oph + 1``;
        ``full[n, h*sh + i*dh, w*sw + j*dw, g*Cg + c] += x[n, h, w, ci] * w[i, j, c, ci]``, then
        ``out = full[:, ph : ph + Ho, pw : pw + Wo] + b``
    cache : ConvTransposeCache
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
    ph, pw = checked_pair(padding, "padding", 0)
    oph, opw = checked_pair(output_padding, "output_padding", 0)
    if not (oph < sh or oph < dh) or not (opw < sw or opw < dw):
        raise ValueError(f"output_padding {(oph, opw)} must be smaller than stride {(sh, sw)} or dilation {(dh, dw)}")
    n_batch, h_in, w_in, c_in = x.shape
    kh, kw, out_group, w_c_in = w.shape  # out_group: output channels per group
    if int(groups) != groups or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in}")
    if w_c_in != c_in:
        raise ValueError(f"w has {w_c_in} input channels, expected C_in = {c_in}")
    in_group = c_in // groups  # input channels per group
    c_out = out_group * groups
    full_h = _full_size(h_in, kh, sh, dh) + oph
    full_w = _full_size(w_in, kw, sw, dw) + opw
    h_out, w_out = full_h - 2 * ph, full_w - 2 * pw
    if h_out < 1 or w_out < 1:
        raise ValueError(f"output size {(h_out, w_out)} is too small: padding {(ph, pw)} crops everything")
    bias = np.zeros(c_out, dtype=dtype) if b is None else b.reshape(c_out)

    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # effective (dilated) kernel size
    full = np.zeros((n_batch, full_h, full_w, c_out), dtype=dtype)
    for n in range(n_batch):
        for h in range(h_in):
            for w_ in range(w_in):
                top, left = h * sh, w_ * sw
                for ci in range(c_in):
                    g = ci // in_group  # the group of input channel ci
                    rows = slice(top, top + ext_h, dh)  # kh rows, dh apart
                    cols = slice(left, left + ext_w, dw)  # kw columns, dw apart
                    chans = slice(g * out_group, (g + 1) * out_group)  # the output channels of group g
                    # scatter x[n, h, w_, ci] times the (kh, kw, C_out // groups) kernel
                    full[n, rows, cols, chans] += x[n, h, w_, ci] * w[:, :, :, ci]
    out = full[:, ph : ph + h_out, pw : pw + w_out, :] + bias
    cache = ConvTransposeCache(
        x, w, b, (sh, sw), (ph, pw), (oph, opw), (dh, dw), int(groups), data_format, (h_out, w_out)
    )
    return from_nhwc(np.ascontiguousarray(out), data_format), cache


def conv_transpose2d_backward(
    dout: ArrayLike, cache: ConvTransposeCache, *, workspace: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv_transpose2d_forward.

    dx is a gather (a conv2d of the zero-extended dout with the same kernel): for every input pixel and
    channel, the sum over the (kh, kw, C_out // groups) window of dout that the pixel was scattered into,
    times the kernel. dw sums window * x; db sums dout over n, ho, wo.

    Parameters
    ----------
    dout : (N, Ho, Wo, C_out) (NCHW: (N, C_out, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : ConvTransposeCache from conv_transpose2d_forward
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    x, w, b, (sh, sw), (ph, pw), (oph, opw), (dh, dw), groups, data_format, (h_out, w_out) = cache
    dtype = x.dtype
    n_batch, h_in, w_in, c_in = x.shape
    kh, kw, out_group, _ = w.shape
    in_group = c_in // groups
    c_out = out_group * groups
    dout = check_dout(dout, (n_batch, h_out, w_out, c_out), dtype, data_format)
    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1

    # dout placed back into the uncropped output: zeros where the forward cropped the padding
    full_h = _full_size(h_in, kh, sh, dh) + oph
    full_w = _full_size(w_in, kw, sw, dw) + opw
    dfull = np.zeros((n_batch, full_h, full_w, c_out), dtype=dtype)
    dfull[:, ph : ph + h_out, pw : pw + w_out, :] = dout

    dx = np.zeros_like(x)
    dw_ = np.zeros_like(w)
    for n in range(n_batch):
        for h in range(h_in):
            for w_ in range(w_in):
                top, left = h * sh, w_ * sw
                for ci in range(c_in):
                    g = ci // in_group
                    rows = slice(top, top + ext_h, dh)
                    cols = slice(left, left + ext_w, dw)
                    chans = slice(g * out_group, (g + 1) * out_group)
                    # the (kh, kw, C_out // groups) window the forward scattered x[n, h, w_, ci] into
                    window = dfull[n, rows, cols, chans]
                    dx[n, h, w_, ci] = np.sum(window * w[:, :, :, ci])
                    dw_[:, :, :, ci] += window * x[n, h, w_, ci]
    db = np.sum(dout, axis=(0, 1, 2))
    if b is not None:
        db = db.reshape(b.shape)
    return from_nhwc(dx, data_format), weight_from_nhwc(dw_, data_format), db
