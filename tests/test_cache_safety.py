"""Caches the caller cannot corrupt, and the drop-in API's pooling modes.

Max pooling records each window's winner in the forward pass: its backward pass and ``cache.indices`` read only
those, so changing the returned output in place (a ReLU with ``out=``, ``out += bias``) changes nothing. Nothing
a forward pass returns shares memory with what its backward pass reads. The drop-in caches know their mode, and
the conv ``forward`` refuses a window size ``f`` that is not W's.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import im2col_cnn as ic
import reference as ref

LAYOUTS = ["NHWC", "NCHW"]


def _nchw(a: np.ndarray, fmt: str) -> np.ndarray:
    """An NHWC array in ``fmt``'s layout."""
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if fmt == "NCHW" else a


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_changing_max_pool_output_in_place_changes_neither_gradient_nor_indices(fmt):
    x = _nchw(np.arange(16.0).reshape(1, 4, 4, 1), fmt)
    out, cache = ic.max_pool2d_forward(x, 2, data_format=fmt)
    out += 1  # e.g. a bias added in place
    dx = ic.max_pool2d_backward(np.ones(out.shape), cache)
    assert dx.sum() == 4.0
    np.testing.assert_array_equal(dx.reshape(4, 4), [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(cache.indices.reshape(-1), [5, 7, 13, 15])


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("change", ["relu", "zero", "nan"])
def test_max_pool_gradient_ignores_any_change_of_the_output(fmt, change):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3))
    x4 = _nchw(x, fmt)
    out, cache = ic.max_pool2d_forward(x4, 3, stride=2, padding=1, data_format=fmt)
    dout = rng.standard_normal(out.shape)
    expected_dx, expected_idx = ic.max_pool2d_backward(dout, cache), cache.indices
    {"relu": lambda: np.maximum(out, 0, out=out), "zero": lambda: out.fill(0), "nan": lambda: out.fill(np.nan)}[
        change
    ]()
    np.testing.assert_array_equal(ic.max_pool2d_backward(dout, cache), expected_dx)
    np.testing.assert_array_equal(cache.indices, expected_idx)
    _, rcache = ref.max_pool2d_forward(x4, 3, stride=2, padding=1, data_format=fmt)
    assert_close(expected_dx, ref.max_pool2d_backward(dout, rcache))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_nothing_returned_shares_memory_with_the_cache(kind, fmt):
    x = _nchw(np.random.default_rng(1).standard_normal((2, 6, 6, 3)), fmt)
    fwd, bwd = getattr(ic, f"{kind}_pool2d_forward"), getattr(ic, f"{kind}_pool2d_backward")
    out, cache = fwd(x, 2, data_format=fmt)
    assert cache.x is x  # kept by reference, as PyTorch saves tensors
    assert out.flags.c_contiguous and not np.shares_memory(out, x)
    for field in cache:
        if isinstance(field, np.ndarray) and field is not x:
            assert not np.shares_memory(out, field)
    dx = bwd(np.ones(out.shape), cache)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    assert not any(np.shares_memory(dx, f) for f in cache if isinstance(f, np.ndarray))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_backward_does_not_read_the_values_of_x(kind):
    """The cache keeps x by reference; the pooling gradients do not depend on its values, so changing x in place
    after the forward pass leaves them as they were."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 5, 3))
    fwd, bwd = getattr(ic, f"{kind}_pool2d_forward"), getattr(ic, f"{kind}_pool2d_backward")
    out, cache = fwd(x, 3, stride=2, padding=1)
    dout = rng.standard_normal(out.shape)
    expected = bwd(dout, cache)
    x *= -1
    np.testing.assert_array_equal(bwd(dout, cache), expected)


@pytest.mark.parametrize("disjoint", [False, True])
def test_winners_are_uint8_up_to_255_offsets_and_wider_beyond(disjoint):
    rng = np.random.default_rng(3)
    for k, dtype in [(3, np.uint8), (15, np.uint8), (16, np.uint16)]:
        shape = (2, 35, 33, 2) if disjoint else (2, 19, 18, 2)
        x = rng.integers(-3, 3, shape).astype(np.float64)  # many ties
        x[0, 5, 6, 1] = np.nan
        out, cache = ic.max_pool2d_forward(x, k, stride=k if disjoint else 1)
        assert cache.winners.dtype == dtype
        rout, rcache = ref.max_pool2d_forward(x, k, stride=k if disjoint else 1)
        np.testing.assert_array_equal(out, rout)
        np.testing.assert_array_equal(cache.indices, rcache.indices)
        dout = rng.standard_normal(out.shape)
        assert_close(ic.max_pool2d_backward(dout, cache), ref.max_pool2d_backward(dout, rcache))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 0))])
def test_windows_of_zeros_after_a_relu_send_the_gradient_to_their_first_position(k, s, p, fmt):
    rng = np.random.default_rng(4)
    x = np.maximum(rng.standard_normal((3, 9, 8, 4)), 0)  # half zeros: many windows are all zeros
    x[0] = 0
    x4 = _nchw(x, fmt)
    out, cache = ic.max_pool2d_forward(x4, k, stride=s, padding=p, data_format=fmt)
    rout, rcache = ref.max_pool2d_forward(x4, k, stride=s, padding=p, data_format=fmt)
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(cache.indices, rcache.indices)
    dout = rng.standard_normal(out.shape)
    assert_close(ic.max_pool2d_backward(dout, cache), ref.max_pool2d_backward(dout, rcache))  # sums in another order


def test_first_maximum_is_row_major_across_kernel_columns():
    """The window's maximum in a later kernel column but an earlier kernel row comes first."""
    x = np.array([[0.0, 5.0], [5.0, 0.0]])[None, :, :, None]
    _, cache = ic.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(cache.indices.reshape(-1), [1])
    x = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 7.0], [0.0, 7.0, 0.0]])[None, :, :, None]
    _, cache = ic.max_pool2d_forward(x, 3)
    np.testing.assert_array_equal(cache.indices.reshape(-1), [5])


