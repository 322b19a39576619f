"""Plain-loop reference for max pooling over 1, 2 or 3 spatial axes, forward and backward (PyTorch's semantics).

``max_pool_forward_nd`` / ``max_pool_backward_nd`` are rank-generic (the rank follows from data_format) and walk
the output one window at a time (the output positions in row-major order, then the channel). Window ``o`` reads,
per axis, the input positions ``o*s - p + i*d`` (i < k); positions outside the input are padding and act as
-inf (they never win). ceil_mode may add a last window that runs past the end padding. The public
rank-specific names are max_pool1d_* and max_pool3d_*; max_pool2d keeps its own loops (``pool_loops``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._nd import FORMATS, IntOrTuple, check_cache_rank, check_dout_nd, check_format, from_last, to_last
from ._pool_nd import PoolNdCache, pool_out_sizes, pool_setup, window_argmax

__all__ = [
    "max_pool1d_backward",
    "max_pool1d_forward",
    "max_pool3d_backward",
    "max_pool3d_forward",
    "max_pool_backward_nd",
    "max_pool_forward_nd",
]


def max_pool_forward_nd(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    *,
    data_format: str,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, PoolNdCache]:
    """Max pooling over ``ndim`` = 1, 2 or 3 spatial axes (from data_format); padding acts as -inf.

    Parameters
    ----------
    x : (N, *spatial, C) channels-last, (N, C, *spatial) channels-first
    kernel_size, dilation : int or ndim ints, >= 1
    data_format : 'NWC', 'NCW', 'NHWC', 'NCHW', 'NDHWC' or 'NCDHW'
    stride : int or ndim ints, >= 1; default kernel_size
    padding : int or ndim ints, each at most half its kernel size (``k // 2``)
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)

    Returns
    -------
    out : (N, *out, C) (channels-first: (N, C, *out)); per axis ``o = (L + 2*p - d*(k - 1) - 1) // s + 1``
        (floor mode); the value of the window's winner (see ``window_argmax``)
    cache : PoolNdCache; ``cache.indices`` (int64, like out) is the winner's flat index into the spatial input,
        as PyTorch's return_indices gives it
    """
    x, kernel, stride_, pads, dilation_ = pool_setup(x, kernel_size, stride, padding, dilation, data_format)
    cache = PoolNdCache(x, kernel, stride_, pads, dilation_, bool(ceil_mode), True, None, data_format)
    n_batch, *spatial, channels = x.shape
    out_sizes = pool_out_sizes(cache)

    out = np.zeros((n_batch, *out_sizes, channels), dtype=x.dtype)
    indices = np.zeros((n_batch, *out_sizes, channels), dtype=np.int64)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):  # the output positions, row-major
            starts = [o * s - p for o, s, p in zip(position, stride_, pads, strict=True)]  # may be in the padding
            for c in range(channels):
                window = (  # the window's positions in the input, row-major
                    tuple(start + i * d for start, i, d in zip(starts, offset, dilation_, strict=True))
                    for offset in np.ndindex(*kernel)
                )
                best = window_argmax(x[n, ..., c], window)
                if best is None:
                    raise ValueError(f"max-pool window {position} covers no input position (dilation too large)")
                indices[(n, *position, c)] = best
                out[(n, *position, c)] = x[(n, *np.unravel_index(best, spatial), c)]
    cache = cache._replace(indices=from_last(indices, data_format))
    return from_last(out, data_format), cache


def max_pool_backward_nd(dout: ArrayLike, cache: PoolNdCache) -> np.ndarray:
    """Gradient of max_pool_forward_nd: each window's dout goes to ONE position, its winner ``cache.indices``.

    Overlapping windows add up. A cache without indices (built by hand) gets them recomputed.

    Parameters
    ----------
    dout : the forward output's shape (in the call's layout), else a ValueError naming dout
    cache : PoolNdCache from max_pool_forward_nd

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    x, data_format = cache.x, cache.data_format
    if cache.indices is None:  # a hand-built cache: recompute the winners (cache.x is channels-last)
        geometry = dict(stride=cache.stride, padding=cache.padding, dilation=cache.dilation, ceil_mode=cache.ceil_mode)
        last_format = FORMATS[x.ndim - 2][0]
        indices = max_pool_forward_nd(x, cache.kernel_size, data_format=last_format, **geometry)[1].indices
    else:
        indices = to_last(cache.indices, data_format)
    dout = check_dout_nd(dout, indices.shape, x.dtype, data_format)
    n_batch, *out_sizes, channels = dout.shape
    spatial = x.shape[1:-1]

    dx = np.zeros_like(x)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):
            for c in range(channels):
                point = np.unravel_index(int(indices[(n, *position, c)]), spatial)
                dx[(n, *point, c)] += dout[(n, *position, c)]
    return from_last(dx, data_format)


# ------------------------------------------------------------------------------- the rank-specific names


def max_pool1d_forward(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str = "NWC",
) -> tuple[np.ndarray, PoolNdCache]:
    """1-D max pooling, PyTorch's max_pool1d (with return_indices); padding acts as -inf.

    Parameters
    ----------
    x : (N, W, C) for NWC, (N, C, W) for NCW
    kernel_size, dilation : int or (w,), >= 1
    stride : int or (w,), >= 1; default kernel_size
    padding : int or (w,), at most kernel_size // 2
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)
    data_format : 'NWC' or 'NCW'

    Returns
    -------
    out : (N, Wo, C) (NCW: (N, C, Wo)); ``Wo = (W + 2*pw - dw*(kw - 1) - 1) // sw + 1`` (floor mode)
    cache : PoolNdCache; ``cache.indices``: int64 like out, the winner's position w in the input
    """
    check_format(data_format, 1)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    return max_pool_forward_nd(x, kernel_size, data_format=data_format, **geometry)


def max_pool1d_backward(dout: ArrayLike, cache: PoolNdCache) -> np.ndarray:
    """Gradient of max_pool1d_forward: each window's dout goes to its winner ``cache.indices``.

    Parameters
    ----------
    dout : (N, Wo, C) (NCW: (N, C, Wo)): the forward output's shape, else a ValueError naming dout
    cache : PoolNdCache from max_pool1d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 1, "max_pool1d_backward")
    return max_pool_backward_nd(dout, cache)


def max_pool3d_forward(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str = "NDHWC",
) -> tuple[np.ndarray, PoolNdCache]:
    """3-D max pooling, PyTorch's max_pool3d (with return_indices); padding acts as -inf.

    Parameters
    ----------
    x : (N, D, H, W, C) for NDHWC, (N, C, D, H, W) for NCDHW
    kernel_size, dilation : int or (d, h, w), >= 1
    stride : int or (d, h, w), >= 1; default kernel_size
    padding : int or (d, h, w), each at most half its kernel size
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)
    data_format : 'NDHWC' or 'NCDHW'

    Returns
    -------
    out : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)); per axis ``(L + 2*p - d*(k - 1) - 1) // s + 1`` (floor)
    cache : PoolNdCache; ``cache.indices``: int64 like out, the winner's ``(d*H + h)*W + w`` in the input
    """
    check_format(data_format, 3)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    return max_pool_forward_nd(x, kernel_size, data_format=data_format, **geometry)


def max_pool3d_backward(dout: ArrayLike, cache: PoolNdCache) -> np.ndarray:
    """Gradient of max_pool3d_forward: each window's dout goes to its winner ``cache.indices``.

    Parameters
    ----------
    dout : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)): the forward output's shape, else a ValueError
    cache : PoolNdCache from max_pool3d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 3, "max_pool3d_backward")
    return max_pool_backward_nd(dout, cache)
