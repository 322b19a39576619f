"""Pooling backward kernels: each window's gradient back onto the input, one input tile at a time.

A tile of ``dx`` gathers from every output window that spans it (:func:`~im2col_cnn.geometry.tiles.input_tiles`),
so tiles write disjoint parts of ``dx`` and each element adds its contributions in the same order whatever the
tiling. Max pooling sends a window's gradient where its recorded winner says (a multiply by a mask, never a
select), or, with ``ties='all'``, to every position equal to its maximum, one stride phase of the input at a
time; average pooling spreads it over the taps of the last spatial axis, then of each earlier one (separable),
or straight onto the input when windows do not overlap (windows of many taps a few calls at a time,
:mod:`~im2col_cnn.kernels.whole_windows`). Max pooling with recorded winners over windows that overlap, or that
have more than ``TILED_SCATTER_TAPS`` offsets, adds each window's gradient at its winner instead
(:mod:`~im2col_cnn.kernels.winner_scatter`), by blocks of images, or tile by tile of the input where one image's
histogram does not fit a thread's scratch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import product

import numpy as np

from ..geometry import tiles as tiling
from ..geometry.adaptive import WindowCounts
from ..geometry.tiles import PoolTile, input_tiles, tile_key
from ..geometry.windows import Axis, Tap, WindowGeometry
from ..runtime.layout import copies_whole_positions, empty_channels_last
from ..runtime.parallel import map_blocks
from .pool_forward import winner_offsets
from .pool_plan import (
    ALL,
    WORKER_SCRATCH_BYTES,
    Index,
    Scratch,
    TapBounds,
    code_steps,
    converts_tiles,
    max_workers,
    tap_bounds,
    taps_of,
)
from .whole_windows import MANY_TAPS, reduces_whole_windows, spread_whole_windows
from .winner_scatter import scatter_winner_tiles, scatter_winners, winner_scatter_fits

__all__ = ["scatter_windows"]


TILED_SCATTER_TAPS = 9
"""Images too large for one histogram of their winners go through the tiled one
(:func:`~im2col_cnn.kernels.winner_scatter.scatter_winner_tiles`) over windows of more kernel offsets than this;
a window of this many or fewer stays on the pooling kernels, whose passes are per offset. Float32, 1 core, before ->
after: 3x3x3 at stride 1 on (8, 16, 32, 32, 64) 158 -> 53 ms, 5x5x5 on (2, 64, 64, 64, 32) 1617 -> 145 ms; but
3x3 at stride 1 on (16, 112, 112, 64) 52.2 -> 53.5 (2 cores: 28.9 -> 31.0).

