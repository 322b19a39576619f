"""The three computations every convolution layer is made of, on (N, H, W, C) arrays, tile by tile.

* :func:`correlate` -- the forward pass: columns of ``x`` times the weights.
* :func:`input_grad` -- the gradient with respect to the input (also the forward pass of a transposed
  convolution): either correlations of ``dout`` with the flipped kernel, one per phase of the stride
  (:mod:`~im2col_cnn.phases`; no scatter at all), or the columns' gradient ``dout · wᵀ`` scattered back by
  col2im, whichever :func:`flipped_correlation_pays` estimates to be cheaper.
* :func:`weight_grad` -- the gradient with respect to the weights: ``colsᵀ · dout`` summed tile by tile.

Weights are ``(kh, kw, C_in // groups, C_out)``. With groups, every product is a stack of one matrix product per
group over the group-major columns of :func:`~im2col_cnn.tile_columns.iter_columns`; a depthwise convolution (one
input channel per group) skips columns altogether (:mod:`~im2col_cnn.depthwise`).

Arrays are (N, H, W, C) but need not be NHWC in memory: an NCHW array's transposed view is read and written
tile by tile, through small NHWC staging buffers, never converted whole. Every buffer is sized by
:func:`~im2col_cnn.workspace.tiles`, whose tiles do not depend on the workspace limit (so neither do the
results) unless one image alone exceeds it.
"""

from __future__ import annotations

import numpy as np

from ..geometry.phases import Phase, column_entries, phases
from ..geometry.windows import WindowGeometry
from ..runtime.workspace import Buffers, Tile, tiles
from . import depthwise, planar
from .columns import iter_columns, scatter_tile

__all__ = ["correlate", "input_grad", "weight_grad", "flipped_correlation_pays", "tile_rows"]

COPY_FLOPS = 35
"""Time of copying one element into a column matrix, in flops of an efficient matrix product (measured: 30-45)."""

SCATTER_FLOPS = 80
"""Time of adding one column entry back by col2im's strided slice-adds, in flops of an efficient matrix product."""


STRIDE_1_BIAS = 1.5
"""At stride 1 the correlation is kept unless the scatter is estimated this many times cheaper: there its
columns are plain copies, still in cache when multiplied, and it measured faster than the estimate says."""


def _product_flops(m: int, k: int, n: int) -> float:
    """Time of an (m, k) @ (k, n) product in flops of an efficient one: narrow products run slower per flop
    (measured with OpenBLAS: about 1.8x at n = 32, 1.4x at n = 64; 1.25x at k = 32)."""
    return 2 * m * k * n * (1 + 8 / k) * (1 + 24 / n)


def tile_rows(a: np.ndarray, tile: Tile, bufs: Buffers, name: str) -> np.ndarray:
    """``a[tile]`` (n_b, h_b, w_b, C) as an (n_b*h_b*w_b, C) matrix: a view where ``a`` allows, else a copy."""
    block = a[tile.images, tile.rows, tile.cols]
    if block.flags.c_contiguous:
        return block.reshape(-1, block.shape[3])  # (n_b, h_b, w_b, C) -> (m, C), no copy
    buf = bufs.get(name, block.shape)
    np.copyto(buf, block)
    return buf.reshape(-1, block.shape[3])  # (n_b, h_b, w_b, C) -> (m, C)


def column_tiles(
    x_shape: tuple[int, ...], itemsize: int, geom: WindowGeometry, limit: int, extra: int, *, always_slab: bool = False
) -> list[Tile]:
    """Tiles for a pass that builds (or scatters) the columns of an ``x_shape`` input.

    Per output position the pass needs its column row and ``extra`` more elements (an output or ``dout`` row);
    plus the staged slab of the tile's input (:meth:`~im2col_cnn.windows.WindowGeometry.tile_scratch`;
    ``always_slab`` counts it even for 1x1). A pointwise geometry's columns are the input itself where that is
    NHWC in memory (no copy, and no ``BLOCK_BYTES`` bound on the tiles), but a copy for an NCHW input, so they
    count against the limit all the same: the tiles must not depend on the layout.
    """
    n, _, _, c = x_shape
    k = geom.kh * geom.kw * c
    block_k = 0 if geom.is_pointwise else k
    scratch = geom.tile_scratch(c, itemsize, (k + extra) * itemsize, always_slab=always_slab)
    return tiles(n, geom.out_h, geom.out_w, block_k * geom.out_h * geom.out_w * itemsize, scratch, limit)


