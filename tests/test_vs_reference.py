"""Property tests: the engine against the plain-loop reference on random small problems.

Every forward output and every gradient, for float32 and float64, with dtype-appropriate tolerances
(``assert_close``) and the dtype of every result checked.
"""

from __future__ import annotations

import numpy as np
from _helpers import assert_close, out_size
from _strategies import DTYPES, SEEDS, conv_cases, dropin_cases, pool_cases
from hypothesis import given, settings
from hypothesis import strategies as st

import im2col_cnn as ic
import reference as ref

FAST = settings(max_examples=300, deadline=None)


@FAST
@given(conv_cases())
def test_conv2d_forward_backward(case):
    kw = dict(stride=case.stride, padding=case.padding)
    out, cache = ic.conv2d_forward(case.x, case.w, case.b, **kw)
    rout, rcache = ref.conv2d_forward(case.x, case.w, case.b, **kw)
    assert out.shape == (case.x.shape[0], *case.out_hw, case.w.shape[3])
    assert_close(out, rout, case.dtype)
    grads = ic.conv2d_backward(case.dout, cache)
    rgrads = ref.conv2d_backward(case.dout, rcache)
    for g, rg in zip(grads, rgrads, strict=True):
        assert_close(g, rg, case.dtype)
    assert grads[0].shape == case.x.shape and grads[1].shape == case.w.shape
    assert grads[2].shape == ((case.w.shape[3],) if case.b is None else case.b.shape)


@FAST
@given(pool_cases())
def test_max_pool2d_forward_backward(case):
    kw = dict(stride=case.stride, padding=case.padding)
    out, cache = ic.max_pool2d_forward(case.x, case.kernel_size, **kw)
    rout, rcache = ref.max_pool2d_forward(case.x, case.kernel_size, **kw)
    assert out.shape == (case.x.shape[0], *case.out_hw, case.x.shape[3])
    assert out.dtype == case.dtype
    np.testing.assert_array_equal(out, rout)  # a max is exact
    assert_close(ic.max_pool2d_backward(case.dout, cache), ref.max_pool2d_backward(case.dout, rcache), case.dtype)


@FAST
@given(pool_cases())
def test_avg_pool2d_forward_backward(case):
    kw = dict(stride=case.stride, padding=case.padding)
    out, cache = ic.avg_pool2d_forward(case.x, case.kernel_size, **kw)
    rout, rcache = ref.avg_pool2d_forward(case.x, case.kernel_size, **kw)
    assert out.shape == (case.x.shape[0], *case.out_hw, case.x.shape[3])
    assert_close(out, rout, case.dtype)
    assert_close(ic.avg_pool2d_backward(case.dout, cache), ref.avg_pool2d_backward(case.dout, rcache), case.dtype)


@FAST
@given(conv_cases(), st.sampled_from([0.0, -np.inf, 2.5]))
def test_im2col(case, pad_value):
    kw = dict(stride=case.stride, padding=case.padding)
    cols = ic.im2col(case.x, case.kernel_size, pad_value=pad_value, **kw)
    n, _, _, c = case.x.shape
    ho, wo = case.out_hw
    assert cols.shape == (n * ho * wo, case.kh * case.kw * c)
    assert cols.dtype == case.dtype
    # a gather: exactly the reference's entries
    np.testing.assert_array_equal(cols, ref.im2col(case.x, case.kernel_size, pad_value=pad_value, **kw))


@FAST
@given(conv_cases(), SEEDS)
def test_col2im_and_adjointness(case, seed):
    kw = dict(stride=case.stride, padding=case.padding)
    n, _, _, c = case.x.shape
    ho, wo = case.out_hw
    rng = np.random.default_rng(seed)
    dcols = rng.standard_normal((n * ho * wo, case.kh * case.kw * c)).astype(case.dtype)
    dx = ic.col2im(dcols, case.x.shape, case.kernel_size, **kw)
    assert_close(dx, ref.col2im(dcols, case.x.shape, case.kernel_size, **kw), case.dtype)
    # <im2col(x), dcols> == <x, col2im(dcols)>
    lhs = np.sum(ic.im2col(case.x, case.kernel_size, **kw).astype(np.float64) * dcols)
    rhs = np.sum(case.x.astype(np.float64) * dx)
    scale = np.sum(np.abs(dcols)) * max(1.0, float(np.abs(case.x).max()))
    np.testing.assert_allclose(lhs, rhs, atol=10 * np.finfo(case.dtype).eps * scale)


