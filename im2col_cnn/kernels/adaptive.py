"""Adaptive pooling's forward kernels: windows whose bounds are lists (:mod:`~im2col_cnn.geometry.adaptive`),
not a stride.

Along an axis of ``L`` inputs and ``O`` outputs, window ``i`` is ``[floor(i*L/O), ceil((i+1)*L/O))``: where its
starts follow no stride, a window's taps are gathered with index arrays, not strided slices (where they do, the
layer runs the pooling kernels instead). Separable, like :mod:`~im2col_cnn.kernels.pool_forward`: the windows of
the first spatial axis, then of each later one -- tap by tap for short windows, as one stack reduced over a last
axis for long ones. Max pooling carries each partial maximum's input position and combines them axis by axis into
the flat input index of the window's first maximum in row-major order (PyTorch's ``return_indices``); windows
holding NaN are redone exactly (the last NaN wins). The backward kernels are in
:mod:`~im2col_cnn.kernels.adaptive_backward`.

Tiles (:func:`~im2col_cnn.geometry.tiles.output_tiles`) bound the scratch, run on the engine's threads, and do not
change any result.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry import tiles as tiling
from ..geometry.adaptive import AdaptiveAxis, WindowCounts
from ..geometry.tiles import PoolTile, output_tiles
from ..runtime.layout import empty_channels_last
from ..runtime.parallel import map_blocks
from .pool_plan import ALL, Scratch, as_code, max_workers

__all__ = ["adaptive_tile_bytes", "adaptive_windows", "winner_dtype"]


def adaptive_tile_bytes() -> int:
    """The input one tile reads (forward) or writes (backward), 1 MiB: half the pooling kernels' ``TILE_BYTES``,
    as these kernels hold more intermediates per element (gathered taps, stacked windows, wide winner codes), so
    that one thread's scratch stays within ``WORKER_SCRATCH_BYTES`` (the NCHW adaptive max backward of a
    (4, 16, 512, 512) float32 batch: 8.6 MiB per thread with whole ``TILE_BYTES`` tiles, 5.4 with these)."""
    return tiling.TILE_BYTES // 2


def winner_dtype(axes: tuple[AdaptiveAxis, ...]) -> np.dtype:
    """The unsigned type of a winner's flat input index; its largest value is never an index (a sentinel)."""
    return np.min_scalar_type(math.prod(a.size for a in axes))


def _planes(view: np.ndarray) -> np.ndarray | None:
    """A channels-last view (N, *spatial, C) of a C-contiguous channels-first array as the same memory seen as
    (N*C, *spatial, 1) -- one plane per image and channel, each contiguous, so that gathering a tap reads
    contiguous runs -- or None where the memory is not laid out so."""
    first = view.transpose(0, view.ndim - 1, *range(1, view.ndim - 1))  # (N, C, *spatial)
    if not first.flags.c_contiguous:
        return None
    return first.reshape(-1, *first.shape[2:], 1)


def _shape_along(ndim: int, axis: int, size: int) -> tuple[int, ...]:
    """A shape broadcasting an array of ``size`` along spatial ``axis`` of an (n, *spatial, c) array."""
    return (1,) * (axis + 1) + (size,) + (1,) * (ndim - axis)


