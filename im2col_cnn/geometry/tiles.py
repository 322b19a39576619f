"""The tiles the kernels work through: blocks of the output (or input) grid sized for the cache and the workspace.

Convolutions (:func:`conv_tiles`) work through the ``(N, *out)`` output grid: blocks of whole images holding about
``BLOCK_BYTES`` of columns (and at least ``MIN_TILES`` blocks where the batch allows, one for each core of a
larger machine) while one image's scratch fits the workspace limit -- tiles that depend only on the
shapes, never on the limit, so every matrix product has the same shape and results are bitwise identical for
every limit. Only an image whose own scratch exceeds the limit is split: into blocks along its first spatial
axis, and where a single position of that axis does not fit, along the next axis, and so on.

Pooling (:func:`output_tiles`, :func:`input_tiles`) works through tiles of ``(images, *spatial, channels)``
holding about ``TILE_BYTES`` of input: the forward passes through tiles of the output (each reads the input it
needs), the backward passes through tiles of the input (each gathers from the outputs whose windows touch it).
Either way every tile writes its own disjoint part of the result and every element is computed by the same
operations in the same order whatever the tiling, so results never depend on the tile size, the workspace limit
or the number of threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import product
from typing import NamedTuple

from ..runtime.workspace import BLOCK_BYTES, MIN_WORKSPACE
from .windows import Axis

__all__ = [
    "Tile",
    "Scratch",
    "conv_tiles",
    "even_blocks",
    "image_by_image",
    "image_of",
    "opens_image",
    "spread_images",
    "MIN_TILES",
    "tile_sizes",
    "TILE_BYTES",
    "PoolTile",
    "output_tiles",
    "input_tiles",
    "tile_key",
]

Scratch = Callable[[int, Sequence[int]], int]
"""Bytes of scratch a tile of ``images`` and ``sizes`` output positions per axis needs."""


class Tile(NamedTuple):
    """One block of the ``(N, *out)`` output grid: images, and output positions per spatial axis."""

    images: slice
    box: tuple[slice, ...]


def tile_sizes(tile: Tile) -> tuple[int, tuple[int, ...]]:
    """(images, output positions per axis) of a tile."""
    return tile.images.stop - tile.images.start, tuple(s.stop - s.start for s in tile.box)


def _largest(fits: Callable[[int], bool], upper: int) -> int:
    """The largest ``v`` in ``[1, upper]`` with ``fits(v)`` (``fits`` is monotone), or 1 when none fits."""
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


MIN_TILE_POSITIONS = 512
"""A tile whose columns exceed ``BLOCK_BYTES`` is split further only while it holds more output positions than this:
smaller tiles make the products too small. (A 3-D float64 volume's plane of 32x32 outputs, 864 columns each, is
7 MiB: two threads' tiles of that size fell out of the cache, and the C8 case's float64 forward ran no faster on 2
cores than on 1; halves of the plane scale.)"""


MIN_TILES = 16
"""A batch of whole-image tiles is cut into at least this many where it has the images (each tile keeping
``MIN_TILE_POSITIONS`` output positions), so that a machine with many cores has a tile for each: tiles are what
the engine's threads share out, each product running on one thread. A constant, not the thread count, so that
the tiles still depend on the shapes alone. (Bounded by ``BLOCK_BYTES`` alone, the 1x1 C6 case made 2 tiles and
the C3 case 10: at most 2 and 10 busy cores, however many a machine has.)"""


def spread_images(n: int, positions: int, min_tiles: int = MIN_TILES) -> int:
    """The most images a whole-image tile of a batch of ``n`` (each of ``positions`` output positions) may hold
    for the batch to make ``min_tiles`` tiles -- but at least enough for ``MIN_TILE_POSITIONS`` positions."""
    return max(1, -(-n // max(1, min_tiles)), -(-MIN_TILE_POSITIONS // max(1, positions)))


def conv_tiles(
    n: int,
    out_shape: tuple[int, ...],
    cols_image_bytes: int,
    scratch: Scratch,
    limit: int,
    *,
    block_bytes: int = BLOCK_BYTES,
    min_tiles: int = MIN_TILES,
) -> list[Tile]:
    """Split the ``(N, *out)`` output grid into the tiles a convolution processes one at a time.

    ``scratch(n_b, sizes)`` is all the scratch a tile of ``n_b`` images and ``sizes`` output positions per axis
    needs (monotone in each); ``cols_image_bytes`` is one image's column matrix. The tiles hold at most
    ``block_bytes`` (``BLOCK_BYTES``) of columns and ``MIN_WORKSPACE`` of scratch, so that each thread's tile stays
    in cache: blocks of whole images (at least one, and at most :func:`spread_images`, so that the batch makes
    ``min_tiles`` tiles where it can) while one image's columns fit the block and its scratch the limit; else
    each image split along its first spatial axis into nearly equal blocks that fit, and where one position of
    that axis does not fit, along the next axis -- either way they depend only on the shapes, never on the limit.
    Only a tile of ``MIN_TILE_POSITIONS`` output positions or fewer may exceed the block (smaller tiles make the
    products too small): as large as ``limit`` holds, and at least one output position.
    """
    if n == 0:
        return []
    per_image = scratch(1, out_shape)
    full = tuple(slice(0, o) for o in out_shape)
    positions = math.prod(out_shape)
    if cols_image_bytes <= block_bytes and per_image <= limit:
        # Neither term depends on the limit (which is >= MIN_WORKSPACE): the same tiles for every limit.
        step = min(block_bytes // max(cols_image_bytes, 1), MIN_WORKSPACE // max(per_image, 1))
        step = max(1, min(step, spread_images(n, positions, min_tiles)))
        return [Tile(slice(n0, min(n, n0 + step)), full) for n0 in range(0, n, step)]

    def fits(sizes: Sequence[int]) -> bool:  # shapes only (the same tiles for every limit) unless a tile of
        # MIN_TILE_POSITIONS positions or fewer still exceeds the block: then as large as the limit holds
        cols = cols_image_bytes * math.prod(sizes) // positions
        if cols <= block_bytes and scratch(1, sizes) <= min(MIN_WORKSPACE, limit):  # (a limit is >= MIN_WORKSPACE)
            return True
        return math.prod(sizes) <= MIN_TILE_POSITIONS and scratch(1, sizes) <= limit

    return _split(n, out_shape, fits)


def image_of(tile: Tile) -> int:
    """The image a tile of a split image belongs to (its first, for a tile of whole images)."""
    return tile.images.start


def opens_image(tile: Tile) -> bool:
    """Whether a tile is its image's first (its box starts at the origin)."""
    return all(s.start == 0 for s in tile.box)


