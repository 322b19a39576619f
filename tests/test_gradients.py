"""Central-difference gradient checks (float64) of the engine's backward passes.

Each check uses the scalar loss ``L = sum(out * dout)`` for a random ``dout``, whose gradient with respect to
any input is exactly what ``*_backward(dout, cache)`` returns.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import numerical_gradient, tie_free

import im2col_cnn as ic

RTOL, ATOL = 1e-6, 1e-7

GEOMETRIES = [  # (kernel, stride, padding), per axis where a pair
    ((3, 3), 1, 0),
    ((2, 3), (2, 1), (1, 0)),
    ((3, 2), 2, 1),
    ((3, 3), (1, 3), (2, 1)),
]
POOL_GEOMETRIES = [  # padding <= kernel // 2
    ((2, 2), None, 0),
    ((3, 3), 1, 1),
    ((3, 2), (2, 1), (1, 1)),
    ((2, 3), (1, 2), (0, 1)),
]


def _check(analytic, loss, x):
    np.testing.assert_allclose(analytic, numerical_gradient(loss, x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bias", ["none", "flat", "4d"])
@pytest.mark.parametrize(("kernel", "stride", "padding"), GEOMETRIES)
def test_conv2d_gradients(kernel, stride, padding, bias):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 6, 2))
    w = rng.standard_normal((*kernel, 2, 3))
    b = {"none": None, "flat": rng.standard_normal(3), "4d": rng.standard_normal((1, 1, 1, 3))}[bias]
    out, cache = ic.conv2d_forward(x, w, b, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = ic.conv2d_backward(dout, cache)

    def loss():
        return float(np.sum(ic.conv2d_forward(x, w, b, stride=stride, padding=padding)[0] * dout))

    _check(dx, loss, x)
    _check(dw, loss, w)
    if b is None:
        # the gradient of a zero bias of shape (C_out,)
        assert db.shape == (3,)
        np.testing.assert_allclose(db, dout.sum(axis=(0, 1, 2)), rtol=1e-12)
    else:
        assert db.shape == b.shape
        _check(db, loss, b)


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_GEOMETRIES)
def test_avg_pool2d_gradient(kernel, stride, padding):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 6, 7, 3))
    out, cache = ic.avg_pool2d_forward(x, kernel, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape)
    dx = ic.avg_pool2d_backward(dout, cache)

    def loss():
        return float(np.sum(ic.avg_pool2d_forward(x, kernel, stride=stride, padding=padding)[0] * dout))

    _check(dx, loss, x)


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_GEOMETRIES)
def test_max_pool2d_gradient_tie_free(kernel, stride, padding):
    rng = np.random.default_rng(13)
    x = tie_free((2, 6, 7, 3), rng)  # distinct values 0.1 apart: an eps step never changes an argmax
    out, cache = ic.max_pool2d_forward(x, kernel, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape)
    dx = ic.max_pool2d_backward(dout, cache)

    def loss():
        return float(np.sum(ic.max_pool2d_forward(x, kernel, stride=stride, padding=padding)[0] * dout))

    _check(dx, loss, x)
    # every window sends its whole gradient to one input position: nothing is lost to the padding
    np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-12)


def test_col2im_is_the_gradient_of_im2col():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 4, 5, 2))
    kw = dict(stride=(2, 1), padding=(1, 2))
    cols = ic.im2col(x, (3, 2), **kw)
    dcols = rng.standard_normal(cols.shape)
    dx = ic.col2im(dcols, x.shape, (3, 2), **kw)
    _check(dx, lambda: float(np.sum(ic.im2col(x, (3, 2), **kw) * dcols)), x)


# --- drop-in API ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pad", "stride", "f"), [(0, 1, 3), (0, 2, 2), (1, 2, 3), (2, 1, 2)])
def test_dropin_conv_gradients(pad, stride, f):
    rng = np.random.default_rng(19)
    X = rng.standard_normal((2, 5, 5, 2))
    W = rng.standard_normal((f, f, 2, 3))
    b = rng.standard_normal((1, 1, 1, 3))
    Z, cache = ic.forward(X, W, b, pad, stride, None)
    dZ = rng.standard_normal(Z.shape)
    dX, dW, db = ic.backward(dZ, cache)

    def loss():
        return float(np.sum(ic.forward(X, W, b, pad, stride, None)[0] * dZ))

    _check(dX, loss, X)
    _check(dW, loss, W)
    _check(db, loss, b)


@pytest.mark.parametrize(("pad", "stride", "f"), [(0, 1, 2), (1, 2, 3), (2, 1, 3), (1, 3, 2)])
@pytest.mark.parametrize("mode", ["max", "average"])
def test_dropin_pool_gradients(pad, stride, f, mode):
    rng = np.random.default_rng(23)
    # tie-free and all >= 1: the zero padding never wins or ties a max, a small step changes no argmax
    X = tie_free((2, 5, 6, 2), rng)
    X += 1.0 - X.min()
    fwd_mode = {"max": "maxpool", "average": "avepool"}[mode]
    A, cache = ic.forward(X, None, None, pad, stride, f, mode=fwd_mode)
    dA = rng.standard_normal(A.shape)
    dX = ic.pool_backward(dA, cache, mode=mode)

    def loss():
        return float(np.sum(ic.forward(X, None, None, pad, stride, f, mode=fwd_mode)[0] * dA))

    _check(dX, loss, X)
