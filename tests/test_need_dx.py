"""``need_dx=False`` skips the input gradient of conv2d and conv_transpose2d: dx is None, dw and db unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic

LAYERS = {
    "conv2d": (ic.conv2d_forward, ic.conv2d_backward, (3, 3, 4, 6)),
    "conv_transpose2d": (ic.conv_transpose2d_forward, ic.conv_transpose2d_backward, (3, 3, 6, 4)),
}


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_need_dx_false_returns_none_and_the_same_dw_db(layer, fmt):
    fwd, bwd, w_shape = LAYERS[layer]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6) if fmt == "NCHW" else (2, 7, 6, 4))
    w = rng.standard_normal(w_shape)
    if fmt == "NCHW":
        w = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    out, cache = fwd(x, w, np.ones(6), stride=2, padding=1, data_format=fmt)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = bwd(dout, cache)
    assert dx is not None and dx.shape == x.shape
    for flag in (False, np.False_, 0):
        none, dw2, db2 = bwd(dout, cache, need_dx=flag)
        assert none is None
        np.testing.assert_array_equal(dw2, dw)
        np.testing.assert_array_equal(db2, db)
    np.testing.assert_array_equal(bwd(dout, cache, need_dx=np.True_)[0], dx)


@pytest.mark.parametrize(("bad", "error"), [("no", TypeError), (None, TypeError), (2, ValueError), (0.0, TypeError)])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_need_dx_must_be_a_bool(layer, bad, error):
    fwd, bwd, w_shape = LAYERS[layer]
    out, cache = fwd(np.ones((1, 5, 5, 4)), np.ones(w_shape))
    expected = r"need_dx must be a bool \(or 0 or 1\), got " + repr(bad).replace(".", r"\.")
    with pytest.raises(error, match=expected):
        bwd(np.ones(out.shape), cache, need_dx=bad)