def image_by_image(tiles: Sequence[Tile], threads: int) -> list[Tile]:
    """The order for ``threads`` threads to take the tiles of split images in: with several, from each image in
    turn -- the first tile of every image, then the second of every image, and so on, each image's tiles in
    their order -- so that threads taking them one after another work on different images, whose tiles they can
    add into the result at once; with one, as they are (neighbouring tiles share their borders in the cache)."""
    if threads <= 1:
        return list(tiles)
    places: dict[int, int] = {}
    keyed = []
    for index, tile in enumerate(tiles):
        place = places.get(image_of(tile), 0)
        places[image_of(tile)] = place + 1
        keyed.append((place, index))
    return [tiles[index] for _, index in sorted(keyed)]


def _split(n: int, out_shape: tuple[int, ...], fits: Callable[[Sequence[int]], bool]) -> list[Tile]:
    """Every image split along its first spatial axis into the largest blocks that ``fits`` (a monotone test of a
    tile's output sizes), and where one position of that axis does not fit, along the next axis, and so on."""
    full = tuple(slice(0, o) for o in out_shape)
    ndim = len(out_shape)
    for axis in range(ndim):
        inner = out_shape[axis + 1 :]
        if axis < ndim - 1 and not fits((1,) * (axis + 1) + inner):
            continue  # one position of this axis is too much: split the next axis too
        step = _largest(lambda v, a=axis, r=inner: fits((1,) * a + (v,) + r), out_shape[axis])
        # As even as possible (no block larger than `step`): tiles of unequal size stall the threads, which hand
        # on their parts in tile order (a 1-D float64 signal of 1024 split as 910 + 114: the large tiles all went
        # to one thread, the weight gradient 1.1 times faster on 2 threads than on 1)
        blocks = even_blocks(out_shape[axis], step)
        rest = full[axis + 1 :]
        return [
            Tile(slice(i, i + 1), (*(slice(j, j + 1) for j in outer), slice(b0, b1), *rest))
            for i, *outer in product(range(n), *(range(o) for o in out_shape[:axis]))
            for b0, b1 in blocks
        ]
    raise AssertionError("unreachable: the last axis always splits")


