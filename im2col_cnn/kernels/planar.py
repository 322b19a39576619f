"""Convolution with few input channels (a network's first layer: 1 or 3), on channel planes.

With ``C_in`` of 1 to 6, a row of the ordinary column matrix holds runs of only ``kw*C_in`` contiguous values,
so building it is mostly loop overhead. Here the input is first laid out as zero-padded channel planes
``(C_in, n_b, Hp, Wp)``; the transposed column matrix ``colsᵀ`` ``(kh*kw*C_in, n_b*Ho*Wo)`` is then
``kh*kw`` strided copies of whole planes, in runs of ``Wo`` values. The three products read it as it is:

* forward: ``out = colsᵀᵀ · w`` (NumPy hands the transposed operand to BLAS without a copy); with a bias, a row
  of ones is appended to ``colsᵀ`` and the bias to ``w``, so the product adds it;
* weight gradient: ``colsᵀ · dout``, again with the row of ones, whose product row is ``db``;
* input gradient: ``dcolsᵀ = w · doutᵀ``, then ``kh*kw`` strided adds of whole planes into zero-padded
  gradient planes, the first that covers the whole input copied rather than added.

Blocks are of whole images, sized for the cache, and do not depend on the workspace limit; when one image's
scratch exceeds the limit, :func:`plan` returns None and the general kernels (which can split an image) run.
"""

from __future__ import annotations

import numpy as np

from ..geometry.windows import WindowGeometry
from ..runtime.workspace import BLOCK_BYTES, MIN_WORKSPACE, Buffers

__all__ = ["SMALL_CHANNELS", "plan", "correlate", "weight_grad", "input_grad"]

SMALL_CHANNELS = 6
"""Convolutions (groups == 1) with at most this many input channels run here."""

PLANAR_BLOCK_BYTES = BLOCK_BYTES // 2
"""Target size of one block's ``colsᵀ`` (2 MiB): products of so few rows run best while it stays in cache (the C2
case on 2 cores, forward and backward, against 1 MiB: float32 1.9 -> 1.6 and 5.4 -> 5.0 ms, float64 3.5 -> 3.1 and
9.8 -> 8.7 ms; from 4 MiB on the float64 backward slows down)."""


def _plane_shape(geom: WindowGeometry) -> tuple[int, int]:
    """Rows and columns of a padded plane: the input with its top/left padding and its (non-negative)
    bottom/right padding; a negative bottom/right padding (a crop) leaves rows no window reads."""
    return (
        geom.pad_top + geom.in_h + max(geom.pad_bottom, 0),
        geom.pad_left + geom.in_w + max(geom.pad_right, 0),
    )


