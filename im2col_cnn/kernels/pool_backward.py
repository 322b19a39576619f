"""Pooling backward kernels: each window's gradient back onto the input, one input tile at a time.

A tile of ``dx`` gathers from every output window that spans it (:func:`~im2col_cnn.pool_tiles.input_tiles`), so
tiles write disjoint parts of ``dx`` and each element adds its contributions in the same order whatever the
tiling. Max pooling sends a window's gradient where its recorded winner says (a multiply by a mask, never a
select), or, with ``ties='all'``, to every position equal to its maximum, one stride phase of the input at a
time; average pooling spreads it over the kernel columns, then over the kernel rows (separable), or straight
onto the input when windows do not overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..geometry.pool_tiles import ALL, AxisMap, Index, Tile, empty_nhwc, input_tiles, max_workers, tile_key
from ..geometry.windows import WindowGeometry
from ..runtime.parallel import map_blocks
from .pool_forward import Scratch, axis_maps

__all__ = ["scatter_windows"]


def scatter_windows(
    dout: np.ndarray,
    x_shape: tuple[int, int, int, int],
    geom: WindowGeometry,
    kind: str,
    *,
    winners: np.ndarray | None = None,
    x: np.ndarray | None = None,
    peak: np.ndarray | None = None,
    divisor: float | np.ndarray = 1.0,
    dtype: np.dtype,
    nchw: bool,
) -> np.ndarray:
    """Gradient of a pooling layer: ``dout`` (N, Ho, Wo, C) -> ``dx`` (x_shape (N, H, W, C), ``dtype``).

    ``kind='max'`` reads each window's ``winners`` (see :func:`~im2col_cnn.pool_kernels.pool_windows`), or, when
    they are None, sends the gradient to every position of ``x`` (N, H, W, C) equal to the window's ``peak``
    (N, Ho, Wo, C); ``kind='avg'`` spreads ``dout / divisor``. ``dx`` is allocated in the caller's layout (NCHW
    when ``nchw``) and returned as an NHWC view.
    """
    dx = empty_nhwc(x_shape, dtype, nchw)
    rows, cols = axis_maps(geom)

    def work(tile: Tile, scratch: Scratch) -> None:
        _backward_tile(dout, dx, tile, _plan(rows, cols, tile_key(tile)), kind, winners, x, peak, divisor, scratch)

    tiles = input_tiles(x_shape, rows, cols, dtype.itemsize)
    map_blocks(work, tiles, lambda: Scratch(nchw), max_threads=max_workers())
    return dx


Part = tuple[int, int, Index, Index, Index]  # kernel row i, column j, outputs, their inputs in the phase, in the tile


class _Plan(NamedTuple):
    """An input tile's taps, worked out once for all the tiles with the same rows and columns.

    ``phases`` lists, for each stride phase ``(h % sh, w % sw)`` of the tile's inputs, the kernel offsets whose
    taps read it, row-major. ``spread`` tells the separable average-pool gradient whether the column taps and the
    row taps each write every input once (``None`` where windows do not overlap at all).
    """

    row_taps: list
    col_taps: list
    empty: bool  # no window reads this tile
    phases: list[tuple[Index, list[Part]]]  # (the phase's (:, rows, cols) in the tile, its offsets)
    spread: tuple[bool, bool] | None


@lru_cache(maxsize=1024)
def _plan(rows: AxisMap, cols: AxisMap, key: tuple[int, ...]) -> _Plan:
    """The plan of an input tile with :func:`~im2col_cnn.pool_tiles.tile_key` ``key`` (memoized)."""
    r0, r1, i0, i1, q0, q1, j0, j1 = key
    (orows, irows), (ocols, icols) = (slice(r0, r1), slice(i0, i1)), (slice(q0, q1), slice(j0, j1))
    row_taps = rows.taps(orows.start, orows.stop, irows.start, irows.stop)
    col_taps = cols.taps(ocols.start, ocols.stop, icols.start, icols.stop)
    phases = []
    for ph_r, taps_r in _phases(row_taps, rows.s, irows.stop - irows.start).items():
        for ph_c, taps_c in _phases(col_taps, cols.s, icols.stop - icols.start).items():
            parts = [
                (i, j, (ALL, o_r, o_c), (ALL, q_r, q_c), (ALL, in_r, in_c))
                for i, (o_r, q_r, in_r) in taps_r
                for j, (o_c, q_c, in_c) in taps_c
            ]
            phases.append(((ALL, slice(ph_r, None, rows.s), slice(ph_c, None, cols.s)), parts))
    spread = None
    if not (rows.disjoint and cols.disjoint):
        spread = (
            cols.disjoint and cols.covers(ocols.start, ocols.stop, icols.start, icols.stop),
            rows.disjoint and rows.covers(orows.start, orows.stop, irows.start, irows.stop),
        )
    return _Plan(row_taps, col_taps, not any(row_taps) or not any(col_taps), phases, spread)


def _backward_tile(
    dout: np.ndarray,
    dx: np.ndarray,
    tile: Tile,
    plan: _Plan,
    kind: str,
    winners: np.ndarray | None,
    x: np.ndarray | None,
    peak: np.ndarray | None,
    divisor: float | np.ndarray,
    scratch: Scratch,
) -> None:
    dxt = dx[tile.inp()]
    if plan.empty:
        dxt.fill(0)
        return
    g = dout[tile.out()]
    if g.dtype != dxt.dtype:  # dout is cast to x's dtype, a tile at a time
        g = _copy(scratch, "dout", g, dxt.dtype)
    if kind == "avg":
        div = divisor if np.ndim(divisor) == 0 else divisor[tile.rows[0], tile.cols[0]]  # a number or (ho, wo, 1)
        scaled = scratch.get("scaled", g.shape, dxt.dtype)
        np.divide(g, div, out=scaled)  # once: a division costs more than the copies
        if plan.spread is not None:  # overlapping: spread over the columns, then over the rows
            spread = scratch.get("spread", (g.shape[0], g.shape[1], dxt.shape[2], g.shape[3]), dxt.dtype)
            _spread(scaled, spread, plan.col_taps, 2, plan.spread[0])
            _spread(spread, dxt, plan.row_taps, 1, plan.spread[1])
            return

        def value(i: int, j: int, o: Index, at: Index, out: np.ndarray | None) -> np.ndarray:
            """Disjoint windows: each input gets one window's ``g / divisor``."""
            if out is None:
                return scaled[o]
            np.copyto(out, scaled[o])
            return out

    else:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum only costs the exact slow path
            finite = bool(np.isfinite(g.sum()))
        equal = scratch.get("equal", g.shape, np.dtype(bool))
        product = scratch.get("product", g.shape, dxt.dtype)
        wt = None if winners is None else winners[tile.out()]
        xt, pt = (None, None) if winners is not None else (x[tile.inp()], peak[tile.out()])  # type: ignore[index]
        kw = len(plan.col_taps)

        def value(i: int, j: int, o: Index, at: Index, out: np.ndarray | None) -> np.ndarray:
            """``g`` where offset (i, j) holds the window's maximum, else 0 (a multiply by the mask)."""
            es = equal[o]
            if wt is not None:
                np.equal(wt[o], i * kw + j, out=es)
            else:
                np.equal(xt[at], pt[o], out=es)  # type: ignore[index]
            dst = product[o] if out is None else out
            if finite:
                return np.multiply(g[o], es, out=dst)
            return _select(g[o], es, dst, scratch)  # rare: inf * 0 would be NaN

    _scatter_phases(dxt, plan.phases, value, scratch)


