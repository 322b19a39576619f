"""The bias gradient: ``dout`` summed over all but its channels, in blocks on the engine's threads."""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic
from im2col_cnn.kernels import bias


@pytest.mark.parametrize("m, c", [(1, 1), (7, 3), (1000, 32), (1001, 32), (333, 1500), (64, 1024)])
def test_channel_sums_are_the_sum_over_rows(m, c):
    # Runs of ROW_RUN // C rows, with a remainder where m is not a multiple; C above ROW_RUN takes one row a run.
    rows = np.random.default_rng(0).standard_normal((m, c))
    np.testing.assert_allclose(bias._channel_sums(rows), rows.sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["last", "first", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradient_is_the_sum_and_the_same_for_every_thread_count(layout, dtype):
    # (40, 24, 24, 48) float64 is 8.8 MiB: five blocks of whole images.
    d = np.random.default_rng(1).standard_normal((40, 24, 24, 48)).astype(dtype)
    if layout == "first":  # C-contiguous (N, C, H, W) seen channels-last
        d = np.moveaxis(np.ascontiguousarray(np.moveaxis(d, -1, 1)), 1, -1)
    elif layout == "strided":  # neither layout in memory: copied block by block
        d = np.repeat(d, 2, axis=2)[:, :, ::2]
    expected = d.astype(np.float64).sum(axis=(0, 1, 2))
    ic.set_num_threads(1)
    try:
        one = bias.bias_grad(d, None)
        ic.set_num_threads(3)
        three = bias.bias_grad(d, (1, 48, 1))
    finally:
        ic.set_num_threads(None)
    assert one.dtype == dtype and three.shape == (1, 48, 1)
    np.testing.assert_array_equal(three.ravel(), one)
    np.testing.assert_allclose(one, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-3)


def test_bias_gradient_of_an_empty_batch_is_zero():
    np.testing.assert_array_equal(bias.bias_grad(np.ones((0, 4, 4, 5)), None), np.zeros(5))
