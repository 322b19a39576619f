"""Windows of many taps at a stride of 2 or more: the pooling kernels reduce them in one NumPy call over a strided
view of the windows (one call more for each window the padding cuts), not one call per tap; the average-pool
gradient spreads them the same way; max pooling's winners along a first axis of few windows go window by window;
channels-first input of 32 channels or more copies its tiles channels-last for that.

The results must be the tap-by-tap path's -- sums added in tap order from the first tap's value (-0.0 stays
-0.0), NaN and infinities where they were, the first of tied maxima -- in the same tiles and both layouts, and the
loops' values.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import im2col_cnn as ic
import reference as ref
from benchmarks.memory import peak_scratch
from im2col_cnn.geometry import tiles as pool_tiles
from im2col_cnn.kernels import pool_backward, pool_forward, pool_plan, whole_windows
from im2col_cnn.kernels.pool_forward import pool_geometry

# inputs hold an infinity and its negative in one window: their sum is NaN, as tap by tap
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}

CASES = [  # (layer, channels-last shape, kernel or output size, keyword arguments)
    ("avg_pool1d", (3, 250, 40), 20, dict(stride=9, padding=7)),  # cut windows at both ends
    ("avg_pool1d", (3, 250, 40), 20, dict(stride=9, padding=9, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", (2, 40, 50, 33), (10, 8), dict(stride=(4, 3), padding=(3, 4))),
    ("avg_pool3d", (1, 30, 9, 26, 32), (8, 3, 9), dict(stride=(3, 2, 4), padding=(2, 1, 4), divisor_override=7)),
    ("max_pool2d", (2, 20, 50, 33), (4, 10), dict(stride=(2, 4), padding=(1, 5), dilation=(1, 2))),  # later axis
    ("adaptive_avg_pool1d", (3, 1000, 40), 7, {}),  # windows of 144 at stride 143, the first one cut
    ("adaptive_avg_pool2d", (2, 56, 56, 33), 7, {}),  # 8x8 at stride 8
    ("adaptive_avg_pool2d", (2, 60, 60, 33), 2, {}),  # 30x30: 900 offsets, separable all the same
    ("adaptive_max_pool2d", (2, 3, 1000, 33), (None, 7), {}),  # the later axis' maxima
    # max pooling's winners window by window along the first axis
    ("max_pool1d", (3, 250, 40), 40, dict(stride=30, padding=10, dilation=2)),
    ("adaptive_max_pool1d", (3, 1000, 40), 7, {}),
    ("max_pool2d", (2, 60, 9, 33), (24, 3), dict(stride=(20, 2), padding=(6, 1))),  # then tap by tap
    ("max_pool2d", (2, 64, 15, 33), (16, 2), dict(stride=(16, 2))),  # disjoint windows: separable now
]
IDS = [f"{c[0]}{c[1]}" for c in CASES]


def _input(shape, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    x[0, ..., 0] = -0.0  # whole windows of -0.0: their sum is -0.0
    x.reshape(-1)[5::97] = np.nan
    x.reshape(-1)[11::89] = np.inf
    x.reshape(-1)[13::83] = -np.inf
    return x


def _call(layer, x, size, kwargs, first):
    nd = x.ndim - 2
    arr = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if first else x
    out, cache = getattr(ic, f"{layer}_forward")(arr, size, data_format=FORMATS[nd][first], **kwargs)
    return (np.moveaxis(out, 1, -1) if first else out), cache


def _assert_same_bits(actual, expected):
    """The same values, NaN where NaN (whose sign NumPy's loops leave to the hardware: an infinity minus an
    infinity, then another NaN, gives either's), and the same sign of every zero."""
    np.testing.assert_array_equal(actual, expected)
    number = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(actual[number]), np.signbit(expected[number]))


@pytest.fixture(autouse=True)
def _fresh_plans():
    """Gradient plans are memoized, and whether they spread depends on ``MANY_TAPS``, which tests change."""
    pool_backward._plan.cache_clear()
    yield
    pool_backward._plan.cache_clear()


def _tap_by_tap(monkeypatch):
    """Every axis tap by tap, in place: the path before windows were reduced whole (gradient plans made afresh)."""
    for module in (whole_windows, pool_forward, pool_backward):
        monkeypatch.setattr(module, "MANY_TAPS", 10**9)
    pool_backward._plan.cache_clear()


def _runs(monkeypatch, runs: int) -> None:
    """Windows reduced whole in tiles of up to ``runs`` runs (10**9: wherever the rest allows)."""
    monkeypatch.setattr(whole_windows, "WHOLE_WINDOW_RUNS", runs)


