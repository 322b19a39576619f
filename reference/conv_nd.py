"""Plain-loop reference for convolution over 1, 2 or 3 spatial axes, forward and backward (PyTorch's conv1d/2d/3d).

``conv_forward_nd`` / ``conv_backward_nd`` are rank-generic: the rank follows from data_format ('NWC' / 'NCW',
'NHWC' / 'NCHW', 'NDHWC' / 'NCDHW'). They work channels-last: x (N, *spatial, C_in), w (*k, C_in // groups,
C_out); a channels-first call (PyTorch's layouts x (N, C_in, *spatial), w (C_out, C_in // groups, *k)) is
transposed on the way in and its results back on the way out. Every function walks the output one window at
a time (the output positions in row-major order, then the output channel). The public rank-specific names are
conv1d_* and conv3d_*; conv2d keeps its own loops (``conv_loops``), and the tests check that the two agree.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float, conv_out_size
from ._nd import (
    ConvPaddingNd,
    IntOrTuple,
    SidePads,
    check_cache_rank,
    check_dout_nd,
    check_format,
    check_rank,
    conv_pads_nd,
    crop_spatial,
    from_last,
    pad_spatial,
    per_axis,
    rank_of,
    to_last,
    weight_from_last,
    weight_to_last,
    window_slices,
)
from .conv_loops import _check_groups

__all__ = [
    "ConvNdCache",
    "conv1d_backward",
    "conv1d_forward",
    "conv3d_backward",
    "conv3d_forward",
    "conv_backward_nd",
    "conv_forward_nd",
]


class ConvNdCache(NamedTuple):
    """What conv_backward_nd needs: the float inputs (channels-last) and the normalized hyperparameters."""

    x: np.ndarray  # (N, *spatial, C_in) in the compute dtype; a channels-first x is stored channels-last
    w: np.ndarray  # (*k, C_in // groups, C_out) in the compute dtype; a channels-first w is stored in this layout
    b: np.ndarray | None  # as given (C_out entries), in the compute dtype, or None
    stride: tuple[int, ...]  # one per spatial axis
    padding: SidePads  # one (before, after) pair per spatial axis
    dilation: tuple[int, ...]  # one per spatial axis
    groups: int
    data_format: str  # the layout of the forward call's x, w and out (and of dx, dw); gives the rank


def _out_sizes(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pads: SidePads,
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """Per spatial axis, the number of windows: ``(L + before + after - d*(k - 1) - 1) // s + 1``."""
    geometry = zip(spatial, kernel, stride, pads, dilation, strict=True)
    return tuple(conv_out_size(size, k, s, p, d) for size, k, s, p, d in geometry)


def conv_forward_nd(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    data_format: str,
    stride: IntOrTuple = 1,
    padding: ConvPaddingNd = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvNdCache]:
    """Convolution (cross-correlation) with zero padding over ``ndim`` = 1, 2 or 3 spatial axes (from data_format).

    Parameters
    ----------
    x : (N, *spatial, C_in) channels-last, (N, C_in, *spatial) channels-first
    w : (*k, C_in // groups, C_out) channels-last, (C_out, C_in // groups, *k) channels-first
    b : (C_out,) or None
    data_format : 'NWC', 'NCW', 'NHWC', 'NCHW', 'NDHWC' or 'NCDHW'
    stride, dilation : int or ndim ints, >= 1
    padding : int, ndim ints, ndim (before, after) pairs, 'valid' or 'same' (stride 1 only; total pad
        ``d*(k - 1)`` per axis, the odd one after)
    groups : divides C_in and C_out; output channel co reads the input channels of group
        ``g = co // (C_out // groups)``: ``g*(C_in // groups) ... (g + 1)*(C_in // groups) - 1``

    Returns
    -------
    out : (N, *out, C_out) (channels-first: (N, C_out, *out)), per axis ``o = (L + before + after - d*(k - 1) - 1)
        // s + 1``; ``out[n, *o, co] = sum_{i, c} xpad[n, *(o*s + i*d), g*Cg + c] * w[*i, c, co] + b[co]``
    cache : ConvNdCache
    """
    ndim = rank_of(data_format)
    x = as_float(x)
    w = as_float(w)
    check_rank(x, ndim, data_format, "x")
    check_rank(w, ndim, data_format, "w")
    dtype = np.result_type(x, w)
    x = to_last(x.astype(dtype, copy=False), data_format)
    w = weight_to_last(w.astype(dtype, copy=False), data_format)
    stride_ = per_axis(stride, ndim, "stride", 1)
    dilation_ = per_axis(dilation, ndim, "dilation", 1)
    n_batch, *spatial, c_in = x.shape
    *kernel, w_c_in, c_out = w.shape
    kernel = tuple(kernel)
    c_group = _check_groups(groups, c_in, c_out, w_c_in)  # input channels per group
    out_group = c_out // groups  # output channels per group
    if b is not None:
        b = as_float(b).astype(dtype, copy=False)
        if b.size != c_out:
            raise ValueError(f"b must have C_out = {c_out} entries, got shape {b.shape}")
    pads = conv_pads_nd(padding, kernel, dilation_, stride_)
    out_sizes = _out_sizes(tuple(spatial), kernel, stride_, pads, dilation_)
    bias = np.zeros(c_out, dtype=dtype) if b is None else b.reshape(c_out)

    x_pad = pad_spatial(x, pads, 0.0)
    out = np.zeros((n_batch, *out_sizes, c_out), dtype=dtype)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):  # the output positions, row-major
            window = window_slices(position, stride_, kernel, dilation_)  # per axis: k positions, d apart
            for co in range(c_out):
                g = co // out_group  # the group of output channel co
                chans = slice(g * c_group, (g + 1) * c_group)  # the input channels of group g
                patch = x_pad[(n, *window, chans)]  # (*k, C_in // groups)
                out[(n, *position, co)] = np.sum(patch * w[..., co]) + bias[co]
    cache = ConvNdCache(x, w, b, stride_, pads, dilation_, int(groups), data_format)
    return from_last(out, data_format), cache


