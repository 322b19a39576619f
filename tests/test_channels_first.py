"""Contiguous channels-first convolutions computed in their own layout (``kernels/wide.py``).

A 1x1 convolution runs as one product per image on the channel planes (the pointwise kernels) and one with few
input channels builds transposed columns from the planes (the planes kernels); so does the forward pass of a
strided convolution of many channels where that is the cheaper (only its forward pass: its gradients run the
column kernels). Each case is checked against the reference loops in the same layout, forward and backward, plain
and transposed, in 1 to 3 dimensions -- the strided ones, too large for the loops, against the channels-last call,
which the loops check elsewhere; a spy checks that the channels-first kernel really ran (and only it); results are
bitwise identical for every workspace limit and thread count.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import im2col_cnn as ic
import reference as ref
from benchmarks.memory import peak_scratch
from im2col_cnn.kernels import tap_groups, wide
from im2col_cnn.runtime.workspace import DEFAULT_WORKSPACE, MIN_WORKSPACE, SCRATCH_SLACK

FORMATS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}

# (x shape channels-first, kernel, c_out, options, the channels-first kernel expected)
CASES = [
    ((3, 8, 7), (1,), 6, {}, "pointwise"),
    ((2, 8, 5, 6), (1, 1), 4, dict(groups=2), "pointwise"),
    ((2, 12, 4, 3, 5), (1, 1, 1), 6, dict(groups=3), "pointwise"),
    ((3, 3, 11), (3,), 5, dict(padding=1), "planes"),
    ((2, 3, 9, 8), (3, 3), 5, dict(padding=1), "planes"),
    ((2, 2, 9, 10), (3, 2), 4, dict(stride=2, padding=(1, 0), dilation=(1, 2)), "planes"),
    ((2, 2, 5, 6, 4), (2, 3, 2), 3, dict(padding=1, stride=(1, 2, 1)), "planes"),
]


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the names of the channels-first kernels that run."""
    ran: list[str] = []
    for name in (
        "pointwise_correlate",
        "pointwise_input_grad",
        "pointwise_weight_grad",
        "correlate",
        "weight_grad",
        "scatter_input_grad",
    ):
        original = getattr(wide, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            ran.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(wide, name, spy)
    return ran


def _arrays(x_shape, kernel, c_out, groups, dtype, *, transpose):
    rng = np.random.default_rng(sum(x_shape) + len(kernel))
    c_in = x_shape[1]
    # channels-first weights: (C_out, C_in // groups, *k) for a convolution, (C_in, C_out // groups, *k) transposed
    w_shape = (c_in, c_out // groups, *kernel) if transpose else (c_out, c_in // groups, *kernel)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return rng, x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transposed"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[4]}-{len(c[1])}d-{c[0]}")
def test_channels_first_kernels_match_the_loops(case, transpose, dtype, monkeypatch):
    x_shape, kernel, c_out, options, expected = case
    nd = len(kernel)
    fmt = FORMATS[nd]
    if transpose and expected == "planes":  # the transposed forward is the input gradient: few output channels
        x_shape = (x_shape[0], 7, *x_shape[2:])
        c_out = 2
    groups = options.get("groups", 1)
    name = f"conv_transpose{nd}d" if transpose else f"conv{nd}d"
    rng, x, w, b = _arrays(x_shape, kernel, c_out, groups, dtype, transpose=transpose)
    ran = _spy(monkeypatch)
    out, cache = getattr(ic, f"{name}_forward")(x, w, b, data_format=fmt, **options)
    r_out, r_cache = getattr(ref, f"{name}_forward")(x, w, b, data_format=fmt, **options)
    assert_close(out, r_out, dtype)
    assert out.flags.c_contiguous
    dout = rng.standard_normal(out.shape).astype(dtype)
    grads = getattr(ic, f"{name}_backward")(dout, cache)
    for got, want in zip(grads, getattr(ref, f"{name}_backward")(dout, r_cache), strict=True):
        assert_close(got, want, dtype)
    prefix = "pointwise_" if expected == "pointwise" else ""
    assert {f"{prefix}correlate", f"{prefix}weight_grad"} <= set(ran), ran
    assert ("pointwise_input_grad" if expected == "pointwise" else "scatter_input_grad") in ran, ran


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[4]}-{len(c[1])}d-{c[0]}")
def test_channels_first_kernels_are_identical_for_every_limit(case):
    x_shape, kernel, c_out, options, _ = case
    x_shape = (24, *x_shape[1:])  # several blocks of images
    fmt = FORMATS[len(kernel)]
    rng, x, w, b = _arrays(x_shape, kernel, c_out, options.get("groups", 1), np.float32, transpose=False)
    results = []
    fwd, bwd = getattr(ic, f"conv{len(kernel)}d_forward"), getattr(ic, f"conv{len(kernel)}d_backward")
    for limit, threads in ((MIN_WORKSPACE, 2), (DEFAULT_WORKSPACE, 2), (1 << 40, 2), (DEFAULT_WORKSPACE, 1)):
        before = ic.set_num_threads(threads)
        try:
            out, cache = fwd(x, w, b, data_format=fmt, workspace=limit, **options)
            dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
            results.append((out, *bwd(dout, cache, workspace=limit)))
        finally:
            ic.set_num_threads(before)
    for other in results[1:]:
        for a, e in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(a, e)


# A strided forward pass of many channels: (x channels-first, kernel, c_out, options, whether the planes kernel
# runs it). Each image has 512 output positions or more, so that a batch of two makes two tiles (one tile keeps the
# column kernel's tap groups).
STRIDED = [
    ((2, 64, 1100), (3,), 128, dict(stride=2, padding=1), True),
    ((2, 32, 50, 50), (3, 3), 128, dict(stride=2, padding=1), True),  # 25 outputs wide
    ((2, 16, 48, 75), (3, 2), 128, dict(stride=(2, 3), padding=(1, 0), dilation=(1, 2)), True),
    ((2, 16, 72, 72), (1, 1), 8, dict(stride=3), True),  # 1x1: whatever the channels; windows skip input
    ((2, 8, 6, 20, 50), (2, 3, 2), 128, dict(padding=1, stride=(1, 2, 2)), True),
    ((2, 128, 50, 50), (3, 3), 128, dict(stride=2, padding=1), False),  # as many channels out as in
    ((2, 32, 50, 50), (3, 3), 64, dict(stride=2, padding=1), False),  # fewer than 128 out
    ((2, 32, 46, 46), (3, 3), 128, dict(stride=2, padding=1), False),  # 23 outputs wide
]


def _to_last(x, w):
    """Channels-first ``x`` and PyTorch-layout conv weights -> their channels-last copies."""
    nd = x.ndim - 2
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)), np.ascontiguousarray(w.transpose(*range(2, nd + 2), 1, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", STRIDED, ids=lambda c: f"{len(c[1])}d-{c[0]}-{c[2]}-planes={c[4]}")
def test_strided_forward_pass_takes_the_cheaper_kernel_with_the_same_results(case, dtype, monkeypatch):
    """The planes kernel runs the forward pass alone, where it is the cheaper (``wide.strided_forward``); results
    agree with the channels-last call, forward and backward; a transposed convolution's passes never take it."""
    x_shape, kernel, c_out, options, planes = case
    nd = len(kernel)
    rng, x, w, b = _arrays(x_shape, kernel, c_out, 1, dtype, transpose=False)
    ran = _spy(monkeypatch)
    fwd, bwd = getattr(ic, f"conv{nd}d_forward"), getattr(ic, f"conv{nd}d_backward")
    out, cache = fwd(x, w, b, data_format=FORMATS[nd], **options)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = bwd(dout, cache)
    assert ran == (["correlate"] if planes else [])
    x_last, w_last = _to_last(x, w)
    out_last, cache_last = fwd(x_last, w_last, b, **options)
    dx_last, dw_last, db_last = bwd(np.ascontiguousarray(np.moveaxis(dout, 1, -1)), cache_last)
    assert_close(out, np.moveaxis(out_last, -1, 1), dtype)
    assert_close(dx, np.moveaxis(dx_last, -1, 1), dtype)
    assert_close(dw, dw_last.transpose(nd + 1, nd, *range(nd)), dtype)
    assert_close(db, db_last, dtype)
    ran.clear()
    t_fwd, t_bwd = getattr(ic, f"conv_transpose{nd}d_forward"), getattr(ic, f"conv_transpose{nd}d_backward")
    y, t_cache = t_fwd(out, w, None, data_format=FORMATS[nd], **options)  # w read as (C_in, C_out, *k): c_out -> C
    t_bwd(rng.standard_normal(y.shape).astype(dtype), t_cache)
    assert ran == []


@pytest.mark.parametrize("case", [c for c in STRIDED if c[4]], ids=lambda c: f"{len(c[1])}d-{c[0]}")
def test_strided_forward_pass_is_identical_for_every_limit_and_thread_count(case):
    test_channels_first_kernels_are_identical_for_every_limit(case)


@pytest.mark.parametrize("padding", [((1, 2), (0, 1)), ((0, 3), (2, 0)), "valid"], ids=str)
def test_strided_forward_pass_with_uneven_padding(padding, monkeypatch):
    """The planes' zero-padded copy spans what the windows read: more padding on one side, or none."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 16, 48, 75)), rng.standard_normal((128, 16, 3, 2))
    ran = _spy(monkeypatch)
    out, _ = ic.conv2d_forward(x, w, None, stride=(2, 3), padding=padding, data_format="NCHW")
    assert ran == ["correlate"]
    out_last, _ = ic.conv2d_forward(*_to_last(x, w), None, stride=(2, 3), padding=padding)
    assert_close(out, np.moveaxis(out_last, -1, 1), np.float64)


@pytest.mark.parametrize("padding", [1, 0], ids=["padded", "unpadded"])
def test_strided_forward_pass_stays_within_the_limit(padding, monkeypatch):
    """Its columns and zero-padded planes are the column kernel's scratch, tile for tile (37 MiB of input)."""
    x = np.full((48, 64, 56, 56), 0.5, dtype=np.float32)
    w = np.full((128, 64, 3, 3), 0.01, dtype=np.float32)
    ran = _spy(monkeypatch)
    used = peak_scratch(
        lambda: ic.conv2d_forward(x, w, None, stride=2, padding=padding, data_format="NCHW", workspace=MIN_WORKSPACE)[0]
    )[0]
    assert ran == ["correlate"]
    assert used <= MIN_WORKSPACE + SCRATCH_SLACK, f"scratch {used / 2**20:.1f} MiB"


def test_strided_forward_pass_of_one_tile_is_shared_among_the_threads(monkeypatch):
    """A batch in one tile keeps the column kernel's tap groups, which split its product among the threads (the
    planes kernel would run it on one)."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 128, 48, 48)).astype(np.float32)
    w = rng.standard_normal((256, 128, 3, 3)).astype(np.float32)
    ran = _spy(monkeypatch)
    cut = []
    original = tap_groups.correlate
    monkeypatch.setattr(tap_groups, "correlate", lambda *a, **k: cut.append(1) or original(*a, **k))
    out, _ = ic.conv2d_forward(x, w, None, stride=2, padding=1, data_format="NCHW")
    assert ran == [] and cut == [1]
    out_last, _ = ic.conv2d_forward(*_to_last(x, w), None, stride=2, padding=1)
    assert_close(out, np.moveaxis(out_last, -1, 1), np.float32)


def test_non_contiguous_channels_first_input_takes_the_staged_path(monkeypatch):
    """A strided channels-first view is not a stack of planes: the tile-by-tile kernels run, with equal results."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 6, 10)).astype(np.float64)[:, ::2, :, ::2]  # (2, 8, 6, 5), strided
    w = rng.standard_normal((4, 8, 1, 1))
    ran = _spy(monkeypatch)
    out, cache = ic.conv2d_forward(x, w, None, data_format="NCHW")
    assert ran == []
    assert_close(out, ref.conv2d_forward(x, w, None, data_format="NCHW")[0], np.float64)
    contiguous, _ = ic.conv2d_forward(np.ascontiguousarray(x), w, None, data_format="NCHW")
    assert "pointwise_correlate" in ran
    assert_close(out, contiguous, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_long_signal_of_many_channels_is_read_through_channels_last_views(dtype, monkeypatch):
    """A 1-D convolution over many channels whose planes are 4 KiB apart (1024 float32 positions: every channel
    of a position in one cache set) is read a few channels at a time by the channels-last kernels, not by the
    planes kernel, and matches the loops."""
    x_shape = (2, 20, 1024)
    rng, x, w, b = _arrays(x_shape, (3,), 16, 1, dtype, transpose=False)
    ran = _spy(monkeypatch)
    out, cache = ic.conv1d_forward(x, w, b, padding=1, data_format="NCW")
    r_out, r_cache = ref.conv1d_forward(x, w, b, padding=1, data_format="NCW")
    assert_close(out, r_out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(ic.conv1d_backward(dout, cache), ref.conv1d_backward(dout, r_cache), strict=True):
        assert_close(got, want, dtype)
    assert ran == []
