"""Depthwise convolution (one input channel per group), without columns.

With one input channel per group the per-group matrix products would be tiny (``prod(kernel)`` by the channel
multiplier), so these kernels instead accumulate one strided slice of the input per kernel offset, for all
channels at once -- the same per-offset slices pooling uses; from ``EINSUM_CHANNELS`` channels the forward pass and
the stride-1 input gradient contract a tile's whole window view with the weights in one ``np.einsum`` (the same
terms, a multiply-add each, along runs of channels). Weights are ``(*kernel, 1, C_out)`` with
``C_out = C_in * multiplier``; output channel ``c * multiplier + q`` reads input channel ``c``.

The work runs tile by tile over the output (:func:`~im2col_cnn.geometry.tiles.conv_tiles`): each tile's products
go through one reused buffer (``out=``), and arrays that are not channels-last in memory are staged through
channels-last buffers of one tile, so scratch stays within the workspace limit. The forward pass and the input
gradient add each output's (input's) terms in kernel-offset order whatever the tiles (the einsum input gradient
in flipped order: a split image, which keeps the offset-by-offset kernel, may differ from it in the last bits);
the weight gradient sums tile by tile over tiles that do not depend on the limit (unless one image alone exceeds
it).
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.tiles import Tile, conv_tiles, image_by_image, image_of, opens_image, tile_sizes
from ..geometry.windows import WindowGeometry, window_view
from ..runtime.layout import add_planes
from ..runtime.parallel import get_num_threads, map_blocks
from ..runtime.workspace import Buffers
from .columns import ALL, contiguous, shift, stage, tile_source

__all__ = ["correlate", "input_grad", "weight_grad", "EINSUM_CHANNELS"]

EINSUM_CHANNELS = 128
"""A depthwise convolution of this many channels or more (multiplier 1) contracts each tile's window view with the
weights in one ``np.einsum`` (a multiply-add per element and offset, along runs of channels) instead of a multiply
and an add per kernel offset: the forward pass, and at stride 1 the input gradient (:func:`_flipped_correlation`).
The weights are made contiguous first: PyTorch's layout, a run of 1 along the channels, made the NCHW forward pass
2.7x slower. Float32 3x3, min of 3 alternated rounds, 1 core, forward / backward before -> after (ms):
(32, 28, 28, 128) 12.7 -> 9.2 / 21.3 -> 17.4, (32, 14, 14, 256) 5.8 -> 3.6 / 9.9 -> 7.2, NCHW (32, 128, 28, 28)
23.0 -> 13.7 / 35.9 -> 26.0; below 128 channels einsum loses ((32, 112, 112, 32) forward 72 -> 96)."""


def _taps(w: np.ndarray, c_in: int) -> np.ndarray:
    """(*kernel, 1, C_out) -> (*kernel, C_in, multiplier): each offset's weights, per input channel."""
    return w.reshape(*w.shape[:-2], c_in, w.shape[-1] // c_in)


def _tiles(x_shape: tuple[int, ...], c_out: int, itemsize: int, geom: WindowGeometry, limit: int) -> list[Tile]:
    """Tiles of the output with room, per output position, for two rows of C_out (an accumulator or a copy of
    ``dout``, and the products' buffer) and the staged input slab."""
    n, c_in = x_shape[0], x_shape[-1]
    scratch = geom.tile_scratch(c_in, itemsize, 2 * c_out * itemsize, always_slab=True)
    return conv_tiles(n, geom.out_shape, math.prod(geom.out_shape) * c_out * itemsize, scratch, limit)


def _input_block(
    x: np.ndarray, geom: WindowGeometry, tile: Tile, bufs: Buffers, room: int
) -> tuple[np.ndarray, list[int]]:
    """The part of ``x`` (N, *spatial, C) that ``tile``'s windows read (clipped to the input), channels-last
    contiguous where ``x`` is not, and the input position of its first element."""
    reach = geom.reach(tile.box)
    if x.strides[-1] == x.itemsize or x.shape[-1] == 1:
        return x[(tile.images, *(slice(a, b) for a, b in reach))], [a for a, _ in reach]
    n_b, _ = tile_sizes(tile)
    size = n_b * math.prod(b - a for a, b in reach) * x.shape[-1]
    return stage(x, tile.images, reach, bufs.get("slab", (size,), room)), [a for a, _ in reach]


def _room(tiles: list[Tile], geom: WindowGeometry, c_in: int, c_out: int) -> tuple[int, int]:
    """Elements of the largest tile's output (C_out channels) and of its input slab (C_in channels)."""
    n_b, sizes = tile_sizes(tiles[0])
    reach = math.prod(hi - lo for lo, hi in geom.span(tiles[0].box))
    return n_b * math.prod(sizes) * c_out, n_b * reach * c_in


def _threads(room: int, slab_room: int, itemsize: int, limit: int, more: int = 0) -> int:
    """How many threads may work on tiles at once within ``limit``: each needs the largest tile's buffers (two
    output-sized ones and a slab) and ``more`` bytes of its own."""
    return max(1, limit // max((2 * room + slab_room) * itemsize + more, 1))


def _at(box: tuple[slice, ...], origin: list[int]) -> tuple[slice, ...]:
    return tuple(shift(s, o) for s, o in zip(box, origin, strict=True))


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    bias: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Depthwise forward: ``x`` (N, *spatial, C_in), ``w`` (*kernel, 1, C_out) -> ``out`` (N, *out, C_out).

    ``out``, if given, is written in place (any memory layout) and returned.
    """
    c_in, c_out = x.shape[-1], w.shape[-1]
    taps = _taps(w, c_in)
    mult = taps.shape[-1]
    if out is None:
        out = np.empty((x.shape[0], *geom.out_shape, c_out), dtype=x.dtype)
    # Start from an offset that every window reads inside the input (a product, not a sum), if one exists; the
    # order of the terms is then the same for every output, whatever the tiles.
    full_box = geom.full_box()
    full = [combo for combo, out_box, _ in geom.offsets() if out_box == full_box][:1]
    tiles = _tiles(x.shape, c_out, x.itemsize, geom, limit)
    if not tiles:
        return out
    room, slab_room = _room(tiles, geom, c_in, c_out)

    contract = mult == 1 and c_in >= EINSUM_CHANNELS
    outs, offsets = "uvw"[: geom.ndim], "ijk"[: geom.ndim]  # the spatial and kernel axes' subscripts
    spec = f"n{outs}{offsets}c,{offsets}c->n{outs}c"
    weights = np.ascontiguousarray(taps[..., 0]) if contract else None  # PyTorch's layout: runs of 1 along C

    def work(tile: Tile, bufs: Buffers) -> None:
        target = out[(tile.images, *tile.box)]  # (n_b, *sizes, C_out)
        direct = target.flags.c_contiguous
        acc = target if direct else bufs.get("acc", target.shape, room)
        acc5 = acc.reshape(*acc.shape[:-1], c_in, mult)  # (n_b, *sizes, C_in, multiplier)
        if contract:  # (n_b, *sizes, *kernel, C) . (*kernel, C) -> (n_b, *sizes, C), the padding a zeroed slab
            view = window_view(tile_source(x, geom, tile, tiles[0], bufs), geom, tile_sizes(tile)[1])
            np.einsum(spec, view, weights, out=acc)
            if bias is not None:
                acc += bias
            if not direct:
                np.copyto(target, acc)
            return
        xb, origin = _input_block(x, geom, tile, bufs, slab_room)
        tile_offsets = list(geom.offsets(tile.box))
        if full:
            first = next(o for o in tile_offsets if o[0] == full[0])
            tile_offsets.remove(first)
            combo, _, in_box = first
            np.multiply(xb[(ALL, *_at(in_box, origin), ALL, None)], taps[combo], out=acc5)
        else:
            acc.fill(0)
        for combo, out_box, in_box in tile_offsets:
            o = acc5[(ALL, *out_box)]
            prod = bufs.get("prod", o.shape, room)
            # (n_b, *o, C_in, 1) * (C_in, multiplier)
            np.multiply(xb[(ALL, *_at(in_box, origin), ALL, None)], taps[combo], out=prod)
            o += prod
        if bias is not None:
            acc += bias
        if not direct:
            np.copyto(target, acc)

    map_blocks(work, tiles, lambda: Buffers(x.dtype), max_threads=_threads(room, slab_room, x.itemsize, limit))
    return out


def input_grad(dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, dx: np.ndarray, limit: int) -> np.ndarray:
    """Depthwise gradient with respect to the input: ``dout`` (N, *out, C_out) -> ``dx`` (N, *spatial, C_in).

    ``dx`` (any memory layout; its contents are ignored) is written in place and returned: each tile of whole
    images zeroes its images and adds into them; the tiles of a split image add into it in their order, the
    first zeroing it.
    """
    c_in = dx.shape[-1]
    taps = _taps(w, c_in)
    mult = taps.shape[-1]
    direct = dx.flags.c_contiguous
    tiles = _tiles(dx.shape, w.shape[-1], dx.itemsize, geom, limit)
    if not tiles:
        return dx
    room, slab_room = _room(tiles, geom, c_in, w.shape[-1])
    nd = geom.ndim
    letters = "uvw"[:nd]  # the spatial axes' subscripts
    contract = f"n{letters}cq,cq->n{letters}c"
    whole = tiles[0].box == geom.full_box()
    # stride 1, and padding of at least half the window span (as "same" has): the padded dout is then no larger
    # than the input slab the tiles were sized for
    padded_fits = all(a.s == 1 and 2 * a.lo >= (a.k - 1) * a.d for a in geom.axes)
    if whole and mult == 1 and c_in >= EINSUM_CHANNELS and padded_fits:
        return _flipped_correlation(dout, taps[..., 0], geom, dx, tiles, room, limit)

    def accumulate(tile: Tile, bufs: Buffers) -> tuple[np.ndarray, tuple[tuple[int, int], ...]] | None:
        """The tile's gradient, in dx itself (channels-last in memory, whole images) or in a slab of its reach:
        added into dx here for whole images, else returned for :func:`add_in`."""
        if whole:  # the tile owns its images of dx
            dx[tile.images] = 0
        d = contiguous(dout[(tile.images, *tile.box)], bufs, "dout", room)  # (n_b, *sizes, C_out)
        d5 = d.reshape(*d.shape[:-1], c_in, mult)  # (n_b, *sizes, C_in, multiplier)
        if direct and whole:
            target, origin, reach = dx[tile.images], [0] * nd, ()
        else:  # accumulate in a zeroed channels-last slab of the input the tile reaches, then add it in once
            reach = geom.reach(tile.box)
            if any(b <= a for a, b in reach):  # the tile's windows read only padding
                return None
            origin = [a for a, _ in reach]
            target = bufs.get("slab", (d.shape[0], *(b - a for a, b in reach), c_in), slab_room)
            target.fill(0)
        for combo, out_box, in_box in geom.offsets(tile.box):
            g = target[(ALL, *_at(in_box, origin))]
            prod = bufs.get("prod", g.shape, room)
            if mult == 1:
                np.multiply(d5[(ALL, *out_box, ALL, 0)], taps[(*combo, ALL, 0)], out=prod)
            else:
                np.einsum(contract, d5[(ALL, *out_box)], taps[combo], out=prod)
            g += prod
        if not reach:
            return None
        if whole:
            add_planes(dx[(tile.images, *(slice(a, b) for a, b in reach))], target)
            return None
        return target, reach

    def add_in(tile: Tile, slab: tuple[np.ndarray, tuple[tuple[int, int], ...]] | None, _: Buffers) -> None:
        if opens_image(tile):  # its turn comes first among its image's tiles
            dx[tile.images] = 0
        if slab is not None:
            add_planes(dx[(tile.images, *(slice(a, b) for a, b in slab[1]))], slab[0])

    threads = _threads(room, slab_room, dx.itemsize, limit)
    if whole:
        map_blocks(accumulate, tiles, lambda: Buffers(dx.dtype), max_threads=threads)
        return dx
    # Tiles of a split image overlap at their borders: their slabs are added into dx in tile order -- each
    # image's in theirs, the images' in any order.
    order = image_by_image(tiles, min(threads, get_num_threads()))
    map_blocks(accumulate, order, lambda: Buffers(dx.dtype), max_threads=threads, then=add_in, then_key=image_of)
    return dx


def _flipped_correlation(
    dout: np.ndarray, taps: np.ndarray, geom: WindowGeometry, dx: np.ndarray, tiles: list[Tile], room: int, limit: int
) -> np.ndarray:
    """The input gradient at stride 1, 128 channels or more, tiles of whole images: each input position gathers
    the outputs whose windows read it, ``dx[y] = sum_t dout[y + lo - t*d] * w[t]`` per axis -- the windows of
    ``dout`` zero-padded by ``(k-1)*d - lo`` before, read with the kernel flipped -- in one ``np.einsum`` a tile.
    ``taps`` is (*kernel, C)."""
    flipped = np.ascontiguousarray(taps[(slice(None, None, -1),) * geom.ndim])  # (*kernel, C), runs along C
    outs, offsets = "uvw"[: geom.ndim], "ijk"[: geom.ndim]
    spec = f"n{outs}{offsets}c,{offsets}c->n{outs}c"
    spatial = dx.shape[1:-1]
    # per axis, the dout positions input 0's first flipped tap reads, to those the last input's last one reads
    extent = [((a.k - 1) * -a.d + a.lo, a.lo + size) for a, size in zip(geom.axes, spatial, strict=True)]
    n0 = tile_sizes(tiles[0])[0]
    slab_room = n0 * math.prod(hi - lo for lo, hi in extent) * dx.shape[-1]
    direct = dx.flags.c_contiguous  # else each tile's gradient is copied into the caller's layout

    def work(tile: Tile, bufs: Buffers) -> None:
        target = dx[tile.images]  # (n_b, *spatial, C)
        acc = target if direct else bufs.get("acc", target.shape, n0 * math.prod(spatial) * dx.shape[-1])
        slab = stage(dout, tile.images, extent, bufs.get("slab", (slab_room,), slab_room))
        # (n_b, *spatial, *kernel, C) . (*kernel, C) -> (n_b, *spatial, C)
        np.einsum(spec, window_view(slab, geom, spatial), flipped, out=acc)
        if not direct:
            np.copyto(target, acc)

    threads = _threads(room, slab_room, dx.itemsize, limit)
    map_blocks(work, tiles, lambda: Buffers(dx.dtype), max_threads=threads)
    return dx


def weight_grad(x: np.ndarray, dout: np.ndarray, geom: WindowGeometry, limit: int) -> np.ndarray:
    """Depthwise gradient with respect to the weights: -> dw (*kernel, 1, C_out), summed tile by tile."""
    c_in, c_out = x.shape[-1], dout.shape[-1]
    dw = np.zeros((*geom.kernel, c_in, c_out // c_in), dtype=x.dtype)
    tiles = _tiles(x.shape, c_out, x.itemsize, geom, limit)
    if not tiles:
        return dw.reshape(*geom.kernel, 1, c_out)
    room, slab_room = _room(tiles, geom, c_in, c_out)
    letters = "uvw"[: geom.ndim]  # the spatial axes' subscripts
    contract = f"n{letters}c,n{letters}cq->cq"

    def work(tile: Tile, bufs: Buffers) -> np.ndarray:
        d = contiguous(dout[(tile.images, *tile.box)], bufs, "dout", room)  # (n_b, *sizes, C_out)
        d5 = d.reshape(*d.shape[:-1], c_in, c_out // c_in)  # (n_b, *sizes, C_in, multiplier)
        xb, origin = _input_block(x, geom, tile, bufs, slab_room)
        part = bufs.get("part", dw.shape)
        part.fill(0)
        for combo, out_box, in_box in geom.offsets(tile.box):
            # Σ over (n, *positions) of x[..., c] * dout[..., c, q] -> (C_in, multiplier)
            part[combo] = np.einsum(contract, xb[(ALL, *_at(in_box, origin))], d5[(ALL, *out_box)])
        return part

    threads = _threads(room, slab_room, x.itemsize, limit, more=dw.nbytes)
    # The tiles' parts are added up in tile order, whichever thread made them.
    map_blocks(
        work, tiles, lambda: Buffers(x.dtype), max_threads=threads, then=lambda _, part, __: np.add(dw, part, out=dw)
    )
    return dw.reshape(*geom.kernel, 1, c_out)
