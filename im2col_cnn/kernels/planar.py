"""Convolution with few input channels (a network's first layer: 1 or 3), on channel planes.

With ``C_in`` of 1 to 6, a row of the ordinary column matrix holds runs of only ``kw*C_in`` contiguous values,
so building it is mostly loop overhead. Here the input is first laid out as zero-padded channel planes
``(C_in, n_b, *padded)``; the transposed column matrix ``colsᵀ`` ``(prod(kernel)*C_in, n_b*prod(out))`` is then
``prod(kernel)`` strided copies of whole planes, in runs of the last axis' output size. The three products read
it as it is:

* forward: ``out = colsᵀᵀ · w`` (NumPy hands the transposed operand to BLAS without a copy); with a bias, a row
  of ones is appended to ``colsᵀ`` and the bias to ``w``, so the product adds it;
* weight gradient: ``colsᵀ · dout``, again with the row of ones, whose product row is ``db``;
* input gradient: ``dcolsᵀ = w · doutᵀ``, then one strided add of whole planes per tap into zero-padded gradient
  planes, the first that covers the whole input copied rather than added.

Blocks are of whole images, sized for the cache, and do not depend on the workspace limit; when one image's
scratch exceeds the limit, :func:`plan` returns None and the general kernels (which can split an image) run.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import product
from typing import NamedTuple

import numpy as np

from ..geometry.tiles import even_blocks
from ..geometry.windows import WindowGeometry
from ..runtime.parallel import map_tiles
from ..runtime.workspace import BLOCK_BYTES, MIN_WORKSPACE, Buffers
from .columns import ALL, contiguous, fill_outside

__all__ = ["SMALL_CHANNELS", "plan", "correlate", "weight_grad", "input_grad"]

SMALL_CHANNELS = 6
"""Convolutions (groups == 1) with at most this many input channels run here."""

PLANAR_BLOCK_BYTES = BLOCK_BYTES // 2
"""Target size of one block's ``colsᵀ`` (2 MiB): products of so few rows run best while it stays in cache (the C2
case on 2 cores, forward and backward, against 1 MiB: float32 1.9 -> 1.6 and 5.4 -> 5.0 ms, float64 3.5 -> 3.1 and
9.8 -> 8.7 ms; from 4 MiB on the float64 backward slows down)."""


class _Layout(NamedTuple):
    """The planes of a geometry: their size per axis (the input with its leading padding and its non-negative
    trailing padding; a negative trailing padding, a crop, leaves positions no window reads), where the input
    lies in them, and for each kernel offset (row-major) the positions it reads for every output, in order."""

    shape: tuple[int, ...]
    interior: tuple[tuple[int, int], ...]
    windows: tuple[tuple[tuple[int, ...], tuple[slice, ...]], ...]  # (offset, its slices)


@lru_cache(maxsize=256)
def _layout(geom: WindowGeometry) -> _Layout:
    shape = tuple(a.lo + a.size + max(a.hi, 0) for a in geom.axes)
    interior = tuple((a.lo, a.lo + a.size) for a in geom.axes)
    windows = tuple(
        (
            taps,
            tuple(slice(t * a.d, t * a.d + (a.out - 1) * a.s + 1, a.s) for t, a in zip(taps, geom.axes, strict=True)),
        )
        for taps in product(*(range(k) for k in geom.kernel))
    )
    return _Layout(shape, interior, windows)


def plan(
    x_shape: tuple[int, ...], itemsize: int, geom: WindowGeometry, c_out: int, limit: int, groups: int = 1
) -> list[slice] | None:
    """Blocks of whole images for the planar kernels, or None where they do not apply.

    They apply to ungrouped convolutions with at most ``SMALL_CHANNELS`` input channels, no negative leading
    padding, and a one-image scratch (planes, ``colsᵀ`` with its row of ones, and a block of the output and of
    ``dout``) that fits ``limit``. The blocks are as large as ``PLANAR_BLOCK_BYTES`` holds, made even (64 float64
    images of the C2 case: 8 blocks of 8, not seven of 9 and a last of 1 that leaves a thread idle), not cut to
    :data:`~im2col_cnn.geometry.tiles.MIN_TILES` as the other kernels' are: a block costs these kernels a fixed
    40 microseconds or so (the C2 case's forward pass took 7% longer on one core in 8 blocks than in 4).
    """
    n, c = x_shape[0], x_shape[-1]
    if groups != 1 or c > SMALL_CHANNELS or n == 0 or any(a.lo < 0 for a in geom.axes):
        return None
    m = math.prod(geom.out_shape)
    k = geom.taps * c + 1
    per_image = (c * math.prod(_layout(geom).shape) + k * m + 2 * m * c_out) * itemsize
    if per_image > limit:
        return None
    step = max(1, min(PLANAR_BLOCK_BYTES // (k * m * itemsize), MIN_WORKSPACE // per_image))
    return [slice(a, b) for a, b in even_blocks(n, step)]


def _planes(x: np.ndarray, images: slice, geom: WindowGeometry, bufs: Buffers, room: int) -> np.ndarray:
    """``x[images]`` (n_b, *spatial, C), any memory layout, as zero-padded planes (C, n_b, *padded) in 'planes'."""
    block = x[images]
    nd = geom.ndim
    layout = _layout(geom)
    planes = bufs.get("planes", (x.shape[-1], block.shape[0], *layout.shape), room)
    inner = layout.interior
    fill_outside(planes, inner, first_axis=2)
    # (n_b, *spatial, C) -> (C, n_b, *spatial)
    planes[(ALL, ALL, *(slice(a, b) for a, b in inner))] = block.transpose(nd + 1, 0, *range(1, nd + 1))
    return planes


def _columns_t(planes: np.ndarray, geom: WindowGeometry, bufs: Buffers, ones: bool, room: int) -> np.ndarray:
    """``colsᵀ`` (prod(kernel)*C [+ 1], n_b*prod(out)) of the planes (C, n_b, *padded): rows (*taps, c), then a
    row of ones."""
    c, n_b = planes.shape[:2]
    k = geom.taps * c
    m = n_b * math.prod(geom.out_shape)
    cols_t = bufs.get("cols_t", (k + ones, m), room)
    per_tap = cols_t[:k].reshape(*geom.kernel, c, n_b, *geom.out_shape)  # (K, m) -> per offset (C, n_b, *out)
    for taps, window in _layout(geom).windows:
        np.copyto(per_tap[taps], planes[(ALL, ALL, *window)])
    if ones:
        cols_t[k] = 1
    return cols_t


def _rooms(blocks: list[slice], geom: WindowGeometry, c: int, c_out: int) -> dict[str, int]:
    """Elements of each buffer for the largest (first) block."""
    n_b = blocks[0].stop - blocks[0].start
    m = n_b * math.prod(geom.out_shape)
    return {"planes": c * n_b * math.prod(_layout(geom).shape), "cols": (geom.taps * c + 1) * m, "rows": m * c_out}


def _threads(room: dict[str, int], itemsize: int, limit: int, more: int = 0) -> int:
    """How many threads may work on blocks at once within ``limit``: each needs every buffer of ``room`` (twice
    the rows: an output or ``dout`` block and its copy) and ``more`` bytes of its own."""
    per_thread = (room["planes"] + room["cols"] + 2 * room["rows"]) * itemsize + more
    return max(1, limit // max(per_thread, 1))


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    blocks: list[slice],
    bias: np.ndarray | None,
    out: np.ndarray,
    limit: int,
) -> np.ndarray:
    """Forward pass: ``x`` (N, *spatial, C) and ``w`` (*kernel, C, C_out) into ``out`` (N, *out, C_out); any
    layouts."""
    c, c_out = w.shape[-2], w.shape[-1]
    w2 = w.reshape(-1, c_out)  # (K, C_out): rows (*taps, c), as colsᵀ's
    if bias is not None:
        w2 = np.concatenate([w2, bias.reshape(1, c_out)])  # (K + 1, C_out): the bias meets the row of ones
    room = _rooms(blocks, geom, c, c_out)

    def work(images: slice, bufs: Buffers) -> None:
        planes = _planes(x, images, geom, bufs, room["planes"])
        cols_t = _columns_t(planes, geom, bufs, bias is not None, room["cols"])
        target = out[images]  # (n_b, *out, C_out)
        m = cols_t.shape[1]
        direct = target.flags.c_contiguous
        block = target.reshape(m, c_out) if direct else bufs.get("out", (m, c_out), room["rows"])
        np.matmul(cols_t.T, w2, out=block)  # (m, K [+ 1]) @ (K [+ 1], C_out)
        if not direct:
            np.copyto(target, block.reshape(target.shape))  # (m, C_out) -> (n_b, *out, C_out)

    map_tiles(work, blocks, lambda: Buffers(x.dtype), max_threads=_threads(room, x.itemsize, limit))
    return out


def _rows(a: np.ndarray, images: slice, bufs: Buffers, room: int) -> np.ndarray:
    """``a[images]`` (n_b, *out, C) as an (n_b*prod(out), C) matrix: a view where possible, else a copy."""
    block = contiguous(a[images], bufs, "dout", room)
    return block.reshape(-1, block.shape[-1])  # (n_b, *out, C) -> (m, C)


def weight_grad(
    x: np.ndarray, dout: np.ndarray, geom: WindowGeometry, blocks: list[slice], with_bias: bool, limit: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(dw, db)``: Σ over blocks of ``colsᵀ · dout`` -> dw (*kernel, C, C_out); db (C_out,) from the row of ones
    (None unless ``with_bias``)."""
    c, c_out = x.shape[-1], dout.shape[-1]
    k = geom.taps * c
    total = np.zeros((k + with_bias, c_out), dtype=x.dtype)
    room = _rooms(blocks, geom, c, c_out)

    def work(images: slice, bufs: Buffers) -> np.ndarray:
        cols_t = _columns_t(_planes(x, images, geom, bufs, room["planes"]), geom, bufs, with_bias, room["cols"])
        partial = bufs.get("partial", total.shape)
        return np.matmul(cols_t, _rows(dout, images, bufs, room["rows"]), out=partial)  # (K [+1], m) @ (m, C_out)

    threads = _threads(room, x.itemsize, limit, more=total.nbytes)
    # The blocks' partial products are added up in block order, whichever thread made them.
    map_tiles(
        work,
        blocks,
        lambda: Buffers(x.dtype),
        max_threads=threads,
        then=lambda _, part, __: np.add(total, part, out=total),
    )
    return total[:k].reshape(*geom.kernel, c, c_out), (total[k].copy() if with_bias else None)


def input_grad(
    dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, blocks: list[slice], dx: np.ndarray, limit: int
) -> None:
    """Input gradient: ``dout`` (N, *out, C_out), ``w`` (*kernel, C, C_out) into ``dx`` (N, *spatial, C); any
    layouts.

    Each block's ``dcolsᵀ = w · doutᵀ`` (K, m) is added into zero-padded gradient planes, one strided add of
    whole planes per tap; a tap whose windows cover the whole input exactly is copied first instead, and then
    only the padding strips need zeros. The planes' interior is then copied into ``dx``.
    """
    c, c_out = w.shape[-2], w.shape[-1]
    nd = geom.ndim
    w2 = w.reshape(-1, c_out)  # (K, C_out)
    layout = _layout(geom)
    inner = layout.interior
    interior = tuple(slice(a, b, 1) for a, b in inner)
    full = next((taps for taps, window in layout.windows if window == interior), None)
    room = _rooms(blocks, geom, c, c_out)
    positions = math.prod(geom.out_shape)

    def work(images: slice, bufs: Buffers) -> None:
        d = _rows(dout, images, bufs, room["rows"])  # (m, C_out)
        m = d.shape[0]
        n_b = m // positions
        dcols_t = bufs.get("cols_t", (geom.taps * c, m), room["cols"])
        np.matmul(w2, d.T, out=dcols_t)  # (K, C_out) @ (C_out, m)
        per_tap = dcols_t.reshape(*geom.kernel, c, n_b, *geom.out_shape)  # (K, m) -> (*kernel, C, n_b, *out)
        planes = bufs.get("planes", (c, n_b, *layout.shape), room["planes"])
        if full is None:
            planes.fill(0)
        else:  # the padding strips get zeros, the interior the full tap
            fill_outside(planes, inner, first_axis=2)
            np.copyto(planes[(ALL, ALL, *interior)], per_tap[full])
        for taps, window in layout.windows:
            if taps != full:
                p = planes[(ALL, ALL, *window)]
                p += per_tap[taps]
        # (C, n_b, *spatial) -> (n_b, *spatial, C)
        np.copyto(dx[images], planes[(ALL, ALL, *interior)].transpose(1, *range(2, nd + 2), 0))

    map_tiles(work, blocks, lambda: Buffers(dout.dtype), max_threads=_threads(room, dout.itemsize, limit))
