"""The input gradient's two paths: chosen by estimated cost (not by the stride alone), and equal in value.

The flipped-kernel correlations of ``dout`` (one per phase of the stride) and ``dout · wᵀ`` scattered back by
col2im compute the same gradient. At stride 1 the correlation was always taken; with a kernel nearly as large as
the input it costs ``kh*kw`` times more than the scatter (a 100x100 kernel on a 100x100 image: seconds instead
of milliseconds).
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import FLOAT_DTYPES, assert_close

import im2col_cnn as ic
import reference as ref
from im2col_cnn.kernels.input_grad import flipped_correlation_pays, input_grad
from im2col_cnn.layers.conv import prepare_conv


def _geometry(x_shape, w_shape, **kw):
    cache, _ = prepare_conv(np.empty(x_shape), np.empty(w_shape), None, kw.pop("stride", 1), kw.pop("padding", 0), **kw)
    return cache.geom


@pytest.mark.parametrize(
    "x_shape, w_shape, kw",
    [
        ((1, 100, 100, 16), (100, 100, 16, 16), dict()),  # one output position, a window of the whole image
        ((1, 40, 40, 16), (30, 30, 16, 16), dict()),
        ((2, 32, 32, 16), (32, 32, 16, 8), dict(padding=4)),
        ((32, 56, 56, 64), (1, 1, 64, 128), dict(stride=2)),  # strided 1x1: windows never overlap
    ],
)
def test_scatter_path_where_the_correlation_costs_more(x_shape, w_shape, kw):
    assert not flipped_correlation_pays(_geometry(x_shape, w_shape, **kw), w_shape)


@pytest.mark.parametrize(
    "x_shape, w_shape, kw",
    [
        ((64, 16, 16, 64), (3, 3, 64, 64), dict(padding=1)),  # the C3 case
        ((32, 28, 28, 128), (3, 3, 128, 128), dict(padding=1)),  # the C4 case
        ((32, 28, 28, 32), (5, 5, 32, 32), dict(padding=2)),
        ((8, 20, 20, 16), (3, 3, 16, 16), dict(padding=2, dilation=2)),
        ((32, 28, 28, 64), (1, 1, 64, 64), dict()),
        ((32, 32, 32, 32), (4, 4, 32, 32), dict(stride=2, padding=1)),  # strided: one correlation per phase
        ((8, 20, 20, 16), (3, 3, 16, 16), dict(padding=3)),  # padding past the kernel's reach: a cropped dout
    ],
)
def test_small_kernels_on_large_images_take_the_correlation_path(x_shape, w_shape, kw):
    assert flipped_correlation_pays(_geometry(x_shape, w_shape, **kw), w_shape, kw.get("groups", 1))


CASES = [
    ((2, 7, 6, 4), (3, 3, 4, 5), dict(padding=1)),
    ((2, 9, 11, 3), (3, 3, 3, 4), dict(stride=2, padding=1)),
    ((2, 13, 12, 2), (4, 5, 2, 3), dict(stride=(3, 2), padding=(2, 1), dilation=(2, 3))),  # phases without taps
    ((1, 7, 8, 2), (2, 3, 2, 2), dict(stride=4, padding=((0, 1), (2, 0)))),
    ((2, 8, 8, 4), (3, 3, 4, 4), dict(padding=3)),
    ((2, 9, 8, 4), (3, 2, 2, 6), dict(padding=((2, 0), (1, 1)), dilation=(2, 1), groups=2)),
    ((1, 8, 8, 3), (8, 8, 3, 2), dict()),
    ((1, 10, 9, 2), (6, 5, 2, 3), dict(padding=(2, 1))),
    ((3, 6, 6, 6), (2, 2, 1, 6), dict(padding="same", groups=6)),  # depthwise: one path only
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", CASES, ids=str)
def test_both_paths_agree_with_the_loops(x_shape, w_shape, kw, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    out, cache = ic.conv2d_forward(x, w, **kw)
    dout = rng.standard_normal(out.shape).astype(dtype)
    _, rcache = ref.conv2d_forward(x, w, **kw)
    expected = ref.conv2d_backward(dout, rcache)[0]
    assert_close(ic.conv2d_backward(dout, cache)[0], expected, dtype)
    for path in ("correlate", "scatter"):
        dx = input_grad(dout, cache.w, cache.geom, np.zeros(x_shape, dtype), 2**30, cache.groups, path=path)
        assert_close(dx, expected, dtype)