def conv_backward_nd(dout: ArrayLike, cache: ConvNdCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv_forward_nd: the forward's window loop, each window adding ``dout`` times its factor.

    Parameters
    ----------
    dout : the forward output's shape (in the call's layout), else a ValueError naming dout
    cache : ConvNdCache from conv_forward_nd

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    x, w, b, stride, pads, dilation, groups, data_format = cache
    dtype = x.dtype
    n_batch, *spatial, _ = x.shape
    *kernel, c_group, c_out = w.shape
    kernel = tuple(kernel)
    out_sizes = _out_sizes(tuple(spatial), kernel, stride, pads, dilation)
    dout = check_dout_nd(dout, (n_batch, *out_sizes, c_out), dtype, data_format)
    out_group = c_out // groups

    x_pad = pad_spatial(x, pads, 0.0)
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.zeros(c_out, dtype=dtype)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):
            window = window_slices(position, stride, kernel, dilation)
            for co in range(c_out):
                g = co // out_group
                chans = slice(g * c_group, (g + 1) * c_group)
                grad = dout[(n, *position, co)]
                dx_pad[(n, *window, chans)] += w[..., co] * grad
                dw[..., co] += x_pad[(n, *window, chans)] * grad
                db[co] += grad
    dx = crop_spatial(dx_pad, pads, tuple(spatial))  # drop the padding
    if b is not None:
        db = db.reshape(b.shape)
    return from_last(dx.copy(), data_format), weight_from_last(dw, data_format), db


# ------------------------------------------------------------------------------- the rank-specific names


def conv1d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: ConvPaddingNd = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    data_format: str = "NWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvNdCache]:
    """1-D convolution (cross-correlation) with zero padding, PyTorch's conv1d semantics.

    Parameters
    ----------
    x : (N, W, C_in) for NWC, (N, C_in, W) for NCW
    w : (kw, C_in // groups, C_out) for NWC, (C_out, C_in // groups, kw) for NCW
    b : (C_out,) or None
    stride, dilation : int or (w,), >= 1
    padding : int, (pw,), ((left, right),), 'valid' or 'same' (stride 1 only; the odd pad on the right)
    groups : divides C_in and C_out (see ``conv_forward_nd``)
    data_format : 'NWC' or 'NCW'
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    out : (N, Wo, C_out) (NCW: (N, C_out, Wo)), ``Wo = (W + left + right - dw*(kw - 1) - 1) // sw + 1``
    cache : ConvNdCache
    """
    check_format(data_format, 1)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return conv_forward_nd(x, w, b, data_format=data_format, **kwargs)


def conv1d_backward(
    dout: ArrayLike, cache: ConvNdCache, *, workspace: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv1d_forward.

    Parameters
    ----------
    dout : (N, Wo, C_out) (NCW: (N, C_out, Wo)): the forward output's shape, else a ValueError naming dout
    cache : ConvNdCache from conv1d_forward
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    check_cache_rank(cache.data_format, 1, "conv1d_backward")
    return conv_backward_nd(dout, cache)


def conv3d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: ConvPaddingNd = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    data_format: str = "NDHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvNdCache]:
    """3-D convolution (cross-correlation) with zero padding, PyTorch's conv3d semantics.

    Parameters
    ----------
    x : (N, D, H, W, C_in) for NDHWC, (N, C_in, D, H, W) for NCDHW
    w : (kd, kh, kw, C_in // groups, C_out) for NDHWC, (C_out, C_in // groups, kd, kh, kw) for NCDHW
    b : (C_out,) or None
    stride, dilation : int or (d, h, w), >= 1
    padding : int, (pd, ph, pw), ((front, back), (top, bottom), (left, right)), 'valid' or 'same' (stride 1
        only; the odd pad at the back / bottom / right)
    groups : divides C_in and C_out (see ``conv_forward_nd``)
    data_format : 'NDHWC' or 'NCDHW'
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    out : (N, Do, Ho, Wo, C_out) (NCDHW: (N, C_out, Do, Ho, Wo)), per axis ``(L + before + after - d*(k - 1) - 1)
        // s + 1``
    cache : ConvNdCache
    """
    check_format(data_format, 3)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return conv_forward_nd(x, w, b, data_format=data_format, **kwargs)


def conv3d_backward(
    dout: ArrayLike, cache: ConvNdCache, *, workspace: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv3d_forward.

    Parameters
    ----------
    dout : (N, Do, Ho, Wo, C_out) (NCDHW: (N, C_out, Do, Ho, Wo)): the forward output's shape, else a ValueError
    cache : ConvNdCache from conv3d_forward
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    check_cache_rank(cache.data_format, 3, "conv3d_backward")
    return conv_backward_nd(dout, cache)
