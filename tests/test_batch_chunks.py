"""Every layer function on Dask arrays chunked along the batch: lazy, block by block, equal to the NumPy engine.

One ``LocalCluster`` (2 worker processes, 1 thread each, localhost only, no dashboard) serves the module; the
local schedulers (synchronous, threads, processes) are checked too. Tolerances: float64 within rounding
(1e-12 of the largest magnitude), float32 within 1e-5 of it.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from _helpers import assert_close  # noqa: E402

import im2col_cnn as ic  # noqa: E402
from im2col_cnn.runtime import batch_chunks, block_threads, parallel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
N = 7
CHUNKINGS = {"uneven": (3, 3, 1), "one chunk": (N,)}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


# --- One case per layer: shapes, hyperparameters, inputs ------------------------------------------------------

# name: (x NHWC shape, w NHWC shape or None, bias, hyperparameters)
LAYERS = {
    "conv2d": ((N, 6, 5, 4), (3, 3, 2, 6), True, dict(stride=2, padding=1, groups=2)),
    "conv_transpose2d": ((N, 4, 3, 4), (3, 3, 3, 4), True, dict(stride=2, padding=1, output_padding=1)),
    "max_pool2d": ((N, 6, 5, 3), None, False, dict(kernel_size=3, stride=2, padding=1)),
    "avg_pool2d": ((N, 5, 5, 3), None, False, dict(kernel_size=2, ceil_mode=True, count_include_pad=False)),
}


def layer_inputs(name, data_format, dtype, seed=0):
    """``(x, args, kwargs)`` in ``data_format``: ``forward(x, *args, **kwargs)`` runs the layer."""
    x_shape, w_shape, bias, hyper = LAYERS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    args = []
    if w_shape is not None:
        w = rng.standard_normal(w_shape).astype(dtype)
        if data_format == "NCHW":
            w = w.transpose(3, 2, 0, 1).copy()  # (kh, kw, I, O) -> (O, I, kh, kw)
        groups = hyper.get("groups", 1)
        c_out = w_shape[2] * groups if name == "conv_transpose2d" else w_shape[3]
        args = [w, rng.standard_normal(c_out).astype(dtype)]
    if data_format == "NCHW":
        x = x.transpose(0, 3, 1, 2).copy()  # (N, H, W, C) -> (N, C, H, W)
    return x, args, dict(hyper, data_format=data_format)


def functions(name):
    return getattr(ic, f"{name}_forward"), getattr(ic, f"{name}_backward")


def numpy_results(name, x, args, kwargs, dout):
    forward, backward = functions(name)
    out, cache = forward(x, *args, **kwargs)
    grads = backward(dout, cache)
    return (out, *grads) if isinstance(grads, tuple) else (out, grads)


lazy_results = numpy_results  # the same calls: Dask input makes them lazy


def all_cases(names, data_formats, dtypes):
    """``(expected, lazy)`` pairs for every layer, layout, dtype and chunking: NumPy results and Dask ones."""
    cases = []
    for name in names:
        for data_format in data_formats:
            for dtype in dtypes:
                x, args, kwargs = layer_inputs(name, data_format, dtype)
                out_shape = functions(name)[0](x, *args, **kwargs)[0].shape
                dout = np.random.default_rng(1).standard_normal(out_shape).astype(dtype)
                expected = numpy_results(name, x, args, kwargs, dout)
                for chunking, chunks in CHUNKINGS.items():
                    xd = da.from_array(x, chunks=(chunks, -1, -1, -1))
                    # An uneven batch gets dout as a Dask array chunked otherwise; one chunk gets a NumPy dout.
                    d = da.from_array(dout, chunks=(2, -1, -1, -1)) if chunking == "uneven" else dout
                    lazy = lazy_results(name, xd, args, kwargs, d)
                    assert all(isinstance(r, da.Array) for r in lazy)
                    assert lazy[0].chunks[0] == lazy[1].chunks[0] == chunks
                    cases.append(((name, data_format, dtype, chunking), expected, lazy))
    return cases


def check_cases(cases, computed):
    for (label, expected, _), results in zip(cases, computed, strict=True):
        dtype = label[2]
        assert len(results) == len(expected), label
        for got, want in zip(results, expected, strict=True):
            assert_close(got, want, dtype, rtol=RTOL[dtype])


# --- Equal to the NumPy engine --------------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_function_matches_numpy_on_a_distributed_cluster(client, name, data_format):
    cases = all_cases([name], [data_format], [np.float32, np.float64])
    computed = client.gather(client.compute([lazy for _, _, lazy in cases]))
    check_cases(cases, computed)


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_local_schedulers_match_numpy(scheduler):
    cases = all_cases(list(LAYERS), ["NHWC", "NCHW"], [np.float32])
    computed = dask.compute([lazy for _, _, lazy in cases], scheduler=scheduler)[0]
    check_cases(cases, computed)


@pytest.mark.parametrize("name", ["conv2d", "max_pool2d"])
def test_float16_batches_answer_in_float16_as_numpy_does(name):
    x, args, kwargs = layer_inputs(name, "NHWC", np.float16)
    out_shape = functions(name)[0](x, *args, **kwargs)[0].shape
    dout = np.random.default_rng(1).standard_normal(out_shape).astype(np.float16)
    expected = numpy_results(name, x, args, kwargs, dout)
    lazy = lazy_results(name, da.from_array(x, chunks=(3, -1, -1, -1)), args, kwargs, dout)
    computed = dask.compute(*lazy, scheduler="sync")
    for got, want in zip(computed, expected, strict=True):
        assert got.dtype == want.dtype == np.float16
    for got, want in zip(computed[:2], expected[:2], strict=True):  # out, dx: per image, the same roundings
        np.testing.assert_array_equal(got, want)
    for got, want in zip(computed[2:], expected[2:], strict=True):  # dw, db: float32 sums in another order,
        np.testing.assert_allclose(got, want, rtol=2**-10)  # rounded once to float16: within one step of it


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
def test_need_dx_false_gives_no_dx_and_the_same_dw_and_db(name):
    x, args, kwargs = layer_inputs(name, "NCHW", np.float64)
    forward, backward = functions(name)
    out, cache = forward(x, *args, **kwargs)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    _, lazy_cache = forward(da.from_array(x, chunks=(3, -1, -1, -1)), *args, **kwargs)
    dx, dw, db = backward(dout, lazy_cache, need_dx=False)
    assert dx is None
    _, want_dw, want_db = backward(dout, cache)
    for got, want in zip(dask.compute(dw, db, scheduler="sync"), (want_dw, want_db), strict=True):
        assert_close(got, want, np.float64, rtol=1e-12)


def test_an_empty_batch_gives_empty_outputs_and_zero_gradients():
    x = da.zeros((0, 5, 5, 2), chunks=(4, -1, -1, -1))
    out, cache = ic.conv2d_forward(x, np.ones((3, 3, 2, 4)), padding=1)
    dx, dw, db = dask.compute(*ic.conv2d_backward(da.ones(out.shape), cache), scheduler="sync")
    assert out.shape == (0, 5, 5, 4) and dx.shape == (0, 5, 5, 2)
    assert dw.shape == (3, 3, 2, 4) and not dw.any() and not db.any()


def test_dask_weights_stay_lazy_and_every_block_gets_them_whole():
    x, (w, b), kwargs = layer_inputs("conv2d", "NHWC", np.float64)
    expected = numpy_results("conv2d", x, [w, b], kwargs, np.ones((N, 3, 3, 6)))
    wd, bd = da.from_array(w, chunks=(2, 2, 1, 3)), da.from_array(b, chunks=2)  # rechunked to one chunk each
    lazy = lazy_results("conv2d", da.from_array(x, chunks=(3, -1, -1, -1)), [wd, bd], kwargs, np.ones((N, 3, 3, 6)))
    for got, want in zip(dask.compute(*lazy, scheduler="sync"), expected, strict=True):
        assert_close(got, want, np.float64, rtol=1e-12)


def test_x_chunked_along_rows_columns_or_channels_is_rechunked_per_batch_block():
    x, args, kwargs = layer_inputs("max_pool2d", "NCHW", np.float64)
    out, _ = ic.max_pool2d_forward(da.from_array(x, chunks=(3, 2, 2, 3)), *args, **kwargs)
    assert out.chunks == ((3, 3, 1), (3,), (3,), (3,))
    assert_close(out.compute(scheduler="sync"), ic.max_pool2d_forward(x, *args, **kwargs)[0], np.float64)


def test_max_pool_indices_are_lazy_and_equal_numpys():
    x, args, kwargs = layer_inputs("max_pool2d", "NHWC", np.float64)
    _, cache = ic.max_pool2d_forward(da.from_array(x, chunks=(3, -1, -1, -1)), *args, **kwargs)
    indices = cache.indices
    assert isinstance(indices, da.Array) and indices.dtype == np.int64
    np.testing.assert_array_equal(
        indices.compute(scheduler="sync"), ic.max_pool2d_forward(x, *args, **kwargs)[1].indices
    )
    with pytest.raises(AttributeError, match="indices exist for max pooling only"):
        ic.avg_pool2d_forward(da.from_array(x, chunks=3), 2)[1].indices  # noqa: B018


# --- Lazy, once per block, a tree for dw and db ---------------------------------------------------------------


@pytest.fixture
def engine_calls(monkeypatch):
    """Count the engine's calls on non-empty blocks (the empty-batch probes that build the graph don't count)."""
    calls = {}

    def counting(op):
        engine = batch_chunks._ENGINE[op]

        def call(first, *args, **kwargs):
            if first.shape[0]:
                calls[op] = calls.get(op, 0) + 1
            return engine(first, *args, **kwargs)

        return call

    for op in list(batch_chunks._ENGINE):
        monkeypatch.setitem(batch_chunks._ENGINE, op, counting(op))
    return calls


def test_graphs_compute_nothing_until_asked_and_each_block_runs_its_forward_once(engine_calls):
    x, args, kwargs = layer_inputs("conv2d", "NHWC", np.float64)
    out, cache = ic.conv2d_forward(da.from_array(x, chunks=(3, -1, -1, -1)), *args, **kwargs)
    pooled, pool_cache = ic.max_pool2d_forward(da.maximum(out, 0), 2, padding=1)
    loss = pooled.sum()
    d_pooled = da.ones_like(pooled)
    dx, dw, db = ic.conv2d_backward(ic.max_pool2d_backward(d_pooled, pool_cache) * (out > 0), cache)
    assert engine_calls == {}
    dask.compute(loss, dx, dw, db, scheduler="sync")
    assert engine_calls == {
        "conv2d_forward": 3,
        "max_pool2d_forward": 3,
        "max_pool2d_backward": 3,
        "conv2d_backward": 3,
    }


def test_a_persisted_cache_serves_a_later_backward_without_running_the_forward_again(engine_calls):
    x, args, kwargs = layer_inputs("max_pool2d", "NCHW", np.float64)
    out, cache = ic.max_pool2d_forward(da.from_array(x, chunks=(3, -1, -1, -1)), *args, **kwargs)
    caches = dask.compute(cache, scheduler="sync")[0]
    assert [type(c) for c in caches] == [ic.PoolCache] * 3 and engine_calls == {"max_pool2d_forward": 3}
    out, cache = dask.persist(out, cache, scheduler="sync")
    assert engine_calls == {"max_pool2d_forward": 6}  # out and cache together: each block once
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx = ic.max_pool2d_backward(dout, cache).compute(scheduler="sync")
    assert engine_calls == {"max_pool2d_forward": 6, "max_pool2d_backward": 3}
    assert_close(dx, numpy_results("max_pool2d", x, args, kwargs, dout)[1], np.float64, rtol=0)


def test_a_cache_persisted_on_the_cluster_serves_a_later_backward(client):
    x, args, kwargs = layer_inputs("conv_transpose2d", "NHWC", np.float32)
    out, cache = ic.conv_transpose2d_forward(da.from_array(x, chunks=(3, -1, -1, -1)), *args, **kwargs)
    out, cache = client.persist([out, cache])
    dout = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    grads = client.gather(client.compute(list(ic.conv_transpose2d_backward(dout, cache))))
    for got, want in zip(grads, numpy_results("conv_transpose2d", x, args, kwargs, dout)[1:], strict=True):
        assert_close(got, want, np.float32, rtol=1e-5)


def test_weight_and_bias_gradients_are_summed_by_a_tree_of_split_every_partials():
    x = da.ones((64, 4, 4, 2), chunks=(4, -1, -1, -1))  # 16 blocks
    out, cache = ic.conv2d_forward(x, np.ones((3, 3, 2, 3)), np.zeros(3), padding=1)
    for split_every in (2, 4):
        with dask.config.set(split_every=split_every):
            _, dw, db = ic.conv2d_backward(da.ones(out.shape, chunks=(8, -1, -1, -1)), cache)
        for grad in (dw, db):
            dependencies = grad.__dask_graph__().get_all_dependencies()
            sums = [len(keys) for key, keys in dependencies.items() if key[0].startswith("sum")]
            assert max(sums) == split_every  # no task adds up more than split_every partials
        dw, db = dask.compute(dw, db, scheduler="sync")
        np.testing.assert_array_equal(db, np.full(3, 64 * 16.0))
        assert dw[1, 1, 0, 0] == 64 * 16  # the centre tap sees every pixel


# --- Threads --------------------------------------------------------------------------------------------------


def test_blocks_run_the_blas_with_one_thread_and_the_limit_is_undone_after(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []
    engine = batch_chunks._ENGINE["conv2d_forward"]

    def recording(*args, **kwargs):
        seen.extend(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")
        return engine(*args, **kwargs)

    monkeypatch.setitem(batch_chunks._ENGINE, "conv2d_forward", recording)
    x = da.ones((8, 5, 5, 2), chunks=(2, -1, -1, -1))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        out, _ = ic.conv2d_forward(x, np.ones((3, 3, 2, 4)))
        out.compute(scheduler="threads")
        assert seen and set(seen) == {1}
        after = {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"}
        assert after == {2}


def test_blocks_run_the_engine_with_one_thread_and_its_default_is_back_after(monkeypatch):
    monkeypatch.setattr(parallel, "available_cores", lambda: 4)  # the default: 4 threads
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    seen = []
    engine = batch_chunks._ENGINE["avg_pool2d_forward"]

    def recording(*args, **kwargs):
        seen.append(ic.get_num_threads())
        return engine(*args, **kwargs)

    monkeypatch.setitem(batch_chunks._ENGINE, "avg_pool2d_forward", recording)
    assert ic.get_num_threads() == 4
    ic.avg_pool2d_forward(da.ones((8, 4, 4, 2), chunks=(2, -1, -1, -1)), 2)[0].compute(scheduler="threads")
    assert seen == [1, 1, 1, 1]
    monkeypatch.setenv(parallel.ENV_VAR, "3")
    assert ic.get_num_threads() == 3  # the default (the environment variable, else the cores) is back, not "4"


def test_the_thread_limit_holds_until_the_last_overlapping_block_ends():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"}

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        first, second = block_threads.block_threads(), block_threads.block_threads()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # another block still runs: the limit stays
        assert blas_threads() == {1}
        second.__exit__(None, None, None)
        assert blas_threads() == {2}
        previous = block_threads.set_block_threads(None)  # None: blocks leave the threads as they are
        try:
            with block_threads.block_threads():
                assert blas_threads() == {2}
        finally:
            block_threads.set_block_threads(previous)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_block_threads_must_be_a_positive_int_or_none(bad):
    with pytest.raises(ValueError, match=r"n must be an int >= 1 or None, got"):
        block_threads.set_block_threads(bad)
    assert block_threads.get_block_threads() == 1


# --- Clear errors ---------------------------------------------------------------------------------------------


def test_a_dask_dout_with_the_cache_of_a_numpy_forward_is_a_type_error():
    _, cache = ic.max_pool2d_forward(np.ones((4, 4, 4, 2)), 2)
    with pytest.raises(TypeError, match=r"dout is a Dask array but cache comes from max_pool2d_forward on NumPy"):
        ic.max_pool2d_backward(da.ones((4, 2, 2, 2)), cache)


def test_the_cache_of_another_forward_is_a_type_error():
    x = da.ones((4, 4, 4, 2), chunks=2)
    out, cache = ic.max_pool2d_forward(x, 2)
    with pytest.raises(TypeError, match=r"cache must be the cache returned by avg_pool2d_forward, got the cache of m"):
        ic.avg_pool2d_backward(np.ones(out.shape), cache)
    out, cache = ic.conv2d_forward(x, np.ones((1, 1, 2, 2)))
    with pytest.raises(TypeError, match=r"returned by conv_transpose2d_forward, got the cache of conv2d_forward"):
        ic.conv_transpose2d_backward(out, cache)


def test_a_dout_of_another_shape_is_a_value_error():
    out, cache = ic.conv2d_forward(da.ones((5, 4, 4, 2), chunks=2), np.ones((3, 3, 2, 3)))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(5, 2, 2, 3\), got shape \(5,"):
        ic.conv2d_backward(da.ones((5, 2, 2, 4)), cache)


def test_x_must_have_the_layers_rank_and_known_chunk_sizes():
    with pytest.raises(ValueError, match=r"x must be a 4-D array of shape \(N, H, W, C\) for data_format 'NHWC'"):
        ic.avg_pool2d_forward(da.ones((4, 4, 2), chunks=2), 2)
    with pytest.raises(ValueError, match=r"x must be an array chunked along the batch \(axis 0\), got shape \(4,\)"):
        ic.avg_pool2d_forward(da.ones(4, chunks=2), 2)
    x = da.from_array(np.arange(32.0).reshape(4, 2, 2, 2), chunks=2)
    with pytest.raises(ValueError, match=r"x has unknown chunk sizes .* call x.compute_chunk_sizes\(\) first"):
        ic.max_pool2d_forward(x[x[:, 0, 0, 0] > 5], 2)


def test_bad_hyperparameters_fail_with_the_engines_message_when_the_graph_is_built():
    x = da.ones((4, 6, 6, 2), chunks=2)
    with pytest.raises(ValueError, match=r"stride must be"):
        ic.conv2d_forward(x, np.ones((3, 3, 2, 3)), stride=0)
    with pytest.raises(ValueError, match=r"w has C_in=3 input channels but x has C=2 channels"):
        ic.conv2d_forward(x, da.ones((3, 3, 3, 3)))
    with pytest.raises(TypeError, match=r"padding must not be a Dask array \(only x, w, b and dout may be\)"):
        ic.max_pool2d_forward(x, 2, padding=da.zeros(2, dtype=int))


# --- The NumPy path -------------------------------------------------------------------------------------------


def test_numpy_inputs_give_numpy_results_and_the_signatures_are_unchanged():
    out, cache = ic.conv2d_forward(np.ones((2, 4, 4, 1)), np.ones((3, 3, 1, 1)))
    assert type(out) is np.ndarray and type(cache) is ic.ConvCache
    assert list(inspect.signature(ic.conv2d_forward).parameters)[:3] == ["x", "w", "b"]
    assert inspect.signature(ic.max_pool2d_backward) == inspect.signature(ic.max_pool2d_backward.__wrapped__)


def test_importing_the_engine_does_not_import_dask():
    code = (
        "import sys, numpy as np, im2col_cnn as ic\n"
        "out, cache = ic.conv2d_forward(np.ones((1, 4, 4, 1)), np.ones((3, 3, 1, 1)))\n"
        "ic.conv2d_backward(np.ones(out.shape), cache)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'threadpoolctl')]\n"
        "assert not loaded, loaded\n"
        "print(ic.__file__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve().is_relative_to(ROOT)


# --- The out-of-core benchmark's pipeline ---------------------------------------------------------------------


def test_the_out_of_core_pipeline_on_the_cluster_equals_numpy_on_the_whole_batch(client):
    from benchmarks import out_of_core

    x = out_of_core.lazy_batch(20, chunk=8)  # blocks 8, 8, 4
    expected = out_of_core.numpy_pipeline(x.compute(scheduler="sync"))
    got = client.compute(out_of_core.pipeline(x)).result()
    assert got.shape == (out_of_core.C_OUT,) and expected.mean() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    whole = x.compute(scheduler="sync")
    got = client.compute(out_of_core.gradient(x), sync=True)
    for got_one, want in zip(got, out_of_core.numpy_gradient(whole), strict=True):
        assert_close(got_one, want, np.float32 if np.ndim(want) else np.float64, rtol=1e-5)


def test_the_benchmark_command_line_takes_the_dask_options():
    from benchmarks.__main__ import parse_args

    assert parse_args(["--dask"]).dask and parse_args(["--dask-full"]).dask_full
    assert parse_args(["--dask-images", "500"]).dask_images == 500
    with pytest.raises(SystemExit):
        parse_args(["--dask-images", "0"])
