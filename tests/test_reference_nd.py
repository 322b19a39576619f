"""The rank-generic reference loops (1, 2 and 3 spatial axes) checked against themselves and the 2-D loops.

At 2-D, the generic loops (``conv_forward_nd``, ``max_pool_forward_nd``, ...) must agree with the separately
written 2-D reference functions; a 1-D layer must equal the 2-D one on a unit height (and a 2-D one the 3-D one
on a unit depth); central differences check the new backward functions; adaptive pooling with
the output size dividing the input equals regular pooling; fold / col2im are the adjoints of unfold / im2col;
bad data_format, dout and cache arguments raise ValueError.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from _helpers import numerical_gradient, tie_free

import reference as ref
from reference._nd import FORMATS
from reference.adaptive_nd import adaptive_window
from reference.avg_pool_nd import avg_pool_backward_nd, avg_pool_forward_nd
from reference.conv_nd import conv_backward_nd, conv_forward_nd
from reference.max_pool_nd import max_pool_backward_nd, max_pool_forward_nd
from reference.transpose_nd import conv_transpose_backward_nd, conv_transpose_forward_nd


def close(actual, expected) -> None:
    assert np.shape(actual) == np.shape(expected)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def to_first(a: np.ndarray) -> np.ndarray:
    """A channels-last activation (N, *spatial, C) as channels-first (N, C, *spatial)."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def weight_first(w: np.ndarray) -> np.ndarray:
    """A channels-last weight (*k, b, a) in PyTorch's layout (a, b, *k)."""
    nd = w.ndim - 2
    return np.ascontiguousarray(w.transpose(nd + 1, nd, *range(nd)))