Windows that do not overlap take the histograms too where they have more offsets than this. Max pooling's gradient,
float32, 2 cores, before -> after: 100 at stride 100 over (64, 1000, 128) 12.1 -> 1.5 ms, 8x8 at stride 8 over
(32, 56, 56, 64) 6.0-7.4 -> 1.2, 4x4 at stride 4 over the same 3.3 -> 1.9, 10 at stride 10 over (64, 1000, 128)
4.2-5.0 -> 3.8-3.9."""


def scatter_windows(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    geom: WindowGeometry,
    kind: str,
    *,
    winners: np.ndarray | None = None,
    x: np.ndarray | None = None,
    peak: np.ndarray | None = None,
    divisor: float | WindowCounts = 1.0,
    dtype: np.dtype,
    channels_first: bool,
) -> np.ndarray:
    """Gradient of a pooling layer: ``dout`` (N, *out, C) -> ``dx`` (x_shape (N, *spatial, C), ``dtype``).

    ``kind='max'`` reads each window's ``winners`` (see :func:`~im2col_cnn.kernels.pool_forward.pool_windows`),
    or, when they are None, sends the gradient to every position of ``x`` (N, *spatial, C) equal to the window's
    ``peak`` (N, *out, C); ``kind='avg'`` spreads ``dout / divisor``. ``dx`` is allocated in the caller's layout
    and returned as a channels-last view.
    """
    overlap = not all(axis.disjoint for axis in geom.axes)
    # each window's gradient added at its winner: where windows overlap, or have too many offsets to take one by one
    if kind == "max" and winners is not None and (overlap or geom.taps > TILED_SCATTER_TAPS):
        if winner_scatter_fits(x_shape, dout.shape):
            shift, start = winner_offsets(geom)
            return scatter_winners(
                dout, x_shape, winners, shift=shift, start=start, dtype=dtype, channels_first=channels_first
            )  # fmt: skip
        if geom.taps > TILED_SCATTER_TAPS:
            return scatter_winner_tiles(dout, x_shape, winners, geom, dtype=dtype, channels_first=channels_first)
    dx = empty_channels_last(x_shape, dtype, channels_first)
    # channels-first along short rows: each tile's arrays copied channels-last, its gradient copied back (not for
    # windows taken whole: writing a tile back into many planes costs more than spreading it in place)
    convert = converts_tiles(geom, winners is not None, channels_first) and copies_whole_positions(dx)

    def work(tile: PoolTile, scratch: Scratch) -> None:
        plan = _plan(geom.axes, tile_key(tile))
        dxt, g = dx[tile.inp()], dout[tile.out()]
        wt = None if winners is None else winners[tile.out()]
        xt, pt = (x[tile.inp()], peak[tile.out()]) if kind == "max" and winners is None else (None, None)  # type: ignore[index]
        div = divisor if isinstance(divisor, float) else divisor[tile.out_box()]  # a number or (*o, 1)
        if not convert or plan.empty:
            _backward_tile(g, dxt, plan, kind, wt, xt, pt, div, scratch)
            return
        g = _copy(scratch, "dout last", g, dtype)  # the copies in the kernels' layout, dout cast on the way
        wt = None if wt is None else _copy(scratch, "winners last", wt, wt.dtype)
        if xt is not None:
            xt, pt = _copy(scratch, "x last", xt, xt.dtype), _copy(scratch, "peak last", pt, pt.dtype)  # type: ignore[arg-type]
        target = scratch.get("dx last", dxt.shape, dtype)
        _backward_tile(g, target, plan, kind, wt, xt, pt, div, scratch)
        np.copyto(dxt, target)

    cast = dout.dtype != dtype
    bound = WORKER_SCRATCH_BYTES * 3 // 4  # the rest for what a call holds besides the buffers: tiles, plans
    spreads = kind == "avg" and _spreads(geom.axes)
    tiles = _tiles(x_shape, geom.axes, dtype.itemsize, kind, spreads, cast, tiling.TILE_BYTES, bound, convert)
    map_blocks(work, tiles, lambda: Scratch(channels_first and not convert), max_threads=max_workers())
    return dx


@lru_cache(maxsize=256)
def _tiles(
    x_shape: tuple[int, ...],
    axes: tuple[Axis, ...],
    itemsize: int,
    kind: str,
    spreads: bool,
    cast: bool,
    budget: int,
    bound: int,
    convert: bool = False,
) -> tuple[PoolTile, ...]:
    """Input tiles of about ``budget`` bytes, made smaller until every tile's scratch (:func:`_tile_scratch`) fits one
    thread's ``bound`` (memoized).

    A tile's outputs reach past its inputs by the windows' span, and the average-pool gradient's separable spread
    keeps output-sized buffers: a 3x3x3 stride-1 average pooling's gradient of one (1, 64, 512, 512, 8) float64
    volume took 13.9 MiB of scratch on one thread in tiles of 2 MiB (a tile 3 inputs deep and 21 high reads
    outputs 5 deep and 23 high), 23.7 MiB on 4 threads at a 16 MiB workspace limit; 5.3 and 12.4 MiB in tiles
    sized by this rule.
    """
    while True:
        tiles = input_tiles(x_shape, axes, itemsize, budget, memo=False)  # memoized here: the one that fits
        worst = max((_tile_scratch(t, kind, spreads, itemsize, cast, convert) for t in tiles), default=0)
        if worst <= bound or budget <= bound // 256:
            return tiles
        budget = budget * 7 // 8


def _tile_scratch(tile: PoolTile, kind: str, spreads: bool, itemsize: int, cast: bool, convert: bool = False) -> int:
    """The bytes of the scratch buffers :func:`_backward_tile` takes for ``tile`` (at most), ``spreads`` saying
    that an average pooling's gradient spreads axis by axis (:func:`_spreads`), and with ``convert`` those of the
    tile's arrays copied channels-last (``dout`` counted as cast)."""
    n, c = tile.images.stop - tile.images.start, tile.channels.stop - tile.channels.start
    outs = [o.stop - o.start for o, _ in tile.axes]
    ins = [i.stop - i.start for _, i in tile.axes]
    out_size = n * math.prod(outs) * c
    total = out_size * itemsize * (1 + (cast or convert))  # 'scaled' or 'product'; 'dout' cast to dx's dtype
    if convert:  # 'dx last', and max pooling's 'winners last' or 'x last' and 'peak last'
        total += n * math.prod(ins) * c * itemsize + (n * math.prod(ins) * c + out_size) * itemsize * (kind == "max")
    if kind == "avg" and spreads:  # 'spread{a}': outputs before axis a, inputs from it on
        total += sum(n * math.prod(outs[:a]) * math.prod(ins[a:]) * c for a in range(1, len(outs))) * itemsize
    else:
        total += n * math.prod(ins) * c * itemsize  # 'phase'
        if kind == "max":
            total += out_size * (1 + itemsize)  # 'equal'; 'select' (gradients holding inf or NaN)
    return total


