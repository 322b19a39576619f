"""PyTorch habits work: hyperparameters in torch.nn.functional's positional order, and a layout slip is named."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic


def _rng_arrays(*shapes):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s) for s in shapes]


def test_conv2d_takes_pytorchs_positional_order():
    x, w, b = _rng_arrays((2, 9, 9, 4), (3, 3, 2, 6), (6,))
    out, _ = ic.conv2d_forward(x, w, b, 2, 1, 2, 2)  # F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    expected, _ = ic.conv2d_forward(x, w, b, stride=2, padding=1, dilation=2, groups=2)
    np.testing.assert_array_equal(out, expected)
    assert out.shape == (2, 4, 4, 6)


def test_conv_transpose2d_takes_pytorchs_positional_order():
    x, w, b = _rng_arrays((2, 5, 5, 4), (3, 3, 3, 4), (6,))
    # F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation): groups first
    out, _ = ic.conv_transpose2d_forward(x, w, b, 2, 1, 1, 2, 2)
    expected, _ = ic.conv_transpose2d_forward(x, w, b, stride=2, padding=1, output_padding=1, groups=2, dilation=2)
    np.testing.assert_array_equal(out, expected)
    assert out.shape == (2, 12, 12, 6)


def test_pooling_takes_pytorchs_positional_order():
    (x,) = _rng_arrays((2, 9, 9, 3))
    out, _ = ic.max_pool2d_forward(x, 3, 2, 1, 1, True)  # kernel_size, stride, padding, dilation, ceil_mode
    expected, _ = ic.max_pool2d_forward(x, 3, stride=2, padding=1, dilation=1, ceil_mode=True)
    np.testing.assert_array_equal(out, expected)
    avg, _ = ic.avg_pool2d_forward(x, 3, 2, 1, True, False, 5)  # ceil_mode, count_include_pad, divisor_override
    expected, _ = ic.avg_pool2d_forward(
        x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=5
    )
    np.testing.assert_array_equal(avg, expected)


def test_data_format_and_workspace_stay_keyword_only():
    x, w = _rng_arrays((1, 5, 5, 2), (3, 3, 2, 2))
    with pytest.raises(TypeError, match="positional"):
        ic.conv2d_forward(x, w, None, 1, 0, 1, 1, "NHWC")


def test_pytorch_shaped_arrays_without_nchw_say_so():
    x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))  # torch's (N, C, H, W) and (C_out, C_in, kh, kw)
    with pytest.raises(ValueError, match=r"look like PyTorch's NCHW layout .*pass data_format='NCHW'"):
        ic.conv2d_forward(x, w)
    with pytest.raises(ValueError, match=r"groups must divide .*pass data_format='NCHW'"):
        ic.conv2d_forward(np.ones((2, 4, 8, 9)), np.ones((3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"look like PyTorch's NCHW layout .*pass data_format='NCHW'"):
        ic.conv_transpose2d_forward(x, np.ones((3, 4, 3, 3)))  # torch's (C_in, C_out, kh, kw)
    out, _ = ic.conv2d_forward(x, w, data_format="NCHW")  # and with it, they work
    assert out.shape == (2, 4, 6, 6)


def test_nhwc_arrays_with_nchw_say_so():
    with pytest.raises(ValueError, match=r"look like NHWC arrays: leave data_format at 'NHWC'"):
        ic.conv2d_forward(np.ones((2, 8, 8, 3)), np.ones((3, 3, 3, 4)), data_format="NCHW")


def test_no_hint_when_neither_layout_fits():
    with pytest.raises(ValueError, match=r"but x has C=5 channels$"):
        ic.conv2d_forward(np.ones((2, 8, 8, 5)), np.ones((3, 3, 3, 4)))
