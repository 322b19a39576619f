"""Max pooling's gradient over overlapping windows (or windows of more than 9 offsets), added at each window's
winner (the winner-scatter kernel): against the reference loops, a position that wins several windows, non-finite
gradients, both layouts, every thread count, and images too large for one histogram (then tile by tile)."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic
import reference as ref
from benchmarks.memory import peak_scratch
from im2col_cnn.kernels import adaptive_backward, winner_scatter
from im2col_cnn.kernels import pool_backward as pool_backward_module

# (forward, reference forward, reference backward, x shape channels-last, hyperparameters)
CASES = {
    "max_pool1d k3 s2 p1": (
        ic.max_pool1d_forward,
        ref.max_pool1d_forward,
        ref.max_pool1d_backward,
        (3, 17, 5),
        dict(kernel_size=3, stride=2, padding=1),
    ),
    "max_pool2d k3 s2 p1": (
        ic.max_pool2d_forward,
        ref.max_pool2d_forward,
        ref.max_pool2d_backward,
        (3, 11, 9, 4),
        dict(kernel_size=3, stride=2, padding=1),
    ),
    "max_pool2d k3 s1 dilation 2 ceil": (
        ic.max_pool2d_forward,
        ref.max_pool2d_forward,
        ref.max_pool2d_backward,
        (2, 10, 12, 3),
        dict(kernel_size=3, stride=1, dilation=2, ceil_mode=True),
    ),
    "max_pool3d k3 s2": (
        ic.max_pool3d_forward,
        ref.max_pool3d_forward,
        ref.max_pool3d_backward,
        (2, 7, 6, 9, 3),
        dict(kernel_size=3, stride=2),
    ),
    "adaptive_max_pool1d 13 -> 4": (
        ic.adaptive_max_pool1d_forward,
        ref.adaptive_max_pool1d_forward,
        ref.adaptive_max_pool1d_backward,
        (4, 13, 3),
        dict(output_size=4),
    ),
    "adaptive_max_pool2d 14 -> 5 (the A2 case's windows)": (
        ic.adaptive_max_pool2d_forward,
        ref.adaptive_max_pool2d_forward,
        ref.adaptive_max_pool2d_backward,
        (3, 14, 14, 6),
        dict(output_size=5),
    ),
    "adaptive_max_pool2d 11x10 -> 4x3 (no stride)": (
        ic.adaptive_max_pool2d_forward,
        ref.adaptive_max_pool2d_forward,
        ref.adaptive_max_pool2d_backward,
        (2, 11, 10, 3),
        dict(output_size=(4, 3)),
    ),
    "adaptive_max_pool3d 7x9x5 -> 3x4x2": (
        ic.adaptive_max_pool3d_forward,
        ref.adaptive_max_pool3d_forward,
        ref.adaptive_max_pool3d_backward,
        (2, 7, 9, 5, 3),
        dict(output_size=(3, 4, 2)),
    ),
    # windows that do not overlap but have more than 9 offsets: the histogram too, not a pass per offset
    "max_pool2d 4x4 s4 (disjoint)": (
        ic.max_pool2d_forward,
        ref.max_pool2d_forward,
        ref.max_pool2d_backward,
        (2, 13, 12, 3),
        dict(kernel_size=4, stride=4),
    ),
    "max_pool1d k10 s13 (inputs no window reads)": (
        ic.max_pool1d_forward,
        ref.max_pool1d_forward,
        ref.max_pool1d_backward,
        (3, 40, 5),
        dict(kernel_size=10, stride=13, padding=5),
    ),
}
FORMATS = {3: ("NWC", "NCW"), 4: ("NHWC", "NCHW"), 5: ("NDHWC", "NCDHW")}


@pytest.fixture
def calls(monkeypatch):
    """Counts the calls of the winner-scatter kernel, so that each test knows it ran."""
    seen = []
    real = winner_scatter.scatter_winners

    def spy(*args, **kwargs):
        seen.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(pool_backward_module, "scatter_winners", spy)

    monkeypatch.setattr(adaptive_backward, "scatter_winners", spy)
    return seen


def _channels_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [0, 1])
def test_matches_the_reference_loops(name, dtype, layout, calls):
    forward, ref_forward, ref_backward, shape, kw = CASES[name]
    fmt = FORMATS[len(shape)][layout]
    rng = np.random.default_rng(7)
    x = rng.integers(-4, 5, shape).astype(dtype)  # small integers: many ties, first maximum wins
    x = _channels_first(x) if layout else x
    out, cache = forward(x, data_format=fmt, **kw)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = _backward(forward)(dout, cache)
    assert calls, "the winner-scatter kernel did not run"
    ref_out, ref_cache = ref_forward(x.astype(np.float64), data_format=fmt, **kw)
    np.testing.assert_array_equal(out, ref_out.astype(dtype))
    np.testing.assert_array_equal(cache.indices, ref_cache.indices)
    expected = ref_backward(dout.astype(np.float64), ref_cache)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, expected, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


def _backward(forward):
    return getattr(ic, forward.__name__.replace("_forward", "_backward"))


def test_a_position_winning_four_windows_gets_their_sum(calls):
    """3x3 windows at stride 2: input (2, 2) lies in four windows; its maximum wins all four."""
    x = np.zeros((1, 5, 5, 1))
    x[0, 2, 2, 0] = 9.0
    out, cache = ic.max_pool2d_forward(x, 3, stride=2)
    dout = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 2, 2, 1)
    dx = ic.max_pool2d_backward(dout, cache)
    assert calls
    expected = np.zeros_like(x)
    expected[0, 2, 2, 0] = 1111.0
    np.testing.assert_array_equal(dx, expected)


def test_non_finite_gradients_reach_only_their_winners(calls):
    x = np.arange(2 * 9 * 9 * 2, dtype=np.float64).reshape(2, 9, 9, 2)
    out, cache = ic.max_pool2d_forward(x, 3, stride=2, padding=1)
    dout = np.ones(out.shape)
    dout[0, 1, 1, 0] = np.inf
    dout[1, 2, 3, 1] = np.nan
    dx = ic.max_pool2d_backward(dout, cache)
    assert calls
    expected = ref.max_pool2d_backward(dout, ref.max_pool2d_forward(x, 3, stride=2, padding=1)[1])
    np.testing.assert_array_equal(dx, expected)  # inf and NaN where they win, finite elsewhere
    assert np.isinf(dx).sum() == 1 and np.isnan(dx).sum() == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identical_for_every_thread_count_and_layout(dtype, calls):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((25, 27, 27, 32)).astype(dtype)  # blocks of 12 and 13 images
    dout = rng.standard_normal((25, 5, 5, 32)).astype(dtype)
    results = []
    before = ic.get_num_threads()
    for threads in (1, 2, 3):
        ic.set_num_threads(threads)
        try:
            for layout in (0, 1):
                fmt = FORMATS[4][layout]
                xi = _channels_first(x) if layout else x
                d = _channels_first(dout) if layout else dout
                _, cache = ic.adaptive_max_pool2d_forward(xi, 5, data_format=fmt)
                dx = ic.adaptive_max_pool2d_backward(d, cache)
                results.append(np.moveaxis(dx, 1, -1) if layout else dx)
        finally:
            ic.set_num_threads(before)
    assert len(calls) == 6
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


POOL_CASES = [name for name in CASES if not name.startswith("adaptive")] + ["max_pool2d k(2, 4) s(3, 1)"]
CASES["max_pool2d k(2, 4) s(3, 1)"] = (  # rows no window reads between windows that overlap along the columns
    ic.max_pool2d_forward,
    ref.max_pool2d_forward,
    ref.max_pool2d_backward,
    (2, 14, 11, 3),
    dict(kernel_size=(2, 4), stride=(3, 1)),
)


@pytest.fixture
def tiles_of(monkeypatch):
    """``use(budget)`` sends every image through the tiled kernel from then on, in tiles of about ``budget`` bytes
    of float64 input."""

    def use(budget: int) -> None:
        monkeypatch.setattr(pool_backward_module, "winner_scatter_fits", lambda *_: False)
        monkeypatch.setattr(pool_backward_module, "TILED_SCATTER_TAPS", 0)  # windows of every size
        monkeypatch.setattr(winner_scatter, "TILE_BYTES", budget)
        winner_scatter._winner_tiles.cache_clear()

    yield use
    winner_scatter._winner_tiles.cache_clear()


@pytest.mark.parametrize("name", POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [0, 1])
def test_images_too_large_for_one_histogram_go_tile_by_tile(name, dtype, layout, tiles_of, calls):
    """Each tile bins its windows' winners over the box they span and keeps its own part: every element gets
    the sum the whole image's histogram gives, bit for bit, in tiles of every size."""
    forward, ref_forward, ref_backward, shape, kw = CASES[name]
    fmt = FORMATS[len(shape)][layout]
    rng = np.random.default_rng(11)
    x = rng.integers(-4, 5, shape).astype(dtype)  # many ties: the first maximum wins
    x = _channels_first(x) if layout else x
    out, cache = forward(x, data_format=fmt, **kw)
    dout = rng.standard_normal(out.shape).astype(dtype)
    whole = _backward(forward)(dout, cache)
    assert len(calls) == 1
    tiles = {}
    for budget in (2**21, 2**10, 2**7):  # one tile an image, a few rows, a few positions
        tiles_of(budget)
        dx = _backward(forward)(dout, cache)
        tiles[budget] = len(winner_scatter._winner_tiles(shape, cache.geom.axes))  # (the call's, memoized)
        assert len(calls) == 1  # the whole-image kernel not taken again
        np.testing.assert_array_equal(dx, whole)
    assert tiles[2**7] > tiles[2**10] > tiles[2**21], tiles
    expected = ref_backward(dout.astype(np.float64), ref_forward(x.astype(np.float64), data_format=fmt, **kw)[1])
    np.testing.assert_allclose(whole, expected, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


def test_tiles_are_identical_for_every_thread_count(tiles_of):
    rng = np.random.default_rng(12)
    x = rng.integers(-3, 4, (3, 9, 10, 11, 4)).astype(np.float32)
    out, cache = ic.max_pool3d_forward(x, 3, stride=1, padding=1)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    tiles_of(2**10)
    results = []
    before = ic.get_num_threads()
    try:
        for threads in (1, 2, 3):
            ic.set_num_threads(threads)
            results.append(ic.max_pool3d_backward(dout, cache))
    finally:
        ic.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    _, ref_cache = ref.max_pool3d_forward(x.astype(np.float64), 3, stride=1, padding=1)
    expected = ref.max_pool3d_backward(dout.astype(np.float64), ref_cache)
    np.testing.assert_allclose(results[0], expected, rtol=1e-6)  # the float64 sum rounded once


def test_images_too_large_for_one_histogram_with_small_windows_take_the_pooling_kernels(monkeypatch, calls):
    """A window of 9 kernel offsets or fewer: the pooling kernels' passes per offset cost about what the tiles do."""
    x = np.random.default_rng(5).standard_normal((2, 9, 9, 3))
    out, cache = ic.max_pool2d_forward(x, 3, stride=2)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    fast = ic.max_pool2d_backward(dout, cache)
    assert len(calls) == 1
    monkeypatch.setattr(winner_scatter, "WORKER_SCRATCH_BYTES", 64)
    tiled = []
    monkeypatch.setattr(pool_backward_module, "scatter_winner_tiles", lambda *a, **k: tiled.append(a))
    slow = ic.max_pool2d_backward(dout, cache)
    assert len(calls) == 1 and not tiled  # neither winner scatter taken
    np.testing.assert_allclose(slow, fast, rtol=1e-15)
    np.testing.assert_allclose(slow, ref.max_pool2d_backward(dout, ref.max_pool2d_forward(x, 3, stride=2)[1]))


FEW_CASES = {  # windows the pooling kernels cannot run (10 inputs to 4 windows follow no stride), flat winners
    f"adaptive_max_pool{nd}d 10 -> 4": (
        getattr(ic, f"adaptive_max_pool{nd}d_forward"),
        getattr(ref, f"adaptive_max_pool{nd}d_forward"),
        getattr(ref, f"adaptive_max_pool{nd}d_backward"),
        (2, *(10,) * nd, 3),
        dict(output_size=4),
    )
    for nd in (1, 2, 3)
}
FEW_CASES["max_pool2d k(17, 16) long windows"] = (
    ic.max_pool2d_forward,
    ref.max_pool2d_forward,
    ref.max_pool2d_backward,
    (2, 41, 36, 3),
    dict(kernel_size=(17, 16), stride=(12, 10)),  # more than 255 offsets, overlapping: the adaptive kernels
)


@pytest.mark.parametrize("name", list(FEW_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [0, 1])
def test_images_too_large_for_one_histogram_with_few_windows_bin_their_distinct_winners(
    name, dtype, layout, monkeypatch
):
    """Each window's gradient is added into the sum of its distinct winner: the histogram's sums, bit for bit."""
    forward, ref_forward, ref_backward, shape, kw = FEW_CASES[name]
    fmt = FORMATS[len(shape)][layout]
    rng = np.random.default_rng(13)
    x = rng.integers(-4, 5, shape).astype(dtype)
    x = _channels_first(x) if layout else x
    out, cache = forward(x, data_format=fmt, **kw)
    dout = rng.standard_normal(out.shape).astype(dtype)
    whole = _backward(forward)(dout, cache)
    spied = []
    monkeypatch.setattr(adaptive_backward, "winner_scatter_fits", lambda *_: False)
    monkeypatch.setattr(adaptive_backward, "few_winners", lambda *_: True)
    monkeypatch.setattr(winner_scatter, "WORKER_SCRATCH_BYTES", 200)  # blocks of one image-channel
    real = winner_scatter.scatter_few_winners
    monkeypatch.setattr(adaptive_backward, "scatter_few_winners", lambda *a, **k: spied.append(1) or real(*a, **k))
    dx = _backward(forward)(dout, cache)
    assert spied
    np.testing.assert_array_equal(dx, whole)
    expected = ref_backward(dout.astype(np.float64), ref_forward(x.astype(np.float64), data_format=fmt, **kw)[1])
    np.testing.assert_allclose(dx, expected, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)


def test_global_max_pooling_of_large_images_sends_each_gradient_to_its_winner():
    """(4, 512, 512, 32): every channel of an image one window, too large for one histogram. Gathering each
    position's window and winner took 0.35 s and image-sized scratch; binning 128 windows takes under a ms."""
    x = np.zeros((4, 512, 512, 32), dtype=np.float32)
    rows, cols = np.arange(4 * 32) % 512, (np.arange(4 * 32) * 7) % 512
    x[np.repeat(np.arange(4), 32), rows, cols, np.tile(np.arange(32), 4)] = 1.0  # one winner a channel
    out, cache = ic.adaptive_max_pool2d_forward(x, 1)
    dout = np.arange(1, 129, dtype=np.float32).reshape(4, 1, 1, 32)
    with ic.workspace_limit(16 * 2**20):
        scratch, _ = peak_scratch(lambda: ic.adaptive_max_pool2d_backward(dout, cache), (dout,))
    dx = ic.adaptive_max_pool2d_backward(dout, cache)
    assert scratch <= 2**20, f"scratch {scratch / 2**20:.2f} MiB"
    expected = np.zeros_like(x)
    expected[np.repeat(np.arange(4), 32), rows, cols, np.tile(np.arange(32), 4)] = dout.reshape(-1)
    np.testing.assert_array_equal(dx, expected)


def test_an_empty_batch(calls):
    x = np.zeros((0, 9, 9, 3), dtype=np.float32)
    out, cache = ic.max_pool2d_forward(x, 3, stride=2)
    dx = ic.max_pool2d_backward(np.zeros(out.shape, np.float32), cache)
    assert dx.shape == x.shape and dx.dtype == np.float32


def test_offsets_past_the_winners_narrow_type(calls):
    """Adaptive windows keep winners in a narrow type (uint16 for 300 positions); with 300 channels their
    offsets pass 65535."""
    x = np.random.default_rng(8).standard_normal((2, 300, 300))
    out, cache = ic.adaptive_max_pool1d_forward(x, 11)  # windows of 27 and 28 positions: not a stride
    assert cache.winners.dtype == np.uint16
    dout = np.random.default_rng(9).standard_normal(out.shape)
    dx = ic.adaptive_max_pool1d_backward(dout, cache)
    assert calls
    _, ref_cache = ref.adaptive_max_pool1d_forward(x, 11)
    np.testing.assert_allclose(dx, ref.adaptive_max_pool1d_backward(dout, ref_cache), rtol=1e-14)
