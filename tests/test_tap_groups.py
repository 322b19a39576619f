"""A batch that makes one tile (one image, or a few small ones): its products split by kernel offsets so that it
runs on several cores -- the same numbers as the loops, bit for bit the same on every thread count and limit."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import FLOAT_DTYPES, assert_close

import im2col_cnn as ic
import reference as ref
from im2col_cnn.geometry.windows import make_geometry
from im2col_cnn.kernels import tap_groups
from im2col_cnn.kernels.conv import column_tiles
from im2col_cnn.runtime.workspace import DEFAULT_WORKSPACE, MIN_WORKSPACE


def _plan(x_shape, kernel, c_out, groups=1, padding=1, by_channel=False):
    geom = make_geometry(x_shape, kernel, (1,) * len(kernel), ((padding, padding),) * len(kernel))
    tiles = column_tiles(x_shape, 4, geom, DEFAULT_WORKSPACE, c_out)
    cut = tap_groups.plan(geom, x_shape[-1] // groups, tiles, groups, by_channel=by_channel)
    return (None if cut is None else cut.blocks), geom


def test_a_lone_tile_is_cut_into_groups_of_kernel_offsets_of_enough_columns():
    offsets, geom = _plan((1, 7, 7, 512), (3, 3), 512)
    assert offsets == [(t, t + 1) for t in range(9)]  # 512 columns each
    offsets, _ = _plan((8, 7, 7, 160), (3, 3), 64)
    assert offsets == [(0, 5), (5, 9)]  # at least 512 columns: 4 offsets of 160 channels, nearly equal groups
    offsets, _ = _plan((1, 40, 300), (5,), 32)
    assert offsets == [(0, 3), (3, 5)]
    # channels-first: groups of input channels, at least 512 columns (57 channels of 9 offsets) each
    channels, _ = _plan((1, 7, 7, 512), (3, 3), 512, by_channel=True)
    assert channels == [(c, c + 64) for c in range(0, 512, 64)]


@pytest.mark.parametrize(
    ("x_shape", "kernel", "c_out", "groups"),
    [
        ((64, 7, 7, 512), (3, 3), 512, 1),  # many tiles: each runs on a thread of its own already
        ((1, 7, 7, 64), (3, 3), 64, 1),  # 576 columns: too few for two groups
        ((1, 7, 7, 512), (3, 3), 512, 2),  # grouped: one product per group already
    ],
    ids=str,
)
def test_no_groups_where_the_batch_has_tiles_to_share_or_too_few_columns(x_shape, kernel, c_out, groups):
    assert _plan(x_shape, kernel, c_out, groups)[0] is None


def _layer_all(fmt, x, w, b, dout, **kw):
    nd = x.ndim - 2
    forward, backward = getattr(ic, f"conv{nd}d_forward"), getattr(ic, f"conv{nd}d_backward")
    out, cache = forward(x, w, b, data_format=fmt, **kw)
    return (out, *backward(dout, cache, workspace=kw.get("workspace")))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize(
    ("x_shape", "w_shape"),
    [((1, 5, 6, 160), (3, 3, 160, 24)), ((2, 4, 3, 300), (2, 3, 300, 16)), ((1, 40, 300), (5, 300, 8))],
    ids=str,
)
def test_a_lone_tile_matches_the_loops_and_is_identical_on_every_thread_count_and_limit(x_shape, w_shape, fmt, dtype):
    nd = len(x_shape) - 2
    assert _plan(x_shape, w_shape[:nd], w_shape[-1], by_channel=fmt == "first")[0] is not None  # the groups run
    rng = np.random.default_rng(8)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[-1]).astype(dtype)
    name = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW")}[nd][fmt == "first"]
    if fmt == "first":  # PyTorch's layouts
        x, w = (
            np.ascontiguousarray(np.moveaxis(x, -1, 1)),
            np.ascontiguousarray(np.moveaxis(np.moveaxis(w, -1, 0), -1, 1)),
        )
    out, _ = getattr(ref, f"conv{nd}d_forward")(x, w, b, padding=1, data_format=name)
    dout = rng.standard_normal(out.shape).astype(dtype)
    expected = (
        out,
        *getattr(ref, f"conv{nd}d_backward")(
            dout, getattr(ref, f"conv{nd}d_forward")(x, w, b, padding=1, data_format=name)[1]
        ),
    )
    results = []
    try:
        for threads, limit in [(1, DEFAULT_WORKSPACE), (2, DEFAULT_WORKSPACE), (2, MIN_WORKSPACE), (3, None)]:
            ic.set_num_threads(threads)
            results.append(_layer_all(name, x, w, b, dout, padding=1, workspace=limit))
    finally:
        ic.set_num_threads(None)
    for got, want in zip(results[0], expected, strict=True):
        assert_close(got, want, dtype)
    for other in results[1:]:
        for a, c in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_the_transposed_convolution_of_a_lone_tile_matches_the_loops(fmt):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 6, 5, 40))  # the transposed convolution's input: 40 channels in
    w = rng.standard_normal((3, 3, 256, 40))  # (kh, kw, C_out, C_in): its forward correlates with 256 channels
    if fmt == "NCHW":  # PyTorch's (C_in, C_out, kh, kw)
        x, w = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    b = rng.standard_normal(256)
    out, cache = ic.conv_transpose2d_forward(x, w, b, padding=1, data_format=fmt)
    expected, ref_cache = ref.conv_transpose2d_forward(x, w, b, padding=1, data_format=fmt)
    assert_close(out, expected, np.float64)
    dout = rng.standard_normal(out.shape)  # its backward's dx: a forward correlation over 256 channels, in groups
    got_all = ic.conv_transpose2d_backward(dout, cache)
    for got, want in zip(got_all, ref.conv_transpose2d_backward(dout, ref_cache), strict=True):
        assert_close(got, want, np.float64)
