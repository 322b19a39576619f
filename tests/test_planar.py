"""Few input channels (a first layer): the channel-plane kernels agree with the general ones and the loops."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import FLOAT_DTYPES, assert_close

import im2col_cnn as ic
import reference as ref
from im2col_cnn.kernels import planar
from im2col_cnn.layers.conv import prepare_conv

MiB = 2**20


def test_plan_applies_to_few_ungrouped_channels_that_fit_the_limit():
    def blocks(x_shape, w_shape, limit=64 * MiB, **kw):
        cache, _ = prepare_conv(np.empty(x_shape), np.empty(w_shape), None, kw.pop("stride", 1), 1, **kw)
        return planar.plan(x_shape, 8, cache.geom, w_shape[3], limit, cache.groups)

    assert blocks((64, 32, 32, 3), (3, 3, 3, 32)) is not None
    assert blocks((64, 32, 32, 1), (5, 5, 1, 8), stride=2) is not None
    assert blocks((64, 32, 32, 7), (3, 3, 7, 32)) is None  # enough channels for the general kernels
    assert blocks((64, 32, 32, 4), (3, 3, 2, 32), groups=2) is None
    assert blocks((1, 512, 512, 3), (3, 3, 3, 32), limit=16 * MiB) is None  # one image exceeds the limit
    # float64, 28 rows of 1024 columns an image: 9 images fill PLANAR_BLOCK_BYTES, so 8 blocks -- of 8 each, not
    # seven of 9 and one of 1, which left a thread with little to do (the C2 case on 2 cores: 7-10% slower)
    found = blocks((64, 32, 32, 3), (3, 3, 3, 32))
    assert [(b.start, b.stop) for b in found] == [(i, i + 8) for i in range(0, 64, 8)]
    found = blocks((30, 32, 32, 3), (3, 3, 3, 32))
    assert [b.stop - b.start for b in found] == [8, 8, 7, 7] and found[-1].stop == 30


CASES = [
    ((5, 9, 8, 3), (3, 3, 3, 4), dict(padding=1)),
    ((4, 11, 10, 1), (5, 3, 1, 6), dict(padding=((2, 0), (1, 3)), stride=(2, 1))),
    ((3, 12, 12, 2), (3, 2, 2, 5), dict(dilation=(2, 3), padding=2)),
    ((2, 7, 9, 6), (1, 1, 6, 3), dict()),
    ((2, 6, 6, 4), (4, 4, 4, 2), dict(stride=3, padding="valid")),
    ((3, 8, 8, 3), (3, 3, 3, 8), dict(padding="same")),
]


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", CASES, ids=str)
def test_planar_conv2d_matches_the_loops_and_the_general_kernels(x_shape, w_shape, kw, dtype, fmt, monkeypatch):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[3]).astype(dtype)
    _, rcache = ref.conv2d_forward(x, w, b, **kw)
    rout = ref.conv2d_forward(x, w, b, **kw)[0]
    dout = rng.standard_normal(rout.shape).astype(dtype)
    expected = (rout, *ref.conv2d_backward(dout, rcache))
    if fmt == "NCHW":
        x, w, dout = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), dout.transpose(0, 3, 1, 2)
    results = {}
    for small in (planar.SMALL_CHANNELS, 0):  # 0: the general kernels
        monkeypatch.setattr(planar, "SMALL_CHANNELS", small)
        out, cache = ic.conv2d_forward(x, w, b, data_format=fmt, **kw)
        results[small] = (out, *ic.conv2d_backward(dout, cache))
    for res in results.values():
        if fmt == "NCHW":
            res = (res[0].transpose(0, 2, 3, 1), res[1].transpose(0, 2, 3, 1), res[2].transpose(2, 3, 1, 0), res[3])
        for a, e in zip(res, expected, strict=True):
            assert_close(a, e, dtype)


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1), dict(stride=1, padding=0)], ids=str)
def test_planar_transposed_conv_with_few_output_channels(kw):
    """A transposed convolution to 3 channels (a decoder's last layer): its forward pass is the input gradient
    of a 3-channel convolution, its input gradient that convolution's forward pass."""
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal((2, 5, 6, 8)), rng.standard_normal((3, 3, 3, 8))  # NHWC (kh, kw, C_out, C_in)
    out, cache = ic.conv_transpose2d_forward(x, w, np.ones(3), **kw)
    rout, rcache = ref.conv_transpose2d_forward(x, w, np.ones(3), **kw)
    assert_close(out, rout, np.float64)
    dout = rng.standard_normal(out.shape)
    grads = zip(ic.conv_transpose2d_backward(dout, cache), ref.conv_transpose2d_backward(dout, rcache), strict=True)
    for a, e in grads:
        assert_close(a, e, np.float64)


def test_planar_results_do_not_depend_on_the_limit():
    rng = np.random.default_rng(13)
    x, w, b = rng.standard_normal((80, 24, 24, 3)), rng.standard_normal((3, 3, 3, 16)), rng.standard_normal(16)
    runs = []
    for limit in (16 * MiB, 2**40):
        out, cache = ic.conv2d_forward(x, w, b, padding=1, workspace=limit)
        runs.append((out, *ic.conv2d_backward(np.ones_like(out), cache, workspace=limit)))
    for a, e in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, e)
