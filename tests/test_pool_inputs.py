"""Pooling's edge inputs: zero channels (or rows, columns) are refused as convolution refuses them; an empty
batch still works; ``ceil_mode``/``count_include_pad`` take bool-like ints (see test_general_errors)."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(
    ("shape", "fmt"),
    [((2, 7, 6, 0), "NHWC"), ((2, 0, 7, 6), "NCHW"), ((2, 0, 6, 3), "NHWC"), ((2, 3, 7, 0), "NCHW")],
)
def test_pooling_refuses_empty_dimensions_except_the_batch(name, shape, fmt):
    message = rf"x must not be empty except in the batch dimension, got shape \({', '.join(map(str, shape))}\)"
    with pytest.raises(ValueError, match=message):
        getattr(ic, f"{name}_forward")(np.ones(shape), 2, data_format=fmt)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pooling_an_empty_batch_in_either_layout(name, fmt):
    x = np.ones((0, 3, 6, 6)) if fmt == "NCHW" else np.ones((0, 6, 6, 3))
    out, cache = getattr(ic, f"{name}_forward")(x, 3, stride=2, padding=1, data_format=fmt)
    assert out.shape == ((0, 3, 3, 3))
    dx = getattr(ic, f"{name}_backward")(np.ones(out.shape), cache)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    if name == "max_pool2d":
        assert cache.indices.shape == out.shape
