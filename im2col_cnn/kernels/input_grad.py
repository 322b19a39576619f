"""The gradient of a convolution with respect to its input (also the forward pass of a transposed convolution).

Two ways, whichever :func:`flipped_correlation_pays` estimates to be cheaper (shapes alone decide): correlations
of ``dout`` with the flipped kernel, one per phase of the stride (:mod:`~im2col_cnn.geometry.phases`; no scatter
at all), each a :func:`~im2col_cnn.kernels.conv.correlate`; or the columns' gradient ``dout · wᵀ`` scattered back
by col2im, tile by tile. The few-channel, channels-first and depthwise kernels run first where they apply.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.phases import Phase, column_entries, phases
from ..geometry.tiles import Tile, image_by_image, image_of, opens_image, tile_sizes
from ..geometry.windows import WindowGeometry
from ..runtime.layout import add_planes
from ..runtime.parallel import get_num_threads, map_tiles
from ..runtime.workspace import Buffers
from . import depthwise, planar, wide
from .columns import ALL, grouped_weights, scatter_tile, tile_channel_rows, tile_rows
from .conv import column_tiles, correlate, tile_threads

__all__ = ["input_grad", "flipped_correlation_pays"]

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

    by_plane = groups == 1 and wide.is_channels_first(dout)

    def work(tile: Tile, bufs: Buffers) -> np.ndarray:
        # (m, C_out); a channels-first dout read along its planes, (C_out, m), and multiplied as its transpose
        d = tile_channel_rows(dout, tile, bufs, "dout").T if by_plane else tile_rows(dout, tile, bufs, "dout")
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