Part = tuple[int, Index, Index, Index]  # the offset's winner code, outputs, their inputs in the phase, in the tile


@dataclass(frozen=True, eq=False)
class _Plan:
    """An input tile's taps, worked out once for all the tiles with the same output and input ranges.

    ``phases`` lists, for each stride phase of the tile's inputs (one per axis) that some window reads, the kernel
    offsets whose taps read it, row-major: worked out when first asked for, as the average-pool gradient that
    spreads never does, and windows of 170 taps at stride 170 on two axes have 28,900 phases (37 MiB of plans on a
    (4, 510, 510, 16) batch). ``spread`` tells the separable average-pool gradient, per axis, whether that axis'
    taps write every input once (``None`` where it does not spread, :func:`_spreads`).
    """

    axis_taps: tuple[tuple[Tap | None, ...], ...]
    empty: bool  # no window reads this tile
    spread: tuple[bool, ...] | None
    gaps: bool  # some inputs lie in no phase's taps (a stride longer than the windows): they get 0
    per_axis: tuple[dict[int, list[tuple[int, PhaseTap]]], ...]  # each axis' taps by phase (:func:`_phases`)
    strides: tuple[int, ...]
    kernel: tuple[int, ...]

    @cached_property
    def phases(self) -> list[tuple[Index, list[Part]]]:
        """(the phase's (:, *strided slices) in the tile, its offsets (code, outputs, phase inputs, tile inputs))"""
        steps = code_steps(self.kernel)
        phases = []
        for combo in product(*(sorted(p.items()) for p in self.per_axis)):
            index = (ALL, *(slice(ph, None, s) for (ph, _), s in zip(combo, self.strides, strict=True)))
            parts = [
                (
                    sum(t * step for (t, _), step in zip(chosen, steps, strict=True)),
                    (ALL, *(tap[0] for _, tap in chosen)),
                    (ALL, *(tap[1] for _, tap in chosen)),
                    (ALL, *(tap[2] for _, tap in chosen)),
                )
                for chosen in product(*(taps for _, taps in combo))
            ]
            phases.append((index, parts))
        return phases


def _spreads(axes: tuple[Axis, ...]) -> bool:
    """Whether the average-pool gradient spreads each window's value axis by axis (:func:`_spread`): where windows
    overlap, or where an axis has the taps of windows reduced whole, which :func:`_spread` writes a few calls at a
    time (disjoint windows otherwise go phase by phase, a call per tap)."""
    return not all(ax.disjoint for ax in axes) or any(reduces_whole_windows(ax) for ax in axes)


