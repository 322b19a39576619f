"""The workspace limit and the fast paths: chunked and unchunked results agree exactly; fast paths match the loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import FLOAT_DTYPES, assert_close

import im2col_cnn as ic
import reference as ref
from im2col_cnn.geometry.tiles import MIN_TILE_POSITIONS, MIN_TILES, conv_tiles
from im2col_cnn.geometry.windows import make_geometry
from im2col_cnn.kernels.conv import column_tiles
from im2col_cnn.runtime.workspace import BLOCK_BYTES, DEFAULT_WORKSPACE, MIN_WORKSPACE

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
    x = rng.standard_normal((2, 64, 64, 64))  # one image's columns: 64*64*9*64*8 B = 18 MiB
    w = rng.standard_normal((3, 3, 64, 4))
    out, cache = ic.conv2d_forward(x, w, stride=1, padding=1, workspace=MIN_WORKSPACE)
    dout = rng.standard_normal(out.shape)
    small = ic.conv2d_backward(dout, cache, workspace=MIN_WORKSPACE)
    big_out, big_cache = ic.conv2d_forward(x, w, stride=1, padding=1, workspace=UNLIMITED)
    big = ic.conv2d_backward(dout, big_cache, workspace=UNLIMITED)
    geom = make_geometry(x.shape, (3, 3), (1, 1), ((1, 1), (1, 1)))
    blocks = column_tiles(x.shape, 8, geom, MIN_WORKSPACE, 4)
    assert len(blocks) > 2 and all(t.images.stop - t.images.start == 1 and t.box[1] == slice(0, 64) for t in blocks)
    assert column_tiles(x.shape, 8, geom, UNLIMITED, 4) == column_tiles(x.shape, 8, geom, 3 * MIN_WORKSPACE, 4)
    for a, c in zip((out, *small), (big_out, *big), strict=True):
        assert_close(a, c, np.float64)


def test_tiles_cover_every_output_position_once():
    # (n, out_h, out_w, bytes per output position, limit): whole images, blocks of rows, blocks of columns
    cases = [(5, 7, 6, 100, 10**6), (3, 4, 9, 10, 10**6), (2, 9, 5, 400, 5000), (1, 3, 10**4, 10, 5000)]
    cases += [(700, 5, 3, 2**10, 2**30), (2, 3, 7, 10**6, 2 * 10**6), (3, 2, 1, 10**9, 10)]
    for n, out_h, out_w, position_bytes, limit in cases:
        covered = np.zeros((n, out_h, out_w), dtype=int)
        scratch = lambda n_b, sizes, p=position_bytes: n_b * sizes[0] * sizes[1] * p  # noqa: E731
        found = conv_tiles(n, (out_h, out_w), position_bytes * out_h * out_w, scratch, limit)
        for t in found:
            covered[(t.images, *t.box)] += 1
            # a tile fits the limit unless it is a single output position
            sizes = [s.stop - s.start for s in t.box]
            assert scratch(t.images.stop - t.images.start, sizes) <= limit or sizes[0] * sizes[1] == 1
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


# (x shape NHWC, w shape (kh, kw, I, O), options): each batch spans several tiles; one image fits MIN_WORKSPACE.
LAYER_CASES = [
    ((40, 24, 24, 16), (3, 3, 16, 8), dict(padding=1)),
    ((40, 24, 24, 16), (3, 3, 4, 8), dict(padding=(2, 1), stride=2, groups=4)),
    ((20, 48, 48, 32), (3, 3, 1, 32), dict(padding=1, groups=32)),  # depthwise
    ((30, 20, 20, 16), (5, 3, 16, 16), dict(padding=2, dilation=(1, 2))),
]


@pytest.mark.parametrize("transpose", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("case", LAYER_CASES, ids=str)
def test_every_layer_agrees_exactly_across_limits_and_layouts(case, transpose):
    """Tiles depend only on the shapes, not on the limit, so neither do the results, in each layout; the
    layouts agree to rounding (channels-first sums the bias gradient along its planes)."""
    x_shape, w_shape, kw = case
    if transpose:  # NHWC weights (kh, kw, C_out // groups, C_in)
        w_shape = (*w_shape[:2], w_shape[3] // kw.get("groups", 1), x_shape[3])
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    fwd, bwd = (
        (ic.conv_transpose2d_forward, ic.conv_transpose2d_backward)
        if transpose
        else (ic.conv2d_forward, ic.conv2d_backward)
    )
    c_out = w_shape[2] * kw.get("groups", 1) if transpose else w_shape[3]
    b = rng.standard_normal(c_out).astype(np.float32)
    dout = None
    last_layout = None
    for fmt in ("NHWC", "NCHW"):
        first = None
        nchw = fmt == "NCHW"
        xx = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x
        ww = np.ascontiguousarray(w.transpose(3, 2, 0, 1)) if nchw else w
        for limit in (UNLIMITED, MIN_WORKSPACE, DEFAULT_WORKSPACE):
            out, cache = fwd(xx, ww, b, data_format=fmt, workspace=limit, **kw)
            if dout is None:
                dout = rng.standard_normal(out.shape).astype(np.float32)
            dx, dw, db = bwd(np.ascontiguousarray(dout.transpose(0, 3, 1, 2)) if nchw else dout, cache, workspace=limit)
            if nchw:  # back to NHWC
                out, dx, dw = out.transpose(0, 2, 3, 1), dx.transpose(0, 2, 3, 1), dw.transpose(2, 3, 1, 0)
            if first is None:
                first = (out, dx, dw, db)
                if last_layout is not None:
                    for a, e in zip(first, last_layout, strict=True):
                        np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-5 * np.abs(e).max(), err_msg=fmt)
                last_layout = last_layout or first
                continue
            for a, e in zip((out, dx, dw, db), first, strict=True):
                np.testing.assert_array_equal(a, e, err_msg=f"{fmt} at limit {limit}")


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "images"),
    [
        ((32, 28, 28, 256), (1, 1, 256, 64), 2),  # the C6 case: bounded by the workspace alone, 16 images a tile
        ((64, 16, 16, 64), (3, 3, 64, 64), 4),  # the C3 case: 7 by the column block alone
        ((8, 16, 16, 64), (3, 3, 64, 64), 2),  # a small batch: each tile keeps MIN_TILE_POSITIONS positions
        ((64, 4, 4, 8), (3, 3, 8, 8), 32),  # tiny images: the same
        ((32, 28, 28, 128), (3, 3, 128, 128), 1),  # the C4 case: one image per column block already
    ],
    ids=str,
)
def test_a_batch_of_whole_images_is_cut_into_enough_tiles_for_many_cores(x_shape, w_shape, images):
    geom = make_geometry(x_shape, w_shape[:2], (1, 1), ((w_shape[0] // 2,) * 2, (w_shape[1] // 2,) * 2))
    found = column_tiles(x_shape, 4, geom, DEFAULT_WORKSPACE, w_shape[-1])
    assert all(t.box == geom.full_box() for t in found)  # whole images
    assert [t.images for t in found] == [slice(n0, n0 + images) for n0 in range(0, x_shape[0], images)]
    assert len(found) >= min(MIN_TILES, x_shape[0] * math.prod(geom.out_shape) // MIN_TILE_POSITIONS)
    # the same tiles for every limit (so the same products and sums), and for every thread count: no argument
    assert found == column_tiles(x_shape, 4, geom, UNLIMITED, w_shape[-1])


@pytest.mark.parametrize(
    ("x_shape", "kernel", "itemsize", "sizes"),
    [
        ((64, 1024, 64), (9,), 8, {(512,)}),  # the C7 case in float64: was 910 + 114, which stalled the threads
        ((32, 28, 28, 128), (3, 3), 8, {(14, 28)}),  # the C4 case in float64: was 18 + 10 rows
        ((8, 16, 32, 32, 32), (3, 3, 3), 8, {(1, 16, 32)}),  # the C8 case in float64: was 18 + 14 rows of a plane
        ((2, 61, 50, 64), (3, 3), 8, {(16, 50), (15, 50)}),  # 61 rows in 4: no even split, the larger first
    ],
    ids=str,
)
def test_a_split_image_is_cut_into_blocks_of_nearly_equal_size(x_shape, kernel, itemsize, sizes):
    nd = len(kernel)
    geom = make_geometry(x_shape, kernel, (1,) * nd, tuple((k // 2, k // 2) for k in kernel))
    found = column_tiles(x_shape, itemsize, geom, DEFAULT_WORKSPACE, 64)
    per_image = [tuple(s.stop - s.start for s in t.box) for t in found if t.images == slice(0, 1)]
    assert set(per_image) == sizes
    assert per_image == sorted(per_image, reverse=True)  # the first tile is the largest: scratch is sized by it
    assert all(t.images.stop - t.images.start == 1 for t in found)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize(
    ("x_shape", "kernel", "stride", "padding"),
    [
        ((3, 96, 96, 40), (3, 3), 1, 1),  # one image's columns: 96*96*9*40*8 B = 27 MiB
        ((3, 96, 96, 40), (3, 3), 2, 1),
        ((2, 400, 400, 16), (1, 1), 2, 0),  # never reads odd rows and columns; 5 MiB of columns per image
    ],
    ids=str,
)
def test_split_images_scatter_their_gradient_identically_on_every_thread_count(x_shape, kernel, stride, padding, fmt):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((*kernel, x_shape[-1], 64))
    if fmt == "NCHW":
        x, w = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    out, cache = ic.conv2d_forward(x, w, stride=stride, padding=padding, data_format=fmt, workspace=MIN_WORKSPACE)
    dout = rng.standard_normal(out.shape)
    tiles = column_tiles(x_shape, 8, cache.geom, MIN_WORKSPACE, 64, always_slab=True)
    assert len(tiles) > x_shape[0] and tiles[0].box != cache.geom.full_box()  # the images really are split
    one = _input_gradient_alike_on_1_and_2_threads(dout, cache)
    if kernel == (1, 1):
        _assert_unread_positions_are_zero(one, fmt)


def _input_gradient_alike_on_1_and_2_threads(dout, cache):
    """``conv2d_backward``'s dx at the smallest limit: bit for bit the same on 1 and 2 threads, and as in one
    tile per image (an unlimited workspace) to rounding."""
    ic.set_num_threads(1)
    try:
        one = ic.conv2d_backward(dout, cache, workspace=MIN_WORKSPACE)[0]
        ic.set_num_threads(2)
        two = ic.conv2d_backward(dout, cache, workspace=MIN_WORKSPACE)[0]
    finally:
        ic.set_num_threads(None)
    np.testing.assert_array_equal(one, two)
    assert_close(one, ic.conv2d_backward(dout, cache, workspace=UNLIMITED)[0], np.float64)
    return one


def _assert_unread_positions_are_zero(dx, fmt):
    """A 1x1 kernel at stride 2 reads no odd row or column: they get no gradient, zeroed, not left as they were."""
    odd = dx[:, :, 1::2] if fmt == "NCHW" else dx[:, 1::2]
    np.testing.assert_array_equal(odd, 0)
    assert np.abs(dx).max() > 0


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("kernel", "stride", "padding"), [((3, 3), 1, 1), ((1, 1), 2, 0)], ids=str)
@pytest.mark.parametrize("images", [2, 1], ids=["split", "whole"])
def test_depthwise_input_gradient_is_identical_on_every_thread_count(images, kernel, stride, padding, fmt):
    from im2col_cnn.kernels import depthwise

    rng = np.random.default_rng(6)
    # split: 256x256 (or 192x192) outputs of 16 float64 channels, 8 (4.5) MiB per image, more than a tile holds
    side = (256 if stride == 1 else 384) if images == 2 else 64
    x = rng.standard_normal((images, side, side, 16))
    w = rng.standard_normal((*kernel, 1, 16))
    if fmt == "NCHW":
        x, w = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    kw = dict(stride=stride, padding=padding, groups=16, data_format=fmt, workspace=MIN_WORKSPACE)
    out, cache = ic.conv2d_forward(x, w, **kw)
    dout = rng.standard_normal(out.shape)
    tiles = depthwise._tiles((images, side, side, 16), 16, 8, cache.geom, MIN_WORKSPACE)
    assert (tiles[0].box != cache.geom.full_box()) == (images == 2)
    one = _input_gradient_alike_on_1_and_2_threads(dout, cache)
    if kernel == (1, 1):
        _assert_unread_positions_are_zero(one, fmt)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, 2, 2)], ids=["3x3", "strided dilated"])
def test_depthwise_forward_of_many_channels_is_identical_for_every_limit_and_thread_count(
    stride, padding, dilation, fmt
):
    """128 channels or more: each tile's window view contracted with the weights in one einsum, over a zero-padded
    slab of the tile, (1, 160, 160, 128) float64 split at the smallest limit: the same bits in every tile and on
    every thread, the loops' numbers."""
    from im2col_cnn.kernels import depthwise

    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 160, 160, depthwise.EINSUM_CHANNELS))
    w = rng.standard_normal((3, 3, 1, depthwise.EINSUM_CHANNELS))
    b = rng.standard_normal(depthwise.EINSUM_CHANNELS)
    if fmt == "NCHW":
        x, w = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=depthwise.EINSUM_CHANNELS, data_format=fmt)
    whole, cache = ic.conv2d_forward(x, w, b, workspace=UNLIMITED, **kw)
    tiles = depthwise._tiles((1, 160, 160, depthwise.EINSUM_CHANNELS), w.size // 9, 8, cache.geom, MIN_WORKSPACE)
    assert len(tiles) > 1 and tiles[0].box != cache.geom.full_box()  # the image split
    results = []
    try:
        for threads in (1, 2):
            ic.set_num_threads(threads)
            results.append(ic.conv2d_forward(x, w, b, workspace=MIN_WORKSPACE, **kw)[0])
    finally:
        ic.set_num_threads(None)
    for out in results:
        np.testing.assert_array_equal(out, whole)
    crop = (slice(None), slice(None), slice(0, 24), slice(0, 24)) if fmt == "NCHW" else (slice(None), slice(0, 24))
    part = x[crop]  # the loops on a corner: its outputs are the whole input's where its windows lie inside it
    expected = ref.conv2d_forward(part, w, b, **kw)[0]
    got = ic.conv2d_forward(part, w, b, **kw)[0]
    assert_close(got, expected, np.float64)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize(("kernel", "padding", "dilation"), [(3, 1, 1), (3, 3, 2), (5, 2, 1)], ids=str)
def test_depthwise_input_gradient_of_many_channels_at_stride_1(kernel, padding, dilation, fmt, monkeypatch):
    """Stride 1, 128 channels, whole images, padding of at least half the window span: one einsum over the
    windows of the zero-padded dout with the kernel flipped, the same on every thread count, the loops' numbers."""
    from im2col_cnn.kernels import depthwise

    taken = []
    real = depthwise._flipped_correlation
    monkeypatch.setattr(depthwise, "_flipped_correlation", lambda *a: taken.append(1) or real(*a))
    c = depthwise.EINSUM_CHANNELS
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((5, 13, 11, c)), rng.standard_normal((kernel, kernel, 1, c))
    if fmt == "NCHW":
        x, w = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    kw = dict(padding=padding, dilation=dilation, groups=c, data_format=fmt)
    out, cache = ic.conv2d_forward(x, w, **kw)
    dout = rng.standard_normal(out.shape)
    results = []
    try:
        for threads in (1, 2):
            ic.set_num_threads(threads)
            results.append(ic.conv2d_backward(dout, cache)[0])
    finally:
        ic.set_num_threads(None)
    assert len(taken) == 2
    np.testing.assert_array_equal(results[1], results[0])
    _, ref_cache = ref.conv2d_forward(x, w, **kw)
    assert_close(results[0], ref.conv2d_backward(dout, ref_cache)[0], np.float64)


def test_several_threads_take_the_tiles_of_split_images_image_by_image():
    from im2col_cnn.geometry.tiles import Tile, image_by_image, opens_image

    tiles = [Tile(slice(i, i + 1), (slice(r, r + 5), slice(0, 9))) for i in range(3) for r in (0, 5, 10)]
    taken = image_by_image(tiles, 2)
    assert [(t.images.start, t.box[0].start) for t in taken] == [(i, r) for r in (0, 5, 10) for i in range(3)]
    assert image_by_image(tiles, 1) == tiles  # one thread: in order, neighbours after each other
    assert [opens_image(t) for t in taken] == [True] * 3 + [False] * 6


def test_the_channels_first_planes_kernel_keeps_its_blocks_whole():
    # A block costs the few-channel kernels a fixed time: cut to MIN_TILES, the C2 case's NCHW backward took 1.5x
    geom = make_geometry((64, 32, 32, 3), (3, 3), (1, 1), ((1, 1), (1, 1)))
    planes = column_tiles((64, 32, 32, 3), 4, geom, DEFAULT_WORKSPACE, 32, kernel="planes")
    spread = column_tiles((64, 32, 32, 3), 4, geom, DEFAULT_WORKSPACE, 32)
    assert len(planes) == 2 and len(spread) == MIN_TILES
    assert all(t.box == geom.full_box() for t in planes + spread)
