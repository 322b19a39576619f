"""Max pooling's gradient for overlapping windows: each window's ``dout`` added at its winner.

Where windows overlap (a 3x3 kernel at stride 2, PyTorch's adaptive windows), the pooling kernels' gradient costs a
mask, a multiply and an add per kernel offset over the whole output; adding each window's gradient at its winner
costs one pass over the windows. The adds are a weighted histogram of the winners' flat positions
(``np.bincount``, not ``np.add.at``): it adds in float64, in the windows' row-major order, so every element gets
the same sum for every block size and thread count (in float32, the float64 sum rounded once).

Blocks of whole images write disjoint parts of ``dx`` and run on the engine's threads, where one image's offsets,
its float64 gradient and histogram fit one thread's scratch (:func:`winner_scatter_fits`). Larger images go tile by
tile of the input (:func:`scatter_winner_tiles`): each tile's histogram spans the box its windows read, of which
the tile keeps its own part. The windows covering a tile's inputs are all among its outputs, taken in the same
row-major order, so every element gets the same sum either way. Where such images have few windows (a global max
pooling), a histogram of their distinct winners does instead (:func:`scatter_few_winners`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..geometry.tiles import TILE_BYTES, PoolTile, even_blocks, input_tiles, tile_key
from ..geometry.windows import Axis, WindowGeometry
from ..runtime.layout import empty_channels_last
from ..runtime.parallel import map_blocks
from .pool_plan import WORKER_SCRATCH_BYTES, Scratch, max_workers

ALL = slice(None)

__all__ = ["winner_scatter_fits", "scatter_winners", "scatter_winner_tiles", "few_winners", "scatter_few_winners"]

FEW_WINDOWS = 16
"""Windows are few against their input where an image has at most one a channel for this many input positions."""


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


def _few_bytes(windows: int) -> int:
    """The scratch of binning ``windows`` windows' winners by the distinct ones: their offsets, those sorted, the
    distinct ones, each window's place among them, and the sums (int64 and float64)."""
    return 40 * windows


def few_winners(x_shape: Sequence[int], out_shape: Sequence[int]) -> bool:
    """Whether an input of ``x_shape`` (N, *spatial, C) has few windows (``out_shape`` (N, *out, C)) against its
    positions (:data:`FEW_WINDOWS`), so that :func:`scatter_few_winners` costs little more than zeroing ``dx``,
    and one channel of an image's windows fit one thread's scratch."""
    windows = math.prod(out_shape[1:-1])
    return windows * FEW_WINDOWS <= math.prod(x_shape[1:-1]) and _few_bytes(windows) <= WORKER_SCRATCH_BYTES * 3 // 4


