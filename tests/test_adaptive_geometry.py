"""The windows of adaptive pooling and of long-window pooling, worked out in closed form per range of outputs or
inputs, against the windows listed one by one; and each window's size, the average's divisor, a tile's part at a
time."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from im2col_cnn.geometry import adaptive
from im2col_cnn.geometry.adaptive import AdaptiveAxis, WindowCounts, adaptive_axis, clipped_axis, strided_axis
from im2col_cnn.geometry.windows import Axis


def listed(axis: AdaptiveAxis) -> list[tuple[int, int]]:
    """Each window's ``[start, end)``, one by one from its definition."""
    if axis.k == 0:
        return [(i * axis.size // axis.out, -(-(i + 1) * axis.size // axis.out)) for i in range(axis.out)]
    return [
        (min(max(i * axis.step - axis.lo, 0), axis.size), min(max(i * axis.step - axis.lo + axis.k, 0), axis.size))
        for i in range(axis.out)
    ]


@st.composite
def axes(draw: st.DrawFn) -> AdaptiveAxis:
    size = draw(st.integers(1, 40))
    if draw(st.booleans()):
        return adaptive_axis(size, draw(st.integers(1, 90)))
    k = draw(st.integers(1, size + 2))
    lo = draw(st.integers(0, k // 2))
    s = draw(st.integers(1, 2 * k))
    if size + 2 * lo < k:
        k = size + 2 * lo
    return clipped_axis(Axis(size, k, s, 1, lo, lo))


@settings(max_examples=300, deadline=None)
@given(axes(), st.data())
def test_ranges_match_the_listed_windows(axis: AdaptiveAxis, data: st.DataObject) -> None:
    windows = listed(axis)
    starts, ends = axis.bounds(0, axis.out)
    assert [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)] == windows
    assert axis.extent == max(b - a for a, b in windows)
    o0 = data.draw(st.integers(0, axis.out - 1))
    o1 = data.draw(st.integers(o0 + 1, axis.out))
    read = [j for a, b in windows[o0:o1] for j in range(a, b)]
    if read:
        assert axis.in_range(o0, o1) == (min(read), max(read) + 1)
    i0 = data.draw(st.integers(0, axis.size - 1))
    i1 = data.draw(st.integers(i0 + 1, axis.size))
    readers = [o for o, (a, b) in enumerate(windows) if a < i1 and b > i0]
    lo, hi = axis.out_range(i0, i1)
    assert [o for o in range(lo, hi) if o in readers] == readers  # every reader, in one contiguous range
    covering = [[o for o, (a, b) in enumerate(windows) if a <= j < b] for j in range(i0, i1)]
    assert max(len(c) for c in covering) <= axis.coverage
    found: list[list[int]] = [[] for _ in range(i0, i1)]
    for positions, owners in axis.owners(i0, i1, lo):
        for p, o in zip(np.arange(i1 - i0)[positions], owners, strict=True):
            found[p].append(int(o) + lo)
    assert found == covering


def test_an_axis_is_a_few_numbers_whatever_its_size() -> None:
    """Five million windows: nothing per window is kept, and a tile's ranges are found without listing them."""
    axis = adaptive_axis(10_000_000, 5_000_000)
    assert axis.extent == 2 and axis.out_range(4_000_000, 4_000_010) == (2_000_000, 2_000_005)
    assert strided_axis(axis) == Axis(10_000_000, 2, 2, 1, 0, 0)
    assert strided_axis(adaptive_axis(14, 5)) == Axis(14, 4, 3, 1, 1, 1)
    assert strided_axis(adaptive_axis(10, 4)) is None  # windows [0,3) [2,5) [5,8) [7,10): no stride


@pytest.mark.parametrize("whole", [True, False], ids=["built whole", "a part a tile"])
@settings(max_examples=100, deadline=None)
@given(st.lists(axes(), min_size=1, max_size=3), st.sampled_from([np.float16, np.float32, np.float64]), st.data())
def test_window_counts_give_a_tile_its_part_of_every_windows_size(whole, per_axis, dtype, data) -> None:
    """A box's part is the (*box, 1) product of the listed window sizes, rounded once to ``dtype``, or that one
    number where the box's windows all have the same size; whether the whole is built once or each part on its
    own."""
    lengths = tuple(np.array([b - a for a, b in listed(axis)]) for axis in per_axis)
    expected = functools.reduce(np.multiply.outer, lengths)[..., None].astype(np.float64).astype(dtype)  # (*out, 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adaptive, "SMALL_WHOLE", 2**40 if whole else 0)
        counts = WindowCounts(lengths, np.dtype(dtype))
    box = []
    for n in lengths:
        o0 = data.draw(st.integers(0, len(n) - 1))
        box.append(slice(o0, data.draw(st.integers(o0 + 1, len(n)))))
    part = counts[tuple(box)]
    if isinstance(part, float):
        assert np.all(expected[tuple(box)] == part) and np.asarray(part, dtype=dtype) == part
    else:
        assert part.dtype == dtype
        np.testing.assert_array_equal(part, expected[tuple(box)])
    uniform = counts.uniform()
    assert (uniform is None) == (expected.min() != expected.max())
    assert uniform is None or uniform == expected.flat[0]
