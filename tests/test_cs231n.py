"""CS231n's convolution layers (assignment 2): its expected outputs, numerical gradients and the plain loops.

The expected arrays and printed errors are those of the assignment's ``ConvolutionalNetworks.ipynb`` (as found in
github.com/Visytudz/cs231n-sp23, ``assignment2/ConvolutionalNetworks.ipynb``); gradient checks rebuild its cells'
inputs (``np.random.seed(231)`` + ``randn``) and compare with central differences, as its
``eval_numerical_gradient_array`` does. Then random cases against the NCHW reference loops, tie semantics,
caches, errors and input safety.
"""

# The assignment's inputs come from the legacy global RNG (np.random.seed + randn), so it is used here.
# ruff: noqa: NPY002

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import reference as ref
from im2col_cnn import cs231n as cs

POOL_2X2 = {"pool_height": 2, "pool_width": 2, "stride": 2}


def rel_error(x, y):
    """The notebook's relative error: max |x - y| / max(1e-8, |x| + |y|)."""
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def numeric(forward, arg, dout, h=1e-5):
    """d sum(forward() * dout) / d arg by central differences, as the assignment's eval_numerical_gradient_array.

    ``arg`` is perturbed in place and restored; the difference of the outputs is taken before the sum.
    """
    grad = np.zeros_like(arg)
    for ix in np.ndindex(*arg.shape):
        old = arg[ix]
        arg[ix] = old + h
        pos = forward().copy()
        arg[ix] = old - h
        neg = forward().copy()
        arg[ix] = old
        grad[ix] = np.sum((pos - neg) * dout) / (2 * h)
    return grad


# --- the notebook's forward checks ----------------------------------------------------------------------------

