"""The promises the 2-D layer functions make, kept by the 1-D and 3-D ones, adaptive pooling and N-d unfold/im2col.

For conv and transposed conv in 1-D and 3-D (both layouts), max and average pooling in 1-D and 3-D, adaptive
average and max pooling in 1, 2 and 3 dimensions on each of their three paths (global average, windows that
divide evenly, general adaptive windows), ``unfold``/``fold`` and N-d ``im2col``/``col2im``:

* scratch memory stays within the workspace limit plus ``SCRATCH_SLACK`` at the smallest limit (16 MiB), on
  shapes where any image-sized temporary would exceed it;
* results are bitwise identical for every workspace limit, thread count and pooling tile size;
* float16 input gives float16 results, each exactly the float32 computation rounded once;
* non-native byte order gives native results equal to those of native input;
* inputs are never modified (and read-only inputs work);
* nothing a forward or backward pass returns shares memory with the cache, and changing ``out`` in place does
  not change the backward result;
* an empty batch works, and ``need_dx=False`` gives ``dx`` None with the same ``dw`` and ``db``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest

import im2col_cnn as ic
from benchmarks.memory import peak_scratch, returned_bytes
from im2col_cnn.geometry import tiles as pool_tiles
from im2col_cnn.kernels.global_max import FEW_POSITIONS

MiB = 2**20
LIMIT = 16 * MiB
SLACK = 1 * MiB  # im2col_cnn.runtime.workspace.SCRATCH_SLACK (small weights here, so no weight-sized term)
UNLIMITED = 2**40
HALF = np.float16
FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


# --- The layers under test ------------------------------------------------------------------------------------


class Case(NamedTuple):
    """One call of a layer: ``name`` (``ic.{name}_forward``/``_backward``), the channels-last shapes of ``x`` and
    ``w`` (None: no weights), the positional arguments after the arrays, and keyword hyperparameters."""

    name: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...] | None = None
    args: tuple = ()
    kwargs: dict | None = None

    @property
    def ndim(self) -> int:
        return len(self.x_shape) - 2

    @property
    def label(self) -> str:
        extra = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in (self.kwargs or {}).items())])
        return f"{self.name}({extra})"


CONVS = [
    Case("conv1d", (3, 11, 4), (3, 2, 6), kwargs=dict(stride=2, padding=1, groups=2)),
    Case("conv1d", (2, 9, 3), (2, 3, 4), kwargs=dict(padding="same", dilation=2)),
    Case("conv3d", (2, 5, 6, 7, 4), (3, 2, 3, 2, 6),
         kwargs=dict(stride=(1, 2, 1), padding=1, dilation=(1, 1, 2), groups=2)),
    Case("conv3d", (2, 4, 5, 3, 3), (1, 1, 1, 3, 5)),  # pointwise
    Case("conv_transpose1d", (3, 6, 4), (3, 3, 4), kwargs=dict(stride=2, padding=1, output_padding=1)),
    Case("conv_transpose1d", (2, 5, 4), (2, 1, 4), kwargs=dict(groups=4, dilation=2)),  # depthwise
    Case("conv_transpose3d", (2, 3, 4, 3, 4), (2, 3, 2, 3, 4),
         kwargs=dict(stride=2, padding=(0, 1, 0), output_padding=(1, 0, 1))),
]  # fmt: skip

POOLS = [
    Case("max_pool1d", (3, 13, 5), args=(3,), kwargs=dict(stride=2, padding=1)),
    Case("max_pool1d", (3, 13, 5), args=(2,), kwargs=dict(dilation=2, ceil_mode=True)),
    Case("max_pool3d", (2, 7, 6, 5, 3), args=((3, 2, 3),), kwargs=dict(stride=2, padding=(1, 0, 1), ceil_mode=True)),
    Case("max_pool3d", (2, 6, 4, 6, 3), args=(2,)),
    Case("avg_pool1d", (3, 13, 5), args=(3,), kwargs=dict(stride=2, padding=1, count_include_pad=False)),
    Case("avg_pool3d", (2, 7, 6, 5, 3), args=(3,), kwargs=dict(stride=2, padding=1, ceil_mode=True)),
    Case("avg_pool3d", (2, 6, 4, 6, 3), args=(2,), kwargs=dict(stride=(2, 1, 2), divisor_override=3)),
]

ADAPTIVE_X = {1: (3, 12, 5), 2: (2, 12, 10, 3), 3: (2, 6, 8, 10, 3)}
ADAPTIVE_SIZES = {  # output sizes per path: global (all 1), even (every axis divides), general
    1: {"global": 1, "even": 4, "general": 5},
    2: {"global": (1, 1), "even": (4, None), "general": (5, 3)},
    3: {"global": 1, "even": (3, 4, 5), "general": (4, None, 7)},
}
ADAPTIVE = [
    Case(f"adaptive_{kind}_pool{n}d", ADAPTIVE_X[n], args=(size,), kwargs={"path": path})
    for kind in ("avg", "max")
    for n in (1, 2, 3)
    for path, size in ADAPTIVE_SIZES[n].items()
]

LAYERS = CONVS + POOLS + ADAPTIVE


def functions(case: Case):
    return getattr(ic, f"{case.name}_forward"), getattr(ic, f"{case.name}_backward")


def hyper(case: Case) -> dict:
    return {k: v for k, v in (case.kwargs or {}).items() if k != "path"}


def c_out(case: Case) -> int:
    groups = (case.kwargs or {}).get("groups", 1)
    return case.w_shape[-2] * groups if "transpose" in case.name else case.w_shape[-1]


def to_first(a: np.ndarray) -> np.ndarray:
    """A channels-last activation (N, *spatial, C) as a contiguous channels-first one (N, C, *spatial)."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def weight_to_first(w: np.ndarray) -> np.ndarray:
    """A channels-last weight (*k, I, O) as PyTorch's contiguous (O, I, *k)."""
    return np.ascontiguousarray(w.transpose(w.ndim - 1, w.ndim - 2, *range(w.ndim - 2)))


