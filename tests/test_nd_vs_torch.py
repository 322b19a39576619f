"""Optional oracle: the engine's 1-D and 3-D layers, adaptive pooling and unfold / fold against PyTorch's
torch.nn.functional.

Skipped when torch is not installed (it is not a project dependency). Seeded random problems in both layouts and
in float32 (torch in float32 too) and float64: conv1d / conv3d (every padding form, 'same' with even kernels,
stride, dilation, groups incl. depthwise with a channel multiplier, more input channels than the few-channel
kernels take, bias None or present), conv_transpose1d / 3d (output_padding, dilation, groups), max_pool1d / 3d
(dilation, ceil_mode, ties, NaN), avg_pool1d / 3d (ceil_mode, count_include_pad, divisor_override), adaptive
average and max pooling at 1, 2 and 3 spatial axes on each of the engine's paths (global average, dividing output
sizes, the general windows with sizes that do not divide or exceed the input, None entries). Checked: the forward
output, its dtype, every gradient (autograd with the same ``dout``) and the max-pool winners (``cache.indices``
against ``return_indices=True``). Plus hand-built ties (the first maximum wins) and NaN windows (the output is NaN
and the last NaN wins), problems large enough to be split into several tiles or blocks, and winner indices past
the one- and two-byte limits. PyTorch's unfold / fold take 2 spatial axes only: the engine's 2-D unfold must equal
F.unfold exactly, its fold F.fold to rounding.
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

N_CASES = 16
N_ADAPTIVE = 12  # seeds 0-11: every path (seed % 3) in every layout and dtype (seed % 4)
FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def to_torch(a: np.ndarray, first: bool, weight: bool = False):
    """A leaf tensor of ``a``'s dtype in PyTorch's layout (activations (N, C, *spatial); weights (a, b, *k))."""
    if not first:
        nd = a.ndim - 2
        a = a.transpose(nd + 1, nd, *range(nd)) if weight else np.moveaxis(a, -1, 1)
    return torch.tensor(np.ascontiguousarray(a), dtype=TORCH_DTYPES[a.dtype], requires_grad=True)


def from_torch(t, first: bool, weight: bool = False) -> np.ndarray:
    """A tensor in PyTorch's layout as a NumPy array in the call's layout (channels-first or -last)."""
    a = t.detach().numpy()
    if not first:
        a = a.transpose(*range(2, a.ndim), 1, 0) if weight else np.moveaxis(a, 1, -1)
    return a


def torch_grads(out_t, dout: np.ndarray, first: bool, *leaves) -> list:
    """Backpropagate ``dout`` (in the call's layout) through ``out_t``; return the leaves' gradients."""
    out_t.backward(to_torch(dout, first).detach())
    return [leaf.grad for leaf in leaves]


def to_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def weight_first(w: np.ndarray) -> np.ndarray:
    """A channels-last weight (*k, b, a) in PyTorch's layout (a, b, *k)."""
    nd = w.ndim - 2
    return np.ascontiguousarray(w.transpose(nd + 1, nd, *range(nd)))


def ints(rng, lo: int, hi: int, n: int) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(lo, hi + 1, size=n))


def case(ndim: int, seed: int, salt: int):
    """The seeded generator of one case, its layout (channels-first on odd seeds) and dtype (float32 on every
    other pair of seeds)."""
    first = bool(seed % 2)
    dtype = np.dtype(np.float32 if (seed // 2) % 2 else np.float64)
    return np.random.default_rng([salt, ndim, seed]), first, FORMATS[ndim][first], dtype


def channels(rng, dense_max: int = 8) -> tuple[int, int, int]:
    """(C_in, C_out, groups): dense (up to ``dense_max``: over 6 input channels the column kernels run, not the
    few-channel ones), grouped, or depthwise (channel multiplier 1 or 2)."""
    kind = rng.integers(3)
    if kind == 0:
        return int(rng.integers(1, dense_max + 1)), int(rng.integers(1, 5)), 1
    g = int(rng.integers(2, 4))
    if kind == 1:
        return g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3)), g
    return g, g * int(rng.integers(1, 3)), g


def values(rng, shape: tuple[int, ...], kind: str, dtype) -> np.ndarray:
    """'randn'; 'ties': integers in [-2, 2]; 'nan': ties with about one NaN in eight."""
    if kind == "randn":
        return rng.standard_normal(shape).astype(dtype)
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    if kind == "nan":
        x[rng.random(shape) < 0.125] = np.nan
    return x


