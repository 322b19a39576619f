"""Global average pooling: each image's and channel's mean over all its spatial positions, ``(N, *spatial, C)`` ->
``(N, 1, ..., 1, C)``, in one pass over the input, as fast as NumPy's ``mean`` and more accurate.

NumPy sums a channels-last array over its spatial axes one position after another (an error growing with the
number of positions: 1e-5 relative on a 1000x1000 float32 image) and, with few channels, slowly (14 ms for a
1000x1000x4 image that a copy reads in 0.6 ms). Here the positions are summed in two levels: ``q`` groups of
``B ~ sqrt(S)`` consecutive positions are added group by group, each add a contiguous run of ``B*C`` values, and
the ``B`` partial sums are then added up; an error growing with ``2*sqrt(S)``, in one pass that reads the input
once. A C-contiguous channels-first array is summed by NumPy along its contiguous spatial run (pairwise
summation). The two layouts' results therefore agree to rounding, not to the bit.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.tiles import TILE_BYTES, _blocks
from ..runtime.layout import new_result

__all__ = ["global_mean", "GROUPED"]

GROUPED = 64
"""Fewer spatial positions than this are summed one after another (an error of at most that many roundings)."""


def global_mean(x: np.ndarray, channels_first: bool) -> np.ndarray:
    """The mean of ``x`` (N, *spatial, C, a channels-last view of the caller's array) over its spatial axes:
    (N, *ones, C), allocated in the caller's layout and returned in it, dtype of ``x`` in native byte order."""
    n, *spatial, c = x.shape
    size = math.prod(spatial)
    dtype = x.dtype.newbyteorder("=")
    out, _ = new_result((n, *(1 for _ in spatial), c), dtype, channels_first)
    sums = out.reshape(n, c)  # a view: every spatial axis of out is 1
    first = x.transpose(0, x.ndim - 1, *range(1, x.ndim - 1))  # (N, C, *spatial)
    if channels_first and first.flags.c_contiguous:
        np.add.reduce(first.reshape(n, c, size), axis=2, out=sums)  # along contiguous runs: pairwise
    else:
        _sum_positions(x, sums)
    np.divide(sums, size, out=sums)
    return out


def _merged(x: np.ndarray) -> np.ndarray | None:
    """(N, *spatial, C) as an (N, S, C) view, or None where the spatial axes do not merge without a copy."""
    n, *spatial, c = x.shape
    axes = [(size, stride) for size, stride in zip(spatial, x.strides[1:-1], strict=True) if size > 1]
    if any(outer != inner * size for (_, outer), (size, inner) in zip(axes, axes[1:], strict=False)):
        return None
    stride = axes[-1][1] if axes else x.itemsize
    return np.lib.stride_tricks.as_strided(x, (n, math.prod(spatial), c), (x.strides[0], stride, x.strides[-1]))


def _sum_positions(x: np.ndarray, sums: np.ndarray) -> None:
    """``sums`` (N, C) = ``x`` (N, *spatial, C) summed over the spatial axes: in two levels of groups of about
    ``sqrt(S)`` positions, a block of images at a time (its partial sums within ``TILE_BYTES``)."""
    flat = _merged(x)
    size = math.prod(x.shape[1:-1])
    if flat is None or size < GROUPED:
        np.add.reduce(x, axis=tuple(range(1, x.ndim - 1)), out=sums)
        return
    n, _, c = flat.shape
    group = math.isqrt(size)
    whole = size // group * group
    grouped = flat[:, :whole].reshape(n, size // group, group, c)  # (N, q, B, C), a view
    per_image = group * c * sums.itemsize
    partial = np.empty((min(n, max(1, TILE_BYTES // per_image)), group, c), dtype=sums.dtype)
    for n0, n1 in _blocks(n, len(partial)):
        part = partial[: n1 - n0]
        np.add.reduce(grouped[n0:n1], axis=1, out=part)  # (b, q, B, C) -> (b, B, C): q adds of B*C values
        np.add.reduce(part, axis=1, out=sums[n0:n1])  # (b, B, C) -> (b, C)
        if whole < size:
            sums[n0:n1] += np.add.reduce(flat[n0:n1, whole:], axis=1)
