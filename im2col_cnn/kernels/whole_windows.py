"""Pooling over windows of many taps, a few NumPy calls per tile instead of one per tap.

Along an axis of at least ``MANY_TAPS`` taps at a stride of 2 or more (:func:`reduces_whole_windows`), the windows
that a tile holds whole are a strided view ``(..., windows, taps, ...)`` of its input: the forward pass reduces
them in one ``ufunc.reduce`` (:func:`reduce_whole_windows`), the average-pool gradient adds each window's value
onto its inputs through the same view of ``dx``, every other window at a time where windows overlap
(:func:`spread_whole_windows`); a window the padding or the tile cuts takes a call of its own. Max pooling that
records winners takes its first axis window by window where windows are few against their taps
(:func:`max_whole_windows`). NumPy runs such a reduction along the taps one after another, as the tap-by-tap
kernels do, only where the channels are the innermost axis in memory, so a channels-first forward pass copies its
tiles channels-last for it (where that pays: ``LONG_WINDOW_CHANNELS``), and the sums are the tap-by-tap ones; the
gradient, which adds at most two values onto each input, spreads in either layout.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry import tiles as tiling
from ..geometry.windows import Axis, WindowGeometry

__all__ = [
    "MANY_TAPS",
    "WHOLE_WINDOW_RUNS",
    "LONG_WINDOW_CHANNELS",
    "reduces_whole_windows",
    "whole_windows_in_tiles",
    "takes_whole",
    "max_takes_whole",
    "reduce_whole_windows",
    "max_whole_windows",
    "spread_whole_windows",
]

ALL = slice(None)


MANY_TAPS = 8
"""The fewest taps along an axis for which :func:`reduces_whole_windows` holds."""


def reduces_whole_windows(axis: Axis) -> bool:
    """Whether the pooling kernels may take the windows along ``axis`` whole rather than one call per tap
    (:func:`reduce_whole_windows` and :func:`spread_whole_windows` also weigh each tile's runs): at least
    ``MANY_TAPS`` taps, at a stride of 2 or more. At stride 1 a tap's outputs and channels form one contiguous
    run, longer than any the reduction has: 9 taps at stride 1 over (64, 1000, 128) float32 took 9.1 ms reduced
    against 5.2 tap by tap."""
    return axis.k >= MANY_TAPS and axis.s >= 2


WHOLE_WINDOW_RUNS = 128
"""The most runs (contiguous stretches of the later axes and the channels) per tap for which a tile takes its
windows whole (:func:`takes_whole`): a whole-window call pays a loop setup per run and tap, where the calls tap by
tap pay one each. Over many short runs it lost: 10 taps at stride 5 over (64, 1000, 3) float32 took 2.2 ms
against 0.6."""


def whole_windows_in_tiles(geom: WindowGeometry, x: np.ndarray, winners: bool) -> bool:
    """Whether tiles of ``x`` (N, *spatial, C) would take the windows of some axis whole: an axis that
    :func:`reduces_whole_windows`, with at most ``WHOLE_WINDOW_RUNS`` runs in a tile of ``TILE_BYTES`` of whole
    images (a tile that splits an image has fewer); for max pooling that records ``winners``, its first axis, with
    fewer windows than 4/5 of its taps (:func:`max_takes_whole`)."""
    images = max(1, min(x.shape[0], tiling.TILE_BYTES // max(1, math.prod(x.shape[1:]) * x.itemsize)))
    runs = images
    for axis in geom.axes[:1] if winners else geom.axes:
        runs *= axis.out  # (images, *outputs up to this axis)
        few = not winners or 5 * axis.out < 4 * axis.k
        if reduces_whole_windows(axis) and runs <= WHOLE_WINDOW_RUNS and few:
            return True
    return False


LONG_WINDOW_CHANNELS = 32
"""The fewest channels for which :func:`~im2col_cnn.kernels.pool_plan.converts_tiles` copies a forward pass'
channels-first tiles channels-last to take their windows whole. Float32, 1 core, before -> after: adaptive average
pooling of (64, 32, 1000) NCW to 7 (windows of 144 at stride 143), 3.5 -> 2.5 ms, of (64, 64, 1000) 11.9 -> 4.8.
Converting fewer channels lost: average pooling 10x10 at stride 10 of (2, 3, 1000, 1000) NCHW took 3.7 ms in
place, 9.4 converted; of (2, 16, 500, 500), 5.7 and 5.9."""


def reduce_whole_windows(src: np.ndarray, dst: np.ndarray, taps: tuple, axis: int, op: np.ufunc, fill: float) -> bool:
    """``pool_forward._reduce`` with one ``op.reduce`` over the windows that every tap reaches -- a strided view ``(...,
    windows, taps, ...)`` of ``src`` -- and one over each window that the padding cuts (:func:`_reduce_cut_window`),
    instead of one call per tap (:func:`reduces_whole_windows` says where the caller tries it). Returns False, having
    done nothing, where it would be slower (a stride of 1, runs too many or too short: ``WHOLE_WINDOW_RUNS``) or
    would change a result: NumPy reduces along the taps one after another only where the channels are the
    innermost axis of both arrays in memory (otherwise it sums them pairwise). Adding from -0.0, which leaves
    every value as it is (-0.0 too), the sums are the taps' in tap order, bit for bit.

    Float32, 2 cores, before -> after: windows of 100 at stride 100 over (64, 1000, 128), 4.9 -> 1.4 ms; adaptive
    average pooling of the same to 7 (windows of 144 at stride 143), 8.6 -> 2.7; 8x8 windows at stride 8 over (32,
    56, 56, 64), 2.1 -> 1.3.
    """
    whole = _whole_windows(src, taps, axis, writeable=False) if takes_whole(src, dst, taps, axis) else None
    if whole is None:
        return False
    windows, a, b = whole
    op.reduce(windows, axis=axis + 1, out=dst[(*(ALL,) * axis, slice(a, b))], **_from_first(op))
    for o in (*range(a), *range(b, dst.shape[axis])):
        _reduce_cut_window(src, dst, taps, axis, op, fill, o)
    return True


def _whole_windows(array: np.ndarray, taps: tuple, axis: int, *, writeable: bool) -> tuple[np.ndarray, int, int] | None:
    """The windows ``[a, b)`` along array ``axis`` that every tap reaches, as a strided view ``(..., b - a, taps,
    ...)`` of ``array`` (a tile's inputs, or their gradient: ``array``'s axis ``axis`` holds the windows' inputs),
    and ``a``, ``b``; None where no window is whole."""
    (o0, i0), (o1, i1) = taps[0], taps[1]
    a, b = max(o.start for o, _ in taps), min(o.stop for o, _ in taps)
    if b <= a:
        return None
    s = i0.step  # inputs between windows
    start = i0.start + (a - o0.start) * s  # window a's first input
    step = i1.start + (a - o1.start) * s - start  # inputs between taps: the dilation
    base = array[(*(ALL,) * axis, slice(start, None))]
    stride = base.strides[axis]
    windows = np.lib.stride_tricks.as_strided(
        base,
        (*base.shape[:axis], b - a, len(taps), *base.shape[axis + 1 :]),
        (*base.strides[:axis], s * stride, step * stride, *base.strides[axis + 1 :]),
        writeable=writeable,
    )  # (..., i, ...) -> (..., windows, taps, ...)
    return windows, a, b


def takes_whole(src: np.ndarray, dst: np.ndarray, taps: tuple, axis: int) -> bool:
    """Whether a tile takes its windows along array ``axis`` whole from ``src`` into ``dst``: every tap reaches
    some output, at a stride of 2 or more, with the channels the innermost axis of both arrays in memory and at
    most ``WHOLE_WINDOW_RUNS`` runs."""
    itemsize = src.itemsize
    if src.shape[-1] < 2 or src.strides[-1] != itemsize or dst.strides[-1] != itemsize or None in taps:
        return False
    return taps[0][1].step >= 2 and math.prod(dst.shape[: axis + 1]) <= WHOLE_WINDOW_RUNS


def _window(src: np.ndarray, taps: tuple, axis: int, o: int) -> tuple[int, np.ndarray]:
    """The first tap that reaches output ``o`` along array ``axis``, and the inputs of ``o``'s taps: ``src`` sliced
    along ``axis`` (a run of taps: the padding cuts a window at one end)."""
    reach = [t for t, (out, _) in enumerate(taps) if out.start <= o < out.stop]
    (out_a, in_a), n = taps[reach[0]], len(reach)
    first = in_a.start + (o - out_a.start) * in_a.step
    step = 1
    if n > 1:
        out_b, in_b = taps[reach[1]]
        step = in_b.start + (o - out_b.start) * in_b.step - first  # inputs between taps: the dilation
    return reach[0], src[(*(ALL,) * axis, slice(first, first + (n - 1) * step + 1, step))]  # (..., n, ...)


def max_takes_whole(src: np.ndarray, dst: np.ndarray, taps: tuple, axis: int) -> bool:
    """Whether a max pooling that records winners takes a tile's windows along array ``axis`` whole
    (:func:`max_whole_windows`): where :func:`takes_whole`, and the tile holds fewer windows than 4/5 of its taps
    -- five calls a window against four a tap. 8x8 windows at stride 8 over (32, 56, 56, 64) float32 (7 a tile)
    took 14.8 ms window by window, against 5.1 tap by tap."""
    return 5 * dst.shape[axis] < 4 * len(taps) and takes_whole(src, dst, taps, axis)


def max_whole_windows(src: np.ndarray, dst: np.ndarray, win: np.ndarray, taps: tuple, axis: int, step: int) -> None:
    """``pool_forward._running_max`` along array ``axis``, for a tile that :func:`max_takes_whole`, one window at a
    time: ``dst`` its maximum (``np.maximum.reduce``, the taps in order) and ``win`` the code ``tap * step`` of its
    first tap equal to it (the least code over the taps, where those not equal to it count as all ones; a window
    holding NaN gets all ones, which the caller redoes, as it does after the tap-by-tap codes).

    The same passes over the data as tap by tap, in 5 calls a window rather than 4 a tap, so fewer hand-offs of the
    GIL between threads. Adaptive max pooling of (64, 1000, 128) float32 to 7, before -> after: 2 cores 14.2 -> 7.5
    ms, 1 core 11.5 -> 11.0; NCW (its tiles copied channels-last) 22.1 -> 13.8 and 32.3 -> 16.6.
    """
    lead = (ALL,) * axis
    for o in range(dst.shape[axis]):
        first, window = _window(src, taps, axis, o)  # (..., n, ...)
        peak = dst[(*lead, o)]
        np.maximum.reduce(window, axis=axis, out=peak)
        shape = [1] * window.ndim
        shape[axis] = window.shape[axis]
        codes = ((first + np.arange(window.shape[axis])) * step).astype(win.dtype).reshape(shape)
        other = np.not_equal(window, np.expand_dims(peak, axis))  # the taps below the maximum (or NaN)
        ranked = np.negative(other, dtype=win.dtype)  # all ones there, 0 at the maximum
        np.bitwise_or(ranked, codes, out=ranked)
        np.minimum.reduce(ranked, axis=axis, out=win[(*lead, o)])


def _from_first(op: np.ufunc) -> dict:
    """``op.reduce``'s keyword arguments that make it start from the first value: NumPy starts a sum from 0.0,
    which turns a first -0.0 into 0.0; from -0.0 instead (``x + -0.0 == x`` for every x). Maximum starts from the
    first value."""
    return {"initial": -0.0} if op is np.add else {}


def _reduce_cut_window(
    src: np.ndarray, dst: np.ndarray, taps: tuple, axis: int, op: np.ufunc, fill: float, o: int
) -> None:
    """``pool_forward._reduce`` for output ``o`` along ``axis`` alone, one ``op.reduce`` over the taps that reach
    it (a run: the padding cuts a window at one end), with the operations that tap by tap makes: from the first
    tap's value where it reaches ``o``, else from ``fill``."""
    first, window = _window(src, taps, axis, o)
    start = {"initial": fill} if first else _from_first(op)
    op.reduce(window, axis=axis, out=dst[(*(ALL,) * axis, o)], **start)


def spread_whole_windows(src: np.ndarray, dst: np.ndarray, taps: tuple, axis: int, assign: bool) -> bool:
    """``pool_backward._spread`` in a few calls, not one per tap: each window's value added onto its inputs at
    once, through a writable strided view ``(..., windows, taps, ...)`` of ``dst`` -- every other window at a time
    where windows overlap, so that no call writes an input twice -- and each window the tile or the padding cuts
    with a call of its own. Returns False, having done nothing, where the calls would not pay or an input could
    take three values: a stride of 1, windows longer than twice the stride, or loops too many
    (:func:`_spreads_in_few_runs`). Average pooling has no dilation.

    An input adds the values of at most two windows, onto 0 (or takes its one window's value with ``assign``):
    the sum tap by tap makes, in either order. Float32, 2 cores, before -> after: the gradient of windows of 100 at
    stride 100 over (64, 1000, 128), 4.0 -> 1.0 ms; of adaptive average pooling of the same to 7, 10.0 -> 3.9.
    """
    if None in taps:
        return False
    s, k = taps[0][1].step, len(taps)
    if s < 2 or k > 2 * s or not _spreads_in_few_runs(src, dst, axis, k):
        return False
    whole = _whole_windows(dst, taps, axis, writeable=True)  # the windows all inside the tile
    if whole is None:
        return False
    windows, a, b = whole
    if not assign:
        dst.fill(0)
    lead = (ALL,) * axis
    values = src[(*lead, slice(a, b), None)]  # (..., windows, 1, ...)
    for every in (slice(0, None, 2), slice(1, None, 2)) if k > s else (ALL,):
        _put(windows[(*lead, every)], values[(*lead, every)], assign)
    for o in (*range(a), *range(b, src.shape[axis])):
        _put(_window(dst, taps, axis, o)[1], src[(*lead, slice(o, o + 1))], assign)
    return True


def _spreads_in_few_runs(src: np.ndarray, dst: np.ndarray, axis: int, k: int) -> bool:
    """Whether :func:`spread_whole_windows` pays for ``k`` taps along array ``axis``: channels-last, where its runs
    of channels are few (``WHOLE_WINDOW_RUNS``); in any other layout (the channels-first planes of a gradient,
    which adds in any order the same bits), where windows are fewer than taps, so that its loops along the planes
    are fewer than the calls tap by tap. The gradient in place against the same with its tiles copied channels-last
    (writing them back into 512 planes took 30x a plain copy), float32, 2 cores: 100 at stride 100 over (64, 128,
    1000) NCW 4.5 -> 0.9 ms, adaptive average pooling of the same to 7 6.4 -> 4.7, 8x8 at stride 8 over (32, 64,
    56, 56) NCHW 3.5 -> 1.5."""
    itemsize = dst.itemsize
    if src.strides[-1] == itemsize and dst.strides[-1] == itemsize and dst.shape[-1] > 1:
        return math.prod(src.shape[: axis + 1]) <= WHOLE_WINDOW_RUNS
    return src.shape[axis] < k


def _put(dst: np.ndarray, values: np.ndarray, assign: bool) -> None:
    """``dst`` = ``values``, or ``dst += values``, broadcast."""
    if assign:
        np.copyto(dst, values)
    else:
        np.add(dst, values, out=dst)