TILE_BYTES = 2**21
"""Target size of the input one pooling tile reads (forward) or writes (backward): 2 MiB.

Measured on 2 cores (float32, 2 threads): against 1 MiB, P2 max forward 8.9 -> 5.7 ms and P1 max forward 2.3 ->
1.7 ms, as each tile's many ufunc calls cost less per element; from 4 MiB on, a P2 max tile's intermediates
outgrow the cache (14.5 ms on one thread against 8.0). Pooling tiles are not cut to ``MIN_TILES`` as the
convolutions' are, for the same reason: the A2 case's adaptive max forward took 3.7 ms on one core in 7 tiles
and 4.4-4.6 in 16, the P1 max backward 3.0-3.4 and 3.6-3.7."""


@dataclass(frozen=True)
class PoolTile:
    """One pooling tile: images, per spatial axis its outputs and the inputs they touch, and channels."""

    images: slice
    axes: tuple[tuple[slice, slice], ...]  # per axis: (outputs, inputs)
    channels: slice

    @cached_property
    def key(self) -> tuple[int, ...]:
        """Its output and input range per axis, flat: what the plan of its taps depends on."""
        return tuple(v for o, i in self.axes for v in (o.start, o.stop, i.start, i.stop))

    def out(self) -> tuple[slice, ...]:
        """The tile's part of the (N, *out, C) output."""
        return self._out

    def inp(self) -> tuple[slice, ...]:
        """The tile's part of the (N, *spatial, C) input."""
        return self._inp

    def out_box(self) -> tuple[slice, ...]:
        return self._out[1:-1]

    @cached_property
    def _out(self) -> tuple[slice, ...]:
        return (self.images, *(o for o, _ in self.axes), self.channels)

    @cached_property
    def _inp(self) -> tuple[slice, ...]:
        return (self.images, *(i for _, i in self.axes), self.channels)


def tile_key(tile: PoolTile) -> tuple[int, ...]:
    """What a tile's plan depends on: its output and input range per axis."""
    return tile.key


