"""An empty batch (N = 0) flows through every op with correctly shaped, zero gradients; empty channels are refused."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("k, stride", [(1, 1), (1, 2), (3, 1), (3, 2)])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_conv_and_transposed_conv_on_an_empty_batch(groups, k, stride, data_format):
    x = np.ones((0, 4, 5, 5) if data_format == "NCHW" else (0, 5, 5, 4), dtype=np.float32)
    w_shape = (4, 4 // groups, k, k) if data_format == "NCHW" else (k, k, 4 // groups, 4)
    w, b = np.ones(w_shape, dtype=np.float32), np.ones(4, dtype=np.float32)
    kw = dict(stride=stride, groups=groups, data_format=data_format)
    for forward, backward, extra in (
        (ic.conv2d_forward, ic.conv2d_backward, dict(padding=k // 2)),
        (ic.conv_transpose2d_forward, ic.conv_transpose2d_backward, {}),
    ):
        out, cache = forward(x, w, b, **kw, **extra)
        assert out.shape[0] == 0 and out.dtype == np.float32
        dx, dw, db = backward(np.ones(out.shape, dtype=np.float32), cache)
        assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (4,)
        assert not dw.any() and not db.any()


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pooling_on_an_empty_batch(name):
    x = np.ones((0, 6, 6, 3))
    out, cache = getattr(ic, f"{name}_forward")(x, 3, stride=2, padding=1)
    assert out.shape == (0, 3, 3, 3)
    assert getattr(ic, f"{name}_backward")(np.ones(out.shape), cache).shape == x.shape


def test_dropin_on_an_empty_batch():
    x = np.ones((0, 4, 4, 3))
    z, cache = ic.forward(x, np.ones((2, 2, 3, 2)), np.zeros((1, 1, 1, 2)), 0, 1, None)
    dx, dw, db = ic.backward(z, cache)
    assert dx.shape == x.shape and not dw.any() and db.shape == (1, 1, 1, 2)
    a, pool_cache = ic.forward(x, None, None, 1, 2, 2, mode="maxpool")
    assert ic.pool_backward(a, pool_cache, mode="max").shape == x.shape


@pytest.mark.parametrize(
    "x_shape, w_shape, message",
    [
        ((1, 5, 5, 0), (3, 3, 0, 2), r"x must not be empty except in the batch dimension, got shape \(1, 5, 5, 0\)"),
        ((1, 5, 5, 2), (3, 3, 2, 0), r"w must not be empty, got shape \(3, 3, 2, 0\)"),
    ],
)
def test_empty_channels_are_refused(x_shape, w_shape, message):
    with pytest.raises(ValueError, match=message):
        ic.conv2d_forward(np.ones(x_shape), np.ones(w_shape))
