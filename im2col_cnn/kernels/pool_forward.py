"""Pooling forward kernels: geometry, the separable window maximum (with each window's winner) and sum.

Arrays are (N, *spatial, C) views whatever their memory layout (channels-last, or channels-first seen through a
transposed view: NumPy's ufuncs then run in memory order; a channels-first 2-D max pooling along short rows pools
channels-last copies of its tiles instead, :func:`~im2col_cnn.kernels.pool_plan.converts_tiles`). Work goes tile by tile
(:func:`~im2col_cnn.geometry.tiles.output_tiles`); within a tile the loops run over the taps of the first spatial
axis, then over those of the next axis, and so on: one strided slice per tap, the padding never read (an axis of
many taps at a stride of 2 or more, where a tile's runs are few: one ``ufunc.reduce`` over a strided view of its
windows, the same sums in the same order, :mod:`~im2col_cnn.kernels.whole_windows`). Max pooling
records each window's winner as it goes: over overlapping windows, the first tap holding each partial maximum
along the first axis (window by window where windows are few against their taps), then, axis by axis, the first
tap holding the window's; over windows that do not overlap (2x2 stride 2), which need no separation, a running
maximum over the kernel offsets.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from functools import lru_cache

import numpy as np

from ..geometry.adaptive import WindowCounts
from ..geometry.tiles import PoolTile, output_tiles, tile_key
from ..geometry.windows import Axis, WindowGeometry, geometry_of
from ..runtime.layout import copies_whole_positions, copy_rows, empty_channels_last
from ..runtime.parallel import map_blocks
from .pool_plan import (
    ALL,
    Offset,
    Scratch,
    TilePlan,
    as_code,
    code_dtype,
    code_steps,
    converts_tiles,
    forward_tile_bytes,
    max_workers,
    short_ufunc_chunks,
    tile_plan,
)
from .whole_windows import MANY_TAPS, max_takes_whole, max_whole_windows, reduce_whole_windows

__all__ = ["pool_geometry", "avg_divisor", "pool_windows", "argmax_indices", "winner_offsets"]


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
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> WindowGeometry:
    """Window geometry of a pooling layer on ``x_shape`` (N, *spatial, C); ceil_mode's extra windows become extra
    trailing padding."""
    spatial = x_shape[1:-1]
    outs = tuple(_out_size(*args, ceil_mode) for args in zip(spatial, kernel, stride, padding, dilation, strict=True))
    if min(outs) < 1:
        reach = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))
        padded = tuple(size + 2 * p for size, p in zip(spatial, padding, strict=True))
        raise ValueError(
            f"kernel_size {kernel} (spanning {reach}) is larger than the padded input {padded} "
            f"(input {tuple(spatial)} with padding {padding})"
        )
    # Trailing padding so that exactly `outs` windows fit; it differs from the leading padding when windows are
    # left over (floor) or added (ceil). The padding is never read, so only the count of windows matters.
    axes = tuple(
        Axis(size, k, s, d, p, (o - 1) * s + (k - 1) * d + 1 - size - p)
        for size, k, s, d, p, o in zip(spatial, kernel, stride, dilation, padding, outs, strict=True)
    )
    geom = geometry_of(axes)
    uncovered = [next((o for o, hit in enumerate(_covered(a)) if not hit), None) for a in axes]
    if any(u is not None for u in uncovered):  # only a dilation larger than the input can step over it
        # The first such window in row-major order: at the origin if one axis' first window misses, else the last
        # axis with a missing window.
        axis = max(a for a, u in enumerate(uncovered) if u is not None)
        window = tuple(0 if a != axis else uncovered[axis] for a in range(len(axes)))
        if 0 in uncovered:
            window = (0,) * len(axes)
        raise ValueError(
            f"dilation {dilation} with padding {padding} leaves pooling window {window} covering no "
            f"input position (input {tuple(spatial)})"
        )
    return geom


def _covered(axis: Axis) -> np.ndarray:
    """Per output of ``axis``: whether its window reads any input position."""
    hit = np.zeros(axis.out, dtype=bool)
    for tap in axis.taps():
        if tap is not None:
            hit[tap[0]] = True
    return hit


@lru_cache(maxsize=256)
def avg_divisor(
    geom: WindowGeometry,
    padding: tuple[int, ...],
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype,
) -> float | WindowCounts:
    """PyTorch's average-pool divisor: a number, or, where windows differ, each window's count in ``dtype``
    as :class:`~im2col_cnn.geometry.adaptive.WindowCounts` (one count per output along each axis, multiplied a
    tile at a time).

    A window counts its positions inside the input plus, with ``count_include_pad``, inside the padding --
    but never beyond the padded input (where ceil_mode's last windows may reach).
    """
    if divisor_override is not None:
        return float(divisor_override)
    per_axis = []
    for a, p in zip(geom.axes, padding, strict=True):
        start = np.arange(a.out) * a.s - p
        end = np.minimum(start + a.k, a.size + p)
        per_axis.append(end - start if count_include_pad else np.minimum(end, a.size) - np.maximum(start, 0))
    if all(c.min() == c.max() for c in per_axis):
        return float(math.prod(int(c[0]) for c in per_axis))
    return WindowCounts(tuple(per_axis), dtype)


def pool_windows(
    x: np.ndarray,
    geom: WindowGeometry,
    kind: str,
    *,
    winners: bool,
    divisor: float | WindowCounts,
    channels_first: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Max pooling (``kind='max'``: the padding never wins) or average pooling (``'avg'``) of ``x`` (N, *spatial, C).

    Returns ``out`` (N, *out, C) -- window sums divided by ``divisor`` (a number, or each window's count) for
    ``'avg'`` -- and, when ``winners``, each max window's winner (N, *out, C) of
    :func:`~im2col_cnn.kernels.pool_plan.code_dtype`: the code of its first maximum in row-major window order, or
    of its last NaN (PyTorch's rules). Both are allocated in the memory layout the caller uses and returned as
    channels-last views.
    """
    dtype = x.dtype.newbyteorder("=")
    shape = (x.shape[0], *geom.out_shape, x.shape[-1])
    out = empty_channels_last(shape, dtype, channels_first)
    code = code_dtype(geom.kernel)
    win = empty_channels_last(shape, code, channels_first) if winners else None
    disjoint = all(a.disjoint for a in geom.axes)

    # channels-first pooling of short rows, where the tile's copy reads every channel of a position at once
    convert = converts_tiles(geom, winners, channels_first, x) and copies_whole_positions(x)

    def work(tile: PoolTile, scratch: Scratch) -> None:
        plan = tile_plan(geom.axes, tile_key(tile), code)
        xt, ot = x[tile.inp()], out[tile.out()]
        wt = None if win is None else win[tile.out()]
        div = divisor if isinstance(divisor, float) else divisor[tile.out_box()]  # a number or (*o, 1)
        src, dst, dst_win = xt, ot, wt
        if convert:  # the tile channels-last, its results copied back into the caller's layout below
            src = scratch.get("input", xt.shape, dtype)
            copy_rows(src, xt)
            dst = scratch.get("output", ot.shape, dtype)
            dst_win = None if wt is None else scratch.get("winners", wt.shape, wt.dtype)
        # disjoint windows read runs of C elements, where NumPy's default chunks are faster; overlapping ones' first
        # stage reads runs of a whole row of elements
        with nullcontext() if disjoint else short_ufunc_chunks():
            _forward_tile(src, dst, dst_win, plan, disjoint, kind, div, scratch)
        if convert:
            np.copyto(ot, dst)
            if wt is not None:
                np.copyto(wt, dst_win)

    tiles = output_tiles(x.shape, geom.axes, dtype.itemsize, forward_tile_bytes(geom, winners, convert))
    map_blocks(work, tiles, lambda: Scratch(channels_first and not convert), max_threads=max_workers())
    return out, win


def _stage_shape(xt: np.ndarray, ot: np.ndarray, axis: int) -> tuple[int, ...]:
    """The shape after reducing spatial axes ``0..axis``: outputs along those, inputs along the later ones."""
    return (*ot.shape[: axis + 2], *xt.shape[axis + 2 :])


def _forward_tile(
    xt: np.ndarray,
    ot: np.ndarray,
    wt: np.ndarray | None,
    plan: TilePlan,
    disjoint: bool,
    kind: str,
    divisor: float | np.ndarray,  # the tile's part
    scratch: Scratch,
) -> None:
    """One output tile ``ot`` (and ``wt``) of the input tile ``xt``: reduce over the taps of the first spatial axis
    into scratch, then over those of each later axis (or, for the maximum over disjoint windows whose first axis
    is not taken whole, over the kernel offsets at once). ``divisor`` is the tile's: a number or its (*o, 1) part
    of the window counts."""
    nd = len(plan.axis_taps)
    if kind == "avg" or wt is None:
        op, fill = (np.add, 0.0) if kind == "avg" else (np.maximum, -np.inf)
        src = xt
        for axis in range(nd):
            dst = ot if axis == nd - 1 else scratch.get(f"stage{axis}", _stage_shape(xt, ot, axis), ot.dtype)
            _reduce(src, dst, plan.axis_taps[axis], axis + 1, op, fill, plan.rests[axis])
            src = dst
        if kind == "avg":
            np.divide(ot, divisor, out=ot)
        return
    steps = code_steps([len(t) for t in plan.axis_taps])
    first_taps = plan.axis_taps[0]
    whole = len(first_taps) >= MANY_TAPS and max_takes_whole(xt, ot, first_taps, 1)  # the first axis' windows whole
    separable = nd > 1 and (whole or not disjoint)  # else one axis, or windows that share no input
    vals, wins = ot, wt
    if separable:
        vals = scratch.get("vals0", _stage_shape(xt, ot, 0), ot.dtype)
        wins = scratch.get("wins0", vals.shape, wt.dtype)
    if whole:
        max_whole_windows(xt, vals, wins, first_taps, 1, steps[0])
    elif separable:
        _running_max(xt, vals, wins, plan.lead_offsets, plan.first_lead, scratch)
    else:  # the kernel offsets at once
        _running_max(xt, ot, wt, plan.offsets, plan.first, scratch)
    if not separable:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum only costs the exact slow path
            has_nan = bool(np.isnan(ot.sum()))
        if has_nan:  # rare
            _nan_winners(xt, wt, plan)
        return
    for axis in range(1, nd):
        last = axis == nd - 1
        dst = ot if last else scratch.get(f"vals{axis}", _stage_shape(xt, ot, axis), ot.dtype)
        dst_win = wt if last else scratch.get(f"wins{axis}", dst.shape, wt.dtype)
        _reduce(vals, dst, plan.axis_taps[axis], axis + 1, np.maximum, -np.inf, plan.rests[axis])
        _axis_winners(vals, wins, dst, dst_win, plan.axis_taps[axis], axis + 1, steps[axis], plan.rests[axis], scratch)
        vals, wins = dst, dst_win
    if wt.max() == np.iinfo(wt.dtype).max:  # only a window holding NaN finds no winner
        _nan_winners(xt, wt, plan)


def _reduce(
    src: np.ndarray, dst: np.ndarray, taps: tuple, axis: int, op: np.ufunc, fill: float, rest: list[tuple]
) -> None:
    """``dst`` = ``op`` over the taps of ``src`` along array axis ``axis``, in tap order; ``rest`` are the outputs
    the first tap does not reach. When the first two taps reach the same outputs, the first operation reads both
    (one pass fewer than copying the first), with the same result."""
    if len(taps) >= MANY_TAPS and reduce_whole_windows(src, dst, taps, axis, op, fill):
        return
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
        cs = as_code(bs, codes[out])
        np.multiply(cs, code, out=cs)
        np.maximum(ws, cs, out=ws)


def _axis_winners(
    r: np.ndarray,
    r_win: np.ndarray,
    ot: np.ndarray,
    wt: np.ndarray,
    taps: tuple,
    axis: int,
    step: int,
    rest: list[tuple],
    scratch: Scratch,
) -> None:
    """``wt`` = each window's first maximum in row-major order along array axis ``axis``: the least
    ``r_win + t*step`` over the taps ``t`` whose partial maximum ``r`` equals the window's ``ot`` (the earlier
    axes' first winner, then this axis' first tap)."""
    equal = scratch.get("equal", ot.shape, np.dtype(bool))
    mask = scratch.get("mask", ot.shape, wt.dtype)
    cand = scratch.get("candidates", ot.shape, wt.dtype)
    lead = (ALL,) * axis
    first = True
    for t, tap in enumerate(taps):
        if tap is None:
            continue
        o, i = (*lead, tap[0]), (*lead, tap[1])
        es, ms, cs, ws = equal[o], mask[o], cand[o], wt[o]
        np.equal(r[i], ot[o], out=es)
        np.subtract(as_code(es, ms), 1, out=ms)  # 0 where tied with the maximum, all ones elsewhere
        if first:
            for part in rest:
                wt[part].fill(np.iinfo(wt.dtype).max)  # windows the first tap does not reach
            np.add(r_win[i], t * step, out=ws)
            np.bitwise_or(ws, ms, out=ws)
            first = False
            continue
        np.add(r_win[i], t * step, out=cs)
        np.bitwise_or(cs, ms, out=cs)
        np.minimum(ws, cs, out=ws)


def _nan_winners(xt: np.ndarray, wt: np.ndarray, plan: TilePlan) -> None:
    """Rare: windows holding NaN send their gradient to their last NaN (in row-major order), as PyTorch does."""
    for code, out, inp, _ in plan.offsets:
        np.copyto(wt[out], code, where=np.isnan(xt[inp]))


def winner_offsets(geom: WindowGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Where winners lie in the flat unpadded spatial input (``h * W + w`` in 2-D): a winner with code ``c`` in the
    window at output ``o`` lies at ``shift[c] + start[o]``; ``shift`` (prod(kernel),) and ``start`` (*out), int64.

    Code ``c = sum of tap_a * step_a`` (row-major over the kernel) reads input ``o_a*s_a - lo_a + tap_a*d_a``
    along each axis.
    """
    in_steps = [math.prod(geom.in_shape[a + 1 :]) for a in range(geom.ndim)]
    shift = np.zeros((), dtype=np.int64)
    start = np.zeros((), dtype=np.int64)
    for a, axis in enumerate(geom.axes):
        shift = np.add.outer(shift, np.arange(axis.k, dtype=np.int64) * (axis.d * in_steps[a]))
        start = np.add.outer(start, (np.arange(axis.out, dtype=np.int64) * axis.s - axis.lo) * in_steps[a])
    return shift.reshape(-1), start


def argmax_indices(win: np.ndarray, geom: WindowGeometry, channels_first: bool) -> np.ndarray:
    """PyTorch's ``return_indices``: the flat index into the unpadded spatial input (``h * W + w`` in 2-D) of each
    window's winner (N, *out, C), int64, as a channels-last view."""
    idx = empty_channels_last(win.shape, np.dtype(np.int64), channels_first)
    shift, start = winner_offsets(geom)
    np.take(shift, win, out=idx, mode="clip")  # (prod(kernel),)[code] -> (N, *out, C); "clip": unbuffered
    idx += start[..., None]  # (*out, 1)
    return idx
