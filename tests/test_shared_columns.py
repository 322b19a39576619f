"""A transposed convolution's backward pass builds each tile's columns of ``dout`` once, for both its input and its
weight gradient: the same results, bit for bit, as the two passes apart, within the workspace limit."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import FLOAT_DTYPES

import im2col_cnn as ic
import reference as ref
from benchmarks.memory import peak_scratch
from im2col_cnn.kernels import shared_columns
from im2col_cnn.layers import transpose
from im2col_cnn.runtime.workspace import MIN_WORKSPACE as LIMIT
from im2col_cnn.runtime.workspace import SCRATCH_SLACK

MiB = 2**20

CASES = [  # (x NHWC, w (kh, kw, C_out // groups, C_in), kwargs): the transposed convolution's own arguments
    ((6, 9, 8, 16), (3, 3, 8, 16), dict(stride=2, padding=1, output_padding=1)),
    ((4, 7, 7, 24), (3, 3, 12, 24), dict(stride=1, padding=1, groups=2)),
    ((3, 10, 6, 32), (2, 3, 16, 32), dict(stride=(2, 1), dilation=(1, 2))),
    # 64 output channels: contiguous channels-first, the planes kernel's dx would differ in its last bits
    ((4, 9, 9, 16), (3, 3, 64, 16), dict(stride=2, padding=1, output_padding=1)),
]


def _spy(monkeypatch) -> list:
    """What each call of the one-pass kernel from the transposed convolution's backward pass returns."""
    made = []
    fused = shared_columns.correlate_and_weight_grad
    monkeypatch.setattr(transpose, "correlate_and_weight_grad", lambda *a, **k: made.append(fused(*a, **k)) or made[-1])
    return made


def _run(x, w, b, dout, fmt, kw):
    _, cache = ic.conv_transpose2d_forward(x, w, b, data_format=fmt, **kw)
    return ic.conv_transpose2d_backward(dout, cache)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW", "NCHW contiguous"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", CASES, ids=str)
def test_one_pass_equals_the_two_passes_and_the_loops(x_shape, w_shape, kw, dtype, fmt, monkeypatch):
    """Channels-first as transposed views of channels-last arrays, and as contiguous arrays (then a strided
    forward pass alone would take the planes kernel: the two passes must still run the one pass's kernel)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[2] * kw.get("groups", 1)).astype(dtype)
    rout, rcache = ref.conv_transpose2d_forward(x, w, b, **kw)
    dout = rng.standard_normal(rout.shape).astype(dtype)
    expected = ref.conv_transpose2d_backward(dout, rcache)
    if fmt != "NHWC":
        x, w, dout = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), dout.transpose(0, 3, 1, 2)
        if fmt == "NCHW contiguous":
            x, w, dout = np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(dout)
        fmt = "NCHW"
    made = _spy(monkeypatch)
    together = _run(x, w, b, dout, fmt, kw)
    assert len(made) == 1 and made[0] is not None  # the one pass ran
    monkeypatch.setattr(transpose, "correlate_and_weight_grad", lambda *a, **k: None)
    apart = _run(x, w, b, dout, fmt, kw)
    for one, two in zip(together, apart, strict=True):
        np.testing.assert_array_equal(one, two)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    back = (lambda a: a.transpose(0, 2, 3, 1)) if fmt == "NCHW" else (lambda a: a)
    np.testing.assert_allclose(back(together[0]), expected[0], rtol=rtol, atol=rtol)
    dw = together[1].transpose(2, 3, 1, 0) if fmt == "NCHW" else together[1]
    np.testing.assert_allclose(dw, expected[1], rtol=rtol, atol=rtol * 10)


def test_it_runs_only_the_column_kernel():
    d = np.zeros((2, 8, 8, 3))  # three channels: the few-channel (planar) kernels run instead
    x, dx = np.zeros((2, 8, 8, 4)), np.zeros((2, 8, 8, 4))
    geom = ic.conv2d_forward(d, np.zeros((3, 3, 3, 4)), padding=1)[1].geom
    assert shared_columns.correlate_and_weight_grad(d, np.zeros((3, 3, 3, 4)), x, geom, LIMIT, 1, dx) is None


def test_one_pass_stays_within_the_limit(monkeypatch):
    # 64 MiB of dout: one pass's tiles hold a block of its columns, a block of dx and of x each, and a partial dw.
    x = np.full((8, 128, 128, 32), 0.5)
    w = np.full((3, 3, 32, 32), 0.1)
    _, cache = ic.conv_transpose2d_forward(x, w, padding=1)
    dout = np.ones((8, 128, 128, 32))
    made = _spy(monkeypatch)
    used = peak_scratch(lambda: ic.conv_transpose2d_backward(dout, cache, workspace=LIMIT))[0]
    assert made and made[0] is not None
    assert used <= LIMIT + SCRATCH_SLACK, f"scratch {used / MiB:.1f} MiB"
