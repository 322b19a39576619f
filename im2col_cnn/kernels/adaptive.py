"""Adaptive pooling kernels: windows whose bounds follow PyTorch's rule instead of a stride.

Along an axis of ``L`` inputs and ``O`` outputs, window ``i`` is ``[floor(i*L/O), ceil((i+1)*L/O))``: its start is
not a multiple of any stride, so a window's taps are gathered with index arrays (``np.take``, one gather per tap
of the longest window), not strided slices. Where every axis divides evenly the windows are an ordinary pooling
(kernel and stride ``L/O``) and the layer runs the pooling kernels instead; this module handles the rest.

* Forward: separable, like :mod:`~im2col_cnn.kernels.pool_forward` -- the windows of the first spatial axis,
  then of each later one, tap by tap. Max pooling carries each partial maximum's input position and combines
  them axis by axis into the flat input index of the window's first maximum in row-major order (PyTorch's
  ``return_indices``); windows holding NaN are redone exactly (the last NaN wins).
* Backward: each tile of ``dx`` gathers from the outputs whose windows cover it. A position is covered by one
  window along each axis except where consecutive windows overlap, so the bulk is one gather per axis and the
  overlapping positions are added in afterwards. Average pooling spreads ``dout / count`` axis by axis; max
  pooling keeps ``dout`` where the covering window's winner is that position.

Tiles (:func:`~im2col_cnn.geometry.tiles.output_tiles` / :func:`~im2col_cnn.geometry.tiles.input_tiles`) bound
the scratch, run on the engine's threads, and do not change any result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import product

import numpy as np

from ..geometry.tiles import PoolTile, input_tiles, output_tiles
from ..geometry.windows import Axis
from ..runtime.layout import empty_channels_last
from ..runtime.parallel import map_blocks
from .pool_plan import ALL, Scratch, max_workers

__all__ = [
    "AdaptiveAxis",
    "strided_axis",
    "adaptive_axis",
    "clipped_axis",
    "adaptive_windows",
    "adaptive_scatter",
    "window_counts",
    "winner_dtype",
]


@dataclass(frozen=True)
class AdaptiveAxis:
    """Windows of contiguous inputs along one axis of ``size`` inputs: window ``i`` spans ``[starts[i], ends[i])``,
    starts and ends non-decreasing. :func:`adaptive_axis` gives PyTorch's adaptive windows, :func:`clipped_axis`
    an ordinary pooling's windows cut to the input (the padding never read)."""

    size: int
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @property
    def out(self) -> int:
        return len(self.starts)

    @cached_property
    def first(self) -> np.ndarray:
        return np.array(self.starts, dtype=np.intp)

    @cached_property
    def last(self) -> np.ndarray:
        return np.array(self.ends, dtype=np.intp)

    @cached_property
    def lengths(self) -> np.ndarray:
        return self.last - self.first

    @cached_property
    def extent(self) -> int:
        """The longest window."""
        return int(self.lengths.max())

    @property
    def s(self) -> int:
        """The mean step between windows, at least 1 (to size the tiles)."""
        return max(1, self.size // self.out)

    def in_range(self, o0: int, o1: int) -> tuple[int, int]:
        """The inputs ``[lo, hi)`` that the windows of outputs ``[o0, o1)`` read."""
        return self.starts[o0], max(self.starts[o0], self.ends[o1 - 1])

    def out_range(self, i0: int, i1: int) -> tuple[int, int]:
        """The outputs ``[o0, o1)`` whose windows read any input in ``[i0, i1)``."""
        o0 = int(np.searchsorted(self.last, i0, side="right"))
        return o0, max(o0, int(np.searchsorted(self.first, i1, side="left")))

    def taps(self, o0: int, o1: int, i0: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per tap ``t`` of the longest window: the input each output in ``[o0, o1)`` reads (relative to ``i0``;
        a window shorter than ``t + 1`` repeats its last input) and which outputs' windows are that long (None:
        all of them)."""
        starts, ends = self.first[o0:o1], self.last[o0:o1]
        short = int((ends - starts).min())
        return [
            (np.minimum(starts + t, ends - 1) - i0, None if t < short else ends - starts > t)
            for t in range(self.extent)
        ]

    def owners(self, i0: int, i1: int, o0: int) -> list[tuple[np.ndarray | slice, np.ndarray]]:
        """The windows covering each input of ``[i0, i1)``: for ``u = 0, 1, ...``, the inputs (relative to ``i0``;
        ``slice(None)`` for all of them) covered by at least ``u + 1`` windows and the ``u``-th of those windows
        (relative to ``o0``). Inputs no window covers (a stride longer than the windows) are in none."""
        j = np.arange(i0, i1, dtype=np.intp)
        first = np.searchsorted(self.last, j, side="right")  # the first window ending after j
        count = np.searchsorted(self.first, j, side="right") - first  # windows starting at or before j
        covered: np.ndarray | slice = ALL if count.min() >= 1 else np.flatnonzero(count >= 1)
        result: list[tuple[np.ndarray | slice, np.ndarray]] = [(covered, first[covered] - o0)]
        for u in range(1, int(count.max())):
            more = np.flatnonzero(count > u)
            result.append((more, first[more] + u - o0))
        return result


def adaptive_axis(size: int, out: int) -> AdaptiveAxis:
    """PyTorch's adaptive windows: ``out`` windows over ``size`` inputs, ``[floor(i*L/O), ceil((i+1)*L/O))``."""
    i = np.arange(out)
    return AdaptiveAxis(
        size, tuple(int(v) for v in i * size // out), tuple(int(v) for v in -(-((i + 1) * size) // out))
    )


def clipped_axis(axis: Axis) -> AdaptiveAxis:
    """An ordinary pooling's windows along ``axis`` (dilation 1) cut to the input."""
    o = np.arange(axis.out) * axis.s - axis.lo
    starts, ends = np.clip(o, 0, axis.size), np.clip(o + axis.k, 0, axis.size)
    return AdaptiveAxis(axis.size, tuple(int(v) for v in starts), tuple(int(v) for v in ends))


def strided_axis(axis: AdaptiveAxis) -> Axis | None:
    """The ordinary pooling axis (kernel, stride, padding before and after) whose windows, cut to the input, are
    exactly ``axis``'s, or None. Adaptive windows often are: 14 inputs to 5 outputs are a kernel of 4 at stride 3
    with a padding of 1, and sizes that divide evenly a kernel of ``L/O`` at that stride."""
    size, starts, ends = axis.size, axis.first, axis.last
    if axis.out == 1:
        return Axis(size, int(ends[0] - starts[0]), 1, 1, -int(starts[0]), int(ends[0]) - size)
    for s in sorted({int(v) for v in np.diff(starts)} | {size // axis.out, -(-size // axis.out)}):
        lo = s - int(starts[1])  # window 1 starts at 1*s - lo, inside the input
        k = int(ends[1] - starts[1])
        if s < 1 or lo < 0 or k < 1 or k <= lo:
            continue
        o = np.arange(axis.out) * s - lo
        if np.array_equal(np.clip(o, 0, size), starts) and np.array_equal(np.clip(o + k, 0, size), ends):
            return Axis(size, k, s, 1, lo, (axis.out - 1) * s + k - size - lo)
    return None


def window_counts(axes: tuple[AdaptiveAxis, ...]) -> np.ndarray:
    """Each window's size, the average's divisor: ``(*out, 1)``, float64."""
    counts = axes[0].lengths
    for a in axes[1:]:
        counts = np.multiply.outer(counts, a.lengths)  # type: ignore[assignment]
    return counts[..., None].astype(np.float64)


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
    counts: float | np.ndarray | None,
    channels_first: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Adaptive max (``kind='max'``) or average (``'avg'``, divided by ``counts``, a number or (*out, 1)) pooling of
    ``x``
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
            np.divide(ot, counts if np.ndim(counts) == 0 else counts[tile.out_box()], out=ot)  # type: ignore[index]
        else:
            _max_windows(xt, ot, win[tile.out()], tile, axes, scratch)  # type: ignore[index]

    tiles = output_tiles(x.shape, axes, dtype.itemsize)  # type: ignore[arg-type]
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
    k = min(axis.extent, length)  # the tile holds every input its windows read
    starts = axis.first[o0:o1] - i0
    rows = np.minimum(starts, length - k)  # a window near the end sits further right in its row
    view = np.lib.stride_tricks.sliding_window_view(src, k, axis=array_axis)  # (..., length - k + 1, ..., k)
    stack = _take(view, rows, array_axis)  # (..., O, ..., k)
    j = np.arange(k)
    valid = (j >= (starts - rows)[:, None]) & (j < (axis.last[o0:o1] - i0 - rows)[:, None])  # (O, k)
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
    src, nd = xt, len(axes)
    for a, axis in enumerate(axes):
        (orange, irange) = tile.axes[a]
        dst = ot if a == nd - 1 else scratch.get(f"stage{a}", _stage(xt, ot, a), ot.dtype)
        if axis.extent > LONG_WINDOW:
            stack, _, _ = _stack(src, axis, a + 1, orange.start, orange.stop, irange.start, 0)
            np.add.reduce(stack, axis=-1, out=dst)  # in window order
            src = dst
            continue
        for t, (index, valid) in enumerate(axis.taps(orange.start, orange.stop, irange.start)):
            if t == 0:
                _take(src, index, a + 1, dst)
                continue
            tap = _take(src, index, a + 1, scratch.get("tap", dst.shape, dst.dtype))
            where = True if valid is None else valid.reshape(_shape_along(nd, a, valid.size))
            np.add(dst, tap, out=dst, where=where)
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
        _nan_winners(xt, ot, wt, tile, axes)


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
        np.subtract(_as_code(equal, mask), 1, out=mask)  # 0 where the tap holds the maximum, all ones elsewhere
        np.bitwise_or(target, mask, out=target)
        if t:
            np.minimum(win, cand, out=win)


def _as_code(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A bool mask as 0/1 of ``like``'s unsigned dtype: a free view for uint8, else a cast into ``like``."""
    if like.dtype == np.uint8:
        return mask.view(np.uint8)
    np.copyto(like, mask)
    return like


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
        first = np.maximum(np.argmax(stack, axis=-1), (axis.first[o0:o1] - i0 - rows).reshape(shape))
        np.add(first, positions, out=win, casting="unsafe")
        return
    codes, _, _ = _stack(wins, axis, array_axis, o0, o1, i0, 0)  # (..., O, ..., k) earlier axes' winners
    cand = codes.astype(np.int64) * axis.size + (positions[..., None] + np.arange(stack.shape[-1]))
    cand[(stack != dst[..., None]) | ~valid] = np.iinfo(np.int64).max  # only the window's taps at its maximum
    np.copyto(win, np.min(cand, axis=-1), casting="unsafe")


def _nan_winners(
    xt: np.ndarray, ot: np.ndarray, wt: np.ndarray, tile: PoolTile, axes: tuple[AdaptiveAxis, ...]
) -> None:
    """Every tap of every window, in row-major order, where it reads NaN: its position becomes the winner (so the
    last NaN stays). A repeated last input repeats the position just written, which changes nothing."""
    nd = len(axes)
    per_axis = [axis.taps(o.start, o.stop, i.start) for axis, (o, i) in zip(axes, tile.axes, strict=True)]
    for combo in product(*(range(len(taps)) for taps in per_axis)):
        value, flat = xt, np.zeros((1,) * (nd + 2), dtype=np.intp)
        for a, t in enumerate(combo):
            index = per_axis[a][t][0]
            value = _take(value, index, a + 1)
            flat = flat * axes[a].size + (index + tile.axes[a][1].start).reshape(_shape_along(nd, a, index.size))
        np.copyto(wt, flat.astype(wt.dtype), where=np.isnan(value))


def adaptive_scatter(
    dout: np.ndarray,
    x_shape: tuple[int, ...],
    axes: tuple[AdaptiveAxis, ...],
    kind: str,
    *,
    winners: np.ndarray | None,
    counts: float | np.ndarray | None,
    dtype: np.dtype,
    channels_first: bool,
) -> np.ndarray:
    """Gradient of an adaptive pooling: ``dout`` (N, *out, C) -> ``dx`` (``x_shape`` (N, *spatial, C), ``dtype``),
    allocated in the caller's layout and returned as a channels-last view. ``'avg'`` spreads ``dout / counts``;
    ``'max'`` sends each window's ``dout`` to its ``winners`` position."""
    dx = result = empty_channels_last(x_shape, dtype, channels_first)
    if channels_first:  # the same memory as (N*C, *spatial, 1) planes where every array is laid out so
        planes = [_planes(a) for a in (dx, dout, *([winners] if winners is not None else []))]
        if all(p is not None for p in planes):
            dx, dout, *rest = planes  # type: ignore[assignment]
            winners = rest[0] if rest else None
            x_shape = dx.shape

    def work(tile: PoolTile, scratch: Scratch) -> None:
        dxt = dx[tile.inp()]
        owners = [axis.owners(i.start, i.stop, o.start) for axis, (o, i) in zip(axes, tile.axes, strict=True)]
        g = dout[tile.out()]
        if kind == "avg":
            scaled = scratch.get("scaled", g.shape, dtype)
            np.divide(g, counts if np.ndim(counts) == 0 else counts[tile.out_box()], out=scaled)  # type: ignore[index]
            _spread(scaled, dxt, owners, scratch)
        else:
            _route(g, winners[tile.out()], dxt, owners, tile, axes, scratch)  # type: ignore[index]

    tiles = input_tiles(x_shape, axes, dtype.itemsize)  # type: ignore[arg-type]
    map_blocks(work, tiles, lambda: Scratch(False), max_threads=max_workers())
    return result


def _spread(src: np.ndarray, dxt: np.ndarray, owners: list, scratch: Scratch) -> None:
    """``dxt`` = the sum over the windows covering each position of their ``src`` value, one axis at a time (the
    last first): each position takes its first window's value, and the positions two windows share add the
    second's (and so on)."""
    nd = len(owners)
    for a in reversed(range(nd)):
        lead = (ALL,) * (a + 1)
        size = dxt.shape[a + 1]
        shape = (*src.shape[: a + 1], size, *dxt.shape[a + 2 :])
        dst = dxt if a == 0 else scratch.get(f"spread{a}", shape, dxt.dtype)
        (covered, first), *more = owners[a]
        if isinstance(covered, slice):
            _take(src, first, a + 1, dst)
        else:  # some positions no window covers (a stride longer than the windows): they get 0
            dst.fill(0)
            dst[(*lead, covered)] = _take(src, first, a + 1)
        for positions, windows in more:
            part = dst[(*lead, positions)]  # a copy: advanced indexing
            part += _take(src, windows, a + 1)
            dst[(*lead, positions)] = part
        src = dst


def _route(
    g: np.ndarray,
    win: np.ndarray,
    dxt: np.ndarray,
    owners: list,
    tile: PoolTile,
    axes: tuple[AdaptiveAxis, ...],
    scratch: Scratch,
) -> None:
    """``dxt`` = for each position, the ``g`` of every window covering it whose winner it is.

    For each combination of covering windows (the first along every axis, then the ones that share positions),
    ``g`` and the winners are gathered onto the positions they cover, and ``g`` is kept where the winner is the
    position's own flat index.
    """
    nd = len(axes)
    finite = bool(np.isfinite(g).all())
    here = [np.arange(i.start, i.stop, dtype=np.intp) for _, i in tile.axes]
    everywhere = all(isinstance(o[0][0], slice) for o in owners)  # every position has a covering window
    if not everywhere:
        dxt.fill(0)
    for combo in product(*(range(len(o)) for o in owners)):
        value, code, index = g, win, []
        flat = np.zeros((1,) * (nd + 2), dtype=np.intp)
        for a, u in enumerate(combo):
            positions, windows = owners[a][u]
            value = _take(value, windows, a + 1)
            code = _take(code, windows, a + 1)
            rows = here[a][positions]
            flat = flat * axes[a].size + rows.reshape(_shape_along(nd, a, rows.size))
            index.append(positions)
        mask = code == flat
        routed = np.multiply(value, mask) if finite else np.where(mask, value, 0).astype(value.dtype)
        if everywhere and all(u == 0 for u in combo):
            np.copyto(dxt, routed)
            continue
        # every spatial axis indexed by an array (np.ix_), so that the indexed axes stay in place
        grids = np.ix_(*(np.arange(dxt.shape[a + 1]) if isinstance(p, slice) else p for a, p in enumerate(index)))
        dxt[(ALL, *grids, ALL)] += routed
