"""Pooling kernels on NHWC arrays: geometry, reductions over kernel offsets, and their scatters.

Every loop here runs over the kernel offsets (kh*kw of them) and over blocks of whole images sized to stay in
cache (:func:`~im2col_cnn.workspace.image_blocks`); each step is one strided slice of the input per offset,
clipped to the windows that read inside it, so padding is never materialised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .windows import WindowGeometry
from .workspace import image_blocks

__all__ = ["pool_geometry", "avg_divisor", "reduce_windows", "scatter_avg", "scatter_max", "argmax_indices"]

Offset = tuple[int, int, tuple[slice, slice], tuple[slice, slice]]


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size: floor or ceil, and a last window must start inside the input or left pad."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool_geometry(
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
) -> WindowGeometry:
    """Window geometry of a pooling layer; ceil_mode's extra windows become extra bottom/right padding."""
    _, h, w, _ = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho, wo = _out_size(h, kh, sh, ph, dh, ceil_mode), _out_size(w, kw, sw, pw, dw, ceil_mode)
    if ho < 1 or wo < 1:
        reach = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
        raise ValueError(
            f"kernel_size {kernel} (spanning {reach}) is larger than the padded input {(h + 2 * ph, w + 2 * pw)} "
            f"(input {(h, w)} with padding {padding})"
        )
    # Bottom/right padding so that exactly (ho, wo) windows fit; it differs from ph/pw when windows are left
    # over (floor) or added (ceil). The padding is never read, so only the count of windows matters.
    bottom = (ho - 1) * sh + (kh - 1) * dh + 1 - h - ph
    right = (wo - 1) * sw + (kw - 1) * dw + 1 - w - pw
    geom = WindowGeometry(h, w, kh, kw, sh, sw, ph, bottom, pw, right, dh, dw)
    covered = np.zeros((ho, wo), dtype=bool)
    for _, _, out_slices, _ in geom.offset_slices():
        covered[out_slices] = True
    if not covered.all():  # only a dilation larger than the input can step over it
        ho_, wo_ = np.argwhere(~covered)[0]
        raise ValueError(
            f"dilation {dilation} with padding {padding} leaves pooling window {(int(ho_), int(wo_))} covering no "
            f"input position (input {(h, w)})"
        )
    return geom


def avg_divisor(
    geom: WindowGeometry, padding: tuple[int, int], count_include_pad: bool, divisor_override: int | None
) -> float | np.ndarray:
    """PyTorch's average-pool divisor: a number, or an (Ho, Wo, 1) array where windows differ.

    A window counts its positions inside the input plus, with ``count_include_pad``, inside the padding --
    but never beyond the padded input (where ceil_mode's last windows may reach).
    """
    if divisor_override is not None:
        return float(divisor_override)

    def counts(size: int, out: int, k: int, s: int, p: int) -> np.ndarray:
        start = np.arange(out) * s - p
        end = np.minimum(start + k, size + p)
        if count_include_pad:
            return end - start
        return np.minimum(end, size) - np.maximum(start, 0)

    rows = counts(geom.in_h, geom.out_h, geom.kh, geom.sh, padding[0])
    cols = counts(geom.in_w, geom.out_w, geom.kw, geom.sw, padding[1])
    if rows.min() == rows.max() and cols.min() == cols.max():
        return float(rows[0] * cols[0])
    return np.multiply.outer(rows, cols)[:, :, None].astype(np.float64)  # (Ho, Wo, 1)


def reduce_windows(x: np.ndarray, geom: WindowGeometry, kind: str) -> np.ndarray:
    """Window maximum (``kind='max'``; the padding never wins) or window sum (``'avg'``) of x -> (N, Ho, Wo, C)."""
    n, _, _, c = x.shape
    out = np.empty((n, geom.out_h, geom.out_w, c), dtype=x.dtype)
    offsets = list(geom.offset_slices())
    # Start from an offset that every window reads inside the input (a copy, not a reduction), if one exists.
    full = [o for o in offsets if o[2] == (slice(0, geom.out_h), slice(0, geom.out_w))][:1]
    rest = [o for o in offsets if o not in full]
    reduce = np.maximum if kind == "max" else np.add
    for images in image_blocks(x):  # blocks small enough for out to stay in cache across offsets
        xb, ob = x[images], out[images]
        if full:
            np.copyto(ob, xb[:, full[0][3][0], full[0][3][1]])
        else:
            ob.fill(-np.inf if kind == "max" else 0)
        for _, _, (orow, ocol), (irow, icol) in rest:
            o = ob[:, orow, ocol]
            reduce(o, xb[:, irow, icol], out=o)
    return out


