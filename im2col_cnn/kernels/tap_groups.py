"""Convolutions whose batch makes one tile: the product split by kernel offsets, so that it runs on every core.

The engine's threads share out tiles (:func:`~im2col_cnn.geometry.tiles.conv_tiles`), each product on one BLAS
thread, so that results are the same for every thread count. A batch of one tile -- one image, or a few small
ones: the C9 case's 8 images of 7x7 -- would run on one core. Here its columns ``(m, prod(kernel)*C_in)`` are
cut into groups of kernel offsets of at least ``MIN_GROUP_COLUMNS`` columns each, and each group's columns are
built and multiplied on a thread of its own:

* forward (:func:`correlate`): ``out = Σ_g cols_g · w_g``, the groups' products added in group order;
* weight gradient (:func:`weight_grad`): group g's rows of ``dw`` are ``cols_gᵀ · dout`` -- nothing to add.

The groups depend on the shapes alone: the same results for every thread count and workspace limit. Cutting the
sum over the columns costs little on one core (``(392, 4608) @ (4608, 512)`` in 9 groups: 1.01-1.04x the whole
product); cutting the output channels instead cost 1.05-1.18x, the rows 1.04-1.19x.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.tiles import MIN_TILES, Tile, even_blocks, tile_sizes
from ..geometry.windows import WindowGeometry, window_view
from ..runtime.parallel import map_tiles
from ..runtime.workspace import Buffers
from .columns import ALL, grouped_weights, tile_source

__all__ = ["MIN_GROUP_COLUMNS", "plan", "correlate", "weight_grad"]

MIN_GROUP_COLUMNS = 512
"""Each group of kernel offsets spans at least this many columns: narrower products cost more per flop."""


def plan(geom: WindowGeometry, c_in: int, tiles: list[Tile], groups: int) -> list[tuple[int, int]] | None:
    """The groups of kernel offsets (ranges of flat offset indices, row-major, nearly equal) of a batch that makes
    one tile, or None: several tiles, a grouped convolution, or too few columns for two groups."""
    if len(tiles) != 1 or groups != 1 or tiles[0].box != geom.full_box():
        return None
    per_group = -(-MIN_GROUP_COLUMNS // max(c_in, 1))  # offsets
    count = min(MIN_TILES, geom.taps // per_group)
    if count < 2:
        return None
    return even_blocks(geom.taps, -(-geom.taps // count))


def _group_columns(
    src: np.ndarray, geom: WindowGeometry, sizes: tuple[int, ...], group: tuple[int, int], room: int, bufs: Buffers
) -> np.ndarray:
    """The columns of offsets ``group`` of the windows of ``src`` (n_b, *span, C): ``(m, len(group)*C)``, one
    strided copy per offset, in buffer 'cols' (of at least ``room`` elements: the largest group's)."""
    first, stop = group
    n_b, c = src.shape[0], src.shape[-1]
    view = window_view(src, geom, sizes)  # (n_b, *sizes, *kernel, C)
    cols = bufs.get("cols", (n_b, *sizes, stop - first, c), room)
    for j, t in enumerate(range(first, stop)):
        offset = np.unravel_index(t, geom.kernel)
        np.copyto(cols[..., j, :], view[(ALL,) * (1 + geom.ndim) + offset])  # (n_b, *sizes, C)
    return cols.reshape(-1, (stop - first) * c)  # (n_b, *sizes, g, C) -> (m, g*C)


def _largest(m: int, c: int, blocks: list[tuple[int, int]]) -> int:
    """Elements of the largest group's columns (the first: :func:`plan`'s groups are larger first)."""
    return m * (blocks[0][1] - blocks[0][0]) * c


def _threads(x: np.ndarray, src: np.ndarray, per_thread: int, shared: int, limit: int) -> int:
    """Threads whose own scratch (``per_thread`` elements each) fits ``limit`` beside ``shared`` elements and the
    staged slab ``src`` (none where it is a view of ``x``)."""
    slab = 0 if np.may_share_memory(src, x) else src.size
    return max(1, (limit - (slab + shared) * x.itemsize) // max(per_thread * x.itemsize, 1))


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    tile: Tile,
    blocks: list[tuple[int, int]],
    bias: np.ndarray | None,
    out: np.ndarray,
    limit: int,
) -> np.ndarray:
    """The forward pass of a one-tile batch: ``x`` (N, *spatial, C_in), ``w`` (*kernel, C_in, C_out) -> ``out``
    (N, *out, C_out), any memory layout, written in place: Σ over the groups ``blocks``, in order, of ``cols_g ·
    w_g``, then the bias."""
    c, c_out = x.shape[-1], w.shape[-1]
    wm = grouped_weights(w, 1)[0]  # (K, C_out)
    shared = Buffers(x.dtype)
    src = tile_source(x, geom, tile, tile, shared)  # (N, *span, C_in): staged once, read by every thread
    n_b, sizes = tile_sizes(tile)
    m = n_b * math.prod(sizes)
    direct = out.flags.c_contiguous
    result = out.reshape(m, c_out) if direct else shared.get("out", (m, c_out))  # (m, C_out)

    def work(group: tuple[int, int], bufs: Buffers) -> np.ndarray:
        cols = _group_columns(src, geom, sizes, group, _largest(m, c, blocks), bufs)  # (m, g*C_in)
        part = result if group[0] == 0 else bufs.get("part", (m, c_out))
        np.matmul(cols, wm[group[0] * c : group[1] * c], out=part)  # (m, g*C_in) @ (g*C_in, C_out)
        return part

    def add(group: tuple[int, int], part: np.ndarray, _: Buffers) -> None:
        if group[0]:  # the first group's product is `result` itself
            np.add(result, part, out=result)

    threads = _threads(x, src, _largest(m, c, blocks) + m * c_out, 0 if direct else result.size, limit)
    map_tiles(work, blocks, lambda: Buffers(x.dtype), max_threads=threads, then=add)
    if bias is not None:
        result += bias
    if not direct:
        np.copyto(out, result.reshape(out.shape))  # (m, C_out) -> (N, *out, C_out)
    return out


def weight_grad(
    x: np.ndarray,
    d: np.ndarray,
    geom: WindowGeometry,
    tile: Tile,
    blocks: list[tuple[int, int]],
    limit: int,
    c_out_major: bool,
) -> np.ndarray:
    """The weight gradient of a one-tile batch: ``x`` (N, *spatial, C_in), ``d`` its ``dout`` as rows (m, C_out)
    -> dw (*kernel, C_in, C_out), group g's rows ``cols_gᵀ · d`` made on a thread of their own; laid out
    ``(C_out, *kernel, C_in)`` in memory with ``c_out_major`` (see :func:`~im2col_cnn.kernels.conv.weight_grad`)."""
    c, c_out = x.shape[-1], d.shape[-1]
    k = geom.taps * c
    shared = Buffers(x.dtype)
    src = tile_source(x, geom, tile, tile, shared)  # (N, *span, C_in)
    _, sizes = tile_sizes(tile)
    m = d.shape[0]
    dw = np.empty((c_out, k) if c_out_major else (k, c_out), dtype=x.dtype)

    def work(group: tuple[int, int], bufs: Buffers) -> None:
        cols = _group_columns(src, geom, sizes, group, _largest(m, c, blocks), bufs)  # (m, g*C_in)
        rows = slice(group[0] * c, group[1] * c)
        if c_out_major:
            np.matmul(d.T, cols, out=dw[:, rows])  # (C_out, m) @ (m, g*C_in)
        else:
            np.matmul(cols.T, d, out=dw[rows])  # (g*C_in, m) @ (m, C_out)

    threads = _threads(x, src, _largest(m, c, blocks), 0 if np.may_share_memory(d, x) else d.size, limit)
    map_tiles(work, blocks, lambda: Buffers(x.dtype), max_threads=threads)
    # (K, C_out) or (C_out, K) -> (*kernel, C_in, C_out)
    return (dw.T if c_out_major else dw).reshape(*geom.kernel, c, c_out)
