"""Column matrices built and scattered back one output tile at a time (the conv kernels' inner loops).

A tile is a block of ``(images, output rows, output columns)`` (:class:`~im2col_cnn.workspace.Tile`). Its windows
read a slab of the input: a view of the input itself where the slab lies inside it and the input is NHWC in
memory, else a zero-padded NHWC copy of just that slab (:func:`stage`) -- so no padded copy of a whole image
and no NHWC copy of a whole NCHW array is ever made.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..runtime.workspace import Tile

if TYPE_CHECKING:
    from ..geometry.windows import WindowGeometry

__all__ = ["stage", "iter_columns", "scatter_tile", "tile_size"]


def stage(x: np.ndarray, images: slice, extent: tuple[int, int, int, int], buf: np.ndarray) -> np.ndarray:
    """``x[images, r0:r1, c0:c1]`` as an NHWC-contiguous copy in ``buf``, zeros where the extent leaves ``x``.

    ``x`` is (N, H, W, C) in any memory layout (an NCHW array's transposed view is read block by block here);
    ``extent`` is ``(r0, r1, c0, c1)``, which may reach past the input into the padding. Returns the
    ``(n_b, r1 - r0, c1 - c0, C)`` slab, a view of ``buf``.
    """
    _, h, w, c = x.shape
    r0, r1, c0, c1 = extent
    n_b = len(range(images.start, images.stop))
    slab = buf[: n_b * (r1 - r0) * (c1 - c0) * c].reshape(n_b, r1 - r0, c1 - c0, c)
    a0, a1, b0, b1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    if a1 <= a0 or b1 <= b0:  # the tile's windows read only padding
        slab.fill(0)
        return slab
    top, bottom, left, right = a0 - r0, a1 - r0, b0 - c0, b1 - c0
    # Fill only the border strips, then copy the interior once.
    slab[:, :top] = 0
    slab[:, bottom:] = 0
    slab[:, top:bottom, :left] = 0
    slab[:, top:bottom, right:] = 0
    slab[:, top:bottom, left:right] = x[images, a0:a1, b0:b1]
    return slab


def _tile_windows(src: np.ndarray, geom: WindowGeometry, h_b: int, w_b: int) -> np.ndarray:
    """Read-only ``(n_b, h_b, w_b, kh, kw, C)`` windows of ``src``, whose [:, 0, 0] is the tile's first window."""
    s_n, s_h, s_w, s_c = src.strides
    return as_strided(
        src,
        shape=(src.shape[0], h_b, w_b, geom.kh, geom.kw, src.shape[3]),
        strides=(s_n, s_h * geom.sh, s_w * geom.sw, s_h * geom.dh, s_w * geom.dw, s_c),
        writeable=False,
    )


def tile_size(tile: Tile) -> tuple[int, int, int]:
    """(images, rows, columns) of a tile."""
    return tuple(len(range(s.start, s.stop)) for s in tile)  # type: ignore[return-value]


def iter_columns(
    x: np.ndarray, geom: WindowGeometry, tiles: list[Tile], groups: int = 1
) -> Iterator[tuple[Tile, np.ndarray]]:
    """Yield ``(tile, cols)``: the column matrix of ``x`` (N, H, W, C), one output tile at a time.

    ``cols`` is ``(n_b*h_b*w_b, kh*kw*C)`` for the windows of ``tile``, its columns in ``(i, j, c)`` order --
    or, with ``groups`` G > 1, in group-major ``(g, i, j, c_g)`` order, so that group g's columns are the
    contiguous ``cols.reshape(m, G, -1)[:, g]``. ``x`` may be in any memory layout. Where the windows reach
    into the padding (or ``x`` is not NHWC in memory), they are read from a zero-padded slab of just the tile
    (:func:`stage`). ``cols`` lives in a buffer that the next tile overwrites; a pointwise geometry yields
    views of ``x`` itself where ``x`` is NHWC in memory.
    """
    if not tiles:
        return
    c = x.shape[3]
    k = geom.kh * geom.kw * c
    one_tap = geom.kh * geom.kw == 1
    nhwc = x.strides[3] == x.itemsize or c == 1
    cols_buf = slab_buf = None
    for tile in tiles:
        n_b, h_b, w_b = tile_size(tile)
        m = n_b * h_b * w_b
        if geom.is_pointwise:
            src = x[tile.images, tile.rows, tile.cols]  # (n_b, h_b, w_b, C)
            if src.flags.c_contiguous:
                yield tile, src.reshape(m, c)  # (n_b, h_b, w_b, C) -> (m, C), no copy
                continue
        extent = geom.input_extent(tile.rows, tile.cols)
        r0, r1, c0, c1 = extent
        inside = r0 >= 0 and c0 >= 0 and r1 <= geom.in_h and c1 <= geom.in_w
        if inside and (nhwc or one_tap):
            src = x[tile.images, r0:r1, c0:c1]
        else:
            if slab_buf is None:
                n0, h0, w0 = tile_size(tiles[0])
                e = geom.input_extent(slice(0, h0), slice(0, w0))
                slab_buf = np.empty(n0 * (e[1] - e[0]) * (e[3] - e[2]) * c, dtype=x.dtype)
            src = stage(x, tile.images, extent, slab_buf)
        view = _tile_windows(src, geom, h_b, w_b)  # (n_b, h_b, w_b, kh, kw, C)
        if cols_buf is None:
            n0, h0, w0 = tile_size(tiles[0])
            cols_buf = np.empty(n0 * h0 * w0 * k, dtype=x.dtype)
        if groups == 1:
            np.copyto(cols_buf[: m * k].reshape(view.shape), view)
        else:  # (n_b, h_b, w_b, kh, kw, G, C_g) -> (n_b, h_b, w_b, G, kh, kw, C_g)
            grouped = view.reshape(*view.shape[:5], groups, c // groups).transpose(0, 1, 2, 5, 3, 4, 6)
            np.copyto(cols_buf[: m * k].reshape(grouped.shape), grouped)
        yield tile, cols_buf[: m * k].reshape(m, k)  # (n_b*h_b*w_b, kh*kw*C)


def scatter_tile(
    cols: np.ndarray,
    geom: WindowGeometry,
    tile: Tile,
    target: np.ndarray,
    origin: tuple[int, int] = (0, 0),
    groups: int = 1,
    *,
    fresh: bool = False,
) -> np.ndarray:
    """Adjoint of :func:`iter_columns` for one tile: add each column entry back where it was read from.

    ``cols`` is ``(n_b*h_b*w_b, kh*kw*C)`` for the windows of ``tile`` (group-major with ``groups`` > 1);
    ``target`` (n_b, h_t, w_t, C) holds the tile's images, its ``[:, 0, 0]`` at input position ``origin``, and
    covers every input position the tile's windows read; entries read from the padding are dropped. One
    strided slice-add per kernel offset. Returns ``target``.

    ``fresh`` says that ``target`` is exactly the tile's whole images (all of their rows and columns) and holds
    nothing yet: then, in each phase of the stride, the first offset that reaches every position of that phase
    is copied rather than added (no zero-filling, one pass less), and only phases without one are zeroed.
    """
    n_b, h_b, w_b = tile_size(tile)
    c = target.shape[3]
    if groups == 1:
        cols6 = cols.reshape(n_b, h_b, w_b, geom.kh, geom.kw, c)  # (m, kh*kw*C) -> (n_b, h_b, w_b, kh, kw, C)
        dst = target
    else:  # (m, G*kh*kw*C_g) -> (n_b, h_b, w_b, G, kh, kw, C_g) -> (n_b, h_b, w_b, kh, kw, G, C_g)
        cols6 = cols.reshape(n_b, h_b, w_b, groups, geom.kh, geom.kw, -1).transpose(0, 1, 2, 4, 5, 3, 6)
        dst = target.reshape(*target.shape[:3], groups, c // groups)  # (n_b, h_t, w_t, G, C_g)
    o_r, o_c = origin
    firsts: set[tuple[int, int]] = set()
    if fresh:
        # An offset reaches every position of a phase exactly when its row slice and its column slice do, so
        # the first such offset (row-major) pairs the first such kernel row with the first such kernel column.
        h, w = target.shape[1], target.shape[2]
        row_slices, col_slices = geom.axis_slices(tile.rows, tile.cols)
        for ph_r in range(min(geom.sh, h)):
            full_r = _full(row_slices, ph_r, h, geom.sh)
            for ph_c in range(min(geom.sw, w)):
                full_c = _full(col_slices, ph_c, w, geom.sw)
                if full_r is None or full_c is None:
                    dst[:, ph_r :: geom.sh, ph_c :: geom.sw] = 0
                else:
                    firsts.add((full_r, full_c))
        for i, j in sorted(firsts):  # copied first: then every other offset adds
            (orow, irow), (ocol, icol) = row_slices[i], col_slices[j]  # type: ignore[misc]
            np.copyto(dst[:, _shift(irow, o_r), _shift(icol, o_c)], cols6[:, orow, ocol, i, j])
    offsets = geom.offset_slices(tile.rows, tile.cols)
    if o_r or o_c:
        offsets = ((i, j, out, (_shift(irow, o_r), _shift(icol, o_c))) for i, j, out, (irow, icol) in offsets)
    for i, j, (orow, ocol), (irow, icol) in offsets:
        if (i, j) not in firsts:
            dst[:, irow, icol] += cols6[:, orow, ocol, i, j]
    return target


def _full(slices: list[tuple[slice, slice] | None], phase: int, size: int, step: int) -> int | None:
    """The first kernel index whose input slice is every ``step``-th position from ``phase`` on, or None."""
    stop = phase + (len(range(phase, size, step)) - 1) * step + 1
    for k, s in enumerate(slices):
        if s is not None and (s[1].start, s[1].stop) == (phase, stop):
            return k
    return None


def _shift(s: slice, origin: int) -> slice:
    return slice(s.start - origin, s.stop - origin, s.step)
