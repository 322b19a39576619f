"""Central-difference gradient checks (float64) for the 1-D and 3-D layers, adaptive pooling and unfold / fold.

conv1d / conv3d (per-side padding, 'same' with an even kernel, stride, dilation, groups, depthwise with a channel
multiplier, more input channels than the few-channel kernels take, channels-first), conv_transpose1d / 3d
(stride, output_padding, dilation, groups), max_pool1d / 3d (dilation, ceil_mode; tie-free inputs, so an eps step
never changes a winner), avg_pool1d / 3d (ceil_mode, count_include_pad, divisor_override), adaptive average and
max pooling at 1, 2 and 3 spatial axes on the general path (output sizes that do not divide the input, or exceed
it), and unfold / fold and im2col / col2im, each the other's gradient. The loss is ``L = sum(out * dout)`` for a
random ``dout``, whose gradient is what ``*_backward(dout, cache)`` returns.
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


def channels_first(options: dict) -> bool:
    return options.get("data_format", "N_C")[1] == "C"


CONV_CASES = {  # name: (layer, x shape, w shape, options); shapes in the layout of data_format (channels-last)
    "1d-dilated-strided-sides": ("conv1d", (2, 11, 3), (3, 3, 2), dict(stride=2, dilation=2, padding=((2, 1),))),
    "1d-same-even-kernel": ("conv1d", (2, 7, 2), (4, 2, 3), dict(padding="same", dilation=(2,))),
    "1d-grouped": ("conv1d", (1, 9, 6), (3, 2, 6), dict(groups=3, stride=(2,), padding=1)),
    "1d-depthwise-multiplier-2": ("conv1d", (2, 8, 3), (3, 1, 6), dict(groups=3, padding="same")),
    "1d-eight-channels": ("conv1d", (2, 9, 8), (3, 8, 3), dict(stride=2, padding=1, dilation=2)),
    "1d-ncw-valid": ("conv1d", (2, 3, 8), (4, 3, 3), dict(padding="valid", stride=3, data_format="NCW")),
    "3d-sides-grouped": (
        "conv3d",
        (1, 4, 3, 4, 4),
        (2, 2, 2, 2, 4),
        dict(padding=((1, 0), (0, 1), (1, 1)), stride=(1, 2, 1), groups=2),
    ),
    "3d-dilated-same": ("conv3d", (1, 4, 4, 3, 2), (2, 1, 2, 2, 2), dict(padding="same", dilation=(1, 2, 2))),
    "3d-depthwise": ("conv3d", (1, 3, 4, 3, 2), (3, 2, 2, 1, 4), dict(groups=2, padding=1, stride=(2, 1, 1))),
    "3d-seven-channels": ("conv3d", (1, 3, 3, 4, 7), (2, 2, 2, 7, 2), dict(padding=(1, 0, 1))),
    "3d-ncdhw-dilated": ("conv3d", (1, 2, 4, 3, 4), (3, 2, 2, 1, 2), dict(dilation=(2, 1, 2), data_format="NCDHW")),
    "3d-ncdhw-grouped": (
        "conv3d",
        (2, 4, 3, 3, 3),
        (4, 2, 2, 2, 2),
        dict(groups=2, stride=2, padding=1, data_format="NCDHW"),
    ),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv_gradients(name):
    layer, x_shape, w_shape, options = CONV_CASES[name]
    forward, backward = getattr(ic, f"{layer}_forward"), getattr(ic, f"{layer}_backward")
    rng = np.random.default_rng(list(CONV_CASES).index(name))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0] if channels_first(options) else w_shape[-1])
    out, cache = forward(x, w, b, **options)
    if options.get("padding") == "same":
        spatial = slice(2, None) if channels_first(options) else slice(1, -1)
        assert out.shape[spatial] == x.shape[spatial]
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape

    def loss():
        return float(np.sum(forward(x, w, b, **options)[0] * dout))

    check(dx, loss, x)
    check(dw, loss, w)
    check(db, loss, b)


TRANSPOSE_CASES = {  # name: (layer, x shape, w shape, options)
    "1d-stride2-outpad1-groups2": (
        "conv_transpose1d",
        (2, 4, 4),
        (3, 3, 4),
        dict(stride=2, padding=1, output_padding=1, groups=2),
    ),
    "1d-dilated-outpad-below-dilation": (
        "conv_transpose1d",
        (2, 3, 2),
        (3, 2, 2),
        dict(stride=1, output_padding=1, dilation=3),
    ),
    "1d-ncw-depthwise": (
        "conv_transpose1d",
        (1, 3, 4),
        (3, 2, 2),
        dict(stride=3, groups=3, padding=1, output_padding=2, data_format="NCW"),
    ),
    "3d-outpad-dilated": (
        "conv_transpose3d",
        (1, 2, 2, 2, 2),
        (2, 1, 2, 1, 2),
        dict(stride=2, output_padding=(1, 0, 1), dilation=(1, 2, 1)),
    ),
    "3d-ncdhw-grouped": (
        "conv_transpose3d",
        (1, 4, 2, 3, 2),
        (4, 1, 2, 2, 2),
        dict(stride=(2, 1, 2), padding=(0, 1, 1), groups=2, data_format="NCDHW"),
    ),
    "3d-seven-channels": ("conv_transpose3d", (1, 2, 2, 2, 2), (2, 2, 2, 7, 2), dict(stride=(1, 2, 1), padding=1)),
}


@pytest.mark.parametrize("name", list(TRANSPOSE_CASES))
def test_conv_transpose_gradients(name):
    layer, x_shape, w_shape, options = TRANSPOSE_CASES[name]
    forward, backward = getattr(ic, f"{layer}_forward"), getattr(ic, f"{layer}_backward")
    rng = np.random.default_rng(len(name))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    c_out = (w_shape[1] if channels_first(options) else w_shape[-2]) * options.get("groups", 1)
    b = rng.standard_normal(c_out)
    out, cache = forward(x, w, b, **options)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape

    def loss():
        return float(np.sum(forward(x, w, b, **options)[0] * dout))

    check(dx, loss, x)
    check(dw, loss, w)
    check(db, loss, b)


POOL_CASES = {  # name: (layer, x shape, kernel size or output size, options)
    "max1d-dilated-ceil": ("max_pool1d", (2, 10, 2), 3, dict(stride=2, padding=1, dilation=2, ceil_mode=True)),
    "max1d-ncw-overlapping": ("max_pool1d", (2, 3, 9), 4, dict(stride=1, padding=2, data_format="NCW")),
    "max3d-ceil": ("max_pool3d", (1, 4, 5, 3, 2), (2, 3, 2), dict(stride=(2, 2, 1), padding=(1, 1, 0), ceil_mode=True)),
    "max3d-ncdhw-dilated": (
        "max_pool3d",
        (1, 2, 5, 4, 5),
        2,
        dict(stride=(1, 2, 2), dilation=(2, 1, 2), ceil_mode=True, data_format="NCDHW"),
    ),
    "avg1d-ceil": ("avg_pool1d", (2, 9, 3), 3, dict(stride=2, padding=1, ceil_mode=True)),
    "avg1d-ncw-exclude-pad": (
        "avg_pool1d",
        (2, 2, 8),
        4,
        dict(stride=3, padding=2, ceil_mode=True, count_include_pad=False, data_format="NCW"),
    ),
    "avg3d-divisor-override": ("avg_pool3d", (1, 4, 3, 5, 2), 3, dict(stride=2, padding=1, divisor_override=4)),
    "avg3d-ncdhw-exclude-pad": (
        "avg_pool3d",
        (1, 2, 5, 4, 3),
        (3, 2, 2),
        dict(stride=(2, 1, 2), padding=(1, 1, 0), ceil_mode=True, count_include_pad=False, data_format="NCDHW"),
    ),
    "adaptive-avg1d": ("adaptive_avg_pool1d", (2, 7, 2), 3, {}),
    "adaptive-avg1d-larger": ("adaptive_avg_pool1d", (2, 2, 4), (7,), dict(data_format="NCW")),
    "adaptive-avg2d": ("adaptive_avg_pool2d", (2, 5, 7, 2), (3, 4), {}),
    "adaptive-avg2d-nchw-none": ("adaptive_avg_pool2d", (1, 3, 5, 6), (None, 4), dict(data_format="NCHW")),
    "adaptive-avg3d": ("adaptive_avg_pool3d", (1, 2, 5, 3, 4), (2, None, 3), dict(data_format="NCDHW")),
    "adaptive-avg3d-larger": ("adaptive_avg_pool3d", (1, 3, 2, 4, 2), (2, 5, 3), {}),
    "adaptive-max1d": ("adaptive_max_pool1d", (2, 9, 2), 4, {}),
    "adaptive-max1d-larger": ("adaptive_max_pool1d", (1, 3, 4), 6, dict(data_format="NCW")),
    "adaptive-max2d": ("adaptive_max_pool2d", (2, 5, 7, 2), (3, 4), {}),
    "adaptive-max2d-nchw-larger": ("adaptive_max_pool2d", (1, 2, 3, 5), (5, 3), dict(data_format="NCHW")),
    "adaptive-max3d": ("adaptive_max_pool3d", (1, 4, 3, 5, 2), (3, 2, None), {}),
    "adaptive-max3d-ncdhw": ("adaptive_max_pool3d", (1, 2, 5, 4, 3), (3, 3, 2), dict(data_format="NCDHW")),
}


@pytest.mark.parametrize("name", list(POOL_CASES))
def test_pool_gradients(name):
    layer, x_shape, size, options = POOL_CASES[name]
    forward, backward = getattr(ic, f"{layer}_forward"), getattr(ic, f"{layer}_backward")
    if layer.startswith("adaptive"):  # the general path: some output size does not divide its axis
        spatial = x_shape[2:] if channels_first(options) else x_shape[1:-1]
        sizes = (size,) * len(spatial) if isinstance(size, int) else size
        assert any(o is not None and n % o for n, o in zip(spatial, sizes, strict=True))
    x = tie_free(x_shape, np.random.default_rng(list(POOL_CASES).index(name)))  # an eps step changes no winner
    out, cache = forward(x, size, **options)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx = backward(dout, cache)
    assert dx.shape == x.shape

    def loss():
        return float(np.sum(forward(x, size, **options)[0] * dout))

    check(dx, loss, x)
    if "max" in layer:  # each window's gradient lands on one position
        np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-12)


COLUMN_CASES = [  # (x shape, kernel, dilation, padding, stride): unfold's channels-first x, PyTorch's order
    ((2, 3, 9), 3, 2, 1, 2),
    ((1, 2, 5, 6), (2, 3), (2, 1), (1, 0), (1, 2)),
    ((1, 2, 4, 5, 3), (2, 2, 3), (1, 2, 1), (1, 0, 1), (2, 1, 1)),
]


@pytest.mark.parametrize(("x_shape", "kernel", "dilation", "padding", "stride"), COLUMN_CASES)
def test_unfold_and_fold_are_each_others_gradient(x_shape, kernel, dilation, padding, stride):
    rng = np.random.default_rng(len(x_shape))
    x = rng.standard_normal(x_shape)
    geometry = (kernel, dilation, padding, stride)
    cols = ic.unfold(x, *geometry)
    dcols = rng.standard_normal(cols.shape)
    check(ic.fold(dcols, x_shape[2:], *geometry), lambda: float(np.sum(ic.unfold(x, *geometry) * dcols)), x)
    dx = rng.standard_normal(x_shape)
    check(ic.unfold(dx, *geometry), lambda: float(np.sum(ic.fold(cols, x_shape[2:], *geometry) * dx)), cols)


@pytest.mark.parametrize(("x_shape", "kernel", "dilation", "padding", "stride"), COLUMN_CASES)
def test_im2col_and_col2im_are_each_others_gradient(x_shape, kernel, dilation, padding, stride):
    rng = np.random.default_rng(len(x_shape))
    x = np.ascontiguousarray(np.moveaxis(rng.standard_normal(x_shape), 1, -1))  # channels-last
    nd = x.ndim - 2
    pairs = tuple((p, p + 1) for p in np.broadcast_to(padding, nd))  # one more at the end of each axis
    geometry = dict(stride=stride, padding=pairs, dilation=dilation)
    cols = ic.im2col(x, kernel, **geometry)
    dcols = rng.standard_normal(cols.shape)
    check(
        ic.col2im(dcols, x.shape, kernel, **geometry),
        lambda: float(np.sum(ic.im2col(x, kernel, **geometry) * dcols)),
        x,
    )
    dx = rng.standard_normal(x.shape)
    check(
        ic.im2col(dx, kernel, **geometry),
        lambda: float(np.sum(ic.col2im(cols, x.shape, kernel, **geometry) * dx)),
        cols,
    )
