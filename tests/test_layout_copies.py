"""Copies and adds between channels-first arrays and channels-last buffers (runtime.layout): the same values as
NumPy's, whichever way the channels are read."""

from __future__ import annotations

import numpy as np
import pytest

from im2col_cnn.runtime import layout

# Planes of 4 KiB and more (8 channels at a time), of 1 KiB (16 at a time), of other sizes (all at once).
SHAPES = [(3, 19, 16, 16), (2, 33, 32, 32), (2, 40, 4, 8, 8), (2, 17, 7, 9), (1, 8, 1024), (2, 5, 2, 32, 32)]


def channels_last_view(shape, dtype, seed=0):
    first = np.random.default_rng(seed).standard_normal(shape).astype(dtype)  # (N, C, *spatial), contiguous
    return first, np.moveaxis(first, 1, -1)  # (N, *spatial, C), a view


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_copy_rows_copies_every_channel(shape, dtype):
    _, src = channels_last_view(shape, dtype)
    block = src[:, 1:]  # a block of positions, as a tile reads it
    dst = np.full(block.shape, np.nan, dtype=dtype)
    layout.copy_rows(dst, block)
    assert dst.flags.c_contiguous
    np.testing.assert_array_equal(dst, block)


# float32: planes of 1 KiB, 4 KiB, 1 KiB, 252 B, 4 KiB (8 channels: one run) and 8 KiB (5 channels: one run)
RUNS = [16, 8, 16, None, None, None]


@pytest.mark.parametrize("shape, run", list(zip(SHAPES, RUNS, strict=True)), ids=str)
def test_channel_runs_follow_the_plane_stride(shape, run):
    _, src = channels_last_view(shape, np.float32)
    assert layout._channel_run(src) == run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_add_planes_adds_into_the_channels_first_array(shape, dtype):
    first, dst = channels_last_view(shape, dtype)
    src = np.random.default_rng(1).standard_normal(dst.shape).astype(dtype)  # channels-last, contiguous
    expected = first.copy()
    np.moveaxis(expected, 1, -1)[...] += src
    layout.add_planes(dst, src)
    np.testing.assert_array_equal(first, expected)  # added in place, element by element: bit for bit
