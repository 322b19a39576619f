"""The bias gradient of every convolution layer: ``dout`` (N, *out, C_out), any memory layout, summed over all but
its channels, in blocks on the engine's threads, the same sum bit for bit for every limit and thread count."""

from __future__ import annotations

import math

import numpy as np

from ..geometry.tiles import Tile, conv_tiles, tile_sizes
from ..runtime.layout import caller_layout
from ..runtime.parallel import map_blocks
from ..runtime.workspace import Buffers
from . import wide
from .columns import contiguous

__all__ = ["bias_grad"]

SUM_BLOCK_BYTES = 2**21
"""Size of the blocks of ``dout`` that :func:`bias_grad` sums on the engine's threads (2 MiB: on 2 cores of this
bandwidth-bound sum, 512 KiB blocks were 2x slower on two threads than on one, 2 MiB ones as fast)."""

ROW_RUN = 1024
"""Elements per row of the matrix a channels-last block is summed as (see :func:`_channel_sums`)."""


def _channel_sums(rows: np.ndarray) -> np.ndarray:
    """(m, C) C-contiguous -> (C,): the sum over rows, taken as runs of ``ROW_RUN // C`` rows (each a row of a
    ``(m // r, r*C)`` view) -- the sum over the first axis of a matrix with few columns adds one short row at a
    time, five times slower."""
    m, c = rows.shape
    r = max(1, ROW_RUN // max(c, 1))
    whole = m // r * r
    # (whole, C) -> (whole / r, r*C) -> (r*C,) -> (r, C) -> (C,)
    total = rows[:whole].reshape(-1, r * c).sum(axis=0).reshape(r, c).sum(axis=0)
    if whole < m:
        total += rows[whole:].sum(axis=0)
    return total


def bias_grad(dout: np.ndarray, b_shape: tuple[int, ...] | None) -> np.ndarray:
    """``db``: ``dout`` (N, *out, C_out), any memory layout, summed over all but the channels, in ``b``'s shape.

    Summed in blocks of about ``SUM_BLOCK_BYTES`` (whole images, or parts of one image where an image is larger)
    on the engine's threads, the blocks' sums added in block order -- in the planes for a channels-first
    ``dout``, else as channels-last rows (copied where ``dout`` is not channels-last in memory). The blocks depend
    on the shape alone: the same sum, bit for bit, for every limit and thread count.
    """
    n, *out_shape, c_out = dout.shape
    size = dout.itemsize * c_out
    blocks = conv_tiles(
        n,
        tuple(out_shape),
        math.prod(out_shape) * size,
        lambda n_b, s: n_b * math.prod(s) * size,
        SUM_BLOCK_BYTES,
        block_bytes=SUM_BLOCK_BYTES,
        min_tiles=1,  # a bandwidth-bound sum: blocks smaller than SUM_BLOCK_BYTES cost more than they spread
    )
    db = np.zeros(c_out, dtype=dout.dtype)
    room = tile_sizes(blocks[0])[0] * math.prod(tile_sizes(blocks[0])[1]) * c_out if blocks else 0
    first = wide.is_channels_first(dout)

    def work(tile: Tile, bufs: Buffers) -> np.ndarray:
        block = dout[(tile.images, *tile.box)]  # (n_b, *sizes, C_out)
        if first:  # summed in the channels' planes: (n_b, C_out, *sizes) -> (n_b, C_out) -> (C_out,)
            planes = caller_layout(block, True)
            return planes.sum(axis=tuple(range(2, planes.ndim))).sum(axis=0)
        block = contiguous(block, bufs, "dout", room)
        return _channel_sums(block.reshape(-1, c_out))  # (n_b, *sizes, C_out) -> (m, C_out) -> (C_out,)

    map_blocks(work, blocks, lambda: Buffers(dout.dtype), then=lambda _, part, __: np.add(db, part, out=db))
    return db.reshape(b_shape or (c_out,))
