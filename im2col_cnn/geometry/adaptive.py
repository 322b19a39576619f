"""Windows of contiguous input ranges along one axis, given by a rule rather than a stride over a padded input:
PyTorch's adaptive windows, and an ordinary pooling's windows cut to the input.

Adaptive pooling's window ``i`` along an axis of ``L`` inputs and ``O`` outputs is ``[floor(i*L/O),
ceil((i+1)*L/O))``: its starts follow no stride in general, so the kernels gather them with index arrays
(:mod:`~im2col_cnn.kernels.adaptive`). Where they do follow one (:func:`strided_axis`), the pooling kernels run
instead; and an ordinary pooling with very long windows runs on the adaptive kernels (:func:`clipped_axis`).

An axis is a few numbers, whatever its size: the bounds of a range of windows, the windows that read a range of
inputs and the windows covering each input are worked out in closed form, for the range a tile asks for.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .windows import Axis

__all__ = ["AdaptiveAxis", "adaptive_axis", "clipped_axis", "strided_axis", "WindowCounts", "window_counts"]

ALL = slice(None)
SMALL_WHOLE = 2**14
"""Window counts of at most this many bytes in all are built whole, once; larger ones a tile's part at a time."""


@dataclass(frozen=True)
class AdaptiveAxis:
    """``out`` windows of contiguous inputs along one axis of ``size`` inputs, starts and ends non-decreasing.

    With ``k == 0``, PyTorch's adaptive windows: window ``i`` is ``[floor(i*size/out), ceil((i+1)*size/out))``.
    Otherwise an ordinary pooling's windows (``k`` taps, stride ``step``, ``lo`` positions of padding before the
    input) cut to the input: window ``i`` is ``[i*step - lo, i*step - lo + k)`` clipped to ``[0, size)``.
    """

    size: int
    out: int
    k: int = 0
    step: int = 1
    lo: int = 0

    def bounds(self, o0: int, o1: int) -> tuple[np.ndarray, np.ndarray]:
        """The first input and one past the last of each window in ``[o0, o1)``: two (o1 - o0,) intp arrays."""
        i = np.arange(o0, o1, dtype=np.intp)
        if self.k == 0:
            return i * self.size // self.out, -(-(i + 1) * self.size // self.out)
        start = i * self.step - self.lo
        return np.clip(start, 0, self.size), np.clip(start + self.k, 0, self.size)

    def _first_after(self, j: np.ndarray | int) -> np.ndarray | int:
        """The first window ending after input ``j`` (reading ``j`` or a later input)."""
        if self.k == 0:  # ceil((i+1)*L/O) > j  <=>  i >= floor(j*O/L)
            return np.minimum(j * self.out // self.size, self.out)
        return np.clip((j + self.lo - self.k) // self.step + 1, 0, self.out)  # i*s - lo + k > j

    def _starting_before(self, j: np.ndarray | int) -> np.ndarray | int:
        """How many windows start before input ``j`` (``j >= 1``)."""
        if self.k == 0:  # floor(i*L/O) < j  <=>  i < j*O/L
            return np.minimum(-(-j * self.out // self.size), self.out)
        return np.clip(-(-(j + self.lo) // self.step), 0, self.out)  # i*s - lo < j

    @cached_property
    def extent(self) -> int:
        """The longest window."""
        starts, ends = self.bounds(0, self.out)  # transient: the axis keeps one number
        return int((ends - starts).max())

    @property
    def s(self) -> int:
        """The mean step between windows, at least 1 (to size the tiles)."""
        return self.step if self.k else max(1, self.size // self.out)

    @property
    def coverage(self) -> int:
        """The most windows any one input lies in."""
        if self.k:
            return -(-self.k // self.step)
        return -(-self.out // self.size) + 1 if self.out > self.size else min(2, self.out)

    @property
    def mean_coverage(self) -> float:
        """About how many windows an input lies in, on average (at least 1)."""
        return max(1.0, self.k / self.step if self.k else self.out / self.size)

    def in_range(self, o0: int, o1: int) -> tuple[int, int]:
        """The inputs ``[lo, hi)`` that the windows of outputs ``[o0, o1)`` read."""
        (lo,), _ = self.bounds(o0, o0 + 1)
        _, (hi,) = self.bounds(o1 - 1, o1)
        return int(lo), int(max(lo, hi))

    def out_range(self, i0: int, i1: int) -> tuple[int, int]:
        """The outputs ``[o0, o1)`` whose windows read any input in ``[i0, i1)``."""
        o0 = int(self._first_after(i0))
        return o0, max(o0, int(self._starting_before(i1)))

    def taps(self, o0: int, o1: int, i0: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per tap ``t`` of the longest window: the input each output in ``[o0, o1)`` reads (relative to ``i0``;
        a window shorter than ``t + 1`` repeats its last input) and which outputs' windows are that long (None:
        all of them)."""
        starts, ends = self.bounds(o0, o1)
        lengths = ends - starts
        short = int(lengths.min())
        return [
            (np.minimum(starts + t, ends - 1) - i0, None if t < short else lengths > t)
            for t in range(int(lengths.max()))
        ]

    def owners(self, i0: int, i1: int, o0: int) -> list[tuple[np.ndarray | slice, np.ndarray]]:
        """The windows covering each input of ``[i0, i1)``: for ``u = 0, 1, ...``, the inputs (relative to ``i0``;
        ``slice(None)`` for all of them) covered by at least ``u + 1`` windows and the ``u``-th of those windows
        (relative to ``o0``). Inputs no window covers (a stride longer than the windows) are in none."""
        j = np.arange(i0, i1, dtype=np.intp)
        first = self._first_after(j)
        count = self._starting_before(j + 1) - first  # windows starting at or before j, ending after it
        covered: np.ndarray | slice = ALL if count.min() >= 1 else np.flatnonzero(count >= 1)
        result: list[tuple[np.ndarray | slice, np.ndarray]] = [(covered, first[covered] - o0)]
        for u in range(1, int(count.max())):
            more = np.flatnonzero(count > u)
            result.append((more, first[more] + u - o0))
        return result


def adaptive_axis(size: int, out: int) -> AdaptiveAxis:
    """PyTorch's adaptive windows: ``out`` windows over ``size`` inputs, ``[floor(i*L/O), ceil((i+1)*L/O))``."""
    return AdaptiveAxis(size, out)


def clipped_axis(axis: Axis) -> AdaptiveAxis:
    """An ordinary pooling's windows along ``axis`` (dilation 1) cut to the input."""
    return AdaptiveAxis(axis.size, axis.out, axis.k, axis.s, axis.lo)


@lru_cache(maxsize=256)
def strided_axis(axis: AdaptiveAxis) -> Axis | None:
    """The ordinary pooling axis (kernel, stride, padding before and after) whose windows, cut to the input, are
    exactly ``axis``'s, or None. Adaptive windows often are: 14 inputs to 5 outputs are a kernel of 4 at stride 3
    with a padding of 1, and sizes that divide evenly a kernel of ``L/O`` at that stride. Memoized: its search
    takes about 35 us an axis, a fifth of a small call."""
    size, out = axis.size, axis.out
    starts, ends = axis.bounds(0, out)  # transient
    if out == 1:
        return Axis(size, int(ends[0] - starts[0]), 1, 1, -int(starts[0]), int(ends[0]) - size)
    steps = {size // out, -(-size // out), *(int(v) for v in np.unique(np.diff(starts)))}
    for s in sorted(steps):
        lo = s - int(starts[1])  # window 1 starts at 1*s - lo, inside the input
        k = int(ends[1] - starts[1])
        if s < 1 or lo < 0 or k < 1 or k <= lo:
            continue
        o = np.arange(out) * s - lo
        if np.array_equal(np.clip(o, 0, size), starts) and np.array_equal(np.clip(o + k, 0, size), ends):
            return Axis(size, k, s, 1, lo, (out - 1) * s + k - size - lo)
    return None


class WindowCounts:
    """Each window's size, the average's divisor, a part at a time: ``counts[box]`` is the ``(*box, 1)`` part of the
    ``(*out, 1)`` sizes in ``dtype`` (the product of one size per axis), or one number where the box's windows all
    have the same size. The numbers are the integer sizes rounded once, as float64 then ``dtype`` rounds them.

    Tiles take their part, not the whole, which can be larger than the input: an adaptive pooling to a larger
    size ((1, 1000, 1000, 16) float64 to 1500x1500: 18 MiB), or a stride-1 average pooling that does not count
    its padding (a (1, 128, 128, 128, 8) volume: 16 MiB). A whole of at most ``SMALL_WHOLE`` bytes is built once
    and sliced: building a part costs about 8 us a tile.
    """

    def __init__(self, lengths: tuple[np.ndarray, ...], dtype: np.dtype) -> None:
        self.lengths = tuple(n.astype(np.float64) for n in lengths)  # per axis, (out,): whole numbers, exact
        self.dtype = dtype
        # Most tiles lie where every window has the longest size along each axis (borders and uneven adaptive
        # windows aside) and divide by one number. Per axis, the outputs whose windows are shorter:
        self._shorter = tuple(np.flatnonzero(n != n.max()).tolist() for n in self.lengths)
        self._common = float(np.float64(math.prod(n.max() for n in self.lengths)).astype(dtype))
        self._whole = None
        if math.prod(len(n) for n in self.lengths) * dtype.itemsize <= SMALL_WHOLE:
            self._whole = self._part(tuple(ALL for _ in lengths))
            self._whole.flags.writeable = False  # memoized, shared by every call's tiles

    def __getitem__(self, box: tuple[slice, ...]) -> float | np.ndarray:
        shorter = zip(self._shorter, box, strict=True)
        if not any(bisect.bisect_left(o, s.start) < bisect.bisect_left(o, s.stop) for o, s in shorter):
            return self._common
        return self._part(box) if self._whole is None else self._whole[box]

    def uniform(self) -> float | None:
        """The size every window has, as ``dtype`` rounds it, or None where sizes differ."""
        return None if any(self._shorter) else self._common

    def _part(self, box: tuple[slice, ...]) -> np.ndarray:
        part = functools.reduce(np.multiply.outer, (n[s] for n, s in zip(self.lengths, box, strict=True)))
        return part[..., None].astype(self.dtype, copy=False)  # (*box, 1)


@lru_cache(maxsize=256)
def window_counts(axes: tuple[AdaptiveAxis, ...], dtype: np.dtype) -> float | WindowCounts:
    """The sizes of ``axes``' windows as an average's divisor: one number where they all have the same size
    (memoized: what it keeps is per axis, and a whole of at most ``SMALL_WHOLE`` bytes)."""
    counts = WindowCounts(tuple(np.subtract(*a.bounds(0, a.out)[::-1]) for a in axes), dtype)
    size = counts.uniform()
    return counts if size is None else size
