"""What every pooling layer shares: the cache, the input checks, and the forward and backward passes of ordinary
(strided) max and average pooling in 1, 2 or 3 spatial dimensions, channels-last or channels-first.

Both are separable reductions over the kernel offsets, tile by tile (:mod:`~im2col_cnn.kernels.pool_forward`),
with the padding never read. Max pooling records each window's winner (a small integer per output) in the
forward pass; the backward pass reads only those, so nothing the forward pass returns is read again. Results are
allocated in the caller's layout; channels-first input is read through a channels-last view, never copied. The
public functions of each rank (:mod:`~im2col_cnn.layers.pool`) and the drop-in APIs call these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..geometry.adaptive import WindowCounts, clipped_axis
from ..geometry.windows import Axis, WindowGeometry
from ..kernels.adaptive import adaptive_windows, winner_dtype
from ..kernels.adaptive_backward import adaptive_scatter
from ..kernels.global_max import global_max
from ..kernels.pool_backward import scatter_windows
from ..kernels.pool_forward import argmax_indices, avg_divisor, pool_geometry, pool_windows
from ..runtime.checks import as_flag, as_float_array, as_int, as_tuple, check_data_format, check_dout, check_ndim
from ..runtime.layout import caller_layout, to_channels_last
from .arguments import array_layout

__all__ = ["PoolCache", "LONG_WINDOWS", "long_windows", "checked_input", "pool_forward", "pool_backward"]

LONG_WINDOWS = 255
"""Max pooling over windows of more kernel offsets than this, and average pooling over windows of more than this
along an axis, with no dilation and windows that overlap at most pairwise (kernel at most twice the stride on each
axis), run through the adaptive kernels (:mod:`~im2col_cnn.kernels.adaptive`), whose steps do not grow with the
offsets: global max pooling of a 512x512 image in 7 ms rather than 8 s (a step per position). Up to 255 offsets a
window's winner takes one byte in the cache; these windows' winners are flat input indices. Average pooling is
separable on the pooling kernels (taps per axis, not per offset; many taken whole,
:mod:`~im2col_cnn.kernels.whole_windows`), which sum each axis' taps in order: up to 255 of them, as accurate as
the adaptive kernels' pairwise sums over one long axis. Windows that overlap more (a kernel of 300 at stride 1)
stay on the pooling kernels, whose steps are per offset but whose scratch does not grow with the overlap."""


def long_windows(kernel: Sequence[int], kind: str) -> bool:
    """Whether windows of ``kernel`` are too long for the pooling kernels (``LONG_WINDOWS``): more offsets in all
    for max pooling, more taps along an axis for average pooling. Adaptive average pooling of (8, 60, 60, 512)
    float32 to 2x2 (30x30 windows, as a pyramid pooling module makes), forward / backward on 1 core: 88.7 / 13.4 ms
    on the adaptive kernels, 4.3 / 9.5 on the pooling kernels; channels-first 28.8 / 9.0 and 15.4 / 13.6 (its
    gradient broadcast along rows of 60 positions in the planes: slower, the pair faster)."""
    return (max(kernel) if kind == "avg" else math.prod(kernel)) > LONG_WINDOWS


class PoolCache(NamedTuple):
    """What the pooling backward passes need.

    ``x`` is the caller's input itself, kept by reference (no copy, as PyTorch's saved tensors are); the backward
    passes never read its values, so changing ``x`` in place afterwards does not change the gradient. ``winners``
    (max pooling) holds each window's winner, the row-major code of its kernel offset (``i*kw + j`` in 2-D), in a
    small unsigned type: (N, *out, C), a channels-last view of an array in the call's layout. ``kind`` is
    ``'max'`` or ``'avg'``; ``ties`` says where a max window's gradient goes when several positions hold its
    maximum: ``'first'`` (the first in row-major window order, PyTorch) or ``'all'`` (the drop-in API, which
    keeps a private copy of the window maxima in ``peak`` and reads ``x``). ``divisor`` is average pooling's
    divisor, a number or each window's count (:class:`~im2col_cnn.geometry.adaptive.WindowCounts`, one count per
    output along each axis). ``long`` says that the windows (more than ``LONG_WINDOWS`` kernel offsets, no
    dilation) ran through the adaptive kernels, or the one window of a global max pooling through its own:
    ``winners`` then holds flat input indices.
    """

    x: np.ndarray  # (N, *spatial, C) or (N, C, *spatial): the caller's array
    winners: np.ndarray | None  # (N, *out, C) view, max pooling with ties='first'
    geom: WindowGeometry
    kind: str
    ties: str = "first"
    divisor: float | WindowCounts = 1.0
    data_format: str = "NHWC"
    peak: np.ndarray | None = None  # (N, *out, C), ties='all' only: a private copy of the window maxima
    io_dtype: np.dtype | None = None  # float16 when the caller's arrays were (computed in float32)
    long: bool = False  # windows of many offsets, run by the adaptive kernels

    @property
    def indices(self) -> np.ndarray:
        """Max pooling's argmax, as PyTorch's ``return_indices`` gives it: int64, shaped like the output (in the
        call's layout), holding the flat index into the spatial input (``h * W + w`` in 2-D, ``(d*H + h)*W + w``
        in 3-D) of the position each window's gradient goes to."""
        if self.kind != "max" or self.winners is None:
            raise AttributeError("indices exist for max pooling only")
        channels_first = self.data_format[1] == "C"
        if self.long:
            return caller_layout(self.winners.astype(np.int64), channels_first)
        return caller_layout(argmax_indices(self.winners, self.geom, channels_first), channels_first)