def scatter_few_winners(
    dout: np.ndarray, x_shape: tuple[int, ...], winners: np.ndarray, *, dtype: np.dtype, channels_first: bool
) -> np.ndarray:
    """:func:`scatter_winners` (with flat ``winners``) for images too large for one histogram whose windows are few
    (:func:`few_winners`), as a global max pooling's are: ``dx`` zeroed, then for blocks of images and channels,
    each window's gradient added into the sum of its distinct winner (``np.unique``, then the histogram of each
    window's place among them), written where it wins. Every element gets the histogram's sum, in the same order.
    """
    dx = empty_channels_last(x_shape, dtype, channels_first, buffer=np.zeros(math.prod(x_shape), dtype))
    n, c = x_shape[0], x_shape[-1]
    memory = dx.transpose(0, dx.ndim - 1, *range(1, dx.ndim - 1)) if channels_first else dx
    flat = memory.reshape(-1)  # dx's memory, C-contiguous in the caller's layout: no copy
    s_image, s_last, s_channel = (dx.strides[a] // dtype.itemsize for a in (0, dx.ndim - 2, dx.ndim - 1))
    windows = math.prod(dout.shape[1:-1])
    per_channel = max(1, WORKER_SCRATCH_BYTES * 3 // 4 // _few_bytes(windows))  # image-channels a block
    c_step = min(c, per_channel)
    blocks = [(b, ch) for b in even_blocks(n, max(1, per_channel // c)) for ch in even_blocks(c, c_step)]
    lead = (1,) * (dx.ndim - 2)

    def work(block: tuple[tuple[int, int], tuple[int, int]], _: None) -> None:
        (n0, n1), (c0, c1) = block
        w = winners[n0:n1, ..., c0:c1]
        offsets = np.multiply(w, s_last, dtype=np.int64, casting="unsafe")  # (n, *out, c), row-major
        offsets += (np.arange(n0, n1, dtype=np.int64) * s_image).reshape((-1, *lead, 1))
        offsets += np.arange(c0, c1, dtype=np.int64) * s_channel
        won, place = np.unique(offsets.reshape(-1), return_inverse=True)
        sums = np.bincount(place.reshape(-1), weights=dout[n0:n1, ..., c0:c1].reshape(-1), minlength=won.size)
        flat[won] = sums  # cast to dx's dtype

    map_blocks(work, blocks, lambda: None, max_threads=max_workers())
    return dx


def scatter_winner_tiles(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    winners: np.ndarray,
    geom: WindowGeometry,
    *,
    dtype: np.dtype,
    channels_first: bool,
) -> np.ndarray:
    """:func:`scatter_winners` for images too large for it, tile by tile of the input: ``dout`` (N, *out, C) and
    the pooling kernels' winner codes ``winners`` (N, *out, C) -> ``dx`` (``x_shape`` (N, *spatial, C), ``dtype``,
    allocated in the caller's layout and returned as a channels-last view).

    A tile's outputs are the windows reading any of its inputs; their winners are binned over the box those
    windows span (a 3x3x3 stride-1 window reaches one position past the tile on each side), of which the tile
    keeps its own part. Each element's sum is the one :func:`scatter_winners` adds, in the same order. The arrays
    are read, and the box laid out, in the caller's memory order: (n, c, *box) channels-first, so that a tile's
    ``dout`` and winners are contiguous runs and its part of ``dx`` rows of a plane.
    """
    dx = empty_channels_last(x_shape, dtype, channels_first)
    axes = geom.axes
    # (N, C, *spatial) views in memory order where channels-first, as given otherwise
    memory = [_memory_order(a, channels_first) for a in (dx, dout, winners)]

    def work(tile: PoolTile, scratch: Scratch) -> None:
        dx_m, dout_m, winners_m = memory
        inp, out = (_memory_order_index(i, channels_first) for i in (tile.inp(), tile.out()))
        dxt = dx_m[inp]
        n, c = tile.images.stop - tile.images.start, tile.channels.stop - tile.channels.start
        frame = _frame(axes, tile_key(tile), n, c, channels_first)
        if frame is None:  # no window reads this tile
            dxt.fill(0)
            return
        w = winners_m[out]
        offsets = scratch.get("offsets", w.shape, np.dtype(np.int64))  # row-major (n, *o, c) or (n, c, *o)
        np.take(frame.shift, w, out=offsets, mode="clip")  # (prod(kernel),)[code] -> each window's winner
        start = functools.reduce(np.add.outer, frame.starts)  # (*o): each window's first position
        offsets += start if channels_first else start[..., None]
        offsets += frame.lanes  # the image and the channel
        sums = np.bincount(offsets.reshape(-1), weights=dout_m[out].reshape(-1), minlength=frame.size)
        np.copyto(dxt, sums.reshape(frame.box)[frame.inner], casting="unsafe")

    tiles = _winner_tiles(x_shape, axes)
    map_blocks(work, tiles, lambda: Scratch(False), max_threads=max_workers())
    return dx


def _memory_order(a: np.ndarray, channels_first: bool) -> np.ndarray:
    """A channels-last view (N, *spatial, C) as (N, C, *spatial), its memory order, where ``channels_first``."""
    return a.transpose(0, a.ndim - 1, *range(1, a.ndim - 1)) if channels_first else a


def _memory_order_index(index: tuple[slice, ...], channels_first: bool) -> tuple[slice, ...]:
    """A channels-last index (images, *spatial, channels) for :func:`_memory_order`'s view."""
    return (index[0], index[-1], *index[1:-1]) if channels_first else index


class _Frame(NamedTuple):
    """Where a tile's winners land in the box its windows span, (n, *box, c) row-major (or (n, c, *box)): a
    winner with code ``k`` of the window at the tile's output ``(o_0, o_1, ...)`` (image ``i``, channel ``j``)
    at ``shift[k] + starts[0][o_0] + starts[1][o_1] + ... + lanes[i, j]``; the tile's inputs are ``inner`` of the
    box."""

    shift: np.ndarray  # (prod(kernel),) int64
    starts: tuple[np.ndarray, ...]  # per axis, (o,) int64
    lanes: np.ndarray  # (n, 1, ..., 1, c) or (n, c, 1, ..., 1) int64
    box: tuple[int, ...]  # (n, *box, c) or (n, c, *box)
    size: int
    inner: tuple[slice, ...]  # (:, *inputs in the box, :) or (:, :, *inputs in the box)


def _relative(axis: Axis, o0: int, o1: int, i0: int, i1: int) -> tuple[int, int, int, int, int]:
    """A tile's outputs ``[o0, o1)`` and inputs ``[i0, i1)`` along ``axis``, in the box they span: the outputs, where
    the first window and the first input lie in the box, the inputs, and the box's size -- from the first of those
    two to the last position a window or the tile reaches."""
    first = o0 * axis.s - axis.lo  # where the tile's first window starts
    begin = min(first, i0)
    size = max(first + (o1 - o0 - 1) * axis.s + axis.extent, i1) - begin
    return o1 - o0, first - begin, i0 - begin, i1 - i0, size


def _frame(axes: tuple[Axis, ...], key: tuple[int, ...], n: int, c: int, channels_first: bool) -> _Frame | None:
    """The frame of a tile with :func:`~im2col_cnn.geometry.tiles.tile_key` ``key`` (None if no window reads it),
    from its ranges relative to its box, which tiles alike share."""
    ranges = [key[4 * a : 4 * a + 4] for a in range(len(axes))]  # (o0, o1, i0, i1) per axis
    if any(o1 <= o0 for o0, o1, _, _ in ranges):
        return None
    relative = tuple(_relative(ax, *r) for ax, r in zip(axes, ranges, strict=True))
    return _shared_frame(axes, relative, n, c, channels_first)


@functools.lru_cache(maxsize=1024)
def _shared_frame(
    axes: tuple[Axis, ...], relative: tuple[tuple[int, ...], ...], n: int, c: int, channels_first: bool
) -> _Frame:
    sizes = tuple(r[4] for r in relative)
    lane = 1 if channels_first else c  # the elements one position of the box takes
    steps = [math.prod(sizes[a + 1 :]) * lane for a in range(len(axes))]  # element strides of the box
    shift = np.zeros((), dtype=np.int64)
    for axis, step in zip(axes, steps, strict=True):
        shift = np.add.outer(shift, np.arange(axis.k, dtype=np.int64) * (axis.d * step))
    starts = tuple(
        (w0 + np.arange(outs, dtype=np.int64) * axis.s) * step
        for axis, (outs, w0, *_), step in zip(axes, relative, steps, strict=True)
    )
    image = math.prod(sizes) * c
    channel = math.prod(sizes) if channels_first else 1
    lanes = np.add.outer(np.arange(n, dtype=np.int64) * image, np.arange(c, dtype=np.int64) * channel)
    ones = (1,) * len(axes)
    inner = tuple(slice(i0, i0 + ins) for _, _, i0, ins, _ in relative)
    if channels_first:
        lanes, box, index = lanes.reshape(n, c, *ones), (n, c, *sizes), (ALL, ALL, *inner)
    else:
        lanes, box, index = lanes.reshape(n, *ones, c), (n, *sizes, c), (ALL, *inner, ALL)
    return _Frame(shift.reshape(-1), starts, lanes, box, n * image, index)


@functools.lru_cache(maxsize=256)
def _winner_tiles(x_shape: tuple[int, ...], axes: tuple[Axis, ...]) -> tuple[PoolTile, ...]:
    """Input tiles whose scratch (:func:`_tile_bytes`) fits three quarters of one thread's (memoized); the rest is
    for what a first call builds besides (the tiles, their frames)."""
    bound = WORKER_SCRATCH_BYTES * 3 // 4
    budget = TILE_BYTES
    while True:
        tiles = input_tiles(x_shape, axes, 8, budget, memo=False)
        if max((_tile_bytes(t, axes) for t in tiles), default=0) <= bound or budget <= bound // 256:
            return tiles
        budget = budget * 7 // 8


def _tile_bytes(tile: PoolTile, axes: tuple[Axis, ...]) -> int:
    """A tile's scratch: 24 bytes per output (int64 offsets; the gradient gathered, then cast to float64) and 8 per
    position of its box (the histogram)."""
    if any(o.stop <= o.start for o, _ in tile.axes):
        return 0
    relative = [_relative(ax, o.start, o.stop, i.start, i.stop) for (o, i), ax in zip(tile.axes, axes, strict=True)]
    lanes = (tile.images.stop - tile.images.start) * (tile.channels.stop - tile.channels.start)
    return lanes * (24 * math.prod(r[0] for r in relative) + 8 * math.prod(r[4] for r in relative))