def _spy(monkeypatch) -> list[bool]:
    """Records whether each axis of each tile was taken whole (max pooling's winners: True on every call)."""
    calls: list[bool] = []
    reduce_whole, max_whole = pool_forward.reduce_whole_windows, pool_forward.max_whole_windows

    def spy_reduce(*args):
        calls.append(reduce_whole(*args))
        return calls[-1]

    def spy_max(*args):
        calls.append(True)
        return max_whole(*args)

    monkeypatch.setattr(pool_forward, "reduce_whole_windows", spy_reduce)
    monkeypatch.setattr(pool_forward, "max_whole_windows", spy_max)
    return calls


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize(("layer", "shape", "size", "kwargs"), CASES, ids=IDS)
def test_whole_windows_give_the_tap_by_tap_bits(layer, shape, size, kwargs, dtype, first, monkeypatch):
    x = _input(shape, dtype)
    tiles = pool_tiles.TILE_BYTES
    forced: list[bool] = []
    for tile_bytes, runs in ((tiles, whole_windows.WHOLE_WINDOW_RUNS), (tiles, 10**9), (2**13, 10**9)):
        # the default tiles as they come, then reduced whole wherever they can be, then in small tiles (which may
        # cut every window); against tap by tap in the same tiles
        with monkeypatch.context() as m:
            m.setattr(pool_tiles, "TILE_BYTES", tile_bytes)
            _tap_by_tap(m)
            expected, expected_cache = _call(layer, x, size, kwargs, first)
        with monkeypatch.context() as m:
            m.setattr(pool_tiles, "TILE_BYTES", tile_bytes)
            _runs(m, runs)
            calls = _spy(m)
            out, cache = _call(layer, x, size, kwargs, first)
        forced += calls if runs == 10**9 else []
        _assert_same_bits(out, expected)
        if "max" in layer:
            np.testing.assert_array_equal(cache.indices, expected_cache.indices)
    assert any(forced), "no axis was reduced whole: the test would not see that path"


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize(("layer", "shape", "size", "kwargs"), CASES, ids=IDS)
def test_whole_windows_match_the_loops(layer, shape, size, kwargs, first, monkeypatch):
    x = np.random.default_rng(1).standard_normal(shape)
    monkeypatch.setattr(pool_tiles, "TILE_BYTES", 2**14)
    _runs(monkeypatch, 10**9)
    calls = _spy(monkeypatch)
    out, cache = _call(layer, x, size, kwargs, first)
    assert any(calls)
    rout, rcache = getattr(ref, f"{layer}_forward")(x, size, **kwargs)
    assert_close(out, rout, np.float64)
    if "max" in layer:
        np.testing.assert_array_equal(np.moveaxis(cache.indices, 1, -1) if first else cache.indices, rcache.indices)


