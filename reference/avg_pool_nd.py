"""Plain-loop reference for average pooling over 1, 2 or 3 spatial axes, forward and backward (PyTorch's semantics).

``avg_pool_forward_nd`` / ``avg_pool_backward_nd`` are rank-generic (the rank follows from data_format) and walk
the output one window at a time (the output positions in row-major order, then the channel). Window ``o`` covers,
per axis, the input positions ``o*s - p ... o*s - p + k - 1``; positions outside the input are zero padding,
counted in the divisor or not (see ``window_and_divisor``). The public rank-specific names are avg_pool1d_*
(no divisor_override, as PyTorch's avg_pool1d) and avg_pool3d_*; avg_pool2d keeps its own loops (``pool_loops``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._nd import IntOrTuple, check_cache_rank, check_dout_nd, check_format, from_last
from ._pool_nd import PoolNdCache, pool_out_sizes, pool_setup

__all__ = [
    "avg_pool1d_backward",
    "avg_pool1d_forward",
    "avg_pool3d_backward",
    "avg_pool3d_forward",
    "avg_pool_backward_nd",
    "avg_pool_forward_nd",
    "window_and_divisor",
]


def window_and_divisor(cache: PoolNdCache, position: tuple[int, ...]) -> tuple[tuple[slice, ...], int]:
    """The input part of window ``position`` (one slice per spatial axis) and PyTorch's divisor for it.

    Per axis, ``start = o*s - p`` and ``end = min(start + k, L + p)``: the window clipped to the padded input
    (a ceil-mode overhang past the padding does not count). ``pool`` is the product of ``end - start`` (the
    padding included); the input part clips start and end to ``[0, L)``. The divisor: divisor_override if given,
    else ``pool`` if count_include_pad, else the number of input positions in the window.
    """
    spatial = cache.x.shape[1:-1]
    inside, pool, count = [], 1, 1
    for o, size, k, s, p in zip(position, spatial, cache.kernel_size, cache.stride, cache.padding, strict=True):
        start = o * s - p
        end = min(start + k, size + p)
        pool *= end - start
        lo, hi = max(start, 0), min(end, size)
        count *= hi - lo
        inside.append(slice(lo, hi))
    if cache.divisor_override is not None:
        divisor = cache.divisor_override
    else:
        divisor = pool if cache.count_include_pad else count
    return tuple(inside), divisor


def avg_pool_forward_nd(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    *,
    data_format: str,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[np.ndarray, PoolNdCache]:
    """Average pooling with zero padding over ``ndim`` = 1, 2 or 3 spatial axes (from data_format).

    Parameters
    ----------
    x : (N, *spatial, C) channels-last, (N, C, *spatial) channels-first
    kernel_size : int or ndim ints, >= 1
    data_format : 'NWC', 'NCW', 'NHWC', 'NCHW', 'NDHWC' or 'NCDHW'
    stride : int or ndim ints, >= 1; default kernel_size
    padding : int or ndim ints, each at most half its kernel size (``k // 2``)
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)
    count_include_pad : whether the padding counts in the divisor (see ``window_and_divisor``)
    divisor_override : nonzero int, the divisor of every window

    Returns
    -------
    out : (N, *out, C) (channels-first: (N, C, *out)); ``out = sum(window) / divisor``
    cache : PoolNdCache
    """
    x, kernel, stride_, pads, dilation = pool_setup(x, kernel_size, stride, padding, 1, data_format)  # no dilation
    if divisor_override is not None:
        if int(divisor_override) != divisor_override or divisor_override == 0:
            raise ValueError(f"divisor_override must be a nonzero int, got {divisor_override!r}")
        divisor_override = int(divisor_override)
    cache = PoolNdCache(
        x, kernel, stride_, pads, dilation, bool(ceil_mode), bool(count_include_pad), divisor_override, data_format
    )
    n_batch, *_, channels = x.shape
    out_sizes = pool_out_sizes(cache)

    out = np.zeros((n_batch, *out_sizes, channels), dtype=x.dtype)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):  # the output positions, row-major
            inside, divisor = window_and_divisor(cache, position)
            for c in range(channels):
                window = x[(n, *inside, c)]  # the window's input positions (the zero padding adds nothing)
                out[(n, *position, c)] = np.sum(window) / divisor
    return from_last(out, data_format), cache


def avg_pool_backward_nd(dout: ArrayLike, cache: PoolNdCache) -> np.ndarray:
    """Gradient of avg_pool_forward_nd: each window spreads dout / divisor over its input positions.

    Parameters
    ----------
    dout : the forward output's shape (in the call's layout), else a ValueError naming dout
    cache : PoolNdCache from avg_pool_forward_nd

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    x = cache.x
    out_sizes = pool_out_sizes(cache)
    dout = check_dout_nd(dout, (x.shape[0], *out_sizes, x.shape[-1]), x.dtype, cache.data_format)
    n_batch, *_, channels = dout.shape

    dx = np.zeros_like(x)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):
            inside, divisor = window_and_divisor(cache, position)
            for c in range(channels):
                dx[(n, *inside, c)] += dout[(n, *position, c)] / divisor
    return from_last(dx, cache.data_format)


