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
from im2col_cnn.geometry import tiles as pool_tiles
from im2col_cnn.geometry.tiles import input_tiles

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def _input(shape, seed, first):
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 4, shape).astype(np.float64)  # many ties
    x[(0,) * (len(shape) - 1) + (0,)] = np.nan
    x[(0,) + (1,) * (len(shape) - 2) + (0,)] = np.nan  # the same windows' later NaN wins
    x[(-1,) + tuple(slice(0, max(1, s // 3)) for s in shape[1:-1]) + (-1,)] = -np.inf  # a block of -inf
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if first else x


def _same_as_the_loops(layer: str, kind: str, out, cache, rout, rcache, seed: int) -> None:
    """The engine's output, indices and gradient against the reference loops'."""
    np.testing.assert_allclose(out, rout, rtol=1e-12, equal_nan=True)
    if kind == "max":
        np.testing.assert_array_equal(cache.indices, rcache.indices)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    dx = getattr(ic, f"{layer}_backward")(dout, cache)
    assert_close(dx, getattr(ref, f"{layer}_backward")(dout, rcache), np.float64)


CASES = [  # (channels-last shape, kernel, stride, padding, ceil_mode)
    ((2, 300, 3), 270, 150, 120, True),
    ((2, 40, 37, 2), 17, 9, 8, True),
    ((2, 36, 40, 2), 16, 20, 3, False),  # the stride passes the window: inputs no window reads
    ((1, 9, 10, 11, 2), (7, 7, 7), (4, 4, 4), (3, 2, 1), True),
    # windows overlapping more than pairwise stay on the pooling kernels (a step per offset)
    ((2, 300, 3), 270, 13, 0, False),
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
    kernel, stride = np.broadcast_to(k, nd), np.broadcast_to(s, nd)
    # average pooling is separable on the pooling kernels: long only where an axis has more than 255 taps
    assert cache.long == (all(kernel <= 2 * stride) and (kind == "max" or kernel.max() > 255))
    _same_as_the_loops(f"{kind}_pool{nd}d", kind, out, cache, rout, rcache, 1)


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
    _same_as_the_loops(f"adaptive_{kind}_pool{nd}d", kind, out, cache, rout, rcache, 3)


def test_global_max_pooling_of_a_large_image_equals_numpys_max():
    x = np.random.default_rng(4).standard_normal((1, 512, 512, 4)).astype(np.float32)
    out, cache = ic.adaptive_max_pool2d_forward(x, 1)
    np.testing.assert_array_equal(out[:, 0, 0], x.max(axis=(1, 2)))
    flat = x.reshape(1, -1, 4).argmax(axis=1)  # no NaN: NumPy's first maximum is PyTorch's
    np.testing.assert_array_equal(cache.indices[:, 0, 0], flat)


@pytest.mark.parametrize(
    ("layer", "args"),
    [
        ("max_pool2d", (20, 12)),
        ("avg_pool2d", (20, 12)),
        ("max_pool2d", ((300, 100),)),
        ("adaptive_max_pool2d", (7,)),
        ("adaptive_avg_pool2d", (7,)),
        ("adaptive_max_pool2d", ((3, 130),)),
        ("adaptive_avg_pool2d", ((3, 130),)),
    ],
)
def test_results_are_the_same_bits_in_either_layout(layer, args):
    """The stacked windows are laid out alike whatever the input's layout, so the sums add in the same order."""
    x = np.random.default_rng(5).standard_normal((2, 300, 100, 3)).astype(np.float32)
    x[0, 7, 8, 1] = x[1, 200, 50, 2] = np.nan
    fwd, bwd = getattr(ic, f"{layer}_forward"), getattr(ic, f"{layer}_backward")
    out, cache = fwd(x, *args)
    out_f, cache_f = fwd(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), *args, data_format="NCHW")
    np.testing.assert_array_equal(out_f.transpose(0, 2, 3, 1), out)
    dout = np.random.default_rng(6).standard_normal(out.shape).astype(np.float32)
    dx_f = bwd(np.ascontiguousarray(dout.transpose(0, 3, 1, 2)), cache_f)
    np.testing.assert_array_equal(dx_f.transpose(0, 2, 3, 1), bwd(dout, cache))
    if "max" in layer:
        np.testing.assert_array_equal(cache_f.indices.transpose(0, 2, 3, 1), cache.indices)


def test_a_nan_in_a_large_global_max_pooling_is_found_in_a_few_passes():
    """Windows holding NaN are redone as one more reduction (of the NaN positions' flat indices), not a step per
    position: the last NaN of a 512x512 window."""
    x = np.random.default_rng(7).standard_normal((1, 512, 512, 2)).astype(np.float32)
    x[0, 3, 4, 0] = x[0, 300, 2, 0] = np.nan
    out, cache = ic.adaptive_max_pool2d_forward(x, 1)
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 0, 0, 1] == x[..., 1].max()
    np.testing.assert_array_equal(cache.indices[0, 0, 0], [300 * 512 + 2, x[0, :, :, 1].argmax()])


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
def test_global_average_pooling_sums_accurately(first):
    """Summed in groups of about sqrt(S) positions: float32 within a few roundings of the float64 mean, where
    NumPy's channels-last mean, position after position, is off by 1e-5."""
    x = (np.random.default_rng(8).random((2, 1000, 1000, 3)) + 1).astype(np.float32)
    exact = x.astype(np.float64).mean(axis=(1, 2))
    arr = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if first else x
    out, _ = ic.adaptive_avg_pool2d_forward(arr, 1, data_format="NCHW" if first else "NHWC")
    got = out[:, :, 0, 0] if first else out[:, 0, 0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=1e-6)


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    ("shape", "size"),
    [((2, 3, 2), 40), ((2, 4, 2, 3), (64, 9)), ((1, 10, 10, 2), 15), ((1, 3, 2, 3, 2), (20, 7, 3))],
)
def test_adaptive_pooling_to_a_larger_size_matches_the_loops(shape, size, kind, first):
    """More outputs than inputs: each input lies in many windows, each window holds one or two inputs; max
    pooling's gradient then goes from the windows' side (a sum over the consecutive windows sharing a winner)."""
    nd = len(shape) - 2
    x = _input(shape, 9, first)
    fmt = FORMATS[nd][first]
    out, cache = getattr(ic, f"adaptive_{kind}_pool{nd}d_forward")(x, size, data_format=fmt)
    rout, rcache = getattr(ref, f"adaptive_{kind}_pool{nd}d_forward")(x, size, data_format=fmt)
    _same_as_the_loops(f"adaptive_{kind}_pool{nd}d", kind, out, cache, rout, rcache, 10)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_adaptive_pooling_to_a_larger_size_across_tiles_matches_the_loops(kind, monkeypatch):
    """An output of several tiles (made small here): windows holding two inputs straddle the tiles' inputs."""
    monkeypatch.setattr(pool_tiles, "TILE_BYTES", 2**17)  # the adaptive kernels' tiles: 2**16 bytes
    x = _input((1, 51, 3, 8), 11, False)
    out, cache = getattr(ic, f"adaptive_{kind}_pool2d_forward")(x, (301, 7))
    rout, rcache = getattr(ref, f"adaptive_{kind}_pool2d_forward")(x, (301, 7))
    assert len(input_tiles(x.shape, cache.axes, 8, 2**16)) > 2
    _same_as_the_loops(f"adaptive_{kind}_pool2d", kind, out, cache, rout, rcache, 12)
