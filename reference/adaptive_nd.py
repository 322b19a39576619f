"""Plain-loop reference for adaptive average / max pooling over 1, 2 or 3 spatial axes (PyTorch's semantics).

Adaptive pooling fixes the output size instead of the window: along an axis of input length L and output
length O, window i covers the input positions ``start = floor(i*L / O)`` to ``end = ceil((i + 1)*L / O)``
(exclusive), so windows may differ in size and overlap by one. The loops work channels-last, x (N, *spatial, C);
a channels-first call ((N, C, *spatial)) is transposed on the way in and its results back on the way out. They
walk the output one window at a time (the output positions in row-major order, then the channel). The generic
functions take the rank from data_format; the public names are adaptive_{avg,max}_pool{1,2,3}d_*.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float
from ._nd import check_dout_nd, check_rank, from_last, rank_of, to_last
from ._pool_nd import window_argmax

__all__ = [
    "AdaptivePoolCache",
    "adaptive_avg_pool_backward_nd",
    "adaptive_avg_pool_forward_nd",
    "adaptive_max_pool_backward_nd",
    "adaptive_max_pool_forward_nd",
    "adaptive_window",
]

OutputSize = int | tuple[int | None, ...]


class AdaptivePoolCache(NamedTuple):
    """What the adaptive pooling backward functions need."""

    x: np.ndarray  # (N, *spatial, C) in the input's float dtype; a channels-first x is stored channels-last
    output_size: tuple[int, ...]  # the output's spatial size, None entries resolved
    data_format: str  # the layout of the forward call's x and out (and of dx and indices); gives the rank
    # max pooling only: int64, shaped like out (in data_format's layout): the winner's flat row-major index into
    # the spatial input (3-D: (d*H + h)*W + w), as PyTorch's return_indices gives it
    indices: np.ndarray | None = None


def adaptive_window(i: int, size: int, out: int) -> tuple[int, int]:
    """Window ``i`` of ``out`` along an axis of length ``size``: ``(floor(i*size/out), ceil((i + 1)*size/out))``."""
    return (i * size) // out, -((-(i + 1) * size) // out)


def _setup(x: ArrayLike, output_size: OutputSize, data_format: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """x as channels-last float and the output size: an int for every axis, or one entry per axis (None: L)."""
    ndim = rank_of(data_format)
    x = as_float(x)
    check_rank(x, ndim, data_format, "x")
    x = to_last(x, data_format)
    spatial = x.shape[1:-1]
    entries = (output_size,) * ndim if np.ndim(output_size) == 0 else tuple(output_size)  # type: ignore[arg-type]
    if len(entries) != ndim:
        raise ValueError(f"output_size must be an int or {ndim} entries (int or None), got {output_size!r}")
    sizes = tuple(size if entry is None else int(entry) for entry, size in zip(entries, spatial, strict=True))
    if min(sizes) < 1 or min(spatial) < 1:
        raise ValueError(f"output_size {sizes} and the input's spatial size {spatial} must be >= 1")
    return x, sizes


def _windows(position: tuple[int, ...], spatial: tuple[int, ...], out_sizes: tuple[int, ...]) -> list[range]:
    """Per spatial axis, the input positions of window ``position`` (see ``adaptive_window``)."""
    return [range(*adaptive_window(i, size, out)) for i, size, out in zip(position, spatial, out_sizes, strict=True)]


def adaptive_avg_pool_forward_nd(
    x: ArrayLike, output_size: OutputSize, *, data_format: str
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """Adaptive average pooling over ``ndim`` = 1, 2 or 3 spatial axes (from data_format).

    Parameters
    ----------
    x : (N, *spatial, C) channels-last, (N, C, *spatial) channels-first
    output_size : int (every axis) or ndim entries, each an int >= 1 or None (that axis keeps its input size)
    data_format : 'NWC', 'NCW', 'NHWC', 'NCHW', 'NDHWC' or 'NCDHW'

    Returns
    -------
    out : (N, *output_size, C) (channels-first: (N, C, *output_size)); the mean of each window
    cache : AdaptivePoolCache
    """
    x, out_sizes = _setup(x, output_size, data_format)
    n_batch, *spatial, channels = x.shape
    out = np.zeros((n_batch, *out_sizes, channels), dtype=x.dtype)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):  # the output positions, row-major
            window = tuple(slice(r.start, r.stop) for r in _windows(position, tuple(spatial), out_sizes))
            for c in range(channels):
                patch = x[(n, *window, c)]
                out[(n, *position, c)] = np.sum(patch) / patch.size
    return from_last(out, data_format), AdaptivePoolCache(x, out_sizes, data_format)


def adaptive_avg_pool_backward_nd(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_avg_pool_forward_nd: each window spreads dout / (its size) over its positions.

    Parameters
    ----------
    dout : the forward output's shape (in the call's layout), else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_avg_pool_forward_nd

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    x, out_sizes, data_format = cache.x, cache.output_size, cache.data_format
    dout = check_dout_nd(dout, (x.shape[0], *out_sizes, x.shape[-1]), x.dtype, data_format)
    n_batch, *spatial, channels = x.shape
    dx = np.zeros_like(x)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):
            window = tuple(slice(r.start, r.stop) for r in _windows(position, tuple(spatial), out_sizes))
            count = int(np.prod([s.stop - s.start for s in window]))
            for c in range(channels):
                dx[(n, *window, c)] += dout[(n, *position, c)] / count
    return from_last(dx, data_format)


def adaptive_max_pool_forward_nd(
    x: ArrayLike, output_size: OutputSize, *, data_format: str
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """Adaptive max pooling over ``ndim`` = 1, 2 or 3 spatial axes (from data_format), with PyTorch's indices.

    The winner rule is max pooling's (``window_argmax``): scan the window in row-major order from its first
    position, move on to a later position whose value is greater than the best so far or is NaN.

    Parameters
    ----------
    x : (N, *spatial, C) channels-last, (N, C, *spatial) channels-first
    output_size : int (every axis) or ndim entries, each an int >= 1 or None (that axis keeps its input size)
    data_format : 'NWC', 'NCW', 'NHWC', 'NCHW', 'NDHWC' or 'NCDHW'

    Returns
    -------
    out : (N, *output_size, C) (channels-first: (N, C, *output_size)); the value of each window's winner
    cache : AdaptivePoolCache; ``cache.indices`` (int64, like out): the winner's flat index into the spatial input
    """
    x, out_sizes = _setup(x, output_size, data_format)
    n_batch, *spatial, channels = x.shape
    out = np.zeros((n_batch, *out_sizes, channels), dtype=x.dtype)
    indices = np.zeros((n_batch, *out_sizes, channels), dtype=np.int64)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):
            window = _windows(position, tuple(spatial), out_sizes)
            for c in range(channels):
                best = window_argmax(x[n, ..., c], itertools.product(*window))  # row-major over the window
                indices[(n, *position, c)] = best
                out[(n, *position, c)] = x[(n, *np.unravel_index(best, spatial), c)]
    cache = AdaptivePoolCache(x, out_sizes, data_format, from_last(indices, data_format))
    return from_last(out, data_format), cache


def adaptive_max_pool_backward_nd(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_max_pool_forward_nd: each window's dout goes to its winner ``cache.indices``.

    Parameters
    ----------
    dout : the forward output's shape (in the call's layout), else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_max_pool_forward_nd

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    x, out_sizes, data_format = cache.x, cache.output_size, cache.data_format
    if cache.indices is None:
        raise ValueError("adaptive max pooling's backward needs the cache of adaptive_max_pool_forward (indices)")
    indices = to_last(cache.indices, data_format)
    dout = check_dout_nd(dout, (x.shape[0], *out_sizes, x.shape[-1]), x.dtype, data_format)
    n_batch, *spatial, channels = x.shape
    dx = np.zeros_like(x)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):
            for c in range(channels):
                point = np.unravel_index(int(indices[(n, *position, c)]), spatial)
                dx[(n, *point, c)] += dout[(n, *position, c)]
    return from_last(dx, data_format)
