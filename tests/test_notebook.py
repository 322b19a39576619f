"""The original notebook's printed numbers, reproduced through the engine's drop-in API.

The expected values are the notebook's printed output, copied here as literals (9-12 significant digits), for
the notebook's own test cells run with the same ``np.random.seed(1)`` sequences. The notebook's
``test_pool_backward`` calls ``forward(..., str1, ...)``: a typo for ``stride = 1``.
"""

# The notebook's numbers come from the legacy global RNG (np.random.seed(1) + randn), so it is used here.
# ruff: noqa: NPY002

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import im2col_cnn as ic
import reference as ref

ATOL = 1e-8  # the arrays were printed with 8 decimals (values with more digits are within this too)


def _pool_backward_setup():
    """The notebook's test_pool_backward inputs: X, the maxpool cache (stride 1, f 2, pad 0) and dA."""
    np.random.seed(1)
    X = np.random.randn(5, 5, 3, 2)
    A, cache = ic.forward(X, None, None, 0, 1, 2, mode="maxpool")
    dA = np.random.randn(5, 4, 2, 2)
    return X, A, cache, dA


def _forward_setup():
    """The notebook's test_forward conv inputs and result: X, W, b (pad 2, stride 2) and Z, cache."""
    np.random.seed(1)
    X = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, cache = ic.forward(X, W, b, 2, 2, None)
    return X, W, b, Z, cache


# --- test_pool_backward ---------------------------------------------------------------------------------


def test_pool_backward_max_matches_notebook():
    X, A, cache, dA = _pool_backward_setup()
    assert A.shape == (5, 4, 2, 2)
    np.testing.assert_allclose(np.mean(dA), 0.145713902729, atol=1e-12)
    dA_prev = ic.pool_backward(dA, cache, mode="max")
    assert dA_prev.shape == X.shape
    expected = [[0.0, 0.0], [5.05844394, -1.68282702], [0.0, 0.0]]
    np.testing.assert_allclose(dA_prev[1, 1], expected, atol=ATOL)


def test_pool_backward_average_matches_notebook():
    X, _, cache, dA = _pool_backward_setup()
    dA_prev = ic.pool_backward(dA, cache, mode="average")
    assert dA_prev.shape == X.shape
    expected = [[0.08485462, 0.2787552], [1.26461098, -0.25749373], [1.17975636, -0.53624893]]
    np.testing.assert_allclose(dA_prev[1, 1], expected, atol=ATOL)


def test_pool_backward_default_mode_is_max():
    _, _, cache, dA = _pool_backward_setup()
    np.testing.assert_array_equal(ic.pool_backward(dA, cache), ic.pool_backward(dA, cache, mode="max"))


def test_pool_backward_accepts_the_notebooks_three_tuple_cache():
    X, _, cache, dA = _pool_backward_setup()
    for mode in ("max", "average"):
        np.testing.assert_array_equal(ic.pool_backward(dA, (X, 2, 1), mode=mode), ic.pool_backward(dA, cache, mode))


# --- test_forward -----------------------------------------------------------------------------------------


def test_conv_forward_matches_notebook():
    X, _, _, Z, cache = _forward_setup()
    assert Z.shape == (10, 4, 4, 8)
    np.testing.assert_allclose(np.mean(Z), 0.0489952035289, atol=1e-12)
    expected = [-0.61490741, -6.7439236, -2.55153897, 1.75698377, 3.56208902, 0.53036437, 5.18531798, 8.75898442]
    np.testing.assert_allclose(Z[3, 2, 1], expected, atol=ATOL)
    np.testing.assert_allclose(cache[0][1][2][3], [-0.20075807, 0.18656139, 0.41005165], atol=ATOL)


def test_conv_cache_is_the_notebooks_tuple():
    X, W, b, _, cache = _forward_setup()
    assert len(cache) == 5
    assert cache[0] is X and cache[1] is W and cache[2] is b
    assert cache[3] == 2 and cache[4] == 2


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("maxpool", [[1.74481176, 0.86540763, 1.13376944], [1.13162939, 1.51981682, 2.18557541]]),
        ("avepool", [[0.02105773, -0.20328806, -0.40389855], [-0.22154621, 0.51716526, 0.48155844]]),
    ],
)
def test_pool_forward_matches_notebook(mode, expected):
    np.random.seed(1)
    X = np.random.randn(2, 4, 4, 3)
    A, cache = ic.forward(X, None, None, 0, 2, 3, mode=mode)
    assert A.shape == (2, 1, 1, 3)
    np.testing.assert_allclose(A[:, 0, 0, :], expected, atol=ATOL)
    assert cache[0] is X
    assert tuple(cache[1:3]) == (3, 2)
    assert len(cache) == 5 and cache[3] == 0 and cache[4] == mode  # (X, f, stride, pad, mode)


def test_conv_backward_matches_notebook():
    X, W, _, Z, cache = _forward_setup()
    dA, dW, db = ic.backward(Z, cache)
    assert dA.shape == X.shape and dW.shape == W.shape and db.shape == (1, 1, 1, 8)
    np.testing.assert_allclose(np.mean(dA), 1.45243777754, atol=1e-10)
    np.testing.assert_allclose(np.mean(dW), 1.72699145831, atol=1e-10)
    np.testing.assert_allclose(np.mean(db), 7.83923256462, atol=1e-10)
    np.testing.assert_allclose(db.reshape(-1), Z.sum(axis=(0, 1, 2)), rtol=1e-12)