@lru_cache(maxsize=4096)
def _plan(axes: tuple[Axis, ...], key: tuple[int, ...]) -> _Plan:
    """The plan of an input tile with :func:`~im2col_cnn.geometry.tiles.tile_key` ``key``.

    Plans are memoized by what they depend on relative to the tile -- each axis' taps, strides and kernel, the
    tile's size, which axes' windows spread over every input --, so that tiles alike share one plan: a large
    image's interior tiles, which are most of them (a 3x3x3 stride-1 average pooling's gradient over one (1, 64,
    512, 512, 8) float64 volume built a plan per tile, 550 of them, when keyed by each tile's absolute ranges).
    This lookup is memoized too, by the tile's key (a small entry: the key and the shared plan).
    """
    ranges = [key[4 * a : 4 * a + 4] for a in range(len(axes))]  # (o0, o1, i0, i1) per axis
    axis_taps = tuple(ax.taps(*r) for ax, r in zip(axes, ranges, strict=True))
    spread = None
    if _spreads(axes):
        spread = tuple(ax.disjoint and ax.covers(*r) for ax, r in zip(axes, ranges, strict=True))
    sizes = tuple(i1 - i0 for _, _, i0, i1 in ranges)
    return _shared_plan(tap_bounds(axis_taps), tuple(ax.s for ax in axes), sizes, tuple(ax.k for ax in axes), spread)


@lru_cache(maxsize=1024)
def _shared_plan(
    bounds: TapBounds,
    strides: tuple[int, ...],
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    spread: tuple[bool, ...] | None,
) -> _Plan:
    axis_taps = taps_of(bounds)
    per_axis = tuple(_phases(taps, s, size) for taps, s, size in zip(axis_taps, strides, sizes, strict=True))
    gaps = any(len(p) < min(s, size) for p, s, size in zip(per_axis, strides, sizes, strict=True))
    return _Plan(axis_taps, any(not any(t) for t in axis_taps), spread, gaps, per_axis, strides, kernel)


def _backward_tile(
    g: np.ndarray,
    dxt: np.ndarray,
    plan: _Plan,
    kind: str,
    wt: np.ndarray | None,
    xt: np.ndarray | None,
    pt: np.ndarray | None,
    div: float | np.ndarray,
    scratch: Scratch,
) -> None:
    """One input tile's gradient ``dxt`` from its outputs' ``g`` (and their winners ``wt``, or their inputs ``xt``
    and maxima ``pt`` with every tie winning); ``div`` is its part of the average's divisor."""
    if plan.empty:
        dxt.fill(0)
        return
    if g.dtype != dxt.dtype:  # dout is cast to x's dtype, a tile at a time
        g = _copy(scratch, "dout", g, dxt.dtype)
    if kind == "avg":
        scaled = scratch.get("scaled", g.shape, dxt.dtype)
        np.divide(g, div, out=scaled)  # once: a division costs more than the copies
        if plan.spread is not None:  # overlapping: spread over the last axis' taps, then each earlier axis'
            src = scaled
            nd = len(plan.axis_taps)
            for axis in reversed(range(nd)):
                shape = (*g.shape[: axis + 1], *dxt.shape[axis + 1 :])  # outputs before the axis, inputs from it
                dst = dxt if axis == 0 else scratch.get(f"spread{axis}", shape, dxt.dtype)
                _spread(src, dst, plan.axis_taps[axis], axis + 1, plan.spread[axis])
                src = dst
            return

        def value(code: int, o: Index, at: Index, out: np.ndarray | None) -> np.ndarray:
            """Disjoint windows: each input gets one window's ``g / divisor``."""
            if out is None:
                return scaled[o]
            np.copyto(out, scaled[o])
            return out

    else:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum only costs the exact slow path
            finite = bool(np.isfinite(g.sum()))
        equal = scratch.get("equal", g.shape, np.dtype(bool))
        product_ = scratch.get("product", g.shape, dxt.dtype)

        def value(code: int, o: Index, at: Index, out: np.ndarray | None) -> np.ndarray:
            """``g`` where the offset of winner ``code`` holds the window's maximum, else 0 (a multiply by the
            mask)."""
            es = equal[o]
            if wt is not None:
                np.equal(wt[o], code, out=es)
            else:
                np.equal(xt[at], pt[o], out=es)  # type: ignore[index]
            dst = product_[o] if out is None else out
            if finite:
                return np.multiply(g[o], es, out=dst)
            return _select(g[o], es, dst, scratch)  # rare: inf * 0 would be NaN

    if plan.gaps:  # the inputs no window reads, at once (not a step per phase: a stride of 10**5 has as many)
        dxt.fill(0)
    _scatter_phases(dxt, plan.phases, value, scratch)


