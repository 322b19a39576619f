"""Optional oracle: the engine against PyTorch's torch.nn.functional on random float64 problems.

Skipped when torch is not installed (it is not a project dependency). For each op, seeded random problems over
every general option (dilation, groups, padding modes, ceil_mode, transposed convolution) in both layouts: the
forward output and every gradient (autograd with the same ``dout``),
and max pooling's argmax (``cache.indices`` against ``return_indices=True``). Plus PyTorch's tie and NaN rules
for the max-pool gradient, and its padding limit for dilated max pooling.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close
from _strategies import pool_out_len

import im2col_cnn as ic

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

N_CASES = 50
LAYOUTS = ("NHWC", "NCHW")


def to_torch(a: np.ndarray, fmt: str, weight: bool = False):
    """A float64 leaf tensor in PyTorch's layout (activations (N, C, H, W); weights (a, b, kh, kw))."""
    if fmt == "NHWC":
        a = a.transpose(3, 2, 0, 1) if weight else a.transpose(0, 3, 1, 2)
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=True)


def from_torch(t, fmt: str, weight: bool = False) -> np.ndarray:
    """A tensor in PyTorch's layout as a NumPy array in the layout ``fmt``."""
    a = t.detach().numpy()
    if fmt == "NHWC":
        a = a.transpose(2, 3, 1, 0) if weight else a.transpose(0, 2, 3, 1)
    return a


def layout(shape_nhwc, fmt, weight=False):
    """An NHWC activation shape (or an NHWC weight shape (kh, kw, I, O)) in the layout ``fmt``."""
    axes = (3, 2, 0, 1) if weight else (0, 3, 1, 2)
    return tuple(shape_nhwc[i] for i in axes) if fmt == "NCHW" else tuple(shape_nhwc)


def channels(rng) -> tuple[int, int, int]:
    """(C_in, C_out, groups): dense, grouped or depthwise (channel multiplier 1 or 2)."""
    kind = rng.integers(3)
    if kind == 0:
        return int(rng.integers(1, 4)), int(rng.integers(1, 4)), 1
    g = int(rng.integers(2, 4))
    if kind == 1:
        return g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3)), g
    return g, g * int(rng.integers(1, 3)), g


def ints(rng, lo, hi, n=2):
    return tuple(int(v) for v in rng.integers(lo, hi + 1, size=n))