def layer_args(kind: str, x_shape, second, layout: str, rng, groups: int = 1) -> tuple:
    """Random arguments of a layer call, shapes given channels-last, returned in ``layout``.

    kind 'conv' / 'transpose': (x, w, b) with ``second`` the channels-last weight shape; 'max': integer-valued x
    (many ties) with a NaN, then ``second`` (the kernel size or output size); 'avg': standard normal x, ``second``.
    """
    first = layout in ("NCW", "NCHW", "NCDHW")
    if kind == "max":
        x = rng.integers(-2, 3, size=x_shape).astype(np.float64)
        x.flat[x.size // 3] = np.nan
    else:
        x = rng.standard_normal(x_shape)
    x = to_first(x) if first else x
    if kind in ("max", "avg"):
        return x, second
    w = rng.standard_normal(second)
    c_out = second[-1] if kind == "conv" else second[-2] * groups
    return x, weight_first(w) if first else w, rng.standard_normal(c_out)


def calls(name: str, args: tuple, options: dict) -> tuple:
    """The (forward, backward, args, kwargs) of the reference layer ``name`` (e.g. 'conv1d') for ``same_layer``."""
    return getattr(ref, f"{name}_forward"), getattr(ref, f"{name}_backward"), args, options


def same_layer(a: tuple, b: tuple, lift=lambda r: r, lift_w=lambda r: r) -> None:
    """Two layer calls ``(forward, backward, args, kwargs)``; b's results must be a's, lifted.

    ``lift`` maps a's activations (out, indices, dout, dx) onto b's, ``lift_w`` a's weight gradient onto b's.
    """
    (forward_a, backward_a, args_a, kwargs_a), (forward_b, backward_b, args_b, kwargs_b) = a, b
    out_a, cache_a = forward_a(*args_a, **kwargs_a)
    out_b, cache_b = forward_b(*args_b, **kwargs_b)
    close(lift(out_a), out_b)
    if getattr(cache_a, "indices", None) is not None:
        assert cache_a.indices.dtype == np.int64
        np.testing.assert_array_equal(lift(cache_a.indices), cache_b.indices)
    dout = np.random.default_rng(0).standard_normal(out_a.shape)
    grads_a, grads_b = backward_a(dout, cache_a), backward_b(lift(dout), cache_b)
    if isinstance(grads_a, np.ndarray):
        grads_a, grads_b = (grads_a,), (grads_b,)
    lifts = (lift, lift_w, lambda r: r)[: len(grads_a)]  # dx, then dw and db
    for grad_a, grad_b, to_b in zip(grads_a, grads_b, lifts, strict=True):
        close(to_b(grad_a), grad_b)


# ------------------------------------------------------------------ the generic loops at 2-D vs the 2-D loops

LOOPS = {  # kind: (generic forward, generic backward, 2-D forward, 2-D backward)
    "conv": (conv_forward_nd, conv_backward_nd, ref.conv2d_forward, ref.conv2d_backward),
    "transpose": (
        conv_transpose_forward_nd,
        conv_transpose_backward_nd,
        ref.conv_transpose2d_forward,
        ref.conv_transpose2d_backward,
    ),
    "max": (max_pool_forward_nd, max_pool_backward_nd, ref.max_pool2d_forward, ref.max_pool2d_backward),
    "avg": (avg_pool_forward_nd, avg_pool_backward_nd, ref.avg_pool2d_forward, ref.avg_pool2d_backward),
}
GENERIC_2D = [  # (kind, x shape NHWC, weight shape NHWC or kernel size, options)
    ("conv", (2, 6, 5, 4), (3, 2, 2, 6), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ("conv", (1, 5, 6, 3), (3, 3, 1, 6), dict(padding="same", groups=3, dilation=2)),
    ("conv", (2, 5, 5, 2), (2, 3, 2, 3), dict(padding=((1, 2), (0, 1)), stride=2)),
    ("conv", (1, 4, 6, 2), (1, 2, 2, 2), dict(padding="valid")),
    ("transpose", (2, 3, 4, 4), (3, 3, 3, 4), dict(stride=2, padding=1, output_padding=1, dilation=2, groups=2)),
    ("transpose", (1, 3, 2, 2), (2, 3, 2, 2), dict(stride=(3, 1), output_padding=(2, 0), dilation=(1, 2))),
    ("transpose", (2, 3, 3, 3), (3, 2, 1, 3), dict(stride=(1, 2), groups=3, padding=(1, 0))),
    ("max", (2, 7, 6, 3), 3, dict(stride=2, padding=1, dilation=2)),
    ("max", (2, 7, 6, 3), (2, 3), dict(stride=(2, 2), padding=(1, 1), ceil_mode=True)),
    ("max", (2, 7, 6, 3), 2, dict(stride=3, padding=1, dilation=(2, 1), ceil_mode=True)),
    ("max", (1, 5, 6, 2), (3, 2), dict(stride=1)),
    ("avg", (2, 7, 6, 3), 3, dict(stride=2, padding=1, ceil_mode=True)),
    ("avg", (2, 7, 6, 3), (3, 2), dict(stride=(2, 3), padding=(1, 1), ceil_mode=True, count_include_pad=False)),
    ("avg", (2, 7, 6, 3), 2, dict(padding=1, divisor_override=3, ceil_mode=True)),
    ("avg", (1, 5, 6, 2), 3, dict(stride=1, padding=1, count_include_pad=False)),
]


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("kind", "x_shape", "second", "options"), GENERIC_2D)
def test_generic_loops_at_2d_match_the_2d_loops(kind, x_shape, second, options, layout):
    rng = np.random.default_rng(len(str(options)))
    args = layer_args(kind, x_shape, second, layout, rng, options.get("groups", 1))
    generic_forward, generic_backward, forward_2d, backward_2d = LOOPS[kind]
    kwargs = dict(data_format=layout, **options)
    same_layer((generic_forward, generic_backward, args, kwargs), (forward_2d, backward_2d, args, kwargs))


# -------------------------------------------------------- 1-D == 2-D with a unit height; 3-D == 2-D with unit depth


def with_unit_axis(options: dict, ndim: int) -> dict:
    """An ``ndim``-D call's options for the same call with a unit axis in front: stride / dilation get a 1 in front,
    padding / output_padding a 0 (a (0, 0) pair for per-side padding)."""
    lifted = dict(options)
    for key, unit in (("stride", 1), ("dilation", 1), ("padding", 0), ("output_padding", 0)):
        if key in options:
            value = (options[key],) * ndim if np.ndim(options[key]) == 0 else tuple(options[key])
            lifted[key] = ((unit, unit) if np.ndim(value[0]) else unit, *value)
    return lifted


UNIT_AXIS = [  # (layer, kind, x shape channels-last, w shape channels-last or kernel / output size, options)
    ("conv1d", "conv", (2, 9, 4), (3, 2, 6), dict(stride=2, dilation=2, groups=2, padding=((2, 1),))),
    ("conv_transpose1d", "transpose", (2, 4, 4), (3, 3, 4), dict(stride=3, padding=1, output_padding=2, dilation=2)),
    ("max_pool1d", "max", (2, 11, 3), 3, dict(stride=2, padding=1, dilation=2, ceil_mode=True)),
    ("avg_pool1d", "avg", (2, 11, 3), 4, dict(stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    ("adaptive_max_pool1d", "max", (2, 11, 3), 4, {}),
    ("adaptive_avg_pool1d", "avg", (2, 11, 3), 4, {}),
    ("conv2d", "conv", (2, 6, 5, 4), (3, 2, 2, 6), dict(stride=(2, 1), padding=((1, 2), (0, 1)), groups=2)),
    ("conv_transpose2d", "transpose", (2, 3, 4, 4), (2, 3, 3, 4), dict(stride=2, output_padding=1, groups=2)),
    ("max_pool2d", "max", (2, 6, 5, 4), (3, 2), dict(stride=2, padding=1, dilation=(1, 2), ceil_mode=True)),
    ("avg_pool2d", "avg", (2, 6, 5, 4), 3, dict(stride=2, padding=1, ceil_mode=True, divisor_override=5)),
    ("adaptive_max_pool2d", "max", (2, 6, 5, 4), (4, 3), {}),
    ("adaptive_avg_pool2d", "avg", (2, 6, 5, 4), (4, 3), {}),
]


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize(("layer", "kind", "x_shape", "second", "options"), UNIT_AXIS)
def test_a_layer_is_the_next_ranks_layer_on_a_unit_axis(layer, kind, x_shape, second, options, first):
    """A 1-D layer equals the 2-D one on a unit height; a 2-D layer (the 2-D loops) the 3-D one on a unit depth."""
    ndim = len(x_shape) - 2
    layout, layout_up = FORMATS[ndim][first], FORMATS[ndim + 1][first]
    args = layer_args(kind, x_shape, second, layout, np.random.default_rng(ndim), options.get("groups", 1))

    def lift(a):  # the unit axis in front of the spatial axes
        return np.expand_dims(a, 2 if first else 1)

    def lift_w(w):  # (*k, b, a) -> (1, *k, b, a); (a, b, *k) -> (a, b, 1, *k)
        return np.expand_dims(w, 2 if first else 0)

    if kind in ("conv", "transpose"):
        args_up = (lift(args[0]), lift_w(args[1]), args[2])
    else:  # the kernel gets a unit axis; adaptive pooling's None keeps the unit axis
        size = (second,) * ndim if np.ndim(second) == 0 else second
        args_up = (lift(args[0]), (None if layer.startswith("adaptive") else 1, *size))
    options_up = with_unit_axis(options, ndim) | {"data_format": layout_up}
    layer_up = layer.replace(f"{ndim}d", f"{ndim + 1}d")
    same_layer(
        calls(layer, args, options | {"data_format": layout}), calls(layer_up, args_up, options_up), lift, lift_w
    )


def test_unfold_and_im2col_1d_are_their_2d_versions_with_a_unit_height():
    rng = np.random.default_rng(44)
    x = rng.standard_normal((2, 3, 10))  # (N, C, W)
    cols = ref.unfold(x, 3, 2, 1, 2)
    np.testing.assert_array_equal(cols, ref.unfold(x[:, :, None], (1, 3), (1, 2), (0, 1), (1, 2)))
    dcols = rng.standard_normal(cols.shape)
    folded2 = ref.fold(dcols, (1, 10), (1, 3), (1, 2), (0, 1), (1, 2))
    close(ref.fold(dcols, (10,), 3, 2, 1, 2), folded2[:, :, 0])

    x = rng.standard_normal((2, 10, 3))  # (N, W, C)
    geometry, geometry2 = dict(stride=2, padding=1, dilation=2), dict(stride=(1, 2), padding=(0, 1), dilation=(1, 2))
    cols = ref.im2col(x, 3, **geometry)
    np.testing.assert_array_equal(cols, ref.im2col(x[:, None], (1, 3), **geometry2))
    dcols = rng.standard_normal(cols.shape)
    close(ref.col2im(dcols, x.shape, 3, **geometry), ref.col2im(dcols, (2, 1, 10, 3), (1, 3), **geometry2)[:, 0])


# ---------------------------------------------------------------------------------- central differences

GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-7


def check_gradient(analytic: np.ndarray, loss, x: np.ndarray) -> None:
    expected = numerical_gradient(loss, x)
    assert np.abs(expected).max() > 1e-3  # the check is not vacuous
    np.testing.assert_allclose(analytic, expected, rtol=GRAD_RTOL, atol=GRAD_ATOL)


CONV_GRADIENTS = [  # (layer, x shape, w shape, options); shapes in the options' layout
    ("conv1d", (2, 7, 4), (4, 2, 4), dict(padding="same", dilation=2, groups=2)),  # 'same' with an even kernel
    ("conv1d", (2, 3, 8), (2, 3, 3), dict(stride=3, padding=((2, 1),), data_format="NCW")),
    ("conv3d", (1, 3, 4, 3, 4), (2, 2, 2, 2, 2), dict(padding=((1, 0), (0, 1), (1, 1)), stride=(1, 2, 1), groups=2)),
    ("conv3d", (1, 2, 4, 3, 4), (3, 2, 2, 1, 2), dict(dilation=(2, 1, 2), data_format="NCDHW")),
    ("conv_transpose1d", (2, 4, 4), (3, 3, 4), dict(stride=2, padding=1, output_padding=1, groups=2)),
    (
        "conv_transpose3d",
        (1, 2, 2, 3, 2),
        (2, 2, 2, 2, 3),
        dict(stride=(2, 1, 2), padding=(0, 1, 1), data_format="NCDHW"),
    ),
    (
        "conv_transpose3d",
        (1, 2, 2, 2, 2),
        (2, 1, 2, 1, 2),
        dict(stride=2, output_padding=(1, 0, 1), dilation=(1, 2, 1)),
    ),
]


@pytest.mark.parametrize(("layer", "x_shape", "w_shape", "options"), CONV_GRADIENTS)
def test_conv_layer_gradients(layer, x_shape, w_shape, options):
    forward, backward = getattr(ref, f"{layer}_forward"), getattr(ref, f"{layer}_backward")
    rng = np.random.default_rng(len(str(options)))
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out = forward(x, w, **options)[0]
    b = rng.standard_normal(out.shape[-1 if options.get("data_format", "NWC")[-1] == "C" else 1])
    out, cache = forward(x, w, b, **options)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape

    def loss():
        return float(np.sum(forward(x, w, b, **options)[0] * dout))

    check_gradient(dx, loss, x)
    check_gradient(dw, loss, w)
    check_gradient(db, loss, b)


POOL_GRADIENTS = [  # (layer, x shape, kernel size or output size, options)
    ("max_pool1d", (2, 9, 2), 3, dict(stride=2, padding=1, dilation=2, ceil_mode=True)),
    (
        "max_pool3d",
        (1, 2, 4, 5, 3),
        (2, 3, 2),
        dict(stride=(2, 2, 1), padding=(1, 1, 0), ceil_mode=True, data_format="NCDHW"),
    ),
    ("avg_pool1d", (2, 2, 8), 3, dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False, data_format="NCW")),
    ("avg_pool3d", (1, 4, 3, 5, 2), 3, dict(stride=2, padding=1, ceil_mode=True, divisor_override=4)),
    ("adaptive_avg_pool1d", (2, 7, 2), 3, {}),
    ("adaptive_avg_pool3d", (1, 2, 5, 3, 4), (2, None, 3), dict(data_format="NCDHW")),
    ("adaptive_max_pool2d", (2, 5, 7, 2), (3, 4), {}),
    ("adaptive_max_pool3d", (1, 4, 3, 5, 2), (3, 2, None), {}),
]


@pytest.mark.parametrize(("layer", "x_shape", "size", "options"), POOL_GRADIENTS)
def test_pool_layer_gradients(layer, x_shape, size, options):
    forward, backward = getattr(ref, f"{layer}_forward"), getattr(ref, f"{layer}_backward")
    x = tie_free(x_shape, np.random.default_rng(len(x_shape)))  # an eps step never changes a winner
    out, cache = forward(x, size, **options)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx = backward(dout, cache)

    def loss():
        return float(np.sum(forward(x, size, **options)[0] * dout))

    check_gradient(dx, loss, x)


# ------------------------------------------------------------------------ adaptive == regular pooling


@pytest.mark.parametrize(
    ("ndim", "x_shape", "output_size", "kernel"),
    [(1, (2, 9, 3), 3, 3), (2, (2, 6, 8, 2), (3, None), (2, 1)), (3, (1, 4, 6, 2, 2), (2, 3, 1), (2, 2, 2))],
)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pooling_with_a_dividing_output_size_is_regular_pooling(kind, ndim, x_shape, output_size, kernel):
    x = np.random.default_rng(ndim).integers(-2, 3, size=x_shape).astype(np.float64)  # ties
    out, cache = getattr(ref, f"adaptive_{kind}_pool{ndim}d_forward")(x, output_size)
    expected, expected_cache = getattr(ref, f"{kind}_pool{ndim}d_forward")(x, kernel)
    close(out, expected)
    if kind == "max":
        np.testing.assert_array_equal(cache.indices, expected_cache.indices)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    close(
        getattr(ref, f"adaptive_{kind}_pool{ndim}d_backward")(dout, cache),
        getattr(ref, f"{kind}_pool{ndim}d_backward")(dout, expected_cache),
    )


def test_adaptive_windows_are_pytorchs():
    assert [adaptive_window(i, 5, 3) for i in range(3)] == [(0, 2), (1, 4), (3, 5)]  # overlapping by one
    assert [adaptive_window(i, 3, 5) for i in range(5)] == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]  # O > L
    assert [adaptive_window(i, 7, 7) for i in range(7)] == [(i, i + 1) for i in range(7)]


# ------------------------------------------------------------------------------------------ adjoints


@pytest.mark.parametrize(
    ("x_shape", "geometry"),
    [
        ((2, 3, 9), (3, 2, 1, 2)),
        ((1, 2, 5, 6), ((2, 3), (2, 1), (1, 0), (1, 2))),
        ((1, 2, 4, 5, 3), ((2, 2, 3), (1, 2, 1), (1, 0, 1), (2, 1, 1))),
    ],
)
def test_fold_is_the_adjoint_of_unfold(x_shape, geometry):
    rng = np.random.default_rng(len(x_shape))
    x = rng.standard_normal(x_shape)
    cols = ref.unfold(x, *geometry)
    c = rng.standard_normal(cols.shape)
    folded = ref.fold(c, x_shape[2:], *geometry)
    assert folded.shape == x.shape
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, folded), rtol=1e-12)


