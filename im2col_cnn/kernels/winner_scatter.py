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
from collections.abc import Sequence

import numpy as np

from ..geometry.tiles import TILE_BYTES, even_blocks
from ..runtime.layout import empty_channels_last
from ..runtime.parallel import map_blocks
from .pool_plan import WORKER_SCRATCH_BYTES, max_workers

__all__ = ["winner_scatter_fits", "scatter_winners"]


def _scratch_per_image(in_per_image: int, out_per_image: int) -> int:
    """One image's scratch: its winners' int64 offsets and their part shared by every block, its gradient (a
    row-major copy of a channels-first one, then float64) and its float64 histogram."""
    return out_per_image * (8 + 8 + 8 + 8) + in_per_image * 8


def winner_scatter_fits(x_shape: Sequence[int], out_shape: Sequence[int]) -> bool:
    """Whether one image's scratch, for an input of ``x_shape`` (N, *spatial, C) and an output of ``out_shape``
    (N, *out, C), fits one thread's scratch."""
    return _scratch_per_image(math.prod(x_shape[1:]), math.prod(out_shape[1:])) <= WORKER_SCRATCH_BYTES


def scatter_winners(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    winners: np.ndarray,
    *,
    shift: np.ndarray | None = None,
    start: np.ndarray | None = None,
    dtype: np.dtype,
    channels_first: bool,
) -> np.ndarray:
    """Max pooling's gradient: ``dout`` (N, *out, C) -> ``dx`` (``x_shape`` (N, *spatial, C), ``dtype``), each
    window's gradient added at its winner, 0 elsewhere.

    ``winners`` (N, *out, C) are flat indices into the spatial input (PyTorch's ``return_indices``, ``h * W + w``
    in 2-D), or, with ``shift`` and ``start`` (:func:`~im2col_cnn.kernels.pool_forward.winner_offsets`), the
    pooling kernels' winner codes: a winner with code ``c`` in the window at output ``o`` lies at ``shift[c] +
    start[o]``. ``dx`` is allocated in the caller's layout and returned as a channels-last view. The windows are
    taken in (n, *out, C) row-major order in both layouts, so that each element's sum is the same in both.
    """
    dx = empty_channels_last(x_shape, dtype, channels_first)
    n, c = x_shape[0], x_shape[-1]
    if n == 0:
        return dx
    per_image = math.prod(x_shape[1:])
    memory = dx.transpose(0, dx.ndim - 1, *range(1, dx.ndim - 1)) if channels_first else dx
    flat = memory.reshape(-1)  # dx's memory, C-contiguous in the caller's layout: no copy
    itemsize = dtype.itemsize
    # Element strides of the channels-last view: image, last spatial axis (PyTorch's index counts in its
    # units in both layouts: the earlier spatial axes' strides are multiples of it) and channel.
    s_image, s_last, s_channel = (dx.strides[a] // itemsize for a in (0, dx.ndim - 2, dx.ndim - 1))
    out_shape = dout.shape[1:-1]
    step = max(1, 2 * TILE_BYTES // _scratch_per_image(per_image, math.prod(dout.shape[1:])))
    blocks = even_blocks(n, step)
    # (images of the largest block, *out, C): the part of each winner's offset within a block that does not
    # depend on the winner -- its image, its channel and its window's start -- shared by every block
    images = np.arange(max(b - a for a, b in blocks), dtype=np.int64) * s_image
    base = images.reshape((-1,) + (1,) * (dx.ndim - 1)) + np.arange(c, dtype=np.int64) * s_channel
    if start is not None:
        base = base + (start * s_last)[..., None]  # (*out, 1)
    base = np.ascontiguousarray(np.broadcast_to(base, (len(images), *out_shape, c)))
    scaled = None if shift is None else shift * s_last

    def work(block: tuple[int, int], _: None) -> None:
        n0, n1 = block
        offsets = np.empty((n1 - n0, *out_shape, c), dtype=np.int64)  # row-major whatever the layout
        if scaled is not None:  # (prod(kernel),)[code] -> (n, *out, C); "clip": unbuffered
            np.take(scaled, winners[n0:n1], out=offsets, mode="clip")
        else:
            np.multiply(winners[n0:n1], s_last, out=offsets, dtype=np.int64, casting="unsafe")  # no narrow overflow
        offsets += base[: n1 - n0]
        # (n*prod(out)*C,) -> the block's dx, contiguous: the sum of the gradients of the windows each element wins
        part = flat[n0 * per_image : n1 * per_image]
        sums = np.bincount(offsets.reshape(-1), weights=dout[n0:n1].reshape(-1), minlength=part.size)
        np.copyto(part, sums, casting="unsafe")

    map_blocks(work, blocks, lambda: None, max_threads=max_workers())
    return dx