BACKWARD = [  # (layer, channels-last shape, kernel or output size, keyword arguments, whether whole windows spread)
    ("adaptive_avg_pool1d", (3, 1000, 40), 7, {}, True),  # 144 at stride 143: pairs overlap; the first one cut
    ("adaptive_avg_pool2d", (2, 56, 56, 33), 7, {}, True),  # disjoint windows, spread a few calls at a time too
    ("adaptive_avg_pool2d", (2, 60, 60, 33), 2, {}, True),  # 900 offsets in all, 30 an axis
    ("avg_pool1d", (3, 250, 40), 12, dict(stride=30, padding=6), True),  # inputs no window reads
    ("avg_pool1d", (3, 250, 40), 16, dict(stride=9, padding=8, ceil_mode=True, count_include_pad=False), True),
    ("avg_pool2d", (2, 30, 40, 33), (3, 12), dict(stride=(2, 7), padding=(1, 6)), True),  # a short axis, a long one
    ("avg_pool3d", (1, 12, 9, 40, 32), (3, 2, 12), dict(stride=(2, 2, 7), padding=(1, 0, 5), divisor_override=5), True),
    ("avg_pool1d", (3, 250, 40), 20, dict(stride=9, padding=7), False),  # windows over twice the stride: tap by tap
]


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("layer", "shape", "size", "kwargs", "whole"), BACKWARD, ids=[f"{c[0]}{c[1]}" for c in BACKWARD]
)
def test_gradients_spread_over_whole_windows_are_the_tap_by_tap_ones(layer, shape, size, kwargs, whole, dtype, first):
    """The same bits as the spread tap by tap, and the same values as before (disjoint windows went phase by phase,
    copying each window's value: -0.0 where a window's gradient is -0.0 and inputs no window reads are 0 -- now
    0.0, as the spread adds onto 0, as the loops and PyTorch do), and the loops' values."""
    x = _input(shape, dtype)
    backward = getattr(ic, f"{layer}_backward")
    spread = pool_backward.spread_whole_windows
    calls: list[bool] = []
    for tile_bytes in (pool_tiles.TILE_BYTES, 2**13):  # the default tiles, then small ones that cut windows
        with pytest.MonkeyPatch.context() as m:
            m.setattr(pool_tiles, "TILE_BYTES", tile_bytes)
            _tap_by_tap(m)
            out, cache = _call(layer, x, size, kwargs, first)
            dout = _input(out.shape, dtype, seed=1)
            dout_arg = np.ascontiguousarray(np.moveaxis(dout, -1, 1)) if first else dout
            before = backward(dout_arg, cache)
        pool_backward._plan.cache_clear()  # made tap by tap
        with pytest.MonkeyPatch.context() as m:
            m.setattr(pool_tiles, "TILE_BYTES", tile_bytes)
            _, cache = _call(layer, x, size, kwargs, first)
            m.setattr(pool_backward, "spread_whole_windows", lambda *a: False)
            expected = backward(dout_arg, cache)
            _runs(m, 10**9)
            m.setattr(pool_backward, "spread_whole_windows", lambda *a: calls.append(spread(*a)) or calls[-1])
            dx = backward(dout_arg, cache)
        _assert_same_bits(dx, expected)
        np.testing.assert_array_equal(dx, before)
    assert any(calls) is whole  # the path under test ran where it should, and only there
    _, rcache = getattr(ref, f"{layer}_forward")(x.astype(np.float64), size, **kwargs)
    rdx = getattr(ref, f"{layer}_backward")(dout.astype(np.float64), rcache)
    assert_close(np.moveaxis(dx, 1, -1) if first else dx, rdx.astype(dtype), dtype)


def test_windows_the_padding_cuts_keep_their_dilation(monkeypatch):
    """Each cut window is reduced over its own taps, ``dilation`` apart."""
    _runs(monkeypatch, 10**9)
    cut = whole_windows._reduce_cut_window
    seen = []
    monkeypatch.setattr(whole_windows, "_reduce_cut_window", lambda *a: seen.append(a[-1]) or cut(*a))
    x = np.random.default_rng(2).standard_normal((1, 3, 60, 4))
    out, cache = ic.max_pool2d_forward(x, (1, 10), stride=(1, 4), padding=(0, 5), dilation=(1, 3))
    rout, rcache = ref.max_pool2d_forward(x, (1, 10), stride=(1, 4), padding=(0, 5), dilation=(1, 3))
    assert seen  # windows at either end
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(cache.indices, rcache.indices)


def test_average_pooling_over_more_than_255_offsets_but_at_most_255_an_axis_runs_on_the_pooling_kernels():
    """Separable: 30 + 30 taps, not 900, summed in order along each axis."""
    x = np.random.default_rng(3).standard_normal((2, 60, 60, 4))
    _, cache = ic.adaptive_avg_pool2d_forward(x, 2)
    assert cache.pool is not None
    _, cache = ic.avg_pool2d_forward(x, 30)
    assert not cache.long
    _, cache = ic.avg_pool1d_forward(np.zeros((1, 600, 2)), 300)  # more than 255 along the axis
    assert cache.long


def test_a_sum_of_negative_zeros_stays_negative():
    x = np.full((1, 40, 4), -0.0)
    out, _ = ic.avg_pool1d_forward(x, 10, 10)
    assert np.signbit(out).all()


@pytest.mark.parametrize(
    ("x_shape", "k", "s", "winners", "expected"),
    [
        ((2, 1000, 64), 100, 100, False, True),  # average pooling over long windows
        ((2, 1000, 16), 100, 100, False, False),  # ... of few channels: the copies would cost more
        ((2, 1000, 64), 100, 100, True, True),  # max pooling with winners: window by window
        ((2, 1000, 64), 10, 10, True, False),  # ... not where windows outnumber 4/5 of their taps
        ((2, 1000, 64), 100, 1, False, False),  # stride 1: its taps stay tap by tap
        ((2, 1000, 64), 7, 7, False, False),  # few taps
        ((2, 1000, 64), 16, 8, False, False),  # many windows: 2 x 124 runs in a tile, channels-last tap by tap too
        ((2, 100, 16, 64), (10, 2), (10, 2), False, True),  # any axis
    ],
)
def test_which_channels_first_poolings_reduce_whole_windows_channels_last(x_shape, k, s, winners, expected):
    nd = len(x_shape) - 2
    k, s = np.broadcast_to(k, nd), np.broadcast_to(s, nd)
    geom = pool_geometry(x_shape, tuple(map(int, k)), tuple(map(int, s)), (0,) * nd, (1,) * nd, False)
    x = np.broadcast_to(np.float32(0), x_shape)
    assert pool_plan.converts_tiles(geom, winners, True, x) is expected
    assert pool_plan.converts_tiles(geom, winners, False, x) is False


