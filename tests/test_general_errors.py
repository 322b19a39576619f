"""Bad arguments of the general options (dilation, groups, padding modes, NCHW, ceil_mode, transposed conv)
fail early with a ValueError/TypeError naming the argument and what was expected."""

from __future__ import annotations

import re

import numpy as np
import pytest

import im2col_cnn as ic

X = np.ones((2, 5, 5, 4))  # NHWC, C_in = 4
W = np.ones((3, 3, 4, 6))  # conv2d: C_in 4 -> C_out 6; conv_transpose2d: C_in 6 <- C_out 4 (x needs 6 channels)
XT = np.ones((2, 5, 5, 6))  # conv_transpose2d input for W


def conv(x=X, w=W, **kw):
    return ic.conv2d_forward(x, w, **kw)


def tconv(x=XT, w=W, **kw):
    return ic.conv_transpose2d_forward(x, w, **kw)


def maxpool(x=X, k=3, **kw):
    return ic.max_pool2d_forward(x, k, **kw)


def avgpool(x=X, k=3, **kw):
    return ic.avg_pool2d_forward(x, k, **kw)


# --- groups -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "groups", "msg"),
    [
        ((2, 5, 5, 4), (3, 3, 2, 4), 3, r"groups must divide both C_in=4 and C_out=4, got groups=3"),
        ((2, 5, 5, 4), (3, 3, 1, 6), 4, r"groups must divide both C_in=4 and C_out=6, got groups=4"),
        ((2, 5, 5, 6), (3, 3, 2, 4), 3, r"groups must divide both C_in=6 and C_out=4, got groups=3"),
    ],
)
def test_conv2d_groups_must_divide_channels(x_shape, w_shape, groups, msg):
    with pytest.raises(ValueError, match=msg):
        conv(np.ones(x_shape), np.ones(w_shape), groups=groups)


def test_conv_transpose2d_groups_must_divide_c_in():
    # w (kh, kw, C_out // groups, C_in): C_out = 2 * 2 = 4, but C_in = 3 is not divisible by 2
    with pytest.raises(ValueError, match=r"groups must divide both C_in=3 and C_out=4, got groups=2"):
        tconv(np.ones((1, 4, 4, 3)), np.ones((3, 3, 2, 3)), groups=2)


