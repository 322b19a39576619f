"""Windows given as lists of contiguous input ranges, one list per axis: PyTorch's adaptive windows, and an
ordinary pooling's windows cut to the input.

Adaptive pooling's window ``i`` along an axis of ``L`` inputs and ``O`` outputs is ``[floor(i*L/O),
ceil((i+1)*L/O))``: its starts follow no stride in general, so the kernels gather them with index arrays
(:mod:`~im2col_cnn.kernels.adaptive`). Where they do follow one (:func:`strided_axis`), the pooling kernels run
instead; and an ordinary pooling with very long windows runs on the adaptive kernels (:func:`clipped_axis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .windows import Axis

__all__ = ["AdaptiveAxis", "adaptive_axis", "clipped_axis", "strided_axis", "window_counts"]

ALL = slice(None)


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
