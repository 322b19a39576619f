"""Pooling forward kernels: geometry, the separable window maximum (with each window's winner) and sum.

Arrays are (N, H, W, C) views whatever their memory layout (NHWC, or NCHW seen through a transposed view: NumPy's
ufuncs then run in memory order). Work goes tile by tile (:mod:`~im2col_cnn.pool_tiles`); within a tile the loops
run over the kernel rows, then over the kernel columns: one strided slice per tap, the padding never read. Max
pooling records each window's winner as it goes: over overlapping windows, the first kernel row holding each
column's maximum, then the first column holding the window's; over windows that do not overlap (2x2 stride 2),
which need no separation, a running maximum over the kernel offsets.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..geometry.pool_tiles import (
    ALL,
    AxisMap,
    Offset,
    Tile,
    TilePlan,
    empty_nhwc,
    max_workers,
    output_tiles,
    short_ufunc_chunks,
    tile_key,
    tile_plan,
)
from ..geometry.windows import WindowGeometry
from ..runtime.parallel import map_blocks

__all__ = ["pool_geometry", "avg_divisor", "axis_maps", "code_dtype", "Scratch", "pool_windows", "argmax_indices"]


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size: floor or ceil, and a last window must start inside the input or left pad."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


@lru_cache(maxsize=256)
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


def axis_maps(geom: WindowGeometry) -> tuple[AxisMap, AxisMap]:
    """The row and the column :class:`~im2col_cnn.pool_tiles.AxisMap` of a pooling geometry."""
    rows = AxisMap(geom.in_h, geom.kh, geom.sh, geom.dh, geom.pad_top, geom.out_h)
    cols = AxisMap(geom.in_w, geom.kw, geom.sw, geom.dw, geom.pad_left, geom.out_w)
    return rows, cols


def code_dtype(geom: WindowGeometry) -> np.dtype:
    """The unsigned type of a window's winner, its kernel offset ``i*kw + j``; its largest value is a sentinel.

    uint8 up to 255 offsets (3x3 and 15x15 kernels alike), wider beyond.
    """
    return np.min_scalar_type(geom.kh * geom.kw)


class Scratch:
    """One worker's scratch buffers, reused from tile to tile, viewed as (N, H, W, C) in the call's memory layout."""

    def __init__(self, nchw: bool) -> None:
        self.nchw = nchw
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, int, int, int], dtype: np.dtype) -> np.ndarray:
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(size, dtype=dtype)
        return empty_nhwc(shape, dtype, self.nchw, buffer=buf)


def pool_windows(
    x: np.ndarray, geom: WindowGeometry, kind: str, *, winners: bool, divisor: float | np.ndarray, nchw: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling (``kind='max'``: the padding never wins) or average pooling (``'avg'``) of ``x`` (N, H, W, C).

    Returns ``out`` (N, Ho, Wo, C) -- window sums divided by ``divisor`` (a number or an (Ho, Wo, 1) array) for
    ``'avg'`` -- and, when ``winners``, each max window's winner (N, Ho, Wo, C) of :func:`code_dtype`: the kernel
    offset ``i*kw + j`` of its first maximum in row-major window order, or of its last NaN (PyTorch's rules).
    Both are allocated in the memory layout the caller uses (NCHW when ``nchw``) and returned as NHWC views.
    """
    n, _, _, c = x.shape
    dtype = x.dtype.newbyteorder("=")
    shape = (n, geom.out_h, geom.out_w, c)
    out = empty_nhwc(shape, dtype, nchw)
    win = empty_nhwc(shape, code_dtype(geom), nchw) if winners else None
    rows, cols = axis_maps(geom)
    code = code_dtype(geom)
    disjoint = rows.disjoint and cols.disjoint

    def work(tile: Tile, scratch: Scratch) -> None:
        plan = tile_plan(rows, cols, tile_key(tile), code)
        if disjoint:  # runs of C elements: NumPy's default chunks are faster here
            _forward_tile(x, out, win, tile, plan, disjoint, kind, divisor, scratch)
            return
        with short_ufunc_chunks():  # the row stage reads runs of W*C elements
            _forward_tile(x, out, win, tile, plan, disjoint, kind, divisor, scratch)

    tiles = output_tiles(x.shape, rows, cols, dtype.itemsize)
    map_blocks(work, tiles, lambda: Scratch(nchw), max_threads=max_workers())
    return out, win


