"""Pooling's edge inputs: zero channels (or rows, columns) are refused as convolution refuses them; an empty
batch still works; ``ceil_mode``/``count_include_pad`` take bool-like ints (see test_general_errors)."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(
    ("shape", "fmt"),
    [((2, 7, 6, 0), "NHWC"), ((2, 0, 7, 6), "NCHW"), ((2, 0, 6, 3), "NHWC"), ((2, 3, 7, 0), "NCHW")],
)
def test_pooling_refuses_empty_dimensions_except_the_batch(name, shape, fmt):
    message = rf"x must not be empty except in the batch dimension, got shape \({', '.join(map(str, shape))}\)"
    with pytest.raises(ValueError, match=message):
        getattr(ic, f"{name}_forward")(np.ones(shape), 2, data_format=fmt)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pooling_an_empty_batch_in_either_layout(name, fmt):
    x = np.ones((0, 3, 6, 6)) if fmt == "NCHW" else np.ones((0, 6, 6, 3))
    out, cache = getattr(ic, f"{name}_forward")(x, 3, stride=2, padding=1, data_format=fmt)
    assert out.shape == ((0, 3, 3, 3))
    dx = getattr(ic, f"{name}_backward")(np.ones(out.shape), cache)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    if name == "max_pool2d":
        assert cache.indices.shape == out.shape


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf + -inf where windows overlap
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_gradient_of_a_dout_holding_inf_and_nan(k, s, p, fmt):
    """inf * 0 is NaN: positions that win no window must still get exactly 0, and winners the inf or NaN."""
    import reference as ref

    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 7, 6, 3))
    x4 = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if fmt == "NCHW" else x
    out, cache = ic.max_pool2d_forward(x4, k, stride=s, padding=p, data_format=fmt)
    dout = rng.standard_normal(out.shape)
    dout.flat[::7] = np.inf
    dout.flat[3::11] = -np.inf
    dout.flat[5::13] = np.nan
    dx = ic.max_pool2d_backward(dout, cache)
    _, rcache = ref.max_pool2d_forward(x4, k, stride=s, padding=p, data_format=fmt)
    expected = ref.max_pool2d_backward(dout, rcache)
    np.testing.assert_allclose(dx, expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(dx).sum() == np.isnan(expected).sum() > 0
    assert (dx == 0).sum() == (expected == 0).sum()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("k", [2, 3])
def test_max_pool_of_huge_finite_values_warns_nothing(k):
    """The engine's internal checks for NaN and inf may overflow; they must not warn about it."""
    x = np.full((2, 6, 6, 3), 3e38, dtype=np.float32)
    out, cache = ic.max_pool2d_forward(x, k, stride=2, padding=1)
    assert (out == np.float32(3e38)).all()
    dx = ic.max_pool2d_backward(np.full(out.shape, 3e38, dtype=np.float32), cache)
    assert dx.max() == np.float32(3e38) and (dx >= 0).all()
