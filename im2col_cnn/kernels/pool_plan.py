"""What the pooling kernels share: each thread's scratch, the plan of a tile's taps, the winners' codes, the
ufunc settings they run under, and the forward pass's tile size and layout (:func:`forward_tile_bytes`,
:func:`converts_tiles`).

Pooling is separable: a window's maximum (or sum) is the maximum over its taps along the first spatial axis of
the maximum over the next axis, and so on. Each tile's taps are worked out once (:func:`tile_plan`, memoized) for
every tile, and every call, with the same output and input ranges.

A max window's winner is recorded as its kernel offset's row-major code ``Σ t_a * step_a`` (``step_a`` the
product of the later axes' kernel sizes: ``i*kw + j`` in 2-D), in the smallest unsigned type that holds
``prod(kernel)``, whose largest value is a sentinel (:func:`code_dtype`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import product

import numpy as np

from ..geometry import tiles as tiling
from ..geometry.tiles import TILE_BYTES
from ..geometry.windows import Axis, Tap, WindowGeometry
from ..runtime.layout import empty_channels_last
from ..runtime.workspace import get_workspace_limit
from .whole_windows import LONG_WINDOW_CHANNELS, whole_windows_in_tiles

__all__ = [
    "ALL",
    "Index",
    "Offset",
    "Scratch",
    "TapBounds",
    "TilePlan",
    "tile_plan",
    "tap_bounds",
    "taps_of",
    "outside",
    "code_dtype",
    "code_steps",
    "max_workers",
    "WORKER_SCRATCH_BYTES",
    "as_code",
    "UFUNC_BUFSIZE",
    "short_ufunc_chunks",
    "converts_tiles",
    "forward_tile_bytes",
]

ALL = slice(None)
Index = tuple[slice, ...]
Offset = tuple[int, Index, Index, list[Index]]  # (code, outputs, their inputs, the outputs outside those)
Codes = np.ndarray | int

WORKER_SCRATCH_BYTES = 4 * TILE_BYTES
"""A bound on one thread's scratch buffers (its tile's intermediates): the workspace limit caps the number of
threads at ``limit // WORKER_SCRATCH_BYTES``, so that pooling's scratch stays within the limit."""

UFUNC_BUFSIZE = 1024
"""Elements per chunk of NumPy's ufunc iteration within the pooling kernels (NumPy's default is 8192)."""


@contextmanager
def short_ufunc_chunks() -> Iterator[None]:
    """Within the block, NumPy's ufuncs iterate in chunks of :data:`UFUNC_BUFSIZE` elements (this thread only).

    A ufunc over a strided view whose contiguous runs are shorter than its buffer (e.g. a tile's rows of ``W*C``
    elements, every ``sh``-th row) gathers several runs into its buffer, a copy per operand; with chunks no longer
    than a run it reads the runs in place (P2 max forward about 10% faster, float32, one thread; P1, whose runs are
    C elements, is 3-15% slower with it, so the disjoint case keeps NumPy's default). Results are the
    same: only the iteration changes, not the operations on each element. ``np.errstate`` scopes the setting to
    this block and thread on NumPy 2; NumPy 1.x keeps it per thread but outside errstate, so it is restored too.
    """
    with np.errstate():
        previous = np.setbufsize(UFUNC_BUFSIZE)
        try:
            yield
        finally:
            np.setbufsize(previous)


