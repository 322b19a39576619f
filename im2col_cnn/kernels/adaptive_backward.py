"""Adaptive pooling's backward kernels: each tile of ``dx`` gathers from the windows that cover it.

A position is covered by one window along each axis except where consecutive windows overlap, so the bulk is one
gather per axis and the overlapping positions are added in afterwards (:meth:`AdaptiveAxis.owners
<im2col_cnn.geometry.adaptive.AdaptiveAxis.owners>`). Average pooling spreads ``dout / count`` axis by axis; max
pooling keeps ``dout`` where the covering window's winner is that position -- where one image's winners fit a
thread's scratch, each window's ``dout`` is added at its winner instead
(:mod:`~im2col_cnn.kernels.winner_scatter`). Tiles
(:func:`~im2col_cnn.geometry.tiles.input_tiles`) write disjoint parts of ``dx``, so results do not depend on them
or on the threads.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np

from ..geometry.adaptive import AdaptiveAxis, WindowCounts
from ..geometry.tiles import PoolTile, input_tiles
from ..runtime.layout import empty_channels_last
from ..runtime.parallel import map_blocks
from .adaptive import _planes, _shape_along, _take, adaptive_tile_bytes
from .pool_plan import ALL, Scratch, max_workers
from .winner_scatter import few_winners, scatter_few_winners, scatter_winners, winner_scatter_fits

__all__ = ["adaptive_scatter"]


def adaptive_scatter(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    axes: tuple[AdaptiveAxis, ...],
    kind: str,
    *,
    winners: np.ndarray | None,
    counts: float | WindowCounts | None,
    dtype: np.dtype,
    channels_first: bool,
) -> np.ndarray:
    """Gradient of an adaptive pooling: ``dout`` (N, *out, C) -> ``dx`` (``x_shape`` (N, *spatial, C), ``dtype``),
    allocated in the caller's layout and returned as a channels-last view. ``'avg'`` spreads ``dout / counts``;
    ``'max'`` sends each window's ``dout`` to its ``winners`` position."""
    # Gathering per covering window costs about one pass per combination of the windows covering a position;
    # routing from the windows' side, a few passes per combination of taps: the cheaper one.
    by_window = 2 * math.prod(a.extent for a in axes) < math.prod(a.mean_coverage for a in axes)
    if kind == "max" and not by_window:  # each window's gradient added at its winner
        if winner_scatter_fits(x_shape, dout.shape):
            return scatter_winners(dout, x_shape, winners, dtype=dtype, channels_first=channels_first)  # type: ignore[arg-type]
        if few_winners(x_shape, dout.shape):  # a global max pooling of large images, say
            return scatter_few_winners(dout, x_shape, winners, dtype=dtype, channels_first=channels_first)  # type: ignore[arg-type]
    dx = result = empty_channels_last(x_shape, dtype, channels_first)
    if channels_first:  # the same memory as (N*C, *spatial, 1) planes where every array is laid out so
        planes = [_planes(a) for a in (dx, dout, *([winners] if winners is not None else []))]
        if all(p is not None for p in planes):
            dx, dout, *rest = planes  # type: ignore[assignment]
            winners = rest[0] if rest else None
            x_shape = dx.shape

    def work(tile: PoolTile, scratch: Scratch) -> None:
        dxt = dx[tile.inp()]
        g = dout[tile.out()]
        if kind == "max" and by_window:  # many windows per position, few positions per window (upsampling)
            _route_by_window(g, winners[tile.out()], dxt, tile, axes)  # type: ignore[index]
            return
        owners = [axis.owners(i.start, i.stop, o.start) for axis, (o, i) in zip(axes, tile.axes, strict=True)]
        if kind == "avg":
            scaled = scratch.get("scaled", g.shape, dtype)
            np.divide(g, counts if isinstance(counts, float) else counts[tile.out_box()], out=scaled)  # type: ignore[index]
            _spread(scaled, dxt, owners, scratch)
        else:
            _route(g, winners[tile.out()], dxt, owners, tile, axes, scratch)  # type: ignore[index]

    tiles = input_tiles(x_shape, axes, dtype.itemsize, adaptive_tile_bytes())  # type: ignore[arg-type]
    map_blocks(work, tiles, lambda: Scratch(False), max_threads=max_workers())
    return result


