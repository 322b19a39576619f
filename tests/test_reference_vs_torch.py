"""Optional oracle for the N-d reference loops: PyTorch's torch.nn.functional on small random float64 problems.

Skipped when torch is not installed (it is not a project dependency). Every 1-D / 3-D layer function, adaptive
pooling at 1, 2 and 3 axes, unfold / fold and the N-d im2col / col2im, in both layouts: the forward output, every
gradient (autograd with the same ``dout``) and the max-pool winners (``cache.indices`` against
``return_indices=True``). The draws cover dilation, groups (incl. depthwise), every conv padding form, 'same' with
even kernels, output_padding, ceil_mode, count_include_pad=False, divisor_override, output sizes with None entries
and larger than the input, integer-valued (tied) inputs and NaN for max pooling. PyTorch has no 1-D / 3-D unfold:
1-D is its 2-D unfold on a unit height, 3-D a grouped conv3d with one-hot kernels (fold: autograd of that).
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import reference as ref
from reference._nd import FORMATS

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

N_CASES = 12
F64 = np.float64


def to_torch(a: np.ndarray, first: bool, weight: bool = False):
    """A float64 leaf tensor in PyTorch's layout (activations (N, C, *spatial); weights (a, b, *k))."""
    if not first:
        nd = a.ndim - 2
        a = a.transpose(nd + 1, nd, *range(nd)) if weight else np.moveaxis(a, -1, 1)
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=True)


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


def ints(rng, lo: int, hi: int, n: int) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(lo, hi + 1, size=n))


def channels(rng) -> tuple[int, int, int]:
    """(C_in, C_out, groups): dense, grouped or depthwise (channel multiplier 1 or 2)."""
    kind = rng.integers(3)
    if kind == 0:
        return int(rng.integers(1, 4)), int(rng.integers(1, 4)), 1
    g = int(rng.integers(2, 4))
    if kind == 1:
        return g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3)), g
    return g, g * int(rng.integers(1, 3)), g