def max_workers() -> int:
    """How many threads may work on pooling tiles at once within the workspace limit."""
    return max(1, get_workspace_limit() // WORKER_SCRATCH_BYTES)


class Scratch:
    """One worker's scratch buffers, reused from tile to tile, viewed as (N, *spatial, C) in the call's memory
    layout (channels-first when ``channels_first``)."""

    def __init__(self, channels_first: bool) -> None:
        self.channels_first = channels_first
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            del buf  # freed before its successor is allocated, not after: the two at once would double it
            self._buffers.pop(name, None)
            buf = self._buffers[name] = np.empty(size, dtype=dtype)
        return empty_channels_last(shape, dtype, self.channels_first, buffer=buf)


def as_code(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A bool mask as 0/1 of ``like``'s unsigned dtype: a free view for uint8, else a cast into ``like``."""
    if like.dtype == np.uint8:
        return mask.view(np.uint8)
    np.copyto(like, mask)
    return like


def code_dtype(kernel: Sequence[int]) -> np.dtype:
    """The unsigned type of a window's winner code; its largest value is a sentinel.

    uint8 up to 255 offsets (3x3 and 15x15 kernels alike), wider beyond.
    """
    return np.min_scalar_type(math.prod(kernel))


def code_steps(kernel: Sequence[int]) -> tuple[int, ...]:
    """What one tap along each axis adds to a winner's code: the product of the later axes' kernel sizes."""
    return tuple(math.prod(kernel[a + 1 :]) for a in range(len(kernel)))


def outside(box: Index, sizes: Sequence[int]) -> list[Index]:
    """The parts of an (n, *sizes, c) array outside ``(:, *box)`` (``box`` one slice per leading spatial axis, the
    later axes whole): along each axis, what lies before and after the box, the earlier axes restricted to it."""
    parts = []
    for axis, s in enumerate(box):
        start, stop, _ = s.indices(sizes[axis])
        within = box[:axis]
        if start > 0:
            parts.append((ALL, *within, slice(0, start)))
        if stop < sizes[axis]:
            parts.append((ALL, *within, slice(stop, sizes[axis])))
    return parts


@dataclass(frozen=True)
class TilePlan:
    """An output tile's taps, worked out once for all the tiles with the same output and input ranges.

    ``axis_taps`` are each axis' taps (:meth:`~im2col_cnn.geometry.windows.Axis.taps`, relative to the tile).
    ``lead_offsets`` (code ``t*step_0``: the first axis' taps only) and ``offsets`` (every kernel offset,
    row-major) list the valid taps with the tile-relative outputs they reach, the inputs those read, and the
    outputs outside them. ``first_lead``/``first`` give each output's first valid code -- a broadcastable array
    (1, *o, 1), or one int when all outputs share it. ``rests[a]`` are the outputs that the first valid tap of
    axis ``a`` does not reach, along that axis.
    """

    axis_taps: tuple[tuple[Tap | None, ...], ...]
    lead_offsets: list[Offset]
    first_lead: Codes
    first: Codes
    rests: tuple[list[Index], ...]
    kernel: tuple[int, ...]  # taps per axis
    sizes: tuple[int, ...]  # the tile's outputs per axis

    @cached_property
    def offsets(self) -> list[Offset]:
        """Every kernel offset's valid taps, row-major, built when first asked for: only disjoint windows, windows
        along one axis and windows holding NaN need them, and over a kernel of many offsets (125 for 5x5x5) they
        would be the bulk of every memoized plan (a 5x5x5 stride-1 max pooling's first call on a (2, 64, 64, 64,
        32) float64 batch allocated 15.7 MiB of plans, against 1.4 MiB of arrays)."""
        steps = code_steps(self.kernel)
        offsets = []
        for combo in product(*(range(k) for k in self.kernel)):
            found = [taps[t] for taps, t in zip(self.axis_taps, combo, strict=True)]
            if all(f is not None for f in found):
                out_box = tuple(f[0] for f in found)  # type: ignore[index]
                in_box = tuple(f[1] for f in found)  # type: ignore[index]
                value = sum(t * s for t, s in zip(combo, steps, strict=True))
                offsets.append((value, (ALL, *out_box), (ALL, *in_box), outside(out_box, self.sizes)))
        return offsets


@lru_cache(maxsize=4096)
def tile_plan(axes: tuple[Axis, ...], key: tuple[int, ...], code: np.dtype) -> TilePlan:
    """The :class:`TilePlan` of an output tile with :func:`~im2col_cnn.geometry.tiles.tile_key` ``key``.

    Plans are memoized by what they depend on relative to the tile -- each axis' taps, the first taps of the
    outputs whose windows start in the padding, the tile's size --, so that tiles alike share one plan: the
    interior tiles of a large image, which are most of them (a 3x3x3 stride-1 max pooling of one (1, 64, 512, 512,
    8) float64 volume built a plan per tile, 1,024 of them, 13.7 MiB, when keyed by each tile's absolute ranges;
    now 9). This lookup is memoized too, by the tile's key (a small entry: the key and the shared plan), as
    working out that relative key costs about 25 us a tile, a third of a small call.
    """
    ranges = [key[4 * a : 4 * a + 4] for a in range(len(axes))]  # (o0, o1, i0, i1) per axis
    axis_taps = tuple(ax.taps(*r) for ax, r in zip(axes, ranges, strict=True))
    sizes = tuple(o1 - o0 for o0, o1, _, _ in ranges)
    # each output's first tap: 0 unless its window starts in the padding (o*s < lo)
    firsts = tuple(
        None if o0 * ax.s >= ax.lo else tuple(ax.first_taps(o0, o1).tolist())
        for ax, (o0, o1, _, _) in zip(axes, ranges, strict=True)
    )
    return _tile_plan(tap_bounds(axis_taps), firsts, sizes, tuple(ax.k for ax in axes), code)


TapBounds = tuple[tuple[tuple[tuple[int, int, int], ...] | None, ...], ...]


def tap_bounds(axis_taps: tuple[tuple[Tap | None, ...], ...]) -> TapBounds:
    """Each axis' taps as plain numbers (a key: slices are not hashable before Python 3.12)."""
    return tuple(
        tuple(None if t is None else tuple((s.start, s.stop, s.step) for s in t) for t in taps) for taps in axis_taps
    )


def taps_of(bounds: TapBounds) -> tuple[tuple[Tap | None, ...], ...]:
    """Each axis' taps back from :func:`tap_bounds`."""
    return tuple(tuple(None if t is None else tuple(slice(*b) for b in t) for t in taps) for taps in bounds)  # type: ignore[misc]


@lru_cache(maxsize=1024)
def _tile_plan(
    bounds: TapBounds,
    first_taps: tuple[tuple[int, ...] | None, ...],
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    code: np.dtype,
) -> TilePlan:
    axis_taps = taps_of(bounds)
    steps = code_steps(kernel)
    lead_offsets = [
        (t * steps[0], (ALL, tap[0]), (ALL, tap[1]), outside((tap[0],), sizes))
        for t, tap in enumerate(axis_taps[0])
        if tap is not None
    ]
    nd = len(kernel)
    firsts = []
    for a, taps in enumerate(first_taps):
        shape = [1] * (nd + 2)
        shape[a + 1] = sizes[a]
        values = np.zeros(sizes[a], dtype=np.int64) if taps is None else np.array(taps, dtype=np.int64)
        firsts.append((values * steps[a]).reshape(shape))  # (1, ..., o_a, ..., 1)
    first = sum(firsts[1:], firsts[0])
    rests = tuple(
        outside((ALL,) * a + (next(t for t in taps if t is not None)[0],), sizes) for a, taps in enumerate(axis_taps)
    )
    return TilePlan(axis_taps, lead_offsets, _codes(firsts[0], code), _codes(first, code), rests, kernel, sizes)


def _codes(first: np.ndarray, code: np.dtype) -> Codes:
    return int(first.flat[0]) if first.min() == first.max() else first.astype(code)


def converts_tiles(geom: WindowGeometry, winners: bool, channels_first: bool, x: np.ndarray | None = None) -> bool:
    """Whether a channels-first pooling copies each input tile channels-last, runs there and copies its results
    back: over overlapping windows in 2 dimensions along short rows (at most ``SHORT_ROW`` outputs along the last
    spatial axis where it records winners, ``SHORT_ROW_PLAIN`` otherwise); and, given the forward pass' input
    ``x`` (N, *spatial, C) of ``LONG_WINDOW_CHANNELS`` channels or more, where its tiles would take windows whole
    channels-last (:func:`~im2col_cnn.kernels.whole_windows.whole_windows_in_tiles`). The kernel also keeps in
    place input whose planes alias in the cache, which the copy would read a few channels at a time
    (:func:`~im2col_cnn.runtime.layout.copies_whole_positions`).

    In the caller's layout, that path's ufuncs run along rows of a plane -- 5 elements in the A2 case -- and its
    many calls per tap each pay a loop setup per row. NCHW input, before -> after, minimum of 3 alternated runs,
    float32, 2 cores (1 core): A2 9.7 -> 3.9 ms (18.1 -> 5.7); 3x3 windows at stride 2 on (64, 512, 7, 7) 12.1
    -> 2.3 (23.8 -> 4.1), on (32, 64, 56, 56) (P2) 9.4 -> 8.2 (16.5 -> 13.0); float64 on 2 cores 13.3 -> 5.9,
    13.3 -> 3.9, 14.5 -> 13.6. Where it lost, it stays off: on 3x3x3 windows over (8, 64, 16, 30, 30), float64,
    2 cores, 16.5 -> 25.4 ms, and over (8, 64, 16, 32, 32) (planes 4 KiB apart) 20.1 -> 31.7; on a signal,
    whose single axis takes one pass over the kernel offsets, (256, 256, 60) at stride 2, 2.6 -> 3.8 (float32,
    2 cores); disjoint windows, 2x2 at stride 2 on (64, 128, 28, 28), max 4.0 -> 5.3-5.9 ms, average 1.9 -> 3.9;
    and poolings without winners, which make few calls per tap, on rows longer than ``SHORT_ROW_PLAIN``.
    """
    if not channels_first:
        return False
    if x is not None and x.shape[-1] >= LONG_WINDOW_CHANNELS and whole_windows_in_tiles(geom, x, winners):
        return True
    short = geom.axes[-1].out <= (SHORT_ROW if winners else SHORT_ROW_PLAIN)
    overlapping = not all(a.disjoint for a in geom.axes)
    return short and overlapping and len(geom.axes) == 2


SHORT_ROW = 32
"""The most outputs along the last spatial axis for which :func:`converts_tiles` copies tiles channels-last."""

SHORT_ROW_PLAIN = 8
"""The same for poolings that record no winners (average pooling; max pooling with every tie winning), whose few
calls a tap pay less for rows of a plane: the copies win only on the shortest rows. NCHW, float32, 2 cores,
minimum of 15 calls, before -> after: 3x3 windows at stride 2 on (64, 512, 7, 7) (4 outputs a row) 3.07 -> 1.10
ms, adaptive average pooling of (64, 256, 14, 14) to 5x5 3.18 -> 2.10, 3x3 at stride 2 on (64, 256, 14, 14) (7)
2.24 -> 2.02; but on (32, 64, 56, 56) (28) 3.8 -> 4.4 and 3x3 at stride 1 on (32, 128, 28, 28) 3.3 -> 4.2."""


def forward_tile_bytes(geom: WindowGeometry, winners: bool, converted: bool = False) -> int:
    """The input one forward tile reads: ``TILE_BYTES``, and twice that for max pooling with winners whose first
    axis strides by 2 or more. Tiles ``converted`` channels-last (:func:`converts_tiles`) keep ``TILE_BYTES`` where
    every axis strides by 2 or more and take half of it otherwise, as the copies of the tile and of its results take
    room too (one thread's scratch then measured at most 7.6 MiB, against 13.0 for a 3x3 stride-1 pooling of a
    (1, 16, 1024, 1024) float32 image in whole ``TILE_BYTES`` tiles).

    Recording winners takes about four ufunc calls per tap, many of them over output-sized arrays, and each call
    takes the GIL to start. On several threads a call that finds the GIL held sleeps until woken (on the 2-core
    test host a wake-up takes about 30 us: two threads passing an Event back and forth, 62-66 us a round trip),
    so that tiles of short calls ran no faster on two threads than on one. The A2 case (adaptive max pooling of
    (64, 14, 14, 256) to 5x5, float32) took 2.9-4.1 ms on 2 threads in tiles of 2 MiB, about its time on one;
    2.1-2.2 ms in tiles of 3-6 MiB. Two processes at once, each pooling half the batch on one thread, each took
    as long as one alone. A stride of 2 or more keeps the first axis' intermediates (input / stride) small
    enough that one thread's scratch stays within ``WORKER_SCRATCH_BYTES`` (8 MiB) at twice the size: 6.7 MiB
    at most over the 2-D and 3-D windows of 2 to 4 taps measured (12.5 MiB at four times the size).
    """
    if converted:
        return tiling.TILE_BYTES if min(a.s for a in geom.axes) >= 2 else tiling.TILE_BYTES // 2
    if winners and geom.axes[0].s >= 2:
        return 2 * tiling.TILE_BYTES
    return tiling.TILE_BYTES