def _forward_tile(
    x: np.ndarray,
    out: np.ndarray,
    win: np.ndarray | None,
    tile: Tile,
    plan: TilePlan,
    disjoint: bool,
    kind: str,
    divisor: float | np.ndarray,
    scratch: Scratch,
) -> None:
    """One output tile: reduce over the kernel rows into (n, ho, w, c) scratch, then over the kernel columns (or,
    for the maximum over disjoint windows, over the kernel offsets at once)."""
    xt, ot = x[tile.inp()], out[tile.out()]
    nb, _, w_in, cb = xt.shape
    rows_shape = (nb, ot.shape[1], w_in, cb)
    if kind == "avg" or win is None:
        op, fill = (np.add, 0.0) if kind == "avg" else (np.maximum, -np.inf)
        r = scratch.get("rows", rows_shape, ot.dtype)
        _reduce(xt, r, plan.row_taps, 1, op, fill, plan.rows_rest)
        _reduce(r, ot, plan.col_taps, 2, op, fill, plan.cols_rest)
        if kind == "avg":
            np.divide(ot, divisor if np.ndim(divisor) == 0 else divisor[tile.rows[0], tile.cols[0]], out=ot)
        return
    wt = win[tile.out()]
    if disjoint:  # no two windows share an input: one pass over the kernel offsets
        _running_max(xt, ot, wt, plan.offsets, plan.first, scratch)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum only costs the exact slow path
            has_nan = bool(np.isnan(ot.sum()))
        if has_nan:  # rare
            _nan_winners(xt, wt, plan)
        return
    r = scratch.get("rows", rows_shape, ot.dtype)
    row_win = scratch.get("row_winners", rows_shape, win.dtype)
    _running_max(xt, r, row_win, plan.row_offsets, plan.first_row, scratch)
    _reduce(r, ot, plan.col_taps, 2, np.maximum, -np.inf, plan.cols_rest)
    _column_winners(r, row_win, ot, wt, plan, scratch)
    if wt.max() == np.iinfo(wt.dtype).max:  # only a window holding NaN finds no winner
        _nan_winners(xt, wt, plan)


def _reduce(
    src: np.ndarray, dst: np.ndarray, taps: list, axis: int, op: np.ufunc, fill: float, rest: list[tuple]
) -> None:
    """``dst`` = ``op`` over the taps of ``src`` along ``axis`` (1: rows, 2: columns), in tap order; ``rest`` are
    the outputs the first tap does not reach. When the first two taps reach the same outputs, the first operation
    reads both (one pass fewer than copying the first), with the same result."""
    pairs = [(dst[(ALL,) * axis + (t[0],)], src[(ALL,) * axis + (t[1],)], t[0]) for t in taps if t is not None]
    for part in rest:
        dst[part].fill(fill)
    (d, s, reach), later = pairs[0], pairs[1:]
    if later and later[0][2] == reach:
        op(s, later[0][1], out=d)
        later = later[1:]
    else:
        np.copyto(d, s)
    for d, s, _ in later:
        op(d, s, out=d)