CONV_CORRECT_OUT = [
    [[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]], [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
     [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
    [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]], [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
     [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]],
]  # fmt: skip

POOL_CORRECT_OUT = [
    [[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]], [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
     [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
    [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]], [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
     [[0.32631579, 0.34105263], [0.38526316, 0.4]]],
]  # fmt: skip


@pytest.mark.parametrize("forward", [cs.conv_forward_naive, cs.conv_forward_fast, cs.conv_forward_im2col])
def test_conv_forward_matches_notebook(forward):
    x_shape, w_shape = (2, 3, 4, 4), (3, 3, 4, 4)
    x = np.linspace(-0.1, 0.5, num=np.prod(x_shape)).reshape(x_shape)
    w = np.linspace(-0.2, 0.3, num=np.prod(w_shape)).reshape(w_shape)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = forward(x, w, b, {"stride": 2, "pad": 1})
    assert out.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(out, CONV_CORRECT_OUT, rtol=0, atol=5e-9)
    # the notebook prints "difference:  2.2121476417505994e-08" (its correct_out is rounded to 8 decimals)
    np.testing.assert_allclose(rel_error(out, np.array(CONV_CORRECT_OUT)), 2.2121476417505994e-08, rtol=1e-6)


@pytest.mark.parametrize("forward", [cs.max_pool_forward_naive, cs.max_pool_forward_fast, cs.max_pool_forward_im2col])
def test_max_pool_forward_matches_notebook(forward):
    x_shape = (2, 3, 4, 4)
    x = np.linspace(-0.3, 0.4, num=np.prod(x_shape)).reshape(x_shape)
    out, _ = forward(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
    np.testing.assert_allclose(out, POOL_CORRECT_OUT, rtol=0, atol=5e-9)
    # printed: "difference:  4.1666665157267834e-08"
    np.testing.assert_allclose(rel_error(out, np.array(POOL_CORRECT_OUT)), 4.1666665157267834e-08, rtol=1e-6)


# --- the notebook's gradient checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forward", "backward"),
    [(cs.conv_forward_naive, cs.conv_backward_naive), (cs.conv_forward_fast, cs.conv_backward_fast)],
)
def test_conv_backward_numerical_gradient(forward, backward):
    np.random.seed(231)
    x = np.random.randn(4, 3, 5, 5)
    w = np.random.randn(2, 3, 3, 3)
    b = np.random.randn(2)
    dout = np.random.randn(4, 2, 5, 5)
    conv_param = {"stride": 1, "pad": 1}
    out, cache = forward(x, w, b, conv_param)
    dx, dw, db = backward(dout, cache)
    assert (dx.shape, dw.shape, db.shape) == (x.shape, w.shape, b.shape)

    def f():
        return forward(x, w, b, conv_param)[0]

    # the notebook: "Your errors should be around e-8 or less" (measured here: 4e-9, 2e-10, 8e-11)
    assert rel_error(dx, numeric(f, x, dout)) < 5e-8
    assert rel_error(dw, numeric(f, w, dout)) < 1e-8
    assert rel_error(db, numeric(f, b, dout)) < 1e-8


@pytest.mark.parametrize(
    ("forward", "backward"),
    [(cs.max_pool_forward_naive, cs.max_pool_backward_naive), (cs.max_pool_forward_fast, cs.max_pool_backward_fast)],
)
def test_max_pool_backward_numerical_gradient(forward, backward):
    np.random.seed(231)
    x = np.random.randn(3, 2, 8, 8)
    dout = np.random.randn(3, 2, 4, 4)
    _, cache = forward(x, POOL_2X2)
    dx = backward(dout, cache)
    # the notebook prints "dx error:  3.27562514223145e-12": max pooling is exact, so the same number comes out
    error = rel_error(dx, numeric(lambda: forward(x, POOL_2X2)[0], x, dout))
    np.testing.assert_allclose(error, 3.27562514223145e-12, rtol=1e-9)


def test_conv_relu_pool_numerical_gradient():
    np.random.seed(231)
    x = np.random.randn(2, 3, 16, 16)
    w = np.random.randn(3, 3, 3, 3)
    b = np.random.randn(3)
    dout = np.random.randn(2, 3, 8, 8)
    conv_param = {"stride": 1, "pad": 1}
    out, cache = cs.conv_relu_pool_forward(x, w, b, conv_param, POOL_2X2)
    assert out.shape == (2, 3, 8, 8) and cache[2][0] == "reshape"
    dx, dw, db = cs.conv_relu_pool_backward(dout, cache)

    def f():
        return cs.conv_relu_pool_forward(x, w, b, conv_param, POOL_2X2)[0]

    assert rel_error(dx, numeric(f, x, dout)) < 1e-7
    assert rel_error(dw, numeric(f, w, dout)) < 1e-8
    assert rel_error(db, numeric(f, b, dout)) < 1e-8


def test_conv_relu_numerical_gradient():
    np.random.seed(231)
    x = np.random.randn(2, 3, 8, 8)
    w = np.random.randn(3, 3, 3, 3)
    b = np.random.randn(3)
    dout = np.random.randn(2, 3, 8, 8)
    conv_param = {"stride": 1, "pad": 1}
    out, cache = cs.conv_relu_forward(x, w, b, conv_param)
    assert out.min() == 0.0 and (out > 0).any()
    dx, dw, db = cs.conv_relu_backward(dout, cache)

    def f():
        return cs.conv_relu_forward(x, w, b, conv_param)[0]

    assert rel_error(dx, numeric(f, x, dout)) < 1e-7
    assert rel_error(dw, numeric(f, w, dout)) < 1e-8
    assert rel_error(db, numeric(f, b, dout)) < 1e-8


def test_relu_forward_and_backward():
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    out, cache = cs.relu_forward(x)
    expected = [[0, 0, 0, 0], [0, 0, 0.04545455, 0.13636364], [0.22727273, 0.31818182, 0.40909091, 0.5]]
    np.testing.assert_allclose(out, expected, rtol=0, atol=5e-9)  # FullyConnectedNets.ipynb's correct_out
    assert cache is x
    dout = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(cs.relu_backward(dout, cache), np.where(x > 0, dout, 0.0))


# --- against the reference loops --------------------------------------------------------------------------------


@pytest.mark.parametrize(("stride", "pad", "kernel"), [(1, 0, (3, 3)), (2, 1, (3, 3)), (1, 2, (2, 3)), (3, 1, (1, 1))])
def test_conv_matches_loops(stride, pad, kernel):
    rng = np.random.default_rng(10 * stride + pad)
    x = rng.standard_normal((3, 2, 7, 6))
    w = rng.standard_normal((4, 2, *kernel))
    b = rng.standard_normal(4)
    expected, ref_cache = ref.conv2d_forward(x, w, b, stride=stride, padding=pad, data_format="NCHW")
    dout = rng.standard_normal(expected.shape)
    grads = ref.conv2d_backward(dout, ref_cache)
    pairs = [(cs.conv_forward_naive, cs.conv_backward_naive), (cs.conv_forward_fast, cs.conv_backward_fast)]
    for forward, backward in pairs:
        out, cache = forward(x, w, b, {"stride": stride, "pad": pad})
        assert_close(out, expected)
        for got, want in zip(backward(dout, cache), grads, strict=True):
            assert_close(got, want)


@pytest.mark.parametrize(("ph", "pw", "stride"), [(2, 2, 2), (3, 3, 2), (2, 3, 1), (3, 2, 3)])
def test_max_pool_first_maximum_matches_loops(ph, pw, stride):
    rng = np.random.default_rng(ph * 100 + pw * 10 + stride)
    x = rng.integers(-2, 3, size=(2, 3, 8, 7)).astype(np.float64)  # small integers: many tied maxima
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    expected, ref_cache = ref.max_pool2d_forward(x, (ph, pw), stride=stride, data_format="NCHW")
    dout = rng.standard_normal(expected.shape)
    dx_ref = ref.max_pool2d_backward(dout, ref_cache)  # PyTorch's rule: the first maximum in row-major order
    pairs = [
        (cs.max_pool_forward_naive, cs.max_pool_backward_naive),
        (cs.max_pool_forward_im2col, cs.max_pool_backward_im2col),
    ]
    for forward, backward in pairs:
        out, cache = forward(x, pool_param)
        assert_close(out, expected)
        assert_close(backward(dout, cache), dx_ref)


def test_max_pool_reshape_splits_the_gradient_among_tied_maxima():
    rng = np.random.default_rng(7)
    x = rng.integers(-1, 2, size=(2, 3, 6, 4)).astype(np.float64)
    dout = rng.standard_normal((2, 3, 3, 2))
    out, cache = cs.max_pool_forward_fast(x, POOL_2X2)
    assert cache[0] == "reshape"
    expected = np.zeros_like(x)  # the released fast_layers.py: dout / (number of maxima) to each maximum
    for n, c, i, j in np.ndindex(*dout.shape):
        window = x[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        mask = window == window.max()
        expected[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = mask * dout[n, c, i, j] / mask.sum()
    np.testing.assert_allclose(cs.max_pool_backward_fast(dout, cache), expected, rtol=1e-15, atol=0)
    assert (out == x.reshape(2, 3, 3, 2, 2, 2).max(axis=(3, 5))).all()


def test_max_pool_fast_chooses_the_method_as_cs231n_does():
    x = np.zeros((1, 1, 6, 6))
    assert cs.max_pool_forward_fast(x, POOL_2X2)[1][0] == "reshape"
    assert cs.max_pool_forward_fast(x[..., :5], POOL_2X2)[1][0] == "im2col"  # W not a multiple of 2
    assert cs.max_pool_forward_fast(x, {"pool_height": 3, "pool_width": 3, "stride": 2})[1][0] == "im2col"
    assert cs.max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 3, "stride": 2})[1][0] == "im2col"


# --- caches -----------------------------------------------------------------------------------------------------


def test_caches_have_the_assignment_layout_and_every_backward_takes_every_conv_cache():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    conv_param = {"stride": 1, "pad": 1}
    out, naive = cs.conv_forward_naive(x, w, b, conv_param)
    assert len(naive) == 4 and naive[0] is x and naive[1] is w and naive[2] is b and naive[3] is conv_param
    _, fast = cs.conv_forward_fast(x, w, b, conv_param)
    assert len(fast) == 5 and fast[:4] == naive
    dout = rng.standard_normal(out.shape)
    expected = cs.conv_backward_naive(dout, naive)
    x_cols = np.zeros((27, 72))  # a cache made by CS231n's own conv_forward_fast holds its column matrix here
    for backward, cache in [
        (cs.conv_backward_fast, naive),
        (cs.conv_backward_naive, fast),
        (cs.conv_backward_fast, (*naive, x_cols)),
    ]:
        for got, want in zip(backward(dout, cache), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    pool_out, pool_cache = cs.max_pool_forward_naive(x, POOL_2X2)
    assert len(pool_cache) == 2 and pool_cache[0] is x and pool_cache[1] is POOL_2X2
    d = rng.standard_normal(pool_out.shape)
    _, im2col_cache = cs.max_pool_forward_im2col(x, POOL_2X2)
    expected = cs.max_pool_backward_naive(d, pool_cache)
    np.testing.assert_array_equal(cs.max_pool_backward_im2col(d, pool_cache), expected)
    np.testing.assert_array_equal(cs.max_pool_backward_naive(d, im2col_cache), expected)


# --- errors and inputs ------------------------------------------------------------------------------------------


def test_bad_params_and_caches_are_clear_errors():
    x, w, b = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2)), np.zeros(1)
    with pytest.raises(ValueError, match="conv_param must have the keys 'stride', 'pad'; missing 'pad'"):
        cs.conv_forward_naive(x, w, b, {"stride": 1})
    with pytest.raises(TypeError, match="conv_param must be a dict with 'stride', 'pad', got int"):
        cs.conv_forward_fast(x, w, b, 1)
    with pytest.raises(ValueError, match="pool_param must have the keys .*; missing 'pool_width', 'stride'"):
        cs.max_pool_forward_naive(x, {"pool_height": 2})
    with pytest.raises(ValueError, match="the reshape method needs pool_height == pool_width == stride, got 2, 2, 1"):
        cs.max_pool_forward_reshape(x, {"pool_height": 2, "pool_width": 2, "stride": 1})
    with pytest.raises(ValueError, match=r"the reshape method needs windows that tile x: .* got \(1, 1, 4, 3\)"):
        cs.max_pool_forward_reshape(x[..., :3], POOL_2X2)
    with pytest.raises(ValueError, match='Unrecognized method "strides"'):
        cs.max_pool_backward_fast(np.zeros((1, 1, 2, 2)), ("strides", None))
    with pytest.raises(TypeError, match=r"cache must be a conv cache: \(x, w, b, conv_param\)"):
        cs.conv_backward_naive(np.zeros((1, 1, 3, 3)), (x, w))
    with pytest.raises(TypeError, match=r"cache must be a max-pool cache: \(x, pool_param\)"):
        cs.max_pool_backward_naive(np.zeros((1, 1, 2, 2)), x)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        cs.conv_forward_naive(x, w, b, {"stride": 0, "pad": 0})
    _, cache = cs.conv_forward_naive(x, w, b, {"stride": 1, "pad": 0})
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 1, 3, 3\)"):
        cs.conv_backward_naive(np.zeros((1, 3, 3, 1)), cache)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    for a in (x, w, b):
        a.flags.writeable = False
    conv_param = {"stride": 1, "pad": 1}
    out, cache = cs.conv_relu_pool_forward(x, w, b, conv_param, POOL_2X2)
    dout = np.ones_like(out)
    dout.flags.writeable = False
    cs.conv_relu_pool_backward(dout, cache)
    out, cache = cs.conv_forward_naive(x, w, b, conv_param)
    dout = np.ones_like(out)
    dout.flags.writeable = False
    cs.conv_backward_naive(dout, cache)
    for forward, backward in [
        (cs.max_pool_forward_naive, cs.max_pool_backward_naive),
        (cs.max_pool_forward_fast, cs.max_pool_backward_fast),
    ]:
        out, cache = forward(x, POOL_2X2)
        dout = np.ones_like(out)
        dout.flags.writeable = False
        backward(dout, cache)
