"""The workspace limit and the fast paths: chunked and unchunked results agree exactly; fast paths match the loops."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import FLOAT_DTYPES, assert_close

import im2col_cnn as ic
import reference as ref
from im2col_cnn.windows import make_geometry
from im2col_cnn.workspace import BLOCK_BYTES, DEFAULT_WORKSPACE, MIN_WORKSPACE, row_blocks

MiB = 2**20
UNLIMITED = 2**40

# (x shape, w shape, stride, padding): the batch's columns span several blocks of BLOCK_BYTES (or, for the
# pointwise case, need none); one image's scratch fits MIN_WORKSPACE.
CHUNKED_CASES = [
    ((64, 16, 16, 16), (3, 3, 16, 6), 1, 1),
    ((40, 61, 47, 24), (3, 2, 24, 4), (2, 3), (2, 1)),
    ((37, 32, 32, 16), (5, 5, 16, 3), 2, 2),
    ((6, 14, 14, 64), (1, 1, 64, 8), 1, 0),  # pointwise: no columns at all
    ((60, 48, 48, 64), (1, 1, 64, 8), 2, 0),  # 1x1 but strided: columns are a subsample
]


def _conv_all(x, w, b, stride, padding, dout, workspace):
    out, cache = ic.conv2d_forward(x, w, b, stride=stride, padding=padding, workspace=workspace)
    return (out, *ic.conv2d_backward(dout, cache, workspace=workspace))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CHUNKED_CASES, ids=str)
def test_chunked_and_unchunked_agree_exactly(case, dtype):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[3]).astype(dtype)
    out, _ = ic.conv2d_forward(x, w, b, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape).astype(dtype)
    whole = _conv_all(x, w, b, stride, padding, dout, UNLIMITED)
    if w_shape[:2] != (1, 1) or stride != 1:  # the batch really is processed in several blocks
        cols_bytes = ic.im2col(x[:1], w_shape[:2], stride=stride, padding=padding).nbytes
        assert cols_bytes * x_shape[0] > 2 * BLOCK_BYTES
    for limit in (MIN_WORKSPACE, 3 * MIN_WORKSPACE, DEFAULT_WORKSPACE):
        with ic.workspace_limit(limit):  # the global limit, not only the per-call one
            chunked = _conv_all(x, w, b, stride, padding, dout, None)
        for a, c in zip(whole, chunked, strict=True):
            np.testing.assert_array_equal(a, c)
    # The blocked path agrees with the one-shot column formulas (whole column matrix, one product each).
    cols = ic.im2col(x, w_shape[:2], stride=stride, padding=padding)  # (N*Ho*Wo, kh*kw*C_in)
    w2 = w.reshape(-1, w_shape[3])
    d2 = dout.reshape(-1, w_shape[3])
    one_shot = (
        (cols @ w2 + b).reshape(out.shape),
        ic.col2im(d2 @ w2.T, x.shape, w_shape[:2], stride=stride, padding=padding),
        (cols.T @ d2).reshape(w.shape),
        d2.sum(axis=0),
    )
    for a, r in zip(whole, one_shot, strict=True):
        assert_close(a, r, dtype)


def test_image_larger_than_the_limit_is_split_into_row_blocks():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 48, 48, 64))  # one image's columns: 48*48*9*64*8 B = 10.1 MiB, twice in backward
    w = rng.standard_normal((3, 3, 64, 4))
    out, cache = ic.conv2d_forward(x, w, stride=1, padding=1, workspace=MIN_WORKSPACE)
    dout = rng.standard_normal(out.shape)
    small = ic.conv2d_backward(dout, cache, workspace=MIN_WORKSPACE)
    big_out, big_cache = ic.conv2d_forward(x, w, stride=1, padding=1, workspace=UNLIMITED)
    big = ic.conv2d_backward(dout, big_cache, workspace=UNLIMITED)
    geom = make_geometry(x.shape, (3, 3), (1, 1), (1, 1))
    row_bytes = 48 * 9 * 64 * 8
    blocks = row_blocks(2, geom.out_h, row_bytes, 2 * row_bytes, MIN_WORKSPACE)
    assert len(blocks) > 2 and all(images.stop - images.start == 1 for images, _ in blocks)
    for a, c in zip((out, *small), (big_out, *big), strict=True):
        assert_close(a, c, np.float64)


def test_row_blocks_cover_every_output_row_once():
    cases = [(5, 7, 100, 1000), (3, 4, 10, 10**6), (2, 9, 400, 1000), (1, 3, 10**7, 10), (700, 5, 2**10, 2**30)]
    for n, out_h, row_bytes, limit in cases:
        covered = np.zeros((n, out_h), dtype=int)
        for images, rows in row_blocks(n, out_h, row_bytes, 2 * row_bytes, limit):
            covered[images, rows] += 1
        np.testing.assert_array_equal(covered, 1)


def test_workspace_limit_settings():
    assert ic.get_workspace_limit() == DEFAULT_WORKSPACE
    with ic.workspace_limit(32 * MiB) as limit:
        assert limit == ic.get_workspace_limit() == 32 * MiB
    assert ic.get_workspace_limit() == DEFAULT_WORKSPACE
    previous = ic.set_workspace_limit(20 * MiB)
    try:
        assert previous == DEFAULT_WORKSPACE and ic.get_workspace_limit() == 20 * MiB
    finally:
        ic.set_workspace_limit(None)
    assert ic.get_workspace_limit() == DEFAULT_WORKSPACE


@pytest.mark.parametrize("bad", [0, 2**20, -1])
def test_workspace_too_small_is_a_value_error(bad):
    x, w = np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1))
    with pytest.raises(ValueError, match=r"workspace must be an int number of bytes >= 16777216"):
        ic.conv2d_forward(x, w, workspace=bad)
    with pytest.raises(ValueError, match=r"nbytes must be an int number of bytes >= 16777216"):
        ic.set_workspace_limit(bad)
    assert ic.get_workspace_limit() == DEFAULT_WORKSPACE


@pytest.mark.parametrize("bad", [1.5e6, "64MiB", True])
def test_workspace_wrong_type_is_a_type_error(bad):
    _, cache = ic.conv2d_forward(np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1)))
    with pytest.raises(TypeError, match=r"workspace must be an int number of bytes"):
        ic.conv2d_backward(np.ones((1, 2, 2, 1)), cache, workspace=bad)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize(
    "kernel, stride, padding, shape",
    [
        (2, 2, 0, (3, 8, 8, 4)),  # windows tile the input exactly
        (2, 2, 0, (3, 9, 7, 4)),  # non-overlapping, a row and a column left over
        (2, 3, 0, (2, 8, 8, 3)),  # stride larger than the kernel: gaps between windows
        (3, 2, 1, (2, 9, 9, 3)),  # overlapping, padded
        ((1, 3), (1, 3), (0, 1), (2, 5, 7, 3)),
    ],
)
def test_pooling_fast_paths_match_the_loops(kernel, stride, padding, shape, dtype):
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 3, shape).astype(dtype)  # ties on purpose
    for name in ("max_pool2d", "avg_pool2d"):
        out, cache = getattr(ic, f"{name}_forward")(x, kernel, stride=stride, padding=padding)
        rout, rcache = getattr(ref, f"{name}_forward")(x, kernel, stride=stride, padding=padding)
        assert_close(out, rout, dtype)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dx = getattr(ic, f"{name}_backward")(dout, cache)
        assert_close(dx, getattr(ref, f"{name}_backward")(dout, rcache), dtype)
