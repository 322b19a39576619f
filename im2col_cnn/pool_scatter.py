"""Pooling backward kernels: each window's gradient back onto the input, one input tile at a time.

A tile of ``dx`` gathers from every output window that spans it (:func:`~im2col_cnn.pool_tiles.input_tiles`), so
tiles write disjoint parts of ``dx`` and each element adds its contributions in the same order whatever the
tiling. Max pooling sends a window's gradient where its recorded winner says (a multiply by a mask, never a
select), or, with ``ties='all'``, to every position equal to its maximum; average pooling spreads it over the
kernel columns, then over the kernel rows (separable), or straight onto the input when windows do not overlap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .pool_kernels import Scratch, axis_maps
from .pool_tiles import AxisMap, Tile, empty_nhwc, input_tiles
from .windows import WindowGeometry

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
    scratch = Scratch(nchw)
    for tile in input_tiles(x_shape, rows, cols, dtype.itemsize):
        _backward_tile(dout, dx, tile, rows, cols, kind, winners, x, peak, divisor, scratch)
    return dx


def _backward_tile(
    dout: np.ndarray,
    dx: np.ndarray,
    tile: Tile,
    rows: AxisMap,
    cols: AxisMap,
    kind: str,
    winners: np.ndarray | None,
    x: np.ndarray | None,
    peak: np.ndarray | None,
    divisor: float | np.ndarray,
    scratch: Scratch,
) -> None:
    (orows, irows), (ocols, icols) = tile.rows, tile.cols
    dxt = dx[tile.inp()]
    row_taps = rows.taps(orows.start, orows.stop, irows.start, irows.stop)
    col_taps = cols.taps(ocols.start, ocols.stop, icols.start, icols.stop)
    if not any(row_taps) or not any(col_taps):  # no window reads this tile
        dxt.fill(0)
        return
    g = dout[tile.out()]
    if g.dtype != dxt.dtype:  # dout is cast to x's dtype, a tile at a time
        g = _copy(scratch, "dout", g, dxt.dtype)
    if kind == "avg":
        scaled = scratch.get("scaled", g.shape, dxt.dtype)
        np.divide(g, divisor if np.ndim(divisor) == 0 else divisor[orows, ocols], out=scaled)
        if rows.disjoint and cols.disjoint:
            _fill_uncovered(dxt, rows, cols, tile)
            for rt in filter(None, row_taps):
                for ct in filter(None, col_taps):
                    np.copyto(dxt[:, rt[1], ct[1]], scaled[:, rt[0], ct[0]])
            return
        spread = scratch.get("spread", (g.shape[0], g.shape[1], dxt.shape[2], g.shape[3]), dxt.dtype)
        _spread(
            scaled, spread, col_taps, 2, cols.disjoint and cols.covers(ocols.start, ocols.stop, icols.start, icols.stop)
        )
        _spread(
            spread, dxt, row_taps, 1, rows.disjoint and rows.covers(orows.start, orows.stop, irows.start, irows.stop)
        )
        return
    disjoint = rows.disjoint and cols.disjoint
    if disjoint:
        _fill_uncovered(dxt, rows, cols, tile)
    else:
        dxt.fill(0)
    finite = bool(np.isfinite(g.sum()))  # an overflowing sum only sends finite g down the exact slow path
    equal = scratch.get("equal", g.shape, np.dtype(bool))
    product = None if disjoint else scratch.get("product", g.shape, dxt.dtype)
    wt = None if winners is None else winners[tile.out()]
    xt, pt = (None, None) if winners is not None else (x[tile.inp()], peak[tile.out()])  # type: ignore[index]
    for i, rt in enumerate(row_taps):
        for j, ct in enumerate(col_taps):
            if rt is None or ct is None:
                continue
            o, at = (slice(None), rt[0], ct[0]), (slice(None), rt[1], ct[1])
            es, gs, d = equal[o], g[o], dxt[at]
            if wt is not None:
                np.equal(wt[o], i * cols.k + j, out=es)
            else:
                np.equal(xt[at], pt[o], out=es)  # type: ignore[index]
            if not finite:  # rare: inf * 0 would be NaN, so select instead of multiplying
                _put(d, np.where(es, gs, 0), disjoint)
            elif disjoint:
                np.multiply(gs, es, out=d)
            else:
                ps = product[o]  # type: ignore[index]
                np.multiply(gs, es, out=ps)
                np.add(d, ps, out=d)


def _copy(scratch: Scratch, name: str, src: np.ndarray, dtype: np.dtype) -> np.ndarray:
    buf = scratch.get(name, src.shape, dtype)
    np.copyto(buf, src, casting="same_kind")
    return buf


def _put(dst: np.ndarray, src: np.ndarray, assign: bool) -> None:
    if assign:
        np.copyto(dst, src)
    else:
        np.add(dst, src, out=dst)


def _fill_uncovered(dxt: np.ndarray, rows: AxisMap, cols: AxisMap, tile: Tile) -> None:
    """Zero ``dxt`` unless the (disjoint) windows of the tile write every element of it."""
    (orows, irows), (ocols, icols) = tile.rows, tile.cols
    if not (
        rows.covers(orows.start, orows.stop, irows.start, irows.stop)
        and cols.covers(ocols.start, ocols.stop, icols.start, icols.stop)
    ):
        dxt.fill(0)


def _spread(src: np.ndarray, dst: np.ndarray, taps: list, axis: int, assign: bool) -> None:
    """Add ``src`` onto ``dst`` through the taps along ``axis`` (1: rows, 2: columns); ``assign`` when the taps
    write every element of ``dst`` once."""
    at: Callable[[slice], tuple[slice, ...]] = lambda index: (slice(None),) * axis + (index,)  # noqa: E731
    if not assign:
        dst.fill(0)
    for tap in taps:
        if tap is not None:
            _put(dst[at(tap[1])], src[at(tap[0])], assign)