def _running_max(
    src: np.ndarray, dst: np.ndarray, win: np.ndarray, offsets: list[Offset], first: np.ndarray | int, scratch: Scratch
) -> None:
    """``dst`` = the maximum of ``src[inp]`` over the offsets ``(code, out, inp, rest)``, each placed at
    ``dst[out]``; ``win`` = the code of the first offset holding it (codes ascend; ``first``, broadcast to
    ``win``, is each output's first code, kept by a window of -inf).

    A later offset wins only when strictly greater, so ties keep the first. The running maximum moves between two
    buffers, ``new = maximum(old, v)``, so that ``new != old`` -- two contiguous arrays -- says where ``v`` was
    greater (cheaper than comparing with the strided ``v``; it differs only where NaN has propagated, and windows
    holding NaN are redone by :func:`_nan_winners`). As codes ascend, ``win = max(win, better * code)``.
    """
    other = scratch.get("running", dst.shape, dst.dtype)
    bufs = (dst, other) if len(offsets) % 2 == 1 else (other, dst)  # the last offset writes dst
    _, out0, inp0, rest0 = offsets[0]
    for part in rest0:
        bufs[0][part].fill(-np.inf)  # outputs the first offset does not reach
    np.copyto(bufs[0][out0], src[inp0])
    if isinstance(first, int):
        win.fill(first)
    else:
        np.copyto(win, first)
    better = scratch.get("better", dst.shape, np.dtype(bool))
    codes = scratch.get("codes", dst.shape, win.dtype)
    for step, (code, out, inp, rest) in enumerate(offsets[1:]):
        old, new = bufs[step % 2], bufs[(step + 1) % 2]
        for part in rest:
            np.copyto(new[part], old[part])
        ns, os, bs, ws = new[out], old[out], better[out], win[out]
        np.maximum(os, src[inp], out=ns)
        np.not_equal(ns, os, out=bs)
        cs = _as_code(bs, codes[out])
        np.multiply(cs, code, out=cs)
        np.maximum(ws, cs, out=ws)


def _as_code(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A bool mask as 0/1 of ``like``'s unsigned dtype: a free view for uint8, else a cast into ``like``."""
    if like.dtype == np.uint8:
        return mask.view(np.uint8)
    np.copyto(like, mask)
    return like


def _column_winners(
    r: np.ndarray, row_win: np.ndarray, ot: np.ndarray, wt: np.ndarray, plan: TilePlan, scratch: Scratch
) -> None:
    """``wt`` = each window's first maximum in row-major order: the least ``row_win + j`` over the kernel columns
    ``j`` whose row maximum equals the window's maximum ``ot`` (the first row, then the first column)."""
    equal = scratch.get("equal", ot.shape, np.dtype(bool))
    mask = scratch.get("mask", ot.shape, wt.dtype)
    cand = scratch.get("candidates", ot.shape, wt.dtype)
    first = True
    for j, tap in enumerate(plan.col_taps):
        if tap is None:
            continue
        o, i = tap
        es, ms, cs, ws = equal[:, :, o], mask[:, :, o], cand[:, :, o], wt[:, :, o]
        np.equal(r[:, :, i], ot[:, :, o], out=es)
        np.subtract(_as_code(es, ms), 1, out=ms)  # 0 where tied with the maximum, all ones elsewhere
        if first:
            for part in plan.cols_rest:
                wt[part].fill(np.iinfo(wt.dtype).max)  # windows the first column does not reach
            np.add(row_win[:, :, i], j, out=ws)
            np.bitwise_or(ws, ms, out=ws)
            first = False
            continue
        np.add(row_win[:, :, i], j, out=cs)
        np.bitwise_or(cs, ms, out=cs)
        np.minimum(ws, cs, out=ws)


def _nan_winners(xt: np.ndarray, wt: np.ndarray, plan: TilePlan) -> None:
    """Rare: windows holding NaN send their gradient to their last NaN (in row-major order), as PyTorch does."""
    for code, out, inp, _ in plan.offsets:
        np.copyto(wt[out], code, where=np.isnan(xt[inp]))


def argmax_indices(win: np.ndarray, geom: WindowGeometry, nchw: bool) -> np.ndarray:
    """PyTorch's ``return_indices``: ``h * W + w`` of each window's winner (N, Ho, Wo, C), int64, as an NHWC view."""
    idx = empty_nhwc(win.shape, np.dtype(np.int64), nchw)
    np.floor_divide(win, geom.kw, out=idx)  # kernel row i
    # Winner i*kw + j reads input row ho*sh - top + i*dh and column wo*sw - left + j*dw.
    np.multiply(idx, geom.dh * geom.in_w - geom.kw * geom.dw, out=idx)
    idx += win.astype(np.int64) * geom.dw
    ho = np.arange(geom.out_h)[:, None] * geom.sh - geom.pad_top
    wo = np.arange(geom.out_w) * geom.sw - geom.pad_left
    idx += (ho * geom.in_w + wo)[:, :, None]  # (Ho, Wo) -> (Ho, Wo, 1)
    return idx