def _spread(src: np.ndarray, dxt: np.ndarray, owners: list, scratch: Scratch) -> None:
    """``dxt`` = the sum over the windows covering each position of their ``src`` value, one axis at a time (the
    last first): each position takes its first window's value, and the positions two windows share add the
    second's (and so on)."""
    nd = len(owners)
    for a in reversed(range(nd)):
        lead = (ALL,) * (a + 1)
        size = dxt.shape[a + 1]
        shape = (*src.shape[: a + 1], size, *dxt.shape[a + 2 :])
        dst = dxt if a == 0 else scratch.get(f"spread{a}", shape, dxt.dtype)
        (covered, first), *more = owners[a]
        if isinstance(covered, slice):
            _take(src, first, a + 1, dst)
        else:  # some positions no window covers (a stride longer than the windows): they get 0
            dst.fill(0)
            dst[(*lead, covered)] = _take(src, first, a + 1)
        for positions, windows in more:
            part = dst[(*lead, positions)]  # a copy: advanced indexing
            part += _take(src, windows, a + 1)
            dst[(*lead, positions)] = part
        src = dst


def _route(
    g: np.ndarray,
    win: np.ndarray,
    dxt: np.ndarray,
    owners: list,
    tile: PoolTile,
    axes: tuple[AdaptiveAxis, ...],
    scratch: Scratch,
) -> None:
    """``dxt`` = for each position, the ``g`` of every window covering it whose winner it is.

    For each combination of covering windows (the first along every axis, then the ones that share positions),
    ``g`` and the winners are gathered onto the positions they cover, and ``g`` is kept where the winner is the
    position's own flat index.
    """
    nd = len(axes)
    finite = bool(np.isfinite(g).all())
    here = [np.arange(i.start, i.stop, dtype=np.intp) for _, i in tile.axes]
    everywhere = all(isinstance(o[0][0], slice) for o in owners)  # every position has a covering window
    if not everywhere:
        dxt.fill(0)
    for combo in product(*(range(len(o)) for o in owners)):
        value, code, index = g, win, []
        flat = np.zeros((1,) * (nd + 2), dtype=np.intp)
        for a, u in enumerate(combo):
            positions, windows = owners[a][u]
            value = _take(value, windows, a + 1)
            code = _take(code, windows, a + 1)
            rows = here[a][positions]
            flat = flat * axes[a].size + rows.reshape(_shape_along(nd, a, rows.size))
            index.append(positions)
        mask = code == flat
        routed = np.multiply(value, mask) if finite else np.where(mask, value, 0).astype(value.dtype)
        if everywhere and all(u == 0 for u in combo):
            np.copyto(dxt, routed)
            continue
        # every spatial axis indexed by an array (np.ix_), so that the indexed axes stay in place
        grids = np.ix_(*(np.arange(dxt.shape[a + 1]) if isinstance(p, slice) else p for a, p in enumerate(index)))
        dxt[(ALL, *grids, ALL)] += routed


def _route_by_window(g: np.ndarray, win: np.ndarray, dxt: np.ndarray, tile: PoolTile, axes: tuple) -> None:
    """``dxt`` = for each position, the ``g`` of every window whose winner it is -- from the windows' side: for
    each combination of taps (one per axis, of the longest windows), ``g`` where the tap is the window's winner,
    summed over the windows whose tap is the same position (consecutive windows: ``np.add.reduceat`` along each
    axis) and added there. A window shorter than the tap repeats its last input: such taps are left out."""
    nd = len(axes)
    per_axis = [axis.taps(o.start, o.stop, i.start) for axis, (o, i) in zip(axes, tile.axes, strict=True)]
    dxt.fill(0)
    for combo in product(*per_axis):
        flat = np.zeros((1,) * (nd + 2), dtype=np.intp)
        keep: np.ndarray | bool = True
        for a, (index, valid) in enumerate(combo):
            shape = _shape_along(nd, a, index.size)
            flat = flat * axes[a].size + (index + tile.axes[a][1].start).reshape(shape)
            if valid is not None:
                keep = keep & valid.reshape(shape)
        routed = np.where((win == flat) & keep, g, 0).astype(g.dtype, copy=False)
        places = []
        for a, (index, _) in enumerate(combo):
            starts = np.flatnonzero(np.diff(index, prepend=index[0] - 1))  # where the tap moves to a new input
            routed = np.add.reduceat(routed, starts, axis=a + 1)
            inside = (index[starts] >= 0) & (index[starts] < dxt.shape[a + 1])  # windows reaching past the tile
            if not inside.all():
                routed = _take(routed, np.flatnonzero(inside), a + 1)
            places.append(index[starts][inside])
        dxt[(ALL, *np.ix_(*places), ALL)] += routed
