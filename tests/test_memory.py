"""The workspace limit holds on every conv path: peak scratch (traced allocations during the call, minus the
arrays it returns) stays within the limit plus the documented slack, at the smallest limit (16 MiB).

Inputs are ``np.broadcast_to`` views where the op allows, so they cost no memory; each shape is chosen so that
building any image-sized temporary (a padded copy, a layout conversion, a whole row of columns) would exceed
the limit.
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic
from benchmarks.memory import peak_scratch
from im2col_cnn.runtime.workspace import SCRATCH_SLACK

MiB = 2**20
LIMIT = 16 * MiB
SLACK = SCRATCH_SLACK  # 1 MiB (small weights here, so no weight-sized term)


def scratch_bytes(call) -> int:
    """Scratch of one ``call()``: benchmarks.memory's measure (the traced peak minus what its results keep)."""
    return peak_scratch(call)[0]


def assert_within_limit(call) -> None:
    used = scratch_bytes(call)
    assert used <= LIMIT + SLACK, f"scratch {used / MiB:.1f} MiB > limit {LIMIT / MiB:.0f} MiB + slack"


def ones(shape):
    """A read-only array of ones that costs no memory."""
    return np.broadcast_to(np.ones(shape[-1]), shape)


def conv_calls(x, w, *, transpose=False, **kw):
    """``(forward call, backward call)`` of conv2d (or conv_transpose2d) at the 16 MiB limit."""
    fwd = ic.conv_transpose2d_forward if transpose else ic.conv2d_forward
    bwd = ic.conv_transpose2d_backward if transpose else ic.conv2d_backward
    out, cache = fwd(x, w, workspace=LIMIT, **kw)
    dout = ones(out.shape)
    return (lambda: fwd(x, w, workspace=LIMIT, **kw)[0]), (lambda: bwd(dout, cache, workspace=LIMIT))


def test_slack_is_the_documented_constant():
    assert SCRATCH_SLACK == 1 * MiB  # README: "the limit plus 1 MiB"


def test_padding_never_copies_the_whole_padded_image():
    # The padded image alone would be 32 MiB.
    forward, _ = conv_calls(ones((1, 512, 512, 16)), np.full((3, 3, 16, 1), 0.1), padding=1)
    assert_within_limit(forward)


def test_stride_1_input_gradient_never_pads_the_whole_dout():
    x, w = ones((1, 512, 512, 8)), np.full((3, 3, 8, 8), 0.1)
    out, cache = ic.conv2d_forward(x, w, padding=1)
    dout = np.ones_like(out)  # 16 MiB: padded whole, it alone would exceed the limit
    assert_within_limit(lambda: ic.conv2d_backward(dout, cache, workspace=LIMIT))
    from im2col_cnn.kernels.input_grad import flipped_correlation_pays

    assert flipped_correlation_pays(cache.geom, w.shape)  # the path measured is the correlation of the padded dout


