"""Arrays as NumPy hands them over, on every supported NumPy version.

* Non-native byte order (``x.astype('>f8')``): every output, gradient and cached array is native, and equal to
  the result of the native-order input.
* Ragged nested lists: a clean TypeError naming the argument, and no warning (NumPy < 1.24 warned and built an
  object array).
* Scalar promotion: NumPy 1.x widened a float32 scalar plus a Python float to float64; the drop-in
  ``conv_slice`` keeps float32.

CI runs the suite on the oldest supported NumPy too, where the last two are what these tests guard.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import im2col_cnn as ic


def _swapped(arr: np.ndarray) -> np.ndarray:
    """``arr`` in the non-native byte order (same values, same dtype kind and size)."""
    out = arr.astype(arr.dtype.newbyteorder("S"))
    assert not out.dtype.isnative
    return out


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays(item)


def _layer_runs(make):
    """Forward then backward of every op, with every array argument passed through ``make``.

    Yields ``(label, results)``: the forward output, the cache's arrays and the gradients.
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 5, 4))
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    w = rng.standard_normal((3, 2, 4, 6))
    b = rng.standard_normal(6)
    convs = {
        "conv": dict(stride=(2, 1), padding=1),
        "conv stride 1": dict(padding=((1, 0), (2, 1)), dilation=(1, 2)),
        "conv groups": dict(groups=2, stride=2),
        "conv depthwise": dict(groups=4, padding="same"),
        "conv pointwise": dict(),
        "conv NCHW": dict(data_format="NCHW", padding=1),
    }
    for label, kw in convs.items():
        groups, nchw = kw.get("groups", 1), kw.get("data_format") == "NCHW"
        wk = w[:1, :1] if label == "conv pointwise" else w
        wk = wk[:, :, : 4 // groups, : 6 if groups != 4 else 4]
        if nchw:
            wk = np.ascontiguousarray(wk.transpose(3, 2, 0, 1))
        bk = b[: wk.shape[0 if nchw else 3]]
        out, cache = ic.conv2d_forward(make(x_nchw if nchw else x), make(wk), make(bk), **kw)
        dout = rng.standard_normal(out.shape)
        yield label, (out, tuple(cache), *ic.conv2d_backward(make(dout), cache))
    for label, kw in {"transposed": dict(stride=2, padding=1), "transposed NCHW": dict(data_format="NCHW")}.items():
        nchw = kw.get("data_format") == "NCHW"
        wt = np.ascontiguousarray(w.transpose(3, 2, 0, 1)) if nchw else w[:, :, :, :4]
        wt = wt[:4] if nchw else wt
        out, cache = ic.conv_transpose2d_forward(make(x_nchw if nchw else x), make(wt), None, **kw)
        dout = rng.standard_normal(out.shape)
        yield label, (out, tuple(cache), *ic.conv_transpose2d_backward(make(dout), cache))
    pools = {
        "max": (ic.max_pool2d_forward, ic.max_pool2d_backward, dict(stride=1, padding=1)),
        "max NCHW": (ic.max_pool2d_forward, ic.max_pool2d_backward, dict(dilation=2, data_format="NCHW")),
        "avg": (ic.avg_pool2d_forward, ic.avg_pool2d_backward, dict(padding=1, count_include_pad=False)),
        "avg NCHW": (ic.avg_pool2d_forward, ic.avg_pool2d_backward, dict(ceil_mode=True, data_format="NCHW")),
    }
    for label, (fwd, bwd, kw) in pools.items():
        out, cache = fwd(make(x_nchw if "NCHW" in label else x), 2, **kw)
        extra = (cache.indices,) if label.startswith("max") else ()
        yield label, (out, tuple(cache), *extra, bwd(make(rng.standard_normal(out.shape)), cache))
    cols = ic.im2col(make(x), (2, 3), stride=(1, 2), padding=1)
    dx = ic.col2im(make(rng.standard_normal(cols.shape)), x.shape, (2, 3), stride=(1, 2), padding=1)
    yield "im2col/col2im", (cols, dx)
    z, cache = ic.forward(make(x), make(w[:2, :2]), make(b.reshape(1, 1, 1, 6)), 1, 2, None)
    yield "drop-in conv", (z, *ic.backward(make(rng.standard_normal(z.shape)), cache))
    for fmode, bmode in (("maxpool", "max"), ("avepool", "average")):
        z, cache = ic.forward(make(x), None, None, 1, 1, 2, mode=fmode)
        yield f"drop-in {fmode}", (z, ic.pool_backward(make(rng.standard_normal(z.shape)), cache, mode=bmode))
    yield "conv_slice", (np.asarray(ic.conv_slice(make(x[0, :3, :2]), make(w[:, :, :, 0]), make(b[:1]))),)
    yield "max_mask", (ic.max_mask(make(x[0, :, :, 0])),)


def _as(dtype):
    return lambda arr: np.asarray(arr).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_native_byte_order_gives_native_results_equal_to_native_input(dtype):
    expected = dict(_layer_runs(_as(dtype)))
    got = dict(_layer_runs(lambda arr: _swapped(np.asarray(arr).astype(dtype))))
    assert got.keys() == expected.keys() and len(got) == 18
    for label, results in got.items():
        arrays, reference = list(_arrays(results)), list(_arrays(expected[label]))
        assert len(arrays) == len(reference) >= 1
        for arr, ref in zip(arrays, reference, strict=True):
            assert arr.dtype.isnative, f"{label}: a result of shape {arr.shape} has byte order {arr.dtype.byteorder}"
            assert arr.dtype == ref.dtype, f"{label}: {arr.dtype} != {ref.dtype}"
            np.testing.assert_array_equal(arr, ref, err_msg=label)


def test_non_native_integer_input_becomes_native_float64():
    x = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    out, cache = ic.max_pool2d_forward(x.astype(">i4"), 2)
    assert out.dtype == np.float64 and out.dtype.isnative and cache.x.dtype.isnative
    np.testing.assert_array_equal(out, ic.max_pool2d_forward(x, 2)[0])


def test_native_float_input_is_not_copied():
    x = np.ones((1, 4, 4, 2), dtype=np.float32)
    _, cache = ic.conv2d_forward(x, np.ones((2, 2, 2, 3), dtype=np.float32))
    assert cache.x is x  # the cache keeps the caller's array, as PyTorch's saved tensors do


RAGGED = [[[1.0, 2.0], [3.0]], [np.zeros(2), np.zeros(3)], [[[1, 2]], [[1, 2], [3, 4]]]]


@pytest.mark.parametrize("ragged", RAGGED, ids=["lists", "arrays", "nested"])
def test_ragged_input_is_a_type_error_without_warnings(ragged):
    x, w = np.ones((1, 4, 4, 2)), np.ones((2, 2, 2, 3))
    calls = {
        "x": [
            lambda: ic.conv2d_forward(ragged, w),
            lambda: ic.conv_transpose2d_forward(ragged, w),
            lambda: ic.max_pool2d_forward(ragged, 2),
            lambda: ic.avg_pool2d_forward(ragged, 2),
            lambda: ic.im2col(ragged, 2),
            lambda: ic.max_mask(ragged),
        ],
        "w": [lambda: ic.conv2d_forward(x, ragged), lambda: ic.conv_transpose2d_forward(x, ragged)],
        "b": [lambda: ic.conv2d_forward(x, w, ragged)],
        "cols": [lambda: ic.col2im(ragged, (1, 4, 4, 2), 2)],
        "X": [lambda: ic.forward(ragged, None, None, 0, 1, 2, mode="maxpool")],
        "W": [lambda: ic.conv_slice(np.ones((2, 2)), ragged, 0.0)],
        "dout": [lambda: ic.conv2d_backward(ragged, ic.conv2d_forward(x, w)[1])],
    }
    for name, fns in calls.items():
        for fn in fns:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(TypeError, match=rf"^{name} must be a numeric array, got list \("):
                    fn()


@pytest.mark.parametrize("b", [0.25, np.float64(0.25), np.array([0.25]), np.array([[[[0.25]]]]), 1])
def test_conv_slice_keeps_float32(b):
    rng = np.random.default_rng(6)
    a, w = rng.standard_normal((3, 3, 2)).astype(np.float32), rng.standard_normal((3, 3, 2)).astype(np.float32)
    z = ic.conv_slice(a, w, b)
    assert isinstance(z, np.float32)
    assert z == np.sum(a * w) + np.float32(np.asarray(b).item())
    z64 = ic.conv_slice(a, w.astype(np.float64), b)
    assert isinstance(z64, np.float64)
    assert z64 == np.sum(a * w.astype(np.float64)) + np.float64(np.asarray(b).item())
