"""Ties and padding in max pooling, with hand-built inputs and hand-computed expected gradients.

Modern API (PyTorch): a window's gradient goes to ONE position, its first maximum in row-major window order,
and the (-inf) padding never wins. Drop-in API (the notebook): the gradient goes to EVERY tied position, and
the zero padding can win a max (its share of the gradient is then cropped away).
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic
from reference import max_pool2d_backward, max_pool2d_forward


def img(rows) -> np.ndarray:
    """A (1, H, W, 1) float64 batch from a 2-D list."""
    return np.asarray(rows, dtype=np.float64)[None, :, :, None]


def modern_max_grad(x, dout, kernel, stride=None, padding=0):
    _, cache = ic.max_pool2d_forward(x, kernel, stride=stride, padding=padding)
    return ic.max_pool2d_backward(dout, cache)


def dropin_max_grad(x, dA, f, stride, pad=0):
    _, cache = ic.forward(x, None, None, pad, stride, f, mode="maxpool")
    return ic.pool_backward(dA, cache, mode="max")


# 3x3 input with ties inside and across the four overlapping 2x2 windows (stride 1)
OVERLAP_X = [[1, 2, 2], [2, 2, 1], [0, 2, 2]]
OVERLAP_DOUT = [[1, 10], [100, 1000]]


# --- modern API: the first maximum in row-major order gets it all ----------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([[1, 1], [1, 1]], [[5, 0], [0, 0]]),  # all tied: the top-left
        ([[0, 3], [3, 1]], [[0, 5], [0, 0]]),  # (0,1) comes before (1,0) in row-major order
        ([[0, 1], [3, 3]], [[0, 0], [5, 0]]),
        ([[-2, -7], [-7, -2]], [[5, 0], [0, 0]]),
    ],
)
def test_modern_max_single_window_tie_goes_to_first(x, expected):
    dx = modern_max_grad(img(x), img([[5.0]]), 2)
    np.testing.assert_array_equal(dx, img(expected))


def test_modern_max_overlapping_windows_with_ties():
    # windows (0,0)->x[0,1]; (0,1)->x[0,1]; (1,0)->x[1,0]; (1,1)->x[1,1]
    dx = modern_max_grad(img(OVERLAP_X), img(OVERLAP_DOUT), 2, stride=1)
    np.testing.assert_array_equal(dx, img([[0, 11, 0], [100, 1000, 0], [0, 0, 0]]))


@pytest.mark.parametrize(
    ("x", "kernel", "expected"),
    [
        ([[5, 5, 5]], (1, 3), [[2, 0, 0]]),
        ([[4], [7], [7]], (3, 1), [[0], [2], [0]]),
        ([[1, 9, 9], [9, 9, 1]], (2, 3), [[0, 2, 0], [0, 0, 0]]),  # i over kh first, then j over kw
    ],
)
def test_modern_max_rectangular_kernel_tie(x, kernel, expected):
    dx = modern_max_grad(img(x), img([[2.0]]), kernel)
    np.testing.assert_array_equal(dx, img(expected))


def test_modern_max_ties_are_per_channel_and_per_image():
    x = np.zeros((2, 2, 2, 2))
    x[0, :, :, 0] = [[1, 1], [1, 1]]  # -> (0,0)
    x[0, :, :, 1] = [[0, 4], [4, 0]]  # -> (0,1)
    x[1, :, :, 0] = [[0, 0], [6, 6]]  # -> (1,0)
    x[1, :, :, 1] = [[3, 2], [1, 3]]  # -> (0,0)
    dout = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 1, 1, 2)
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0], expected[0, 0, 1, 1], expected[1, 1, 0, 0], expected[1, 0, 0, 1] = 1, 2, 3, 4
    np.testing.assert_array_equal(modern_max_grad(x, dout, 2), expected)


def test_modern_max_float32_ties():
    x = img([[0, 3], [3, 1]]).astype(np.float32)
    dx = modern_max_grad(x, img([[5.0]]).astype(np.float32), 2)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, img([[0, 5], [0, 0]]))


# --- drop-in API: every tied position gets the gradient ---------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([[1, 1], [1, 1]], [[5, 5], [5, 5]]),
        ([[0, 3], [3, 1]], [[0, 5], [5, 0]]),
        ([[0, 1], [3, 2]], [[0, 0], [5, 0]]),
    ],
)
def test_dropin_max_single_window_tie_goes_to_all(x, expected):
    np.testing.assert_array_equal(dropin_max_grad(img(x), img([[5.0]]), 2, 2), img(expected))


def test_dropin_max_overlapping_windows_with_ties():
    dx = dropin_max_grad(img(OVERLAP_X), img(OVERLAP_DOUT), 2, 1)
    np.testing.assert_array_equal(dx, img([[0, 11, 10], [101, 1111, 0], [0, 1100, 1000]]))


def test_dropin_max_mask_marks_all_ties():
    np.testing.assert_array_equal(ic.max_mask(np.array([[2, 2], [1, 2]])), [[True, True], [False, True]])


# --- padding: never wins in the modern API, zeros that can win in the drop-in ------------------------------

NEG = [[-1, -2], [-3, -4]]


def test_modern_max_padding_never_wins_stride2():
    # every 2x2 window of the 1-padded 4x4 input holds exactly one real (negative) value
    out, cache = ic.max_pool2d_forward(img(NEG), 2, stride=2, padding=1)
    np.testing.assert_array_equal(out, img(NEG))
    dout = img([[1, 2], [3, 4]])
    np.testing.assert_array_equal(ic.max_pool2d_backward(dout, cache), dout)


def test_modern_max_padding_never_wins_overlapping():
    # every 3x3 window of the 1-padded input covers the whole input: max -1 at (0,0)
    out, cache = ic.max_pool2d_forward(img(NEG), 3, stride=1, padding=1)
    np.testing.assert_array_equal(out, img([[-1, -1], [-1, -1]]))
    dx = ic.max_pool2d_backward(img([[1, 2], [3, 4]]), cache)
    np.testing.assert_array_equal(dx, img([[10, 0], [0, 0]]))


def test_modern_max_padding_never_wins_random_negative():
    rng = np.random.default_rng(5)
    x = -rng.uniform(1.0, 2.0, size=(2, 5, 4, 3))
    out, cache = ic.max_pool2d_forward(x, (3, 2), stride=1, padding=(1, 1))
    assert out.shape == (2, 5, 5, 3)
    assert np.all(out <= -1.0)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(ic.max_pool2d_backward(dout, cache).sum(), dout.sum(), rtol=1e-12)


def test_dropin_max_zero_padding_wins():
    # stride 2: each window holds one real (negative) value and three padding zeros -> all outputs 0
    Z, cache = ic.forward(img(NEG), None, None, 1, 2, 2, mode="maxpool")
    np.testing.assert_array_equal(Z, np.zeros((1, 2, 2, 1)))
    np.testing.assert_array_equal(ic.pool_backward(img([[1, 2], [3, 4]]), cache), np.zeros((1, 2, 2, 1)))


def test_dropin_max_zero_padding_wins_except_inside():
    # stride 1: 3x3 outputs; only the centre window lies inside the input (max -1 at (0,0))
    Z, cache = ic.forward(img(NEG), None, None, 1, 1, 2, mode="maxpool")
    expected = np.zeros((3, 3))
    expected[1, 1] = -1
    np.testing.assert_array_equal(Z, img(expected))
    dA = img(np.arange(1.0, 10.0).reshape(3, 3))
    np.testing.assert_array_equal(ic.pool_backward(dA, cache, mode="max"), img([[5, 0], [0, 0]]))


# --- average pooling: zero padding counts in the divisor (count_include_pad) -----------------------------


def test_modern_avg_padding_counts_in_divisor():
    out, cache = ic.avg_pool2d_forward(img([[1, 1], [1, 1]]), 2, stride=2, padding=1)
    np.testing.assert_array_equal(out, img([[0.25, 0.25], [0.25, 0.25]]))
    np.testing.assert_array_equal(ic.avg_pool2d_backward(img([[4, 8], [12, 16]]), cache), img([[1, 2], [3, 4]]))


def test_dropin_average_with_padding():
    Z, cache = ic.forward(img([[4, 8], [12, 16]]), None, None, 1, 2, 2, mode="avepool")
    np.testing.assert_array_equal(Z, img([[1, 2], [3, 4]]))
    dX = ic.pool_backward(img([[4, 8], [12, 16]]), cache, mode="average")
    np.testing.assert_array_equal(dX, img([[1, 2], [3, 4]]))


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 3), (2, 3), (4, 4), (16, 16)])
@pytest.mark.parametrize("nan", [False, True])
def test_modern_max_disjoint_windows_with_ties_and_nan_match_the_loops(kernel, stride, nan):
    # Windows that do not overlap find their winner as the first offset equal to the maximum; 16x16 windows
    # have 256 offsets, so their winners take two bytes.
    rng = np.random.default_rng(kernel * 10 + stride + nan)
    x = rng.integers(-2, 3, size=(2, 2 * stride + kernel + 1, 3 * stride + kernel, 3)).astype(np.float32)
    if nan:
        x.flat[rng.choice(x.size, 5, replace=False)] = np.nan
    out, cache = ic.max_pool2d_forward(x, kernel, stride=stride)
    expected_out, expected_cache = max_pool2d_forward(x, kernel, stride=stride)
    np.testing.assert_array_equal(out, expected_out)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(ic.max_pool2d_backward(dout, cache), max_pool2d_backward(dout, expected_cache))
