"""Pooling keeps its scratch memory within the workspace limit, forward and backward, NHWC and NCHW.

Scratch is what a call allocates besides what it returns (the output and the cache's winners, or ``dx``),
measured with tracemalloc as the peak of traced memory during the call minus the returned arrays. Inputs are
cheap to build (``np.broadcast_to`` of one value): the point is what the engine allocates, not the input. NCHW
input is read through an NHWC view (never copied), results are allocated in the caller's layout, and work goes
in tiles, so scratch stays a few MiB even for one image larger than the limit.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import im2col_cnn as ic
from benchmarks.memory import peak_scratch, returned_bytes
from im2col_cnn.geometry import tiles as pool_tiles
from im2col_cnn.geometry.tiles import TILE_BYTES, output_tiles
from im2col_cnn.kernels import pool_plan
from im2col_cnn.kernels.pool_forward import pool_geometry
from im2col_cnn.kernels.pool_plan import WORKER_SCRATCH_BYTES, converts_tiles, forward_tile_bytes
from im2col_cnn.runtime.layout import copies_whole_positions
from im2col_cnn.runtime.workspace import SCRATCH_SLACK

MiB = 2**20
LIMIT = 16 * MiB
POOL_SCRATCH_CONSTANT = SCRATCH_SLACK  # the README's allowance beyond the workspace limit (1 MiB)

CASES = {
    # one image of 128 MiB (float64): per-image temporaries would be tens of MiB
    "one large image NHWC": ((1, 1024, 1024, 16), np.float64, "NHWC"),
    # 64 MiB of NCHW input (float32): a layout copy would be 64 MiB
    "NCHW batch": ((4, 16, 512, 512), np.float32, "NCHW"),
}
WINDOWS = [(2, 2, 0), (3, 2, 1)]  # (kernel, stride, padding): disjoint and overlapping windows


def _scratch(call, inputs: tuple[np.ndarray, ...]) -> tuple[int, int, object]:
    """Scratch of one ``call()`` (benchmarks.memory's measure, leaving ``inputs`` -- which a cache may hold by
    reference -- out of what the results keep), the bytes its results keep, and what it returned."""
    results: list[object] = []

    def run() -> object:
        results.append(call())
        return results[-1]

    scratch, _ = peak_scratch(run, inputs)
    return scratch, returned_bytes(results[0], inputs), results[0]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", list(CASES))
def test_pool_scratch_stays_within_the_workspace_limit(case, kind, window):
    shape, dtype, fmt = CASES[case]
    k, s, p = window
    x = np.broadcast_to(np.asarray(1.5, dtype=dtype), shape)
    fwd, bwd = getattr(ic, f"{kind}_pool2d_forward"), getattr(ic, f"{kind}_pool2d_backward")
    ic.set_num_threads(4)  # every core, up to 4: each thread has its own scratch
    try:
        _check_scratch(x, k, s, p, fmt, fwd, bwd)
    finally:
        ic.set_num_threads(None)


def _check_scratch(x, k, s, p, fmt, fwd, bwd):
    with ic.workspace_limit(LIMIT):
        scratch, kept, (out, cache) = _scratch(lambda: fwd(x, k, stride=s, padding=p, data_format=fmt), (x,))
        assert scratch <= LIMIT + POOL_SCRATCH_CONSTANT, f"forward scratch {scratch / MiB:.1f} MiB"
        # the cache holds x by reference, and max pooling's one-byte winners: no copy of x or of out
        assert kept <= out.nbytes + out.size + MiB, f"forward returned {kept / MiB:.1f} MiB"
        assert out.dtype == x.dtype and out.flags.c_contiguous
        assert out.shape[1 if fmt == "NCHW" else 3] == 16
        # 4 of the 9 taps of a 3x3 corner window read x
        corner = 1.5 if fwd is ic.max_pool2d_forward or p == 0 else 1.5 * 4 / 9
        np.testing.assert_allclose(out[(0,) * 4], corner, rtol=1e-6)
        dout = np.broadcast_to(np.asarray(1.0, dtype=x.dtype), out.shape)
        scratch, _, dx = _scratch(lambda: bwd(dout, cache), (dout,))
        assert scratch <= LIMIT + POOL_SCRATCH_CONSTANT, f"backward scratch {scratch / MiB:.1f} MiB"
        assert dx.shape == x.shape and dx.dtype == x.dtype and dx.flags.c_contiguous
    if fwd is ic.max_pool2d_forward and k == 2:  # disjoint windows of equal values: each one's first position gets 1
        assert dx[(0,) * 4] == 1 and dx.sum() == out.size


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize(
    ("layer", "arg"), [("adaptive_max_pool2d", 7), ("adaptive_avg_pool2d", 10), ("max_pool2d", 512)]
)
def test_adaptive_kernels_scratch_stays_within_the_limit_on_real_arrays(layer, arg, fmt):
    """Real contiguous arrays (a channels-first one is read as one plane per image and channel, not through the
    channels-last view a broadcast input gets): windows of more than 255 offsets, on the adaptive kernels."""
    x = np.random.default_rng(0).standard_normal((4, 512, 512, 16), dtype=np.float32)
    if fmt == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    fwd, bwd = getattr(ic, f"{layer}_forward"), getattr(ic, f"{layer}_backward")
    ic.set_num_threads(4)
    try:
        with ic.workspace_limit(LIMIT):
            scratch, _, (out, cache) = _scratch(lambda: fwd(x, arg, data_format=fmt), (x,))
            assert scratch <= LIMIT + POOL_SCRATCH_CONSTANT, f"forward scratch {scratch / MiB:.1f} MiB"
            dout = np.ones_like(out)
            scratch, _, dx = _scratch(lambda: bwd(dout, cache), (dout,))
            assert scratch <= LIMIT + POOL_SCRATCH_CONSTANT, f"backward scratch {scratch / MiB:.1f} MiB"
    finally:
        ic.set_num_threads(None)
    assert cache.long if layer == "max_pool2d" else cache.pool is None  # the adaptive kernels ran
    assert dx.shape == x.shape and np.isclose(dx.sum(dtype=np.float64), dout.size)  # each window spreads 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, fmt, window, converted",
    [
        ((4, 128, 128, 64), "NHWC", (3, 2, 1), False),
        ((4, 128, 128, 64), "NHWC", (4, 2, 1), False),
        ((4, 128, 128, 64), "NHWC", (2, 2, 0), False),
        ((4, 64, 128, 128), "NCHW", (3, 2, 1), False),  # long rows: pooled in place
        ((4, 64, 128, 128), "NCHW", (2, 2, 0), False),
        ((64, 64, 60, 60), "NCHW", (3, 2, 1), True),  # short rows: copied channels-last, tile by tile
        ((64, 64, 30, 30), "NCHW", (3, 1, 1), True),  # likewise, at stride 1: half tiles
        ((2, 32, 64, 64, 64), "NCDHW", (3, 2, 1), False),  # volumes: in place
        ((2048, 64, 60), "NCW", (3, 2, 1), False),  # signals: in place
    ],
    ids=str,
)
def test_max_pool_forward_tiles_keep_one_threads_scratch(shape, fmt, window, converted, dtype):
    """Max pooling's forward pass at a stride of 2 or more reads tiles of twice ``TILE_BYTES`` (fewer, longer ufunc
    calls on several threads), and tiles copied channels-last ``TILE_BYTES`` (half that at stride 1); one thread's
    scratch stays within ``WORKER_SCRATCH_BYTES``, on which the workspace limit's thread cap rests."""
    k, s, p = window
    nd = len(shape) - 2
    x = np.broadcast_to(np.asarray(1.5, dtype=dtype), shape)
    first = fmt[1] == "C"
    last = (shape[0], *shape[2:], shape[1]) if first else shape
    geom = pool_geometry(last, (k,) * nd, (s,) * nd, (p,) * nd, (1,) * nd, False)
    x_last = x.transpose(0, *range(2, nd + 2), 1) if first else x  # what the kernel sees
    assert (converts_tiles(geom, True, first) and copies_whole_positions(x_last)) is converted
    budget = forward_tile_bytes(geom, True, converted)
    assert budget == (TILE_BYTES // (1 if s >= 2 else 2) if converted else 2 * TILE_BYTES if s >= 2 else TILE_BYTES)
    assert np.dtype(dtype).itemsize * x.size >= 4 * budget  # several tiles
    fwd = getattr(ic, f"max_pool{nd}d_forward")
    ic.set_num_threads(1)
    try:
        scratch, _, (out, _) = _scratch(lambda: fwd(x, k, stride=s, padding=p, data_format=fmt), (x,))
    finally:
        ic.set_num_threads(None)
    assert scratch <= WORKER_SCRATCH_BYTES, f"one thread's scratch {scratch / MiB:.2f} MiB"
    assert np.all(out == 1.5)


def test_a_first_call_over_many_kernel_offsets_keeps_its_tile_plans_small():
    """A tile's plan lists every kernel offset only where the kernel reads them (disjoint windows, one axis,
    windows holding NaN): a 5x5x5 stride-1 max pooling's first call, the plans it builds included, stays within
    one thread's scratch (with every offset listed up front: 15.7 MiB)."""
    pool_plan.tile_plan.cache_clear()  # the plans this call builds are part of its scratch
    pool_plan._tile_plan.cache_clear()
    x = np.broadcast_to(np.asarray(1.5), (2, 64, 64, 64, 32))
    ic.set_num_threads(1)
    try:
        scratch, _, (out, _) = _scratch(lambda: ic.max_pool3d_forward(x, 5, stride=1, padding=2), (x,))
    finally:
        ic.set_num_threads(None)
    assert scratch <= WORKER_SCRATCH_BYTES, f"first call's scratch {scratch / MiB:.2f} MiB"
    assert np.all(out == 1.5)


def test_stride_1_windows_reduce_tiles_deeper_than_a_window():
    """Tiles of a 5x5x5 stride-1 pooling of one 512 MiB volume are about two windows deep along the axes that are
    cut, so that a tile reads a few times the inputs it writes outputs, not 23 times: sized by one window span
    they were 8,192 tiles of 1x1x159 outputs, 1.35 s a call instead of 0.38, and the tile list and plans of a
    first call took 12.3 MiB of scratch on one thread."""
    shape = (1, 16, 256, 256, 64)
    geom = pool_geometry(shape, (5,) * 3, (1,) * 3, (2,) * 3, (1,) * 3, False)
    pool_tiles._output_tiles.cache_clear()  # the tiles and plans this call builds are part of its scratch
    pool_plan.tile_plan.cache_clear()
    pool_plan._tile_plan.cache_clear()
    tiles = output_tiles(shape, geom.axes, 8, forward_tile_bytes(geom, False))
    size = lambda ranges: math.prod(r.stop - r.start for r in ranges)  # noqa: E731
    read = [size(i for _, i in t.axes) / size(o for o, _ in t.axes) for t in tiles]  # inputs per output
    assert len(tiles) <= 1300 and sum(read) / len(read) <= 4, (len(tiles), sum(read) / len(read))
    pool_tiles._output_tiles.cache_clear()
    x = np.broadcast_to(np.asarray(1.5), shape)
    ic.set_num_threads(1)
    try:
        call = lambda: ic.avg_pool3d_forward(x, 5, stride=1, padding=2, count_include_pad=False)  # noqa: E731
        scratch, _, (out, _) = _scratch(call, (x,))
    finally:
        ic.set_num_threads(None)
    assert scratch <= WORKER_SCRATCH_BYTES, f"first call's scratch {scratch / MiB:.2f} MiB"
    np.testing.assert_allclose(out, 1.5, rtol=1e-15)


def test_interior_tiles_share_one_plan(monkeypatch):
    """Plans are keyed by what they depend on relative to the tile, so a volume cut into many tiles builds a plan
    for each kind of tile (at an edge or inside), not one per tile; results are the same as in one tile."""
    x = np.random.default_rng(3).standard_normal((1, 24, 24, 24, 4))
    whole, _ = ic.max_pool3d_forward(x, 3, stride=1, padding=1)
    monkeypatch.setattr(pool_tiles, "TILE_BYTES", 2**13)  # tiles of a few rows of a few columns
    pool_plan.tile_plan.cache_clear()
    pool_plan._tile_plan.cache_clear()
    out, _ = ic.max_pool3d_forward(x, 3, stride=1, padding=1)
    geom = pool_geometry(x.shape, (3,) * 3, (1,) * 3, (1,) * 3, (1,) * 3, False)
    tiles = output_tiles(x.shape, geom.axes, 8, forward_tile_bytes(geom, True))
    assert len(tiles) >= 100
    assert pool_plan._tile_plan.cache_info().currsize <= 27  # first, inner, last along each axis at most
    np.testing.assert_array_equal(out, whole)


@pytest.mark.parametrize(
    "kind, shape, k",
    [
        ("avg", (1, 6, 256, 256, 8), 3),  # one buffer regrown tile to tile: old and new at once took 9.6 MiB
        ("avg", (1, 6, 128, 128, 64), 5),  # 2 MiB tiles reading outputs 4 deeper and wider: 10.7 MiB
        ("max", (1, 6, 128, 128, 64), 5),
        ("avg", (1, 1024, 1024, 16), 7),
    ],
    ids=str,
)
def test_pool_gradient_tiles_keep_one_threads_scratch(kind, shape, k):
    """A gradient tile's outputs reach past its inputs by the windows' span, and the average pooling's separable
    spread keeps output-sized buffers: tiles are sized so that one thread's scratch stays within
    ``WORKER_SCRATCH_BYTES`` at stride 1 too, on which the workspace limit's thread cap rests."""
    nd = len(shape) - 2
    x = np.broadcast_to(np.asarray(1.5), shape)
    fwd, bwd = getattr(ic, f"{kind}_pool{nd}d_forward"), getattr(ic, f"{kind}_pool{nd}d_backward")
    out, cache = fwd(x, k, stride=1, padding=k // 2)
    dout = np.broadcast_to(np.asarray(1.0), out.shape)
    ic.set_num_threads(1)
    try:
        scratch, _, dx = _scratch(lambda: bwd(dout, cache), (dout,))
    finally:
        ic.set_num_threads(None)
    assert scratch <= WORKER_SCRATCH_BYTES, f"one thread's scratch {scratch / MiB:.2f} MiB"
    if kind == "avg":  # every window of the interior spreads 1 / k**nd onto each of its k**nd inputs
        np.testing.assert_allclose(dx[(0, *(slice(k, -k),) * nd)], 1.0, rtol=1e-12)
    else:  # all tied: each window's first input wins; along an axis the first wins k // 2 + 1 windows, the
        # next ones one each and the last k // 2 none
        wins = [np.r_[k // 2 + 1, np.ones(n - k // 2 - 1), np.zeros(k // 2)] for n in shape[1:-1]]
        expected = np.multiply.outer(functools.reduce(np.multiply, np.ix_(*wins)), np.ones(shape[-1]))
        np.testing.assert_array_equal(dx[0], expected)


def test_pool_gradient_of_a_volume_stays_within_the_workspace_limit_on_every_thread():
    """A 5x5x5 stride-1 average pooling's gradient of one 512 MiB volume on 4 threads at a 16 MiB limit: 27.7 MiB
    of scratch in tiles of 2 MiB (39.1 MiB with a plan per tile)."""
    x = np.broadcast_to(np.asarray(1.5), (1, 16, 256, 256, 64))
    out, cache = ic.avg_pool3d_forward(x, 5, stride=1, padding=2)
    dout = np.broadcast_to(np.asarray(1.0), out.shape)
    ic.set_num_threads(4)
    try:
        with ic.workspace_limit(LIMIT):
            scratch, _, dx = _scratch(lambda: ic.avg_pool3d_backward(dout, cache), (dout,))
    finally:
        ic.set_num_threads(None)
    assert scratch <= LIMIT + POOL_SCRATCH_CONSTANT, f"backward scratch {scratch / MiB:.1f} MiB"
    np.testing.assert_allclose(dx[0, 2:-2, 2:-2, 2:-2], 1.0, rtol=1e-12)


@pytest.mark.parametrize("way", ["forward", "backward"])
def test_adaptive_average_pooling_to_a_larger_size_keeps_one_threads_scratch(way):
    """Its divisors are taken a tile at a time: all of them, (*out, 1) float64, took 18 MiB for (1, 1000, 1000, 16)
    to 1500x1500 (the forward pass's scratch 19.7 MiB, the backward's 20.5, over a 16 MiB limit on one thread)."""
    x = np.broadcast_to(np.asarray(1.5), (1, 1000, 1000, 16))
    ic.set_num_threads(1)
    try:
        call = lambda: ic.adaptive_avg_pool2d_forward(x, (1500, 1500))  # noqa: E731
        if way == "forward":
            scratch, _, (result, _) = _scratch(call, (x,))
            np.testing.assert_allclose(result, 1.5, rtol=1e-15)
        else:
            out, cache = call()
            dout = np.broadcast_to(np.asarray(1.0), out.shape)
            scratch, _, result = _scratch(lambda: ic.adaptive_avg_pool2d_backward(dout, cache), (dout,))
            assert np.isclose(result.sum(), dout.size, rtol=1e-12)  # each window spreads 1
    finally:
        ic.set_num_threads(None)
    assert scratch <= WORKER_SCRATCH_BYTES, f"one thread's scratch {scratch / MiB:.2f} MiB"


@pytest.mark.parametrize("way", ["forward", "backward"])
def test_average_pooling_that_leaves_out_the_padding_keeps_no_whole_divisor(way):
    """Windows at the border count fewer positions: the divisor is one count per output along each axis,
    multiplied a tile at a time. The whole (*out, 1) array of a (1, 128, 128, 128, 8) volume at stride 1 took
    16 MiB (float64, memoized) plus 8 MiB in the cache: 18.7 MiB of scratch, over a 16 MiB limit."""
    shape = (1, 128, 128, 128, 8)
    x = np.broadcast_to(np.asarray(1.5, dtype=np.float32), shape)
    ic.set_num_threads(1)
    try:
        call = lambda: ic.avg_pool3d_forward(x, 3, stride=1, padding=1, count_include_pad=False)  # noqa: E731
        if way == "forward":
            scratch, kept, (result, _) = _scratch(call, (x,))
            np.testing.assert_array_equal(result, 1.5)  # each window averages only inputs
            assert kept == result.nbytes, f"the results keep {kept / MiB:.2f} MiB, the output {result.nbytes / MiB:.2f}"
        else:
            out, cache = call()
            dout = np.broadcast_to(np.asarray(1.0, dtype=np.float32), out.shape)
            scratch, _, result = _scratch(lambda: ic.avg_pool3d_backward(dout, cache), (dout,))
            # an input gets 1/count from each window covering it: along an axis the border one lies in a window
            # of 2 and one of 3, the next in one of 2 and two of 3, the others in three of 3
            edge = np.array([5 / 6, 7 / 6, *[1.0] * (shape[1] - 4), 7 / 6, 5 / 6])
            expected = functools.reduce(np.multiply.outer, (edge, edge, edge))
            np.testing.assert_allclose(result[0, ..., 0], expected, rtol=1e-6)
            np.testing.assert_array_equal(result[0, ..., 7], result[0, ..., 0])
    finally:
        ic.set_num_threads(None)
    assert scratch <= WORKER_SCRATCH_BYTES, f"one thread's scratch {scratch / MiB:.2f} MiB"
