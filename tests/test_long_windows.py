"""Windows of many positions: ordinary pooling over more than 255 kernel offsets, and adaptive windows longer than
16 positions, run as a gather and a reduction per axis (not a step per offset); the numbers are the loops'.

Global max pooling of a 512x512 image went through one step per kernel offset (8 s); these paths keep it to a
few NumPy calls per axis. The values, PyTorch's indices and the gradients must not change: checked against the
reference loops with ties, NaN, windows of -inf only, padding, ceil_mode, strides past the window (inputs no
window reads) and both layouts.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import im2col_cnn as ic
import reference as ref

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def _input(shape, seed, first):
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 4, shape).astype(np.float64)  # many ties
    x[(0,) * (len(shape) - 1) + (0,)] = np.nan
    x[(-1,) + tuple(slice(0, max(1, s // 3)) for s in shape[1:-1]) + (-1,)] = -np.inf  # a block of -inf
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if first else x


CASES = [  # (channels-last shape, kernel, stride, padding, ceil_mode)
    ((2, 300, 3), 270, 13, 0, False),
    ((2, 40, 37, 2), 17, 7, 8, True),
    ((2, 36, 40, 2), 16, 20, 3, False),  # the stride passes the window: inputs no window reads
    ((1, 9, 10, 11, 2), (7, 7, 7), (2, 3, 4), (3, 2, 1), True),
]


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("shape", "k", "s", "p", "ceil"), CASES, ids=[str(c[0]) for c in CASES])
def test_pooling_over_more_than_255_offsets_matches_the_loops(shape, k, s, p, ceil, kind, first):
    nd = len(shape) - 2
    x = _input(shape, 0, first)
    kw = dict(stride=s, padding=p, ceil_mode=ceil, data_format=FORMATS[nd][first])
    out, cache = getattr(ic, f"{kind}_pool{nd}d_forward")(x, k, **kw)
    rout, rcache = getattr(ref, f"{kind}_pool{nd}d_forward")(x, k, **kw)
    assert cache.long
    np.testing.assert_allclose(out, rout, rtol=1e-12, equal_nan=True)
    if kind == "max":
        np.testing.assert_array_equal(cache.indices, rcache.indices)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx = getattr(ic, f"{kind}_pool{nd}d_backward")(dout, cache)
    assert_close(dx, getattr(ref, f"{kind}_pool{nd}d_backward")(dout, rcache), np.float64)


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    ("shape", "size"), [((2, 200, 3), 6), ((2, 110, 41, 2), (6, 2)), ((1, 100, 6, 5, 2), (6, 1, 2))]
)
def test_adaptive_windows_longer_than_16_match_the_loops(shape, size, kind, first):
    nd = len(shape) - 2
    x = _input(shape, 2, first)
    fmt = FORMATS[nd][first]
    out, cache = getattr(ic, f"adaptive_{kind}_pool{nd}d_forward")(x, size, data_format=fmt)
    rout, rcache = getattr(ref, f"adaptive_{kind}_pool{nd}d_forward")(x, size, data_format=fmt)
    assert max(a.extent for a in cache.axes) > 16 and cache.pool is None  # windows no strided pooling has
    np.testing.assert_allclose(out, rout, rtol=1e-12, equal_nan=True)
    if kind == "max":
        np.testing.assert_array_equal(cache.indices, rcache.indices)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx = getattr(ic, f"adaptive_{kind}_pool{nd}d_backward")(dout, cache)
    assert_close(dx, getattr(ref, f"adaptive_{kind}_pool{nd}d_backward")(dout, rcache), np.float64)


def test_global_max_pooling_of_a_large_image_equals_numpys_max():
    x = np.random.default_rng(4).standard_normal((1, 512, 512, 4)).astype(np.float32)
    out, cache = ic.adaptive_max_pool2d_forward(x, 1)
    np.testing.assert_array_equal(out[:, 0, 0], x.max(axis=(1, 2)))
    flat = x.reshape(1, -1, 4).argmax(axis=1)  # no NaN: NumPy's first maximum is PyTorch's
    np.testing.assert_array_equal(cache.indices[:, 0, 0], flat)
