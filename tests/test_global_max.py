"""Global max pooling (adaptive max pooling to 1): the maximum of every image's channel and where it first lies,
in two levels of about sqrt(S) positions (channels-last) or along contiguous channel planes (channels-first),
against the reference loops -- ties (the first in row-major order wins), NaN (the last wins), -inf, position
counts around the levels' edges -- for every thread count, and the way back for views it cannot merge."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic
import reference as ref
from im2col_cnn.kernels import global_max as global_max_module

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}
SHAPES = [  # channels-last: position counts below, at and past a square, with a partial last row
    (3, 1, 2),
    (3, 2, 2),
    (2, 7, 5),
    (2, 63, 3),
    (2, 64, 3),
    (2, 97, 4),
    (2, 300, 2),
    (2, 7, 7, 5),
    (2, 5, 13, 3),
    (2, 3, 4, 5, 2),
]


def _input(shape, seed, nan):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(np.float64)  # few values: many ties
    x[-1, ..., -1] = -np.inf  # a channel of -inf only
    if nan:
        flat = x[0].reshape(-1, shape[-1])
        flat[rng.integers(0, flat.shape[0], 3), 0] = np.nan  # the last of them wins
    return x


@pytest.mark.parametrize("nan", [False, True], ids=["ties", "NaN"])
@pytest.mark.parametrize("layout", [0, 1], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_global_max_pooling_matches_the_loops(shape, dtype, layout, nan, monkeypatch):
    monkeypatch.setattr(global_max_module, "FEW_POSITIONS", 1)  # the global path for every size
    monkeypatch.setattr(global_max_module, "FEW_PLANE_POSITIONS", 1)
    nd = len(shape) - 2
    fmt = FORMATS[nd][layout]
    x = _input(shape, len(shape) + shape[1], nan).astype(dtype)
    x = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if layout else x
    out, cache = getattr(ic, f"adaptive_max_pool{nd}d_forward")(x, 1, data_format=fmt)
    rout, rcache = getattr(ref, f"adaptive_max_pool{nd}d_forward")(x.astype(np.float64), 1, data_format=fmt)
    assert cache.pool is None and cache.winners is not None  # the global path
    np.testing.assert_array_equal(out, rout.astype(dtype))
    np.testing.assert_array_equal(cache.indices, rcache.indices)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dx = getattr(ic, f"adaptive_max_pool{nd}d_backward")(dout, cache)
    np.testing.assert_array_equal(dx, getattr(ref, f"adaptive_max_pool{nd}d_backward")(dout, rcache).astype(dtype))


@pytest.mark.parametrize("layout", [0, 1], ids=["channels-last", "channels-first"])
def test_identical_for_every_thread_count(layout, monkeypatch):
    """Blocks of images and of channels (a tile's worth of partial maxima, made small here) on 1 to 3 threads."""
    x = _input((5, 23, 19, 7), 3, True)
    x = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if layout else x
    fmt = FORMATS[2][layout]
    monkeypatch.setattr(global_max_module, "TILE_BYTES", 200)  # blocks of one or two channels
    results = []
    before = ic.get_num_threads()
    try:
        for threads in (1, 2, 3):
            ic.set_num_threads(threads)
            out, cache = ic.adaptive_max_pool2d_forward(x, 1, data_format=fmt)
            results.append((out, cache.indices))
    finally:
        ic.set_num_threads(before)
    _, rcache = ref.adaptive_max_pool2d_forward(x, 1, data_format=fmt)
    for out, indices in results:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(indices, rcache.indices)


@pytest.mark.parametrize(
    ("layout", "positions", "global_path"),
    [(0, (3, 5), False), (0, (4, 4), True), (1, (7, 7), False), (1, (8, 8), True)],
)
def test_few_positions_take_the_pooling_kernels(layout, positions, global_path):
    """Below 16 positions (channels-last) or 64 (channels-first planes) a step per position costs less."""
    x = _input((2, *positions, 3), 2, False)
    x = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if layout else x
    out, cache = ic.adaptive_max_pool2d_forward(x, 1, data_format=FORMATS[2][layout])
    assert (cache.pool is None) == global_path
    np.testing.assert_array_equal(out, ref.adaptive_max_pool2d_forward(x, 1, data_format=FORMATS[2][layout])[0])


def test_a_view_whose_positions_do_not_merge_takes_the_windows_path():
    """Every other row and column of an image: its positions are no single strided run, so the global path gives
    way to the ordinary pooling path (no copy of the input), with the same results."""
    x = _input((2, 14, 18, 3), 5, True)[:, ::2, ::3]
    out, cache = ic.adaptive_max_pool2d_forward(x, 1)
    assert cache.pool is not None
    rout, rcache = ref.adaptive_max_pool2d_forward(x, 1)
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(cache.indices, rcache.indices)


@pytest.mark.parametrize("layout", [0, 1], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize(("shape", "kwargs"), [((3, 100, 5), {}), ((2, 9, 9, 4), {"stride": 2}), ((2, 4, 5, 6, 3), {})])
def test_max_pooling_over_the_whole_input_is_a_global_max_pooling(shape, kwargs, layout):
    """``max_pool1d(x, x.shape[2])``, a text CNN's max over time: its one window runs the global path (flat
    winners, as a long window's), with the loops' values, indices and gradient."""
    nd = len(shape) - 2
    fmt = FORMATS[nd][layout]
    x = _input(shape, 6, True)
    x = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if layout else x
    kernel = shape[1:-1]
    out, cache = getattr(ic, f"max_pool{nd}d_forward")(x, kernel, data_format=fmt, **kwargs)
    rout, rcache = getattr(ref, f"max_pool{nd}d_forward")(x, kernel, data_format=fmt, **kwargs)
    assert cache.long  # flat winners, from the global path
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(cache.indices, rcache.indices)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx = getattr(ic, f"max_pool{nd}d_backward")(dout, cache)
    np.testing.assert_array_equal(dx, getattr(ref, f"max_pool{nd}d_backward")(dout, rcache))