def make_inputs(case: Case, channels_first: bool, dtype=np.float64, seed: int = 0) -> list[np.ndarray]:
    """``[x]`` or ``[x, w, b]`` in the layout. Max pooling input has ties (values on a grid of halves)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape)
    if "max" in case.name:
        x = np.round(x * 2) / 2
    arrays = [to_first(x) if channels_first else x]
    if case.w_shape is not None:
        w = rng.standard_normal(case.w_shape)
        arrays += [weight_to_first(w) if channels_first else w, rng.standard_normal(c_out(case))]
    return [a.astype(dtype) for a in arrays]


def make_dout(shape: tuple[int, ...], dtype=np.float64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def forward(case: Case, arrays, channels_first: bool):
    fwd, _ = functions(case)
    return fwd(*arrays, *case.args, data_format=FORMATS[case.ndim][channels_first], **hyper(case))


def backward(case: Case, dout, cache, **kwargs) -> tuple:
    grads = functions(case)[1](dout, cache, **kwargs)
    return grads if isinstance(grads, tuple) else (grads,)


def run(case: Case, arrays, channels_first: bool, dout=None, dtype=np.float64) -> list[np.ndarray]:
    """Forward then backward: ``[out, *grads]`` (and max pooling's ``cache.indices``)."""
    out, cache = forward(case, arrays, channels_first)
    grads = backward(case, make_dout(out.shape, dtype) if dout is None else dout, cache)
    return [out, *grads] + ([cache.indices] if "max" in case.name else [])


def arrays_in(obj) -> list[np.ndarray]:
    """Every ndarray in ``obj``: itself, the items of tuples (caches, nested caches) and dataclass fields."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in arrays_in(item)]
    if hasattr(obj, "__dataclass_fields__"):
        return [a for item in vars(obj).values() for a in arrays_in(item)]
    return []


def ids(cases) -> list[str]:
    return [c.label for c in cases]


def adaptive_path(cache) -> str:
    """Which of adaptive pooling's paths made ``cache``: 'global', 'even' or 'general'."""
    if cache.pool is not None:
        return "even"
    return "global" if all(a.out == 1 for a in cache.axes) else "general"


@pytest.mark.parametrize("case", ADAPTIVE, ids=ids(ADAPTIVE))
def test_adaptive_cases_cover_all_three_paths(case):
    _, cache = forward(case, make_inputs(case, False), False)
    path = case.kwargs["path"]
    if path == "global" and "max" in case.name and math.prod(case.x_shape[1:-1]) < FEW_POSITIONS:
        path = "even"  # global max pooling of few positions: an ordinary pooling
    assert adaptive_path(cache) == path


# Unfold-family calls: (name, channels-first x shape for unfold / channels-last for im2col, kernel, keywords)
UNFOLDS = [
    ("unfold", (2, 3, 11), 3, dict(dilation=2, padding=1, stride=2)),
    ("unfold", (2, 2, 5, 6, 7), (2, 3, 2), dict(padding=(1, 0, 1), stride=(1, 2, 1), dilation=(2, 1, 1))),
    ("im2col", (2, 11, 3), 3, dict(stride=2, padding=((1, 2),))),
    ("im2col", (2, 5, 6, 7, 2), (2, 3, 2), dict(stride=(1, 2, 1), padding=1, dilation=(2, 1, 1))),
]


def unfold_pair(name, x, kernel, kw, cols=None):
    """``(cols, x_back)``: the gather of ``x`` and the scatter of ``cols`` (default: of the gathered shape)."""
    if name == "unfold":
        gathered = ic.unfold(x, kernel, **kw)
        back = ic.fold(gathered if cols is None else cols, x.shape[2:], kernel, **kw)
    else:
        gathered = ic.im2col(x, kernel, **kw)
        back = ic.col2im(gathered if cols is None else cols, x.shape, kernel, **kw)
    return gathered, back


def unfold_inputs(name, shape, kernel, kw, dtype=np.float64):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    cols_shape = (ic.unfold if name == "unfold" else ic.im2col)(np.zeros((1, *shape[1:])), kernel, **kw).shape
    cols_shape = (shape[0], *cols_shape[1:]) if name == "unfold" else (cols_shape[0] * shape[0], cols_shape[1])
    return x, rng.standard_normal(cols_shape).astype(dtype)


UNFOLD_IDS = [f"{name}-{len(shape) - 2}d" for name, shape, _, _ in UNFOLDS]


# --- (a) scratch memory within the workspace limit --------------------------------------------------------------


def scratch_bytes(call, inputs=()) -> tuple[int, object]:
    """Scratch of one ``call()`` by benchmarks.memory's measure (the traced peak minus what its results keep, the
    buffers of ``inputs`` -- which a cache holds by reference -- left out), and what the call returned."""
    results: list[object] = []
    used, _ = peak_scratch(lambda: results.append(call()) or results[-1], inputs)
    return used, results[0]


def assert_within_limit(call, inputs=()):
    """``call()``'s result, after checking that its scratch stayed within the limit plus the slack."""
    used, result = scratch_bytes(call, inputs)
    assert used <= LIMIT + SLACK, f"scratch {used / MiB:.1f} MiB > limit {LIMIT / MiB:.0f} MiB + slack"
    return result


def ones(shape, dtype=np.float64):
    """A read-only array of ones that costs no memory."""
    return np.broadcast_to(np.ones(shape[-1], dtype=dtype), shape)


@pytest.fixture
def small_limit():
    """The smallest workspace limit, globally (pooling has no ``workspace`` argument), and up to 4 threads (the
    engine caps pooling's threads at limit // 8 MiB: each has its own scratch)."""
    ic.set_num_threads(4)
    try:
        with ic.workspace_limit(LIMIT):
            yield
    finally:
        ic.set_num_threads(None)


def test_slack_is_the_documented_constant():
    from im2col_cnn.runtime.workspace import SCRATCH_SLACK

    assert SCRATCH_SLACK == SLACK


# name: (layer, x, w, keywords); each image (or its output) is 24 MiB or more, so an image-sized temporary -- a
# padded copy, a layout conversion, a whole image's columns -- would exceed the limit.
CONV_MEMORY = {
    "conv1d padding": ("conv1d", (1, 2**19, 6), (3, 6, 1), dict(padding=1)),
    "conv1d depthwise": ("conv1d", (1, 2**19, 16), (3, 1, 16), dict(padding=1, groups=16)),
    "conv1d strided": ("conv1d", (1, 2**20, 3), (4, 3, 2), dict(stride=2, padding=1)),
    "conv1d NCW": ("conv1d", (24, 2, 1024), (128, 2, 3), dict(padding=1, data_format="NCW")),
    "conv3d padding": ("conv3d", (1, 48, 64, 64, 16), (1, 1, 3, 16, 1), dict(padding=(0, 0, 1))),
    "conv3d strided": ("conv3d", (1, 48, 64, 128, 8), (2, 2, 2, 8, 2), dict(stride=2)),
    "conv3d NCDHW": ("conv3d", (8, 4, 16, 16, 32), (64, 4, 3, 3, 3), dict(padding=1, data_format="NCDHW")),
    "conv3d pointwise NCDHW": ("conv3d", (16, 64, 8, 16, 32), (8, 64, 1, 1, 1), dict(data_format="NCDHW")),
    "conv_transpose1d strided": ("conv_transpose1d", (1, 2**19, 8), (4, 8, 8), dict(stride=2, padding=1)),
    "conv_transpose1d NCW": ("conv_transpose1d", (64, 4, 1024), (4, 64, 3), dict(padding=1, data_format="NCW")),
    "conv_transpose3d NCDHW": ("conv_transpose3d", (8, 4, 16, 16, 32), (4, 64, 3, 3, 3),
                               dict(padding=1, data_format="NCDHW")),
    "conv_transpose3d strided": ("conv_transpose3d", (1, 24, 32, 64, 2), (2, 2, 2, 8, 2), dict(stride=2)),
}  # fmt: skip


@pytest.mark.parametrize("label", list(CONV_MEMORY))
def test_conv_scratch_stays_within_the_limit(label):
    name, x_shape, w_shape, kw = CONV_MEMORY[label]
    fwd, bwd = getattr(ic, f"{name}_forward"), getattr(ic, f"{name}_backward")
    x, w = ones(x_shape), np.full(w_shape, 0.1)
    out, cache = assert_within_limit(lambda: fwd(x, w, workspace=LIMIT, **kw), (x, w))
    assert max(x.size, out.size) * 8 >= 24 * MiB  # an image-sized temporary would not fit
    dx, dw, db = assert_within_limit(lambda: bwd(ones(out.shape), cache, workspace=LIMIT))
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (out.shape[1 if kw.get("data_format") else -1],)


# (x shape channels-last, float dtype): 32 MiB images
POOL_MEMORY_X = {1: ((1, 2**18, 16), np.float64), 3: ((1, 64, 64, 64, 32), np.float32)}
WINDOWS = [(2, 2, 0), (3, 2, 1)]  # (kernel, stride, padding): disjoint and overlapping windows


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ndim", [1, 3])
def test_pool_scratch_stays_within_the_limit(ndim, kind, window, fmt, small_limit):
    shape, dtype = POOL_MEMORY_X[ndim]
    first = fmt == "first"
    x = np.broadcast_to(np.asarray(1.5, dtype=dtype), (shape[0], shape[-1], *shape[1:-1]) if first else shape)
    fwd, bwd = getattr(ic, f"{kind}_pool{ndim}d_forward"), getattr(ic, f"{kind}_pool{ndim}d_backward")
    k, s, p = window
    data_format = FORMATS[ndim][first]
    assert x[0].nbytes == 32 * MiB
    out, cache = assert_within_limit(lambda: fwd(x, k, stride=s, padding=p, data_format=data_format), (x,))
    assert out.dtype == x.dtype and out.flags.c_contiguous
    corner = 1.5 if kind == "max" or p == 0 else 1.5 * (2 / 3) ** ndim  # a corner window reads (2/3)**ndim input
    assert out.max() == 1.5 and out.min() == out.dtype.type(corner)  # in out's dtype on every NumPy version
    dout = np.broadcast_to(np.asarray(1.0, dtype=dtype), out.shape)
    dx = assert_within_limit(lambda: bwd(dout, cache), (dout,))
    assert dx.shape == x.shape and dx.dtype == x.dtype and dx.flags.c_contiguous
    if kind == "max":  # one byte of winner per output: no copy of x or of out in the cache
        assert returned_bytes(cache, (x,)) <= out.size + MiB


# (channels-last x shape, output size) per rank and path: 32 MiB images (float64); global pooling of few positions
# and many channels, whose partial results are sized by the channels.
ADAPTIVE_MEMORY = {
    1: {"global": ((1, 64, 65536), 1), "even": ((1, 2**14, 256), 2**12), "general": ((1, 2**14, 256), 1000)},
    2: {"global": ((1, 8, 8, 65536), 1), "even": ((1, 256, 256, 64), (64, 32)),
        "general": ((1, 256, 256, 64), (100, 77))},
    3: {"global": ((1, 4, 4, 4, 65536), 1), "even": ((1, 32, 32, 32, 128), (16, 8, 16)),
        "general": ((1, 32, 32, 32, 128), (13, 9, 7))},
}  # fmt: skip


@pytest.mark.parametrize("path", ["global", "even", "general"])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_adaptive_pool_scratch_stays_within_the_limit(ndim, kind, path, small_limit):
    shape, size = ADAPTIVE_MEMORY[ndim][path]
    first = ndim == 2  # channels-first in 2-D: read through a view, never converted whole
    x = ones(shape)
    if first:  # broadcast along the channels, so that each channel plane's positions are laid out in order
        x = np.broadcast_to(np.ones((1, 1, *shape[1:-1])), (shape[0], shape[-1], *shape[1:-1]))
    fwd, bwd = getattr(ic, f"adaptive_{kind}_pool{ndim}d_forward"), getattr(ic, f"adaptive_{kind}_pool{ndim}d_backward")
    data_format = FORMATS[ndim][first]
    assert x[0].nbytes == 32 * MiB
    out, cache = assert_within_limit(lambda: fwd(x, size, data_format=data_format), (x,))
    assert adaptive_path(cache) == path
    np.testing.assert_array_equal(out.reshape(-1)[:5], 1.0)
    dx = assert_within_limit(lambda: bwd(ones(out.shape), cache))
    assert dx.shape == x.shape and dx.flags.c_contiguous


@pytest.mark.parametrize("ndim", [1, 3])
def test_unfold_and_fold_use_no_scratch_beyond_their_results(ndim, small_limit):
    # x of 32 MiB (channels-first) and 3x its columns: a padded copy of either would exceed the limit
    x = ones((1, 16, 2**18) if ndim == 1 else (1, 16, 32, 64, 64))
    kw = dict(kernel_size=(3,) * ndim if ndim == 1 else (1, 1, 3), padding=(1,) * ndim if ndim == 1 else (0, 0, 1))
    cols = assert_within_limit(lambda: ic.unfold(x, **kw), (x,))
    assert cols.shape == (1, 48, x[0, 0].size)
    cols = ones((1, 48, x[0, 0].size))
    assert assert_within_limit(lambda: ic.fold(cols, x.shape[2:], **kw), (cols,)).shape == x.shape


@pytest.mark.parametrize("ndim", [1, 3])
def test_im2col_and_col2im_use_no_scratch_beyond_their_results(ndim, small_limit):
    x = ones((1, 2**18, 16) if ndim == 1 else (1, 32, 64, 64, 16))
    kernel, padding = ((3,), 1) if ndim == 1 else ((1, 1, 3), (0, 0, 1))
    cols = assert_within_limit(lambda: ic.im2col(x, kernel, padding=padding), (x,))
    assert cols.shape == (x[0, ..., 0].size, 48)
    cols = ones((x[0, ..., 0].size, 48))
    assert assert_within_limit(lambda: ic.col2im(cols, x.shape, kernel, padding=padding), (cols,)).shape == x.shape


# --- (b) bitwise identical for every limit, thread count and tile size ---------------------------------------------

# shapes whose batch spans several blocks of columns (conv: more than 2 * BLOCK_BYTES of them in float32) or several
# tiles (pooling), each image's scratch within the smallest limit
THREAD_CASES = [
    Case("conv1d", (128, 800, 16), (3, 16, 8), kwargs=dict(padding=1, stride=2)),
    Case("conv3d", (12, 10, 12, 14, 8), (3, 3, 3, 8, 8), kwargs=dict(padding=1)),
    Case("conv3d", (12, 10, 12, 14, 8), (3, 3, 3, 2, 8), kwargs=dict(padding=(1, 0, 2), stride=(2, 1, 1), groups=4)),
    Case("conv_transpose1d", (256, 200, 8), (4, 8, 8), kwargs=dict(stride=2, padding=1)),
    Case("conv_transpose3d", (24, 8, 9, 10, 8), (3, 3, 3, 4, 8), kwargs=dict(stride=2, padding=1, output_padding=1)),
    Case("max_pool1d", (5, 300, 24), args=(3,), kwargs=dict(stride=2, padding=1)),
    Case("max_pool3d", (4, 9, 10, 11, 8), args=((2, 3, 2),),
         kwargs=dict(stride=(1, 2, 2), dilation=(2, 1, 1), ceil_mode=True)),
    Case("avg_pool1d", (5, 300, 24), args=(4,),
         kwargs=dict(stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    Case("avg_pool3d", (4, 9, 10, 11, 8), args=(3,), kwargs=dict(stride=2, padding=1)),
    *[Case(f"adaptive_{kind}_pool{n}d", x, args=(size,), kwargs={"path": path})
      for kind in ("avg", "max")
      for n, x, sizes in [(1, (5, 300, 24), {"even": 100, "general": 37}),
                          (2, (4, 30, 28, 16), {"even": (10, 14), "general": (7, 11)}),
                          (3, (4, 9, 10, 11, 8), {"general": (4, 3, 5)})]
      for path, size in sizes.items()],
    Case("adaptive_avg_pool3d", (4, 9, 10, 11, 8), args=(1,), kwargs={"path": "global"}),
    Case("adaptive_max_pool3d", (4, 9, 10, 11, 8), args=((3, 5, 11),), kwargs={"path": "even"}),
]  # fmt: skip


def nan_inputs(case: Case, first: bool, dtype) -> list[np.ndarray]:
    arrays = make_inputs(case, first, dtype, seed=7)
    if case.w_shape is None:  # pooling: a NaN, a window of ties (zeros) in each image
        x = arrays[0]
        x.reshape(-1)[5] = np.nan
        x[1] = np.maximum(x[1], 0)
    return arrays


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", THREAD_CASES, ids=ids(THREAD_CASES))
def test_identical_for_every_limit_thread_count_and_tile_size(case, fmt, monkeypatch):
    first = fmt == "first"
    dtype = np.float32
    arrays = nan_inputs(case, first, dtype)
    out, _ = forward(case, arrays, first)
    dout = make_dout(out.shape, dtype)
    ic.set_num_threads(1)
    try:
        expected = run(case, arrays, first, dout)
        ic.set_num_threads(2)
        for limit in (LIMIT, UNLIMITED):
            with ic.workspace_limit(limit):
                for got, want in zip(run(case, arrays, first, dout), expected, strict=True):
                    np.testing.assert_array_equal(got, want, err_msg=f"limit {limit}")
        for tile in () if case.w_shape else (1500, 2**15, 2**20):  # pooling: tiles of rows, columns, channels
            monkeypatch.setattr(pool_tiles, "TILE_BYTES", tile)
            for got, want in zip(run(case, arrays, first, dout), expected, strict=True):
                np.testing.assert_array_equal(got, want, err_msg=f"tiles of {tile} bytes")
    finally:
        ic.set_num_threads(None)


@pytest.mark.parametrize("case", UNFOLDS, ids=UNFOLD_IDS)
def test_unfold_family_is_identical_for_every_limit_and_thread_count(case):
    name, shape, kernel, kw = case
    x, cols = unfold_inputs(name, shape, kernel, kw)
    ic.set_num_threads(1)
    try:
        expected = unfold_pair(name, x, kernel, kw, cols)
        ic.set_num_threads(2)
        for limit in (LIMIT, UNLIMITED):
            with ic.workspace_limit(limit):
                for got, want in zip(unfold_pair(name, x, kernel, kw, cols), expected, strict=True):
                    np.testing.assert_array_equal(got, want)
    finally:
        ic.set_num_threads(None)


# --- (c) float16: the float32 computation rounded once ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", LAYERS, ids=ids(LAYERS))
def test_float16_is_float32_rounded_once(case, fmt):
    first = fmt == "first"
    arrays = make_inputs(case, first, HALF)
    out, cache = forward(case, arrays, first)
    dout = make_dout(out.shape, HALF)
    grads = backward(case, dout, cache)
    out32, cache32 = forward(case, [a.astype(np.float32) for a in arrays], first)
    grads32 = backward(case, dout.astype(np.float32), cache32)
    assert out.dtype == HALF and all(g.dtype == HALF for g in grads)
    assert out32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    np.testing.assert_array_equal(out, out32.astype(HALF))
    for g, g32 in zip(grads, grads32, strict=True):
        np.testing.assert_array_equal(g, g32.astype(HALF))
    if "max" in case.name:
        np.testing.assert_array_equal(cache.indices, cache32.indices)
    # a float32 dout gives the same float16 gradients (the cache knows its caller's dtype)
    for g, g32 in zip(backward(case, dout.astype(np.float32), cache), grads32, strict=True):
        assert g.dtype == HALF
        np.testing.assert_array_equal(g, g32.astype(HALF))


@pytest.mark.parametrize("case", UNFOLDS, ids=UNFOLD_IDS)
def test_float16_unfold_family_is_float32_rounded_once(case):
    name, shape, kernel, kw = case
    x, cols = unfold_inputs(name, shape, kernel, kw, HALF)
    gathered, back = unfold_pair(name, x, kernel, kw, cols)
    gathered32, back32 = unfold_pair(name, x.astype(np.float32), kernel, kw, cols.astype(np.float32))
    assert gathered.dtype == back.dtype == HALF
    np.testing.assert_array_equal(gathered, gathered32.astype(HALF))  # a gather: exact
    np.testing.assert_array_equal(back, back32.astype(HALF))  # sums in float32, rounded once


# --- (d) non-native byte order ----------------------------------------------------------------------------------


def swapped(arr: np.ndarray) -> np.ndarray:
    """``arr`` in the non-native byte order (same values, same dtype kind and size)."""
    out = arr.astype(arr.dtype.newbyteorder("S"))
    assert not out.dtype.isnative
    return out


def assert_native_and_equal(got, expected, label):
    got, expected = arrays_in(got), arrays_in(expected)
    assert len(got) == len(expected) >= 1
    for arr, ref in zip(got, expected, strict=True):
        assert arr.dtype.isnative, f"{label}: a result of shape {arr.shape} has byte order {arr.dtype.byteorder}"
        assert arr.dtype == ref.dtype, f"{label}: {arr.dtype} != {ref.dtype}"
        np.testing.assert_array_equal(arr, ref, err_msg=label)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", LAYERS, ids=ids(LAYERS))
def test_non_native_byte_order_gives_native_results(case, fmt, dtype):
    first = fmt == "first"
    arrays = make_inputs(case, first, dtype)
    out, cache = forward(case, arrays, first)
    dout = make_dout(out.shape, dtype)
    expected = (out, tuple(cache), backward(case, dout, cache))
    out_s, cache_s = forward(case, [swapped(a) for a in arrays], first)
    got = (out_s, tuple(cache_s), backward(case, swapped(dout), cache_s))
    assert_native_and_equal(got, expected, case.label)
    if "max" in case.name:
        assert_native_and_equal(cache_s.indices, cache.indices, case.label)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("case", UNFOLDS, ids=UNFOLD_IDS)
def test_non_native_byte_order_unfold_family(case, dtype):
    name, shape, kernel, kw = case
    x, cols = unfold_inputs(name, shape, kernel, kw, dtype)
    expected = unfold_pair(name, x, kernel, kw, cols)
    got = unfold_pair(name, swapped(x), kernel, kw, swapped(cols))
    assert_native_and_equal(got, expected, name)


# --- (e) inputs never modified ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", LAYERS, ids=ids(LAYERS))
def test_inputs_are_never_modified(case, fmt):
    first = fmt == "first"
    arrays = make_inputs(case, first, np.float32)
    out, _ = forward(case, arrays, first)
    dout = make_dout(out.shape, np.float32)
    given = [*arrays, dout]
    copies = [a.copy() for a in given]
    for read_only in (False, True):  # read-only inputs work too: nothing ever writes to them
        for a in given:
            a.setflags(write=not read_only)
        results = run(case, arrays, first, dout)
        results += backward(case, dout, forward(case, arrays, first)[1])  # a second backward on a fresh cache
        for a, a_copy in zip(given, copies, strict=True):
            np.testing.assert_array_equal(a, a_copy, err_msg=f"{case.label}: an input of shape {a.shape} was modified")
        for r in results:
            if r is not None:
                assert r.flags.writeable
                assert not any(np.shares_memory(r, a) for a in given), f"{case.label}: a result aliases an input"


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
@pytest.mark.parametrize("case", UNFOLDS, ids=UNFOLD_IDS)
def test_unfold_family_never_modifies_its_inputs(case, read_only):
    name, shape, kernel, kw = case
    x, cols = unfold_inputs(name, shape, kernel, kw)
    copies = x.copy(), cols.copy()
    for a in (x, cols):
        a.setflags(write=not read_only)
    results = unfold_pair(name, x, kernel, kw, cols)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(cols, copies[1])
    for r in results:
        assert r.flags.writeable and not np.shares_memory(r, x) and not np.shares_memory(r, cols)


# --- (f) caches the caller cannot corrupt -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", LAYERS, ids=ids(LAYERS))
def test_nothing_returned_shares_memory_with_the_cache(case, fmt):
    first = fmt == "first"
    arrays = make_inputs(case, first, np.float64)
    out, cache = forward(case, arrays, first)
    assert np.shares_memory(cache.x, arrays[0])  # x kept by reference (a view), as PyTorch saves tensors
    kept = arrays_in(tuple(cache))
    assert not any(np.shares_memory(out, a) for a in kept), f"{case.label}: out shares memory with the cache"
    dout = make_dout(out.shape)
    grads = backward(case, dout, cache)
    extra = [cache.indices] if "max" in case.name else []
    for g in [*grads, *extra]:
        if g is not None:
            assert not any(np.shares_memory(g, a) for a in kept), f"{case.label}: a result shares memory with the cache"
            assert not np.shares_memory(g, out) and not np.shares_memory(g, dout)


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", LAYERS, ids=ids(LAYERS))
def test_changing_out_in_place_changes_no_gradient(case, fmt):
    first = fmt == "first"
    arrays = make_inputs(case, first, np.float64)
    out, cache = forward(case, arrays, first)
    dout = make_dout(out.shape)
    expected = backward(case, dout, cache)
    expected_indices = cache.indices if "max" in case.name else None
    for change in (lambda: np.maximum(out, 0, out=out), lambda: out.fill(0), lambda: out.fill(np.nan)):
        change()  # a ReLU with out=, zeroing, NaN
        for got, want in zip(backward(case, dout, cache), expected, strict=True):
            np.testing.assert_array_equal(got, want)
        if expected_indices is not None:
            np.testing.assert_array_equal(cache.indices, expected_indices)


# --- (g) empty batch, need_dx ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", LAYERS, ids=ids(LAYERS))
def test_an_empty_batch_works(case, fmt):
    first = fmt == "first"
    arrays = make_inputs(case, first, np.float32)
    full_out, _ = forward(case, arrays, first)
    arrays[0] = arrays[0][:0]
    out, cache = forward(case, arrays, first)
    assert out.shape == (0, *full_out.shape[1:]) and out.dtype == np.float32
    grads = backward(case, np.ones(out.shape, np.float32), cache)
    assert grads[0].shape == arrays[0].shape and grads[0].dtype == np.float32
    if len(grads) == 3:  # dw and db of no images: zeros of the weights' and bias' shapes
        assert grads[1].shape == arrays[1].shape and grads[2].shape == arrays[2].shape
        assert not grads[1].any() and not grads[2].any()
    if "max" in case.name:
        assert cache.indices.shape == out.shape and cache.indices.dtype == np.int64


@pytest.mark.parametrize("case", UNFOLDS, ids=UNFOLD_IDS)
def test_unfold_family_on_an_empty_batch(case):
    name, shape, kernel, kw = case
    x, cols = unfold_inputs(name, shape, kernel, kw)
    gathered, back = unfold_pair(name, x[:0], kernel, kw, cols[:0])
    assert gathered.shape == (0, *cols.shape[1:]) and back.shape == (0, *x.shape[1:])


@pytest.mark.parametrize("fmt", ["last", "first"])
@pytest.mark.parametrize("case", CONVS, ids=ids(CONVS))
def test_need_dx_false_gives_none_and_the_same_dw_and_db(case, fmt):
    first = fmt == "first"
    arrays = make_inputs(case, first)
    out, cache = forward(case, arrays, first)
    dout = make_dout(out.shape)
    dx, dw, db = backward(case, dout, cache)
    assert dx is not None and dx.shape == arrays[0].shape
    for flag in (False, np.False_, 0):
        none, dw2, db2 = backward(case, dout, cache, need_dx=flag)
        assert none is None
        np.testing.assert_array_equal(dw2, dw)
        np.testing.assert_array_equal(db2, db)
    np.testing.assert_array_equal(backward(case, dout, cache, need_dx=np.True_)[0], dx)
