"""The 1-D and 3-D layer functions and adaptive pooling on Dask arrays chunked along the batch: lazy, block by
block, equal to the NumPy engine.

Every result is a lazy Dask array until computed; ``out`` and ``dx`` come in the batch blocks of ``x``; ``dw`` and
``db`` are per-block partial sums added by Dask's tree reduction, equal to the NumPy ones within rounding; max
pooling's ``cache.indices`` (ordinary and adaptive) is lazy and equal to NumPy's. Both layouts, uneven chunks and
a single chunk. The synchronous scheduler keeps it fast (the schedulers themselves are checked by
test_batch_chunks.py). Tolerances: float64 within rounding (1e-12 of the largest magnitude), float32 within 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

from _helpers import assert_close  # noqa: E402

import im2col_cnn as ic  # noqa: E402
from im2col_cnn.runtime import batch_chunks  # noqa: E402

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
N = 7
CHUNKINGS = {"uneven": (3, 3, 1), "one chunk": (N,)}
FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


# name: (function name, x channels-last shape, w channels-last shape or None, positional args, hyperparameters)
LAYERS = {
    "conv1d": ("conv1d", (N, 11, 4), (3, 2, 6), (), dict(stride=2, padding=1, groups=2)),
    "conv3d": ("conv3d", (N, 5, 6, 4, 3), (3, 2, 3, 3, 4), (),
               dict(stride=(1, 2, 1), padding=(1, 0, 1), dilation=(1, 1, 2))),
    "conv_transpose1d": ("conv_transpose1d", (N, 5, 4), (3, 3, 4), (), dict(stride=2, padding=1, output_padding=1)),
    "conv_transpose3d": ("conv_transpose3d", (N, 3, 4, 3, 4), (2, 3, 2, 3, 4), (),
                         dict(stride=2, padding=(0, 1, 0), output_padding=(1, 0, 1))),
    "max_pool1d": ("max_pool1d", (N, 13, 3), None, (3,), dict(stride=2, padding=1)),
    "max_pool3d": ("max_pool3d", (N, 6, 5, 7, 3), None, ((2, 3, 2),),
                   dict(stride=2, padding=(1, 1, 0), ceil_mode=True)),
    "avg_pool1d": ("avg_pool1d", (N, 13, 3), None, (2,), dict(ceil_mode=True, count_include_pad=False)),
    "avg_pool3d": ("avg_pool3d", (N, 6, 5, 7, 3), None, (3,), dict(stride=2, padding=1)),
    "adaptive_avg_pool1d": ("adaptive_avg_pool1d", (N, 13, 3), None, (5,), {}),
    "adaptive_max_pool1d": ("adaptive_max_pool1d", (N, 13, 3), None, (5,), {}),
    "adaptive_avg_pool3d": ("adaptive_avg_pool3d", (N, 6, 5, 7, 3), None, ((4, 3, None),), {}),
    "adaptive_max_pool2d": ("adaptive_max_pool2d", (N, 9, 8, 3), None, ((4, 5),), {}),
    "adaptive_max_pool3d": ("adaptive_max_pool3d", (N, 6, 5, 7, 3), None, ((4, 2, 3),), {}),
}  # fmt: skip


def functions(name):
    fn = LAYERS[name][0]
    return getattr(ic, f"{fn}_forward"), getattr(ic, f"{fn}_backward")


def layer_inputs(name, data_format_first, dtype, seed=0):
    """``(x, args, kwargs)``: ``forward(x, *args, **kwargs)`` runs the layer in the chosen layout."""
    fn, x_shape, w_shape, args, hyper = LAYERS[name]
    n = len(x_shape) - 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    if "max" in fn:
        x = np.round(x * 2) / 2  # ties
    arrays = []
    if w_shape is not None:
        w = rng.standard_normal(w_shape)
        groups = hyper.get("groups", 1)
        c_out = w_shape[-2] * groups if "transpose" in fn else w_shape[-1]
        if data_format_first:
            w = np.ascontiguousarray(w.transpose(n + 1, n, *range(n)))  # (*k, I, O) -> (O, I, *k)
        arrays = [w.astype(dtype), rng.standard_normal(c_out).astype(dtype)]
    if data_format_first:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))  # (N, *spatial, C) -> (N, C, *spatial)
    fmt = (FIRST if data_format_first else LAST)[n]
    return x.astype(dtype), [*arrays, *args], dict(hyper, data_format=fmt)


def results(name, x, args, kwargs, dout):
    """``[out, *gradients]`` (and ``cache.indices`` for max pooling) of the forward and backward passes."""
    forward, backward = functions(name)
    out, cache = forward(x, *args, **kwargs)
    grads = backward(dout, cache)
    extra = [cache.indices] if "max" in name else []
    return [out, *(grads if isinstance(grads, tuple) else (grads,)), *extra]


def check(name, first, dtype, chunking):
    x, args, kwargs = layer_inputs(name, first, dtype)
    forward, _ = functions(name)
    out_shape = forward(x, *args, **kwargs)[0].shape
    dout = np.random.default_rng(1).standard_normal(out_shape).astype(dtype)
    expected = results(name, x, args, kwargs, dout)
    chunks = CHUNKINGS[chunking]
    xd = da.from_array(x, chunks=(chunks, *(-1,) * (x.ndim - 1)))
    # an uneven batch gets dout as a Dask array chunked otherwise; one chunk gets a NumPy dout
    d = da.from_array(dout, chunks=(2, *(-1,) * (dout.ndim - 1))) if chunking == "uneven" else dout
    lazy = results(name, xd, args, kwargs, d)
    assert all(isinstance(r, da.Array) for r in lazy), [type(r) for r in lazy]
    assert lazy[0].chunks[0] == lazy[1].chunks[0] == chunks  # out and dx in the blocks of x
    if "max" in name:
        assert lazy[-1].chunks == lazy[0].chunks and lazy[-1].dtype == np.int64
    computed = dask.compute(*lazy)
    assert len(computed) == len(expected)
    for got, want in zip(computed, expected, strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        if got.dtype.kind == "i":
            np.testing.assert_array_equal(got, want)
        else:
            assert_close(got, want, dtype, rtol=RTOL[dtype])
    return computed, expected


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_new_function_matches_numpy(name, first, chunking):
    check(name, first, np.float64, chunking)


@pytest.mark.parametrize("name", ["conv1d", "conv3d", "max_pool3d", "adaptive_max_pool1d", "adaptive_avg_pool3d"])
def test_float32_matches_numpy(name):
    check(name, False, np.float32, "uneven")


@pytest.mark.parametrize("name", ["max_pool1d", "adaptive_max_pool3d", "avg_pool3d", "adaptive_avg_pool1d"])
def test_per_image_results_are_exactly_numpys(name):
    """Pooling works image by image: every block gives exactly the numbers of the whole batch."""
    computed, expected = check(name, True, np.float64, "uneven")
    for got, want in zip(computed, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["max_pool1d", "max_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d"])
def test_max_pool_indices_are_lazy_and_equal_numpys(name):
    x, args, kwargs = layer_inputs(name, False, np.float64)
    forward, _ = functions(name)
    _, cache = forward(da.from_array(x, chunks=(3, *(-1,) * (x.ndim - 1))), *args, **kwargs)
    assert isinstance(cache, batch_chunks.ChunkedCache)
    indices = cache.indices
    assert isinstance(indices, da.Array) and indices.dtype == np.int64
    np.testing.assert_array_equal(indices.compute(), forward(x, *args, **kwargs)[1].indices)


def test_average_pool_caches_have_no_indices():
    for name in ("avg_pool1d", "adaptive_avg_pool3d"):
        x, args, kwargs = layer_inputs(name, False, np.float64)
        _, cache = functions(name)[0](da.from_array(x, chunks=3), *args, **kwargs)
        with pytest.raises(AttributeError, match="indices exist for max pooling only"):
            cache.indices  # noqa: B018


@pytest.mark.parametrize("name", ["conv1d", "conv_transpose3d"])
def test_need_dx_false_gives_no_dx_and_the_same_dw_and_db(name):
    x, args, kwargs = layer_inputs(name, True, np.float64)
    forward, backward = functions(name)
    out, cache = forward(x, *args, **kwargs)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    _, lazy_cache = forward(da.from_array(x, chunks=3), *args, **kwargs)
    dx, dw, db = backward(dout, lazy_cache, need_dx=False)
    assert dx is None and isinstance(dw, da.Array) and isinstance(db, da.Array)
    _, want_dw, want_db = backward(dout, cache)
    for got, want in zip(dask.compute(dw, db), (want_dw, want_db), strict=True):
        assert_close(got, want, np.float64, rtol=1e-12)


@pytest.mark.parametrize("name", ["conv1d", "conv3d"])
def test_weight_and_bias_gradients_are_summed_by_a_tree_of_split_every_partials(name):
    n = 1 if name == "conv1d" else 3
    x = da.ones((64, *(4,) * n, 2), chunks=(4, *(-1,) * (n + 1)))  # 16 blocks
    fwd, bwd = getattr(ic, f"{name}_forward"), getattr(ic, f"{name}_backward")
    out, cache = fwd(x, np.ones((3,) * n + (2, 3)), np.zeros(3), padding=1)
    for split_every in (2, 4):
        with dask.config.set(split_every=split_every):
            _, dw, db = bwd(da.ones(out.shape, chunks=(8, *(-1,) * (n + 1))), cache)
        for grad in (dw, db):
            dependencies = grad.__dask_graph__().get_all_dependencies()
            sums = [len(keys) for key, keys in dependencies.items() if key[0].startswith("sum")]
            assert max(sums) == split_every  # no task adds up more than split_every partials
        dw, db = dask.compute(dw, db)
        np.testing.assert_array_equal(db, np.full(3, 64 * 4.0**n))
        assert dw[(1,) * n + (0, 0)] == 64 * 4**n  # the centre tap sees every position


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


def test_a_3d_network_is_lazy_and_runs_each_block_once(engine_calls):
    x, args, kwargs = layer_inputs("conv3d", False, np.float64)
    out, cache = ic.conv3d_forward(da.from_array(x, chunks=(3, -1, -1, -1, -1)), *args, **kwargs)
    pooled, pool_cache = ic.adaptive_max_pool3d_forward(da.maximum(out, 0), (2, 1, 3))
    loss = pooled.sum()
    d_out = ic.adaptive_max_pool3d_backward(da.ones_like(pooled), pool_cache) * (out > 0)
    dx, dw, db = ic.conv3d_backward(d_out, cache)
    assert engine_calls == {}
    dask.compute(loss, dx, dw, db)
    assert engine_calls == {
        "conv3d_forward": 3,
        "adaptive_max_pool3d_forward": 3,
        "adaptive_max_pool3d_backward": 3,
        "conv3d_backward": 3,
    }


def test_float16_batches_answer_in_float16_as_numpy_does():
    x, args, kwargs = layer_inputs("conv1d", False, np.float16)
    out_shape = ic.conv1d_forward(x, *args, **kwargs)[0].shape
    dout = np.random.default_rng(1).standard_normal(out_shape).astype(np.float16)
    expected = results("conv1d", x, args, kwargs, dout)
    computed = dask.compute(*results("conv1d", da.from_array(x, chunks=(3, -1, -1)), args, kwargs, dout))
    for got, want in zip(computed, expected, strict=True):
        assert got.dtype == want.dtype == np.float16
    for got, want in zip(computed[:2], expected[:2], strict=True):  # out, dx: per image, the same roundings
        np.testing.assert_array_equal(got, want)
    for got, want in zip(computed[2:], expected[2:], strict=True):  # dw, db: float32 sums in another order,
        np.testing.assert_allclose(got, want, rtol=2**-10)  # rounded once to float16: within one step of it


def test_an_empty_batch_gives_empty_outputs_and_zero_gradients():
    x = da.zeros((0, 4, 5, 5, 2), chunks=(4, -1, -1, -1, -1))
    out, cache = ic.conv3d_forward(x, np.ones((3, 3, 3, 2, 4)), padding=1)
    dx, dw, db = dask.compute(*ic.conv3d_backward(da.ones(out.shape), cache))
    assert out.shape == (0, 4, 5, 5, 4) and dx.shape == (0, 4, 5, 5, 2)
    assert dw.shape == (3, 3, 3, 2, 4) and not dw.any() and not db.any()


def test_the_cache_of_another_rank_is_a_type_error_naming_both():
    x = da.ones((4, 5, 5, 5, 2), chunks=2)
    out, cache = ic.conv3d_forward(x, np.ones((1, 1, 1, 2, 2)))
    expected = r"cache must be the cache returned by conv1d_forward, got the cache of conv3d_forward"
    with pytest.raises(TypeError, match=expected):
        ic.conv1d_backward(da.ones((4, 5, 2)), cache)
    _, pool_cache = ic.max_pool1d_forward(da.ones((4, 6, 2), chunks=2), 2)
    expected = r"cache must be the cache returned by adaptive_max_pool1d_forward, got the cache of max_pool1d_forward"
    with pytest.raises(TypeError, match=expected):
        ic.adaptive_max_pool1d_backward(da.ones((4, 3, 2)), pool_cache)


def test_x_of_another_rank_fails_with_the_engines_message_when_the_graph_is_built():
    with pytest.raises(ValueError, match=r"x must be a 3-D array of shape \(N, W, C\) for data_format 'NWC'"):
        ic.max_pool1d_forward(da.ones((4, 4, 4, 2), chunks=2), 2)
    with pytest.raises(ValueError, match=r"data_format 'NCHW' is the layout of 4-D arrays"):
        ic.conv3d_forward(da.ones((4, 4, 4, 4, 2), chunks=2), np.ones((1, 1, 1, 2, 2)), data_format="NCHW")
    with pytest.raises(ValueError, match=r"output_size must be an int >= 1"):
        ic.adaptive_avg_pool3d_forward(da.ones((4, 4, 4, 4, 2), chunks=2), (2, 0, 2))


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("unfold", lambda a: ic.unfold(a, 2)),
        ("fold", lambda a: ic.fold(a, (3, 3), 2)),
        ("im2col", lambda a: ic.im2col(a, 2)),
        ("col2im", lambda a: ic.col2im(a, (1, 3, 3, 1), 2)),
    ],
)
def test_the_column_functions_refuse_dask_arrays_rather_than_computing_them_whole(name, call):
    shapes = {"unfold": (2, 1, 3, 3), "fold": (2, 4, 4), "im2col": (2, 3, 3, 1), "col2im": (4, 4)}
    arg = "cols" if name in ("fold", "col2im") else "x"
    with pytest.raises(TypeError, match=rf"{arg} must be a NumPy array: {name} does not chunk Dask arrays"):
        call(da.ones(shapes[name], chunks=1))
