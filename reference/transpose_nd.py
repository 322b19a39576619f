"""Plain-loop reference for transposed convolution over 1, 2 or 3 spatial axes (PyTorch's conv_transpose1d/2d/3d).

The transposed convolution is the gradient of a convolution with respect to its input, used as a layer.
``conv_transpose_forward_nd`` / ``conv_transpose_backward_nd`` are rank-generic (the rank follows from
data_format) and work channels-last: x (N, *spatial, C_in), w (*k, C_out // groups, C_in) -- the channels-last
weight of the convolution being transposed. A channels-first call uses PyTorch's layouts, x (N, C_in, *spatial)
and w (C_in, C_out // groups, *k). The forward is the direct scatter: every input position times the kernel,
added into the output; the loops walk the input one position at a time. The public rank-specific names are
conv_transpose1d_* and conv_transpose3d_*; conv_transpose2d keeps its own loops (``transpose_loops``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float
from ._nd import (
    IntOrTuple,
    check_cache_rank,
    check_dout_nd,
    check_format,
    check_rank,
    crop_spatial,
    from_last,
    per_axis,
    rank_of,
    to_last,
    weight_from_last,
    weight_to_last,
    window_slices,
)

__all__ = [
    "ConvTransposeNdCache",
    "conv_transpose1d_backward",
    "conv_transpose1d_forward",
    "conv_transpose3d_backward",
    "conv_transpose3d_forward",
    "conv_transpose_backward_nd",
    "conv_transpose_forward_nd",
]


class ConvTransposeNdCache(NamedTuple):
    """What conv_transpose_backward_nd needs: the float inputs (channels-last) and the normalized hyperparameters."""

    x: np.ndarray  # (N, *spatial, C_in) in the compute dtype; a channels-first x is stored channels-last
    w: np.ndarray  # (*k, C_out // groups, C_in) in the compute dtype; a channels-first w is stored in this layout
    b: np.ndarray | None  # as given (C_out entries), in the compute dtype, or None
    stride: tuple[int, ...]  # one per spatial axis
    padding: tuple[int, ...]  # one per spatial axis: cropped from both sides of the full output
    output_padding: tuple[int, ...]  # one per spatial axis: extra positions at the end
    dilation: tuple[int, ...]  # one per spatial axis
    groups: int
    data_format: str  # the layout of the forward call's x, w and out (and of dx, dw); gives the rank
    out_size: tuple[int, ...]  # the output's spatial size


def _full_sizes(cache: ConvTransposeNdCache) -> tuple[int, ...]:
    """Per axis, the size of the uncropped scatter target: ``(L - 1)*s + d*(k - 1) + 1 + output_padding``."""
    spatial, kernel = cache.x.shape[1:-1], cache.w.shape[:-2]
    return tuple(
        (size - 1) * s + d * (k - 1) + 1 + op
        for size, k, s, d, op in zip(spatial, kernel, cache.stride, cache.dilation, cache.output_padding, strict=True)
    )


def conv_transpose_forward_nd(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    data_format: str,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvTransposeNdCache]:
    """Transposed convolution over ``ndim`` = 1, 2 or 3 spatial axes (from data_format).

    Parameters
    ----------
    x : (N, *spatial, C_in) channels-last, (N, C_in, *spatial) channels-first
    w : (*k, C_out // groups, C_in) channels-last, (C_in, C_out // groups, *k) channels-first
    b : (C_out,) or None
    data_format : 'NWC', 'NCW', 'NHWC', 'NCHW', 'NDHWC' or 'NCDHW'
    stride, dilation : int or ndim ints, >= 1
    padding : int or ndim ints, >= 0: positions cropped from each side of the full output
    output_padding : int or ndim ints, >= 0 and smaller than the stride or the dilation of its axis:
        positions added at the end
    groups : divides C_in and C_out; input channel ci (group ``g = ci // (C_in // groups)``) feeds output
        channels ``g*(C_out // groups) + c`` through ``w[..., c, ci]``

    Returns
    -------
    out : (N, *out, C_out) (channels-first: (N, C_out, *out)), per axis ``o = (L - 1)*s - 2*p + d*(k - 1) +
        output_padding + 1``; ``full[n, *(l*s + i*d), g*Cg + c] += x[n, *l, ci] * w[*i, c, ci]``, then
        ``out = full[:, p : p + o] + b`` (per axis)
    cache : ConvTransposeNdCache
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
    pads = per_axis(padding, ndim, "padding", 0)
    out_pads = per_axis(output_padding, ndim, "output_padding", 0)
    if any(op >= s and op >= d for op, s, d in zip(out_pads, stride_, dilation_, strict=True)):
        raise ValueError(f"output_padding {out_pads} must be smaller than stride {stride_} or dilation {dilation_}")
    n_batch, *spatial, c_in = x.shape
    *kernel, out_group, w_c_in = w.shape  # out_group: output channels per group
    kernel = tuple(kernel)
    if int(groups) != groups or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in}")
    if w_c_in != c_in:
        raise ValueError(f"w has {w_c_in} input channels, expected C_in = {c_in}")
    in_group = c_in // groups  # input channels per group
    c_out = out_group * groups
    if b is not None:
        b = as_float(b).astype(dtype, copy=False)
        if b.size != c_out:
            raise ValueError(f"b must have C_out = {c_out} entries, got shape {b.shape}")
    cache = ConvTransposeNdCache(x, w, b, stride_, pads, out_pads, dilation_, int(groups), data_format, ())
    full_sizes = _full_sizes(cache)
    out_sizes = tuple(full - 2 * p for full, p in zip(full_sizes, pads, strict=True))
    if min(out_sizes) < 1:
        raise ValueError(f"output size {out_sizes} is too small: padding {pads} crops everything")
    cache = cache._replace(out_size=out_sizes)
    bias = np.zeros(c_out, dtype=dtype) if b is None else b.reshape(c_out)

    full = np.zeros((n_batch, *full_sizes, c_out), dtype=dtype)
    for n in range(n_batch):
        for position in np.ndindex(*spatial):  # the input positions, row-major
            window = window_slices(position, stride_, kernel, dilation_)  # per axis: k positions, d apart
            for ci in range(c_in):
                g = ci // in_group  # the group of input channel ci
                chans = slice(g * out_group, (g + 1) * out_group)  # the output channels of group g
                # scatter x[n, *position, ci] times the (*k, C_out // groups) kernel
                full[(n, *window, chans)] += x[(n, *position, ci)] * w[..., ci]
    out = crop_spatial(full, tuple((p, p) for p in pads), out_sizes) + bias
    return from_last(np.ascontiguousarray(out), data_format), cache


def conv_transpose_backward_nd(
    dout: ArrayLike, cache: ConvTransposeNdCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv_transpose_forward_nd.

    dx is a gather: for every input position and channel, the sum over the (*k, C_out // groups) window of
    dout that the position was scattered into, times the kernel. dw sums window * x; db sums dout.

    Parameters
    ----------
    dout : the forward output's shape (in the call's layout), else a ValueError naming dout
    cache : ConvTransposeNdCache from conv_transpose_forward_nd

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    x, w, b, stride, pads, _, dilation, groups, data_format, out_sizes = cache
    dtype = x.dtype
    n_batch, *spatial, c_in = x.shape
    *kernel, out_group, _ = w.shape
    kernel = tuple(kernel)
    in_group = c_in // groups
    c_out = out_group * groups
    dout = check_dout_nd(dout, (n_batch, *out_sizes, c_out), dtype, data_format)

    # dout placed back into the uncropped output: zeros where the forward cropped the padding
    dfull = np.zeros((n_batch, *_full_sizes(cache), c_out), dtype=dtype)
    crop_spatial(dfull, tuple((p, p) for p in pads), out_sizes)[...] = dout

    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for n in range(n_batch):
        for position in np.ndindex(*spatial):
            window = window_slices(position, stride, kernel, dilation)
            for ci in range(c_in):
                g = ci // in_group
                chans = slice(g * out_group, (g + 1) * out_group)
                patch = dfull[(n, *window, chans)]  # the (*k, C_out // groups) window x[n, *position, ci] fed
                dx[(n, *position, ci)] = np.sum(patch * w[..., ci])
                dw[..., ci] += patch * x[(n, *position, ci)]
    db = np.sum(dout, axis=tuple(range(dout.ndim - 1)))
    if b is not None:
        db = db.reshape(b.shape)
    return from_last(dx, data_format), weight_from_last(dw, data_format), db


# ------------------------------------------------------------------------------- the rank-specific names


def conv_transpose1d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    data_format: str = "NWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvTransposeNdCache]:
    """1-D transposed convolution, PyTorch's conv_transpose1d.

    Parameters
    ----------
    x : (N, W, C_in) for NWC, (N, C_in, W) for NCW
    w : (kw, C_out // groups, C_in) for NWC, (C_in, C_out // groups, kw) for NCW
    b : (C_out,) or None
    stride, dilation : int or (w,), >= 1
    padding : int or (pw,), >= 0: cropped from both ends of the full output
    output_padding : int or (opw,), smaller than the stride or the dilation: added at the end
    groups : divides C_in and C_out (see ``conv_transpose_forward_nd``)
    data_format : 'NWC' or 'NCW'
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    out : (N, Wo, C_out) (NCW: (N, C_out, Wo)), ``Wo = (W - 1)*sw - 2*pw + dw*(kw - 1) + opw + 1``
    cache : ConvTransposeNdCache
    """
    check_format(data_format, 1)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    return conv_transpose_forward_nd(x, w, b, data_format=data_format, **kwargs)


def conv_transpose1d_backward(
    dout: ArrayLike, cache: ConvTransposeNdCache, *, workspace: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv_transpose1d_forward.

    Parameters
    ----------
    dout : (N, Wo, C_out) (NCW: (N, C_out, Wo)): the forward output's shape, else a ValueError naming dout
    cache : ConvTransposeNdCache from conv_transpose1d_forward
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    check_cache_rank(cache.data_format, 1, "conv_transpose1d_backward")
    return conv_transpose_backward_nd(dout, cache)


def conv_transpose3d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    data_format: str = "NDHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvTransposeNdCache]:
    """3-D transposed convolution, PyTorch's conv_transpose3d.

    Parameters
    ----------
    x : (N, D, H, W, C_in) for NDHWC, (N, C_in, D, H, W) for NCDHW
    w : (kd, kh, kw, C_out // groups, C_in) for NDHWC, (C_in, C_out // groups, kd, kh, kw) for NCDHW
    b : (C_out,) or None
    stride, dilation : int or (d, h, w), >= 1
    padding : int or (pd, ph, pw), >= 0: cropped from both sides of the full output, per axis
    output_padding : int or (d, h, w), each smaller than its axis' stride or dilation: added at the end
    groups : divides C_in and C_out (see ``conv_transpose_forward_nd``)
    data_format : 'NDHWC' or 'NCDHW'
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    out : (N, Do, Ho, Wo, C_out) (NCDHW: (N, C_out, Do, Ho, Wo)), per axis ``(L - 1)*s - 2*p + d*(k - 1) +
        output_padding + 1``
    cache : ConvTransposeNdCache
    """
    check_format(data_format, 3)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    return conv_transpose_forward_nd(x, w, b, data_format=data_format, **kwargs)


def conv_transpose3d_backward(
    dout: ArrayLike, cache: ConvTransposeNdCache, *, workspace: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv_transpose3d_forward.

    Parameters
    ----------
    dout : (N, Do, Ho, Wo, C_out) (NCDHW: (N, C_out, Do, Ho, Wo)): the forward output's shape, else a ValueError
    cache : ConvTransposeNdCache from conv_transpose3d_forward
    workspace : ignored (accepted for call compatibility with the engine)

    Returns
    -------
    dx : like x; dw : like w (both in the forward call's layout); db : b's shape, (C_out,) when b was None
    """
    check_cache_rank(cache.data_format, 3, "conv_transpose3d_backward")
    return conv_transpose_backward_nd(dout, cache)