def test_nan_windows_send_the_gradient_to_their_last_nan():
    x = np.array([[1.0, np.nan, 3.0], [np.nan, 2.0, 9.0], [0.0, 1.0, 2.0]])[None, :, :, None]
    out, cache = ic.max_pool2d_forward(x, 2, stride=1)
    assert np.isnan(out[0, :, :, 0]).tolist() == [[True, True], [True, False]]
    np.testing.assert_array_equal(cache.indices.reshape(-1), [3, 1, 3, 5])
    dx = ic.max_pool2d_backward(np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 2, 2, 1), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 10, 0], [101, 0, 1000], [0, 0, 0]])


def test_an_all_minus_inf_window_sends_the_gradient_to_its_first_input_position():
    x = np.full((1, 3, 3, 1), -np.inf)
    out, cache = ic.max_pool2d_forward(x, 2, stride=2, padding=1)
    np.testing.assert_array_equal(cache.indices.reshape(-1), [0, 1, 3, 4])
    dx = ic.max_pool2d_backward(np.ones(out.shape), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


# --- the drop-in API ------------------------------------------------------------------------------------------


def _pool_layer(mode):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 5, 5, 3))
    A, cache = ic.forward(X, None, None, 1, 2, 3, mode=mode)
    return X, A, cache, rng.standard_normal(A.shape)


@pytest.mark.parametrize("given", [{}, {"mode": "max"}])
def test_dropin_max_gradient_of_an_average_pool_cache_is_a_value_error(given):
    _, _, cache, dA = _pool_layer("avepool")
    assert cache.mode == "avepool" and cache[4] == "avepool"
    with pytest.raises(ValueError, match=r"mode must be 'average' for a cache made by forward\(mode='avepool'\)"):
        ic.pool_backward(dA, cache, **given)


def test_dropin_average_gradient_takes_any_pool_cache():
    X, _, avg_cache, dA = _pool_layer("avepool")
    _, _, max_cache, _ = _pool_layer("maxpool")
    expected = ref.pool_backward(dA, (X, 3, 2, 1), mode="average")
    for cache in (avg_cache, max_cache, (X, 3, 2, 1)):
        assert_close(ic.pool_backward(dA, cache, mode="average"), expected)


def test_dropin_hand_built_caches_have_no_mode():
    X, _, cache, dA = _pool_layer("maxpool")
    for mode in ("max", "average"):
        expected = ref.pool_backward(dA, (X, 3, 2, 1), mode=mode)
        assert_close(ic.pool_backward(dA, (X, 3, 2, 1), mode=mode), expected)
        assert_close(ic.pool_backward(dA, (X, 3, 2, 1, None), mode=mode), expected)


def test_dropin_pool_results_do_not_share_memory_with_inputs_or_caches():
    X, A, cache, dA = _pool_layer("maxpool")
    assert cache[0] is X and not np.shares_memory(A, X)
    dX = ic.pool_backward(dA, cache)
    assert not np.shares_memory(dX, X) and not np.shares_memory(dX, dA)
    A += 1  # changing the output changes nothing
    np.testing.assert_array_equal(ic.pool_backward(dA, cache), dX)


@pytest.mark.parametrize("f", [3, (3, 3), (2, 3), 1])
def test_dropin_conv_window_other_than_ws_is_a_value_error(f):
    X, W, b = np.ones((1, 4, 4, 2)), np.ones((2, 2, 2, 3)), np.zeros((1, 1, 1, 3))
    with pytest.raises(ValueError, match=r"f must be None or the window of W \(2, 2\) for mode='conv', got f="):
        ic.forward(X, W, b, 0, 1, f, mode="conv")


@pytest.mark.parametrize("f", [None, 2, (2, 2), np.int64(2)])
def test_dropin_conv_window_none_or_ws(f):
    rng = np.random.default_rng(6)
    X, W, b = rng.standard_normal((1, 4, 4, 2)), rng.standard_normal((2, 2, 2, 3)), rng.standard_normal((1, 1, 1, 3))
    Z, _ = ic.forward(X, W, b, 1, 1, f, mode="conv")
    assert_close(Z, ref.forward(X, W, b, 1, 1, None, mode="conv")[0])


def test_dropin_conv_non_square_window():
    X, W, b = np.ones((1, 4, 5, 2)), np.ones((2, 3, 2, 1)), np.zeros((1, 1, 1, 1))
    assert ic.forward(X, W, b, 0, 1, (2, 3))[0].shape == (1, 3, 3, 1)
    with pytest.raises(ValueError, match=r"f must be None or the window of W \(2, 3\)"):
        ic.forward(X, W, b, 0, 1, 2)