@pytest.mark.parametrize("fn", [conv, tconv])
@pytest.mark.parametrize(("groups", "exc"), [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_groups_bad_value_or_type(fn, groups, exc):
    with pytest.raises(exc, match=r"groups must be an int >= 1, got " + repr(groups)):
        fn(groups=groups)


def test_conv2d_w_per_group_channels_must_match():
    with pytest.raises(ValueError, match=r"w has C_in=4 input channels per group \(groups=2\) but x has C=4"):
        conv(w=np.ones((3, 3, 4, 6)), groups=2)
    with pytest.raises(ValueError, match=r"w has C_in=1 input channels per group \(groups=2\) but x has C=4"):
        conv(w=np.ones((3, 3, 1, 6)), groups=2)
    with pytest.raises(ValueError, match=r"w has C_in=1 input channels per group \(groups=2\) but x has C=4"):
        conv(np.ones((2, 4, 5, 5)), np.ones((6, 1, 3, 3)), groups=2, data_format="NCHW")  # (C_out, C_in // g, ...)
    assert conv(np.ones((2, 4, 5, 5)), np.ones((6, 2, 3, 3)), groups=2, data_format="NCHW")[0].shape == (2, 6, 3, 3)
    with pytest.raises(ValueError, match=r"w has C_in=5 input channels but x has C=6 channels"):
        tconv(w=np.ones((3, 3, 4, 5)))


# --- padding ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [2, (2, 1), (1, 3)])
def test_same_padding_needs_stride_1(stride):
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1 \(as in PyTorch\), got stride \("):
        conv(padding="same", stride=stride)


CONV_PADDING_WHAT = r"padding must be an int >= 0, an \(h, w\) pair of them, \(\(top, bottom\), \(left, right\)\), "


@pytest.mark.parametrize("padding", ["SAME", "full", "", "Valid"])
def test_unknown_padding_string(padding):
    with pytest.raises(ValueError, match=CONV_PADDING_WHAT + r"'valid' or 'same', got '" + padding + "'"):
        conv(padding=padding)


@pytest.mark.parametrize(
    ("padding", "exc"),
    [
        (((1, 2, 3), (1, 1)), ValueError),
        (((1,), (1, 1)), ValueError),
        (((1, 1), (1, 1), (1, 1)), ValueError),
        (((1, -1), (0, 0)), ValueError),
        (((1, 1), "ab"), ValueError),
        (((1, 1.5), (0, 0)), TypeError),
        (((1, 1), 2), TypeError),
    ],
    ids=repr,
)
def test_malformed_pairs_of_pairs(padding, exc):
    with pytest.raises(exc, match=CONV_PADDING_WHAT):
        conv(padding=padding)


@pytest.mark.parametrize("padding", ["same", "valid", ((1, 1), (1, 1))], ids=repr)
def test_conv_transpose2d_padding_is_an_int_or_pair_only(padding):
    with pytest.raises(TypeError, match=r"padding must be an int >= 0 or an \(h, w\) pair of them"):
        tconv(padding=padding)


@pytest.mark.parametrize("fn", [maxpool, avgpool])
@pytest.mark.parametrize(("k", "padding"), [(3, 2), ((3, 4), (1, 3)), (1, 1), (2, (0, 2))])
def test_pool_padding_over_half_the_kernel(fn, k, padding):
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size \(\d+, \d+\) on each axis"):
        fn(k=k, padding=padding)


def test_max_pool_padding_limit_ignores_dilation():
    """As PyTorch checks it: half the kernel size, not half the dilated kernel (see test_vs_torch)."""
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size \(2, 2\) on each axis"):
        maxpool(k=2, padding=2, dilation=3)
    assert maxpool(k=2, padding=1, dilation=3)[0].shape == (2, 2, 2, 4)


# --- dilation, output_padding, sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [conv, tconv, maxpool])
@pytest.mark.parametrize("dilation", [0, (1, 0), (0, 2), -1])
def test_dilation_zero(fn, dilation):
    with pytest.raises(ValueError, match=r"dilation must be an int >= 1 or an \(h, w\) pair of them, got "):
        fn(dilation=dilation)


@pytest.mark.parametrize(
    ("output_padding", "stride", "dilation"),
    [(1, 1, 1), (2, 2, 1), (2, 1, 2), ((0, 1), (2, 1), 1), ((3, 0), (3, 2), (2, 1)), ((1, 2), 2, 2)],
)
def test_output_padding_not_smaller_than_stride_or_dilation(output_padding, stride, dilation):
    with pytest.raises(ValueError, match=r"output_padding must be smaller than either stride or dilation on each axis"):
        tconv(output_padding=output_padding, stride=stride, dilation=dilation)


@pytest.mark.parametrize(("output_padding", "stride", "dilation"), [(1, 1, 2), (1, 2, 1), ((2, 0), (1, 1), (3, 1))])
def test_output_padding_smaller_than_stride_or_dilation_is_fine(output_padding, stride, dilation):
    out, _ = tconv(output_padding=output_padding, stride=stride, dilation=dilation)
    oph, opw = (output_padding, output_padding) if isinstance(output_padding, int) else output_padding
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    assert out.shape == (2, 4 * sh + 2 * dh + oph + 1, 4 * sw + 2 * dw + opw + 1, 4)


def test_output_padding_negative():
    with pytest.raises(ValueError, match=r"output_padding must be an int >= 0 or an \(h, w\) pair of them, got -1"):
        tconv(output_padding=-1)


def test_conv_transpose2d_with_no_output():
    with pytest.raises(ValueError, match=r"padding \(1, 1\) leaves no output: the output size would be \(-1, -1\)"):
        tconv(np.ones((1, 1, 1, 2)), np.ones((1, 1, 3, 2)), padding=1)
    with pytest.raises(ValueError, match=r"padding \(2, 0\) leaves no output: the output size would be \(0, 3\)"):
        tconv(np.ones((1, 1, 1, 2)), np.ones((3, 3, 3, 2)), padding=(2, 0), output_padding=(1, 0), stride=2)


def test_dilated_conv_kernel_larger_than_padded_input():
    with pytest.raises(
        ValueError,
        match=r"w's kernel \(kh, kw\) \(3, 3\) \(dilated to \(5, 5\)\) is larger than the padded input \(4, 6\)",
    ):
        conv(np.ones((2, 4, 5, 4)), dilation=2, padding=((0, 0), (1, 0)))


@pytest.mark.parametrize(
    ("x_shape", "k", "kw", "window"),
    [
        ((1, 2, 2, 1), 2, dict(padding=1, dilation=3, stride=1), r"\(0, 0\)"),
        ((1, 6, 2, 1), 2, dict(padding=1, dilation=3, stride=1), r"\(0, 0\)"),
        ((1, 1, 3, 3), 2, dict(padding=1, dilation=4, stride=1, data_format="NCHW"), r"\(0, 0\)"),
    ],
)
def test_pool_window_with_no_input_position(x_shape, k, kw, window):
    with pytest.raises(ValueError, match=r"leaves pooling window " + window + r" covering no input position"):
        maxpool(np.ones(x_shape), k, **kw)


# --- flags --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [conv, tconv, maxpool, avgpool])
@pytest.mark.parametrize("data_format", ["nhwc", "NCWH", None, "", "CHWN", 0])
def test_unknown_data_format(fn, data_format):
    with pytest.raises(ValueError, match=r"data_format must be one of 'NHWC', 'NCHW', got " + repr(data_format)):
        fn(data_format=data_format)


@pytest.mark.parametrize(("value", "exc"), [(0, ValueError), (np.int64(0), ValueError), (1.5, TypeError)])
def test_divisor_override_bad(value, exc):
    with pytest.raises(exc, match=r"divisor_override must be a nonzero int or None, got "):
        avgpool(divisor_override=value)
    with pytest.raises(TypeError, match=r"divisor_override must be a nonzero int or None, got True"):
        avgpool(divisor_override=True)


FLAGS = [(maxpool, "ceil_mode"), (avgpool, "ceil_mode"), (avgpool, "count_include_pad")]


@pytest.mark.parametrize("value", ["yes", None, 1.0, np.float64(0.0)], ids=repr)
@pytest.mark.parametrize(("fn", "name"), FLAGS)
def test_flags_must_be_bools(fn, name, value):
    with pytest.raises(TypeError, match=rf"{name} must be a bool \(or 0 or 1\), got {re.escape(repr(value))}"):
        fn(**{name: value})


@pytest.mark.parametrize("value", [2, -1, np.int64(3)], ids=repr)
@pytest.mark.parametrize(("fn", "name"), FLAGS)
def test_flags_other_ints_are_value_errors(fn, name, value):
    with pytest.raises(ValueError, match=rf"{name} must be a bool \(or 0 or 1\), got {re.escape(repr(value))}"):
        fn(**{name: value})


@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.parametrize(("fn", "name"), FLAGS)
def test_flags_accept_bool_like_ints_and_numpy_bools(fn, name, flag):
    x = np.arange(2 * 7 * 6 * 3, dtype=np.float64).reshape(2, 7, 6, 3)
    out, _ = fn(x=x, k=2, padding=1, **{name: flag})
    for like in (int(flag), np.int64(flag), np.bool_(flag)):
        np.testing.assert_array_equal(fn(x=x, k=2, padding=1, **{name: like})[0], out)


# --- layouts: ndim messages and dout shapes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: conv(x=np.ones((4, 5, 5)), data_format="NCHW"), r"x must be a 4-D array of shape \(N, C_in, H, W\)"),
        (
            lambda: conv(w=np.ones((6, 4, 3)), data_format="NCHW"),
            r"w must be a 4-D .* \(C_out, C_in // groups, kh, kw\)",
        ),
        (lambda: tconv(x=np.ones((6, 5, 5)), data_format="NCHW"), r"x must be a 4-D array of shape \(N, C_in, H, W\)"),
        (
            lambda: tconv(w=np.ones((6, 4, 3)), data_format="NCHW"),
            r"w must be a 4-D .* \(C_in, C_out // groups, kh, kw\)",
        ),
        (lambda: tconv(w=np.ones((3, 3, 4))), r"w must be a 4-D array of shape \(kh, kw, C_out // groups, C_in\)"),
        (lambda: tconv(x=np.ones((5, 5, 6))), r"x must be a 4-D array of shape \(N, H, W, C_in\)"),
        (lambda: maxpool(x=np.ones((4, 5, 5)), data_format="NCHW"), r"x must be a 4-D array of shape \(N, C, H, W\)"),
        (lambda: avgpool(x=np.ones((1, 4, 5, 5, 1)), data_format="NCHW"), r"x must be a 4-D .* \(N, C, H, W\)"),
    ],
)
def test_ndim_messages_name_the_layout(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


NCHW_X = np.ones((2, 4, 5, 5))


@pytest.mark.parametrize(
    ("forward", "backward", "expected"),
    [
        (lambda: conv(NCHW_X, np.ones((6, 4, 3, 3)), data_format="NCHW"), ic.conv2d_backward, (2, 6, 3, 3)),
        (lambda: tconv(NCHW_X, np.ones((4, 3, 3, 3)), data_format="NCHW"), ic.conv_transpose2d_backward, (2, 3, 7, 7)),
        (lambda: maxpool(NCHW_X, 3, stride=1, data_format="NCHW"), ic.max_pool2d_backward, (2, 4, 3, 3)),
        (lambda: avgpool(NCHW_X, 3, stride=1, data_format="NCHW"), ic.avg_pool2d_backward, (2, 4, 3, 3)),
    ],
    ids=["conv", "tconv", "max", "avg"],
)
def test_nchw_dout_shape_must_match(forward, backward, expected):
    out, cache = forward()
    assert out.shape == expected
    n, c, h, w = expected
    for bad in [(n, h, w, c), (n, c, h, w + 1), (c, h, w)]:
        with pytest.raises(ValueError, match=r"dout must have the forward output's shape " + re_shape(expected)):
            backward(np.ones(bad), cache)
    backward(np.ones(expected), cache)  # the right shape is fine


def re_shape(shape) -> str:
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_backward_rejects_the_wrong_cache():
    _, conv_cache = conv()
    out, tconv_cache = tconv()
    _, max_cache = maxpool()
    with pytest.raises(TypeError, match=r"cache must be the ConvTransposeCache returned by conv_transpose2d_forward"):
        ic.conv_transpose2d_backward(np.ones((2, 3, 3, 6)), conv_cache)
    with pytest.raises(TypeError, match=r"ConvTransposeCache returned by conv_transpose2d_forward, got tuple"):
        ic.conv_transpose2d_backward(out, tuple(tconv_cache))
    with pytest.raises(TypeError, match=r"ConvTransposeCache returned by conv_transpose2d_forward, got PoolCache"):
        ic.conv_transpose2d_backward(out, max_cache)
    with pytest.raises(
        TypeError, match=r"cache must be the ConvCache returned by conv2d_forward, got ConvTransposeCache"
    ):
        ic.conv2d_backward(out, tconv_cache)
    with pytest.raises(AttributeError, match=r"indices exist for max pooling only"):
        _ = avgpool()[1].indices