def _disjoint(geom: WindowGeometry) -> bool:
    """Whether windows never overlap, so that scatters may assign instead of add."""
    return geom.sh >= (geom.kh - 1) * geom.dh + 1 and geom.sw >= (geom.kw - 1) * geom.dw + 1


def _add_into(dst: np.ndarray, src: np.ndarray) -> None:
    np.add(dst, src, out=dst)


def scatter_avg(g: np.ndarray, geom: WindowGeometry, x_shape: tuple[int, ...]) -> np.ndarray:
    """Spread each window's ``g`` (N, Ho, Wo, C) -- dout already divided -- over its positions -> dx ``x_shape``."""
    dx = np.zeros(x_shape, dtype=g.dtype)
    put = np.copyto if _disjoint(geom) else _add_into
    offsets = list(geom.offset_slices())
    for images in image_blocks(dx):
        gb, dxb = g[images], dx[images]
        for _, _, (orow, ocol), (irow, icol) in offsets:
            put(dxb[:, irow, icol], gb[:, orow, ocol])
    return dx


def _winners(xb: np.ndarray, ob: np.ndarray, offsets: list[Offset], first_only: bool) -> Iterator[np.ndarray]:
    """For each offset in row-major order, the mask of windows (n, Ho', Wo', C) whose maximum it holds.

    With ``first_only`` only the first maximum of a window wins (PyTorch), else every position tied at it.
    A window holding NaN outputs NaN and its last NaN wins (PyTorch's scan updates on ``v > max or isnan(v)``).
    """
    taken = np.zeros(ob.shape, dtype=bool) if first_only else None
    last_nan = None
    if np.isnan(ob).any():  # rare: find each NaN window's last NaN offset first
        last_nan = np.full(ob.shape, -1, dtype=np.intp)
        for k, (_, _, (orow, ocol), (irow, icol)) in enumerate(offsets):
            np.copyto(last_nan[:, orow, ocol], k, where=np.isnan(xb[:, irow, icol]))
    for k, (_, _, (orow, ocol), (irow, icol)) in enumerate(offsets):
        hit = np.equal(xb[:, irow, icol], ob[:, orow, ocol])
        if last_nan is not None:
            hit |= last_nan[:, orow, ocol] == k
        if taken is not None:
            t = taken[:, orow, ocol]
            hit &= ~t
            t |= hit
        yield hit


def scatter_max(
    dout: np.ndarray, x: np.ndarray, out: np.ndarray, geom: WindowGeometry, first_only: bool = True
) -> np.ndarray:
    """Send each window's ``dout`` (N, Ho, Wo, C) to its maximum in ``x`` (N, H, W, C) -> dx (see :func:`_winners`)."""
    dx = np.zeros(x.shape, dtype=x.dtype)
    put: Callable[[np.ndarray, np.ndarray], None] = np.copyto if _disjoint(geom) else _add_into
    offsets = list(geom.offset_slices())
    for images in image_blocks(x):
        xb, ob, gb, dxb = x[images], out[images], dout[images], dx[images]
        # g * mask is exact and fast when g is finite; inf * 0 would be NaN, so otherwise select with np.where.
        finite = bool(np.isfinite(gb).all())
        for hit, (_, _, (orow, ocol), (irow, icol)) in zip(_winners(xb, ob, offsets, first_only), offsets, strict=True):
            g = gb[:, orow, ocol]
            put(dxb[:, irow, icol], g * hit if finite else np.where(hit, g, 0))
    return dx


def argmax_indices(x: np.ndarray, out: np.ndarray, geom: WindowGeometry) -> np.ndarray:
    """PyTorch's ``return_indices``: for each window (N, Ho, Wo, C), ``h * W + w`` of the input position that wins."""
    offsets = list(geom.offset_slices())
    winner = np.full(out.shape, -1, dtype=np.intp)  # index into offsets
    for images in image_blocks(x):
        wb = winner[images]
        hits = _winners(x[images], out[images], offsets, True)
        for k, (hit, (_, _, (orow, ocol), _)) in enumerate(zip(hits, offsets, strict=True)):
            np.copyto(wb[:, orow, ocol], k, where=hit)
    # Offset k of the window at (ho, wo) reads input row ho*sh + i*dh - top and column wo*sw + j*dw - left.
    i = np.array([o[0] for o in offsets] + [0])[winner]  # winner -1 (a window with no input) reads entry -1
    j = np.array([o[1] for o in offsets] + [0])[winner]
    rows = np.arange(geom.out_h)[:, None, None] * geom.sh + i * geom.dh - geom.pad_top
    cols = np.arange(geom.out_w)[:, None] * geom.sw + j * geom.dw - geom.pad_left
    return np.where(winner >= 0, rows * geom.in_w + cols, -1).astype(np.int64)