def even_blocks(total: int, step: int) -> list[tuple[int, int]]:
    """``[0, total)`` in blocks of at most ``step``, as even as possible, the larger ones first (the kernels size
    each thread's scratch by the first block)."""
    count = -(-total // max(1, step))
    size, larger = divmod(total, max(1, count))
    return [(b * size + min(b, larger), (b + 1) * size + min(b + 1, larger)) for b in range(count)]


def _steps(shape: tuple[int, ...], extents: tuple[int, ...], itemsize: int, budget: int) -> tuple[int, ...]:
    """``(images, *inputs per axis, channels)`` per tile: whole images when one fits the ``budget`` (bytes); else
    blocks along the first spatial axis, splitting a later axis only when about twice the window span of the
    earlier axes over all of it does not fit, and the channels only when one window's taps over all channels do
    not.

    Twice the span: a tile as deep as one window along an earlier axis has one output there, and its later axes'
    windows are reduced over inputs its neighbours read again. A 5x5x5 stride-1 pooling of (1, 16, 256, 256, 64)
    float64 cut 8,192 tiles of 1x1x159 outputs, each reading 23 times as many inputs as it wrote outputs (1.35 s
    a forward pass); at twice the span, 1,248 tiles of about 4x5x43, 3.4 times (0.38 s)."""
    n, *spatial, c = shape
    image = math.prod(spatial) * c * itemsize
    if image <= budget:
        return (max(1, budget // max(1, image)), *spatial, c)
    c_step = min(c, max(1, budget // (math.prod(extents) * itemsize)))
    reach = [min(size, 2 * e - 1) for size, e in zip(spatial, extents, strict=True)]
    steps: list[int] = []
    for axis in reversed(range(len(spatial))):
        below = math.prod(reach[:axis]) * math.prod(steps) * c_step * itemsize
        steps.insert(0, min(spatial[axis], max(1, budget // below)))
    return (1, *steps, c_step)


def _sized(x_shape: tuple[int, ...], axes: tuple[Axis, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shape and window extents that size the tiles: along an axis with more outputs than inputs (adaptive
    pooling to a larger size) the outputs, each one position of a window, else the inputs."""
    n, *spatial, c = x_shape
    sizes = tuple(max(size, a.out) for a, size in zip(axes, spatial, strict=True))
    extents = tuple(1 if a.out > size else a.extent for a, size in zip(axes, spatial, strict=True))
    return (n, *sizes, c), extents


def output_tiles(
    x_shape: tuple[int, ...], axes: tuple[Axis, ...], itemsize: int, budget: int | None = None
) -> tuple[PoolTile, ...]:
    """Tiles of the (N, *out, C) output, each with the input range its windows read per axis (about ``budget``
    bytes of it, default ``TILE_BYTES``)."""
    return _output_tiles(x_shape, axes, itemsize, TILE_BYTES if budget is None else budget)


@lru_cache(maxsize=256)
def _output_tiles(x_shape: tuple[int, ...], axes: tuple[Axis, ...], itemsize: int, budget: int) -> tuple[PoolTile, ...]:
    n, *spatial, c = x_shape
    n_step, *steps, c_step = _steps(*_sized(x_shape, axes), itemsize, budget)
    per_axis = [
        a.out if step >= max(size, a.out) else step if a.out > size else max(1, (step - a.extent) // a.s + 1)
        for a, step, size in zip(axes, steps, spatial, strict=True)
    ]
    blocks = [even_blocks(a.out, p) for a, p in zip(axes, per_axis, strict=True)]
    tiles = []
    for (n0, n1), *ranges, (c0, c1) in product(even_blocks(n, n_step), *blocks, even_blocks(c, c_step)):
        pairs = tuple((slice(o0, o1), slice(*a.in_range(o0, o1))) for a, (o0, o1) in zip(axes, ranges, strict=True))
        tiles.append(PoolTile(slice(n0, n1), pairs, slice(c0, c1)))
    return tuple(tiles)


def input_tiles(
    x_shape: tuple[int, ...], axes: tuple[Axis, ...], itemsize: int, budget: int | None = None, *, memo: bool = True
) -> tuple[PoolTile, ...]:
    """Tiles of the (N, *spatial, C) input (about ``budget`` bytes each, default ``TILE_BYTES``), each with the
    outputs whose windows span it per axis; memoized unless ``memo`` is False (a caller trying several budgets)."""
    make = _input_tiles if memo else _input_tiles.__wrapped__
    return make(x_shape, axes, itemsize, TILE_BYTES if budget is None else budget)


@lru_cache(maxsize=256)
def _input_tiles(x_shape: tuple[int, ...], axes: tuple[Axis, ...], itemsize: int, budget: int) -> tuple[PoolTile, ...]:
    n, *spatial, c = x_shape
    n_step, *steps, c_step = _steps(*_sized(x_shape, axes), itemsize, budget)
    blocks = [
        even_blocks(size, step if a.out <= size else max(1, step * size // a.out))
        for a, size, step in zip(axes, spatial, steps, strict=True)
    ]
    tiles = []
    for (n0, n1), *ranges, (c0, c1) in product(even_blocks(n, n_step), *blocks, even_blocks(c, c_step)):
        pairs = tuple((slice(*a.out_range(i0, i1)), slice(i0, i1)) for a, (i0, i1) in zip(axes, ranges, strict=True))
        tiles.append(PoolTile(slice(n0, n1), pairs, slice(c0, c1)))
    return tuple(tiles)
