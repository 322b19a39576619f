"""Global max pooling: each image's and channel's maximum over all its spatial positions and where it first lies,
``(N, *spatial, C)`` -> ``(N, 1, ..., 1, C)`` and the flat spatial index of its winner (PyTorch's
``adaptive_max_pool`` to 1, with ``return_indices``).

A channels-first array's channel planes are contiguous: NumPy's ``argmax`` along them finds each plane's first
maximum in one pass. Channels-last, NumPy's ``argmax`` over the positions copies them into contiguous runs first
(164 ms for (4, 512, 512, 32) float32, 16 times a copy), so the positions are taken in two levels, as global
average pooling's are: ``q`` rows of ``B ~ sqrt(S)`` consecutive positions reduced row by row, each a contiguous run
of ``B*C`` values (their maximum, then, row by row from the last, where it first lies), and the ``B`` partial
maxima then reduced with their positions, the least position among those equal to the maximum winning. A window
holding NaN sends its gradient to its last NaN, as PyTorch does. Blocks of whole images (and of channels, where an
image's partial maxima would outgrow a tile) run on the engine's threads; each channel's result is the same in any
block.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.tiles import TILE_BYTES, even_blocks
from ..runtime.layout import empty_channels_last
from ..runtime.parallel import map_blocks
from .global_mean import image_blocks, merged_positions, position_rows
from .pool_plan import as_code, max_workers

__all__ = ["global_max", "FEW_POSITIONS", "FEW_PLANE_POSITIONS"]

FEW_POSITIONS = 16
FEW_PLANE_POSITIONS = 64
"""Fewer positions than these (channels-last; channels-first planes) are left to the pooling kernels, a step per
position. Float32, 1 core, against them: (64, 3, 3, 512) 0.26 ms against 0.21, (64, 5, 5, 512) 0.51 against 0.51,
(64, 7, 7, 512) 0.85 against 1.02; channels-first, where ``argmax`` costs about 60 ns a plane, (64, 512, 7, 7)
2.32 against 2.03, (64, 512, 8, 8) 1.73 against 3.12."""


def global_max(x: np.ndarray, channels_first: bool, win_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray] | None:
    """The maximum of ``x`` (N, *spatial, C, a channels-last view of the caller's array) over its spatial axes and
    its first position (flat spatial index, ``win_dtype``): two (N, *ones, C) arrays allocated in the caller's
    layout and returned as channels-last views. None where the spatial axes do not merge into one without a copy
    (an arbitrarily strided view), or where they are so few that the pooling kernels' step per position costs less
    (:data:`FEW_POSITIONS`)."""
    n, *spatial, c = x.shape
    size = math.prod(spatial)
    first = x.transpose(0, x.ndim - 1, *range(1, x.ndim - 1))  # (N, C, *spatial)
    planes = first.reshape(n, c, size) if channels_first and first.flags.c_contiguous else None
    flat = None if planes is not None else merged_positions(x)
    if (planes is None and flat is None) or size < (FEW_PLANE_POSITIONS if planes is not None else FEW_POSITIONS):
        return None
    shape = (n, *(1 for _ in spatial), c)
    out = empty_channels_last(shape, x.dtype.newbyteorder("="), channels_first)
    win = empty_channels_last(shape, win_dtype, channels_first)
    peaks, wins = out.reshape(n, c), win.reshape(n, c)  # views: every spatial axis is 1

    def work(block: tuple[tuple[int, int], tuple[int, int]], _: None) -> None:
        (n0, n1), (c0, c1) = block
        if planes is not None:  # (b, c, S): along contiguous planes
            part = planes[n0:n1, c0:c1]
            where = part.argmax(axis=2)  # (b, c): the first maximum (or NaN)
            np.copyto(wins[n0:n1, c0:c1], where, casting="unsafe")
            np.copyto(peaks[n0:n1, c0:c1], np.take_along_axis(part, where[..., None], axis=2)[..., 0])
            positions = part.transpose(0, 2, 1)  # (b, S, c)
        else:
            positions = flat[n0:n1, :, c0:c1]  # type: ignore[index]
            _max_positions(positions, peaks[n0:n1, c0:c1], wins[n0:n1, c0:c1])
        lost = np.isnan(peaks[n0:n1, c0:c1])
        if lost.any():  # rare: the last NaN wins
            _last_nan(positions, lost, wins[n0:n1, c0:c1])

    # channels-last scratch: the columns' maxima, first rows, positions and masks, 32 bytes a column at most
    lane = 0 if planes is not None else math.isqrt(size) * 32
    c_step = min(c, max(1, TILE_BYTES // max(1, lane)))
    blocks = [(b, ch) for b in image_blocks(x.shape, x.itemsize, lane * c_step) for ch in even_blocks(c, c_step)]
    map_blocks(work, blocks, lambda: None, max_threads=max_workers())
    return out, win


def _max_positions(flat: np.ndarray, peaks: np.ndarray, wins: np.ndarray) -> None:
    """``peaks`` (b, C) = the maximum of ``flat`` (b, S, C) over its positions, ``wins`` (b, C) the first position
    holding it: rows of ``B ~ sqrt(S)`` positions reduced one after another (their maximum, and for each of the
    ``B`` columns the first row holding it), then the columns (the least position among the maxima)."""
    size = flat.shape[1]
    grouped, tail = position_rows(flat)  # (b, q, B, C), (b, S - q*B, C)
    rows, group = grouped.shape[1:3]
    whole = rows * group
    column = np.maximum.reduce(grouped, axis=1)  # (b, q, B, C) -> (b, B, C)
    # the first row holding each column's maximum: the greatest of (q - r) over the rows r holding it (masked
    # copies cost 2 ns an element, these three calls a row a fifth of that)
    code = np.min_scalar_type(rows)
    first = np.zeros(column.shape, dtype=code)
    equal = np.empty(column.shape, dtype=bool)
    mark = np.empty(column.shape, dtype=code)
    for r in range(rows):
        np.equal(grouped[:, r], column, out=equal)
        np.multiply(as_code(equal, mark), rows - r, out=mark)
        np.maximum(first, mark, out=first)
    np.maximum.reduce(column, axis=1, out=peaks)
    if whole < size:  # the positions past the last whole row, after every row's in row-major order
        np.maximum(peaks, np.maximum.reduce(tail, axis=1), out=peaks)
    # each column's first position, all ones (past any position) where it does not hold the maximum; the least wins
    index = np.min_scalar_type(size)
    position = np.subtract(rows, first, dtype=index)  # the row
    np.multiply(position, group, out=position)
    position += np.arange(group, dtype=index)[:, None]
    np.equal(column, peaks[:, None], out=equal)
    position |= np.subtract(as_code(equal, np.empty(column.shape, dtype=index)), 1)
    best = position.min(axis=1)
    if whole < size:
        late = np.where(tail == peaks[:, None], np.arange(whole, size, dtype=index)[:, None], size)
        np.minimum(best, late.min(axis=1), out=best, casting="unsafe")
    np.copyto(wins, best, casting="unsafe")


def _last_nan(positions: np.ndarray, lost: np.ndarray, wins: np.ndarray) -> None:
    """``wins`` (b, C) = the last position of ``positions`` (b, S, C) holding NaN, where ``lost`` (b, C)."""
    size = positions.shape[1]
    last = size - 1 - np.isnan(positions[:, ::-1]).argmax(axis=1)
    np.copyto(wins, last, where=lost, casting="unsafe")