@FAST
@given(conv_cases(dtype=st.just(np.float64)))
def test_conv2d_is_im2col_matmul(case):
    out, _ = ic.conv2d_forward(case.x, case.w, None, stride=case.stride, padding=case.padding)
    cols = ref.im2col(case.x, case.kernel_size, stride=case.stride, padding=case.padding)
    assert_close(out.reshape(-1, case.w.shape[3]), cols @ case.w.reshape(-1, case.w.shape[3]), np.float64)


# --- drop-in API ----------------------------------------------------------------------------------------------


@FAST
@given(dropin_cases())
def test_dropin_conv(case):
    Z, cache = ic.forward(case.x, case.w, case.b, case.pad, case.stride, None)
    rZ, rcache = ref.forward(case.x, case.w, case.b, case.pad, case.stride, None)
    assert cache[0] is case.x
    ho, wo = (out_size(s, case.f, case.stride, case.pad) for s in case.x.shape[1:3])
    assert Z.shape == rZ.shape == (case.x.shape[0], ho, wo, case.w.shape[3])
    assert_close(Z, rZ, case.dtype)
    grads = ic.backward(case.dz_conv, cache)
    for g, rg in zip(grads, ref.backward(case.dz_conv, rcache), strict=True):
        assert_close(g, rg, case.dtype)
    assert grads[2].shape == (1, 1, 1, case.w.shape[3])


@FAST
@given(dropin_cases(), st.sampled_from([("maxpool", "max"), ("avepool", "average")]))
def test_dropin_pool(case, modes):
    fmode, bmode = modes
    Z, cache = ic.forward(case.x, None, None, case.pad, case.stride, case.f, mode=fmode)
    rZ, rcache = ref.forward(case.x, None, None, case.pad, case.stride, case.f, mode=fmode)
    assert cache[0] is case.x
    assert_close(Z, rZ, case.dtype)
    dX = ic.pool_backward(case.dz_pool, cache, mode=bmode)
    assert_close(dX, ref.pool_backward(case.dz_pool, rcache, mode=bmode), case.dtype)


@settings(max_examples=150, deadline=None)
@given(dropin_cases(), SEEDS, DTYPES)
def test_dropin_max_pool_with_ties(case, seed, dtype):
    """Integer-valued input in [-2, 1]: many ties, and the zero padding ties or wins."""
    x = np.random.default_rng(seed).integers(-2, 2, size=case.x.shape).astype(dtype)
    Z, cache = ic.forward(x, None, None, case.pad, case.stride, case.f, mode="maxpool")
    rZ, rcache = ref.forward(x, None, None, case.pad, case.stride, case.f, mode="maxpool")
    np.testing.assert_array_equal(Z, rZ)
    dA = case.dz_pool.astype(dtype)
    assert_close(ic.pool_backward(dA, cache, mode="max"), ref.pool_backward(dA, rcache, mode="max"), dtype)


@settings(max_examples=150, deadline=None)
@given(pool_cases(), SEEDS)
def test_max_pool_with_ties(case, seed):
    """Integer-valued input in [-2, 1]: many ties, broken toward the first maximum in both."""
    x = np.random.default_rng(seed).integers(-2, 2, size=case.x.shape).astype(case.dtype)
    kw = dict(stride=case.stride, padding=case.padding)
    out, cache = ic.max_pool2d_forward(x, case.kernel_size, **kw)
    rout, rcache = ref.max_pool2d_forward(x, case.kernel_size, **kw)
    np.testing.assert_array_equal(out, rout)
    assert_close(ic.max_pool2d_backward(case.dout, cache), ref.max_pool2d_backward(case.dout, rcache), case.dtype)
