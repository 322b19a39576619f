"""The computations every convolution layer is made of, on ``(N, *spatial, C)`` arrays, tile by tile.

* :func:`correlate` -- the forward pass: columns of ``x`` times the weights.
* :func:`input_grad` -- the gradient with respect to the input (also the forward pass of a transposed
  convolution): either correlations of ``dout`` with the flipped kernel, one per phase of the stride
  (:mod:`~im2col_cnn.geometry.phases`; no scatter at all), or the columns' gradient ``dout · wᵀ`` scattered back
  by col2im, whichever :func:`flipped_correlation_pays` estimates to be cheaper.
* :func:`weight_grad` -- the gradient with respect to the weights: ``colsᵀ · dout`` summed tile by tile.

Weights are ``(*kernel, C_in // groups, C_out)``. With groups, every product is a stack of one matrix product per
group over the group-major columns of :func:`~im2col_cnn.kernels.columns.tile_columns`. Which kernel runs is
decided here, in one place: a depthwise convolution (one input channel per group) skips columns altogether
(:mod:`~im2col_cnn.kernels.depthwise`), and one with few input channels builds them from channel planes
(:mod:`~im2col_cnn.kernels.planar`).

Arrays are ``(N, *spatial, C)`` but need not be channels-last in memory: a channels-first array's transposed view
is read and written tile by tile, through small channels-last staging buffers, never converted whole. Every
buffer is sized by :func:`~im2col_cnn.geometry.tiles.conv_tiles`, whose tiles do not depend on the workspace
limit (so neither do the results) unless one image alone exceeds it.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.phases import Phase, column_entries, phases
from ..geometry.tiles import MIN_TILES, Tile, conv_tiles, image_by_image, image_of, opens_image, tile_sizes
from ..geometry.windows import WindowGeometry
from ..runtime.layout import add_planes
from ..runtime.parallel import get_num_threads, map_tiles
from ..runtime.workspace import Buffers
from . import depthwise, planar, tap_groups, wide
from .columns import ALL, grouped_weights, scatter_tile, tile_columns, tile_rows

__all__ = ["correlate", "input_grad", "weight_grad", "flipped_correlation_pays"]

COPY_FLOPS = 35
"""Time of copying one element into a column matrix, in flops of an efficient matrix product (measured: 30-45)."""

SCATTER_FLOPS = 80
"""Time of adding one column entry back by col2im's strided slice-adds, in flops of an efficient matrix product."""


STRIDE_1_BIAS = 1.5
"""At stride 1 the correlation is kept unless the scatter is estimated this many times cheaper: there its
columns are plain copies, still in cache when multiplied, and it measured faster than the estimate says (2-D,
C_out = 2*C_in: estimated 1.26 times the scatter, measured 0.85-0.87 in float32, 0.96-0.99 in float64)."""

BIAS_MAX_COLUMNS = 1024
"""...but only while a row of the correlation's columns (``prod(kernel) * C_out`` entries) is at most this long.
Longer rows (a 3x3x3 kernel over 64 channels: 1728) fall out of cache like any other, and there the estimate
held (a 3-D conv 32 -> 64 on (8, 16, 32, 32): estimated 1.29, measured 1.27 in float32 and 1.19 in float64)."""


