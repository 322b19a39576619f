"""The pooling kernels' short ufunc chunks: scoped to the call, and the same results as NumPy's default chunks."""

import numpy as np
import pytest

import im2col_cnn as ic
from im2col_cnn.kernels.pool_plan import UFUNC_BUFSIZE, short_ufunc_chunks


def test_short_ufunc_chunks_restores_the_callers_setting() -> None:
    before = np.getbufsize()
    with short_ufunc_chunks():
        assert np.getbufsize() == UFUNC_BUFSIZE
    assert np.getbufsize() == before


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_overlapping_max_pool_is_the_same_under_any_caller_bufsize(data_format: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 11, 5)).astype(np.float32)
    x[0, :3, :3] = 0.0  # ties
    if data_format == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)
    out, cache = ic.max_pool2d_forward(x, 3, stride=2, padding=1, data_format=data_format)
    with np.errstate():
        np.setbufsize(16 * 1024)
        out2, cache2 = ic.max_pool2d_forward(x, 3, stride=2, padding=1, data_format=data_format)
        assert np.getbufsize() == 16 * 1024  # the call leaves the caller's setting alone
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(cache.indices, cache2.indices)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(ic.max_pool2d_backward(dout, cache), ic.max_pool2d_backward(dout, cache2))