def checked_input(x: object, data_format: object, ndim: int) -> tuple[np.ndarray, bool]:
    """``x`` as a float array of an ``ndim``-D pooling layer in ``data_format`` and whether it is channels-first."""
    channels_first = check_data_format(data_format, ndim, x)
    arr = as_float_array(x, "x")
    check_ndim(arr, "x", array_layout(ndim, channels_first), data_format)  # type: ignore[arg-type]
    if 0 in arr.shape[1:]:
        raise ValueError(f"x must not be empty except in the batch dimension, got shape {arr.shape}")
    return arr, channels_first


def pool_forward(
    x: object,
    kernel_size: object,
    stride: object,
    padding: object,
    kind: str,
    *,
    ties: str = "first",
    dilation: object = 1,
    ceil_mode: object = False,
    count_include_pad: object = True,
    divisor_override: object = None,
    data_format: object = "NHWC",
    ndim: int = 2,
) -> tuple[np.ndarray, PoolCache]:
    """Validate, then max- or average-pool ``x`` -> out (N, *out, C) (or channels-first).

    Max pooling treats the padding as ``-inf`` (it never wins); average pooling as zeros, counted in the
    divisor unless ``count_include_pad`` is false. Padding is at most half the kernel on each axis (PyTorch).
    """
    arr, channels_first = checked_input(x, data_format, ndim)
    x_last = to_channels_last(arr, channels_first)  # (N, C, *spatial) -> (N, *spatial, C) view
    kernel = as_tuple(kernel_size, ndim, "kernel_size", minimum=1)
    steps = kernel if stride is None else as_tuple(stride, ndim, "stride", minimum=1)
    pads = as_tuple(padding, ndim, "padding", minimum=0)
    if any(p > k // 2 for p, k in zip(pads, kernel, strict=True)):
        raise ValueError(f"padding must be at most half of kernel_size {kernel} on each axis, got {pads}")
    dilations = as_tuple(dilation, ndim, "dilation", minimum=1)
    geom = pool_geometry(x_last.shape, kernel, steps, pads, dilations, as_flag(ceil_mode, "ceil_mode"))
    divisor: float | WindowCounts = 1.0
    if kind == "avg":
        if divisor_override is not None:
            divisor_override = as_int(divisor_override, "divisor_override", -(2**62), "a nonzero int or None")
            if divisor_override == 0:
                raise ValueError("divisor_override must be a nonzero int or None, got 0")
        include_pad = as_flag(count_include_pad, "count_include_pad")
        # in x's dtype, which never widens: float32 stays float32
        divisor = avg_divisor(geom, pads, include_pad, divisor_override, x_last.dtype.newbyteorder("="))
    first = kind == "max" and ties == "first"
    pooled = _global_max(x_last, geom, channels_first) if first else None
    long = pooled is not None or (
        (first or kind == "avg") and long_windows(geom.kernel, kind) and all(_few_overlaps(a) for a in geom.axes)
    )
    if pooled is not None:  # one window, the whole input: as adaptive max pooling to 1 (flat winners)
        out, winners = pooled
    elif long:  # the same windows cut to the input: a gather and a reduction per axis, not a step per offset
        axes = tuple(clipped_axis(a) for a in geom.axes)
        out, winners = adaptive_windows(x_last, axes, kind, counts=divisor, channels_first=channels_first)
    else:
        out, winners = pool_windows(x_last, geom, kind, winners=first, divisor=divisor, channels_first=channels_first)
    peak = out.copy() if kind == "max" and not first else None  # private: the caller may change out
    cache = PoolCache(arr, winners, geom, kind, ties, divisor, str(data_format), peak, long=long)
    return caller_layout(out, channels_first), cache


def _global_max(x_last: np.ndarray, geom: WindowGeometry, channels_first: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Max pooling whose one window is exactly the input (``max_pool1d(x, x.shape[2])``, a text CNN's max over
    time) through :func:`~im2col_cnn.kernels.global_max.global_max`, or None."""
    if any(a.k != a.size or a.lo or a.d != 1 or a.out != 1 for a in geom.axes):
        return None
    return global_max(x_last, channels_first, winner_dtype(tuple(clipped_axis(a) for a in geom.axes)))


def _few_overlaps(axis: Axis) -> bool:
    """Whether ``axis``' windows (no dilation) overlap at most pairwise: every input lies in at most two, so the
    adaptive kernels' stacked windows are at most twice the input and their gradient two gathers per axis."""
    return axis.d == 1 and axis.k <= 2 * axis.s


def pool_backward(dout: object, cache: PoolCache, kind: str, ndim: int = 2) -> np.ndarray:
    """Scatter ``dout`` (the forward output's shape) back onto the input of the forward pass in ``cache``."""
    forward = f"{kind}_pool{ndim}d_forward"
    if not isinstance(cache, PoolCache) or cache.kind != kind or cache.geom.ndim != ndim:
        raise TypeError(f"cache must be the PoolCache returned by {forward}, got {_describe(cache)}")
    channels_first = cache.data_format[1] == "C"
    x_last = to_channels_last(cache.x, channels_first)  # (N, C, *spatial) -> (N, *spatial, C) view
    n, c = x_last.shape[0], x_last.shape[-1]
    geom = cache.geom
    shape = (n, c, *geom.out_shape) if channels_first else (n, *geom.out_shape, c)
    d = as_float_array(dout, "dout")
    d_last = to_channels_last(check_dout(d, shape, d.dtype), channels_first)  # cast to x's dtype a tile at a time
    if cache.long:
        axes = tuple(clipped_axis(a) for a in geom.axes)
        dtype = x_last.dtype.newbyteorder("=")
        dx = adaptive_scatter(
            d_last, x_last.shape, axes, kind, winners=cache.winners, counts=cache.divisor, dtype=dtype,
            channels_first=channels_first,
        )  # fmt: skip
        return caller_layout(dx, channels_first)
    dx = scatter_windows(
        d_last,
        x_last.shape,
        geom,
        kind,
        winners=cache.winners,
        x=x_last,
        peak=cache.peak,
        divisor=cache.divisor,
        dtype=x_last.dtype.newbyteorder("="),
        channels_first=channels_first,
    )
    return caller_layout(dx, channels_first)


def _describe(cache: object) -> str:
    if isinstance(cache, PoolCache):
        return f"a PoolCache of kind {cache.kind!r} in {cache.geom.ndim}-D"
    return type(cache).__name__