def in_layout(a_last: np.ndarray, first: bool) -> np.ndarray:
    return to_first(a_last) if first else a_last


# ------------------------------------------------------------------------------------------ convolution


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_conv(ndim, seed):
    rng, first, layout, dtype = case(ndim, seed, 1)
    c_in, c_out, groups = channels(rng)
    kernel, dilation, stride = ints(rng, 1, 3, ndim), ints(rng, 1, 2, ndim), ints(rng, 1, 3, ndim)
    form = ("int", "axes", "pairs", "valid", "same")[seed % 5]  # each in both layouts and dtypes (seed % 4)
    pairs = tuple(ints(rng, 0, 2, 2) for _ in range(ndim))
    if form == "same":
        stride = (1,) * ndim
    padding = {"int": pairs[0][0], "axes": tuple(p[0] for p in pairs), "pairs": pairs}.get(form, form)
    totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    pads = {
        "int": ((pairs[0][0],) * 2,) * ndim,
        "axes": tuple((p[0], p[0]) for p in pairs),
        "pairs": pairs,
        "valid": ((0, 0),) * ndim,
        "same": tuple((t // 2, t - t // 2) for t in totals),
    }[form]
    need = [t + 1 - lo - hi for t, (lo, hi) in zip(totals, pads, strict=True)]
    spatial = tuple(max(1, m) + int(rng.integers(0, 7 if ndim == 1 else 3)) for m in need)
    x = in_layout(rng.standard_normal((2, *spatial, c_in)).astype(dtype), first)
    w_last = rng.standard_normal((*kernel, c_in // groups, c_out)).astype(dtype)
    w = weight_first(w_last) if first else w_last
    b = rng.standard_normal(c_out).astype(dtype) if seed % 3 != 2 else None
    forward, backward = getattr(ic, f"conv{ndim}d_forward"), getattr(ic, f"conv{ndim}d_backward")
    out, cache = forward(x, w, b, stride, padding, dilation, groups, data_format=layout)
    assert out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = backward(dout, cache)

    xt, wt = to_torch(x, first), to_torch(w, first, weight=True)
    bt = torch.zeros(c_out, dtype=TORCH_DTYPES[dtype], requires_grad=True) if b is None else to_torch(b, True)
    if form == "pairs":  # per-side padding: PyTorch's conv takes symmetric padding only
        xin, tpad = F.pad(xt, [p for pair in reversed(pairs) for p in pair]), 0
    else:
        xin, tpad = xt, padding
    out_t = getattr(F, f"conv{ndim}d")(xin, wt, bt, stride=stride, padding=tpad, dilation=dilation, groups=groups)
    assert_close(out, from_torch(out_t, first), dtype)
    gx, gw, gb = torch_grads(out_t, dout, first, xt, wt, bt)
    assert_close(dx, from_torch(gx, first), dtype)
    assert_close(dw, from_torch(gw, first, weight=True), dtype)
    assert_close(db, gb.numpy(), dtype)  # (C_out,) even without a bias


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_conv_transpose(ndim, seed):
    rng, first, layout, dtype = case(ndim, seed, 2)
    while True:
        c_in, c_out, groups = channels(rng)
        kernel, dilation, stride = ints(rng, 1, 3, ndim), ints(rng, 1, 2, ndim), ints(rng, 1, 3, ndim)
        padding = ints(rng, 0, 2, ndim)
        output_padding = tuple(int(rng.integers(max(s, d))) for s, d in zip(stride, dilation, strict=True))
        spatial = ints(rng, 1, 5 if ndim == 1 else 3, ndim)
        sizes = [
            (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            for size, k, s, p, d, op in zip(spatial, kernel, stride, padding, dilation, output_padding, strict=True)
        ]
        if min(sizes) >= 1:
            break
    x = in_layout(rng.standard_normal((2, *spatial, c_in)).astype(dtype), first)
    w_last = rng.standard_normal((*kernel, c_out // groups, c_in)).astype(dtype)
    w = weight_first(w_last) if first else w_last
    b = rng.standard_normal(c_out).astype(dtype)
    args = (stride, padding, output_padding, groups, dilation)  # torch.nn.functional's order
    out, cache = getattr(ic, f"conv_transpose{ndim}d_forward")(x, w, b, *args, data_format=layout)
    assert out.dtype == dtype and (out.shape[2:] if first else out.shape[1:-1]) == tuple(sizes)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = getattr(ic, f"conv_transpose{ndim}d_backward")(dout, cache)

    xt, wt, bt = to_torch(x, first), to_torch(w, first, weight=True), to_torch(b, True)
    out_t = getattr(F, f"conv_transpose{ndim}d")(xt, wt, bt, *args)
    assert_close(out, from_torch(out_t, first), dtype)
    gx, gw, gb = torch_grads(out_t, dout, first, xt, wt, bt)
    assert_close(dx, from_torch(gx, first), dtype)
    assert_close(dw, from_torch(gw, first, weight=True), dtype)
    assert_close(db, gb.numpy(), dtype)


# -------------------------------------------------------------------------------------------------- pooling


def check_pool(out, cache, dout, dx, out_t, xt, first: bool, dtype, indices_t=None) -> None:
    """Forward output (exactly for max pooling, NaN where PyTorch has NaN), winners and the input gradient, with
    their dtypes and shapes."""
    assert out.dtype == dtype and dx.dtype == dtype
    if indices_t is None:
        assert_close(out, from_torch(out_t, first), dtype)
    else:
        np.testing.assert_array_equal(out, from_torch(out_t, first))
        assert cache.indices.dtype == np.int64
        np.testing.assert_array_equal(cache.indices, from_torch(indices_t, first))
    (gx,) = torch_grads(out_t, dout, first, xt)
    assert_close(dx, from_torch(gx, first), dtype)


def pool_geometry(rng, ndim: int, dilated: bool):
    """kernel, stride (None: the kernel), padding <= kernel // 2, dilation, ceil_mode and spatial sizes whose
    windows all reach the input (PyTorch would give -inf there; the engine rejects it). Without dilation (average
    pooling) the input is at least the kernel: PyTorch's avg_pool3d rejects a smaller one even when the padding
    makes up the difference (its avg_pool1d / 2d and the engine do not)."""
    while True:
        kernel = ints(rng, 1, 4 if ndim == 1 else 3, ndim)
        dilation = ints(rng, 1, 3 if ndim == 1 else 2, ndim) if dilated else (1,) * ndim
        stride = ints(rng, 1, 3, ndim) if rng.integers(3) else None
        padding = tuple(int(rng.integers(k // 2 + 1)) for k in kernel)
        ceil_mode = bool(rng.integers(2))
        spatial = ints(rng, 1, 12 if ndim == 1 else 6, ndim)
        geometry = list(zip(spatial, kernel, stride or kernel, padding, dilation, strict=True))
        out = [pool_out_len(n, k, s, p, d, ceil_mode) for n, k, s, p, d in geometry]
        reach = all(
            any(0 <= o * s - p + i * d < n for i in range(k))
            for (n, k, s, p, d), o_n in zip(geometry, out, strict=True)
            for o in range(o_n)
        )
        if min(out) >= 1 and reach and (dilated or all(n >= k for n, k in zip(spatial, kernel, strict=True))):
            return kernel, stride, padding, dilation, ceil_mode, spatial


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_max_pool(ndim, seed):
    rng, first, layout, dtype = case(ndim, seed, 3)
    kernel, stride, padding, dilation, ceil_mode, spatial = pool_geometry(rng, ndim, dilated=True)
    x = in_layout(values(rng, (2, *spatial, 3), ("randn", "ties", "nan")[seed % 3], dtype), first)
    args = (stride, padding, dilation, ceil_mode)
    out, cache = getattr(ic, f"max_pool{ndim}d_forward")(x, kernel, *args, data_format=layout)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = getattr(ic, f"max_pool{ndim}d_backward")(dout, cache)

    xt = to_torch(x, first)
    out_t, indices_t = getattr(F, f"max_pool{ndim}d")(xt, kernel, *args, return_indices=True)
    check_pool(out, cache, dout, dx, out_t, xt, first, dtype, indices_t)


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_avg_pool(ndim, seed):
    rng, first, layout, dtype = case(ndim, seed, 4)
    kernel, stride, padding, _, ceil_mode, spatial = pool_geometry(rng, ndim, dilated=False)
    args = [stride, padding, ceil_mode, seed % 3 != 0]  # count_include_pad
    if ndim == 3 and seed % 3 == 1:
        args.append([None, 1, 3, -2, 5][seed % 5])  # divisor_override
    x = in_layout(rng.standard_normal((2, *spatial, 3)).astype(dtype), first)
    out, cache = getattr(ic, f"avg_pool{ndim}d_forward")(x, kernel, *args, data_format=layout)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = getattr(ic, f"avg_pool{ndim}d_backward")(dout, cache)

    xt = to_torch(x, first)
    out_t = getattr(F, f"avg_pool{ndim}d")(xt, kernel, *args)
    check_pool(out, cache, dout, dx, out_t, xt, first, dtype)


def adaptive_sizes(rng, spatial: tuple[int, ...], path: str) -> tuple:
    """Output sizes for one of the engine's paths: 'global' (all 1), 'dividing' (divisors, not all 1 unless the
    input is), 'general' (1 to size + 2: some not dividing, or larger). None entries keep an axis' size."""
    while True:
        if path == "global":
            sizes = [1] * len(spatial)
        elif path == "dividing":
            sizes = [int(rng.choice([d for d in range(1, n + 1) if n % d == 0])) for n in spatial]
        else:
            sizes = [int(rng.integers(1, n + 3)) for n in spatial]
        dividing = all(n % o == 0 for n, o in zip(spatial, sizes, strict=True))
        if path == "global" or (dividing == (path == "dividing") and (path == "general" or max(sizes) > 1)):
            break
        spatial = tuple(n + 1 for n in spatial)  # e.g. all sizes 1: no dividing size above 1
    entries = tuple(None if o == n and rng.random() < 0.5 else o for n, o in zip(spatial, sizes, strict=True))
    return spatial, entries, tuple(sizes)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("seed", range(N_ADAPTIVE))
def test_adaptive_pool(kind, ndim, seed):
    rng, first, layout, dtype = case(ndim, seed, 5)
    path = ("global", "dividing", "general")[seed % 3]
    spatial, output_size, sizes = adaptive_sizes(rng, ints(rng, 1, 10 if ndim == 1 else 5, ndim), path)
    x = in_layout(values(rng, (2, *spatial, 2), ("randn", "ties", "nan")[seed % 3], dtype), first)
    out, cache = getattr(ic, f"adaptive_{kind}_pool{ndim}d_forward")(x, output_size, data_format=layout)
    assert (out.shape[2:] if first else out.shape[1:-1]) == sizes
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = getattr(ic, f"adaptive_{kind}_pool{ndim}d_backward")(dout, cache)

    xt = to_torch(x, first)
    torch_size = sizes[0] if ndim == 1 else output_size  # PyTorch's 1-D adaptive pooling takes no None
    if kind == "max":
        out_t, indices_t = getattr(F, f"adaptive_max_pool{ndim}d")(xt, torch_size, return_indices=True)
    else:
        out_t, indices_t = getattr(F, f"adaptive_avg_pool{ndim}d")(xt, torch_size), None
    check_pool(out, cache, dout, dx, out_t, xt, first, dtype, indices_t)


# ------------------------------------------------------------------------------ ties and NaN, hand-built

NAN = np.nan
ROW = [1, 3, 3, 0, 3, NAN, 2, NAN, 3, 1, 3, 3]  # ties at 3; NaNs at 5 and 7


def max_pool_both(layer: str, x_first: np.ndarray, second, **kw):
    """Engine (channels-first) and torch: out, indices, and the gradient of sum(out * dout) for a dout distinct
    per window (it shows where each window's gradient went)."""
    ndim = x_first.ndim - 2
    out, cache = getattr(ic, f"{layer}_forward")(x_first, second, data_format=FORMATS[ndim][1], **kw)
    dout = np.arange(1.0, out.size + 1).reshape(out.shape)
    dx = getattr(ic, f"{layer}_backward")(dout, cache)
    xt = torch.tensor(x_first, requires_grad=True)
    out_t, idx_t = getattr(F, layer)(xt, second, return_indices=True, **kw)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, out_t.detach().numpy())  # NaN in the same windows
    np.testing.assert_array_equal(cache.indices, idx_t.numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    return out, cache.indices


@pytest.mark.parametrize(
    "kw", [dict(stride=1), dict(stride=2, padding=1), dict(stride=1, dilation=2, ceil_mode=True), dict(stride=3)]
)
def test_max_pool1d_ties_and_nan_as_torch(kw):
    x = np.array([ROW, [-v for v in ROW]], dtype=np.float64)[None]  # (1, 2, 12)
    out, idx = max_pool_both("max_pool1d", x, 3, **kw)
    if kw == dict(stride=1):
        assert idx[0, 0, 0] == 1 and idx[0, 0, 1] == 1  # windows [1 3 3], [3 3 0]: the first 3
        assert np.isnan(out[0, 0, 5]) and idx[0, 0, 5] == 7  # window [NaN 2 NaN]: the last NaN


@pytest.mark.parametrize("kw", [dict(stride=1), dict(stride=2, padding=1, ceil_mode=True), dict(dilation=(1, 2, 1))])
def test_max_pool3d_ties_and_nan_as_torch(kw):
    x = np.random.default_rng(0).integers(0, 2, size=(1, 2, 4, 5, 6)).astype(np.float64)  # ties everywhere
    x[0, 0, 0, 0, 0] = x[0, 0, 1, 1, 1] = NAN  # window (0, 0, 0) of a 2-cube holds both: the last one wins
    x[0, 1, 2, 3, 4] = NAN
    out, idx = max_pool_both("max_pool3d", x, 2, **kw)
    if kw == dict(stride=1):
        assert np.isnan(out[0, 0, 0, 0, 0]) and idx[0, 0, 0, 0, 0] == (1 * 5 + 1) * 6 + 1


@pytest.mark.parametrize("output_size", [5, 8, 4, 16])  # windows overlapping, dividing, larger than the input
def test_adaptive_max_pool1d_ties_and_nan_as_torch(output_size):
    x = np.array([ROW, [-v for v in ROW], [2.0] * 12], dtype=np.float64)[None]  # (1, 3, 12)
    out, idx = max_pool_both("adaptive_max_pool1d", x, output_size)
    if output_size == 4:  # windows [1 3 3], [0 3 NaN], [2 NaN 3], [1 3 3]
        np.testing.assert_array_equal(idx[0, 0], [1, 5, 7, 10])
        np.testing.assert_array_equal(idx[0, 2], [0, 3, 6, 9])  # all tied: the first of each window


@pytest.mark.parametrize("output_size", [(3, 4), (None, 3), (2, 7), (1, 1)])
def test_adaptive_max_pool2d_ties_and_nan_as_torch(output_size):
    x = np.random.default_rng(1).integers(-1, 2, size=(2, 2, 5, 6)).astype(np.float64)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[1, 1, 4, 5] = NAN
    max_pool_both("adaptive_max_pool2d", x, output_size)


@pytest.mark.parametrize("output_size", [(2, 3, 4), (3, None, 2), (1, 1, 1), (5, 2, 3)])
def test_adaptive_max_pool3d_ties_and_nan_as_torch(output_size):
    x = np.random.default_rng(2).integers(-1, 2, size=(1, 3, 3, 4, 5)).astype(np.float64)
    x[0, 0, 0, 1, 2] = x[0, 0, 2, 3, 4] = x[0, 2, 1, 1, 1] = NAN
    max_pool_both("adaptive_max_pool3d", x, output_size)


# ------------------------------------------------------------------------------ large problems, wide indices


LARGE = {  # name: (layer, x shape channels-last, second argument or w shape, hyperparameters)
    "conv3d": ("conv3d", (2, 20, 24, 22, 8), (3, 3, 3, 8, 12), dict(padding=1, stride=(1, 2, 1))),
    "conv3d-grouped": ("conv3d", (2, 18, 20, 16, 8), (3, 2, 3, 4, 8), dict(padding="same", groups=2)),
    "conv1d": ("conv1d", (3, 5000, 9), (5, 9, 16), dict(padding=2, dilation=2)),
    "conv_transpose3d": ("conv_transpose3d", (2, 10, 12, 11, 8), (3, 3, 3, 6, 8), dict(stride=2, padding=1)),
    "max_pool3d": ("max_pool3d", (2, 30, 40, 50, 6), 3, dict(stride=2, padding=1)),
    "max_pool3d-disjoint": ("max_pool3d", (2, 40, 40, 40, 6), 2, {}),
    "max_pool1d": ("max_pool1d", (4, 100000, 3), 5, dict(stride=3, dilation=2, ceil_mode=True)),
    "avg_pool3d": ("avg_pool3d", (2, 30, 40, 50, 6), 3, dict(stride=2, padding=1, count_include_pad=False)),
    "adaptive_avg_pool3d": ("adaptive_avg_pool3d", (2, 31, 41, 51, 6), (7, 9, 11), {}),
    "adaptive_max_pool3d": ("adaptive_max_pool3d", (2, 31, 41, 51, 6), (7, 9, 11), {}),
    # winner indices around and past 2**16 (one channel: the channels-first gather over such long windows is slow)
    "adaptive_max_pool1d": ("adaptive_max_pool1d", (2, 70000, 1), 13, {}),
    "adaptive_max_pool1d-65535": ("adaptive_max_pool1d", (1, 65535, 1), 9, {}),
    "adaptive_max_pool1d-65536": ("adaptive_max_pool1d", (1, 65536, 1), 11, {}),
}


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("name", list(LARGE))
def test_large_problems_split_into_tiles(name, first):
    """Problems of several MiB, which the engine splits into blocks or tiles (and runs on its threads): the same
    results as PyTorch, float32, with ties and a NaN for max pooling."""
    layer, x_shape, second, kw = LARGE[name]
    ndim = len(x_shape) - 2
    rng = np.random.default_rng(len(name))
    dtype = np.dtype(np.float32)
    if "max" in layer:
        x = values(rng, x_shape, "ties", dtype)
        x.flat[rng.choice(x.size, 3, replace=False)] = NAN
    else:
        x = rng.standard_normal(x_shape).astype(dtype)
    x = in_layout(x, first)
    fmt = dict(data_format=FORMATS[ndim][first])
    xt = to_torch(x, first)
    if layer.startswith("conv"):
        w_last = rng.standard_normal(second).astype(dtype)
        w = weight_first(w_last) if first else w_last
        out, cache = getattr(ic, f"{layer}_forward")(x, w, None, **kw, **fmt)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dx, dw, _ = getattr(ic, f"{layer}_backward")(dout, cache)
        wt = to_torch(w, first, weight=True)
        out_t = getattr(F, layer)(xt, wt, None, **kw)
        assert_close(out, from_torch(out_t, first), dtype)
        gx, gw = torch_grads(out_t, dout, first, xt, wt)
        assert_close(dx, from_torch(gx, first), dtype)
        assert_close(dw, from_torch(gw, first, weight=True), dtype, rtol=1e-3)  # sums of 10^5 products
        return
    out, cache = getattr(ic, f"{layer}_forward")(x, second, **kw, **fmt)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = getattr(ic, f"{layer}_backward")(dout, cache)
    if "max" in layer:
        out_t, indices_t = getattr(F, layer)(xt, second, return_indices=True, **kw)
    else:
        out_t, indices_t = getattr(F, layer)(xt, second, **kw), None
    check_pool(out, cache, dout, dx, out_t, xt, first, dtype, indices_t)


# ------------------------------------------------------------------------------------------ unfold / fold


@pytest.mark.parametrize("seed", range(N_CASES))
def test_unfold_and_fold_2d(seed):
    rng, _, _, dtype = case(2, seed, 6)
    while True:
        kernel, dilation, padding, stride = (ints(rng, lo, hi, 2) for lo, hi in ((1, 3), (1, 2), (0, 2), (1, 3)))
        spatial = ints(rng, 1, 9, 2)
        if all(d * (k - 1) + 1 <= n + 2 * p for k, d, p, n in zip(kernel, dilation, padding, spatial, strict=True)):
            break
    args = [a[0] if a[0] == a[1] and seed % 3 == 0 else a for a in (kernel, dilation, padding, stride)]
    x = rng.standard_normal((2, int(rng.integers(1, 4)), *spatial)).astype(dtype)
    cols = ic.unfold(x, *args)
    xt = torch.tensor(x, requires_grad=True)
    cols_t = F.unfold(xt, *args)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, cols_t.detach().numpy())  # a gather: exactly equal

    dcols = rng.standard_normal(cols.shape).astype(dtype)
    size = spatial[0] if spatial[0] == spatial[1] and seed % 2 else spatial
    folded = ic.fold(dcols, size, *args)
    assert folded.dtype == dtype
    assert_close(folded, F.fold(torch.tensor(dcols), size, *args).numpy(), dtype)
    cols_t.backward(torch.tensor(dcols))  # unfold's gradient is fold
    assert_close(folded, xt.grad.numpy(), dtype)
