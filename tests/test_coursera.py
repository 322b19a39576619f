"""The deeplearning.ai assignment "Convolutional Neural Networks: Step by Step": its printed and tested numbers.

Each test rebuilds the inputs of one of the assignment's cells (or of its ``public_tests.py``) with the same
``np.random.seed`` and ``np.random.randn`` calls and asserts the values the assignment prints or checks. Source:
the assignment notebook ``Convolution_model_Step_by_Step_v1.ipynb`` and its ``public_tests.py`` (as found in
github.com/greyhatguy007/deep-learning-specialization, "C4-Convolutional Neural Networks/week1/W1A1/").
Arrays printed with 8 decimals are compared with ``atol=5e-9``; full-precision scalars with ``rtol=1e-12``.
Then random cases against the plain loops of ``reference.dropin`` (ties included) and bad-input errors.
"""

# The assignment's numbers come from the legacy global RNG (np.random.seed + randn), so it is used here.
# ruff: noqa: NPY002

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import reference as ref
from im2col_cnn import coursera as cs

PRINTED = 5e-9  # half a unit in the 8th decimal


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=PRINTED)


# --- zero_pad, conv_single_step -----------------------------------------------------------------------------


def test_zero_pad_matches_assignment():
    np.random.seed(1)
    x = np.random.randn(4, 3, 3, 2)
    x_pad = cs.zero_pad(x, 3)
    assert type(x_pad) is np.ndarray
    assert x_pad.shape == (4, 9, 9, 2)
    _close(x[1, 1], [[0.90085595, -0.68372786], [-0.12289023, -0.93576943], [-0.26788808, 0.53035547]])
    np.testing.assert_array_equal(x_pad[1, 1], np.zeros((9, 2)))
    np.testing.assert_array_equal(x_pad[:, 3:6, 3:6, :], x)
    # public test 2
    np.random.seed(1)
    x = np.random.randn(5, 4, 4, 3)
    x_pad = cs.zero_pad(x, 2)
    assert x_pad.shape == (5, 8, 8, 3)
    np.testing.assert_array_equal(x_pad[0, 0:2, :, 0], np.zeros((2, 8)))
    np.testing.assert_array_equal(x_pad[0, :, 6:8, 1], np.zeros((8, 2)))
    np.testing.assert_array_equal(x_pad[:, 2:6, 2:6, :], x)


@pytest.mark.parametrize(
    ("seed", "size", "expected"),
    [(3, 5, -3.5443670581382474), (1, 4, -6.999089450680221)],  # public test; the notebook's cell
)
def test_conv_single_step_matches_assignment(seed, size, expected):
    np.random.seed(seed)
    a_slice_prev = np.random.randn(size, size, 3)
    W = np.random.randn(size, size, 3)
    b = np.random.randn(1, 1, 1)
    Z = cs.conv_single_step(a_slice_prev, W, b)
    assert type(Z) is np.float64
    np.testing.assert_allclose(Z, expected, rtol=1e-12)


# --- conv_forward ---------------------------------------------------------------------------------------------


def test_conv_forward_matches_assignment():
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 7, 4)
    W = np.random.randn(3, 3, 4, 8)
    b = np.random.randn(1, 1, 1, 8)
    hparameters = {"pad": 1, "stride": 2}
    Z, cache_conv = cs.conv_forward(A_prev, W, b, hparameters)
    assert Z.shape == (2, 3, 4, 8)
    np.testing.assert_allclose(np.mean(Z), 0.5511276474566768, rtol=1e-12)
    z_0_2_1 = [-2.17796037, 8.07171329, -0.5772704, 3.36286738, 4.48113645, -2.89198428, 10.99288867, 3.03171932]
    _close(Z[0, 2, 1], z_0_2_1)
    assert type(cache_conv) is tuple and len(cache_conv) == 4
    assert cache_conv[0] is A_prev and cache_conv[1] is W and cache_conv[2] is b and cache_conv[3] is hparameters
    _close(cache_conv[0][1][2][3], [-1.1191154, 1.9560789, -0.3264995, -1.34267579])