# --- test_conv_slice, test_padding, helpers -------------------------------------------------------------


def test_conv_slice_matches_notebook():
    assert ic.conv_slice([[0, 1], [2, 4]], [[0, 1], [0.5, 0.25]], 1) == 4.0


def test_conv_slice_with_arrays_and_array_bias():
    rng = np.random.default_rng(0)
    s, w = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3))
    np.testing.assert_allclose(ic.conv_slice(s, w, np.array([[[0.5]]])), np.sum(s * w) + 0.5, rtol=1e-13)


def test_padding_vector():
    out = ic.padding([0, 1, 2, 3], 1, 1, 0)
    assert np.shape(out) == (6,)
    np.testing.assert_array_equal(out, [0, 0, 1, 2, 3, 0])


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_padding_matrix():
    out = ic.padding(np.matrix("1 2 3; 4 5 6"), 1, 2, 0)
    assert np.shape(out) == (4, 5)
    expected = [[0, 0, 0, 0, 0], [0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_padding_image():
    image = [[[0, 4, 8], [1, 5, 9]], [[2, 6, 10], [3, 7, 11]]]
    out = ic.padding(image, 1, 3, 0)
    assert np.shape(image) == (2, 2, 3) and np.shape(out) == (4, 4, 3)
    np.testing.assert_array_equal(out[1:3, 1:3], image)
    border = np.ones((4, 4), bool)
    border[1:3, 1:3] = False
    assert np.all(out[border] == 0)


def test_padding_batch():
    batch = [[[[0, 4, 8], [1, 5, 9]], [[2, 6, 0], [3, 7, 1]]], [[[0, 4, 8], [1, 5, 9]], [[2, 6, 0], [3, 7, 1]]]]
    out = ic.padding(batch, 1, 4, 0)
    assert np.shape(batch) == (2, 2, 2, 3) and np.shape(out) == (2, 4, 4, 3)
    np.testing.assert_array_equal(out[:, 1:3, 1:3], batch)
    assert out.sum() == np.sum(batch)  # the border is all zeros


def test_padding_defaults_and_const():
    x = np.arange(12.0).reshape(2, 2, 3)
    out = ic.padding(x)  # pad=1, dims=3 (an image), const=0
    np.testing.assert_array_equal(out, np.pad(x, ((1, 1), (1, 1), (0, 0))))
    out = ic.padding(x[..., 0], 2, 2, const=7)
    assert out.shape == (6, 6)
    np.testing.assert_array_equal(out, np.pad(x[..., 0], 2, constant_values=7))


def test_max_mask_and_distribute_value():
    np.testing.assert_array_equal(ic.max_mask(np.array([[1, 3], [3, 2]])), [[False, True], [True, False]])
    out = ic.distribute_value(2.0, (2, 4))
    assert out.shape == (2, 4)
    np.testing.assert_array_equal(out, np.full((2, 4), 0.25))


# --- where the drop-in API deliberately departs from the notebook: its bugs are fixed --------------------


def test_dropin_backward_pad0_gives_the_correct_gradient():
    """The notebook's ``dXi[pad:-pad]`` with pad=0 emptied dX; the drop-in must return the true gradient."""
    rng = np.random.default_rng(3)
    X, W, b = rng.standard_normal((2, 5, 4, 3)), rng.standard_normal((3, 3, 3, 2)), rng.standard_normal((1, 1, 1, 2))
    Z, cache = ic.forward(X, W, b, 0, 1, None)
    dZ = rng.standard_normal(Z.shape)
    dX, dW, db = ic.backward(dZ, cache)
    rX, rW, rb = ref.backward(dZ, ref.forward(X, W, b, 0, 1, None)[1])
    assert np.abs(dX).max() > 0.1
    assert_close(dX, rX)
    assert_close(dW, rW)
    assert_close(db, rb)
    assert db.shape == (1, 1, 1, 2)
    # and it is the modern API's gradient
    mx, mw, mb = ic.conv2d_backward(dZ, ic.conv2d_forward(X, W, b, stride=1, padding=0)[1])
    assert_close(dX, mx)
    assert_close(dW, mw)
    assert_close(db, mb)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize(("pad", "stride", "f"), [(1, 1, 2), (1, 2, 3), (2, 1, 3), (2, 3, 2)])
def test_dropin_pool_backward_with_padding_equals_reference(mode, pad, stride, f):
    rng = np.random.default_rng(pad * 100 + stride * 10 + f)
    X = rng.standard_normal((2, 5, 6, 3))
    fwd_mode = {"max": "maxpool", "average": "avepool"}[mode]
    A, cache = ic.forward(X, None, None, pad, stride, f, mode=fwd_mode)
    rA, rcache = ref.forward(X, None, None, pad, stride, f, mode=fwd_mode)
    assert_close(A, rA)
    assert cache[0] is X
    dA = rng.standard_normal(A.shape)
    dX = ic.pool_backward(dA, cache, mode=mode)
    assert dX.shape == X.shape
    assert_close(dX, ref.pool_backward(dA, rcache, mode=mode))
    if mode == "average" and pad <= f // 2:  # the same as the modern avg pool (zero padding, include_pad)
        _, mcache = ic.avg_pool2d_forward(X, f, stride=stride, padding=pad)
        assert_close(dX, ic.avg_pool2d_backward(dA, mcache))