def adaptive_windows(
    x: np.ndarray,
    axes: tuple[AdaptiveAxis, ...],
    kind: str,
    *,
    counts: float | WindowCounts | None,
    channels_first: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Adaptive max (``kind='max'``) or average (``'avg'``, divided by ``counts``, a number or
    :class:`~im2col_cnn.geometry.adaptive.WindowCounts`) pooling of ``x``
    (N, *spatial, C) -> ``out`` (N, *out, C) and, for max, each window's winner: the flat index of its first
    maximum in the spatial input (its last NaN if it holds one), of :func:`winner_dtype`. Both are allocated in
    the caller's memory layout and returned as channels-last views."""
    dtype = x.dtype.newbyteorder("=")
    shape = (x.shape[0], *(a.out for a in axes), x.shape[-1])
    out = empty_channels_last(shape, dtype, channels_first)
    win = empty_channels_last(shape, winner_dtype(axes), channels_first) if kind == "max" else None
    result, winners = out, win
    planes = _planes(x) if channels_first else None
    if planes is not None:  # the same memory as (N*C, *spatial, 1) planes: taps gathered in contiguous runs
        x, out, win = planes, _planes(out), None if win is None else _planes(win)

    def work(tile: PoolTile, scratch: Scratch) -> None:
        xt, ot = x[tile.inp()], out[tile.out()]
        if kind == "avg":
            _sum_windows(xt, ot, tile, axes, scratch)
            np.divide(ot, counts if isinstance(counts, float) else counts[tile.out_box()], out=ot)  # type: ignore[index]
        else:
            _max_windows(xt, ot, win[tile.out()], tile, axes, scratch)  # type: ignore[index]

    tiles = output_tiles(x.shape, axes, dtype.itemsize, adaptive_tile_bytes())  # type: ignore[arg-type]
    map_blocks(work, tiles, lambda: Scratch(False), max_threads=max_workers())
    return result, winners


def _stage(xt: np.ndarray, ot: np.ndarray, axis: int) -> tuple[int, ...]:
    """The shape after the windows of spatial axes ``0..axis``: outputs along those, inputs along the later ones."""
    return (*ot.shape[: axis + 2], *xt.shape[axis + 2 :])


def _take(src: np.ndarray, index: np.ndarray, axis: int, into: np.ndarray | None = None) -> np.ndarray:
    """``src`` gathered at ``index`` along array ``axis``, into ``into`` if given.

    ``np.take`` first makes a contiguous copy of a ``src`` that is not (a tile of channels, a window view): such a
    ``src`` is indexed instead, which reads only the gathered part.
    """
    if src.flags.c_contiguous and (into is None or into.flags.c_contiguous):
        return np.take(src, index, axis=axis, out=into, mode="clip")
    gathered = src[(ALL,) * axis + (index,)]
    if into is None:
        return gathered
    np.copyto(into, gathered)
    return into


LONG_WINDOW = 16
"""Windows longer than this are reduced as a stack (one gather and one reduction over a last axis of window
positions) rather than tap by tap (one gather and one elementwise operation per tap)."""


def _stack(
    src: np.ndarray, axis: AdaptiveAxis, array_axis: int, o0: int, o1: int, i0: int, fill: float | int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows of outputs ``[o0, o1)`` along ``array_axis`` of ``src`` (its inputs from ``i0`` on) stacked on
    a new last axis: ``(..., o1 - o0, ..., k)`` (a copy), positions outside each window set to ``fill``; the
    input position (relative to ``i0``) of each stacked row's first entry, ``(o1 - o0,)``; and which entries lie
    in their window, broadcastable to the stack."""
    length = src.shape[array_axis]
    starts, ends = (b - i0 for b in axis.bounds(o0, o1))
    k = int((ends - starts).max())  # the tile holds every input its windows read
    rows = np.minimum(starts, length - k)  # a window near the end sits further right in its row
    view = np.lib.stride_tricks.sliding_window_view(src, k, axis=array_axis)  # (..., length - k + 1, ..., k)
    # (..., O, ..., k), C-contiguous whatever the layout of src (fancy indexing keeps no fixed memory order), so
    # that reductions over the windows add in the same order for channels-first and channels-last input
    stack = np.ascontiguousarray(_take(view, rows, array_axis))
    j = np.arange(k)
    valid = (j >= (starts - rows)[:, None]) & (j < (ends - rows)[:, None])  # (O, k)
    shape = [1] * stack.ndim
    shape[array_axis], shape[-1] = valid.shape
    valid = valid.reshape(shape)
    if not valid.all():
        np.copyto(stack, fill, where=~valid)
    return stack, rows, valid


def _sum_windows(
    xt: np.ndarray, ot: np.ndarray, tile: PoolTile, axes: tuple[AdaptiveAxis, ...], scratch: Scratch
) -> None:
    """``ot`` = each window's sum, axis by axis; the taps a shorter window does not have are left out."""
    _reduce_windows(np.add, xt, ot, tile, axes, scratch, "sum", 0)


def _reduce_windows(
    ufunc: np.ufunc,
    xt: np.ndarray,
    ot: np.ndarray,
    tile: PoolTile,
    axes: tuple[AdaptiveAxis, ...],
    scratch: Scratch,
    name: str,
    fill: float | int,
) -> None:
    """``ot`` = ``ufunc`` (add or maximum) reduced over each window, axis by axis: tap by tap for short windows,
    over a stack for long ones (positions outside a window set to ``fill``, the ufunc's identity). ``name``
    prefixes the scratch buffers."""
    src, nd = xt, len(axes)
    for a, axis in enumerate(axes):
        (orange, irange) = tile.axes[a]
        dst = ot if a == nd - 1 else scratch.get(f"{name}{a}", _stage(xt, ot, a), ot.dtype)
        if axis.extent > LONG_WINDOW:
            stack, _, _ = _stack(src, axis, a + 1, orange.start, orange.stop, irange.start, fill)
            ufunc.reduce(stack, axis=-1, out=dst)  # in window order
            src = dst
            continue
        for t, (index, valid) in enumerate(axis.taps(orange.start, orange.stop, irange.start)):
            if t == 0:
                _take(src, index, a + 1, dst)
                continue
            tap = _take(src, index, a + 1, scratch.get(f"{name}tap", dst.shape, dst.dtype))
            where = True if valid is None else valid.reshape(_shape_along(nd, a, valid.size))
            ufunc(dst, tap, out=dst, where=where)
        src = dst


def _max_windows(
    xt: np.ndarray, ot: np.ndarray, wt: np.ndarray, tile: PoolTile, axes: tuple[AdaptiveAxis, ...], scratch: Scratch
) -> None:
    """``ot`` = each window's maximum and ``wt`` its first position in row-major order (flat input index).

    Along the first axis a running maximum over the taps records the input row of each partial maximum (a later
    tap wins only when strictly greater); along each later axis the window's maximum is found among the partial
    maxima, and its position is the least flat index among the taps that hold it.
    """
    nd = len(axes)
    vals, wins = None, None
    for a, axis in enumerate(axes):
        (orange, irange) = tile.axes[a]
        last = a == nd - 1
        dst = ot if last else scratch.get(f"vals{a}", _stage(xt, ot, a), ot.dtype)
        dwin = wt if last else scratch.get(f"wins{a}", dst.shape, wt.dtype)
        shape = _shape_along(nd, a, orange.stop - orange.start)
        if axis.extent > LONG_WINDOW:
            ranges = (orange.start, orange.stop, irange.start)
            _stacked_axis(xt if a == 0 else vals, None if a == 0 else wins, dst, dwin, axis, a + 1, ranges, shape)
            vals, wins = dst, dwin
            continue
        taps = axis.taps(orange.start, orange.stop, irange.start)
        if a == 0:
            _first_axis(xt, dst, dwin, taps, irange.start, shape, scratch)
        else:
            _later_axis(vals, wins, dst, dwin, taps, axis.size, irange.start, a + 1, shape, scratch)  # type: ignore[arg-type]
        vals, wins = dst, dwin
    if np.isnan(ot).any():  # rare: windows holding NaN send their gradient to their last NaN
        _nan_winners(xt, ot, wt, tile, axes, scratch)


def _first_axis(
    src: np.ndarray, dst: np.ndarray, win: np.ndarray, taps: list, i0: int, shape: tuple[int, ...], scratch: Scratch
) -> None:
    """Running maximum over the first axis' taps, ``win`` the input row of each (rows ascend with the taps)."""
    better = scratch.get("better", dst.shape, np.dtype(bool))
    codes = scratch.get("codes", dst.shape, win.dtype)
    tap = scratch.get("tap", dst.shape, dst.dtype)
    for t, (index, _) in enumerate(taps):
        rows = (index + i0).astype(win.dtype).reshape(shape)
        if t == 0:
            _take(src, index, 1, dst)
            np.copyto(win, rows)
            continue
        _take(src, index, 1, tap)
        np.greater(tap, dst, out=better)  # a repeated last input is never greater: it never wins
        np.maximum(dst, tap, out=dst)
        np.multiply(better, rows, out=codes)
        np.maximum(win, codes, out=win)


def _later_axis(
    vals: np.ndarray,
    wins: np.ndarray,
    dst: np.ndarray,
    win: np.ndarray,
    taps: list,
    size: int,
    i0: int,
    axis: int,
    shape: tuple[int, ...],
    scratch: Scratch,
) -> None:
    """The window maximum along array ``axis`` of the partial maxima ``vals``, and the least flat index
    ``wins * size + position`` among the taps that hold it.

    Two passes over the taps: the maximum first, then each tap's candidate index kept where its value equals the
    maximum (ORed with all ones elsewhere, which the running minimum never picks) -- no masked copies, whose cost
    follows the branch predictor on data where about every other tap is greater.
    """
    tap = scratch.get("tap", dst.shape, dst.dtype)
    cand = scratch.get("cand", dst.shape, win.dtype)
    equal = scratch.get("equal", dst.shape, np.dtype(bool))
    mask = scratch.get("mask", dst.shape, win.dtype)
    for t, (index, _) in enumerate(taps):
        if t == 0:
            _take(vals, index, axis, dst)
        else:
            np.maximum(dst, _take(vals, index, axis, tap), out=dst)
    for t, (index, _) in enumerate(taps):
        cols = (index + i0).astype(win.dtype).reshape(shape)
        target = win if t == 0 else cand
        _take(wins, index, axis, target)
        np.multiply(target, size, out=target)
        np.add(target, cols, out=target)
        np.equal(_take(vals, index, axis, tap), dst, out=equal)
        np.subtract(as_code(equal, mask), 1, out=mask)  # 0 where the tap holds the maximum, all ones elsewhere
        np.bitwise_or(target, mask, out=target)
        if t:
            np.minimum(win, cand, out=win)


def _stacked_axis(
    vals: np.ndarray,
    wins: np.ndarray | None,
    dst: np.ndarray,
    win: np.ndarray,
    axis: AdaptiveAxis,
    array_axis: int,
    ranges: tuple[int, int, int],
    shape: tuple[int, ...],
) -> None:
    """The window maximum along ``array_axis`` over stacked windows, and the least flat index among the
    positions that hold it: ``position`` along the first axis (``wins`` None), else ``wins * size +
    position``. Within one window the first maximum is its first position; a window holding NaN is redone by
    :func:`_nan_winners`."""
    o0, o1, i0 = ranges
    stack, rows, valid = _stack(vals, axis, array_axis, o0, o1, i0, -np.inf)
    np.max(stack, axis=-1, out=dst)
    positions = (rows + i0).reshape(shape)  # each stacked row's first input position, absolute
    if wins is None:
        # The first maximum; a window of -inf only: its first position, not a filled one before it.
        first = np.maximum(np.argmax(stack, axis=-1), (axis.bounds(o0, o1)[0] - i0 - rows).reshape(shape))
        np.add(first, positions, out=win, casting="unsafe")
        return
    codes, _, _ = _stack(wins, axis, array_axis, o0, o1, i0, 0)  # (..., O, ..., k) earlier axes' winners
    cand = codes.astype(np.int64) * axis.size + (positions[..., None] + np.arange(stack.shape[-1]))
    cand[(stack != dst[..., None]) | ~valid] = np.iinfo(np.int64).max  # only the window's taps at its maximum
    np.copyto(win, np.min(cand, axis=-1), casting="unsafe")


def _nan_winners(
    xt: np.ndarray, ot: np.ndarray, wt: np.ndarray, tile: PoolTile, axes: tuple[AdaptiveAxis, ...], scratch: Scratch
) -> None:
    """``wt`` = the last NaN (the greatest flat input index holding NaN) of each window whose maximum is NaN:
    the flat index of every NaN input of the tile (-1 elsewhere), max-reduced over the windows."""
    nd = len(axes)
    flat = np.zeros((1,) * (nd + 2), dtype=np.int64)
    for a, (_, irange) in enumerate(tile.axes):
        rows = np.arange(irange.start, irange.stop, dtype=np.int64)
        flat = flat * axes[a].size + rows.reshape(_shape_along(nd, a, rows.size))
    codes = np.where(np.isnan(xt), flat, -1)  # (n, *inputs, c) int64
    last = np.empty(ot.shape, dtype=np.int64)
    _reduce_windows(np.maximum, codes, last, tile, axes, scratch, "nan", -1)
    np.copyto(wt, last, where=np.isnan(ot), casting="unsafe")
