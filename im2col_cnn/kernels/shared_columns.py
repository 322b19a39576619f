"""A transposed convolution's backward pass on one set of columns.

Its input gradient is the correlation of ``dout`` with the weights (:func:`~im2col_cnn.kernels.conv.correlate`)
and its weight gradient ``colsᵀ · x`` (:func:`~im2col_cnn.kernels.conv.weight_grad` of ``dout`` against the
layer's input ``x``): both multiply the same columns of ``dout``, tile by tile. Here each tile's columns are
built once and feed both products -- the same tiles, products and order of sums as the two passes, so the same
results bit for bit, with one column build (and, for a channels-first ``dout``, one transposing copy of it) fewer.
Where either pass would run another kernel (depthwise, few channels, channels-first in its own layout, a batch of
one tile in groups), or one thread's scratch for both would exceed the limit, nothing is done here.
"""

from __future__ import annotations

import numpy as np

from ..geometry.tiles import Tile
from ..geometry.windows import WindowGeometry
from ..runtime.parallel import map_tiles
from ..runtime.workspace import Buffers
from . import planar, tap_groups, wide
from .columns import grouped_weights, tile_columns
from .conv import column_tiles, correlate_tile, dout_rows, thread_scratch, weight_from_tiles, weight_tile

__all__ = ["correlate_and_weight_grad"]


def correlate_and_weight_grad(
    d: np.ndarray,
    w: np.ndarray,
    x: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    groups: int,
    dx: np.ndarray,
    *,
    c_out_major: bool = False,
) -> np.ndarray | None:
    """``dx = correlate(d, w)`` written in place and ``dw = weight_grad(d, x)`` returned, from one pass over the
    columns of ``d`` -- or None, ``dx`` untouched, where the two passes would not both run the column kernel.

    ``d`` (N, *spatial, C_in) and ``x`` (N, *out, C_out), any memory layout; ``w`` (*kernel, C_in // groups,
    C_out); ``dx`` (N, *out, C_out), any memory layout. ``dw`` is (*kernel, C_in // groups, C_out), laid out as
    :func:`~im2col_cnn.kernels.conv.weight_grad` lays it out for ``c_out_major``.
    """
    c_in_g, c_out = w.shape[-2], w.shape[-1]
    if groups > 1 and c_in_g == 1:  # depthwise
        return None
    if wide.kernel(d, dx, geom, groups) or wide.kernel(d, x, geom, groups):
        return None
    if groups == 1 and d.shape[-1] <= planar.SMALL_CHANNELS:  # the few-channel kernels, where one image fits
        return None
    tiles = column_tiles(d.shape, d.itemsize, geom, limit, c_out)
    by_channel = wide.is_channels_first(d, dx) and tap_groups.rows_by_channel(w)
    if tap_groups.plan(geom, d.shape[-1], tiles, groups, by_channel=by_channel) is not None:
        return None
    by_channel = c_out_major and wide.is_channels_first(d, x)
    if tap_groups.plan(geom, c_in_g, tiles, groups, by_channel=by_channel) is not None:
        return None
    k_g, c_out_g = geom.taps * c_in_g, c_out // groups
    dw = np.zeros((groups, c_out_g, k_g) if c_out_major else (groups, k_g, c_out_g), dtype=d.dtype)
    # One thread's scratch: the tile's columns, two row blocks (its part of dx and of x) and a partial dw.
    per_thread = thread_scratch(d.shape, d.itemsize, geom, tiles, 2 * c_out, more=dw.nbytes)
    if per_thread > limit:
        return None
    wg = grouped_weights(w, groups)  # (G, Kg, C_out_g)
    by_plane = c_out_major and wide.is_channels_first(x)

    def work(tile: Tile, bufs: Buffers) -> np.ndarray:
        cols = tile_columns(d, geom, tile, tiles[0], bufs, groups)  # (m, K), built once for both products
        correlate_tile(cols, wg, None, dx[(tile.images, *tile.box)], bufs)
        return weight_tile(cols, dout_rows(x, tile, bufs, by_plane), dw.shape, c_out_major, bufs, by_plane)

    # The tiles' partial products are added up in tile order, whichever thread made them.
    map_tiles(
        work,
        tiles,
        lambda: Buffers(d.dtype),
        max_threads=max(1, limit // max(per_thread, 1)),
        then=lambda _, part, __: np.add(dw, part, out=dw),
    )
    return weight_from_tiles(dw, geom, c_out_major)