def _grouped_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """(kh, kw, C_in_g, C_out) -> (G, kh*kw*C_in_g, C_out_g): group g's weight matrix."""
    kh, kw, c_in_g, c_out = w.shape
    return w.reshape(kh * kw * c_in_g, groups, c_out // groups).transpose(1, 0, 2)


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    bias: np.ndarray | None = None,
    groups: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``out[n, ho, wo, co] = Σ_{i,j,c} x_pad[n, ho*sh + i*dh, wo*sw + j*dw, c_g0 + c] * w[i, j, c, co] (+ bias)``.

    ``x`` (N, H, W, C_in), ``w`` (kh, kw, C_in // groups, C_out) -> ``out`` (N, Ho, Wo, C_out), dtype of ``x``;
    ``c_g0`` is the first input channel of output channel ``co``'s group. ``out``, if given, is written in
    place (any memory layout, e.g. the NHWC view of an NCHW array) and returned.
    """
    if groups > 1 and w.shape[2] == 1:
        return depthwise.correlate(x, w, geom, limit, bias, out)
    c_out = w.shape[3]
    if out is None:
        out = np.empty((x.shape[0], geom.out_h, geom.out_w, c_out), dtype=x.dtype)
    blocks = planar.plan(x.shape, x.itemsize, geom, c_out, limit, groups)
    if blocks is not None:
        return planar.correlate(x, w, geom, blocks, bias, out)
    wg = _grouped_weights(w, groups)  # (G, Kg, C_out_g)
    bufs = Buffers(x.dtype)
    for tile, cols in iter_columns(x, geom, column_tiles(x.shape, x.itemsize, geom, limit, c_out), groups):
        target = out[tile.images, tile.rows, tile.cols]  # (n_b, h_b, w_b, C_out)
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
            np.copyto(target, block.reshape(target.shape))  # (m, C_out) -> (n_b, h_b, w_b, C_out)
    return out


def flipped_correlation_pays(geom: WindowGeometry, w_shape: tuple[int, ...], groups: int = 1) -> bool:
    """Whether the input gradient should be the flipped-kernel correlation of each phase (:mod:`~im2col_cnn.phases`)
    rather than ``dout · wᵀ`` scattered back by col2im.

    Estimated cost, per image, in flops (:func:`_product_flops`; copies at ``COPY_FLOPS``, scatter adds at
    ``SCATTER_FLOPS``): the correlations multiply ``Σ positions × taps`` column entries of ``C_out`` channels
    (built by copying; with a stride, each result is also copied into the strided input gradient) into
    ``C_in`` outputs; the scatter multiplies ``Ho*Wo`` rows of ``C_out`` into ``kh*kw*C_in`` column entries and
    adds them back. The correlations win at stride 1 when ``C_out`` is not much larger than ``C_in``; the
    scatter wins when the kernel is nearly as large as the input (few outputs, each a huge window). Only shapes
    decide, never the limit.
    """
    kh, kw, c_in_g, c_out = w_shape
    c_in = c_in_g * groups
    p_in, p_out, taps = geom.in_h * geom.in_w, geom.out_h * geom.out_w, kh * kw
    entries = column_entries(geom)  # Σ over phases of positions × taps
    k_phase = max(1, entries * c_out // (groups * p_in))  # the phases' mean depth of product, per group
    correlation = groups * _product_flops(p_in, k_phase, c_in_g) + COPY_FLOPS * entries * c_out
    if (geom.sh, geom.sw) != (1, 1):
        correlation += COPY_FLOPS * p_in * c_in  # each phase's result copied into the strided input gradient
    scatter = groups * _product_flops(p_out, c_out // groups, taps * c_in_g) + SCATTER_FLOPS * p_out * taps * c_in
    if (geom.sh, geom.sw) == (1, 1):
        return correlation <= STRIDE_1_BIAS * scatter
    return correlation <= scatter


def _phase_weights(w: np.ndarray, phase: Phase, groups: int) -> np.ndarray:
    """The flipped weights of one phase's correlation: (m_h, m_w, C_out_g, C_in) from ``w`` (kh, kw, C_in_g, C_out)."""
    kh, kw, c_in_g, c_out = w.shape
    taps = w[list(phase.rows.taps)][:, list(phase.cols.taps)]  # (m_h, m_w, C_in_g, C_out), taps in reading order
    # (m_h, m_w, C_in_g, G, C_out_g) -> (m_h, m_w, C_out_g, G, C_in_g) -> (m_h, m_w, C_out_g, C_in)
    flipped = taps.reshape(*taps.shape[:2], c_in_g, groups, c_out // groups).transpose(0, 1, 4, 3, 2)
    return flipped.reshape(*taps.shape[:2], c_out // groups, c_in_g * groups)


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
    """Gradient of :func:`correlate` with respect to ``x``: ``dout`` (N, Ho, Wo, C_out) -> ``dx`` (N, H, W, C_in).

    ``dx`` (any memory layout; its contents are ignored) is written in place and returned. ``path`` forces
    ``'correlate'`` (a flipped-kernel correlation of ``dout`` per phase of the stride) or ``'scatter'``
    (``dout · wᵀ`` and col2im); by default :func:`flipped_correlation_pays` decides.
    """
    kh, kw, c_in_g, c_out = w.shape
    if groups > 1 and c_in_g == 1:
        dx[...] = 0
        return depthwise.input_grad(dout, w, geom, dx, limit)
    blocks = planar.plan(dx.shape, dx.itemsize, geom, c_out, limit, groups)
    if blocks is not None and path is None:
        planar.input_grad(dout, w, geom, blocks, dx)
        return dx
    if path is None:
        path = "correlate" if flipped_correlation_pays(geom, w.shape, groups) else "scatter"
    if path == "correlate":
        for phase in phases(geom):
            target = dx[:, phase.rows.phase :: geom.sh, phase.cols.phase :: geom.sw]  # (N, Q_h, Q_w, C_in)
            if phase.geom is None:  # no tap reaches these positions
                target[...] = 0
            else:
                correlate(dout, _phase_weights(w, phase, groups), phase.geom, limit, groups=groups, out=target)
        return dx
    wg_t = _grouped_weights(w, groups).transpose(0, 2, 1)  # (G, C_out_g, Kg)
    k = kh * kw * c_in_g * groups
    direct = dx.flags.c_contiguous
    tiles = column_tiles(dx.shape, dout.itemsize, geom, limit, c_out, always_slab=True)
    # Tiles of whole images own their part of dx: each assigns it (no zero-filling). Tiles of a split image
    # overlap at their borders and add into a zeroed dx.
    whole = bool(tiles) and (tiles[0].rows, tiles[0].cols) == (slice(0, geom.out_h), slice(0, geom.out_w))
    if not whole:
        dx[...] = 0
    bufs = Buffers(dout.dtype)
    for tile in tiles:
        d = tile_rows(dout, tile, bufs, "dout")  # (m, C_out)
        m = d.shape[0]
        dcols = bufs.get("dcols", (m, groups, k // groups))  # (m, G, Kg): group-major columns
        if groups == 1:
            np.matmul(d, wg_t[0], out=dcols[:, 0])  # (m, C_out) @ (C_out, K)
        else:  # (G, m, C_out_g) @ (G, C_out_g, Kg) -> (G, m, Kg)
            np.matmul(d.reshape(m, groups, c_out // groups).transpose(1, 0, 2), wg_t, out=dcols.transpose(1, 0, 2))
        if direct:  # scatter straight into dx
            scatter_tile(dcols.reshape(m, k), geom, tile, dx[tile.images], groups=groups, fresh=whole)
            continue
        # Another layout: scatter into an NHWC slab of the input the tile reads, then copy or add it in once.
        r0, r1, c0, c1 = geom.input_extent(tile.rows, tile.cols)
        a0, a1, b0, b1 = max(r0, 0), min(r1, geom.in_h), max(c0, 0), min(c1, geom.in_w)
        if whole:
            a0, a1, b0, b1 = 0, geom.in_h, 0, geom.in_w
        if a1 <= a0 or b1 <= b0:  # the tile's windows read only padding
            continue
        n_b = len(range(tile.images.start, tile.images.stop))
        e = geom.input_extent(tiles[0].rows, tiles[0].cols)  # the largest slab any tile needs
        room = n_b * (e[1] - e[0]) * (e[3] - e[2]) * dx.shape[3]
        slab = bufs.get("slab", (n_b, a1 - a0, b1 - b0, dx.shape[3]), room)  # (n_b, rows, columns read, C_in)
        if not whole:
            slab.fill(0)
        scatter_tile(dcols.reshape(m, k), geom, tile, slab, origin=(a0, b0), groups=groups, fresh=whole)
        if whole:
            np.copyto(dx[tile.images], slab)
        else:
            dx[tile.images, a0:a1, b0:b1] += slab
    return dx


def weight_grad(
    x: np.ndarray,
    dout: np.ndarray,
    geom: WindowGeometry,
    kernel: tuple[int, int],
    limit: int,
    groups: int = 1,
    *,
    with_bias: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradient of :func:`correlate` with respect to ``w``: Σ over tiles, in order, of ``colsᵀ · dout``.

    ``x`` (N, H, W, C_in), ``dout`` (N, Ho, Wo, C_out), any memory layout -> ``(dw, db)``: dw (kh, kw,
    C_in // groups, C_out), and, with ``with_bias``, db (C_out,) where a kernel gets it from the same product
    (None otherwise: the caller sums ``dout`` itself).
    """
    c_in_g, c_out = x.shape[3] // groups, dout.shape[3]
    if groups > 1 and c_in_g == 1:
        return depthwise.weight_grad(x, dout, geom, limit), None
    blocks = planar.plan(x.shape, x.itemsize, geom, c_out, limit, groups)
    if blocks is not None:
        return planar.weight_grad(x, dout, geom, blocks, with_bias)
    k_g = kernel[0] * kernel[1] * c_in_g
    dw = np.zeros((groups, k_g, c_out // groups), dtype=x.dtype)
    partial = np.empty_like(dw)
    bufs = Buffers(x.dtype)
    for tile, cols in iter_columns(x, geom, column_tiles(x.shape, x.itemsize, geom, limit, c_out), groups):
        d = tile_rows(dout, tile, bufs, "dout")  # (m, C_out)
        m = d.shape[0]
        if groups == 1:
            dw[0] += np.matmul(cols.T, d, out=partial[0])  # (K, m) @ (m, C_out)
        else:  # (G, Kg, m) @ (G, m, C_out_g) -> (G, Kg, C_out_g)
            g_cols = cols.reshape(m, groups, k_g).transpose(1, 2, 0)
            dw += np.matmul(g_cols, d.reshape(m, groups, c_out // groups).transpose(1, 0, 2), out=partial)
    # (G, Kg, C_out_g) -> (Kg, G, C_out_g) -> (kh, kw, C_in_g, C_out)
    return dw.transpose(1, 0, 2).reshape(*kernel, c_in_g, c_out), None