@pytest.mark.parametrize(
    ("x_shape", "geometry"),
    [
        ((2, 9, 3), dict(kernel_size=3, stride=2, padding=1, dilation=2)),
        ((1, 4, 5, 3, 2), dict(kernel_size=(2, 2, 3), stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1))),
    ],
)
def test_col2im_is_the_adjoint_of_im2col_in_1d_and_3d(x_shape, geometry):
    rng = np.random.default_rng(len(x_shape))
    x = rng.standard_normal(x_shape)
    cols = ref.im2col(x, **geometry)
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, ref.col2im(c, x_shape, **geometry)), rtol=1e-12)


# -------------------------------------------------------------------------------------------- errors

X1, X2, X3 = np.ones((2, 6, 3)), np.ones((2, 5, 6, 3)), np.ones((1, 4, 5, 4, 2))
LAYERS = {  # label -> (layer, args, options, wrong data_format)
    "conv1d": ("conv1d", (X1, np.ones((2, 3, 4))), dict(padding=1), "NHWC"),
    "conv1d NCW": ("conv1d", (X1, np.ones((4, 6, 2))), dict(stride=2, data_format="NCW"), "NCHW"),
    "conv3d": ("conv3d", (X3, np.ones((2, 2, 2, 2, 3))), dict(padding="same"), "NCHW"),
    "conv_transpose1d": ("conv_transpose1d", (X1, np.ones((3, 2, 3))), dict(stride=2), "NDHWC"),
    "conv_transpose3d NCDHW": ("conv_transpose3d", (X3, np.ones((4, 2, 2, 2, 2))), dict(data_format="NCDHW"), "NWC"),
    "max_pool1d": ("max_pool1d", (X1, 2), dict(ceil_mode=True), "NCHW"),
    "max_pool3d": ("max_pool3d", (X3, 2), dict(padding=1), "NHWC"),
    "avg_pool1d NCW": ("avg_pool1d", (X1, 3), dict(stride=2, data_format="NCW"), "NWHC"),
    "avg_pool3d": ("avg_pool3d", (X3, 2), dict(divisor_override=3), "NWC"),
    "adaptive_avg_pool1d": ("adaptive_avg_pool1d", (X1, 4), {}, "NHWC"),
    "adaptive_avg_pool2d NCHW": ("adaptive_avg_pool2d", (X2, (2, None)), dict(data_format="NCHW"), "NCW"),
    "adaptive_max_pool2d": ("adaptive_max_pool2d", (X2, 3), {}, "NDHWC"),
    "adaptive_max_pool3d": ("adaptive_max_pool3d", (X3, (1, 2, 3)), {}, "NHWC"),
}


