"""Property tests for the general options (dilation, groups, padding modes, NCHW, transposed convolution):
the engine against the plain-loop reference.

Random combinations of every option of conv2d (stride, every padding form, dilation, groups incl. depthwise,
NHWC/NCHW, bias), conv_transpose2d (stride, padding, output_padding, dilation, groups, layouts), max_pool2d
(dilation, ceil_mode, layouts, ties and NaNs, ``cache.indices``) and avg_pool2d (ceil_mode, count_include_pad,
divisor_override, layouts): forward outputs and every gradient, float32 and float64, with their shapes and
dtypes. The strategies also draw some invalid problems (see ``_strategies.py``): both implementations must
reject exactly those, with a ValueError.
"""

from __future__ import annotations

import numpy as np
from _helpers import assert_close
from _strategies import DTYPES, LAYOUTS, SEEDS, general_conv_cases, general_pool_cases, transpose_cases
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import im2col_cnn as ic
import reference as ref

SETTINGS = settings(max_examples=200, deadline=None)


def forward_both(name: str, *args, valid: bool, **kwargs):
    """Run ``name`` (e.g. ``'conv2d_forward'``) in the engine and the reference.

    Both must raise ValueError exactly when the spec says the problem is invalid (``valid`` False); then None
    is returned. Otherwise ((out, cache), (ref_out, ref_cache)).
    """
    results = []
    for impl in (ic, ref):
        try:
            results.append(getattr(impl, name)(*args, **kwargs))
        except ValueError as exc:
            results.append(exc)
    engine, reference = results
    rejected = (isinstance(engine, ValueError), isinstance(reference, ValueError))
    assert rejected == (not valid, not valid), f"{name} {kwargs}: engine {engine!r:.200}, reference {reference!r:.200}"
    return (engine, reference) if valid else None


def check_conv_grads(grads, rgrads, case) -> None:
    """dx, dw and db against the reference: values, dtypes, and shapes (dx like x, dw like w, db (C_out,))."""
    c_out = case.out_shape[1 if case.data_format == "NCHW" else 3]
    dx, dw, db = grads
    assert dx.shape == case.x.shape and dw.shape == case.w.shape and db.shape == (c_out,)
    for g, rg in zip(grads, rgrads, strict=True):
        assert_close(g, rg, case.dtype)


@SETTINGS
@given(general_conv_cases())
def test_conv2d(case):
    results = forward_both("conv2d_forward", case.x, case.w, case.b, valid=case.valid, **case.kwargs)
    assume(results is not None)
    (out, cache), (rout, rcache) = results
    assert out.shape == case.out_shape
    if case.kwargs["padding"] == "same":  # the output has the input's size
        spatial = slice(2, 4) if case.data_format == "NCHW" else slice(1, 3)
        assert out.shape[spatial] == case.x.shape[spatial]
    assert_close(out, rout, case.dtype)
    check_conv_grads(ic.conv2d_backward(case.dout, cache), ref.conv2d_backward(case.dout, rcache), case)


@SETTINGS
@given(transpose_cases())
def test_conv_transpose2d(case):
    results = forward_both("conv_transpose2d_forward", case.x, case.w, case.b, valid=case.valid, **case.kwargs)
    assume(results is not None)
    (out, cache), (rout, rcache) = results
    assert out.shape == case.out_shape
    assert_close(out, rout, case.dtype)
    grads = ic.conv_transpose2d_backward(case.dout, cache)
    check_conv_grads(grads, ref.conv_transpose2d_backward(case.dout, rcache), case)


