"""What the N-d pooling loops share: their cache, the argument checks, the output sizes and the max-pool winner rule.

The pooling loops work channels-last, x (N, *spatial, C); a channels-first call ((N, C, *spatial)) is
transposed on the way in and its results back on the way out. The rank follows from data_format.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float, pool_out_size
from ._nd import IntOrTuple, check_rank, per_axis, rank_of, to_last


class PoolNdCache(NamedTuple):
    """What the N-d max / average pooling backward functions need."""

    x: np.ndarray  # (N, *spatial, C) in the compute dtype; a channels-first x is stored channels-last
    kernel_size: tuple[int, ...]  # one per spatial axis
    stride: tuple[int, ...]  # one per spatial axis
    padding: tuple[int, ...]  # one per spatial axis, on both sides
    dilation: tuple[int, ...]  # one per spatial axis; all 1 for average pooling
    ceil_mode: bool
    count_include_pad: bool  # average pooling only
    divisor_override: int | None  # average pooling only
    data_format: str  # the layout of the forward call's x and out (and of dx and indices); gives the rank
    # max pooling only: PyTorch's return_indices. int64, shaped like out (in data_format's layout): the flat
    # row-major index into the (unpadded) spatial input of the position that won the window (3-D: (d*H + h)*W + w)
    indices: np.ndarray | None = None


def pool_setup(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None,
    padding: IntOrTuple,
    dilation: IntOrTuple,
    data_format: str,
) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Normalize pooling arguments: x as channels-last float, kernel, stride (default: kernel), padding, dilation.

    PyTorch's padding rule: at most half the kernel size on each axis (``k // 2``, whatever the dilation).
    """
    ndim = rank_of(data_format)
    x = as_float(x)
    check_rank(x, ndim, data_format, "x")
    x = to_last(x, data_format)
    kernel = per_axis(kernel_size, ndim, "kernel_size", 1)
    stride_ = per_axis(kernel if stride is None else stride, ndim, "stride", 1)
    pads = per_axis(padding, ndim, "padding", 0)
    dilation_ = per_axis(dilation, ndim, "dilation", 1)
    if any(p > k // 2 for p, k in zip(pads, kernel, strict=True)):
        raise ValueError(f"padding {pads} must be at most half the kernel size {kernel}")
    return x, kernel, stride_, pads, dilation_


def pool_out_sizes(cache: PoolNdCache) -> tuple[int, ...]:
    """The number of windows along each spatial axis (PyTorch's floor / ceil rule, see ``pool_out_size``)."""
    spatial = cache.x.shape[1:-1]
    geometry = zip(spatial, cache.kernel_size, cache.stride, cache.padding, cache.dilation, strict=True)
    return tuple(pool_out_size(size, k, s, p, d, cache.ceil_mode) for size, k, s, p, d in geometry)


def window_argmax(plane: np.ndarray, positions: Iterable[tuple[int, ...]]) -> int | None:
    """Flat row-major index into the spatial ``plane`` of the max-pool winner among ``positions``.

    ``positions`` is a window's positions in row-major order; those outside the plane (padding, a ceil-mode
    overhang) are skipped. PyTorch's scan: start at the first position inside the plane, then move to any later
    position whose value is greater than the best so far, or is NaN. So ties go to the first maximum, padding
    never wins, and a window holding NaN sends its gradient to its last NaN. None when no position is inside.
    """
    best, best_value = None, None
    for point in positions:
        if not all(0 <= p < size for p, size in zip(point, plane.shape, strict=True)):
            continue  # padding
        value = plane[point]
        if best is None or value > best_value or np.isnan(value):
            best, best_value = point, value
    return None if best is None else int(np.ravel_multi_index(best, plane.shape))