@st.composite
def _long_window_cases(draw):
    """A pooling whose first or last axis has 8 to 20 taps at a stride of 2 or more (any padding, dilation,
    ceil_mode, layout), on small integers (ties) with at times a NaN."""
    nd = draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["max", "avg"]))
    long_axis = draw(st.integers(0, nd - 1))
    k = [draw(st.integers(8, 20)) if a == long_axis else draw(st.integers(1, 4)) for a in range(nd)]
    s = [draw(st.integers(2, 22)) if a == long_axis else draw(st.integers(1, 3)) for a in range(nd)]
    d = [draw(st.integers(1, 2)) if kind == "max" else 1 for _ in range(nd)]
    p = [draw(st.integers(0, kk // 2)) for kk in k]
    spatial = [draw(st.integers(max(1, (kk - 1) * dd + 1 - 2 * pp), 70)) for kk, pp, dd in zip(k, p, d, strict=True)]
    shape = (draw(st.integers(1, 3)), *spatial, draw(st.sampled_from([2, 33])))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).integers(-3, 4, shape).astype(np.float64)
    if draw(st.booleans()):
        x.reshape(-1)[draw(st.integers(0, x.size - 1))] = np.nan
    kwargs = dict(stride=tuple(s), padding=tuple(p), ceil_mode=draw(st.booleans()))
    if kind == "max":
        kwargs["dilation"] = tuple(d)
    return f"{kind}_pool{nd}d", x, tuple(k), kwargs, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(case=_long_window_cases())
def test_long_windows_match_the_loops(case):
    """Whole windows wherever the rest allows (any number of runs), in tiles large and small, against the loops:
    values, PyTorch's indices, gradients."""
    layer, x, k, kwargs, first = case
    with pytest.MonkeyPatch.context() as m:
        _runs(m, 10**9)
        m.setattr(pool_tiles, "TILE_BYTES", 2**13 if x.size % 2 else pool_tiles.TILE_BYTES)
        pool_backward._plan.cache_clear()
        try:
            rout, rcache = getattr(ref, f"{layer}_forward")(x, k, **kwargs)
        except ValueError:  # a dilated window covering no input: both refuse it
            with pytest.raises(ValueError):
                _call(layer, x, k, kwargs, first)
            return
        out, cache = _call(layer, x, k, kwargs, first)
        np.testing.assert_allclose(out, rout, rtol=1e-12, atol=1e-12)  # NaN where NaN
        dout = np.random.default_rng(0).standard_normal(out.shape)
        dx = getattr(ic, f"{layer}_backward")(np.ascontiguousarray(np.moveaxis(dout, -1, 1)) if first else dout, cache)
        assert_close(np.moveaxis(dx, 1, -1) if first else dx, getattr(ref, f"{layer}_backward")(dout, rcache))
        if "max" in layer:
            indices = np.moveaxis(cache.indices, 1, -1) if first else cache.indices
            np.testing.assert_array_equal(indices, rcache.indices)
    pool_backward._plan.cache_clear()


def test_a_gradient_over_windows_of_many_phases_builds_no_phase_table():
    """Average pooling of 170x170 windows at stride 170 spreads axis by axis; the table of its 28,900 stride
    phases, which only the pass phase by phase reads, is not built (37 MiB of plans at a 16 MiB workspace
    limit)."""
    x = np.random.default_rng(5).standard_normal((1, 340, 340, 2))
    out, cache = ic.adaptive_avg_pool2d_forward(x, 2)
    assert cache.pool is not None  # the pooling kernels: 170 taps an axis
    dout = np.ones_like(out)
    pool_backward._plan.cache_clear()
    pool_backward._shared_plan.cache_clear()
    with ic.workspace_limit(16 * 2**20):
        scratch, _ = peak_scratch(lambda: ic.adaptive_avg_pool2d_backward(dout, cache), (dout,))
    assert scratch <= 2 * 2**20, f"{scratch / 2**20:.1f} MiB"
    np.testing.assert_allclose(ic.adaptive_avg_pool2d_backward(dout, cache), 1 / 170**2)