def test_conv_forward_public_test_2():
    np.random.seed(3)
    A_prev = np.random.randn(2, 5, 7, 4)
    W = np.random.randn(3, 3, 4, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, _ = cs.conv_forward(A_prev, W, b, {"pad": 3, "stride": 1})
    assert Z.shape == (2, 9, 11, 8)
    Z, _ = cs.conv_forward(A_prev, W, b, {"pad": 0, "stride": 2})
    assert Z.shape == (2, 2, 3, 8)
    W = np.random.randn(5, 5, 4, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, cache_conv = cs.conv_forward(A_prev, W, b, {"pad": 6, "stride": 1})
    assert Z.shape == (2, 13, 15, 8)
    np.testing.assert_allclose(np.mean(Z), -0.5384027772160062, rtol=1e-12)
    expected_conv = [
        [1.98848968, 1.19505834, -0.0952376, -0.52718778],
        [-0.32158469, 0.15113037, -0.01862772, 0.48352879],
        [0.76896516, 1.36624284, 1.14726479, -0.11022916],
        [0.38825041, -0.38712718, -0.58722031, 1.91082685],
        [-0.45984615, 1.99073781, -0.34903539, 0.25282509],
        [1.08940955, 0.02392202, 0.39312528, -0.2413848],
        [-0.47552486, -0.16577702, -0.64971742, 1.63138295],
    ]
    _close(cache_conv[0][1, 2], expected_conv)


# --- pool_forward ---------------------------------------------------------------------------------------------


def test_pool_forward_case_1_stride_1():
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 5, 3)
    hparameters = {"stride": 1, "f": 3}
    A, cache = cs.pool_forward(A_prev, hparameters, mode="max")
    assert A.shape == (2, 3, 3, 3)
    _close(A[1, 1], [[1.96710175, 0.84616065, 1.27375593], [1.96710175, 0.84616065, 1.23616403],
                     [1.62765075, 1.12141771, 1.2245077]])  # fmt: skip
    assert type(cache) is tuple and cache[0] is A_prev and cache[1] is hparameters
    A, _ = cs.pool_forward(A_prev, hparameters, mode="average")
    assert A.shape == (2, 3, 3, 3)
    _close(A[1, 1], [[0.44497696, -0.00261695, -0.31040307], [0.50811474, -0.23493734, -0.23961183],
                     [0.11872677, 0.17255229, -0.22112197]])  # fmt: skip


def test_pool_forward_case_2_stride_2():
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 5, 3)
    hparameters = {"stride": 2, "f": 3}
    A, _ = cs.pool_forward(A_prev, hparameters)
    assert A.shape == (2, 2, 2, 3)
    _close(A[0], [[[1.74481176, 0.90159072, 1.65980218], [1.74481176, 1.6924546, 1.65980218]],
                  [[1.13162939, 1.51981682, 2.18557541], [1.13162939, 1.6924546, 2.18557541]]])  # fmt: skip
    A, _ = cs.pool_forward(A_prev, hparameters, mode="average")
    _close(A[1], [[[-0.17313416, 0.32377198, -0.34317572], [0.02030094, 0.14141479, -0.01231585]],
                  [[0.42944926, 0.08446996, -0.27290905], [0.15077452, 0.28911175, 0.00123239]]])  # fmt: skip


def test_pool_forward_public_test():
    rng = np.random.default_rng(0)  # the public test's first two cases check shapes only, on unseeded data
    A, _ = cs.pool_forward(rng.standard_normal((2, 5, 7, 3)), {"stride": 2, "f": 2}, mode="average")
    assert A.shape == (2, 2, 3, 3)
    A, _ = cs.pool_forward(rng.standard_normal((4, 5, 7, 4)), {"stride": 1, "f": 5}, mode="max")
    assert A.shape == (4, 1, 3, 4)
    np.random.seed(1)
    A_prev = np.random.randn(2, 5, 5, 3)
    A, cache = cs.pool_forward(A_prev, {"stride": 1, "f": 2}, mode="max")
    _close(A[1, 1], [[1.19891788, 0.74055645, 0.07734007], [0.31515939, 0.84616065, 0.07734007],
                     [0.69803203, 0.84616065, 1.2245077], [0.69803203, 1.12141771, 1.2245077]])  # fmt: skip
    _close(cache[0][1, 2], [[0.16938243, 0.74055645, -0.9537006], [-0.26621851, 0.03261455, -1.37311732],
                            [0.31515939, 0.84616065, -0.85951594], [0.35054598, -1.31228341, -0.03869551],
                            [-1.61577235, 1.12141771, 0.40890054]])  # fmt: skip
    A, _ = cs.pool_forward(A_prev, {"stride": 1, "f": 2}, mode="average")
    _close(A[1, 1], [[0.11583785, 0.34545544, -0.6561907], [-0.2334108, 0.3364666, -0.69382351],
                     [0.25497093, -0.21741362, -0.07342615], [-0.04092568, -0.01110394, 0.12495022]])  # fmt: skip