def torch_grads(out_t, dout, fmt, *leaves):
    """Backpropagate ``dout`` (in layout ``fmt``) through ``out_t``; return the leaves' gradients."""
    out_t.backward(to_torch(dout, fmt).detach())
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("seed", range(N_CASES))
def test_conv2d(seed):
    rng = np.random.default_rng(1000 + seed)
    fmt = LAYOUTS[seed % 2]
    while True:
        c_in, c_out, groups = channels(rng)
        (kh, kw), (dh, dw), (sh, sw) = ints(rng, 1, 3), ints(rng, 1, 3), ints(rng, 1, 3)
        form = ["int", "pair", "pairs", "valid", "same"][rng.integers(5)]
        pads = {"int": (int(rng.integers(3)),) * 4, "valid": (0,) * 4}.get(form, ints(rng, 0, 2, 4))
        if form == "pair":
            pads = (pads[0], pads[0], pads[2], pads[2])
        if form == "same":
            sh = sw = 1
            th, tw = dh * (kh - 1), dw * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        h, w = ints(rng, 1, 8)
        if dh * (kh - 1) + 1 <= h + pads[0] + pads[1] and dw * (kw - 1) + 1 <= w + pads[2] + pads[3]:
            break
    padding = {"int": pads[0], "pair": (pads[0], pads[2]), "pairs": (pads[:2], pads[2:])}.get(form, form)
    x = rng.standard_normal(layout((2, h, w, c_in), fmt))
    wt = rng.standard_normal(layout((kh, kw, c_in // groups, c_out), fmt, weight=True))
    b = rng.standard_normal(c_out)
    kwargs = dict(stride=(sh, sw), dilation=(dh, dw), groups=groups)
    out, cache = ic.conv2d_forward(x, wt, b, padding=padding, data_format=fmt, **kwargs)
    dout = rng.standard_normal(out.shape)
    dx, dw_, db = ic.conv2d_backward(dout, cache)

    xt, wtt, bt = to_torch(x, fmt), to_torch(wt, fmt, weight=True), torch.tensor(b, requires_grad=True)
    if form == "pairs":  # asymmetric padding: torch's conv2d takes only symmetric pads
        xin, tpad = F.pad(xt, (pads[2], pads[3], pads[0], pads[1])), 0
    else:
        xin, tpad = xt, padding
    out_t = F.conv2d(xin, wtt, bt, padding=tpad, **kwargs)
    assert_close(out, from_torch(out_t, fmt), np.float64)
    gx, gw, gb = torch_grads(out_t, dout, fmt, xt, wtt, bt)
    assert_close(dx, from_torch(gx, fmt), np.float64)
    assert_close(dw_, from_torch(gw, fmt, weight=True), np.float64)
    assert_close(db, gb.numpy(), np.float64)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_conv_transpose2d(seed):
    rng = np.random.default_rng(2000 + seed)
    fmt = LAYOUTS[seed % 2]
    while True:
        c_in, c_out, groups = channels(rng)
        (kh, kw), (dh, dw), (sh, sw), (ph, pw) = ints(rng, 1, 3), ints(rng, 1, 3), ints(rng, 1, 3), ints(rng, 0, 2)
        oph, opw = int(rng.integers(max(sh, dh))), int(rng.integers(max(sw, dw)))
        h, w = ints(rng, 1, 5)
        ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
        wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
        if ho >= 1 and wo >= 1:
            break
    x = rng.standard_normal(layout((2, h, w, c_in), fmt))
    wt = rng.standard_normal(layout((kh, kw, c_out // groups, c_in), fmt, weight=True))
    b = rng.standard_normal(c_out)
    kwargs = dict(stride=(sh, sw), padding=(ph, pw), output_padding=(oph, opw), groups=groups, dilation=(dh, dw))
    out, cache = ic.conv_transpose2d_forward(x, wt, b, data_format=fmt, **kwargs)
    assert out.shape == layout((2, ho, wo, c_out), fmt)
    dout = rng.standard_normal(out.shape)
    dx, dw_, db = ic.conv_transpose2d_backward(dout, cache)

    xt, wtt, bt = to_torch(x, fmt), to_torch(wt, fmt, weight=True), torch.tensor(b, requires_grad=True)
    out_t = F.conv_transpose2d(xt, wtt, bt, **kwargs)
    assert_close(out, from_torch(out_t, fmt), np.float64)
    gx, gw, gb = torch_grads(out_t, dout, fmt, xt, wtt, bt)
    assert_close(dx, from_torch(gx, fmt), np.float64)
    assert_close(dw_, from_torch(gw, fmt, weight=True), np.float64)
    assert_close(db, gb.numpy(), np.float64)


def pool_geometry(rng, dilated: bool):
    """kernel, stride (None = kernel), padding <= kernel // 2, dilation, ceil_mode and an input size whose
    windows all reach the input (torch would give -inf there; the engine rejects it)."""
    while True:
        k = ints(rng, 1, 4)
        d = ints(rng, 1, 3) if dilated else (1, 1)
        s = ints(rng, 1, 3) if rng.integers(2) else None
        p = (int(rng.integers(k[0] // 2 + 1)), int(rng.integers(k[1] // 2 + 1)))
        ceil_mode = bool(rng.integers(2))
        hw = ints(rng, 1, 9)
        out = [pool_out_len(hw[a], k[a], (s or k)[a], p[a], d[a], ceil_mode) for a in range(2)]
        reach = all(
            any(0 <= o * (s or k)[a] - p[a] + i * d[a] < hw[a] for i in range(k[a]))
            for a in range(2)
            for o in range(out[a])
        )
        if min(out) >= 1 and reach:
            return k, s, p, d, ceil_mode, hw


@pytest.mark.parametrize("seed", range(N_CASES))
def test_max_pool2d(seed):
    rng = np.random.default_rng(3000 + seed)
    fmt = LAYOUTS[seed % 2]
    k, s, p, d, ceil_mode, (h, w) = pool_geometry(rng, dilated=True)
    shape = layout((2, h, w, 3), fmt)
    x = rng.integers(-2, 2, size=shape).astype(np.float64) if seed % 4 < 2 else rng.standard_normal(shape)
    out, cache = ic.max_pool2d_forward(x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode, data_format=fmt)
    dout = rng.standard_normal(out.shape)
    dx = ic.max_pool2d_backward(dout, cache)

    xt = to_torch(x, fmt)
    out_t, idx_t = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(out, from_torch(out_t, fmt))
    np.testing.assert_array_equal(cache.indices, from_torch(idx_t, fmt))
    (gx,) = torch_grads(out_t, dout, fmt, xt)
    assert_close(dx, from_torch(gx, fmt), np.float64)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_avg_pool2d(seed):
    rng = np.random.default_rng(4000 + seed)
    fmt = LAYOUTS[seed % 2]
    k, s, p, _, ceil_mode, (h, w) = pool_geometry(rng, dilated=False)
    count_include_pad = bool(rng.integers(2))
    divisor_override = [None, None, 1, 3, -2][rng.integers(5)]
    x = rng.standard_normal(layout((2, h, w, 3), fmt))
    kw = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad, divisor_override=divisor_override)
    out, cache = ic.avg_pool2d_forward(x, k, stride=s, padding=p, data_format=fmt, **kw)
    dout = rng.standard_normal(out.shape)
    dx = ic.avg_pool2d_backward(dout, cache)

    xt = to_torch(x, fmt)
    out_t = F.avg_pool2d(xt, k, s, p, **kw)
    assert_close(out, from_torch(out_t, fmt), np.float64)
    (gx,) = torch_grads(out_t, dout, fmt, xt)
    assert_close(dx, from_torch(gx, fmt), np.float64)


def _max_pool_both(x_nchw, k, **kw):
    """Engine (NCHW) and torch: out, indices, and the gradient of sum(out * dout) for a fixed dout."""
    out, cache = ic.max_pool2d_forward(x_nchw, k, data_format="NCHW", **kw)
    dout = np.arange(1.0, out.size + 1).reshape(out.shape)  # distinct per window: shows where each one went
    xt = to_torch(x_nchw, "NCHW")
    out_t, idx_t = F.max_pool2d(xt, k, return_indices=True, **kw)
    out_t.backward(torch.tensor(dout))
    return (out, cache.indices, ic.max_pool2d_backward(dout, cache)), (out_t.detach().numpy(), idx_t.numpy(), xt.grad)


@pytest.mark.parametrize(
    "kw", [dict(stride=1), dict(stride=2, padding=1), dict(stride=1, dilation=(1, 2), ceil_mode=True)]
)
def test_max_pool_ties_go_to_the_first_maximum(kw):
    x = np.array([[1, 3, 3, 0, 3], [3, 3, 1, 3, 3], [0, 3, 3, 3, 1], [3, 1, 3, 3, 3]], dtype=np.float64)[None, None]
    (out, idx, dx), (t_out, t_idx, t_dx) = _max_pool_both(x, 3, **kw)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_array_equal(dx, t_dx.numpy())
    # the first 3 in row-major window order, e.g. window (0, 0) of the stride-1 case: position (0, 1)
    if kw == dict(stride=1):
        assert idx[0, 0, 0, 0] == 1 and idx[0, 0, 0, 1] == 1 and idx[0, 0, 1, 0] == 5


@pytest.mark.parametrize("kw", [dict(stride=1), dict(stride=2, padding=1), dict(stride=1, dilation=2, ceil_mode=True)])
def test_max_pool_nan_gradient_goes_to_the_last_nan(kw):
    nan = np.nan
    x = np.array(
        [[nan, 5, 1, nan, 0], [2, nan, 9, 1, 1], [0, 3, nan, 4, 2], [1, 8, 2, 7, nan], [nan, 1, 2, 3, 4]],
        dtype=np.float64,
    )[None, None]
    (out, idx, dx), (t_out, t_idx, t_dx) = _max_pool_both(x, 3, **kw)
    np.testing.assert_array_equal(out, t_out)  # NaN in the same windows
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_array_equal(dx, t_dx.numpy())
    if kw == dict(stride=1):  # window (0, 0) holds NaNs at (0, 0), (1, 1), (2, 2): the last one wins
        assert np.isnan(out[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 2 * 5 + 2


def test_max_pool_padding_limit_is_half_the_kernel_as_in_torch():
    x = np.random.default_rng(0).standard_normal((1, 1, 9, 9))
    with pytest.raises(RuntimeError, match="pad should be"):
        F.max_pool2d(torch.tensor(x), 2, 1, 2, 3)  # padding 2 > 2 // 2, though the dilated kernel spans 4
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        ic.max_pool2d_forward(x, 2, stride=1, padding=2, dilation=3, data_format="NCHW")
    out, _ = ic.max_pool2d_forward(x, 2, stride=1, padding=1, dilation=3, data_format="NCHW")
    np.testing.assert_array_equal(out, F.max_pool2d(torch.tensor(x), 2, 1, 1, 3).numpy())
