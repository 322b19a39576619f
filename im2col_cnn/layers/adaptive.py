"""Adaptive average and max pooling (PyTorch's ``adaptive_{avg,max}_pool{1,2,3}d``), forward and backward,
channels-last or channels-first.

The caller names the output size; window ``i`` of an axis of ``L`` inputs and ``O`` outputs is
``[floor(i*L/O), ceil((i+1)*L/O))``. Three cases, each exact:

* global average pooling (every output size 1): a mean over the spatial axes
  (:mod:`~im2col_cnn.kernels.global_mean`), and its gradient a broadcast;
* every axis' windows are an ordinary pooling's cut to the input (sizes that divide evenly: kernel and stride
  ``L/O``; 14 to 5: kernel 4, stride 3, padding 1), not too long for them
  (:func:`~im2col_cnn.layers.pooling.long_windows`): the pooling kernels (:mod:`~im2col_cnn.kernels.pool_forward`),
  which never read the padding;
* otherwise the adaptive kernels (:mod:`~im2col_cnn.kernels.adaptive`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..geometry.adaptive import AdaptiveAxis, adaptive_axis, strided_axis, window_counts
from ..geometry.windows import geometry_of
from ..kernels.adaptive import adaptive_windows, winner_dtype
from ..kernels.adaptive_backward import adaptive_scatter
from ..kernels.global_max import global_max
from ..kernels.global_mean import global_mean, spread_mean_grad
from ..kernels.pool_forward import pool_windows
from ..runtime.batch_chunks import batch_chunked
from ..runtime.checks import MAX_INT, as_float_array, as_int, axes_tuple, check_dout
from ..runtime.half_precision import float16_io
from ..runtime.layout import caller_layout, new_result, to_channels_last
from .arguments import documented
from .pooling import PoolCache, checked_input, long_windows, pool_backward

__all__ = [
    "AdaptivePoolCache",
    "adaptive_avg_pool1d_forward",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_forward",
    "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d_forward",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d_forward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d_forward",
    "adaptive_max_pool3d_backward",
]


class AdaptivePoolCache(NamedTuple):
    """What an adaptive pooling backward function needs.

    ``x`` is the caller's input, kept by reference (no copy) and never read again. ``axes`` are the windows per
    axis. ``pool`` is the ordinary pooling's cache where the windows are an ordinary pooling's; otherwise max
    pooling keeps each window's winner (its flat input index, (N, *out, C), a channels-last view of an array in
    the call's layout). Nothing in the cache shares memory with the returned output.
    """

    x: np.ndarray  # (N, *spatial, C) or (N, C, *spatial): the caller's array
    kind: str  # 'max' or 'avg'
    axes: tuple[AdaptiveAxis, ...]
    data_format: str
    pool: PoolCache | None = None  # the windows are an ordinary pooling's
    winners: np.ndarray | None = None  # max pooling, otherwise
    io_dtype: np.dtype | None = None  # float16 when the caller's arrays were (computed in float32)

    @property
    def indices(self) -> np.ndarray:
        """Adaptive max pooling's argmax as PyTorch's ``return_indices``: int64, shaped like the output (in the
        call's layout), the flat index into the spatial input of each window's first maximum."""
        if self.kind != "max":
            raise AttributeError("indices exist for max pooling only")
        if self.pool is not None:
            return self.pool.indices
        return caller_layout(self.winners.astype(np.int64), self.data_format[1] == "C")  # type: ignore[union-attr]


def _output_size(value: object, spatial: Sequence[int], ndim: int) -> tuple[int, ...]:
    """``output_size``: an int, or one entry per axis, each an int >= 1 or None (that axis' input size)."""
    what = f"an int >= 1 or a {axes_tuple(ndim)} tuple, each entry an int >= 1 or None"
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
        items = list(value)
        if len(items) != ndim:
            raise ValueError(f"output_size must be {what}, got {value!r}")
        sizes = tuple(
            s if v is None else as_int(v, "output_size", 1, what) for v, s in zip(items, spatial, strict=True)
        )
    else:
        sizes = (as_int(value, "output_size", 1, what),) * ndim
    if max(sizes) > MAX_INT // 2**20:
        raise ValueError(f"output_size {sizes} is too large for memory")
    return sizes


def adaptive_forward(x: object, output_size: object, kind: str, data_format: object, ndim: int):
    """The forward pass of every rank's adaptive pooling (see :func:`adaptive_avg_pool2d_forward`)."""
    arr, channels_first = checked_input(x, data_format, ndim)
    spatial = arr.shape[2:] if channels_first else arr.shape[1:-1]
    sizes = _output_size(output_size, spatial, ndim)
    axes = tuple(adaptive_axis(size, out) for size, out in zip(spatial, sizes, strict=True))
    fmt = str(data_format)
    x_last = to_channels_last(arr, channels_first)
    if kind == "avg" and all(o == 1 for o in sizes):  # global average pooling
        return global_mean(x_last, channels_first), AdaptivePoolCache(arr, kind, axes, fmt)
    if kind == "max" and all(o == 1 for o in sizes):  # global max pooling
        pooled = global_max(x_last, channels_first, winner_dtype(axes))
        if pooled is not None:
            out, win = pooled
            return caller_layout(out, channels_first), AdaptivePoolCache(arr, kind, axes, fmt, winners=win)
    dtype = x_last.dtype.newbyteorder("=")
    counts = window_counts(axes, dtype) if kind == "avg" else None
    strided = tuple(strided_axis(a) for a in axes)
    if all(strided) and not long_windows([a.k for a in strided], kind):  # type: ignore[union-attr]
        # The windows of an ordinary pooling, cut to the input: its kernels, which the padding never reaches.
        geom = geometry_of(strided)  # type: ignore[arg-type]
        divisor = 1.0 if counts is None else counts
        out, win = pool_windows(
            x_last, geom, kind, winners=kind == "max", divisor=divisor, channels_first=channels_first
        )
        pool = PoolCache(arr, win, geom, kind, "first", divisor, fmt)
        return caller_layout(out, channels_first), AdaptivePoolCache(arr, kind, axes, fmt, pool=pool)
    out, win = adaptive_windows(x_last, axes, kind, counts=counts, channels_first=channels_first)
    return caller_layout(out, channels_first), AdaptivePoolCache(arr, kind, axes, fmt, winners=win)


def adaptive_backward(dout: object, cache: AdaptivePoolCache, kind: str, ndim: int) -> np.ndarray:
    """The backward pass of every rank's adaptive pooling."""
    forward = f"adaptive_{kind}_pool{ndim}d_forward"
    if not isinstance(cache, AdaptivePoolCache) or cache.kind != kind or len(cache.axes) != ndim:
        got = type(cache).__name__
        if isinstance(cache, AdaptivePoolCache):
            got = f"the cache of adaptive_{cache.kind}_pool{len(cache.axes)}d_forward"
        raise TypeError(f"cache must be the AdaptivePoolCache returned by {forward}, got {got}")
    if cache.pool is not None:
        return pool_backward(dout, cache.pool, kind, ndim)
    channels_first = cache.data_format[1] == "C"
    x_last = to_channels_last(cache.x, channels_first)
    n, c = x_last.shape[0], x_last.shape[-1]
    out_shape = tuple(a.out for a in cache.axes)
    shape = (n, c, *out_shape) if channels_first else (n, *out_shape, c)
    d = as_float_array(dout, "dout")
    d_last = to_channels_last(check_dout(d, shape, d.dtype), channels_first)
    dtype = x_last.dtype.newbyteorder("=")
    if cache.winners is None and all(o == 1 for o in out_shape):  # global average pooling: a broadcast
        dx, dx_last = new_result(x_last.shape, dtype, channels_first)
        spread_mean_grad(d_last, dx_last, math.prod(a.size for a in cache.axes))
        return dx
    counts = window_counts(cache.axes, dtype) if kind == "avg" else None
    dx = adaptive_scatter(
        d_last, x_last.shape, cache.axes, kind, winners=cache.winners, counts=counts, dtype=dtype,
        channels_first=channels_first,
    )  # fmt: skip
    return caller_layout(dx, channels_first)


FORWARD_DOC = """Adaptive {kind} pooling (PyTorch ``adaptive_{kind}_pool{n}d`` semantics): the caller names the output
    size.

    Parameters
    ----------
    x : array_like, shape {xc}, or {xc_first} with ``data_format='{first}'``
    output_size : int or {axes} tuple
        Output positions per axis; an entry None keeps that axis' input size. Window ``i`` of an axis of ``L``
        inputs and ``O`` outputs spans inputs ``floor(i*L/O)`` to ``ceil((i+1)*L/O) - 1``.
    data_format : '{last}' or '{first}'

    Returns
    -------
    out : ndarray, shape {outc} (or {outc_first}), float dtype of ``x``
        {what}
    cache : AdaptivePoolCache
        For :func:`adaptive_{kind}_pool{n}d_backward`.{indices} It keeps a reference to ``x`` (no copy) and shares
        no memory with ``out``.
    """

BACKWARD_DOC = """Gradient of :func:`adaptive_{kind}_pool{n}d_forward`: {what}

    Parameters
    ----------
    dout : array_like, shape of the forward output {outc} (or {outc_first})
    cache : AdaptivePoolCache from :func:`adaptive_{kind}_pool{n}d_forward`

    Returns
    -------
    dx : ndarray, shape and layout of ``x``
    """

_AVG = {
    "kind": "avg",
    "what": "Each window's mean; output size 1 on every axis is global average pooling.",
    "indices": "",
}
_MAX = {
    "kind": "max",
    "what": "Each window's maximum.",
    "indices": " ``cache.indices`` is the argmax as PyTorch's ``return_indices`` (flat index into the spatial "
    "input of the first maximum in row-major window order; a window holding NaN: its last NaN).",
}
_AVG_BACK = {"kind": "avg", "what": "each window spreads ``dout / window size`` over its positions."}
_MAX_BACK = {"kind": "max", "what": "each window's ``dout`` goes to its first maximum (``cache.indices``)."}


def _doc(template: str, words: dict[str, str]) -> str:
    for key, value in words.items():
        template = template.replace("{" + key + "}", value)
    return template


@batch_chunked
@float16_io("forward")
@documented(_doc(FORWARD_DOC, _AVG), 1)
def adaptive_avg_pool1d_forward(
    x: np.ndarray, output_size: int | tuple[int | None], *, data_format: str = "NWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    return adaptive_forward(x, output_size, "avg", data_format, 1)


@batch_chunked
@float16_io("forward")
@documented(_doc(FORWARD_DOC, _AVG), 2)
def adaptive_avg_pool2d_forward(
    x: np.ndarray, output_size: int | tuple[int | None, int | None], *, data_format: str = "NHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    return adaptive_forward(x, output_size, "avg", data_format, 2)


@batch_chunked
@float16_io("forward")
@documented(_doc(FORWARD_DOC, _AVG), 3)
def adaptive_avg_pool3d_forward(
    x: np.ndarray, output_size: int | tuple[int | None, int | None, int | None], *, data_format: str = "NDHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    return adaptive_forward(x, output_size, "avg", data_format, 3)


@batch_chunked
@float16_io("forward")
@documented(_doc(FORWARD_DOC, _MAX), 1)
def adaptive_max_pool1d_forward(
    x: np.ndarray, output_size: int | tuple[int | None], *, data_format: str = "NWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    return adaptive_forward(x, output_size, "max", data_format, 1)


@batch_chunked
@float16_io("forward")
@documented(_doc(FORWARD_DOC, _MAX), 2)
def adaptive_max_pool2d_forward(
    x: np.ndarray, output_size: int | tuple[int | None, int | None], *, data_format: str = "NHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    return adaptive_forward(x, output_size, "max", data_format, 2)


@batch_chunked
@float16_io("forward")
@documented(_doc(FORWARD_DOC, _MAX), 3)
def adaptive_max_pool3d_forward(
    x: np.ndarray, output_size: int | tuple[int | None, int | None, int | None], *, data_format: str = "NDHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    return adaptive_forward(x, output_size, "max", data_format, 3)


@batch_chunked
@float16_io("backward")
@documented(_doc(BACKWARD_DOC, _AVG_BACK), 1)
def adaptive_avg_pool1d_backward(dout: np.ndarray, cache: AdaptivePoolCache) -> np.ndarray:
    return adaptive_backward(dout, cache, "avg", 1)


@batch_chunked
@float16_io("backward")
@documented(_doc(BACKWARD_DOC, _AVG_BACK), 2)
def adaptive_avg_pool2d_backward(dout: np.ndarray, cache: AdaptivePoolCache) -> np.ndarray:
    return adaptive_backward(dout, cache, "avg", 2)


@batch_chunked
@float16_io("backward")
@documented(_doc(BACKWARD_DOC, _AVG_BACK), 3)
def adaptive_avg_pool3d_backward(dout: np.ndarray, cache: AdaptivePoolCache) -> np.ndarray:
    return adaptive_backward(dout, cache, "avg", 3)


@batch_chunked
@float16_io("backward")
@documented(_doc(BACKWARD_DOC, _MAX_BACK), 1)
def adaptive_max_pool1d_backward(dout: np.ndarray, cache: AdaptivePoolCache) -> np.ndarray:
    return adaptive_backward(dout, cache, "max", 1)


@batch_chunked
@float16_io("backward")
@documented(_doc(BACKWARD_DOC, _MAX_BACK), 2)
def adaptive_max_pool2d_backward(dout: np.ndarray, cache: AdaptivePoolCache) -> np.ndarray:
    return adaptive_backward(dout, cache, "max", 2)


@batch_chunked
@float16_io("backward")
@documented(_doc(BACKWARD_DOC, _MAX_BACK), 3)
def adaptive_max_pool3d_backward(dout: np.ndarray, cache: AdaptivePoolCache) -> np.ndarray:
    return adaptive_backward(dout, cache, "max", 3)