# --- conv_backward ---------------------------------------------------------------------------------------------


def test_conv_backward_matches_assignment():
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    Z, cache_conv = cs.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2})
    dA, dW, db = cs.conv_backward(Z, cache_conv)
    assert (dA.shape, dW.shape, db.shape) == ((10, 4, 4, 3), (2, 2, 3, 8), (1, 1, 1, 8))
    np.testing.assert_allclose(np.mean(dA), 1.4524377775388075, rtol=1e-12)
    np.testing.assert_allclose(np.mean(dW), 1.7269914583139097, rtol=1e-12)
    np.testing.assert_allclose(np.mean(db), 7.839232564616838, rtol=1e-12)


# --- create_mask_from_window, distribute_value, pool_backward ---------------------------------------------


def test_create_mask_from_window_matches_assignment():
    np.random.seed(1)
    x = np.random.randn(2, 3)
    _close(x, [[1.62434536, -0.61175641, -0.52817175], [-1.07296862, 0.86540763, -2.3015387]])
    np.testing.assert_array_equal(cs.create_mask_from_window(x), [[True, False, False], [False, False, False]])
    x = np.array([[-1, 2, 3], [2, -3, 2], [1, 5, -2]])
    mask = cs.create_mask_from_window(x)
    assert type(mask) is np.ndarray and mask.dtype == bool
    np.testing.assert_array_equal(mask, [[False, False, False], [False, False, False], [False, True, False]])
    np.testing.assert_array_equal(cs.create_mask_from_window([[2, 1], [0, 2]]), [[True, False], [False, True]])


def test_distribute_value_matches_assignment():
    a = cs.distribute_value(2, (2, 2))
    assert type(a) is np.ndarray and a.shape == (2, 2)
    np.testing.assert_array_equal(a, [[0.5, 0.5], [0.5, 0.5]])
    a = cs.distribute_value(100, (10, 10))
    assert a.shape == (10, 10) and np.sum(a) == 100


def _pool_backward_setup():
    np.random.seed(1)
    A_prev = np.random.randn(5, 5, 3, 2)
    A, cache = cs.pool_forward(A_prev, {"stride": 1, "f": 2})
    dA = np.random.randn(5, 4, 2, 2)
    return A_prev, A, cache, dA


def test_pool_backward_max_matches_assignment():
    A_prev, A, cache, dA = _pool_backward_setup()
    assert A.shape == (5, 4, 2, 2) and cache[0].shape == (5, 5, 3, 2)
    np.testing.assert_allclose(np.mean(dA), 0.145713902729, atol=5e-13)
    dA_prev = cs.pool_backward(dA, cache, mode="max")
    assert type(dA_prev) is np.ndarray and dA_prev.shape == (5, 5, 3, 2)
    _close(dA_prev[1, 1], [[0, 0], [5.05844394, -1.68282702], [0, 0]])


def test_pool_backward_average_matches_assignment():
    _, _, cache, dA = _pool_backward_setup()
    dA_prev = cs.pool_backward(dA, cache, mode="average")
    _close(dA_prev[1, 1], [[0.08485462, 0.2787552], [1.26461098, -0.25749373], [1.17975636, -0.53624893]])


# --- against the plain loops -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("pad", "stride", "f"), [(0, 1, 3), (1, 2, 3), (2, 1, 2), (0, 3, 2), (1, 1, 1)])
def test_conv_forward_and_backward_match_loops(pad, stride, f):
    rng = np.random.default_rng(100 * pad + 10 * stride + f)
    A_prev = rng.standard_normal((3, 7, 6, 2))
    W = rng.standard_normal((f, f, 2, 4))
    b = rng.standard_normal((1, 1, 1, 4))
    Z, cache = cs.conv_forward(A_prev, W, b, {"pad": pad, "stride": stride})
    Z_ref, cache_ref = ref.forward(A_prev, W, b, pad, stride, None)
    assert_close(Z, Z_ref)
    dZ = rng.standard_normal(Z.shape)
    for got, want in zip(cs.conv_backward(dZ, cache), ref.backward(dZ, cache_ref), strict=True):
        assert_close(got, want)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize(("f", "stride"), [(2, 1), (3, 2), (2, 2), (3, 1)])