# ------------------------------------------------------------------------------- the rank-specific names


def avg_pool1d_forward(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    data_format: str = "NWC",
) -> tuple[np.ndarray, PoolNdCache]:
    """1-D average pooling with zero padding, PyTorch's avg_pool1d (which has no divisor_override).

    Parameters
    ----------
    x : (N, W, C) for NWC, (N, C, W) for NCW
    kernel_size : int or (w,), >= 1
    stride : int or (w,), >= 1; default kernel_size
    padding : int or (w,), at most kernel_size // 2
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)
    count_include_pad : whether the padding counts in the divisor (see ``window_and_divisor``)
    data_format : 'NWC' or 'NCW'

    Returns
    -------
    out : (N, Wo, C) (NCW: (N, C, Wo)); ``Wo = (W + 2*pw - kw) // sw + 1`` (floor mode)
    cache : PoolNdCache
    """
    check_format(data_format, 1)
    options = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    return avg_pool_forward_nd(x, kernel_size, data_format=data_format, **options)


def avg_pool1d_backward(dout: ArrayLike, cache: PoolNdCache) -> np.ndarray:
    """Gradient of avg_pool1d_forward: each window spreads dout / divisor over its input positions.

    Parameters
    ----------
    dout : (N, Wo, C) (NCW: (N, C, Wo)): the forward output's shape, else a ValueError naming dout
    cache : PoolNdCache from avg_pool1d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 1, "avg_pool1d_backward")
    return avg_pool_backward_nd(dout, cache)


def avg_pool3d_forward(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    data_format: str = "NDHWC",
) -> tuple[np.ndarray, PoolNdCache]:
    """3-D average pooling with zero padding, PyTorch's avg_pool3d.

    Parameters
    ----------
    x : (N, D, H, W, C) for NDHWC, (N, C, D, H, W) for NCDHW
    kernel_size : int or (d, h, w), >= 1
    stride : int or (d, h, w), >= 1; default kernel_size
    padding : int or (d, h, w), each at most half its kernel size
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)
    count_include_pad : whether the padding counts in the divisor (see ``window_and_divisor``)
    divisor_override : nonzero int, the divisor of every window
    data_format : 'NDHWC' or 'NCDHW'

    Returns
    -------
    out : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)); per axis ``(L + 2*p - k) // s + 1`` (floor mode)
    cache : PoolNdCache
    """
    check_format(data_format, 3)
    options = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    return avg_pool_forward_nd(x, kernel_size, data_format=data_format, divisor_override=divisor_override, **options)


def avg_pool3d_backward(dout: ArrayLike, cache: PoolNdCache) -> np.ndarray:
    """Gradient of avg_pool3d_forward: each window spreads dout / divisor over its input positions.

    Parameters
    ----------
    dout : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)): the forward output's shape, else a ValueError
    cache : PoolNdCache from avg_pool3d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 3, "avg_pool3d_backward")
    return avg_pool_backward_nd(dout, cache)