@settings(max_examples=60, deadline=None)
@given(transpose_cases(dtype=st.just(np.float64)))
def test_conv_transpose2d_is_the_input_gradient_of_conv2d(case):
    """The definition: conv_transpose2d(x, w) == conv2d_backward(dout=x) for a conv whose output has x's shape."""
    assume(case.valid)
    op, stride = (np.broadcast_to(case.kwargs[k], 2) for k in ("output_padding", "stride"))
    assume(all(op < stride))  # else (op < dilation only) that conv's output is larger than x
    kw = {k: case.kwargs[k] for k in ("stride", "padding", "dilation", "groups", "data_format")}
    out, _ = ic.conv_transpose2d_forward(case.x, case.w, None, **case.kwargs)
    # conv2d weight (kh, kw, C_out // g, C_in) in NHWC -- exactly the transposed conv's; likewise in NCHW
    conv_out, conv_cache = ref.conv2d_forward(np.zeros(out.shape), case.w, None, **kw)
    assert conv_out.shape == case.x.shape
    dx, _, _ = ref.conv2d_backward(case.x, conv_cache)
    assert_close(out, dx, np.float64)


@SETTINGS
@given(general_pool_cases("max"))
def test_max_pool2d(case):
    results = forward_both("max_pool2d_forward", case.x, case.kernel_size, valid=case.valid, **case.kwargs)
    assume(results is not None)
    (out, cache), (rout, rcache) = results
    assert out.shape == case.out_shape and out.dtype == case.dtype
    np.testing.assert_array_equal(out, rout)  # a max is exact (NaNs in the same places)
    indices = cache.indices
    assert indices.dtype == np.int64 and indices.shape == out.shape
    np.testing.assert_array_equal(indices, rcache.indices)
    # every index points at its window's output value, in the (unpadded) input plane
    nchw = case.data_format == "NCHW"
    x4, out4, idx4 = (a.transpose(0, 2, 3, 1) if nchw else a for a in (case.x, out, indices))
    n, h, w, c = x4.shape
    picked = np.take_along_axis(x4.reshape(n, h * w, c), idx4.reshape(n, -1, c), axis=1)
    np.testing.assert_array_equal(picked.reshape(out4.shape), out4)
    dx = ic.max_pool2d_backward(case.dout, cache)
    assert dx.shape == case.x.shape
    assert_close(dx, ref.max_pool2d_backward(case.dout, rcache), case.dtype)
    np.testing.assert_allclose(dx.sum(dtype=np.float64), case.dout.sum(dtype=np.float64), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(general_pool_cases("avg"))
def test_avg_pool2d(case):
    results = forward_both("avg_pool2d_forward", case.x, case.kernel_size, valid=case.valid, **case.kwargs)
    assume(results is not None)
    (out, cache), (rout, rcache) = results
    assert out.shape == case.out_shape
    assert_close(out, rout, case.dtype)
    dx = ic.avg_pool2d_backward(case.dout, cache)
    assert dx.shape == case.x.shape
    assert_close(dx, ref.avg_pool2d_backward(case.dout, rcache), case.dtype)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), DTYPES, LAYOUTS, SEEDS, st.booleans()
)
def test_groups_rejected_alike(c_in, c_out, groups, w_c_in, dtype, fmt, seed, transpose):
    """Arbitrary channel counts: both reject (ValueError) unless groups divides both and w fits."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, c_in, 4, 4) if fmt == "NCHW" else (1, 4, 4, c_in)).astype(dtype)
    if transpose:  # w (kh, kw, C_out // g, C_in): C_out is a multiple of groups by construction
        w = rng.standard_normal((c_in, c_out, 2, 2) if fmt == "NCHW" else (2, 2, c_out, c_in)).astype(dtype)
        valid = c_in % groups == 0
        name = "conv_transpose2d_forward"
    else:
        w = rng.standard_normal((c_out, w_c_in, 2, 2) if fmt == "NCHW" else (2, 2, w_c_in, c_out)).astype(dtype)
        valid = c_in % groups == 0 and c_out % groups == 0 and w_c_in * groups == c_in
        name = "conv2d_forward"
    results = forward_both(name, x, w, None, groups=groups, data_format=fmt, valid=valid)
    if results is not None:
        (out, _), (rout, _) = results
        assert_close(out, rout, dtype)
