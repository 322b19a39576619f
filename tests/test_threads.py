"""The engine's threads (set_num_threads, IM2COL_CNN_NUM_THREADS) and results that depend on neither the number
of threads, nor the workspace limit, nor the size of the tiles pooling works in."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import im2col_cnn as ic
from im2col_cnn.geometry import tiles as pool_tiles
from im2col_cnn.geometry.windows import Axis
from im2col_cnn.runtime import parallel

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.fixture(autouse=True)
def default_threads(monkeypatch):
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    ic.set_num_threads(None)
    yield
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    ic.set_num_threads(None)


def test_default_is_the_cores_this_process_may_use():
    assert parallel.available_cores() == CORES
    assert ic.get_num_threads() == CORES


def test_set_num_threads_returns_the_previous_count_and_never_exceeds_the_cores():
    assert ic.set_num_threads(1) == CORES
    assert ic.get_num_threads() == 1
    assert ic.set_num_threads(CORES + 5) == 1
    assert ic.get_num_threads() == CORES
    ic.set_num_threads(np.int64(1))
    assert ic.get_num_threads() == 1
    assert ic.set_num_threads(None) == 1
    assert ic.get_num_threads() == CORES


@pytest.mark.parametrize(("bad", "exc"), [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_set_num_threads_bad_values(bad, exc):
    with pytest.raises(exc, match=r"n must be an int >= 1 or None, got "):
        ic.set_num_threads(bad)
    assert ic.get_num_threads() == CORES


def test_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv(parallel.ENV_VAR, "1")
    assert ic.get_num_threads() == 1
    monkeypatch.setenv(parallel.ENV_VAR, str(CORES + 3))
    assert ic.get_num_threads() == CORES
    ic.set_num_threads(1)  # the call wins over the variable
    monkeypatch.setenv(parallel.ENV_VAR, str(CORES))
    assert ic.get_num_threads() == 1


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_bad_environment_variable_is_a_value_error(monkeypatch, raw):
    monkeypatch.setenv(parallel.ENV_VAR, raw)
    with pytest.raises(ValueError, match=rf"IM2COL_CNN_NUM_THREADS must be an int >= 1, got '{raw}'"):
        ic.get_num_threads()


def test_map_blocks_runs_every_block_once_and_makes_one_state_per_thread():
    seen, states = [], []
    lock = threading.Lock()

    def make_state():
        with lock:
            states.append(threading.get_ident())
        return []

    def work(block, state):
        state.append(block)
        with lock:
            seen.append(block)

    ic.set_num_threads(2)
    parallel.map_blocks(work, list(range(50)), make_state)
    assert sorted(seen) == list(range(50))
    assert len(states) == min(2, CORES) and len(set(states)) == len(states)
    states.clear()
    parallel.map_blocks(work, list(range(5)), make_state, max_threads=1)
    assert len(states) == 1


def test_map_blocks_hands_parts_on_in_order_within_each_key():
    handed = []

    def work(block, state):
        time.sleep(0.001 * (block % 3))  # blocks finish out of order
        return block

    def then(block, part, state):
        assert part == block
        handed.append(block)

    ic.set_num_threads(2)
    blocks = list(range(40))
    parallel.map_blocks(work, blocks, lambda: None, then=then, then_key=lambda b: b % 4)
    assert sorted(handed) == blocks
    for key in range(4):  # each key's blocks in their order; the keys interleave as they come
        assert [b for b in handed if b % 4 == key] == list(range(key, 40, 4))
    handed.clear()
    parallel.map_blocks(work, blocks, lambda: None, then=then)  # one key: every block in order
    assert handed == blocks


def test_map_blocks_raises_a_workers_exception():
    def work(block, state):
        if block == 7:
            raise KeyError("block 7")

    ic.set_num_threads(2)
    with pytest.raises(KeyError, match="block 7"):
        parallel.map_blocks(work, list(range(20)), lambda: None)


# --- results independent of threads, the workspace limit and the tiles ---------------------------------------


def _pool_all(kind, x, fmt, **kw):
    fwd, bwd = getattr(ic, f"{kind}_pool2d_forward"), getattr(ic, f"{kind}_pool2d_backward")
    out, cache = fwd(x, data_format=fmt, **kw)
    dout = np.cos(np.arange(out.size, dtype=np.float64)).reshape(out.shape).astype(x.dtype)
    results = [out, bwd(dout, cache), bwd(dout.astype(np.float64), cache)]
    return results + ([cache.indices] if kind == "max" else [])


def _input(shape, dtype, fmt):
    rng = np.random.default_rng(7)
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)  # ReLU'd: windows of tied zeros
    x[0, :3, :3] = np.nan
    x[1] = np.round(x[1] * 2)  # ties of nonzero values
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if fmt == "NCHW" else x


SETTINGS = [
    ("max", dict(kernel_size=3, stride=2, padding=1)),
    ("max", dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg", dict(kernel_size=2, ceil_mode=True)),
]


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("kind", "kw"), SETTINGS, ids=lambda v: v if isinstance(v, str) else str(sorted(v.items())))
def test_pooling_is_identical_for_every_thread_count_limit_and_tile_size(kind, kw, dtype, fmt, monkeypatch):
    x = _input((5, 21, 26, 24), dtype, fmt)
    monkeypatch.setattr(pool_tiles, "TILE_BYTES", 2**15)  # several tiles of whole images, rows or columns
    ic.set_num_threads(1)
    expected = _pool_all(kind, x, fmt, **kw)
    ic.set_num_threads(2)
    for limit in (16 * 2**20, 2**40):
        with ic.workspace_limit(limit):
            for got, want in zip(_pool_all(kind, x, fmt, **kw), expected, strict=True):
                np.testing.assert_array_equal(got, want)
    for tile in (1500, 2**20):  # tiles of rows, columns and channels of one image; all images in one tile
        monkeypatch.setattr(pool_tiles, "TILE_BYTES", tile)
        for got, want in zip(_pool_all(kind, x, fmt, **kw), expected, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(9, 7, 7, 6), (5, 30, 20, 3), (4, 6, 5, 7, 2)], ids=str)  # few, many positions
def test_global_average_pooling_is_identical_for_every_thread_count(shape, dtype, fmt, monkeypatch):
    from im2col_cnn.kernels import global_mean

    nd = len(shape) - 2
    forward = getattr(ic, f"adaptive_avg_pool{nd}d_forward")
    backward = getattr(ic, f"adaptive_avg_pool{nd}d_backward")
    data_format = {(2, "last"): "NHWC", (2, "first"): "NCHW", (3, "last"): "NDHWC", (3, "first"): "NCDHW"}[nd, fmt]
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype) * 100 + 1
    if fmt == "first":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))

    def both():
        out, cache = forward(x, 1, data_format=data_format)
        return out, backward(np.cos(np.arange(out.size)).reshape(out.shape).astype(dtype), cache)

    ic.set_num_threads(1)
    expected = both()
    spatial = tuple(range(2, 2 + nd)) if fmt == "first" else tuple(range(1, 1 + nd))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(expected[0], x.mean(axis=spatial, keepdims=True), rtol=rtol)
    # one image per block, as many blocks as images (a machine with more cores than this one)
    monkeypatch.setattr(global_mean, "MIN_BLOCK_BYTES", 1)
    monkeypatch.setattr(global_mean, "get_num_threads", lambda: 64)
    assert global_mean.image_blocks(shape, 8) == [(i, i + 1) for i in range(shape[0])]
    ic.set_num_threads(2)
    for got, want in zip(both(), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_tiny_tiles_split_channels_columns_and_rows():
    rows = Axis(size=30, k=3, s=2, d=1, lo=1, hi=0)
    cols = Axis(size=40, k=3, s=2, d=1, lo=1, hi=0)
    assert (rows.out, cols.out) == (15, 20)
    tiles = pool_tiles.output_tiles((2, 30, 40, 100), (rows, cols), 8, 3000)  # tiles of about 3000 bytes
    back = pool_tiles.input_tiles((2, 30, 40, 100), (rows, cols), 8, 3000)
    for found in (tiles, back):
        for part in (lambda t: t.channels, lambda t: t.axes[1], lambda t: t.axes[0]):
            assert len({str(part(t)) for t in found}) > 1
    covered = np.zeros((2, 15, 20, 100), dtype=int)
    for t in tiles:
        covered[t.out()] += 1
    np.testing.assert_array_equal(covered, 1)  # every output exactly once
    covered = np.zeros((2, 30, 40, 100), dtype=int)
    for t in back:
        covered[t.inp()] += 1
    np.testing.assert_array_equal(covered, 1)  # every input exactly once
