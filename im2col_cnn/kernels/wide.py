"""Convolution kernels for channels-first arrays, in the layout they come in: each product transposed.

A channels-first array ``(N, C, *spatial)`` keeps each channel's plane contiguous, and the transposed products
land their results in planes -- no channels-last copy of the input, the output or the gradients:

* **pointwise** (1x1, stride 1, no padding): the input already is ``colsᵀ``, one ``(C_in, P)`` matrix per
  image (``P = prod(spatial)``). Forward ``out_i = wᵀ · x_i`` and input gradient ``dx_i = w · dout_i`` are one
  stacked product over the batch with no copy at all; the weight gradient sums ``x_i · dout_iᵀ`` over images.
* **planes** (ungrouped, few input channels, :data:`~im2col_cnn.kernels.planar.SMALL_CHANNELS`, a network's first
  layer; and the forward pass alone of a strided convolution of many channels, :func:`strided_forward`):
  ``colsᵀ`` ``(prod(kernel)*C_in [+ 1], n_b, prod(out))`` is ``prod(kernel)`` strided copies of whole planes, in
  runs of the last axis' output size (and a row of ones for the bias); strided and padded, they are copied from
  one zero-padded copy of the planes. Forward ``out_i = wᵀ · colsᵀ_i``, one product per image written into its
  planes; weight gradient ``Σ_i colsᵀ_i · dout_iᵀ``; input gradient ``dcolsᵀ_i = w · dout_i`` per image, added
  back one kernel offset at a time.

Elsewhere (a k x k kernel over many channels) the channels-last columns' long runs are cheaper to build from a
channels-last slab staged tile by tile (:mod:`~im2col_cnn.kernels.columns`) than ``colsᵀ`` in runs of one output
row, and :mod:`~im2col_cnn.kernels.conv`'s own kernels run. Blocks are the image blocks of the channels-last
kernels' tiles, which do not depend on the workspace limit; where those split an image (its scratch exceeds the
limit) :func:`plan` returns None and the channels-last kernels run. ``colsᵀ`` rows are in ``(*taps, c)`` order,
so the weights are the engine's ``(*kernel, C_in // groups, C_out)`` as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..geometry.tiles import Tile
from ..geometry.windows import WindowGeometry, window_view
from ..runtime.layout import caller_layout
from ..runtime.parallel import get_num_threads, map_tiles
from ..runtime.workspace import Buffers
from .columns import ALL, grouped_weights, plane_columns, scatter_taps, stage
from .planar import SMALL_CHANNELS

__all__ = [
    "is_channels_first",
    "kernel",
    "strided_forward",
    "plan",
    "pointwise_correlate",
    "pointwise_input_grad",
    "partials_fit",
    "pointwise_weight_grad",
    "correlate",
    "weight_grad",
    "scatter_input_grad",
]


def is_channels_first(*arrays: np.ndarray) -> bool:
    """Whether each (N, *spatial, C) view is a C-contiguous channels-first array seen channels-last."""
    for a in arrays:  # the channel stride first: a cheap no for every channels-last array
        if (
            a.shape[-1] < 2
            or a.strides[-1] == a.itemsize
            or a.size == 0
            or not caller_layout(a, True).flags.c_contiguous
        ):
            return False
    return True


def kernel(x: np.ndarray, other: np.ndarray, geom: WindowGeometry, groups: int, *, forward: bool = False) -> str | None:
    """Which of these kernels a convolution of ``x`` (N, *spatial, C_in) with ``other`` (its output or its
    gradient) takes: ``'pointwise'``, ``'planes'`` (few input channels), ``'strided'`` (the planes kernel for a
    strided forward pass of many channels: with ``forward``, ``other`` the output of a correlation, where
    :func:`strided_forward` says so), or None (not both channels-first in memory, or none applies)."""
    if not is_channels_first(x, other):
        return None
    if geom.is_pointwise:
        return "pointwise"
    if groups != 1:
        return None
    if x.shape[-1] <= SMALL_CHANNELS:
        return "planes"
    if forward and strided_forward(geom, x.shape[-1], other.shape[-1]):
        return "strided"
    return None


def strided_forward(geom: WindowGeometry, c_in: int, c_out: int) -> bool:
    """Whether a forward pass of many channels runs in the planes kernel: where the windows are strided and it
    is the cheaper one.

    The column kernel transposes the whole input into channels-last slabs (a stride ``s`` reads ``s**ndim`` input
    positions per output position) and its output into the planes, at NumPy's transposing-copy speed (several times
    a plain copy's); the planes kernel copies ``prod(kernel)`` columns per input channel in runs of the last output
    axis (padded, from one plain zero-padded copy of the planes), and its products write the planes directly. A 1x1
    kernel copies just the input it reads (a quarter at stride 2 in 2-D): always. A larger one where the output
    transposes it saves outweigh its columns (``C_out >= 2 * C_in``), its products are as fast as the column
    kernel's (``C_out >= 128``: with fewer rows the transposed product is slower) and its runs are long (24 outputs
    or more). (A batch in one tile runs the column kernel all the same, whose tap groups share it among the
    threads.) NCHW against NHWC, 2 cores, float32 / float64, column -> planes kernel: C5 (64 -> 128, 3x3 stride 2,
    28 wide) 1.16 / 1.08 -> 1.12 / 0.98; 1x1 stride 2, 64 -> 128, 28 wide 1.48 / 1.31 -> 0.96 / 0.94, 256 -> 512,
    7 wide 1.44 / 1.34 -> 1.19 / 1.23; and where it is not taken, 3x3 stride 2: 128 -> 128 1.22 -> 1.33 (float32),
    32 -> 64 1.25 -> 1.34, 128 -> 256 14 wide 1.15 / 1.10 -> 1.18 / 1.18, 256 -> 512 7 wide 1.18 -> 1.44.
    """
    if max(geom.stride) == 1:
        return False
    if geom.taps == 1:
        return True
    return c_out >= max(2 * c_in, 128) and geom.out_shape[-1] >= 24


def plan(tiles: list[Tile], geom: WindowGeometry) -> list[slice] | None:
    """The image blocks of ``tiles`` (:func:`~im2col_cnn.kernels.conv.column_tiles`, the channels-last kernels'
    own), or None where they split an image (one image's scratch exceeds the limit): blocks that do not depend
    on the limit, so the sums over them run in the same order for every limit."""
    if not tiles or tiles[0].box != geom.full_box():
        return None
    return [tile.images for tile in tiles]


def _stacked(a: np.ndarray, groups: int) -> np.ndarray:
    """(N, *spatial, C) seen channels-last, channels-first in memory -> (N, G, C_g, P), a view."""
    return caller_layout(a, True).reshape(a.shape[0], groups, a.shape[-1] // groups, -1)


def _image_blocks(n: int) -> list[slice]:
    """Blocks of images for products made image by image (stacked products: one per image, whichever block it is
    in, so the blocks need not be the same for every thread count): four per thread, for an even load."""
    step = max(1, -(-n // (4 * get_num_threads())))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def pointwise_correlate(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, out: np.ndarray, groups: int = 1
) -> np.ndarray:
    """A pointwise forward pass: ``out_i = wᵀ · x_i`` per image and group, into ``out``'s planes."""
    planes, xs = _stacked(out, groups), _stacked(x, groups)  # (N, G, C_out_g, P), (N, G, C_in_g, P)
    w_t = grouped_weights(w, groups).transpose(0, 2, 1)  # (G, C_out_g, C_in_g)

    def work(images: slice, _: None) -> None:
        # (G, C_out_g, C_in_g) @ (n_b, G, C_in_g, P) -> (n_b, G, C_out_g, P)
        np.matmul(w_t, xs[images], out=planes[images])
        if bias is not None:
            planes[images] += bias.reshape(groups, -1, 1)

    map_tiles(work, _image_blocks(x.shape[0]), lambda: None)
    return out


def pointwise_input_grad(dout: np.ndarray, w: np.ndarray, dx: np.ndarray, groups: int = 1) -> None:
    """A pointwise input gradient: ``dx_i = w · dout_i`` per image and group, into ``dx``'s planes."""
    wg, ds, dxs = grouped_weights(w, groups), _stacked(dout, groups), _stacked(dx, groups)

    def work(images: slice, _: None) -> None:
        np.matmul(wg, ds[images], out=dxs[images])  # (G, C_in_g, C_out_g) @ (n_b, G, C_out_g, P)

    map_tiles(work, _image_blocks(dout.shape[0]), lambda: None)


def partials_fit(k_g: int, c_out_g: int, geom: WindowGeometry, *, pointwise: bool) -> bool:
    """Whether one image's weight-gradient product ``colsᵀ_i · dout_iᵀ`` (K_g x C_out_g per group) fits the scratch
    the channels-last tiles budget per image for what these kernels do not copy: ``dout``'s rows, and for a
    pointwise geometry the columns too."""
    return k_g * c_out_g <= (c_out_g + (k_g if pointwise else 0)) * math.prod(geom.out_shape)


def _sum_partials(
    blocks: list[slice],
    partials: Callable[[slice, Buffers], tuple[np.ndarray, np.ndarray]],
    dw: np.ndarray,
    threads: int,
) -> None:
    """``dw += Σ_i cols_i · d_iᵀ``, block by block in order (whichever thread made a block's products):
    ``partials(images, bufs)`` gives a block's ``cols`` (n_b, G, K_g, P) and ``d`` (n_b, G, C_out_g, P); ``dw`` is
    (G, K_g, C_out_g)."""

    def work(images: slice, bufs: Buffers) -> np.ndarray:
        cols, d = partials(images, bufs)
        partial = bufs.get("partial", (cols.shape[0], *dw.shape))
        np.matmul(cols, d.transpose(0, 1, 3, 2), out=partial)  # (n_b, G, K_g, P) @ (n_b, G, P, C_out_g)
        return partial.sum(axis=0)

    map_tiles(work, blocks, lambda: Buffers(dw.dtype), max_threads=threads, then=lambda _, s, __: np.add(dw, s, out=dw))


def pointwise_weight_grad(
    x: np.ndarray, dout: np.ndarray, blocks: list[slice], groups: int = 1, threads: int = 1
) -> np.ndarray:
    """A pointwise weight gradient: Σ over images, in order, of ``x_i · dout_iᵀ`` -> dw (1, ..., C_in_g, C_out)."""
    c_in, c_out = x.shape[-1], dout.shape[-1]
    dw = np.zeros((groups, c_in // groups, c_out // groups), dtype=x.dtype)
    xs, ds = _stacked(x, groups), _stacked(dout, groups)
    _sum_partials(blocks, lambda images, _: (xs[images], ds[images]), dw, threads)
    # (G, C_in_g, C_out_g) -> (C_in_g, G, C_out_g) -> (*kernel, C_in_g, C_out)
    return dw.transpose(1, 0, 2).reshape(*(1,) * (x.ndim - 2), c_in // groups, c_out)


def _columns_t(x: np.ndarray, images: slice, geom: WindowGeometry, bufs: Buffers, ones: bool = False) -> np.ndarray:
    """``colsᵀ`` of ``x[images]`` (n_b, *spatial, C; channels-first in memory): (prod(kernel)*C [+ 1], n_b, P),
    rows ``(*taps, c)``, then with ``ones`` a row of ones."""
    block = caller_layout(x[images], True)  # (n_b, C, *spatial)
    n_b, c = block.shape[:2]
    k, p = geom.taps * c, math.prod(geom.out_shape)
    cols = bufs.get("cols_t", (k + ones, n_b, p))
    if geom.has_padding and max(geom.stride) > 1:  # border strips at every offset: padded once
        _staged_columns_t(block, geom, bufs, cols[:k])
    else:
        plane_columns(block, geom, cols[:k], channel_major=False)  # (K, n_b, P)
    if ones:
        cols[k] = 1
    return cols


def _staged_columns_t(block: np.ndarray, geom: WindowGeometry, bufs: Buffers, cols: np.ndarray) -> None:
    """``colsᵀ`` (prod(kernel)*C, n_b, P) of ``block`` (n_b, C, *spatial), rows ``(*taps, c)``, from a zero-padded
    copy of its planes (buffer 'slab', the tile's slab of the column kernel's scratch): one plain copy, then one
    strided copy of all the windows, with no border strips to fill per kernel offset (C5's columns, float32, one
    thread: 7.8 ms against 8.8 by :func:`plane_columns`)."""
    n_b, c = block.shape[:2]
    nd = geom.ndim
    planes = block.reshape(n_b * c, *block.shape[2:], 1)  # each channel plane an image of one channel
    span = geom.span(geom.full_box())
    size = n_b * c * math.prod(hi - lo for lo, hi in span)
    slab = stage(planes, slice(0, n_b * c), span, bufs.get("slab", (size,)))  # (n_b*C, *span, 1)
    # (n_b*C, *out, *kernel, 1) -> (n_b, C, *out, *kernel)
    windows = window_view(slab, geom).reshape(n_b, c, *geom.out_shape, *geom.kernel)
    rows = cols.reshape(*geom.kernel, c, n_b, *geom.out_shape)  # seen as (n_b, C, *out, *kernel):
    np.copyto(rows.transpose(nd + 1, nd, *range(nd + 2, 2 * nd + 2), *range(nd)), windows)


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    blocks: list[slice],
    bias: np.ndarray | None,
    out: np.ndarray,
    threads: int = 1,
) -> np.ndarray:
    """The forward pass: ``x`` (N, *spatial, C_in) and ``out`` (N, *out, C_out), both channels-first in memory,
    and ``w`` (*kernel, C_in, C_out): ``out_i = wᵀ · colsᵀ_i`` image by image, written into ``out``'s planes, the
    bias added in the product (a row of ones in ``colsᵀ``). Blocks run on up to ``threads`` threads."""
    c_out = w.shape[-1]
    w_t = w.reshape(-1, c_out).T  # (C_out, K), a view
    if bias is not None:
        w_t = np.concatenate([w_t, bias.reshape(c_out, 1)], axis=1)  # (C_out, K + 1): the bias meets the ones

    def work(images: slice, bufs: Buffers) -> None:
        cols_t = _columns_t(x, images, geom, bufs, bias is not None)  # (K [+ 1], n_b, P)
        planes = _stacked(out[images], 1)[:, 0]  # (n_b, C_out, P)
        # One product per image, each written into its planes: (C_out, K [+ 1]) @ (n_b, K [+ 1], P)
        np.matmul(w_t, cols_t.transpose(1, 0, 2), out=planes)

    map_tiles(work, blocks, lambda: Buffers(x.dtype), max_threads=threads)
    return out


def weight_grad(
    x: np.ndarray, dout: np.ndarray, geom: WindowGeometry, blocks: list[slice], threads: int = 1
) -> np.ndarray:
    """Σ over images, in order, of ``colsᵀ_i · dout_iᵀ`` -> dw (*kernel, C_in, C_out); ``x`` and ``dout`` are
    channels-first in memory. (The bias gradient is :func:`~im2col_cnn.kernels.bias.bias_grad`'s.)"""
    c_out = dout.shape[-1]
    dw = np.zeros((1, geom.taps * x.shape[-1], c_out), dtype=x.dtype)
    ds = _stacked(dout, 1)

    def partials(images: slice, bufs: Buffers) -> tuple[np.ndarray, np.ndarray]:
        cols_t = _columns_t(x, images, geom, bufs)  # (K, n_b, P)
        return cols_t.transpose(1, 0, 2)[:, None], ds[images]  # per image: (1, K, P), (1, C_out, P)

    _sum_partials(blocks, partials, dw, threads)
    return dw.reshape(*geom.kernel, -1, c_out)


def scatter_input_grad(
    dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, blocks: list[slice], dx: np.ndarray, threads: int = 1
) -> None:
    """The input gradient: ``dcolsᵀ_i = w · dout_i`` image by image, added back into ``dx``'s planes one kernel
    offset at a time. ``dout`` (N, *out, C_out) and ``dx`` (N, *spatial, C_in) are channels-first in memory."""
    wg = grouped_weights(w, 1)  # (1, K, C_out)
    ds = _stacked(dout, 1)

    def work(images: slice, bufs: Buffers) -> None:
        n_b = images.stop - images.start
        dcols = bufs.get("dcols_t", (n_b, 1, wg.shape[1], ds.shape[-1]))
        np.matmul(wg, ds[images], out=dcols)  # (1, K, C_out) @ (n_b, 1, C_out, P)
        per_tap = dcols.reshape(n_b, 1, *geom.kernel, dx.shape[-1], *geom.out_shape)
        target = caller_layout(dx[images], True)[:, None]  # (n_b, 1, C_in, *spatial)
        scatter_taps(lambda taps, p=per_tap: p[(ALL, ALL, *taps)], geom, target, 3)

    map_tiles(work, blocks, lambda: Buffers(dout.dtype), max_threads=threads)