def test_pool_forward_and_backward_match_loops(mode, f, stride):
    rng = np.random.default_rng(10 * f + stride)
    A_prev = rng.integers(-2, 3, size=(2, 7, 6, 3)).astype(np.float64)  # small integers: many tied maxima
    A, cache = cs.pool_forward(A_prev, {"f": f, "stride": stride}, mode=mode)
    A_ref, _ = ref.forward(A_prev, None, None, 0, stride, f, mode="maxpool" if mode == "max" else "avepool")
    assert_close(A, A_ref)
    dA = rng.standard_normal(A.shape)
    assert_close(cs.pool_backward(dA, cache, mode=mode), ref.pool_backward(dA, (A_prev, f, stride), mode=mode))


def test_pool_backward_max_gives_every_tied_maximum_the_gradient():
    A_prev = np.array([[3.0, 1.0, 3.0], [0.0, 3.0, 2.0], [1.0, 1.0, 0.0]]).reshape(1, 3, 3, 1)
    _, cache = cs.pool_forward(A_prev, {"f": 2, "stride": 1})
    dA = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(1, 2, 2, 1)
    dA_prev = cs.pool_backward(dA, cache)
    # windows: top-left max 3 at (0,0),(1,1); top-right max 3 at (0,2),(1,1); bottom ones max 3 at (1,1)
    expected = [[1.0, 0.0, 10.0], [0.0, 1111.0, 0.0], [0.0, 0.0, 0.0]]
    np.testing.assert_array_equal(dA_prev[0, :, :, 0], expected)


def test_float32_stays_float32():
    rng = np.random.default_rng(5)
    A_prev = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    W = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    b = np.zeros((1, 1, 1, 2), np.float32)
    Z, cache = cs.conv_forward(A_prev, W, b, {"pad": 1, "stride": 1})
    assert Z.dtype == np.float32
    assert all(g.dtype == np.float32 for g in cs.conv_backward(Z, cache))
    A, cache = cs.pool_forward(A_prev, {"f": 2, "stride": 2})
    assert A.dtype == np.float32 and cs.pool_backward(A, cache).dtype == np.float32


def test_inputs_are_not_modified():
    rng = np.random.default_rng(6)
    A_prev, W, b = rng.standard_normal((2, 5, 5, 3)), rng.standard_normal((3, 3, 3, 2)), rng.standard_normal(2)
    b = b.reshape(1, 1, 1, 2)
    arrays = [A_prev, W, b]
    for a in arrays:
        a.flags.writeable = False
    Z, cache = cs.conv_forward(A_prev, W, b, {"pad": 1, "stride": 2})
    dZ = np.ones_like(Z)
    dZ.flags.writeable = False
    cs.conv_backward(dZ, cache)
    A, cache = cs.pool_forward(A_prev, {"f": 2, "stride": 1})
    dA = np.ones_like(A)
    dA.flags.writeable = False
    for mode in ("max", "average"):
        cs.pool_backward(dA, cache, mode=mode)
    cs.zero_pad(A_prev, 1)


# --- errors ----------------------------------------------------------------------------------------------------


def test_bad_hparameters_and_modes_are_clear_errors():
    x = np.zeros((1, 4, 4, 1))
    w = np.zeros((2, 2, 1, 1))
    b = np.zeros((1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"hparameters must have a 'pad' entry \('stride' and 'pad'\)"):
        cs.conv_forward(x, w, b, {"stride": 1})
    with pytest.raises(TypeError, match="hparameters must be a dict with 'stride' and 'pad', got tuple"):
        cs.conv_forward(x, w, b, (1, 1))
    with pytest.raises(ValueError, match=r"hparameters must have a 'f' entry \('f' and 'stride'\)"):
        cs.pool_forward(x, {"stride": 1})
    with pytest.raises(ValueError, match="mode must be one of 'max', 'average', got 'avg'"):
        cs.pool_forward(x, {"f": 2, "stride": 1}, mode="avg")
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        cs.conv_forward(x, w, b, {"stride": 0, "pad": 0})
    _, cache = cs.pool_forward(x, {"f": 2, "stride": 2})
    with pytest.raises(ValueError, match="mode must be one of 'max', 'average', got 'maxpool'"):
        cs.pool_backward(np.zeros((1, 2, 2, 1)), cache, mode="maxpool")
    with pytest.raises(TypeError, match=r"cache must be the \(A_prev, hparameters\) tuple returned by pool_forward"):
        cs.pool_backward(np.zeros((1, 2, 2, 1)), (x, 2, 2))
    with pytest.raises(TypeError, match=r"cache must be the \(A_prev, W, b, hparameters\) tuple returned by conv"):
        cs.conv_backward(np.zeros((1, 3, 3, 1)), cache)