@pytest.mark.parametrize("channels", [16, 128], ids=["offset by offset", "einsum"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_depthwise_makes_no_image_sized_temporaries(direction, channels):
    # One image-sized product would be 32 MiB (16 channels; 128 channels: 64 MiB, the forward pass's einsum path).
    side = 512 if channels == 16 else 256
    forward, backward = conv_calls(
        ones((1, side, side, channels)), np.full((3, 3, 1, channels), 0.1), groups=channels, padding=1
    )
    assert_within_limit(forward if direction == "forward" else backward)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_one_output_row_is_split_into_blocks_of_columns(direction):
    # One output row's columns would be 20000 * 576 * 8 B = 88 MiB.
    forward, backward = conv_calls(ones((1, 3, 20_000, 64)), np.full((3, 3, 64, 1), 0.1))
    assert_within_limit(forward if direction == "forward" else backward)


@pytest.mark.parametrize("transpose", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_nchw_is_never_converted_whole(direction, transpose):
    # x (64, 4, 32, 32) NCHW; the output (and dout) (64, 64, 32, 32) is 32 MiB.
    w = np.full((4, 64, 3, 3) if transpose else (64, 4, 3, 3), 0.1)
    forward, backward = conv_calls(ones((64, 4, 32, 32)), w, transpose=transpose, padding=1, data_format="NCHW")
    assert_within_limit(forward if direction == "forward" else backward)


def test_nchw_input_and_dout_are_read_in_tiles():
    # x (64, 64, 32, 32) NCHW is 32 MiB: a contiguous NHWC copy of it (or of dx) would exceed the limit.
    _, backward = conv_calls(ones((64, 64, 32, 32)), np.full((4, 64, 3, 3), 0.1), padding=1, data_format="NCHW")
    assert_within_limit(backward)


def test_tiled_results_match_the_untiled_ones():
    """The tiles that keep scratch within the limit give the same numbers (to rounding) as one big block."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 9000, 64))  # one output row's columns: 9000*576*8 B = 40 MiB
    w = rng.standard_normal((3, 3, 64, 2))
    results = []
    for limit in (LIMIT, 2**40):
        out, cache = ic.conv2d_forward(x, w, padding=(0, 1), workspace=limit)
        results.append((out, *ic.conv2d_backward(np.ones_like(out), cache, workspace=limit)))
    for small, big in zip(*results, strict=True):
        np.testing.assert_allclose(small, big, rtol=1e-12, atol=1e-9)


def test_weight_sized_arrays_are_the_only_scratch_beyond_the_limit():
    # A 100x100 kernel on a 100x100 image: 20 MiB of weights, more than the limit on their own.
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 100, 100, 16)), rng.standard_normal((100, 100, 16, 16))
    out, cache = ic.conv2d_forward(x, w, workspace=LIMIT)
    dout = np.ones_like(out)
    used = scratch_bytes(lambda: ic.conv2d_backward(dout, cache, workspace=LIMIT))
    assert used <= LIMIT + SLACK + 3 * w.nbytes


def test_the_cache_references_x_without_copying_it():
    """Documented: the cache keeps the caller's x (as PyTorch's saved tensors do), so changing x changes dw."""
    x, w = np.ones((2, 5, 5, 3)), np.ones((3, 3, 3, 2))
    out, cache = ic.conv2d_forward(x, w)
    assert np.shares_memory(cache.x, x)
    dw_before = ic.conv2d_backward(np.ones_like(out), cache)[1]
    x *= 2
    np.testing.assert_array_equal(ic.conv2d_backward(np.ones_like(out), cache)[1], 2 * dw_before)
    tout, tcache = ic.conv_transpose2d_forward(x, w.transpose(0, 1, 3, 2), data_format="NHWC")
    assert np.shares_memory(tcache.x, x)


def test_the_memory_benchmark_counts_scratch_but_not_results():
    from benchmarks.memory import format_scratch_table, peak_scratch

    def call():
        results = np.ones(MiB // 8), np.ones(2 * MiB // 8)  # 3 MiB returned
        temporary = np.ones(4 * MiB // 8)  # 4 MiB, freed before returning
        del temporary
        return results

    scratch, seconds = peak_scratch(call)
    assert 4 * MiB <= scratch < 4.1 * MiB and seconds >= 0
    from benchmarks.memory import ScratchRow

    (line,) = format_scratch_table([ScratchRow("conv fwd", "x (1, 2, 3, 4)", 16.0, 8.0, 0.5)])[-1:]
    assert "| conv fwd" in line and "16 |" in line and "8.0 |" in line and "0.50" in line


@pytest.mark.parametrize("path", ["correlate", "scatter"])
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_strided_input_gradient_paths_stay_within_the_limit(path, fmt):
    from im2col_cnn.kernels.input_grad import input_grad

    # x (1, 1024, 1024, 8) at stride 2: dx is 64 MiB; each phase's correlation and the scatter work in tiles.
    x, w = ones((1, 1024, 1024, 8)), np.full((4, 4, 8, 8), 0.1)
    _, cache = ic.conv2d_forward(x, w, stride=2, padding=1)
    geom = cache.geom
    dout = ones((1, *geom.out_shape, 8))
    dx = np.empty((1, 8, 1024, 1024)).transpose(0, 2, 3, 1) if fmt == "NCHW" else np.empty(x.shape)
    assert_within_limit(lambda: input_grad(dout, w, geom, dx, LIMIT, path=path))


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_few_channel_planes_stay_within_the_limit(direction):
    # A first layer (3 input channels) in NCHW: 64 MiB of output gradient, built and read in blocks of planes.
    forward, backward = conv_calls(ones((64, 3, 64, 64)), np.full((32, 3, 3, 3), 0.1), padding=1, data_format="NCHW")
    assert_within_limit(forward if direction == "forward" else backward)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_nchw_pointwise_columns_count_against_the_limit(direction):
    # A 1x1 convolution reads NHWC input as its own column matrix; NCHW input (128 MiB here) is copied into
    # columns tile by tile, and those copies count.
    forward, backward = conv_calls(ones((64, 256, 32, 32)), np.full((8, 256, 1, 1), 0.1), data_format="NCHW")
    assert_within_limit(forward if direction == "forward" else backward)


def test_bias_gradient_of_a_large_image_is_summed_in_blocks():
    # dout (1, 600, 600, 16) is a broadcast view: an NHWC copy of its one image would be 44 MiB.
    _, backward = conv_calls(ones((1, 600, 600, 3)), np.full((1, 1, 3, 16), 0.1))
    assert_within_limit(backward)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_a_lone_tile_in_groups_of_kernel_offsets_stays_within_the_limit(direction):
    # One image of 128 positions over 1024 channels (9.4 MiB of columns): one tile, its products made by groups
    # of kernel offsets on the engine's threads, each thread with its own group's columns.
    from im2col_cnn.kernels import tap_groups
    from im2col_cnn.kernels.conv import column_tiles

    x, w = ones((1, 8, 16, 1024)), np.full((3, 3, 1024, 8), 0.01)
    forward, backward = conv_calls(x, w, padding=1)
    geom = ic.conv2d_forward(x, w, padding=1)[1].geom
    assert tap_groups.plan(geom, 1024, column_tiles(x.shape, 8, geom, LIMIT, 8), 1) is not None
    ic.set_num_threads(2)
    try:
        assert_within_limit(forward if direction == "forward" else backward)
    finally:
        ic.set_num_threads(None)