Value = Callable[[int, int, Index, Index, "np.ndarray | None"], np.ndarray]


def _scatter_phases(dxt: np.ndarray, phases: list[tuple[Index, list[Part]]], value: Value, scratch: Scratch) -> None:
    """``dxt`` (n, h, w, c) = the sum of each kernel offset's ``value`` placed where its taps read.

    With stride s, the inputs ``h = q*s + phase`` of one phase are read only by the kernel rows of that phase, at
    consecutive outputs. So each phase (of rows and of columns) adds its offsets' values, shifted, into one
    contiguous buffer, and writes the strided phase of ``dxt`` once (directly when one offset covers it all),
    instead of adding every offset into strided ``dxt``. Each element adds its offsets in row-major order.
    """
    for index, parts in phases:
        view = dxt[index]  # (n, h/sh, w/sw, c)
        if not parts:
            view.fill(0)
            continue
        i, j, o, q, at = parts[0]
        if len(parts) == 1 and view[q].shape == view.shape:  # one offset writes the whole phase
            value(i, j, o, at, view)
            continue
        acc = view if index[1].step == index[2].step == 1 else scratch.get("phase", view.shape, dxt.dtype)
        acc.fill(0)
        for i, j, o, q, at in parts:
            a = acc[q]
            np.add(a, value(i, j, o, at, None), out=a)
        if acc is not view:
            np.copyto(view, acc)


Tap = tuple[slice, slice, slice]  # (outputs, the phase's inputs, the tile's inputs)


def _phases(taps: list, s: int, size: int) -> dict[int, list[tuple[int, Tap]]]:
    """The taps by phase: ``{phase: [(t, (out slice, slice of the phase's inputs, input slice))]}``."""
    phases: dict[int, list[tuple[int, Tap]]] = {p: [] for p in range(min(s, size))}
    for t, tap in enumerate(taps):
        if tap is not None:
            out, inp = tap
            q = inp.start // s  # the phase's inputs are inp.start % s + q*s
            phases[inp.start % s].append((t, (out, slice(q, q + out.stop - out.start), inp)))
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


def _spread(src: np.ndarray, dst: np.ndarray, taps: list, axis: int, assign: bool) -> None:
    """Add ``src`` onto ``dst`` through the taps along ``axis`` (1: rows, 2: columns); ``assign`` when the taps
    write every element of ``dst`` once."""
    if not assign:
        dst.fill(0)
    for tap in taps:
        if tap is not None:
            d, v = dst[(slice(None),) * axis + (tap[1],)], src[(slice(None),) * axis + (tap[0],)]
            if assign:
                np.copyto(d, v)
            else:
                np.add(d, v, out=d)
