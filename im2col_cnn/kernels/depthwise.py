"""Depthwise convolution (one input channel per group), without columns.

With one input channel per group the per-group matrix products would be tiny (kh*kw by the channel
multiplier), so these kernels instead accumulate one strided slice of the input per kernel offset, for all
channels at once -- the same per-offset slices pooling uses. Weights are ``(kh, kw, 1, C_out)`` with
``C_out = C_in * multiplier``; output channel ``c * multiplier + q`` reads input channel ``c``.

The work runs tile by tile over the output (:func:`~im2col_cnn.workspace.tiles`): each tile's products go
through one reused buffer (``out=``), and arrays that are not NHWC in memory (NCHW views) are staged through
NHWC buffers of one tile, so scratch stays within the workspace limit. The forward pass and the input gradient
add each output's (input's) terms in kernel-offset order whatever the tiles; the weight gradient sums tile by
tile over tiles that do not depend on the limit (unless one image alone exceeds it).
"""

from __future__ import annotations

import numpy as np

from ..geometry.windows import WindowGeometry
from ..runtime.workspace import Buffers, Tile, tiles
from .columns import stage

__all__ = ["correlate", "input_grad", "weight_grad"]


def _taps(w: np.ndarray, c_in: int) -> np.ndarray:
    """(kh, kw, 1, C_out) -> (kh, kw, C_in, multiplier): each offset's weights, per input channel."""
    return w.reshape(w.shape[0], w.shape[1], c_in, w.shape[3] // c_in)


def _tiles(x_shape: tuple[int, ...], c_out: int, itemsize: int, geom: WindowGeometry, limit: int) -> list[Tile]:
    """Tiles of the output with room, per output position, for two rows of C_out (an accumulator or a copy of
    ``dout``, and the products' buffer) and the staged input slab."""
    n, _, _, c_in = x_shape
    scratch = geom.tile_scratch(c_in, itemsize, 2 * c_out * itemsize, always_slab=True)
    return tiles(n, geom.out_h, geom.out_w, geom.out_h * geom.out_w * c_out * itemsize, scratch, limit)


def _size(s: slice) -> int:
    return len(range(s.start, s.stop))


def _input_block(
    x: np.ndarray, geom: WindowGeometry, tile: Tile, bufs: Buffers, room: int
) -> tuple[np.ndarray, int, int]:
    """The part of ``x`` (N, H, W, C) that ``tile``'s windows read (clipped to the input), NHWC-contiguous
    where ``x`` is not, and the input position of its [:, 0, 0]."""
    r0, r1, c0, c1 = geom.input_extent(tile.rows, tile.cols)
    a0, a1, b0, b1 = max(r0, 0), min(r1, geom.in_h), max(c0, 0), min(c1, geom.in_w)
    if x.strides[3] == x.itemsize or x.shape[3] == 1:
        return x[tile.images, a0:a1, b0:b1], a0, b0
    size = _size(tile.images) * (a1 - a0) * (b1 - b0) * x.shape[3]
    return stage(x, tile.images, (a0, a1, b0, b1), bufs.get("slab", (size,), room)), a0, b0


def _contiguous(a: np.ndarray, bufs: Buffers, room: int) -> np.ndarray:
    """``a`` itself if C-contiguous, else a copy of it in buffer ``'dout'``."""
    if a.flags.c_contiguous:
        return a
    copy = bufs.get("dout", a.shape, room)
    np.copyto(copy, a)
    return copy


def _room(tiles: list[Tile], geom: WindowGeometry, c_in: int, c_out: int) -> tuple[int, int]:
    """Elements of the largest tile's output (C_out channels) and of its input slab (C_in channels)."""
    images, rows, cols = (_size(s) for s in tiles[0])
    r0, r1, c0, c1 = geom.input_extent(tiles[0].rows, tiles[0].cols)
    return images * rows * cols * c_out, images * (r1 - r0) * (c1 - c0) * c_in


def _shift(s: slice, origin: int) -> slice:
    return slice(s.start - origin, s.stop - origin, s.step)


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    bias: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Depthwise forward: ``x`` (N, H, W, C_in), ``w`` (kh, kw, 1, C_out) -> ``out`` (N, Ho, Wo, C_out).

    ``out``, if given, is written in place (any memory layout) and returned.
    """
    n, _, _, c_in = x.shape
    c_out = w.shape[3]
    taps = _taps(w, c_in)
    mult = taps.shape[3]
    if out is None:
        out = np.empty((n, geom.out_h, geom.out_w, c_out), dtype=x.dtype)
    # Start from an offset that every window reads inside the input (a product, not a sum), if one exists; the
    # order of the terms is then the same for every output, whatever the tiles.
    offsets = list(geom.offset_slices())
    full = [o[:2] for o in offsets if o[2] == (slice(0, geom.out_h), slice(0, geom.out_w))][:1]
    tiles = _tiles(x.shape, c_out, x.itemsize, geom, limit)
    if not tiles:
        return out
    room, slab_room = _room(tiles, geom, c_in, c_out)
    bufs = Buffers(x.dtype)
    for tile in tiles:
        target = out[tile.images, tile.rows, tile.cols]  # (n_b, h_b, w_b, C_out)
        direct = target.flags.c_contiguous
        acc = target if direct else bufs.get("acc", target.shape, room)
        acc5 = acc.reshape(*acc.shape[:3], c_in, mult)  # (n_b, h_b, w_b, C_in, multiplier)
        xb, o_r, o_c = _input_block(x, geom, tile, bufs, slab_room)
        tile_offsets = list(geom.offset_slices(tile.rows, tile.cols))
        if full:
            first = next(o for o in tile_offsets if o[:2] == full[0])
            tile_offsets.remove(first)
            i, j, _, (irow, icol) = first
            np.multiply(xb[:, _shift(irow, o_r), _shift(icol, o_c), :, None], taps[i, j], out=acc5)
        else:
            acc.fill(0)
        for i, j, (orow, ocol), (irow, icol) in tile_offsets:
            o = acc5[:, orow, ocol]
            prod = bufs.get("prod", o.shape, room)
            # (n_b, h, w, C_in, 1) * (C_in, multiplier)
            np.multiply(xb[:, _shift(irow, o_r), _shift(icol, o_c), :, None], taps[i, j], out=prod)
            o += prod
        if bias is not None:
            acc += bias
        if not direct:
            np.copyto(target, acc)
    return out


def input_grad(dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, dx: np.ndarray, limit: int) -> np.ndarray:
    """Depthwise gradient with respect to the input: ``dout`` (N, Ho, Wo, C_out) -> ``dx`` (N, H, W, C_in).

    ``dx`` must be zero-filled (any memory layout); it is written in place and returned.
    """
    c_in = dx.shape[3]
    taps = _taps(w, c_in)
    mult = taps.shape[3]
    direct = dx.flags.c_contiguous
    tiles = _tiles(dx.shape, w.shape[3], dx.itemsize, geom, limit)
    if not tiles:
        return dx
    room, slab_room = _room(tiles, geom, c_in, w.shape[3])
    bufs = Buffers(dx.dtype)
    for tile in tiles:
        d = _contiguous(dout[tile.images, tile.rows, tile.cols], bufs, room)  # (n_b, h_b, w_b, C_out)
        d5 = d.reshape(*d.shape[:3], c_in, mult)  # (n_b, h_b, w_b, C_in, multiplier)
        if direct:
            target, o_r, o_c = dx[tile.images], 0, 0
        else:  # accumulate in a zeroed NHWC slab of the input the tile reaches, then add it in once
            r0, r1, c0, c1 = geom.input_extent(tile.rows, tile.cols)
            o_r, o_c = max(r0, 0), max(c0, 0)
            rows, cols = slice(o_r, min(r1, geom.in_h)), slice(o_c, min(c1, geom.in_w))
            if rows.stop <= rows.start or cols.stop <= cols.start:  # the tile's windows read only padding
                continue
            target = bufs.get("slab", (d.shape[0], _size(rows), _size(cols), c_in), slab_room)
            target.fill(0)
        for i, j, (orow, ocol), (irow, icol) in geom.offset_slices(tile.rows, tile.cols):
            g = target[:, _shift(irow, o_r), _shift(icol, o_c)]
            prod = bufs.get("prod", g.shape, room)
            if mult == 1:
                np.multiply(d5[:, orow, ocol, :, 0], taps[i, j, :, 0], out=prod)
            else:
                np.einsum("nhwcq,cq->nhwc", d5[:, orow, ocol], taps[i, j], out=prod)
            g += prod
        if not direct:
            dx[tile.images, rows, cols] += target
    return dx


def weight_grad(x: np.ndarray, dout: np.ndarray, geom: WindowGeometry, limit: int) -> np.ndarray:
    """Depthwise gradient with respect to the weights: -> dw (kh, kw, 1, C_out), summed tile by tile."""
    c_in, c_out = x.shape[3], dout.shape[3]
    dw = np.zeros((geom.kh, geom.kw, c_in, c_out // c_in), dtype=x.dtype)
    tiles = _tiles(x.shape, c_out, x.itemsize, geom, limit)
    if not tiles:
        return dw.reshape(geom.kh, geom.kw, 1, c_out)
    room, slab_room = _room(tiles, geom, c_in, c_out)
    bufs = Buffers(x.dtype)
    for tile in tiles:
        d = _contiguous(dout[tile.images, tile.rows, tile.cols], bufs, room)  # (n_b, h_b, w_b, C_out)
        d5 = d.reshape(*d.shape[:3], c_in, c_out // c_in)  # (n_b, h_b, w_b, C_in, multiplier)
        xb, o_r, o_c = _input_block(x, geom, tile, bufs, slab_room)
        for i, j, (orow, ocol), (irow, icol) in geom.offset_slices(tile.rows, tile.cols):
            # Σ over (n, h, w) of x[..., c] * dout[..., c, q] -> (C_in, multiplier)
            dw[i, j] += np.einsum("nhwc,nhwcq->cq", xb[:, _shift(irow, o_r), _shift(icol, o_c)], d5[:, orow, ocol])
    return dw.reshape(geom.kh, geom.kw, 1, c_out)