def values(rng, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """'randn'; 'ties': integers in [-2, 2]; 'nan': ties with about one NaN in eight."""
    if kind == "randn":
        return rng.standard_normal(shape)
    x = rng.integers(-2, 3, size=shape).astype(F64)
    if kind == "nan":
        x[rng.random(shape) < 0.125] = np.nan
    return x


def case(ndim: int, seed: int, salt: int) -> tuple[np.random.Generator, bool, str]:
    """The seeded generator of one case, and its layout: channels-first on odd seeds."""
    first = bool(seed % 2)
    return np.random.default_rng([salt, ndim, seed]), first, FORMATS[ndim][first]


def spatial_shape(rng, extents: tuple[int, ...], slack: int) -> tuple[int, ...]:
    """Spatial sizes that fit the (dilated) kernel extents, plus 0..slack."""
    return tuple(e + int(rng.integers(0, slack + 1)) for e in extents)


# ------------------------------------------------------------------------------------------ convolution


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_conv(ndim, seed):
    rng, first, layout = case(ndim, seed, 1)
    c_in, c_out, groups = channels(rng)
    kernel, dilation, stride = ints(rng, 1, 3, ndim), ints(rng, 1, 2, ndim), ints(rng, 1, 2, ndim)
    form = ("int", "axes", "pairs", "valid", "same", "pairs")[seed % 6]
    pairs = tuple(ints(rng, 0, 2, 2) for _ in range(ndim))
    if form == "same":
        stride = (1,) * ndim
    padding = {"int": pairs[0][0], "axes": tuple(p[0] for p in pairs), "pairs": pairs}.get(form, form)
    extents = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    x_shape = (2, *spatial_shape(rng, extents, 5 if ndim == 1 else 2), c_in)
    x = rng.standard_normal(x_shape if not first else (2, c_in, *x_shape[1:-1]))
    w_last = rng.standard_normal((*kernel, c_in // groups, c_out))
    w = np.ascontiguousarray(w_last.transpose(ndim + 1, ndim, *range(ndim))) if first else w_last
    b = rng.standard_normal(c_out) if seed % 4 != 3 else None
    forward, backward = getattr(ref, f"conv{ndim}d_forward"), getattr(ref, f"conv{ndim}d_backward")
    out, cache = forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, data_format=layout)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)

    xt, wt = to_torch(x, first), to_torch(w, first, weight=True)
    bt = torch.tensor(np.zeros(c_out) if b is None else b, requires_grad=True)  # a zero bias: db is still sum(dout)
    if form == "pairs":  # per-side padding: PyTorch's conv takes symmetric padding only
        xin, tpad = F.pad(xt, [p for pair in reversed(pairs) for p in pair]), 0
    else:
        xin, tpad = xt, padding
    conv = getattr(F, f"conv{ndim}d")
    out_t = conv(xin, wt, bt, stride=stride, padding=tpad, dilation=dilation, groups=groups)
    assert_close(out, from_torch(out_t, first), F64)
    gx, gw, gb = torch_grads(out_t, dout, first, xt, wt, bt)
    assert_close(dx, from_torch(gx, first), F64)
    assert_close(dw, from_torch(gw, first, weight=True), F64)
    assert_close(db, gb.numpy(), F64)


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_conv_transpose(ndim, seed):
    rng, first, layout = case(ndim, seed, 2)
    while True:
        c_in, c_out, groups = channels(rng)
        kernel, dilation, stride = ints(rng, 1, 3, ndim), ints(rng, 1, 2, ndim), ints(rng, 1, 3, ndim)
        padding = ints(rng, 0, 2, ndim)
        output_padding = tuple(int(rng.integers(max(s, d))) for s, d in zip(stride, dilation, strict=True))
        spatial = ints(rng, 1, 4 if ndim == 1 else 3, ndim)
        sizes = [
            (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            for size, k, s, p, d, op in zip(spatial, kernel, stride, padding, dilation, output_padding, strict=True)
        ]
        if min(sizes) >= 1:
            break
    x = rng.standard_normal((2, c_in, *spatial) if first else (2, *spatial, c_in))
    w_last = rng.standard_normal((*kernel, c_out // groups, c_in))
    w = np.ascontiguousarray(w_last.transpose(ndim + 1, ndim, *range(ndim))) if first else w_last
    b = rng.standard_normal(c_out)
    options = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    out, cache = getattr(ref, f"conv_transpose{ndim}d_forward")(x, w, b, data_format=layout, **options)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = getattr(ref, f"conv_transpose{ndim}d_backward")(dout, cache)

    xt, wt, bt = to_torch(x, first), to_torch(w, first, weight=True), torch.tensor(b, requires_grad=True)
    out_t = getattr(F, f"conv_transpose{ndim}d")(xt, wt, bt, **options)
    assert_close(out, from_torch(out_t, first), F64)
    gx, gw, gb = torch_grads(out_t, dout, first, xt, wt, bt)
    assert_close(dx, from_torch(gx, first), F64)
    assert_close(dw, from_torch(gw, first, weight=True), F64)
    assert_close(db, gb.numpy(), F64)


# -------------------------------------------------------------------------------------------------- pooling


def check_pool(out, cache, dout, dx, out_t, xt, first: bool, indices_t=None) -> None:
    """Forward output (NaN where PyTorch has NaN), winners and the input gradient against PyTorch's."""
    assert_close(out, from_torch(out_t, first), F64)
    if indices_t is not None:
        assert cache.indices.dtype == np.int64
        np.testing.assert_array_equal(cache.indices, from_torch(indices_t, first))
    (gx,) = torch_grads(out_t, dout, first, xt)
    assert_close(dx, from_torch(gx, first), F64)


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_max_pool(ndim, seed):
    rng, first, layout = case(ndim, seed, 3)
    kernel = ints(rng, 1, 3, ndim)
    stride = ints(rng, 1, 3, ndim) if seed % 4 else None  # None: the kernel size
    padding = tuple(int(rng.integers(k // 2 + 1)) for k in kernel)
    dilation, ceil_mode = ints(rng, 1, 2, ndim), seed < N_CASES // 2
    extents = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    spatial = spatial_shape(rng, extents, 6 if ndim == 1 else 2)
    x = values(rng, (2, 2, *spatial) if first else (2, *spatial, 2), ("randn", "ties", "nan")[seed % 3])
    options = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    out, cache = getattr(ref, f"max_pool{ndim}d_forward")(x, kernel, data_format=layout, **options)
    dout = rng.standard_normal(out.shape)
    dx = getattr(ref, f"max_pool{ndim}d_backward")(dout, cache)

    xt = to_torch(x, first)
    out_t, indices_t = getattr(F, f"max_pool{ndim}d")(xt, kernel, return_indices=True, **options)
    check_pool(out, cache, dout, dx, out_t, xt, first, indices_t)


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_avg_pool(ndim, seed):
    rng, first, layout = case(ndim, seed, 4)
    kernel = ints(rng, 1, 3, ndim)
    stride = ints(rng, 1, 3, ndim) if seed % 4 else None
    padding = tuple(int(rng.integers(k // 2 + 1)) for k in kernel)
    options = dict(stride=stride, padding=padding, ceil_mode=seed < N_CASES // 2, count_include_pad=seed % 3 != 0)
    if ndim == 3 and seed % 4 == 2:
        options["divisor_override"] = int(rng.choice([-3, 2, 5]))
    spatial = spatial_shape(rng, kernel, 6 if ndim == 1 else 2)
    x = rng.standard_normal((2, 2, *spatial) if first else (2, *spatial, 2))
    out, cache = getattr(ref, f"avg_pool{ndim}d_forward")(x, kernel, data_format=layout, **options)
    dout = rng.standard_normal(out.shape)
    dx = getattr(ref, f"avg_pool{ndim}d_backward")(dout, cache)

    xt = to_torch(x, first)
    out_t = getattr(F, f"avg_pool{ndim}d")(xt, kernel, **options)
    check_pool(out, cache, dout, dx, out_t, xt, first)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_adaptive_pool(kind, ndim, seed):
    rng, first, layout = case(ndim, seed, 5)
    spatial = ints(rng, 1, 9 if ndim == 1 else 5, ndim)
    # output sizes below, equal to and above the input's, some None (keep the input size)
    output_size = tuple(None if rng.random() < 0.25 else int(rng.integers(1, size + 3)) for size in spatial)
    x = values(rng, (2, 2, *spatial) if first else (2, *spatial, 2), ("randn", "ties", "nan")[seed % 3])
    out, cache = getattr(ref, f"adaptive_{kind}_pool{ndim}d_forward")(x, output_size, data_format=layout)
    dout = rng.standard_normal(out.shape)
    dx = getattr(ref, f"adaptive_{kind}_pool{ndim}d_backward")(dout, cache)

    xt = to_torch(x, first)
    torch_size = output_size
    if ndim == 1:  # PyTorch's 1-D adaptive pooling takes no None
        torch_size = spatial[0] if output_size[0] is None else output_size[0]
    if kind == "max":
        out_t, indices_t = getattr(F, f"adaptive_max_pool{ndim}d")(xt, torch_size, return_indices=True)
    else:
        out_t, indices_t = getattr(F, f"adaptive_avg_pool{ndim}d")(xt, torch_size), None
    check_pool(out, cache, dout, dx, out_t, xt, first, indices_t)


# ------------------------------------------------------------------------------ unfold / fold, im2col / col2im


def torch_unfold(xt, kernel, dilation, padding, stride):
    """PyTorch's unfold for (N, C, *spatial), 1 to 3 spatial axes: 2-D as is, 1-D on a unit height, 3-D as a
    grouped conv3d whose C * prod(k) one-hot kernels pick one offset each (row c * prod(k) + j)."""
    ndim = xt.ndim - 2
    if ndim == 2:
        return F.unfold(xt, kernel, dilation, padding, stride)
    if ndim == 1:
        return F.unfold(xt[:, :, None], (1, *kernel), (1, *dilation), (0, *padding), (1, *stride))
    n_offsets, c = int(np.prod(kernel)), xt.shape[1]
    one_hot = torch.eye(n_offsets, dtype=torch.float64).reshape(n_offsets, 1, *kernel).repeat(c, 1, 1, 1, 1)
    out = F.conv3d(xt, one_hot, stride=stride, padding=padding, dilation=dilation, groups=c)
    return out.reshape(out.shape[0], out.shape[1], -1)


def geometry(rng, spatial: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """kernel, dilation, padding, stride for ``spatial`` (PyTorch's unfold order); the kernel always fits."""
    ndim = len(spatial)
    while True:
        kernel, dilation, padding, stride = (ints(rng, lo, hi, ndim) for lo, hi in ((1, 3), (1, 2), (0, 1), (1, 2)))
        if all(d * (k - 1) + 1 <= s + 2 * p for k, d, p, s in zip(kernel, dilation, padding, spatial, strict=True)):
            return kernel, dilation, padding, stride


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("seed", range(N_CASES))
def test_unfold_and_fold(ndim, seed):
    rng = np.random.default_rng([6, ndim, seed])
    spatial = ints(rng, 2, 8 if ndim < 3 else 4, ndim)
    x = rng.standard_normal((2, int(rng.integers(1, 4)), *spatial))
    kernel, dilation, padding, stride = geometry(rng, spatial)
    cols = ref.unfold(x, kernel, dilation, padding, stride)
    dcols = rng.standard_normal(cols.shape)
    folded = ref.fold(dcols, spatial, kernel, dilation, padding, stride)

    xt = torch.tensor(x, requires_grad=True)
    cols_t = torch_unfold(xt, kernel, dilation, padding, stride)
    assert_close(cols, cols_t.detach().numpy(), F64)
    cols_t.backward(torch.tensor(dcols))  # unfold's gradient is fold
    assert_close(folded, xt.grad.numpy(), F64)
    if ndim == 2:
        fold_t = F.fold(torch.tensor(dcols), spatial, kernel, dilation, padding, stride)
        assert_close(folded, fold_t.numpy(), F64)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_im2col_and_col2im(ndim, seed):
    rng = np.random.default_rng([7, ndim, seed])
    spatial = ints(rng, 2, 8 if ndim < 3 else 4, ndim)
    channels = int(rng.integers(1, 4))
    x = rng.standard_normal((2, *spatial, channels))
    kernel, dilation, padding, stride = geometry(rng, spatial)
    options = dict(stride=stride, padding=padding, dilation=dilation)
    cols = ref.im2col(x, kernel, **options)
    dcols = rng.standard_normal(cols.shape)
    dx = ref.col2im(dcols, x.shape, kernel, **options)

    # the same windows from PyTorch's (N, C*K, L) columns: rows (n, l), columns (offset, c)
    xt = torch.tensor(np.ascontiguousarray(np.moveaxis(x, -1, 1)), requires_grad=True)
    cols_t = torch_unfold(xt, kernel, dilation, padding, stride)
    n_offsets = int(np.prod(kernel))
    as_rows = cols_t.reshape(2, channels, n_offsets, -1).permute(0, 3, 2, 1).reshape(cols.shape)
    assert_close(cols, as_rows.detach().numpy(), F64)
    as_rows.backward(torch.tensor(dcols))
    assert_close(dx, np.moveaxis(xt.grad.numpy(), 1, -1), F64)