def _wrong_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shapes a mistaken dout could have: one axis off by one, a dimension missing or extra."""
    wrong = [tuple(s + (i == axis) for i, s in enumerate(shape)) for axis in range(len(shape))]
    return wrong + [shape[1:], (*shape, 1)]


@pytest.mark.parametrize("label", list(LAYERS))
def test_backward_rejects_a_wrong_dout(label):
    layer, args, options, _ = LAYERS[label]
    out, cache = getattr(ref, f"{layer}_forward")(*args, **options)
    for shape in _wrong_shapes(out.shape):
        expected = f"dout must have the forward output's shape {out.shape}, got {shape}"
        with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
            getattr(ref, f"{layer}_backward")(np.ones(shape), cache)
    getattr(ref, f"{layer}_backward")(np.ones(out.shape).tolist(), cache)  # the right shape (even a list) is fine


@pytest.mark.parametrize("label", list(LAYERS))
def test_forward_rejects_another_ranks_data_format(label):
    layer, args, options, wrong = LAYERS[label]
    ndim = int(re.search(r"(\d)d$", layer).group(1))
    names = {1: "'NWC' or 'NCW'", 2: "'NHWC' or 'NCHW'", 3: "'NDHWC' or 'NCDHW'"}[ndim]
    with pytest.raises(ValueError, match=re.escape(f"data_format must be {names}, got {wrong!r}")):
        getattr(ref, f"{layer}_forward")(*args, **(options | dict(data_format=wrong)))


def test_backward_rejects_another_ranks_cache():
    _, cache = ref.conv3d_forward(X3, np.ones((2, 2, 2, 2, 3)))
    with pytest.raises(ValueError, match="conv1d_backward needs the cache of a 1-D forward call"):
        ref.conv1d_backward(np.ones((1, 3, 4, 3, 3)), cache)
    _, cache = ref.max_pool1d_forward(X1, 2)
    with pytest.raises(ValueError, match="max_pool3d_backward needs the cache of a 3-D forward call"):
        ref.max_pool3d_backward(np.ones((2, 3, 3)), cache)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ref.conv1d_forward(X2, np.ones((2, 3, 4))), "x must have 3 dimensions"),
        (lambda: ref.conv3d_forward(X3, np.ones((2, 2, 3))), "w must have 5 dimensions"),
        (lambda: conv_forward_nd(X1, np.ones((2, 3, 4)), data_format="NCL"), "data_format must be one of"),
        (lambda: ref.conv1d_forward(X1, np.ones((2, 3, 4)), padding=(1, 2)), "padding must be an int, 1 ints"),
        (lambda: ref.conv1d_forward(X1, np.ones((2, 3, 4)), padding="same", stride=2), "needs stride 1"),
        (lambda: ref.conv3d_forward(X3, np.ones((2, 2, 2, 2, 3)), padding=-1), "padding must be >= 0"),
        (lambda: ref.conv1d_forward(X1, np.ones((2, 2, 4)), groups=2), "groups=2 must divide C_in=3"),
        (lambda: ref.conv_transpose1d_forward(X1, np.ones((3, 2, 3)), stride=2, output_padding=2), "output_padding"),
        (lambda: ref.max_pool1d_forward(X1, 2, padding=2), "at most half the kernel size"),
        (lambda: ref.avg_pool3d_forward(X3, 2, divisor_override=0), "divisor_override must be a nonzero int"),
        (lambda: ref.max_pool3d_forward(X3, (2, 2)), "kernel_size must be an int or a tuple of 3 ints"),
        (lambda: ref.adaptive_avg_pool2d_forward(X2, (2, 2, 2)), "output_size must be an int or 2 entries"),
        (lambda: ref.adaptive_max_pool1d_forward(X1, 0), "must be >= 1"),
        (lambda: ref.unfold(np.ones((2, 3)), 2), "x must be (N, C, *spatial)"),
        (lambda: ref.fold(np.ones((1, 4, 5)), (3, 3), 2), "cols has 5 columns, expected 4 windows"),
        (lambda: ref.fold(np.ones((1, 5, 4)), (3, 3), 2), "not a multiple of prod(kernel_size) = 4"),
        (lambda: ref.col2im(np.ones((3, 4)), (1, 5, 2), 2), "cols has shape (3, 4), expected (4, 4)"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
