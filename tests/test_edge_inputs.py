"""Every int argument of every public function, fed bad values: a ValueError/TypeError naming the argument.

Bool-likes (``True``, ``np.bool_``), floats, strings and ``None`` are a TypeError; values out of range --
below the minimum, or above ``2**62`` (``MAX_INT``: the largest magnitude any int argument may have) -- are a
ValueError that says so. NumPy integers are ints. Never an OverflowError, IndexError or a message that does not
name the argument.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import im2col_cnn as ic
from im2col_cnn.runtime.checks import MAX_INT

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 6, 6, 2))
W = RNG.standard_normal((3, 3, 2, 2))
B4 = RNG.standard_normal((1, 1, 1, 2))
COLS = ic.im2col(X, 2)
CONV_OUT, CONV_CACHE = ic.conv2d_forward(X, W)
TCONV_OUT, TCONV_CACHE = ic.conv_transpose2d_forward(X, W)
Z_CONV, DROPIN_CONV_CACHE = ic.forward(X, W, B4, 0, 1, None)
Z_POOL, DROPIN_POOL_CACHE = ic.forward(X, None, None, 0, 1, 2, mode="maxpool")


def _set_limit(nbytes):
    previous = ic.set_workspace_limit(nbytes)
    ic.set_workspace_limit(previous)  # leave the global limit as it was


def _with_limit(nbytes):
    with ic.workspace_limit(nbytes):
        pass


# (label, call taking one keyword argument, its name in error messages): every int argument of the public API
INT_ARGS = {
    "conv2d_forward.stride": (lambda v: ic.conv2d_forward(X, W, stride=v), "stride"),
    "conv2d_forward.padding": (lambda v: ic.conv2d_forward(X, W, padding=v), "padding"),
    "conv2d_forward.dilation": (lambda v: ic.conv2d_forward(X, W, dilation=v), "dilation"),
    "conv2d_forward.groups": (lambda v: ic.conv2d_forward(X, W, groups=v), "groups"),
    "conv2d_forward.workspace": (lambda v: ic.conv2d_forward(X, W, workspace=v), "workspace"),
    "conv2d_backward.workspace": (lambda v: ic.conv2d_backward(CONV_OUT, CONV_CACHE, workspace=v), "workspace"),
    "conv_transpose2d_forward.stride": (lambda v: ic.conv_transpose2d_forward(X, W, stride=v), "stride"),
    "conv_transpose2d_forward.padding": (lambda v: ic.conv_transpose2d_forward(X, W, padding=v), "padding"),
    "conv_transpose2d_forward.output_padding": (
        lambda v: ic.conv_transpose2d_forward(X, W, output_padding=v),
        "output_padding",
    ),
    "conv_transpose2d_forward.dilation": (lambda v: ic.conv_transpose2d_forward(X, W, dilation=v), "dilation"),
    "conv_transpose2d_forward.groups": (lambda v: ic.conv_transpose2d_forward(X, W, groups=v), "groups"),
    "conv_transpose2d_forward.workspace": (lambda v: ic.conv_transpose2d_forward(X, W, workspace=v), "workspace"),
    "conv_transpose2d_backward.workspace": (
        lambda v: ic.conv_transpose2d_backward(TCONV_OUT, TCONV_CACHE, workspace=v),
        "workspace",
    ),
    "max_pool2d_forward.kernel_size": (lambda v: ic.max_pool2d_forward(X, v), "kernel_size"),
    "max_pool2d_forward.stride": (lambda v: ic.max_pool2d_forward(X, 2, stride=v), "stride"),
    "max_pool2d_forward.padding": (lambda v: ic.max_pool2d_forward(X, 2, padding=v), "padding"),
    "max_pool2d_forward.dilation": (lambda v: ic.max_pool2d_forward(X, 2, dilation=v), "dilation"),
    "avg_pool2d_forward.kernel_size": (lambda v: ic.avg_pool2d_forward(X, v), "kernel_size"),
    "avg_pool2d_forward.stride": (lambda v: ic.avg_pool2d_forward(X, 2, stride=v), "stride"),
    "avg_pool2d_forward.padding": (lambda v: ic.avg_pool2d_forward(X, 2, padding=v), "padding"),
    "avg_pool2d_forward.divisor_override": (
        lambda v: ic.avg_pool2d_forward(X, 2, divisor_override=v),
        "divisor_override",
    ),
    "im2col.kernel_size": (lambda v: ic.im2col(X, v), "kernel_size"),
    "im2col.stride": (lambda v: ic.im2col(X, 2, stride=v), "stride"),
    "im2col.padding": (lambda v: ic.im2col(X, 2, padding=v), "padding"),
    "col2im.kernel_size": (lambda v: ic.col2im(COLS, X.shape, v), "kernel_size"),
    "col2im.stride": (lambda v: ic.col2im(COLS, X.shape, 2, stride=v), "stride"),
    "col2im.padding": (lambda v: ic.col2im(COLS, X.shape, 2, padding=v), "padding"),
    "set_workspace_limit.nbytes": (_set_limit, "nbytes"),
    "workspace_limit.nbytes": (_with_limit, "nbytes"),
    "padding.pad": (lambda v: ic.padding(X, v, 4), "pad"),
    "forward.pad": (lambda v: ic.forward(X, W, B4, v, 1, None), "pad"),
    "forward.stride": (lambda v: ic.forward(X, W, B4, 0, v, None), "stride"),
    "forward.f": (lambda v: ic.forward(X, None, None, 0, 1, v, mode="maxpool"), "f"),
    "backward.pad": (lambda v: ic.backward(Z_CONV, DROPIN_CONV_CACHE._replace(pad=v)), "pad"),
    "backward.stride": (lambda v: ic.backward(Z_CONV, DROPIN_CONV_CACHE._replace(stride=v)), "stride"),
    "pool_backward.f": (lambda v: ic.pool_backward(Z_POOL, DROPIN_POOL_CACHE._replace(f=v)), "f"),
    "pool_backward.stride": (lambda v: ic.pool_backward(Z_POOL, DROPIN_POOL_CACHE._replace(stride=v)), "stride"),
    "pool_backward.pad": (lambda v: ic.pool_backward(Z_POOL, DROPIN_POOL_CACHE._replace(pad=v)), "pad"),
    "distribute_value.shape": (lambda v: ic.distribute_value(1.0, v), "shape"),
}
# Arguments that take only an int (no (h, w) pair) and where None means the default.
INT_ONLY = {"groups", "workspace", "divisor_override", "nbytes"}
NONE_IS_DEFAULT = {"workspace", "divisor_override", "nbytes", "max_pool2d_forward.stride", "avg_pool2d_forward.stride"}
PAIRS = [label for label, (_, name) in INT_ARGS.items() if name not in INT_ONLY and label != "padding.pad"]

HUGE = [2**63, 2**64, 10**30, MAX_INT + 1, np.uint64(2**63), np.uint64(2**64 - 1)]
BOOLS = [True, False, np.bool_(True), np.bool_(False)]
NOT_INTS = [2.0, 2.5, np.float64(2.0), np.float32(1.0), "2", b"\x02", 1j, [2], {2: 2}]


def _raises(label, value, error):
    fn, name = INT_ARGS[label]
    with pytest.raises(error, match=rf"^{name} must be .*, got {re.escape(repr(value))}$"):
        fn(value)


DROPIN_SIZES = ["forward.pad", "forward.f", "backward.pad", "pool_backward.f", "pool_backward.pad"]


@pytest.mark.parametrize("label", DROPIN_SIZES)
@pytest.mark.parametrize("value", [2**40, MAX_INT], ids=repr)
def test_drop_in_sizes_too_large_for_the_input_name_the_argument(label, value):
    # valid ints, but a window larger than the padded input or a padded input larger than memory
    _raises(label, value, ValueError)


@pytest.mark.parametrize("label", INT_ARGS)
@pytest.mark.parametrize("value", HUGE, ids=repr)
def test_huge_int_is_a_value_error_naming_the_argument(label, value):
    _raises(label, value, ValueError)
    fn, name = INT_ARGS[label]
    with pytest.raises(ValueError, match=rf"^{name} must be .*, at most 2\*\*62, got "):
        fn(value)


@pytest.mark.parametrize("label", PAIRS)
@pytest.mark.parametrize("value", [(1, 2**63), (2**64, 1), np.array([1, 2**63], dtype=np.uint64)], ids=repr)
def test_huge_int_inside_a_pair(label, value):
    _raises(label, value, ValueError)


def test_huge_int_inside_conv_padding_pairs():
    for padding in [((0, 0), (0, 2**63)), ((2**63, 0), (0, 0)), np.array([[0, 0], [0, 2**63]], dtype=np.uint64)]:
        with pytest.raises(ValueError, match=r"^padding must be .*, at most 2\*\*62, got "):
            ic.conv2d_forward(X, W, padding=padding)


@pytest.mark.parametrize("value", [-(2**63), -(2**64), -MAX_INT - 1, np.int64(-(2**63))], ids=repr)
def test_huge_negative_int(value):
    for label in INT_ARGS:
        _raises(label, value, ValueError)
    with pytest.raises(ValueError, match=r"^divisor_override must be a nonzero int or None, at least -2\*\*62, got "):
        ic.avg_pool2d_forward(X, 2, divisor_override=value)


def test_the_bound_itself_is_accepted():
    for divisor in (MAX_INT, -MAX_INT):
        out, _ = ic.avg_pool2d_forward(X, 2, divisor_override=divisor)
        np.testing.assert_array_equal(out, ic.avg_pool2d_forward(X, 2, divisor_override=1)[0] / divisor)
    for pool in (ic.max_pool2d_forward, ic.avg_pool2d_forward):
        out, _ = pool(X, 2, stride=MAX_INT)  # one window per axis
        np.testing.assert_array_equal(out, pool(X, 2, stride=6)[0])
    out, _ = ic.conv2d_forward(X, W, workspace=MAX_INT)
    np.testing.assert_array_equal(out, CONV_OUT)
    with ic.workspace_limit(MAX_INT) as limit:
        assert limit == ic.get_workspace_limit() == MAX_INT


@pytest.mark.parametrize("label", INT_ARGS)
@pytest.mark.parametrize("value", BOOLS, ids=repr)
def test_bool_is_not_an_int(label, value):
    _raises(label, value, TypeError)


@pytest.mark.parametrize("label", INT_ARGS)
@pytest.mark.parametrize("value", NOT_INTS, ids=repr)
def test_float_string_and_other_types_are_a_type_error(label, value):
    fn, name = INT_ARGS[label]
    if label == "conv2d_forward.padding" and isinstance(value, str):
        error = ValueError  # conv2d's padding takes the strings 'valid' and 'same': another string is a bad value
    elif isinstance(value, list) and label in PAIRS:
        error = ValueError  # a sequence of the wrong length
    else:
        error = TypeError
    _raises(label, value, error)


@pytest.mark.parametrize("label", [label for label in INT_ARGS if not NONE_IS_DEFAULT & {label, INT_ARGS[label][1]}])
def test_none_is_a_type_error_where_it_is_not_the_default(label):
    _raises(label, None, TypeError)


@pytest.mark.parametrize("label", PAIRS)
@pytest.mark.parametrize(
    "value",
    [(1, True), (np.bool_(True), 1), (1, 2.0), (1, "2"), (1, None), b"\x01\x02", bytearray(b"\x01\x02")],
    ids=repr,
)
def test_pair_of_non_ints_is_a_type_error(label, value):
    _raises(label, value, TypeError)


@pytest.mark.parametrize("label", PAIRS)
@pytest.mark.parametrize("value", [(1, 2, 3), (), np.ones((2, 2), dtype=int), np.ones((1, 2), dtype=int)], ids=repr)
def test_pair_of_the_wrong_shape_is_a_value_error(label, value):
    if label in ("conv2d_forward.padding", "im2col.padding", "col2im.padding") and np.shape(value) == (2, 2):
        return  # they take ((top, bottom), (left, right))
    _raises(label, value, ValueError)


@pytest.mark.parametrize("label", [label for label in INT_ARGS if INT_ARGS[label][1] != "divisor_override"])
def test_negative_is_a_value_error(label):
    _raises(label, -1, ValueError)
    _raises(label, np.int64(-1), ValueError)


@pytest.mark.parametrize(
    ("call", "value", "same_as"),
    [
        (lambda v: ic.conv2d_forward(X, W, stride=v, padding=v, dilation=v)[0], np.int64(1), 1),
        (lambda v: ic.conv2d_forward(X, W[:, :, :1], groups=v)[0], np.uint8(2), 2),
        (lambda v: ic.conv2d_backward(CONV_OUT, CONV_CACHE, workspace=v)[0], np.int64(16 << 20), 16 << 20),
        (lambda v: ic.conv_transpose2d_forward(X, W, stride=v, output_padding=v - 1)[0], np.int32(2), 2),
        (lambda v: ic.max_pool2d_forward(X, v, stride=(v, 1), padding=v // 2)[0], np.int16(3), 3),
        (lambda v: ic.avg_pool2d_forward(X, (v, 2), divisor_override=v)[0], np.uint64(3), 3),
        (lambda v: ic.col2im(ic.im2col(X, v, stride=v), X.shape, v, stride=v), np.int64(2), 2),
        (lambda v: ic.forward(X, None, None, v, v, v, mode="avepool")[0], np.int8(1), 1),
        (lambda v: ic.distribute_value(1.0, (v, 4)), np.int64(2), 2),
    ],
)
def test_numpy_integers_are_ints(call, value, same_as):
    np.testing.assert_array_equal(call(value), call(same_as))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda v: ic.conv2d_forward(X, W, data_format=v), "data_format"),
        (lambda v: ic.conv_transpose2d_forward(X, W, data_format=v), "data_format"),
        (lambda v: ic.max_pool2d_forward(X, 2, data_format=v), "data_format"),
        (lambda v: ic.avg_pool2d_forward(X, 2, data_format=v), "data_format"),
        (lambda v: ic.forward(X, W, B4, 0, 1, None, mode=v), "mode"),
        (lambda v: ic.pool_backward(Z_POOL, DROPIN_POOL_CACHE, mode=v), "mode"),
    ],
)
@pytest.mark.parametrize("value", [True, np.bool_(False), 0, 2**63, None, 1.0, b"NHWC", "nhwc", ["NHWC"]], ids=repr)
def test_string_choice_given_anything_else(call, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be one of .*, got {re.escape(repr(value))}$"):
        call(value)


# --- the notebook's padding and distribute_value name their arguments ----------------------------------------


@pytest.mark.parametrize("dims", [True, 2.0, np.float64(2.0), [], np.array([2])])
def test_padding_dims_must_be_an_int(dims):
    with pytest.raises(TypeError, match=r"dims must be 1 \(vector\), 2 \(matrix\), 3 \(image\) or 4 \(batch\)"):
        ic.padding(np.ones((3, 3)), 1, dims)


@pytest.mark.parametrize("const", [None, "7", (1, 2, 3), True, 1j])
def test_padding_const_must_be_a_real_number(const):
    with pytest.raises(TypeError, match=r"const must be a real number"):
        ic.padding(np.ones((3, 3)), 1, 2, const)


def test_padding_keeps_its_dtype_in_native_byte_order():
    x = np.arange(9, dtype=">i4").reshape(3, 3)
    out = ic.padding(x, 1, 2, -1)
    assert out.dtype.isnative and out.dtype == np.int32
    np.testing.assert_array_equal(out, np.pad(x.astype(np.int32), 1, constant_values=-1))


@pytest.mark.parametrize("dz", ["a", None, (1.0, 2.0), np.ones(2)])
def test_distribute_value_dz_must_be_a_real_number(dz):
    with pytest.raises(TypeError, match=r"dz must be a real number"):
        ic.distribute_value(dz, (2, 2))


def test_distribute_value_keeps_a_float32_dz():
    out = ic.distribute_value(np.float32(2.0), (2, 2))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.full((2, 2), 0.5, np.float32))


# --- sizes no array can hold, and strides past the whole input ---------------------------------------------


def test_a_stride_past_the_padded_input_is_one_window_as_any_such_stride():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 6, 6, 2)), rng.standard_normal((3, 3, 2, 2))
    small, _ = ic.conv2d_forward(x, w, stride=7)
    huge, cache = ic.conv2d_forward(x, w, stride=2**62)
    np.testing.assert_array_equal(small, huge)
    dx, dw, db = ic.conv2d_backward(np.ones_like(huge), cache)
    np.testing.assert_array_equal(dw, x[0, :3, :3, :, None] * np.ones((1, 1, 1, 2)))
    assert ic.im2col(x, 2, stride=2**62).shape == (1, 8)


def test_padding_no_array_can_hold_is_a_value_error_naming_padding():
    with pytest.raises(ValueError, match=r"padding \(1099511627776, .*\) makes the padded input .* too large"):
        ic.conv2d_forward(np.ones((1, 6, 6, 2)), np.ones((3, 3, 2, 2)), padding=2**40)


def test_a_transposed_output_no_array_can_hold_is_a_value_error_naming_stride():
    with pytest.raises(ValueError, match=r"stride \(1099511627776, 1099511627776\), dilation .* too large"):
        ic.conv_transpose2d_forward(np.ones((1, 6, 6, 2)), np.ones((3, 3, 2, 2)), stride=2**40)
