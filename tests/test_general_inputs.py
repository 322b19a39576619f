"""The general options (dilation, groups, padding modes, NCHW, transposed convolution) never modify their
inputs (read-only arrays work) and return fresh arrays.

Every layer in both layouts and both dtypes: x, w, b and every dout are unchanged afterwards; no result aliases
an input or is read-only; results keep the input dtype (max-pool indices are int64).
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic


def _general_calls(a, fmt):
    """Forward and backward of every general function/option on the arrays in ``a`` (in layout ``fmt``)."""
    for kw in (dict(dilation=2, padding="same"), dict(groups=2, stride=2, padding=((1, 0), (0, 2))), dict(groups=4)):
        w = a["w_dw"] if kw.get("groups") == 4 else a["w_g"] if "groups" in kw else a["w"]
        out, cache = ic.conv2d_forward(a["x"], w, a["b"], data_format=fmt, **kw)
        yield out, *ic.conv2d_backward(a["dout"](out.shape), cache)
    for kw in (dict(stride=2, output_padding=1, dilation=2, groups=2, padding=1), dict(groups=4, padding=(0, 1))):
        w = a["tw_dw"] if kw["groups"] == 4 else a["tw_g"]
        out, cache = ic.conv_transpose2d_forward(a["x"], w, a["b"], data_format=fmt, **kw)
        yield out, *ic.conv_transpose2d_backward(a["dout"](out.shape), cache)
    out, cache = ic.max_pool2d_forward(a["x"], 2, stride=1, padding=1, dilation=2, ceil_mode=True, data_format=fmt)
    yield out, ic.max_pool2d_backward(a["dout"](out.shape), cache), cache.indices
    for kw in (dict(count_include_pad=False), dict(divisor_override=3)):
        out, cache = ic.avg_pool2d_forward(a["x"], 3, stride=2, padding=1, ceil_mode=True, data_format=fmt, **kw)
        yield out, ic.avg_pool2d_backward(a["dout"](out.shape), cache)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_inputs_are_never_modified(dtype, fmt, read_only):
    rng = np.random.default_rng(0)
    nchw = fmt == "NCHW"

    def arr(shape, weight=False):
        """An activation (N, H, W, C) or a weight (kh, kw, I, O), given in NHWC, made in the layout ``fmt``."""
        axes = (3, 2, 0, 1) if weight else (0, 3, 1, 2)
        return rng.standard_normal(tuple(shape[i] for i in axes) if nchw else shape).astype(dtype)

    a = {
        "x": arr((2, 6, 7, 4)),
        "w": arr((3, 2, 4, 4), weight=True),
        "w_g": arr((3, 3, 2, 4), weight=True),
        "w_dw": arr((3, 3, 1, 4), weight=True),
        "tw_g": arr((3, 2, 2, 4), weight=True),
        "tw_dw": arr((2, 3, 1, 4), weight=True),
        "b": rng.standard_normal(4).astype(dtype),
    }
    copies = {k: v.copy() for k, v in a.items()}
    douts = []

    def dout(shape):
        d = rng.standard_normal(shape).astype(dtype)
        douts.append((d, d.copy()))
        d.setflags(write=not read_only)
        return d

    if read_only:
        for v in a.values():
            v.setflags(write=False)
    results = [r for group in _general_calls(a | {"dout": dout}, fmt) for r in group]
    assert len(results) == 3 * 4 + 2 * 4 + 3 + 2 * 2 and len(douts) == 8
    for k, v in a.items():
        np.testing.assert_array_equal(v, copies[k], err_msg=f"{k} was modified")
    for d, d_copy in douts:
        np.testing.assert_array_equal(d, d_copy, err_msg=f"a dout of shape {d.shape} was modified")
    for r in results:
        assert r.flags.writeable and not any(np.shares_memory(r, v) for v in a.values())
        assert r.dtype == (np.int64 if r.dtype.kind == "i" else dtype)