def _product_flops(m: int, k: int, n: int) -> float:
    """Time of an (m, k) @ (k, n) product in flops of an efficient one: narrow products run slower per flop
    (measured with OpenBLAS: about 1.8x at n = 32, 1.4x at n = 64; 1.25x at k = 32)."""
    return 2 * m * k * n * (1 + 8 / k) * (1 + 24 / n)


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
    of the largest (first) tile and ``more`` bytes of its own."""
    if not tiles:
        return 1
    n_b, sizes = tile_sizes(tiles[0])
    per_thread = _tile_scratch(x_shape, itemsize, geom, extra, always_slab)(n_b, sizes) + more
    return max(1, limit // max(per_thread, 1))


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    bias: np.ndarray | None = None,
    groups: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``out[n, *o, co] = Σ_{taps, c} x_pad[n, *(o*s + tap*d), c_g0 + c] * w[*taps, c, co] (+ bias)``.

    ``x`` (N, *spatial, C_in), ``w`` (*kernel, C_in // groups, C_out) -> ``out`` (N, *out, C_out), dtype of
    ``x``; ``c_g0`` is the first input channel of output channel ``co``'s group. ``out``, if given, is written in
    place (any memory layout, e.g. the channels-last view of a channels-first array) and returned.
    """
    c_out = w.shape[-1]
    if out is None:
        out = np.empty((x.shape[0], *geom.out_shape, c_out), dtype=x.dtype)
    if groups > 1 and w.shape[-2] == 1:
        return depthwise.correlate(x, w, geom, limit, bias, out)
    kernel = wide.kernel(x, out, geom, groups)
    if kernel == "pointwise":
        return wide.pointwise_correlate(x, w, bias, out, groups)
    tiles = column_tiles(x.shape, x.itemsize, geom, limit, c_out, kernel=kernel) if kernel else []
    images = wide.plan(tiles, geom) if kernel else None
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
        target = out[(tile.images, *tile.box)]  # (n_b, *sizes, C_out)
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

    threads = tile_threads(x.shape, x.itemsize, geom, tiles, limit, c_out)
    map_tiles(work, tiles, lambda: Buffers(x.dtype), max_threads=threads)
    return out


