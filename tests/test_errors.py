"""Bad input fails early with a ValueError/TypeError naming the argument and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic

X = np.ones((2, 5, 5, 3))
W = np.ones((3, 3, 3, 4))


def conv(**kw):
    return ic.conv2d_forward(X, W, stride=kw.get("stride", 1), padding=kw.get("padding", 0))


def maxpool(**kw):
    return ic.max_pool2d_forward(X, kw.get("kernel_size", 2), stride=kw.get("stride"), padding=kw.get("padding", 0))


def avgpool(**kw):
    return ic.avg_pool2d_forward(X, kw.get("kernel_size", 2), stride=kw.get("stride"), padding=kw.get("padding", 0))


def im2col(**kw):
    return ic.im2col(X, kw.get("kernel_size", 2), stride=kw.get("stride", 1), padding=kw.get("padding", 0))


def col2im(**kw):
    # the cols shape is only checked after the arguments, so a dummy works for argument errors
    return ic.col2im(
        np.ones((4, 12)), X.shape, kw.get("kernel_size", 2), stride=kw.get("stride", 1), padding=kw.get("padding", 0)
    )


WITH_STRIDE = [conv, maxpool, avgpool, im2col, col2im]
WITH_KERNEL = [maxpool, avgpool, im2col, col2im]

BAD_INT_VALUES = [0, -1, (1, 0), (0, 2), (-1, 1)]  # ValueError
BAD_INT_TYPES = [1.5, "2", True, np.bool_(True), (1, 1.5), (1, "a"), (True, 1), None, 2.0, np.array(2.0)]  # TypeError
BAD_PAIR_LENGTHS = [(1, 2, 3), (1,), (), [1, 1, 1]]  # ValueError


# --- stride, padding, kernel_size ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", WITH_STRIDE)
@pytest.mark.parametrize("stride", BAD_INT_VALUES + BAD_PAIR_LENGTHS)
def test_stride_bad_value(fn, stride):
    with pytest.raises(ValueError, match=r"stride must be an int >= 1 or an \(h, w\) pair"):
        fn(stride=stride)


@pytest.mark.parametrize("fn", WITH_STRIDE)
@pytest.mark.parametrize("stride", [s for s in BAD_INT_TYPES if s is not None], ids=repr)
def test_stride_bad_type(fn, stride):
    with pytest.raises(TypeError, match=r"stride must be an int >= 1"):
        fn(stride=stride)


@pytest.mark.parametrize("fn", WITH_STRIDE)
@pytest.mark.parametrize("padding", [-1, (0, -1), (1, 2, 3), (1,)])
def test_padding_bad_value(fn, padding):
    with pytest.raises(ValueError, match=r"padding must be an int >= 0"):
        fn(padding=padding)


@pytest.mark.parametrize("fn", WITH_STRIDE)
@pytest.mark.parametrize("padding", [0.5, "1", False, (0, 1.0), None], ids=repr)
def test_padding_bad_type(fn, padding):
    # conv2d also takes the strings 'valid' and 'same', so another string is a bad value there, not a bad type
    error = ValueError if fn is conv and isinstance(padding, str) else TypeError
    with pytest.raises(error, match=r"padding must be an int >= 0"):
        fn(padding=padding)


@pytest.mark.parametrize("fn", WITH_KERNEL)
@pytest.mark.parametrize("kernel_size", [0, -2, (2, 0), (1, 2, 3)])
def test_kernel_size_bad_value(fn, kernel_size):
    with pytest.raises(ValueError, match=r"kernel_size must be an int >= 1"):
        fn(kernel_size=kernel_size)


@pytest.mark.parametrize("fn", WITH_KERNEL)
@pytest.mark.parametrize("kernel_size", [2.0, "2", True, None], ids=repr)
def test_kernel_size_bad_type(fn, kernel_size):
    with pytest.raises(TypeError, match=r"kernel_size must be an int >= 1"):
        fn(kernel_size=kernel_size)


@pytest.mark.parametrize("fn", [maxpool, avgpool])
@pytest.mark.parametrize(("kernel_size", "padding"), [(2, 2), (3, 2), ((2, 4), (1, 3)), (1, 1)])
def test_pool_padding_over_half_kernel(fn, kernel_size, padding):
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size"):
        fn(kernel_size=kernel_size, padding=padding)


@pytest.mark.parametrize("fn", WITH_KERNEL)
@pytest.mark.parametrize(("kernel_size", "padding"), [(6, 0), ((2, 6), 0), ((8, 1), (1, 0))])
def test_kernel_larger_than_padded_input(fn, kernel_size, padding):
    if fn in (maxpool, avgpool):
        padding = 0  # the pooling padding rule would fire first
    with pytest.raises(ValueError, match=r"kernel_size .* is larger than the padded input"):
        fn(kernel_size=kernel_size, padding=padding)


def test_conv_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel .* is larger than the padded input \(6, 6\)"):
        ic.conv2d_forward(X[:, :4, :4], np.ones((7, 1, 3, 2)), padding=1)
    ic.conv2d_forward(X[:, :4, :4], np.ones((6, 6, 3, 2)), padding=1)  # exactly fits: fine


# --- shapes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 5, 3), (1, 2, 5, 5, 3), (), (3,)])
def test_x_wrong_ndim(shape):
    x = np.ones(shape)
    for call in (
        lambda: ic.conv2d_forward(x, W),
        lambda: ic.max_pool2d_forward(x, 2),
        lambda: ic.avg_pool2d_forward(x, 2),
    ):
        with pytest.raises(ValueError, match=r"x must be a 4-D array of shape \(N, H, W, C"):
            call()


@pytest.mark.parametrize("shape", [(5, 3), (1, 2, 3, 5, 5, 3), (), (3,)])
def test_im2col_x_needs_one_to_three_spatial_axes(shape):
    with pytest.raises(ValueError, match=r"x must be a 3-, 4- or 5-D array of shape \(N, \*spatial, C\)"):
        ic.im2col(np.ones(shape), 2)


@pytest.mark.parametrize("shape", [(3, 3, 3), (3, 3, 3, 4, 1)])
def test_w_wrong_ndim(shape):
    with pytest.raises(ValueError, match=r"w must be a 4-D array of shape \(kh, kw, C_in // groups, C_out\)"):
        ic.conv2d_forward(X, np.ones(shape))


def test_cols_wrong_ndim_and_shape():
    with pytest.raises(ValueError, match=r"cols must be a 2-D array"):
        ic.col2im(np.ones(48), X.shape, 2)
    with pytest.raises(ValueError, match=r"cols must have shape \(N\*prod\(out\), prod\(kernel\)\*C\) = \(32, 12\)"):
        ic.col2im(np.ones((32, 13)), X.shape, 2)


@pytest.mark.parametrize(
    ("x_shape", "error"),
    [((2, 5), ValueError), ((2, 5, 0, 3), ValueError), ((2, 5, 5.0, 3), TypeError), (5, TypeError),
     ((True, 6, 6, 2), TypeError), ("2553", TypeError), ((2, 5, 2**63, 3), ValueError), ((1,) * 6, ValueError)],
)  # fmt: skip
def test_col2im_bad_x_shape(x_shape, error):
    with pytest.raises(error, match=r"x_shape must be a shape \(N, \*spatial, C\) with 1 to 3 spatial axes"):
        ic.col2im(np.ones((32, 12)), x_shape, 2)


@pytest.mark.parametrize("pad_value", [None, "7", 1j, {}, np.ones(2), True])
def test_im2col_pad_value_must_be_a_real_number(pad_value):
    with pytest.raises(TypeError, match=r"pad_value must be a real number"):
        ic.im2col(np.ones((1, 4, 4, 1)), 2, padding=1, pad_value=pad_value)


def test_im2col_pad_value_may_be_minus_infinity():
    cols = ic.im2col(np.zeros((1, 2, 2, 1)), 2, padding=1, pad_value=-np.inf)
    assert cols.shape == (9, 4) and np.isneginf(cols).sum() == 20 and (cols == 0).sum() == 16  # 4 inputs x 4 windows


def test_channel_mismatch():
    with pytest.raises(ValueError, match=r"w has C_in=2 .* x has C=3"):
        ic.conv2d_forward(X, np.ones((3, 3, 2, 4)))


@pytest.mark.parametrize("b_shape", [(5,), (3,), (1, 4), (1, 1, 4), (1, 1, 1, 5), (4, 1), (2, 1, 1, 4)])
def test_bias_bad_shape(b_shape):
    with pytest.raises(ValueError, match=r"b must have shape \(C_out,\) = \(4,\) or \(1, 1, 1, 4\)"):
        ic.conv2d_forward(X, W, np.ones(b_shape))


BAD_DOUT_SHAPES = [(2, 3, 3), (2, 3, 3, 4, 1), (2, 3, 4, 4), (1, 3, 3, 4), (2, 3, 3, 5), (2, 3, 3, 3)]


@pytest.mark.parametrize("bad", BAD_DOUT_SHAPES)
def test_conv_dout_shape_must_match_cache(bad):
    _, cache = ic.conv2d_forward(X, W)  # out (2, 3, 3, 4)
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 3, 3, 4\)"):
        ic.conv2d_backward(np.ones(bad), cache)


@pytest.mark.parametrize("bad", BAD_DOUT_SHAPES[:-1])
@pytest.mark.parametrize(
    ("fwd", "bwd"),
    [(ic.max_pool2d_forward, ic.max_pool2d_backward), (ic.avg_pool2d_forward, ic.avg_pool2d_backward)],
    ids=["max", "avg"],
)
def test_pool_dout_shape_must_match_cache(fwd, bwd, bad):
    _, cache = fwd(X[..., :1].repeat(4, axis=3), 3, stride=1)  # out (2, 3, 3, 4)
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 3, 3, 4\)"):
        bwd(np.ones(bad), cache)


def test_dropin_gradient_shape_must_match_cache():
    _, cache = ic.forward(X, W, np.ones((1, 1, 1, 4)), 0, 1, None)
    with pytest.raises(ValueError, match=r"dZ must have the forward output's shape \(2, 3, 3, 4\) \(the cache's pad=0"):
        ic.backward(np.ones((2, 3, 3)), cache)
    with pytest.raises(ValueError, match=r"dZ must have the forward output's shape \(2, 5, 5, 4\) \(the cache's pad=1"):
        ic.backward(np.ones((2, 3, 3, 4)), cache._replace(pad=1))  # a hand-built cache that does not match dZ
    _, cache = ic.forward(X, None, None, 0, 1, 3, mode="maxpool")
    with pytest.raises(ValueError, match=r"dA must have the forward output's shape \(2, 3, 3, 3\)"):
        ic.pool_backward(np.ones((2, 3, 3, 4)), cache)


def test_dropin_errors_name_the_notebooks_arguments_for_nested_lists():
    """Nested lists (the notebook's users pass them) are converted first: errors name X, W, dZ and dA."""
    b = np.ones((1, 1, 1, 4))
    with pytest.raises(ValueError, match=r"X must be a 4-D array of shape \(m, H, W, C\), got shape \(2, 5, 5\)"):
        ic.forward(X[..., 0].tolist(), W, b, 0, 1, None)
    with pytest.raises(ValueError, match=r"W must be a 4-D array of shape \(f, f, C, C_out\)"):
        ic.forward(X.tolist(), W[0].tolist(), b, 0, 1, None)
    with pytest.raises(ValueError, match=r"f must be at most the padded input \(5, 5\) \(X \(5, 5\) with pad=0"):
        ic.forward(X.tolist(), None, None, 0, 1, 9, mode="maxpool")
    _, cache = ic.forward(X.tolist(), W.tolist(), b, 0, 1, None)
    with pytest.raises(ValueError, match=r"dZ must have the forward output's shape \(2, 3, 3, 4\)"):
        ic.backward(np.ones((2, 2, 2, 4)).tolist(), cache)
    _, cache = ic.forward(X.tolist(), None, None, 0, 1, 3, mode="maxpool")
    with pytest.raises(ValueError, match=r"dA must have the forward output's shape \(2, 3, 3, 3\)"):
        ic.pool_backward(np.ones((2, 3, 3)).tolist(), cache)
    with pytest.raises(TypeError, match=r"dA must be a numeric array"):
        ic.pool_backward([["a"]], cache)


def test_backward_rejects_the_wrong_cache():
    _, conv_cache = ic.conv2d_forward(X, W)
    _, max_cache = ic.max_pool2d_forward(X, 2)
    _, avg_cache = ic.avg_pool2d_forward(X, 2)
    with pytest.raises(TypeError, match=r"cache must be the ConvCache returned by conv2d_forward"):
        ic.conv2d_backward(np.ones((2, 2, 2, 3)), max_cache)
    with pytest.raises(TypeError, match=r"cache must be the PoolCache returned by max_pool2d_forward"):
        ic.max_pool2d_backward(np.ones((2, 2, 2, 3)), avg_cache)
    with pytest.raises(TypeError, match=r"cache must be the PoolCache returned by avg_pool2d_forward"):
        ic.avg_pool2d_backward(np.ones((2, 2, 2, 3)), max_cache)
    with pytest.raises(TypeError, match=r"cache must be the PoolCache returned by avg_pool2d_forward"):
        ic.avg_pool2d_backward(np.ones((2, 3, 3, 4)), conv_cache)


# --- element types ------------------------------------------------------------------------------------------

NON_NUMERIC = [
    (np.full((1, 5, 5, 3), "a"), TypeError, r"must be a numeric array, got dtype <U1"),
    (np.ones((1, 5, 5, 3), dtype=object), TypeError, r"must be a numeric array, got dtype object"),
    (np.ones((1, 5, 5, 3), dtype=complex), TypeError, r"must be real-valued, got complex dtype complex128"),
    ([[[[1.0, 2.0]], [[1.0]]]], TypeError, r"must be a numeric array"),  # ragged
]


@pytest.mark.parametrize(("bad", "exc", "msg"), NON_NUMERIC, ids=["str", "object", "complex", "ragged"])
def test_non_numeric_input(bad, exc, msg):
    with pytest.raises(exc, match=r"^x " + msg):
        ic.conv2d_forward(bad, W)
    with pytest.raises(exc, match=r"^x " + msg):
        ic.max_pool2d_forward(bad, 2)
    with pytest.raises(exc, match=r"^x " + msg):
        ic.avg_pool2d_forward(bad, 2)
    with pytest.raises(exc, match=r"^x " + msg):
        ic.im2col(bad, 2)
    with pytest.raises(exc, match=r"^w " + msg):
        ic.conv2d_forward(X, bad)
    with pytest.raises(exc, match=r"^b " + msg):
        ic.conv2d_forward(X, W, bad)
    with pytest.raises(exc, match=r"^cols " + msg):
        ic.col2im(bad, X.shape, 2)
    out, cache = ic.conv2d_forward(X, W)
    with pytest.raises(exc, match=r"^dout " + msg):
        ic.conv2d_backward(bad, cache)
    with pytest.raises(exc, match=r"^X " + msg):
        ic.forward(bad, None, None, 0, 1, 2, mode="maxpool")


def test_string_scalars_and_strings_are_rejected():
    with pytest.raises(TypeError, match=r"x must be a numeric array"):
        ic.conv2d_forward("not an array", W)
    with pytest.raises(TypeError, match=r"w must be a numeric array"):
        ic.conv2d_forward(X, [[[["1"]]]])


# --- drop-in API arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["conv2d", "max", "avgpool", "CONV", "", None])
def test_dropin_forward_unknown_mode(mode):
    with pytest.raises(ValueError, match=r"mode must be one of 'conv', 'maxpool', 'avepool'"):
        ic.forward(X, W, np.ones((1, 1, 1, 4)), 0, 1, 3, mode=mode)


@pytest.mark.parametrize("mode", ["avg", "maxpool", "avepool", "Max", "", None])
def test_dropin_pool_backward_unknown_mode(mode):
    A, cache = ic.forward(X, None, None, 0, 1, 3, mode="maxpool")
    with pytest.raises(ValueError, match=r"mode must be one of 'max', 'average'"):
        ic.pool_backward(A, cache, mode=mode)


@pytest.mark.parametrize(
    ("dims", "error"), [(0, ValueError), (5, ValueError), (-1, ValueError), (3.5, TypeError), ("3", TypeError)]
)
def test_dropin_padding_dims(dims, error):
    with pytest.raises(error, match=r"dims must be 1 \(vector\), 2 \(matrix\), 3 \(image\) or 4 \(batch\)"):
        ic.padding(np.ones((2, 2, 2)), 1, dims)


def test_dropin_padding_dims_must_match_ndim():
    with pytest.raises(ValueError, match=r"X must be a 3-D array for dims=3"):
        ic.padding(np.ones((2, 2)), 1, 3)


@pytest.mark.parametrize(("pad", "stride"), [(-1, 1), (0, 0), (0, -2)])
def test_dropin_forward_bad_pad_and_stride(pad, stride):
    with pytest.raises(ValueError, match=r"(pad must be an int >= 0|stride must be an int >= 1)"):
        ic.forward(X, W, np.ones((1, 1, 1, 4)), pad, stride, None)
    with pytest.raises(ValueError, match=r"(pad must be an int >= 0|stride must be an int >= 1)"):
        ic.forward(X, None, None, pad, stride, 2, mode="avepool")


def test_dropin_forward_bad_f():
    with pytest.raises(ValueError, match=r"f must be an int >= 1"):
        ic.forward(X, None, None, 0, 1, 0, mode="maxpool")
    with pytest.raises(TypeError, match=r"f must be an int >= 1"):
        ic.forward(X, None, None, 0, 1, None, mode="maxpool")


def test_zero_d_integer_array_is_accepted_as_its_scalar():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    out_array, _ = ic.max_pool2d_forward(x, np.array(2), stride=np.array(2))
    out_int, _ = ic.max_pool2d_forward(x, 2, stride=2)
    np.testing.assert_array_equal(out_array, out_int)


def test_dropin_padding_rejects_a_pair():
    with pytest.raises(TypeError, match=r"pad must be an int >= 0"):
        ic.padding(np.ones((2, 2)), (1, 2), 2)
