"""Copies and adds between channels-first arrays and channels-last buffers (runtime.layout): the same values as
NumPy's, whichever way the channels are read."""

from __future__ import annotations

import numpy as np
import pytest

from im2col_cnn.runtime import layout

# Planes of 4 KiB and more (8 channels at a time), of 2 and 3 KiB (16), of 1 KiB (32), of other sizes (all at once).
SHAPES = [
    (3, 40, 16, 16),
    (2, 33, 32, 32),
    (2, 40, 4, 8, 8),
    (2, 17, 7, 9),
    (1, 8, 1024),
    (2, 5, 2, 32, 32),
    (2, 20, 16, 32),
    (3, 19, 16, 16),
    (2, 20, 24, 32),
]


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


# float32: planes of 1 KiB, 4 KiB, 1 KiB, 252 B, 4 KiB (8 channels: one run), 8 KiB (5 channels: one run), 2 KiB,
# 1 KiB (19 channels: one run) and 3 KiB
RUNS = [32, 8, 32, None, None, None, 16, None, 16]


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


# Weight matrices: (*kernel, C_in_g, C_out) seen from channels-last weights, PyTorch's (O, I, *k), and the flipped
# kernel of the input gradient; the products read each as (G, K_g, C_out_g).
def _weights(kind, kernel, c_in_g, c_out):
    rng = np.random.default_rng(2)
    if kind == "channels-last":
        return rng.standard_normal((*kernel, c_in_g, c_out))
    if kind == "pytorch":  # (O, I, *k) -> (*k, I, O), a view
        return layout.weight_to_last(rng.standard_normal((c_out, c_in_g, *kernel)), True)
    # flipped: (*k, C_out, C_in) channels-last weights seen as (*k, C_in, C_out), a view
    return np.swapaxes(rng.standard_normal((*kernel, c_out, c_in_g)), -1, -2)


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("kernel", [(3, 3), (5,), (2, 3, 2)], ids=str)
@pytest.mark.parametrize("kind", ["channels-last", "pytorch", "flipped"])
def test_grouped_weights_are_each_groups_matrix_and_copy_only_what_they_must(kind, kernel, groups):
    from im2col_cnn.kernels.columns import grouped_weights

    w = _weights(kind, kernel, 16, 24)
    before = w.copy()
    wg = grouped_weights(w, groups)
    # group g's matrix: its output channels, rows (*kernel, c_in_g) in row-major order
    expected = np.stack(
        [w[..., g * (24 // groups) : (g + 1) * (24 // groups)].reshape(-1, 24 // groups) for g in range(groups)]
    )
    np.testing.assert_array_equal(wg, expected)
    np.testing.assert_array_equal(w, before)
    assert np.shares_memory(wg, w) == (kind == "channels-last")
    if kind != "channels-last":  # flipped: along its contiguous channels; PyTorch's: C_out, its slowest, outermost
        assert all(wg[g].flags.f_contiguous for g in range(groups))


def test_a_flipped_pytorch_kernel_read_by_input_channel_is_copied_block_by_block():
    """The rows (c, *taps) of a flipped PyTorch kernel (the channels-first input gradient of a one-tile batch): no
    long contiguous run either way, so its slowest axis goes outermost -- C-ordered, each channel's block read
    together (float32 3x3x512x512: 1.45 ms against 1.85 F-ordered)."""
    from im2col_cnn.kernels.columns import grouped_weights

    pytorch = np.random.default_rng(5).standard_normal((24, 16, 3, 3))  # (O, I, kh, kw)
    by_channel = pytorch[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)  # (O, a, b, I): rows (o, a, b), columns I
    wg = grouped_weights(by_channel, 1)
    np.testing.assert_array_equal(wg[0], by_channel.reshape(-1, 16))
    assert wg[0].flags.c_contiguous


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (3, 2), (2, 3)])
def test_phase_weights_are_the_flipped_taps_and_ungrouped_a_view(stride, dilation, groups):
    from im2col_cnn.geometry.phases import phases
    from im2col_cnn.geometry.windows import Axis, geometry_of
    from im2col_cnn.kernels.input_grad import _phase_weights

    geom = geometry_of((Axis(11, 4, stride, dilation, 2, 1), Axis(9, 3, stride, 1, 1, 1)))
    w = np.random.default_rng(3).standard_normal((4, 3, 6, 8))  # (*kernel, C_in_g, C_out)
    for phase in phases(geom):
        if phase.geom is None:
            continue
        taps = w[np.ix_(*(list(p.taps) for p in phase.axes))]  # (*m, C_in_g, C_out)
        m = taps.shape[:2]
        expected = (
            taps.reshape(*m, 6, groups, 8 // groups).transpose(0, 1, 4, 3, 2).reshape(*m, 8 // groups, 6 * groups)
        )
        got = _phase_weights(w, phase, groups)
        np.testing.assert_array_equal(got, expected)
        assert np.shares_memory(got, w) == (groups == 1)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_for_a_channels_first_caller_is_laid_out_output_channel_by_output_channel(dtype, groups):
    from im2col_cnn.geometry.windows import make_geometry
    from im2col_cnn.kernels.conv import weight_grad

    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 9, 8, 24)).astype(dtype)  # (N, H, W, C_in): enough channels for the columns
    geom = make_geometry(x.shape, (3, 2), (2, 1), ((1, 1), (0, 1)))
    dout = rng.standard_normal((3, *geom.out_shape, 8)).astype(dtype)
    by_rows, _ = weight_grad(x, dout, geom, 2**20, groups)
    by_out, _ = weight_grad(x, dout, geom, 2**20, groups, c_out_major=True)
    np.testing.assert_allclose(by_out, by_rows, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    # (*kernel, C_in_g, C_out) seen from (G, C_out_g, *kernel, C_in_g) memory: C_in_g fastest, then the taps
    item, c_in_g = x.itemsize, 24 // groups
    assert by_out.strides[-2] == item and by_out.strides[1] == c_in_g * item
    assert by_out.strides[-1] == 6 * c_in_g * item  # one output channel's taps apart
    pytorch = layout.weight_from_last(by_out, True)  # (C_out, C_in_g, *kernel), as conv2d_backward returns it
    np.testing.assert_array_equal(pytorch, np.moveaxis(np.moveaxis(by_out, -1, 0), -1, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_channel_rows_are_the_transposed_rows_of_a_tile(shape, dtype):
    from im2col_cnn.geometry.tiles import Tile
    from im2col_cnn.kernels.columns import tile_channel_rows, tile_rows
    from im2col_cnn.runtime.workspace import Buffers

    first, view = channels_last_view(shape, dtype)  # a channels-first array seen channels-last
    full = tuple(slice(0, s) for s in view.shape[1:-1])
    part = (slice(1, view.shape[1]), *full[1:])  # a tile of a split image: not the whole planes
    for tile in (Tile(slice(0, 1), full), Tile(slice(0, view.shape[0]), full), Tile(slice(0, 1), part)):
        rows = tile_rows(view, tile, Buffers(np.dtype(dtype)), "dout")  # (m, C)
        planes = tile_channel_rows(view, tile, Buffers(np.dtype(dtype)), "dout")  # (C, m)
        np.testing.assert_array_equal(planes, rows.T)
        assert planes.flags.c_contiguous
        whole_image = tile.images == slice(0, 1) and tile.box == full
        assert np.shares_memory(planes, first) == whole_image  # one whole image's planes: a view, else a copy


@pytest.mark.parametrize("groups", [1, 2])
def test_weight_gradient_of_channels_first_dout_reads_it_by_planes(groups, monkeypatch):
    from im2col_cnn.geometry.windows import make_geometry
    from im2col_cnn.kernels import conv
    from im2col_cnn.kernels.conv import weight_grad

    read = []
    by_planes = conv.tile_channel_rows
    monkeypatch.setattr(conv, "tile_channel_rows", lambda *a: read.append(1) or by_planes(*a))

    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 9, 8, 24))
    geom = make_geometry(x.shape, (3, 2), (2, 1), ((1, 1), (0, 1)))
    dout = rng.standard_normal((3, *geom.out_shape, 8))
    dout_first = np.ascontiguousarray(np.moveaxis(dout, -1, 1))  # (N, C_out, *out): read by planes
    expected, _ = weight_grad(x, dout, geom, 2**20, groups, c_out_major=True)
    assert not read  # channels-last dout: its rows as they are
    got, _ = weight_grad(x, np.moveaxis(dout_first, 1, -1), geom, 2**20, groups, c_out_major=True)
    assert read
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
