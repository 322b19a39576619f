"""The BLAS's thread count in the engine's hands (runtime.blas), tiles on the engine's threads with one-thread
products (parallel.map_tiles), sums added in block order (map_blocks' then), and conv results that depend on no
thread count: neither the engine's nor the BLAS's the caller set."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import im2col_cnn as ic
from im2col_cnn.runtime import blas, parallel

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
needs_control = pytest.mark.skipif(not blas.controllable(), reason="no BLAS whose thread count can be set")


@pytest.fixture(autouse=True)
def default_threads(monkeypatch):
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    ic.set_num_threads(None)
    yield
    ic.set_num_threads(None)


@pytest.fixture
def blas_at_two():
    """The BLAS at 2 threads during the test, and back at its own count after."""
    control = blas._control()
    before = control.get()
    control.set(2)
    yield control
    control.set(before)


@needs_control
def test_limited_sets_one_thread_and_restores_the_count_exactly(blas_at_two):
    with blas.limited(1) as held:
        assert held is True
        assert blas.get_blas_threads() == 1
    assert blas.get_blas_threads() == 2


@needs_control
def test_limited_restores_the_count_when_the_block_raises(blas_at_two):
    with pytest.raises(ZeroDivisionError), blas.limited(1):
        assert blas.get_blas_threads() == 1
        1 / 0  # noqa: B018
    assert blas.get_blas_threads() == 2


@needs_control
def test_overlapping_requests_hold_the_smallest_count_until_the_last_ends(blas_at_two):
    outer = blas.limited(2)
    outer.__enter__()
    assert blas.get_blas_threads() == 2
    with blas.limited(1):
        assert blas.get_blas_threads() == 1
    assert blas.get_blas_threads() == 2  # the outer request is still running: its count
    outer.__exit__(None, None, None)
    assert blas.get_blas_threads() == 2 and not blas._requests


@needs_control
def test_requests_from_several_threads_restore_the_count_once_all_have_ended(blas_at_two):
    inside, release = threading.Barrier(3), threading.Event()
    seen = []

    def call():
        with blas.limited(1):
            inside.wait()
            seen.append(blas.get_blas_threads())
            release.wait()

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert blas.get_blas_threads() == 1
    release.set()
    for t in threads:
        t.join()
    assert seen == [1, 1]
    assert blas.get_blas_threads() == 2


@needs_control
def test_map_tiles_runs_the_products_on_one_blas_thread_and_gives_the_count_back(blas_at_two):
    seen = []

    def work(block, state):
        seen.append(blas.get_blas_threads())
        if block == 5:
            raise KeyError("block 5")

    ic.set_num_threads(2)
    with pytest.raises(KeyError, match="block 5"):
        parallel.map_tiles(work, list(range(8)), lambda: None)
    assert seen and set(seen) == {1}
    assert blas.get_blas_threads() == 2


def test_map_tiles_without_a_controllable_blas_runs_the_blocks_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(blas, "_control", lambda: None)
    idents = set()
    ic.set_num_threads(2)
    parallel.map_tiles(lambda block, state: idents.add(threading.get_ident()), list(range(20)), lambda: None)
    assert idents == {threading.get_ident()}


def test_then_adds_the_parts_in_block_order_whichever_thread_finishes_first():
    added = []

    def work(block, state):
        time.sleep(0.002 * ((7 * block) % 5))  # blocks finish out of order
        return block * 10

    ic.set_num_threads(2)
    parallel.map_blocks(work, list(range(30)), lambda: None, then=lambda block, part, state: added.append(part))
    assert added == [10 * b for b in range(30)]


def test_a_failing_block_wakes_the_waiting_turns_and_its_own_error_is_raised():
    added = []

    def work(block, state):
        if block == 3:
            time.sleep(0.05)  # the other thread's later blocks wait for block 3's turn meanwhile
            raise KeyError("block 3")
        return block

    ic.set_num_threads(2)
    done = threading.Event()

    def call():
        try:
            parallel.map_blocks(work, list(range(20)), lambda: None, then=lambda b, part, s: added.append(part))
        except KeyError as exc:
            added.append(str(exc))
        done.set()

    threading.Thread(target=call, daemon=True).start()
    assert done.wait(timeout=10)  # no turn waits forever for the failed block
    assert added == [0, 1, 2, "'block 3'"]  # the blocks before it, in order; then block 3's own error


# --- conv results do not depend on any thread count -----------------------------------------------------------

CONVS = [  # (x shape, w shape, kwargs): the general kernel, the few-channel (planar) one, pointwise, depthwise
    ((9, 12, 11, 16), (3, 3, 16, 24), dict(stride=1, padding=1)),
    ((9, 13, 12, 3), (3, 3, 3, 8), dict(stride=2, padding=1)),
    ((9, 7, 8, 32), (1, 1, 32, 16), dict()),
    ((9, 10, 10, 8), (3, 3, 1, 16), dict(padding=1, groups=8)),
    ((9, 15, 14, 8), (3, 3, 8, 12), dict(stride=2, padding=1, dilation=2)),
]


def _conv_all(x, w, b, kw, fmt):
    if fmt == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        w = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    out, cache = ic.conv2d_forward(x, w, b, data_format=fmt, **kw)
    dout = np.cos(np.arange(out.size, dtype=np.float64)).reshape(out.shape).astype(x.dtype)
    return [out, *ic.conv2d_backward(dout, cache)]


@needs_control
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("case", CONVS, ids=[str(c[1]) for c in CONVS])
def test_conv_is_identical_for_every_engine_and_blas_thread_count(case, fmt, blas_at_two):
    x_shape, w_shape, kw = case
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[-1])
    results = {}
    for dtype in (np.float32, np.float64):
        for engine_threads in (1, 2):
            for blas_threads in (1, 2):
                ic.set_num_threads(engine_threads)
                blas_at_two.set(blas_threads)
                got = _conv_all(x.astype(dtype), w.astype(dtype), b.astype(dtype), kw, fmt)
                assert set(blas_at_two.get()) == {blas_threads}  # given back as the caller set it
                key = (engine_threads, blas_threads)
                results[key] = got
        expected = results[(1, 1)]
        for key, got in results.items():
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_array_equal(g, e, err_msg=f"{dtype.__name__}, (engine, BLAS) threads {key}")


@needs_control
def test_a_forked_child_gets_the_blas_count_back():
    code = (
        "import os, threading, numpy as np\n"
        "from im2col_cnn.runtime import blas\n"
        "control = blas._control(); control.set(2)\n"
        "with blas.limited(1):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0 if blas.get_blas_threads() == 2 and not blas._requests else 3)\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status), blas.get_blas_threads())\n"
    )
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "2"]
