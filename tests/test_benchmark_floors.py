"""``python -m benchmarks.floors``: its floors compute what they stand for (the window maxima, the engine's own
scatter), so that their times bound the engine's, and its report prints every row."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import im2col_cnn as ic
from benchmarks import floors


def _a2_input(dtype, n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(-3, 4, (n, 14, 14, 6)).astype(dtype)  # many ties and shared winners


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_a2_forward_floors_compute_the_window_maxima(dtype):
    x = _a2_input(dtype)
    expected, _ = ic.adaptive_max_pool2d_forward(x, 5)
    calls = floors.a2_forward_floors(x, 4, 3, 1)
    assert list(calls) == ["maxima alone", "maxima + a comparison a tap", "... + a one-byte op a tap"]
    for name, run in calls.items():
        np.testing.assert_array_equal(run(), expected, err_msg=name)


def test_window_max_fills_the_outputs_its_first_tap_misses():
    """A window whose first tap lies in the padding (padding 1, no two taps reaching every output): -inf first."""
    geom = floors.pool_geometry((1, 7, 1, 1), (2, 1), (2, 1), (1, 0), (1, 1), False)
    x = np.arange(7, dtype=np.float64).reshape(1, 7, 1, 1) - 10.0
    out = np.full((1, geom.axes[0].out, 1, 1), 99.0)
    better = np.zeros(out.shape, bool)
    floors.window_max(x, out, geom.axes[0], 1, better)
    # windows [-1, 0], [1, 2], [3, 4], [5, 6]
    np.testing.assert_array_equal(out.ravel(), [-10.0, -8.0, -6.0, -4.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_a2_backward_floors_are_the_engines_scatter(dtype):
    x = _a2_input(dtype)
    out, cache = ic.adaptive_max_pool2d_forward(x, 5)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    expected = ic.adaptive_max_pool2d_backward(dout, cache)
    calls = floors.a2_backward_floors(dout, cache, x.shape)
    for name in ("float64 histogram", "... + offsets from the codes"):  # the engine's sums, bit for bit
        np.testing.assert_array_equal(calls[name](), expected, err_msg=name)
    # setting each window's gradient at its winner: the engine's value wherever one window wins the position
    won = np.zeros(x.shape, np.int64)
    idx = cache.indices  # (N, 5, 5, C) flat h * W + w
    n, c = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[-1]), indexing="ij")
    for i in range(5):
        for j in range(5):
            h, w = np.divmod(idx[:, i, j, :], x.shape[2])
            won[n, h, w, c] += 1
    dx = calls["set at precomputed offsets"]()
    assert (won > 1).any() and (won == 1).any()
    np.testing.assert_array_equal(dx[won == 1], expected[won == 1])
    np.testing.assert_array_equal(dx[won == 0], 0)


def test_the_floors_report_prints_every_row():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert floors.main(["--batch", "2", "--rounds", "1"]) == 0
    text = out.getvalue()
    for dtype in ("float32", "float64"):
        assert f"A2 {dtype} (target: forward 3x x.copy(), backward 2x)" in text
    rows = [line for line in text.splitlines() if line.startswith("  ")]
    names = [line[2:36].strip() for line in rows]  # "  {name:<34} {ms} [{ratio}]"
    for name in ("engine forward", "... + a one-byte op a tap", "engine backward", "... + offsets from the codes"):
        assert names.count(name) == 2, name
    copies = [float(line.split()[-1]) for line in rows if line.split()[0] == "x.copy()"]
    assert copies == [1.0, 1.0]  # one copy a dtype, the ratios' unit


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--batch", "0"]])
def test_the_floors_report_refuses_empty_runs(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        floors.main(argv)
    assert raised.value.code == 2
    assert "--batch and --rounds must be at least 1" in capsys.readouterr().err
