"""float16 layers are computed in float32 and answer in float16: outputs, gradients and drop-in results.

Each float16 result must be exactly the float32 computation on the same (exactly widened) values, rounded once
to float16 -- and so within float16's rounding of the plain-loop reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic
import reference as ref

HALF = np.float16


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(HALF)


def _layers(fmt):
    """(name, forward(x, w, b), weight shape in fmt) for every layer type."""
    nchw = fmt == "NCHW"
    return [
        ("conv2d", lambda x, w, b: ic.conv2d_forward(x, w, b, stride=2, padding=1, data_format=fmt),
         (4, 3, 3, 3) if nchw else (3, 3, 3, 4), ic.conv2d_backward),
        ("conv_transpose2d", lambda x, w, b: ic.conv_transpose2d_forward(x, w, b, stride=2, data_format=fmt),
         (3, 4, 3, 3) if nchw else (3, 3, 4, 3), ic.conv_transpose2d_backward),
        ("max_pool2d", lambda x, w, b: ic.max_pool2d_forward(x, 3, stride=2, padding=1, data_format=fmt),
         None, ic.max_pool2d_backward),
        ("avg_pool2d", lambda x, w, b: ic.avg_pool2d_forward(x, 3, stride=2, padding=1, data_format=fmt),
         None, ic.avg_pool2d_backward),
    ]  # fmt: skip


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("layer", range(4), ids=["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"])
def test_float16_is_float32_rounded_once(layer, fmt):
    name, fwd, w_shape, bwd = _layers(fmt)[layer]
    x = _data((2, 3, 9, 9) if fmt == "NCHW" else (2, 9, 9, 3), 0)
    w = None if w_shape is None else _data(w_shape, 1)
    b = None if w_shape is None else _data((4,), 2)
    out, cache = fwd(x, w, b)
    dout = _data(out.shape, 3)
    grads = bwd(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)

    f32 = [None if a is None else a.astype(np.float32) for a in (x, w, b)]
    out32, cache32 = fwd(*f32)
    grads32 = bwd(dout.astype(np.float32), cache32)
    grads32 = grads32 if isinstance(grads32, tuple) else (grads32,)

    assert out.dtype == HALF and all(g.dtype == HALF for g in grads)
    np.testing.assert_array_equal(out, out32.astype(HALF))
    for g, g32 in zip(grads, grads32, strict=True):
        np.testing.assert_array_equal(g, g32.astype(HALF))
    if name == "max_pool2d":
        np.testing.assert_array_equal(cache.indices, cache32.indices)


def test_float16_conv_matches_the_loops_within_float16_rounding():
    x, w, b = _data((2, 7, 7, 3), 0), _data((3, 3, 3, 5), 1), _data((5,), 2)
    out, cache = ic.conv2d_forward(x, w, b, padding=1)
    expected, _ = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1)
    # One rounding to float16 of the float32 result: half an ulp of float16 (2**-11 relative), plus float32's sum.
    np.testing.assert_allclose(out.astype(np.float64), expected, rtol=2**-11, atol=1e-3)
    dx, dw, db = ic.conv2d_backward(np.ones(out.shape, HALF), cache)
    assert (dx.dtype, dw.dtype, db.dtype) == (HALF, HALF, HALF)


def test_a_float32_or_float64_argument_promotes_as_numpy_does():
    x, w = _data((1, 5, 5, 2), 0), _data((3, 3, 2, 2), 1)
    out32, _ = ic.conv2d_forward(x, w.astype(np.float32))
    out64, _ = ic.conv2d_forward(x, w.tolist())  # nested lists are float64
    assert (out32.dtype, out64.dtype) == (np.float32, np.float64)
    dx, dw, db = ic.conv2d_backward(np.ones(out32.shape, HALF), ic.conv2d_forward(x, w.astype(np.float32))[1])
    assert (dx.dtype, dw.dtype, db.dtype) == (np.float32,) * 3


def test_float16_drop_in_functions_answer_in_float16():
    x, w, b = _data((2, 6, 6, 3), 0), _data((3, 3, 3, 4), 1), _data((1, 1, 1, 4), 2)
    z, cache = ic.forward(x, w, b, 1, 1, None)
    assert z.dtype == HALF and [g.dtype for g in ic.backward(np.ones_like(z), cache)] == [HALF] * 3
    for mode, back in (("maxpool", "max"), ("avepool", "average")):
        a, pool_cache = ic.forward(x, None, None, 0, 2, 2, mode=mode)
        da = ic.pool_backward(np.ones_like(a), pool_cache, mode=back)
        assert (a.dtype, da.dtype) == (HALF, HALF)
        a32, _ = ic.forward(x.astype(np.float32), None, None, 0, 2, 2, mode=mode)
        np.testing.assert_array_equal(a, a32.astype(HALF))
