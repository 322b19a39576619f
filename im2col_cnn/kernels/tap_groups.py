"""Convolutions whose batch makes one tile: the product split by kernel offsets or input channels, so that it runs
on every core.

The engine's threads share out tiles (:func:`~im2col_cnn.geometry.tiles.conv_tiles`), each product on one BLAS
thread, so that results are the same for every thread count. A batch of one tile -- one image, or a few small
ones: the C9 case's image of 7x7 -- would run on one core. Here the reduction of its product is cut into groups of
at least ``MIN_GROUP_COLUMNS`` columns each, and each group's columns are built and multiplied on a thread of its
own:

* forward (:func:`correlate`): ``out = Σ_g cols_g · w_g``, the groups' products added in group order;
* weight gradient (:func:`weight_grad`): group g's rows of ``dw`` are ``cols_gᵀ · dout`` -- nothing to add.

Channels-last, a group is a range of kernel offsets (columns in ``(*taps, c)`` order, from the channels-last slab
of :func:`~im2col_cnn.kernels.columns.tile_source`). Channels-first, with PyTorch's ``(C_out, C_in, *kernel)``
weights, a group is a range of input channels: its columns ``colsᵀ`` ``(c, *taps)`` are strided copies of whole
channel planes, the weights' rows in that order are a view (no copy of the weights, which outweigh the columns
here: the C9 case's 2.4 M against 0.2 M), the products land in the output's planes, and the weight gradient is
made in PyTorch's layout.

The groups depend on the shapes alone: the same results for every thread count and workspace limit. Cutting the
sum over the columns costs little on one core (``(392, 4608) @ (4608, 512)`` in 9 groups: 1.01-1.04x the whole
product); cutting the output channels instead cost 1.05-1.18x, the rows 1.04-1.19x.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..geometry.tiles import MIN_TILES, Tile, even_blocks, tile_sizes
from ..geometry.windows import WindowGeometry, window_view
from ..runtime.layout import caller_layout
from ..runtime.parallel import map_tiles
from ..runtime.workspace import Buffers
from .columns import ALL, grouped_weights, plane_columns, tile_rows, tile_source

__all__ = ["MIN_GROUP_COLUMNS", "Groups", "plan", "rows_by_channel", "correlate", "weight_grad"]

MIN_GROUP_COLUMNS = 512
"""Each group (of kernel offsets or of input channels) spans at least this many columns: narrower products cost
more per flop."""


class Groups(NamedTuple):
    """How a one-tile batch's reduction is cut: ``blocks`` of kernel offsets (flat indices, row-major), or with
    ``by_channel`` of input channels."""

    blocks: list[tuple[int, int]]
    by_channel: bool


def rows_by_channel(w: np.ndarray) -> bool:
    """Whether ``w`` (*kernel, C_in, C_out) steps through its kernel offsets faster than through its input
    channels (PyTorch's ``(C_out, C_in, *kernel)`` seen so): its rows in ``(c, *taps)`` order are then a view."""
    nd = w.ndim - 2
    return all(abs(w.strides[nd]) > abs(st) for st, n in zip(w.strides[:nd], w.shape[:nd], strict=True) if n > 1)


def plan(geom: WindowGeometry, c_in: int, tiles: list[Tile], groups: int, *, by_channel: bool = False) -> Groups | None:
    """The groups (nearly equal, larger first) of a batch that makes one tile -- of input channels with
    ``by_channel`` (a channels-first batch), else of kernel offsets -- or None: several tiles, a grouped
    convolution, or too few columns for two groups."""
    if len(tiles) != 1 or groups != 1 or tiles[0].box != geom.full_box():
        return None
    total, width = (c_in, geom.taps) if by_channel else (geom.taps, c_in)  # groups of what, columns per each
    per_group = -(-MIN_GROUP_COLUMNS // max(width, 1))
    count = min(MIN_TILES, total // per_group)
    if count < 2:
        return None
    return Groups(even_blocks(total, -(-total // count)), by_channel)


def _offset_columns(
    src: np.ndarray, geom: WindowGeometry, group: tuple[int, int], room: int, bufs: Buffers
) -> np.ndarray:
    """The columns of kernel offsets ``group`` of the windows of ``src`` (n_b, *span, C), channels-last:
    ``(m, len(group)*C)``, one strided copy per offset, in buffer 'cols' (at least ``room`` elements)."""
    first, stop = group
    n_b, c = src.shape[0], src.shape[-1]
    view = window_view(src, geom)  # (n_b, *out, *kernel, C)
    cols = bufs.get("cols", (n_b, *geom.out_shape, stop - first, c), room)
    for j, t in enumerate(range(first, stop)):
        offset = np.unravel_index(t, geom.kernel)
        np.copyto(cols[..., j, :], view[(ALL,) * (1 + geom.ndim) + offset])  # (n_b, *out, C)
    return cols.reshape(-1, (stop - first) * c)  # (n_b, *out, g, C) -> (m, g*C)


def _channel_columns(
    planes: np.ndarray, geom: WindowGeometry, group: tuple[int, int], room: int, bufs: Buffers
) -> np.ndarray:
    """``colsᵀ`` of input channels ``group`` of ``planes`` (n_b, C, *spatial): ``(len(group)*taps, n_b, P)``, rows
    ``(c, *taps)``, one strided copy of the group's planes per kernel offset, in buffer 'cols'."""
    c0, c1 = group
    cols = bufs.get("cols", ((c1 - c0) * geom.taps, planes.shape[0], math.prod(geom.out_shape)), room)
    return plane_columns(planes[:, c0:c1], geom, cols, channel_major=True)  # (C_g*taps, n_b, P)


def _threads(x: np.ndarray, src: np.ndarray | None, per_thread: int, shared: int, limit: int) -> int:
    """Threads whose own scratch (``per_thread`` elements each) fits ``limit`` beside ``shared`` elements and the
    staged slab ``src`` (none where it is a view of ``x``)."""
    slab = 0 if src is None or np.may_share_memory(src, x) else src.size
    return max(1, (limit - (slab + shared) * x.itemsize) // max(per_thread * x.itemsize, 1))


def _largest(plan: Groups, m: int, c: int, taps: int) -> int:
    """Elements of the largest group's columns (the first: the groups are larger first)."""
    first, stop = plan.blocks[0]
    return m * (stop - first) * (taps if plan.by_channel else c)


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    tile: Tile,
    plan: Groups,
    bias: np.ndarray | None,
    out: np.ndarray,
    limit: int,
) -> np.ndarray:
    """The forward pass of a one-tile batch: ``x`` (N, *spatial, C_in), ``w`` (*kernel, C_in, C_out) -> ``out``
    (N, *out, C_out), written in place (any memory layout; channels-first with ``plan.by_channel``): Σ over the
    groups, in order, of their products, then the bias."""
    c, c_out, nd = x.shape[-1], w.shape[-1], geom.ndim
    shared = Buffers(x.dtype)
    n_b, sizes = tile_sizes(tile)
    m = n_b * math.prod(sizes)
    if plan.by_channel:  # rows (c, *taps), a view of PyTorch's weights; products per image into the planes
        wm = grouped_weights(w.transpose(nd, *range(nd), nd + 1), 1)[0]  # (C_in*taps, C_out)
        src, planes = None, caller_layout(x, True)  # (N, C_in, *spatial)
        target = caller_layout(out, True).reshape(n_b, c_out, -1)  # (N, C_out, P), a view
        direct, step = True, geom.taps
    else:  # rows (*taps, c), from the channels-last slab
        wm = grouped_weights(w, 1)[0]  # (K, C_out)
        src = tile_source(x, geom, tile, tile, shared)  # (N, *span, C_in): staged once, read by every thread
        direct, step = out.flags.c_contiguous, c
        target = out.reshape(m, c_out) if direct else shared.get("out", (m, c_out))  # (m, C_out)
    room = _largest(plan, m, c, geom.taps)

    def work(group: tuple[int, int], bufs: Buffers) -> np.ndarray:
        part = target if group[0] == 0 else bufs.get("part", target.shape)
        w_g = wm[group[0] * step : group[1] * step]  # (K_g, C_out)
        if plan.by_channel:  # (C_out, K_g) @ (n_b, K_g, P) -> (n_b, C_out, P)
            np.matmul(w_g.T, _channel_columns(planes, geom, group, room, bufs).transpose(1, 0, 2), out=part)
        else:  # (m, K_g) @ (K_g, C_out)
            np.matmul(_offset_columns(src, geom, group, room, bufs), w_g, out=part)
        return part

    def add(group: tuple[int, int], part: np.ndarray, _: Buffers) -> None:
        if group[0]:  # the first group's product is `target` itself
            np.add(target, part, out=target)

    threads = _threads(x, src, room + target.size, 0 if direct else target.size, limit)
    map_tiles(work, plan.blocks, lambda: Buffers(x.dtype), max_threads=threads, then=add)
    if bias is not None:
        target += bias[:, None] if plan.by_channel else bias
    if not direct:
        np.copyto(out, target.reshape(out.shape))  # (m, C_out) -> (N, *out, C_out)
    return out


def weight_grad(
    x: np.ndarray,
    dout: np.ndarray,
    geom: WindowGeometry,
    tile: Tile,
    plan: Groups,
    limit: int,
    c_out_major: bool,
) -> np.ndarray:
    """The weight gradient of a one-tile batch: ``x`` (N, *spatial, C_in), ``dout`` (N, *out, C_out) -> dw (*kernel,
    C_in, C_out), group g's rows ``cols_gᵀ · dout`` made on a thread of their own; laid out ``(C_out, ...)`` in
    memory with ``c_out_major`` (see :func:`~im2col_cnn.kernels.conv.weight_grad`): with ``plan.by_channel``
    (``x`` and ``dout`` channels-first), exactly PyTorch's ``(C_out, C_in, *kernel)``."""
    c, c_out, nd = x.shape[-1], dout.shape[-1], geom.ndim
    k = geom.taps * c
    shared = Buffers(x.dtype)
    n_b, sizes = tile_sizes(tile)
    m = n_b * math.prod(sizes)
    room = _largest(plan, m, c, geom.taps)
    dw = np.empty((c_out, k) if c_out_major else (k, c_out), dtype=x.dtype)
    if plan.by_channel:  # rows (c, *taps): dw is (C_out, C_in*taps), PyTorch's layout
        src, planes = None, caller_layout(x, True)  # (N, C_in, *spatial)
        d_planes = caller_layout(dout, True).reshape(n_b, c_out, -1)  # (N, C_out, P), a view
        d = None
    else:
        src = tile_source(x, geom, tile, tile, shared)  # (N, *span, C_in)
        d = tile_rows(dout, tile, shared, "dout")  # (m, C_out): a copy where dout is not channels-last

    def work(group: tuple[int, int], bufs: Buffers) -> None:
        if plan.by_channel:
            rows = slice(group[0] * geom.taps, group[1] * geom.taps)
            cols_t = _channel_columns(planes, geom, group, room, bufs)  # (K_g, n_b, P)
            if n_b == 1:  # (C_out, P) @ (P, K_g), straight into dw's rows
                np.matmul(d_planes[0], cols_t[:, 0].T, out=dw[:, rows])
                return
            part = bufs.get("part", (n_b, c_out, rows.stop - rows.start))
            # (n_b, C_out, P) @ (n_b, P, K_g) -> (n_b, C_out, K_g), summed over the images
            np.matmul(d_planes, cols_t.transpose(1, 2, 0), out=part)
            np.sum(part, axis=0, out=dw[:, rows])
            return
        rows = slice(group[0] * c, group[1] * c)
        cols = _offset_columns(src, geom, group, room, bufs)  # (m, K_g)
        if c_out_major:
            np.matmul(d.T, cols, out=dw[:, rows])  # (C_out, m) @ (m, K_g)
        else:
            np.matmul(cols.T, d, out=dw[rows])  # (K_g, m) @ (m, C_out)

    own = room + (n_b * c_out * (plan.blocks[0][1] - plan.blocks[0][0]) * geom.taps if plan.by_channel else 0)
    threads = _threads(x, src, own, 0 if d is None else d.size, limit)
    map_tiles(work, plan.blocks, lambda: Buffers(x.dtype), max_threads=threads)
    if plan.by_channel:  # (C_out, C_in, *kernel) -> (*kernel, C_in, C_out)
        return dw.reshape(c_out, c, *geom.kernel).transpose(*range(2, 2 + nd), 1, 0)
    # (K, C_out) or (C_out, K) -> (*kernel, C_in, C_out)
    return (dw.T if c_out_major else dw).reshape(*geom.kernel, c, c_out)
