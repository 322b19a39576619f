"""Central-difference gradient checks (float64) for the general options (dilation, groups, padding modes, NCHW).

Dilated, grouped and depthwise convolution, 'same' padding with an even kernel, NCHW, transposed convolution,
average pooling with ceil_mode / count_include_pad / divisor_override, and dilated ceil-mode max pooling. The
loss is ``L = sum(out * dout)`` for a random ``dout``, whose gradient is what ``*_backward(dout, cache)`` returns.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import numerical_gradient, tie_free

import im2col_cnn as ic

RTOL, ATOL = 1e-6, 1e-7


def check(analytic, loss, x):
    expected = numerical_gradient(loss, x)
    assert np.abs(expected).max() > 1e-3  # the check is not vacuous
    np.testing.assert_allclose(analytic, expected, rtol=RTOL, atol=ATOL)


def check_layer(fwd, bwd, x, w, b, **kw):
    """Forward once, backward with a random dout, and check dx, dw and db against central differences."""
    out, cache = fwd(x, w, b, **kw)
    dout = np.random.default_rng(99).standard_normal(out.shape)
    dx, dw, db = bwd(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape

    def loss():
        return float(np.sum(fwd(x, w, b, **kw)[0] * dout))

    check(dx, loss, x)
    check(dw, loss, w)
    check(db, loss, b)
    return out


CONV_CASES = {  # name: (x shape, w shape, options); shapes in the layout of data_format (default NHWC)
    "dilated": ((2, 7, 8, 2), (3, 2, 2, 3), dict(dilation=(2, 3), stride=(1, 2), padding=1)),
    "dilated-asymmetric-padding": ((1, 6, 6, 2), (2, 3, 2, 2), dict(dilation=2, padding=((2, 0), (1, 3)))),
    "grouped": ((2, 5, 6, 4), (3, 3, 2, 6), dict(groups=2, stride=2, padding=(1, 0))),
    "grouped-3-dilated": ((1, 7, 6, 6), (2, 2, 2, 3), dict(groups=3, dilation=(1, 2))),
    "depthwise": ((2, 5, 6, 3), (3, 3, 1, 3), dict(groups=3, padding=1)),
    "depthwise-multiplier-2": ((2, 6, 5, 3), (3, 2, 1, 6), dict(groups=3, stride=(2, 1), padding=1)),
    "same-even-kernel": ((2, 5, 6, 2), (2, 4, 2, 3), dict(padding="same")),
    "same-even-kernel-dilated": ((1, 6, 5, 2), (4, 2, 2, 2), dict(padding="same", dilation=(1, 3))),
    "valid": ((1, 5, 5, 2), (2, 3, 2, 2), dict(padding="valid", stride=2)),
    "nchw": ((2, 3, 6, 5), (4, 3, 3, 2), dict(data_format="NCHW", stride=2, padding=((1, 0), (2, 1)))),
    "nchw-grouped-dilated": ((1, 4, 7, 6), (6, 2, 2, 3), dict(data_format="NCHW", groups=2, dilation=2, padding=1)),
    "nchw-depthwise-same": ((2, 2, 5, 5), (4, 1, 3, 2), dict(data_format="NCHW", groups=2, padding="same")),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_gradients(name):
    x_shape, w_shape, kw = CONV_CASES[name]
    rng = np.random.default_rng(list(CONV_CASES).index(name))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    c_out = w_shape[0] if kw.get("data_format") == "NCHW" else w_shape[3]
    out = check_layer(ic.conv2d_forward, ic.conv2d_backward, x, w, rng.standard_normal(c_out), **kw)
    if kw.get("padding") == "same":
        spatial = slice(2, 4) if kw.get("data_format") == "NCHW" else slice(1, 3)
        assert out.shape[spatial] == x.shape[spatial]


TRANSPOSE_CASES = {  # name: (x shape, w shape, options)
    "stride2-outpad1-dil2-groups2": (
        (2, 3, 4, 4),
        (3, 2, 3, 4),
        dict(stride=2, output_padding=1, dilation=2, groups=2, padding=1),
    ),
    "nchw-stride2-outpad1-dil2-groups2": (
        (2, 4, 3, 4),
        (4, 3, 3, 2),
        dict(stride=2, output_padding=1, dilation=2, groups=2, padding=(1, 0), data_format="NCHW"),
    ),
    "asymmetric": ((1, 3, 2, 2), (2, 3, 2, 2), dict(stride=(3, 1), output_padding=(2, 0), dilation=(1, 2))),
    "depthwise": ((2, 3, 3, 3), (3, 3, 2, 3), dict(stride=2, groups=3, padding=1, output_padding=1)),
}


@pytest.mark.parametrize("name", list(TRANSPOSE_CASES))
def test_conv_transpose2d_gradients(name):
    x_shape, w_shape, kw = TRANSPOSE_CASES[name]
    rng = np.random.default_rng(len(name))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    c_out = (w_shape[1] if kw.get("data_format") == "NCHW" else w_shape[2]) * kw.get("groups", 1)
    check_layer(ic.conv_transpose2d_forward, ic.conv_transpose2d_backward, x, w, rng.standard_normal(c_out), **kw)


AVG_OPTIONS = [
    dict(ceil_mode=True, count_include_pad=False),
    dict(ceil_mode=True, count_include_pad=True),
    dict(ceil_mode=True, count_include_pad=False, divisor_override=3),
    dict(ceil_mode=True, divisor_override=-2, data_format="NCHW"),
    dict(ceil_mode=True, count_include_pad=False, data_format="NCHW"),
]


@pytest.mark.parametrize("opts", AVG_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 2, 1), ((3, 2), (2, 3), (1, 1)), (2, None, 0)])
def test_avg_pool2d_gradient(kernel, stride, padding, opts):
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 7) if opts.get("data_format") == "NCHW" else (2, 6, 7, 3))
    out, cache = ic.avg_pool2d_forward(x, kernel, stride=stride, padding=padding, **opts)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    dx = ic.avg_pool2d_backward(dout, cache)

    def loss():
        return float(np.sum(ic.avg_pool2d_forward(x, kernel, stride=stride, padding=padding, **opts)[0] * dout))

    check(dx, loss, x)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [(3, 2, 1, 2), ((2, 3), (2, 1), (1, 0), (3, 2)), (2, 3, 0, 2), (3, None, 1, (1, 2))],
)
def test_max_pool2d_gradient_dilated_ceil_mode(kernel, stride, padding, dilation, data_format):
    shape = (2, 3, 7, 8) if data_format == "NCHW" else (2, 7, 8, 3)
    x = tie_free(shape, np.random.default_rng(8))  # an eps step never changes an argmax
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=True, data_format=data_format)
    out, cache = ic.max_pool2d_forward(x, kernel, **kw)
    dout = np.random.default_rng(9).standard_normal(out.shape)
    dx = ic.max_pool2d_backward(dout, cache)

    def loss():
        return float(np.sum(ic.max_pool2d_forward(x, kernel, **kw)[0] * dout))

    check(dx, loss, x)
    np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-12)  # each window's gradient lands on one position
