"""Column matrices built and scattered back one output tile at a time (the conv kernels' inner loops).

A tile is a block of images and output positions (:class:`~im2col_cnn.geometry.tiles.Tile`). Its windows read a
slab of the input: a view of the input itself where the slab lies inside it and the input is channels-last in
memory, else a zero-padded channels-last copy of just that slab (:func:`stage`) -- so no padded copy of a whole
image and no channels-last copy of a whole channels-first array is ever made. Arrays are ``(N, *spatial, C)``
views with 1 to 3 spatial axes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import pairwise, product

import numpy as np

from ..geometry.tiles import Tile, tile_sizes
from ..geometry.windows import Tap, WindowGeometry, window_view
from ..runtime.layout import caller_layout, copy_rows
from ..runtime.workspace import Buffers

__all__ = [
    "ALL",
    "grouped_weights",
    "fill_outside",
    "stage",
    "contiguous",
    "tile_columns",
    "tile_rows",
    "tile_source",
    "scatter_tile",
    "shift",
    "gather_taps",
    "plane_columns",
    "scatter_taps",
]

ALL = slice(None)


def grouped_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """(*kernel, C_in_g, C_out) -> (G, prod(kernel)*C_in_g, C_out_g): group g's weight matrix, the partner of the
    group-major columns.

    A view where ``w``'s memory allows (a channels-last ``w``), else a copy laid out as C-ordered or F-ordered
    matrices -- whichever reads ``w`` along the faster of its two channel axes (the products take either). A
    transposed view (PyTorch's weights, a flipped kernel) copied in C order reads a channel a whole weight row
    apart at every step and misses the cache: the flipped 3x3x512x512 float32 kernel took 5.3 ms so, 0.5 this
    way (PyTorch's layout: 4.6 and 1.0).
    """
    *kernel, c_in_g, c_out = w.shape
    nd = len(kernel)
    # (*kernel, C_in_g, G, C_out_g) -> (G, *kernel, C_in_g, C_out_g)
    mat = w.reshape(*kernel, c_in_g, groups, c_out // groups).transpose(nd + 1, *range(nd + 1), nd + 2)
    if not _one_run(mat.shape[1:-1], mat.strides[1:-1]):
        order = (0, nd + 2, *range(1, nd + 2)) if _fortran(w) else tuple(range(nd + 3))  # memory order of the copy
        copy = np.empty([mat.shape[i] for i in order], dtype=w.dtype)
        np.copyto(copy, mat.transpose(order))
        mat = copy.transpose(np.argsort(order))
    return mat.reshape(groups, -1, c_out // groups)  # a view: (*kernel, C_in_g) are one run of memory


def _fortran(w: np.ndarray) -> bool:
    """Whether ``w`` (*kernel, C_in_g, C_out) copies faster into F-ordered matrices ``(C_out, *kernel, C_in_g)`` than
    into C-ordered ones: where one order's innermost axis is a long contiguous run of ``w`` (16 entries or more)
    and the other's is not, that one (a flipped channels-last kernel: F); else the one whose outermost axis is the
    one ``w`` steps through slowest, so that the copy reads ``w`` block by block (PyTorch's weights: C_out
    outermost, F; their flipped kernel: its first axis outermost, C)."""

    def long_run(axis: int) -> bool:
        return abs(w.strides[axis]) == w.itemsize and w.shape[axis] >= 16

    if long_run(-2) != long_run(-1):
        return long_run(-2)
    slowest = max(range(w.ndim), key=lambda a: abs(w.strides[a]) if w.shape[a] > 1 else -1)
    return slowest == w.ndim - 1


def _one_run(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether axes of ``shape`` and ``strides`` can merge into one without a copy (a C-ordered run of memory)."""
    dims = [(n, s) for n, s in zip(shape, strides, strict=True) if n != 1]
    if any(n == 0 for n, _ in dims):
        return True
    return all(s0 == n1 * s1 for (_, s0), (n1, s1) in pairwise(dims))


def fill_outside(arr: np.ndarray, inner: Sequence[tuple[int, int]], value: float = 0.0, first_axis: int = 1) -> None:
    """Fill ``arr`` with ``value`` outside the box ``inner`` (``(lo, hi)`` per axis from ``first_axis`` on).

    Only the border strips are written, each once: along each axis, what lies before and after the box, with the
    earlier axes already restricted to it.
    """
    for strip in _border(tuple(map(tuple, inner)), arr.shape[first_axis : first_axis + len(inner)], first_axis):
        arr[strip] = value


@lru_cache(maxsize=1024)
def _border(
    inner: tuple[tuple[int, int], ...], sizes: tuple[int, ...], first_axis: int
) -> tuple[tuple[slice, ...], ...]:
    """The index of each border strip of :func:`fill_outside` (worked out once per shape)."""
    lead = (ALL,) * first_axis
    strips = []
    for axis, (lo, hi) in enumerate(inner):
        within = tuple(slice(a, b) for a, b in inner[:axis])
        if lo > 0:
            strips.append((*lead, *within, slice(0, lo)))
        if hi < sizes[axis]:
            strips.append((*lead, *within, slice(hi, None)))
    return tuple(strips)


def stage(x: np.ndarray, images: slice, extent: Sequence[tuple[int, int]], buf: np.ndarray) -> np.ndarray:
    """``x[images, *extent]`` as a channels-last contiguous copy in ``buf``, zeros where the extent leaves ``x``.

    ``x`` is (N, *spatial, C) in any memory layout (a channels-first array's transposed view is read block by
    block here); ``extent`` is ``(lo, hi)`` per spatial axis and may reach past the input into the padding.
    Returns the ``(n_b, *(hi - lo), C)`` slab, a view of ``buf``.
    """
    c = x.shape[-1]
    n_b = images.stop - images.start
    sizes = tuple(hi - lo for lo, hi in extent)
    slab = buf[: n_b * math.prod(sizes) * c].reshape(n_b, *sizes, c)
    clipped = [(max(lo, 0), min(hi, size)) for (lo, hi), size in zip(extent, x.shape[1:-1], strict=True)]
    if any(b <= a for a, b in clipped):  # the tile's windows read only padding
        slab.fill(0)
        return slab
    inner = [(a - lo, b - lo) for (a, b), (lo, _) in zip(clipped, extent, strict=True)]
    fill_outside(slab, inner)
    copy_rows(slab[(ALL, *(slice(a, b) for a, b in inner))], x[(images, *(slice(a, b) for a, b in clipped))])
    return slab


def contiguous(a: np.ndarray, bufs: Buffers, name: str, capacity: int = 0) -> np.ndarray:
    """``a`` itself if C-contiguous, else a copy of it in buffer ``name`` (made by :func:`copy_rows`; ``capacity``
    as in :meth:`~im2col_cnn.runtime.workspace.Buffers.get`)."""
    if a.flags.c_contiguous:
        return a
    copy = bufs.get(name, a.shape, capacity)
    copy_rows(copy, a)
    return copy


def tile_rows(a: np.ndarray, tile: Tile, bufs: Buffers, name: str) -> np.ndarray:
    """``a[tile]`` (n_b, *sizes, C) as an (n_b*prod(sizes), C) matrix: a view where ``a`` allows, else a copy."""
    block = contiguous(a[(tile.images, *tile.box)], bufs, name)
    return block.reshape(-1, block.shape[-1])  # (n_b, *sizes, C) -> (m, C)


def tile_channel_rows(a: np.ndarray, tile: Tile, bufs: Buffers, name: str) -> np.ndarray:
    """``a[tile]`` of a channels-first array ``a`` seen channels-last (N, *spatial, C) as a (C, n_b*prod(sizes))
    matrix -- the transpose of :func:`tile_rows` -- copied along the channels' planes, in runs of the last axis
    (about a plain copy's cost, where :func:`tile_rows` reads one element per plane at a time: several times
    it); one whole image's planes are a view."""
    block = caller_layout(a[(tile.images, *tile.box)], True)  # (n_b, C, *sizes)
    c = block.shape[1]
    if block.shape[0] == 1 and block.flags.c_contiguous:
        return block.reshape(c, -1)  # (1, C, *sizes) -> (C, m), no copy
    rows = bufs.get(name, (c, block.shape[0], *block.shape[2:]))
    np.copyto(rows, block.swapaxes(0, 1))  # (n_b, C, *sizes) -> (C, n_b, *sizes)
    return rows.reshape(c, -1)  # -> (C, m)


def tile_columns(
    x: np.ndarray, geom: WindowGeometry, tile: Tile, largest: Tile, bufs: Buffers, groups: int = 1
) -> np.ndarray:
    """The column matrix of ``x`` (N, *spatial, C) for the windows of one output ``tile``.

    ``cols`` is ``(n_b*prod(sizes), prod(kernel)*C)``, its columns in ``(*taps, c)`` order -- or, with ``groups``
    G > 1, in group-major ``(g, *taps, c_g)`` order, so that group g's columns are the contiguous
    ``cols.reshape(m, G, -1)[:, g]``. ``x`` may be in any memory layout. Where the windows reach into the padding
    (or ``x`` is not channels-last in memory), they are read from a zero-padded slab of just the tile
    (:func:`stage`). ``cols`` lives in ``bufs`` ('cols', and 'slab'), sized on first use for the ``largest``
    tile; a pointwise geometry gives a view of ``x`` itself where ``x`` is channels-last in memory.
    """
    c = x.shape[-1]
    k = geom.taps * c
    n_b, sizes = tile_sizes(tile)
    m = n_b * math.prod(sizes)
    if geom.is_pointwise:
        src = x[(tile.images, *tile.box)]  # (n_b, *sizes, C)
        if src.flags.c_contiguous:
            return src.reshape(m, c)  # (n_b, *sizes, C) -> (m, C), no copy
    n0, sizes0 = tile_sizes(largest)
    view = window_view(tile_source(x, geom, tile, largest, bufs), geom, sizes)  # (n_b, *sizes, *kernel, C)
    cols = bufs.get("cols", (m, k), n0 * math.prod(sizes0) * k)
    if groups == 1:
        np.copyto(cols.reshape(view.shape), view)
    else:  # (n_b, *sizes, *kernel, G, C_g) -> (n_b, *sizes, G, *kernel, C_g)
        nd = geom.ndim
        grouped = view.reshape(*view.shape[:-1], groups, c // groups)
        order = (*range(1 + nd), 1 + 2 * nd, *range(1 + nd, 1 + 2 * nd), 2 + 2 * nd)
        grouped = grouped.transpose(order)
        np.copyto(cols.reshape(grouped.shape), grouped)
    return cols  # (n_b*prod(sizes), prod(kernel)*C)


def tile_source(x: np.ndarray, geom: WindowGeometry, tile: Tile, largest: Tile, bufs: Buffers) -> np.ndarray:
    """What the windows of ``tile`` read: ``(n_b, *span, C)``, its ``[:, 0, ..., 0]`` the first window's first
    input -- a view of ``x`` where the windows lie inside it and ``x`` is channels-last in memory, else a
    zero-padded channels-last copy of just that slab (:func:`stage`, in buffer 'slab', sized for ``largest``)."""
    c = x.shape[-1]
    extent = geom.span(tile.box)
    inside = all(lo >= 0 and hi <= size for (lo, hi), size in zip(extent, geom.in_shape, strict=True))
    last = x.strides[-1] == x.itemsize or c == 1
    if inside and (last or geom.taps == 1):
        return x[(tile.images, *(slice(lo, hi) for lo, hi in extent))]
    n0 = tile_sizes(largest)[0]
    room = n0 * math.prod(hi - lo for lo, hi in geom.span(largest.box)) * c
    return stage(x, tile.images, extent, bufs.get("slab", (room,), room))


def scatter_tile(
    cols: np.ndarray,
    geom: WindowGeometry,
    tile: Tile,
    target: np.ndarray,
    origin: Sequence[int] | None = None,
    groups: int = 1,
    *,
    fresh: bool = False,
) -> np.ndarray:
    """Adjoint of :func:`tile_columns`: add each column entry back where it was read from.

    ``cols`` is ``(n_b*prod(sizes), prod(kernel)*C)`` for the windows of ``tile`` (group-major with ``groups``
    > 1); ``target`` (n_b, *t, C) holds the tile's images, its ``[:, 0, ..., 0]`` at input position ``origin``
    (default: the input's origin), and covers every input position the tile's windows read; entries read from
    the padding are dropped. One strided slice-add per kernel offset. Returns ``target``.

    ``fresh`` says that ``target`` is exactly the tile's whole images and holds nothing yet: then, in each phase
    of the stride, the first offset that reaches every position of that phase is copied rather than added (no
    zero-filling, one pass less), and only phases without one are zeroed.
    """
    n_b, sizes = tile_sizes(tile)
    nd = geom.ndim
    c = target.shape[-1]
    if groups == 1:
        cols_v = cols.reshape(n_b, *sizes, *geom.kernel, c)  # (m, K) -> (n_b, *sizes, *kernel, C)
        dst = target
    else:  # (m, G*K_g) -> (n_b, *sizes, G, *kernel, C_g) -> (n_b, *sizes, *kernel, G, C_g)
        cols_v = cols.reshape(n_b, *sizes, groups, *geom.kernel, -1)
        cols_v = cols_v.transpose(*range(1 + nd), *range(2 + nd, 2 + 2 * nd), 1 + nd, 2 + 2 * nd)
        dst = target.reshape(*target.shape[:-1], groups, c // groups)  # (n_b, *t, G, C_g)
    origin = (0,) * nd if origin is None else tuple(origin)
    per_axis = geom.axis_taps(tile.box)
    firsts: set[tuple[int, ...]] = set()
    if fresh:
        # An offset reaches every position of a phase exactly when each of its taps does along its axis, so the
        # first such offset (row-major) is the first such tap of each axis.
        full = [
            _full_taps(taps, a.s, size) for taps, a, size in zip(per_axis, geom.axes, target.shape[1:-1], strict=True)
        ]
        for combo in product(*(sorted(f.items()) for f in full)):
            taps = tuple(t for _, t in combo)
            if None in taps:
                dst[(ALL, *(slice(ph, None, a.s) for (ph, _), a in zip(combo, geom.axes, strict=True)))] = 0
            else:
                firsts.add(taps)  # type: ignore[arg-type]
        for taps in sorted(firsts):  # copied first: then every other offset adds
            found = [per_axis[a][t] for a, t in enumerate(taps)]
            d = dst[(ALL, *(shift(f[1], o) for f, o in zip(found, origin, strict=True)))]  # type: ignore[index]
            np.copyto(d, cols_v[(ALL, *(f[0] for f in found), *taps)])  # type: ignore[index]
    for combo, out_box, in_box in geom.offsets(tile.box):
        if combo in firsts:
            continue
        d = dst[(ALL, *(shift(s, o) for s, o in zip(in_box, origin, strict=True)))]
        d += cols_v[(ALL, *out_box, *combo)]
    return target


def _full_taps(taps: tuple[Tap | None, ...], step: int, size: int) -> dict[int, int | None]:
    """Per phase of an axis of ``size`` positions and stride ``step``: the first tap whose input slice is every
    ``step``-th position of the phase, or None."""
    result: dict[int, int | None] = {}
    for phase in range(min(step, size)):
        stop = phase + (len(range(phase, size, step)) - 1) * step + 1
        result[phase] = next(
            (t for t, s in enumerate(taps) if s is not None and (s[1].start, s[1].stop) == (phase, stop)), None
        )
    return result


def shift(s: slice, origin: int) -> slice:
    """``s`` moved back by ``origin`` positions."""
    return slice(s.start - origin, s.stop - origin, s.step)


def gather_taps(
    x: np.ndarray, geom: WindowGeometry, dst_of: Callable[[tuple[int, ...]], np.ndarray], first_axis: int, value: float
) -> None:
    """Copy the windows of a whole batch ``x``, one kernel offset at a time, into ``dst_of(taps)``.

    ``x`` has its spatial axes from ``first_axis`` on (1: channels-last (N, *spatial, C); 2: channels-first
    (N, C, *spatial)); ``dst_of(taps)`` is the destination of one offset, shaped like ``x`` with the output sizes
    in place of the spatial ones. Positions whose offset falls in the padding get ``value``. One strided copy per
    offset, no padded copy of ``x``.
    """
    lead = (ALL,) * first_axis
    reads = {taps: (out_box, in_box) for taps, out_box, in_box in geom.offsets()}
    for taps in product(*(range(k) for k in geom.kernel)):
        dst = dst_of(taps)
        if taps not in reads:  # this offset reads only padding
            dst.fill(value)
            continue
        out_box, in_box = reads[taps]
        fill_outside(dst, [(s.start, s.stop) for s in out_box], value, first_axis)
        dst[(*lead, *out_box)] = x[(*lead, *in_box)]


def plane_columns(planes: np.ndarray, geom: WindowGeometry, cols: np.ndarray, *, channel_major: bool) -> np.ndarray:
    """``colsᵀ`` of channel planes: ``planes`` (n_b, C, *spatial) -> ``cols`` (prod(kernel)*C, n_b, P), written in
    place and returned, rows ``(*taps, c)`` -- or ``(c, *taps)`` with ``channel_major`` (the row order of PyTorch's
    weights). One strided copy of the planes per kernel offset (:func:`gather_taps`); padding reads as 0."""
    n_b, c = planes.shape[:2]
    if channel_major:  # offset `taps`: (C, n_b, *out), seen as (n_b, C, *out) like the planes
        rows = cols.reshape(c, *geom.kernel, n_b, *geom.out_shape)
        gather_taps(planes, geom, lambda taps: rows[(ALL, *taps)].swapaxes(0, 1), 2, 0.0)
    else:
        rows = cols.reshape(*geom.kernel, c, n_b, *geom.out_shape)
        gather_taps(planes, geom, lambda taps: rows[taps].swapaxes(0, 1), 2, 0.0)
    return cols


def scatter_taps(
    src_of: Callable[[tuple[int, ...]], np.ndarray], geom: WindowGeometry, dx: np.ndarray, first_axis: int
) -> np.ndarray:
    """Adjoint of :func:`gather_taps`: ``dx`` (zeroed here) gets each offset's ``src_of(taps)`` added where that
    offset read; what was read from the padding is dropped. One strided slice-add per kernel offset."""
    lead = (ALL,) * first_axis
    dx.fill(0)
    for taps, out_box, in_box in geom.offsets():
        d = dx[(*lead, *in_box)]
        d += src_of(taps)[(*lead, *out_box)]
    return dx