def plan(
    x_shape: tuple[int, ...], itemsize: int, geom: WindowGeometry, c_out: int, limit: int, groups: int = 1
) -> list[slice] | None:
    """Blocks of whole images for the planar kernels, or None where they do not apply.

    They apply to ungrouped convolutions with at most ``SMALL_CHANNELS`` input channels, no negative top/left
    padding, and a one-image scratch (planes, ``colsᵀ`` with its row of ones, and a block of the output and of
    ``dout``) that fits ``limit``.
    """
    n, _, _, c = x_shape
    if groups != 1 or c > SMALL_CHANNELS or n == 0 or geom.pad_top < 0 or geom.pad_left < 0:
        return None
    hp, wp = _plane_shape(geom)
    m = geom.out_h * geom.out_w
    k = geom.kh * geom.kw * c + 1
    per_image = (c * hp * wp + k * m + 2 * m * c_out) * itemsize
    if per_image > limit:
        return None
    step = max(1, min(PLANAR_BLOCK_BYTES // (k * m * itemsize), MIN_WORKSPACE // per_image))
    return [slice(n0, min(n, n0 + step)) for n0 in range(0, n, step)]


def _planes(x: np.ndarray, images: slice, geom: WindowGeometry, bufs: Buffers, room: int) -> np.ndarray:
    """``x[images]`` (n_b, H, W, C), any memory layout, as zero-padded planes (C, n_b, Hp, Wp) in buffer 'planes'."""
    hp, wp = _plane_shape(geom)
    t, left, h, w = geom.pad_top, geom.pad_left, geom.in_h, geom.in_w
    block = x[images]
    planes = bufs.get("planes", (x.shape[3], block.shape[0], hp, wp), room)
    planes[:, :, :t] = 0
    planes[:, :, t + h :] = 0
    planes[:, :, t : t + h, :left] = 0
    planes[:, :, t : t + h, left + w :] = 0
    planes[:, :, t : t + h, left : left + w] = block.transpose(3, 0, 1, 2)  # (n_b, H, W, C) -> (C, n_b, H, W)
    return planes


def _window(geom: WindowGeometry, i: int, j: int) -> tuple[slice, slice]:
    """The rows and columns of a padded plane that tap (i, j) reads for every output position, in order."""
    r0, c0 = i * geom.dh, j * geom.dw
    return (
        slice(r0, r0 + (geom.out_h - 1) * geom.sh + 1, geom.sh),
        slice(c0, c0 + (geom.out_w - 1) * geom.sw + 1, geom.sw),
    )


def _columns_t(planes: np.ndarray, geom: WindowGeometry, bufs: Buffers, ones: bool, room: int) -> np.ndarray:
    """``colsᵀ`` (kh*kw*C [+ 1], n_b*Ho*Wo) of the planes (C, n_b, Hp, Wp): rows (i, j, c), then a row of ones."""
    c, n_b = planes.shape[:2]
    k = geom.kh * geom.kw * c
    m = n_b * geom.out_h * geom.out_w
    cols_t = bufs.get("cols_t", (k + ones, m), room)
    taps = cols_t[:k].reshape(geom.kh, geom.kw, c, n_b, geom.out_h, geom.out_w)  # (K, m) -> per tap (C, n_b, Ho, Wo)
    for i in range(geom.kh):
        for j in range(geom.kw):
            np.copyto(taps[i, j], planes[(slice(None), slice(None), *_window(geom, i, j))])
    if ones:
        cols_t[k] = 1
    return cols_t


def _rooms(blocks: list[slice], geom: WindowGeometry, c: int, c_out: int) -> dict[str, int]:
    """Elements of each buffer for the largest (first) block."""
    n_b = blocks[0].stop - blocks[0].start
    hp, wp = _plane_shape(geom)
    m = n_b * geom.out_h * geom.out_w
    return {"planes": c * n_b * hp * wp, "cols": (geom.kh * geom.kw * c + 1) * m, "rows": m * c_out}


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    blocks: list[slice],
    bias: np.ndarray | None,
    out: np.ndarray,
) -> np.ndarray:
    """Forward pass: ``x`` (N, H, W, C) and ``w`` (kh, kw, C, C_out) into ``out`` (N, Ho, Wo, C_out); any layouts."""
    kh, kw, c, c_out = w.shape
    w2 = w.reshape(kh * kw * c, c_out)  # (K, C_out): rows (i, j, c), as colsᵀ's
    if bias is not None:
        w2 = np.concatenate([w2, bias.reshape(1, c_out)])  # (K + 1, C_out): the bias meets the row of ones
    room = _rooms(blocks, geom, c, c_out)
    bufs = Buffers(x.dtype)
    for images in blocks:
        planes = _planes(x, images, geom, bufs, room["planes"])
        cols_t = _columns_t(planes, geom, bufs, bias is not None, room["cols"])
        target = out[images]  # (n_b, Ho, Wo, C_out)
        m = cols_t.shape[1]
        direct = target.flags.c_contiguous
        block = target.reshape(m, c_out) if direct else bufs.get("out", (m, c_out), room["rows"])
        np.matmul(cols_t.T, w2, out=block)  # (m, K [+ 1]) @ (K [+ 1], C_out)
        if not direct:
            np.copyto(target, block.reshape(target.shape))  # (m, C_out) -> (n_b, Ho, Wo, C_out)
    return out


def _rows(a: np.ndarray, images: slice, bufs: Buffers, room: int) -> np.ndarray:
    """``a[images]`` (n_b, Ho, Wo, C) as an (n_b*Ho*Wo, C) matrix: a view where possible, else a copy."""
    block = a[images]
    if not block.flags.c_contiguous:
        copy = bufs.get("dout", block.shape, room)
        np.copyto(copy, block)
        block = copy
    return block.reshape(-1, block.shape[3])  # (n_b, Ho, Wo, C) -> (m, C)


def weight_grad(
    x: np.ndarray, dout: np.ndarray, geom: WindowGeometry, blocks: list[slice], with_bias: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(dw, db)``: Σ over blocks of ``colsᵀ · dout`` -> dw (kh, kw, C, C_out); db (C_out,) from the row of ones
    (None unless ``with_bias``)."""
    c, c_out = x.shape[3], dout.shape[3]
    k = geom.kh * geom.kw * c
    total = np.zeros((k + with_bias, c_out), dtype=x.dtype)
    partial = np.empty_like(total)
    room = _rooms(blocks, geom, c, c_out)
    bufs = Buffers(x.dtype)
    for images in blocks:
        cols_t = _columns_t(_planes(x, images, geom, bufs, room["planes"]), geom, bufs, with_bias, room["cols"])
        total += np.matmul(cols_t, _rows(dout, images, bufs, room["rows"]), out=partial)  # (K [+1], m) @ (m, C_out)
    return total[:k].reshape(geom.kh, geom.kw, c, c_out), (total[k].copy() if with_bias else None)


def input_grad(dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, blocks: list[slice], dx: np.ndarray) -> None:
    """Input gradient: ``dout`` (N, Ho, Wo, C_out), ``w`` (kh, kw, C, C_out) into ``dx`` (N, H, W, C); any layouts.

    Each block's ``dcolsᵀ = w · doutᵀ`` (K, m) is added into zero-padded gradient planes, one strided add of
    whole planes per tap; a tap whose windows cover the whole input exactly is copied first instead, and then
    only the padding strips need zeros. The planes' interior is then copied into ``dx``.
    """
    kh, kw, c, c_out = w.shape
    w2 = w.reshape(kh * kw * c, c_out)  # (K, C_out)
    t, left, h, wd = geom.pad_top, geom.pad_left, geom.in_h, geom.in_w
    interior = (slice(t, t + h, 1), slice(left, left + wd, 1))
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    full = next((tap for tap in taps if _window(geom, *tap) == interior), None)
    room = _rooms(blocks, geom, c, c_out)
    bufs = Buffers(dout.dtype)
    hp, wp = _plane_shape(geom)
    for images in blocks:
        d = _rows(dout, images, bufs, room["rows"])  # (m, C_out)
        m = d.shape[0]
        n_b = m // (geom.out_h * geom.out_w)
        dcols_t = bufs.get("cols_t", (kh * kw * c, m), room["cols"])
        np.matmul(w2, d.T, out=dcols_t)  # (K, C_out) @ (C_out, m)
        per_tap = dcols_t.reshape(kh, kw, c, n_b, geom.out_h, geom.out_w)  # (K, m) -> (kh, kw, C, n_b, Ho, Wo)
        planes = bufs.get("planes", (c, n_b, hp, wp), room["planes"])
        if full is None:
            planes.fill(0)
        else:  # the padding strips get zeros, the interior the full tap
            planes[:, :, :t] = 0
            planes[:, :, t + h :] = 0
            planes[:, :, t : t + h, :left] = 0
            planes[:, :, t : t + h, left + wd :] = 0
            np.copyto(planes[:, :, t : t + h, left : left + wd], per_tap[full])
        for tap in taps:
            if tap != full:
                p = planes[(slice(None), slice(None), *_window(geom, *tap))]
                p += per_tap[tap]
        np.copyto(dx[images], planes[:, :, t : t + h, left : left + wd].transpose(1, 2, 3, 0))  # -> (n_b, H, W, C)
