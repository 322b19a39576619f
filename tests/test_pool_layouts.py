"""Channels-first max pooling over overlapping windows along short rows (average pooling along the shortest)
copies each input tile channels-last, pools it there and copies its results back (its ufuncs would otherwise run
along a plane's short rows), in 2-D, unless its planes alias in the cache (the copy would read a few channels at a
time): either way the same bits as on channels-last input, winners included, with ties and NaN, 1-D to 3-D, in one
tile or many."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic
from im2col_cnn.geometry import tiles as pool_tiles
from im2col_cnn.kernels.pool_forward import pool_geometry
from im2col_cnn.kernels.pool_plan import converts_tiles
from im2col_cnn.layers.pooling import pool_backward, pool_forward
from im2col_cnn.runtime.layout import copies_whole_positions

CASES = {  # (x shape, kernel, stride, padding, whether its tiles are copied channels-last)
    "2-D, 14x14 planes": ((3, 12, 14, 14), 3, 2, 1, True),
    "2-D, 32x32 planes (4 KiB apart: pooled in place)": ((2, 20, 32, 32), 3, 2, 1, False),
    "2-D, kernel 4 stride 3": ((2, 8, 14, 14), 4, 3, 1, True),
    "3-D (pooled in place)": ((2, 5, 6, 7, 9), 3, 2, 1, False),
    "1-D (pooled in place)": ((3, 12, 20), 3, 2, 1, False),
}


def _last(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1)


def _input(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Channels-first values with many ties (a few levels) and some NaN."""
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    x.flat[rng.choice(x.size, size=x.size // 50, replace=False)] = np.nan
    return x


@pytest.mark.parametrize("tile", [None, 2**12], ids=["one tile", "many tiles"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_channels_first_max_pooling_matches_channels_last_bit_for_bit(case, dtype, tile, monkeypatch):
    shape, k, s, p, converted = CASES[case]
    nd = len(shape) - 2
    if tile is not None:
        monkeypatch.setattr(pool_tiles, "TILE_BYTES", tile)
    x = _input(shape, dtype)
    x_last = np.ascontiguousarray(_last(x))
    geom = pool_geometry(x_last.shape, (k,) * nd, (s,) * nd, (p,) * nd, (1,) * nd, False)
    assert (converts_tiles(geom, True, True) and copies_whole_positions(_last(x))) is converted  # the path tested
    fwd, bwd = getattr(ic, f"max_pool{nd}d_forward"), getattr(ic, f"max_pool{nd}d_backward")
    first = {1: "NCW", 2: "NCHW", 3: "NCDHW"}[nd]
    out, cache = fwd(x, k, s, p, data_format=first)
    ref, ref_cache = fwd(x_last, k, s, p)
    np.testing.assert_array_equal(_last(out), ref)  # NaN in the same places
    np.testing.assert_array_equal(_last(cache.indices), ref_cache.indices)
    assert out.flags.c_contiguous and out.dtype == x.dtype
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    np.testing.assert_array_equal(_last(bwd(dout, cache)), bwd(np.ascontiguousarray(_last(dout)), ref_cache))


def test_adaptive_max_pooling_in_nchw_matches_nhwc_bit_for_bit():
    x = _input((4, 16, 14, 14), np.float32)
    out, cache = ic.adaptive_max_pool2d_forward(x, 5, data_format="NCHW")
    ref, ref_cache = ic.adaptive_max_pool2d_forward(np.ascontiguousarray(_last(x)), 5)
    np.testing.assert_array_equal(_last(out), ref)
    np.testing.assert_array_equal(_last(cache.indices), ref_cache.indices)


AVG_CASES = {  # (x shape, kernel, stride, padding, keywords, whether its tiles are copied channels-last)
    "7x7 planes, rows of 4": ((3, 12, 7, 7), 3, 2, 1, {}, True),
    "14x14 planes, rows of 7, padding left out": ((2, 8, 14, 14), 3, 2, 1, {"count_include_pad": False}, True),
    "8x8 planes, stride 1, ceil_mode": ((2, 6, 8, 8), 3, 1, 1, {"ceil_mode": True}, True),
    "18x18 planes, rows of 9 (pooled in place)": ((2, 6, 18, 18), 3, 2, 1, {}, False),
}


@pytest.mark.parametrize("tile", [None, 2**12], ids=["one tile", "many tiles"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(AVG_CASES))
def test_channels_first_average_pooling_matches_channels_last_bit_for_bit(case, dtype, tile, monkeypatch):
    """Average pooling copies its tiles channels-last along rows of at most 8 outputs: the same sums, divided by
    the same counts."""
    shape, k, s, p, kw, converted = AVG_CASES[case]
    if tile is not None:
        monkeypatch.setattr(pool_tiles, "TILE_BYTES", tile)
    x = _input(shape, dtype)
    x_last = np.ascontiguousarray(_last(x))
    geom = pool_geometry(x_last.shape, (k, k), (s, s), (p, p), (1, 1), kw.get("ceil_mode", False))
    assert converts_tiles(geom, False, True) is converted
    out, cache = ic.avg_pool2d_forward(x, k, s, p, data_format="NCHW", **kw)
    ref, ref_cache = ic.avg_pool2d_forward(x_last, k, s, p, **kw)
    assert out.flags.c_contiguous and out.dtype == x.dtype
    np.testing.assert_array_equal(_last(out), ref)
    dout = np.random.default_rng(2).standard_normal(out.shape).astype(dtype)
    np.testing.assert_array_equal(
        _last(ic.avg_pool2d_backward(dout, cache)), ic.avg_pool2d_backward(_last(dout), ref_cache)
    )
    adaptive, _ = ic.adaptive_avg_pool2d_forward(x, 5, data_format="NCHW")  # 14 to 5: a kernel of 4 at stride 3
    np.testing.assert_array_equal(_last(adaptive), ic.adaptive_avg_pool2d_forward(x_last, 5)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_first_max_pooling_with_every_tie_winning_matches_channels_last(dtype):
    """The drop-in APIs' max pooling (every tied maximum gets the gradient) records no winners: along rows of at
    most 8 outputs its tiles are copied channels-last, the input and the window maxima with them."""
    x = _input((3, 12, 7, 7), dtype)
    x_last = np.ascontiguousarray(_last(x))
    out, cache = pool_forward(x, 3, 2, 1, "max", ties="all", data_format="NCHW")
    ref, ref_cache = pool_forward(x_last, 3, 2, 1, "max", ties="all")
    np.testing.assert_array_equal(_last(out), ref)
    dout = np.random.default_rng(3).standard_normal(out.shape).astype(dtype)
    dx = pool_backward(dout, cache, "max")
    np.testing.assert_array_equal(_last(dx), pool_backward(np.ascontiguousarray(_last(dout)), ref_cache, "max"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_first_max_pooling_gradient_on_the_pooling_kernels_matches_channels_last(dtype, monkeypatch):
    """Images too large for one histogram of their winners, with windows of 9 offsets or fewer, take the pooling
    kernels' gradient: along short rows its tiles are copied channels-last, winners included."""
    from im2col_cnn.kernels import pool_backward as pool_backward_module

    monkeypatch.setattr(pool_backward_module, "winner_scatter_fits", lambda *_: False)
    monkeypatch.setattr(pool_tiles, "TILE_BYTES", 2**12)  # many tiles
    x = _input((3, 12, 14, 14), dtype)
    x_last = np.ascontiguousarray(_last(x))
    out, cache = ic.max_pool2d_forward(x, 3, 2, 1, data_format="NCHW")
    _, ref_cache = ic.max_pool2d_forward(x_last, 3, 2, 1)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    dx = ic.max_pool2d_backward(dout, cache)
    np.testing.assert_array_equal(_last(dx), ic.max_pool2d_backward(np.ascontiguousarray(_last(dout)), ref_cache))


@pytest.mark.parametrize(
    "x_shape, k, s, p, winners, channels_first, expected",
    [
        ((2, 14, 14, 8), 3, 2, 1, True, True, True),
        ((2, 64, 64, 8), 3, 2, 1, True, True, True),  # 32 outputs along the last axis: still short rows
        ((2, 66, 66, 8), 3, 2, 1, True, True, False),  # 33: long enough to pool in place
        ((2, 1024, 8), 3, 2, 1, True, True, False),  # a long signal's rows
        ((2, 6, 7, 9, 8), 3, 2, 1, True, True, False),  # a volume
        ((2, 20, 8), 3, 2, 1, True, True, False),  # a signal: one pass over the kernel offsets
        ((2, 14, 14, 8), 3, 2, 1, True, False, False),  # channels-last input is already in the kernels' layout
        ((2, 14, 14, 8), 3, 2, 1, False, True, True),  # average pooling: few calls per tap; along rows of 7
        ((2, 18, 18, 8), 3, 2, 1, False, True, False),  # ... but not of 9, where the copies cost more
        ((2, 14, 14, 8), 2, 2, 0, True, True, False),  # disjoint windows: likewise
    ],
)
def test_which_poolings_copy_their_tiles_channels_last(x_shape, k, s, p, winners, channels_first, expected):
    nd = len(x_shape) - 2
    geom = pool_geometry(x_shape, (k,) * nd, (s,) * nd, (p,) * nd, (1,) * nd, False)
    assert converts_tiles(geom, winners, channels_first) is expected
