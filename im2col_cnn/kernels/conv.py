"""The computations every convolution layer is made of, on ``(N, *spatial, C)`` arrays, tile by tile.

* :func:`correlate` -- the forward pass: columns of ``x`` times the weights.
* :func:`weight_grad` -- the gradient with respect to the weights: ``colsᵀ · dout`` summed tile by tile.

The gradient with respect to the input is :mod:`~im2col_cnn.kernels.input_grad`'s (correlations of ``dout`` with
the flipped kernel, or col2im); :mod:`~im2col_cnn.kernels.shared_columns` runs a transposed convolution's
backward pass on one set of columns.

Weights are ``(*kernel, C_in // groups, C_out)``. With groups, every product is a stack of one matrix product per
group over the group-major columns of :func:`~im2col_cnn.kernels.columns.tile_columns`. Which kernel runs is
decided here: a depthwise convolution (one input channel per group) skips columns altogether
(:mod:`~im2col_cnn.kernels.depthwise`), one with few input channels builds them from channel planes
(:mod:`~im2col_cnn.kernels.planar`), contiguous channels-first arrays may run in their own layout
(:mod:`~im2col_cnn.kernels.wide`), and a batch of one tile in groups (:mod:`~im2col_cnn.kernels.tap_groups`).

Arrays are ``(N, *spatial, C)`` but need not be channels-last in memory: a channels-first array's transposed view
is read and written tile by tile, through small channels-last staging buffers, never converted whole. Every
buffer is sized by :func:`~im2col_cnn.geometry.tiles.conv_tiles`, whose tiles do not depend on the workspace
limit (so neither do the results) unless one image alone exceeds it.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.tiles import MIN_TILES, Tile, conv_tiles, tile_sizes
from ..geometry.windows import WindowGeometry
from ..runtime.parallel import map_tiles
from ..runtime.workspace import Buffers
from . import depthwise, planar, tap_groups, wide
from .columns import grouped_weights, tile_channel_rows, tile_columns, tile_rows

__all__ = [
    "correlate",
    "weight_grad",
    "correlate_tile",
    "weight_tile",
    "dout_rows",
    "weight_from_tiles",
]


def _tile_scratch(x_shape: tuple[int, ...], itemsize: int, geom: WindowGeometry, extra: int, always_slab: bool):
    c = x_shape[-1]
    return geom.tile_scratch(c, itemsize, (geom.taps * c + extra) * itemsize, always_slab=always_slab)


def column_tiles(
    x_shape: tuple[int, ...],
    itemsize: int,
    geom: WindowGeometry,
    limit: int,
    extra: int,
    *,
    always_slab: bool = False,
    kernel: str | None = None,
) -> list[Tile]:
    """Tiles for a pass that builds (or scatters) the columns of an ``x_shape`` (N, *spatial, C) input.

    Per output position the pass needs its column row and ``extra`` more elements (an output or ``dout`` row);
    plus the staged slab of the tile's input (:meth:`~im2col_cnn.geometry.windows.WindowGeometry.tile_scratch`;
    ``always_slab`` counts it even for 1x1). A pointwise geometry's columns are the input itself where that is
    channels-last in memory (no copy, and no ``BLOCK_BYTES`` bound on the tiles), but a copy for a channels-first
    input, so they count against the limit all the same: the tiles must not depend on the layout. For the
    channels-first planes kernel of few channels (``kernel='planes'``, :func:`~im2col_cnn.kernels.wide.kernel`)
    the blocks are not cut to ``MIN_TILES``: as for the planar kernels, a block costs it a fixed time (the C2
    case in NCHW, float32, 2 cores: forward 1.46 -> 1.69 ms and backward 3.38 -> 5.16 in 16 blocks instead of 2).
    For a strided forward pass of many channels in that kernel (``kernel='strided'``) they are, as for the column
    kernel: its products, not the blocks, take the time, and every thread needs a block.
    """
    n, k = x_shape[0], geom.taps * x_shape[-1]
    block_k = 0 if geom.is_pointwise else k
    scratch = _tile_scratch(x_shape, itemsize, geom, extra, always_slab)
    cols = block_k * math.prod(geom.out_shape) * itemsize
    return conv_tiles(n, geom.out_shape, cols, scratch, limit, min_tiles=1 if kernel == "planes" else MIN_TILES)


def tile_threads(
    x_shape: tuple[int, ...],
    itemsize: int,
    geom: WindowGeometry,
    tiles: list[Tile],
    limit: int,
    extra: int,
    *,
    always_slab: bool = False,
    more: int = 0,
) -> int:
    """How many threads may work on :func:`column_tiles`' tiles at once within ``limit``: each needs the scratch
    of the largest (first) tile and ``more`` bytes of its own (:func:`thread_scratch`); at least one."""
    per_thread = thread_scratch(x_shape, itemsize, geom, tiles, extra, always_slab=always_slab, more=more)
    return max(1, limit // max(per_thread, 1))


def thread_scratch(
    x_shape: tuple[int, ...],
    itemsize: int,
    geom: WindowGeometry,
    tiles: list[Tile],
    extra: int,
    *,
    always_slab: bool = False,
    more: int = 0,
) -> int:
    """Bytes of scratch one thread needs for :func:`column_tiles`' tiles: the largest (first) tile's, with
    ``extra`` elements per output position, and ``more``."""
    if not tiles:
        return 0
    n_b, sizes = tile_sizes(tiles[0])
    return _tile_scratch(x_shape, itemsize, geom, extra, always_slab)(n_b, sizes) + more


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    bias: np.ndarray | None = None,
    groups: int = 1,
    out: np.ndarray | None = None,
    *,
    strided_planes: bool = True,
) -> np.ndarray:
    """``out[n, *o, co] = Σ_{taps, c} x_pad[n, *(o*s + tap*d), c_g0 + c] * w[*taps, c, co] (+ bias)``.

    ``x`` (N, *spatial, C_in), ``w`` (*kernel, C_in // groups, C_out) -> ``out`` (N, *out, C_out), dtype of
    ``x``; ``c_g0`` is the first input channel of output channel ``co``'s group. ``out``, if given, is written in
    place (any memory layout, e.g. the channels-last view of a channels-first array) and returned. With
    ``strided_planes`` False, a strided geometry of many channels in the channels-first layout runs the column
    kernel all the same, not the planes kernel (:func:`~im2col_cnn.kernels.wide.strided_forward`): the kernel
    whose columns a weight gradient can share (:mod:`~im2col_cnn.kernels.shared_columns`).
    """
    c_out = w.shape[-1]
    if out is None:
        out = np.empty((x.shape[0], *geom.out_shape, c_out), dtype=x.dtype)
    if groups > 1 and w.shape[-2] == 1:
        return depthwise.correlate(x, w, geom, limit, bias, out)
    kernel = wide.kernel(x, out, geom, groups, forward=strided_planes)
    if kernel == "pointwise":
        return wide.pointwise_correlate(x, w, bias, out, groups)
    tiles = column_tiles(x.shape, x.itemsize, geom, limit, c_out, kernel=kernel) if kernel else []
    images = wide.plan(tiles, geom) if kernel else None
    if kernel == "strided" and images is not None and len(images) == 1:
        images = None  # a strided pass in one tile: the tap groups below share it among the threads
    if images is not None:
        return wide.correlate(
            x, w, geom, images, bias, out, tile_threads(x.shape, x.itemsize, geom, tiles, limit, c_out)
        )
    blocks = None if kernel else planar.plan(x.shape, x.itemsize, geom, c_out, limit, groups)
    if blocks is not None:
        return planar.correlate(x, w, geom, blocks, bias, out, limit)
    tiles = tiles or column_tiles(x.shape, x.itemsize, geom, limit, c_out)
    by_channel = wide.is_channels_first(x, out) and tap_groups.rows_by_channel(w)
    cut = tap_groups.plan(geom, x.shape[-1], tiles, groups, by_channel=by_channel)
    if cut is not None:  # a batch of one tile: its product cut by kernel offsets or input channels
        return tap_groups.correlate(x, w, geom, tiles[0], cut, bias, out, limit)
    wg = grouped_weights(w, groups)  # (G, Kg, C_out_g)

    def work(tile: Tile, bufs: Buffers) -> None:
        cols = tile_columns(x, geom, tile, tiles[0], bufs, groups)  # (m, K)
        correlate_tile(cols, wg, bias, out[(tile.images, *tile.box)], bufs)

    threads = tile_threads(x.shape, x.itemsize, geom, tiles, limit, c_out)
    map_tiles(work, tiles, lambda: Buffers(x.dtype), max_threads=threads)
    return out


def correlate_tile(
    cols: np.ndarray, wg: np.ndarray, bias: np.ndarray | None, target: np.ndarray, bufs: Buffers
) -> None:
    """One tile of :func:`correlate`: ``target`` (n_b, *sizes, C_out), any layout, = ``cols`` (m, K) times the
    grouped weights ``wg`` (G, Kg, C_out_g) (+ ``bias``), through buffer 'out' where ``target`` is not
    C-contiguous."""
    groups, c_out = wg.shape[0], wg.shape[0] * wg.shape[2]
    m = cols.shape[0]
    direct = target.flags.c_contiguous
    block = target.reshape(m, c_out) if direct else bufs.get("out", (m, c_out))  # a view when direct
    if groups == 1:
        np.matmul(cols, wg[0], out=block)  # (m, K) @ (K, C_out)
    else:  # (G, m, Kg) @ (G, Kg, C_out_g) -> (G, m, C_out_g), written straight into the (m, G, C_out_g) block
        g_out = block.reshape(m, groups, wg.shape[2]).transpose(1, 0, 2)
        np.matmul(cols.reshape(m, groups, wg.shape[1]).transpose(1, 0, 2), wg, out=g_out)
    if bias is not None:
        block += bias
    if not direct:
        np.copyto(target, block.reshape(target.shape))  # (m, C_out) -> (n_b, *sizes, C_out)


def weight_grad(
    x: np.ndarray,
    dout: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    groups: int = 1,
    *,
    with_bias: bool = False,
    c_out_major: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradient of :func:`correlate` with respect to ``w``: Σ over tiles, in order, of ``colsᵀ · dout``.

    ``x`` (N, *spatial, C_in), ``dout`` (N, *out, C_out), any memory layout -> ``(dw, db)``: dw (*kernel,
    C_in // groups, C_out), and, with ``with_bias``, db (C_out,) where a kernel gets it from the same product
    (None otherwise: the caller sums ``dout`` itself, :func:`~im2col_cnn.kernels.bias.bias_grad`). With
    ``c_out_major`` the column kernel lays dw out output channel by output channel, ``(G, C_out_g, *kernel,
    C_in_g)`` in memory (its products ``doutᵀ · cols``), for a caller that converts it to PyTorch's ``(C_out,
    C_in_g, *kernel)``: a copy that then reads each output channel's weights together, not one element per
    weight row (a 3x3x512x512 dw: 9.5 ms -> 2 in float32).
    """
    c_in_g, c_out = x.shape[-1] // groups, dout.shape[-1]
    if groups > 1 and c_in_g == 1:
        return depthwise.weight_grad(x, dout, geom, limit), None
    kernel = wide.kernel(x, dout, geom, groups)
    tiles = column_tiles(x.shape, x.itemsize, geom, limit, c_out, kernel=kernel) if kernel else []
    images = wide.plan(tiles, geom) if kernel else None
    pointwise = kernel == "pointwise"
    if images is not None and wide.partials_fit(geom.taps * c_in_g, c_out // groups, geom, pointwise=pointwise):
        threads = tile_threads(x.shape, x.itemsize, geom, tiles, limit, c_out)
        if pointwise:
            return wide.pointwise_weight_grad(x, dout, images, groups, threads), None
        return wide.weight_grad(x, dout, geom, images, threads), None
    blocks = planar.plan(x.shape, x.itemsize, geom, c_out, limit, groups)
    if blocks is not None:
        return planar.weight_grad(x, dout, geom, blocks, with_bias, limit)
    k_g, c_out_g = geom.taps * c_in_g, c_out // groups
    tiles = tiles or column_tiles(x.shape, x.itemsize, geom, limit, c_out)
    by_channel = c_out_major and wide.is_channels_first(x, dout)
    cut = tap_groups.plan(geom, c_in_g, tiles, groups, by_channel=by_channel)
    if cut is not None:  # a batch of one tile: its rows of dw made by groups of kernel offsets or input channels
        return tap_groups.weight_grad(x, dout, geom, tiles[0], cut, limit, c_out_major), None
    dw = np.zeros((groups, c_out_g, k_g) if c_out_major else (groups, k_g, c_out_g), dtype=x.dtype)

    by_plane = c_out_major and wide.is_channels_first(dout)

    def work(tile: Tile, bufs: Buffers) -> np.ndarray:
        cols = tile_columns(x, geom, tile, tiles[0], bufs, groups)  # (m, K)
        return weight_tile(cols, dout_rows(dout, tile, bufs, by_plane), dw.shape, c_out_major, bufs, by_plane)

    threads = tile_threads(x.shape, x.itemsize, geom, tiles, limit, c_out, more=dw.nbytes)
    # The tiles' partial products are added up in tile order, whichever thread made them.
    map_tiles(
        work, tiles, lambda: Buffers(x.dtype), max_threads=threads, then=lambda _, part, __: np.add(dw, part, out=dw)
    )
    return weight_from_tiles(dw, geom, c_out_major), None


def dout_rows(dout: np.ndarray, tile: Tile, bufs: Buffers, by_plane: bool) -> np.ndarray:
    """A tile of ``dout`` for :func:`weight_tile`: (m, C_out) rows, or with ``by_plane`` (a channels-first
    ``dout``, for a ``c_out_major`` weight gradient) its transpose (C_out, m) copied along the planes."""
    if by_plane:
        return tile_channel_rows(dout, tile, bufs, "dout")
    return tile_rows(dout, tile, bufs, "dout")


def weight_tile(
    cols: np.ndarray, d: np.ndarray, shape: tuple[int, ...], c_out_major: bool, bufs: Buffers, by_plane: bool = False
) -> np.ndarray:
    """One tile's part of :func:`weight_grad`: ``colsᵀ · d`` for ``cols`` (m, K) and ``d`` (m, C_out) -- with
    ``by_plane``, ``d`` is its transpose (C_out, m) (:func:`dout_rows`; with ``c_out_major`` only) -- in buffer
    'partial' of ``shape``: (G, Kg, C_out_g), or (G, C_out_g, Kg) with ``c_out_major`` (then ``dᵀ · cols``)."""
    groups = shape[0]
    k_g, c_out_g = (shape[2], shape[1]) if c_out_major else shape[1:]
    m = cols.shape[0]
    partial = bufs.get("partial", shape)
    g_cols = cols.reshape(m, groups, k_g).transpose(1, 2, 0)  # (G, Kg, m)
    if c_out_major:  # (G, C_out_g, m) @ (G, m, Kg) -> (G, C_out_g, Kg)
        if by_plane:  # (C_out, m) -> (G, C_out_g, m)
            g_dt = d.reshape(groups, c_out_g, m)
        else:  # (m, C_out) -> (m, G, C_out_g) -> (G, C_out_g, m)
            g_dt = d.reshape(m, groups, c_out_g).transpose(1, 2, 0)
        np.matmul(g_dt, g_cols.transpose(0, 2, 1), out=partial)
    elif groups == 1:
        np.matmul(cols.T, d, out=partial[0])  # (K, m) @ (m, C_out)
    else:  # (G, Kg, m) @ (G, m, C_out_g) -> (G, Kg, C_out_g)
        np.matmul(g_cols, d.reshape(m, groups, c_out_g).transpose(1, 0, 2), out=partial)
    return partial


def weight_from_tiles(dw: np.ndarray, geom: WindowGeometry, c_out_major: bool) -> np.ndarray:
    """The sum of :func:`weight_tile`'s parts as weights (*kernel, C_in_g, C_out) (a view)."""
    groups = dw.shape[0]
    k_g, c_out_g = (dw.shape[2], dw.shape[1]) if c_out_major else dw.shape[1:]
    # (G, Kg, C_out_g) -> (Kg, G, C_out_g), or (G, C_out_g, Kg) -> (Kg, G, C_out_g); -> (*kernel, C_in_g, C_out)
    order = (2, 0, 1) if c_out_major else (1, 0, 2)
    return dw.transpose(*order).reshape(*geom.kernel, k_g // geom.taps, groups * c_out_g)