Value = Callable[[int, Index, Index, "np.ndarray | None"], np.ndarray]


def _scatter_phases(dxt: np.ndarray, phases: list[tuple[Index, list[Part]]], value: Value, scratch: Scratch) -> None:
    """``dxt`` (n, *spatial, c) = the sum of each kernel offset's ``value`` placed where its taps read.

    With stride s, the inputs ``q*s + phase`` of one phase are read only by the taps of that phase, at consecutive
    outputs. So each phase (one per axis) adds its offsets' values, shifted, into one contiguous buffer, and writes
    the strided phase of ``dxt`` once (directly when one offset covers it all), instead of adding every offset into
    strided ``dxt``. Each element adds its offsets in row-major order.
    """
    for index, parts in phases:
        view = dxt[index]  # (n, *spatial/s, c)
        code, o, q, at = parts[0]
        if len(parts) == 1 and view[q].shape == view.shape:  # one offset writes the whole phase
            value(code, o, at, view)
            continue
        contiguous = all(s.step == 1 for s in index[1:])
        acc = view if contiguous else scratch.get("phase", view.shape, dxt.dtype)
        acc.fill(0)
        for code, o, q, at in parts:
            a = acc[q]
            np.add(a, value(code, o, at, None), out=a)
        if acc is not view:
            np.copyto(view, acc)


PhaseTap = tuple[slice, slice, slice]  # (outputs, the phase's inputs, the tile's inputs)


def _phases(taps: tuple[Tap | None, ...], s: int, size: int) -> dict[int, list[tuple[int, PhaseTap]]]:
    """The taps by phase: ``{phase: [(t, (out slice, slice of the phase's inputs, input slice))]}``, for the
    phases that some tap reads (of ``min(s, size)``; with a stride longer than the window, most are read by
    none)."""
    phases: dict[int, list[tuple[int, PhaseTap]]] = {}
    for t, tap in enumerate(taps):
        if tap is not None:
            out, inp = tap
            q = inp.start // s  # the phase's inputs are inp.start % s + q*s
            phases.setdefault(inp.start % s, []).append((t, (out, slice(q, q + out.stop - out.start), inp)))
    return phases


def _select(g: np.ndarray, mask: np.ndarray, out: np.ndarray, scratch: Scratch) -> np.ndarray:
    """``out`` = ``g`` where ``mask``, else +0, exactly for any ``g`` (inf and NaN too): the bits of ``g`` ANDed
    with a mask of all ones or all zeros."""
    bits = np.dtype(f"u{g.dtype.itemsize}")
    ones = scratch.get("select", g.shape, bits)
    np.negative(mask, out=ones, dtype=bits)  # True -> all ones, False -> 0
    np.bitwise_and(g.view(bits), ones, out=out.view(bits))
    return out


def _copy(scratch: Scratch, name: str, src: np.ndarray, dtype: np.dtype) -> np.ndarray:
    buf = scratch.get(name, src.shape, dtype)
    np.copyto(buf, src, casting="same_kind")
    return buf


def _spread(src: np.ndarray, dst: np.ndarray, taps: tuple, axis: int, assign: bool) -> None:
    """Add ``src`` onto ``dst`` through the taps along array axis ``axis``; ``assign`` when the taps write every
    element of ``dst`` once."""
    if len(taps) >= MANY_TAPS and spread_whole_windows(src, dst, taps, axis, assign):
        return
    if not assign:
        dst.fill(0)
    for tap in taps:
        if tap is not None:
            d, v = dst[(ALL,) * axis + (tap[1],)], src[(ALL,) * axis + (tap[0],)]
            if assign:
                np.copyto(d, v)
            else:
                np.add(d, v, out=d)
