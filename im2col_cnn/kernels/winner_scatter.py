"""Max pooling's gradient for overlapping windows: each window's ``dout`` added at its winner.

Where windows overlap (a 3x3 kernel at stride 2, PyTorch's adaptive windows), the pooling kernels' gradient costs a
mask, a multiply and an add per kernel offset over the whole output; adding each window's gradient at its winner
costs one pass over the windows. The adds are a weighted histogram of the winners' flat positions
(``np.bincount``, not ``np.add.at``): it adds in float64, in the windows' row-major order, so every element gets
the same sum for every block size and thread count (in float32, the float64 sum rounded once).

Blocks of whole images write disjoint parts of ``dx`` and run on the engine's threads. One image's offsets, its
float64 gradient and histogram must fit one thread's scratch (:func:`winner_scatter_fits`); larger images keep the
pooling kernels, whose tiles split images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..geometry.tiles import TILE_BYTES, _blocks
from ..runtime.layout import empty_channels_last
from ..runtime.parallel import map_blocks
from .pool_plan import WORKER_SCRATCH_BYTES, max_workers

__all__ = ["winner_scatter_fits", "scatter_winners"]


def _scratch_per_image(in_per_image: int, out_per_image: int) -> int:
    """One image's scratch: its winners' int64 offsets (twice: channels-first ones are copied to row-major order),
    its gradient (a row-major copy, then float64) and its float64 histogram."""
    return out_per_image * (8 + 8 + 8 + 8) + in_per_image * 8


def winner_scatter_fits(x_shape: Sequence[int], out_shape: Sequence[int]) -> bool:
    """Whether one image's scratch, for an input of ``x_shape`` (N, *spatial, C) and an output of ``out_shape``
    (N, *out, C), fits one thread's scratch."""
    return _scratch_per_image(math.prod(x_shape[1:]), math.prod(out_shape[1:])) <= WORKER_SCRATCH_BYTES


def scatter_winners(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    spatial_index: Callable[[slice], np.ndarray],
    *,
    dtype: np.dtype,
    channels_first: bool,
) -> np.ndarray:
    """Max pooling's gradient: ``dout`` (N, *out, C) -> ``dx`` (``x_shape`` (N, *spatial, C), ``dtype``), each
    window's gradient added at its winner, 0 elsewhere.

    ``spatial_index(images)`` returns the winners of the windows of a slice of images as int64 flat indices into
    the spatial input (PyTorch's ``return_indices``, ``h * W + w`` in 2-D), (n, *out, C), a new array this function
    may overwrite. ``dx`` is allocated in the caller's layout and returned as a channels-last view. The windows are
    taken in (n, *out, C) row-major order in both layouts, so that each element's sum is the same in both.
    """
    dx = empty_channels_last(x_shape, dtype, channels_first)
    n, c = x_shape[0], x_shape[-1]
    per_image = math.prod(x_shape[1:])
    memory = dx.transpose(0, dx.ndim - 1, *range(1, dx.ndim - 1)) if channels_first else dx
    flat = memory.reshape(-1)  # dx's memory, C-contiguous in the caller's layout: no copy
    itemsize = dtype.itemsize
    # Element strides of the channels-last view: image, last spatial axis (PyTorch's index counts in its
    # units in both layouts: the earlier spatial axes' strides are multiples of it) and channel.
    s_image, s_last, s_channel = (dx.strides[a] // itemsize for a in (0, dx.ndim - 2, dx.ndim - 1))
    scratch = _scratch_per_image(per_image, math.prod(dout.shape[1:]))

    def work(block: tuple[int, int], _: None) -> None:
        n0, n1 = block
        images = slice(n0, n1)
        # (n, *out, C): flat offset within the block of each window's winner
        offsets = spatial_index(images)
        offsets *= s_last
        offsets += (np.arange(n1 - n0, dtype=np.int64) * s_image).reshape((-1,) + (1,) * (dx.ndim - 1))
        offsets += np.arange(c, dtype=np.int64) * s_channel
        # (n*prod(out)*C,) -> the block's dx, contiguous: the sum of the gradients of the windows each element wins
        part = flat[n0 * per_image : n1 * per_image]
        sums = np.bincount(offsets.reshape(-1), weights=dout[images].reshape(-1), minlength=part.size)
        np.copyto(part, sums, casting="unsafe")

    blocks = _blocks(n, max(1, 2 * TILE_BYTES // scratch))
    map_blocks(work, blocks, lambda: None, max_threads=max_workers())
    return dx