def flipped_correlation_pays(geom: WindowGeometry, w_shape: tuple[int, ...], groups: int = 1) -> bool:
    """Whether the input gradient should be the flipped-kernel correlation of each phase
    (:mod:`~im2col_cnn.geometry.phases`) rather than ``dout · wᵀ`` scattered back by col2im.

    Estimated cost, per image, in flops (:func:`_product_flops`; copies at ``COPY_FLOPS``, scatter adds at
    ``SCATTER_FLOPS``): the correlations multiply ``Σ positions × taps`` column entries of ``C_out`` channels
    (built by copying; with a stride, each result is also copied into the strided input gradient) into
    ``C_in`` outputs; the scatter multiplies ``prod(out)`` rows of ``C_out`` into ``prod(kernel)*C_in`` column
    entries and adds them back. The correlations win at stride 1 when ``C_out`` is not much larger than ``C_in``;
    the scatter wins when the kernel is nearly as large as the input (few outputs, each a huge window). Only
    shapes decide, never the limit.
    """
    c_in_g, c_out = w_shape[-2], w_shape[-1]
    c_in = c_in_g * groups
    p_in, p_out, taps = math.prod(geom.in_shape), math.prod(geom.out_shape), geom.taps
    entries = column_entries(geom)  # Σ over phases of positions × taps
    k_phase = max(1, entries * c_out // (groups * p_in))  # the phases' mean depth of product, per group
    correlation = groups * _product_flops(p_in, k_phase, c_in_g) + COPY_FLOPS * entries * c_out
    unit_stride = all(s == 1 for s in geom.stride)
    if not unit_stride:
        correlation += COPY_FLOPS * p_in * c_in  # each phase's result copied into the strided input gradient
    scatter = groups * _product_flops(p_out, c_out // groups, taps * c_in_g) + SCATTER_FLOPS * p_out * taps * c_in
    biased = unit_stride and taps * c_out // groups <= BIAS_MAX_COLUMNS
    return correlation <= (STRIDE_1_BIAS if biased else 1) * scatter


def _phase_weights(w: np.ndarray, phase: Phase, groups: int) -> np.ndarray:
    """The flipped weights of one phase's correlation: (*m, C_out_g, C_in) from ``w`` (*kernel, C_in_g, C_out).

    Ungrouped, a view of ``w`` (the correlation's :func:`~im2col_cnn.kernels.columns.grouped_weights` copies it
    once, in the order it reads fastest); grouped, a copy."""
    c_in_g, c_out = w.shape[-2], w.shape[-1]
    taps = w[tuple(_reading_order(p.taps) for p in phase.axes)]  # (*m, C_in_g, C_out), taps in reading order
    m = taps.shape[:-2]
    # (*m, C_in_g, G, C_out_g) -> (*m, C_out_g, G, C_in_g) -> (*m, C_out_g, C_in)
    nd = len(m)
    flipped = taps.reshape(*m, c_in_g, groups, c_out // groups).transpose(*range(nd), nd + 2, nd + 1, nd)
    return flipped.reshape(*m, c_out // groups, c_in_g * groups)


def _reading_order(taps: tuple[int, ...]) -> slice:
    """The taps of one axis of a phase, evenly spaced (:func:`~im2col_cnn.geometry.phases.axis_phases`), as a
    slice: a view of the weights, not a copy."""
    step = taps[1] - taps[0] if len(taps) > 1 else 1
    stop = taps[-1] + step
    return slice(taps[0], None if stop < 0 else stop, step)


def input_grad(
    dout: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    dx: np.ndarray,
    limit: int,
    groups: int = 1,
    *,
    path: str | None = None,
) -> np.ndarray:
    """Gradient of :func:`correlate` with respect to ``x``: ``dout`` (N, *out, C_out) -> ``dx`` (N, *spatial, C_in).

    ``dx`` (any memory layout; its contents are ignored) is written in place and returned. ``path`` forces
    ``'correlate'`` (a flipped-kernel correlation of ``dout`` per phase of the stride) or ``'scatter'``
    (``dout · wᵀ`` and col2im); by default the few-channel kernels run where they apply, else
    :func:`flipped_correlation_pays` decides.
    """
    c_in_g, c_out = w.shape[-2], w.shape[-1]
    if groups > 1 and c_in_g == 1:
        return depthwise.input_grad(dout, w, geom, dx, limit)
    kernel = wide.kernel(dx, dout, geom, groups) if path is None else None
    if kernel == "pointwise":
        wide.pointwise_input_grad(dout, w, dx, groups)
        return dx
    if kernel == "planes":
        tiles = column_tiles(dx.shape, dout.itemsize, geom, limit, c_out, always_slab=True, kernel=kernel)
        images = wide.plan(tiles, geom)
        if images is not None:
            threads = tile_threads(dx.shape, dout.itemsize, geom, tiles, limit, c_out, always_slab=True)
            wide.scatter_input_grad(dout, w, geom, images, dx, threads)
            return dx
    blocks = planar.plan(dx.shape, dx.itemsize, geom, c_out, limit, groups)
    if blocks is not None and path is None:
        planar.input_grad(dout, w, geom, blocks, dx, limit)
        return dx
    if path is None:
        path = "correlate" if flipped_correlation_pays(geom, w.shape, groups) else "scatter"
    if path == "correlate":
        for phase in phases(geom):
            target = dx[(ALL, *phase.index)]  # (N, *Q, C_in)
            if phase.geom is None:  # no tap reaches these positions
                target[...] = 0
            else:
                correlate(dout, _phase_weights(w, phase, groups), phase.geom, limit, groups=groups, out=target)
        return dx
    tiles = column_tiles(dx.shape, dout.itemsize, geom, limit, c_out, always_slab=True)
    _scatter_input_grad(dout, w, geom, dx, tiles, groups, limit)
    return dx


def _scatter_input_grad(
    dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, dx: np.ndarray, tiles: list[Tile], groups: int, limit: int
) -> None:
    """``dcols = dout · wᵀ`` tile by tile, scattered back into ``dx`` by col2im."""
    c_out = w.shape[-1]
    wg_t = grouped_weights(w, groups).transpose(0, 2, 1)  # (G, C_out_g, Kg)
    k = geom.taps * w.shape[-2] * groups
    direct = dx.flags.c_contiguous
    # Tiles of whole images own their part of dx: each assigns it (no zero-filling). Tiles of a split image
    # overlap at their borders and add into their image of dx, which the image's first tile zeroes.
    whole = bool(tiles) and tiles[0].box == geom.full_box()
    in_shape = geom.in_shape

    def scatter(tile: Tile, dcols: np.ndarray, bufs: Buffers) -> None:
        if not whole and opens_image(tile):  # its turn comes first among its image's tiles
            dx[tile.images] = 0
        m = dcols.shape[0]
        if direct:  # scatter straight into dx
            scatter_tile(dcols.reshape(m, k), geom, tile, dx[tile.images], groups=groups, fresh=whole)
            return
        # Another layout: scatter into a channels-last slab of the input the tile reads, then copy or add it in.
        if whole:
            reach = [(0, size) for size in in_shape]
        else:
            reach = geom.reach(tile.box)
        if any(b <= a for a, b in reach):  # the tile's windows read only padding
            return
        n_b, _ = tile_sizes(tile)
        room = n_b * math.prod(hi - lo for lo, hi in geom.span(tiles[0].box)) * dx.shape[-1]  # the largest slab
        slab = bufs.get("slab", (n_b, *(b - a for a, b in reach), dx.shape[-1]), room)  # (n_b, *read, C_in)
        if not whole:
            slab.fill(0)
        scatter_tile(dcols.reshape(m, k), geom, tile, slab, origin=[a for a, _ in reach], groups=groups, fresh=whole)
        if whole:
            np.copyto(dx[tile.images], slab)
        else:
            add_planes(dx[(tile.images, *(slice(a, b) for a, b in reach))], slab)

    def work(tile: Tile, bufs: Buffers) -> np.ndarray:
        d = tile_rows(dout, tile, bufs, "dout")  # (m, C_out)
        m = d.shape[0]
        dcols = bufs.get("dcols", (m, groups, k // groups))  # (m, G, Kg): group-major columns
        if groups == 1:
            np.matmul(d, wg_t[0], out=dcols[:, 0])  # (m, C_out) @ (C_out, K)
        else:  # (G, m, C_out_g) @ (G, C_out_g, Kg) -> (G, m, Kg)
            np.matmul(d.reshape(m, groups, c_out // groups).transpose(1, 0, 2), wg_t, out=dcols.transpose(1, 0, 2))
        if whole:  # the tile owns its images' part of dx
            scatter(tile, dcols, bufs)
        return dcols

    threads = tile_threads(dx.shape, dout.itemsize, geom, tiles, limit, c_out, always_slab=True)
    if whole:
        map_tiles(work, tiles, lambda: Buffers(dout.dtype), max_threads=threads)
        return
    # Tiles of a split image overlap at their borders: they add into dx in tile order -- each image's tiles in
    # theirs, the images' in any order.
    order = image_by_image(tiles, min(threads, get_num_threads()))
    map_tiles(work, order, lambda: Buffers(dout.dtype), max_threads=threads, then=scatter, then_key=image_of)


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

    def work(tile: Tile, bufs: Buffers) -> np.ndarray:
        cols = tile_columns(x, geom, tile, tiles[0], bufs, groups)  # (m, K)
        d = tile_rows(dout, tile, bufs, "dout")  # (m, C_out)
        m = d.shape[0]
        partial = bufs.get("partial", dw.shape)
        g_cols = cols.reshape(m, groups, k_g).transpose(1, 2, 0)  # (G, Kg, m)
        g_d = d.reshape(m, groups, c_out_g).transpose(1, 0, 2)  # (G, m, C_out_g)
        if c_out_major:  # (G, C_out_g, m) @ (G, m, Kg) -> (G, C_out_g, Kg)
            np.matmul(g_d.transpose(0, 2, 1), g_cols.transpose(0, 2, 1), out=partial)
        elif groups == 1:
            np.matmul(cols.T, d, out=partial[0])  # (K, m) @ (m, C_out)
        else:  # (G, Kg, m) @ (G, m, C_out_g) -> (G, Kg, C_out_g)
            np.matmul(g_cols, g_d, out=partial)
        return partial

    threads = tile_threads(x.shape, x.itemsize, geom, tiles, limit, c_out, more=dw.nbytes)
    # The tiles' partial products are added up in tile order, whichever thread made them.
    map_tiles(
        work, tiles, lambda: Buffers(x.dtype), max_threads=threads, then=lambda _, part, __: np.add(dw, part, out=dw)
    )
    # (G, Kg, C_out_g) -> (Kg, G, C_out_g), or (G, C_out_g, Kg) -> (Kg, G, C_out_g); -> (*kernel, C_in_g, C_out)
    return dw.transpose(*((2, 0, 1) if c_out_major else (1, 0, 2))).reshape(*geom.kernel, c_in_g, c_out), None
