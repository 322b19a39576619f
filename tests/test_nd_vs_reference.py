"""Property tests for the 1-D and 3-D layer functions, adaptive pooling and the N-d unfold / fold and im2col /
col2im: the engine against the plain-loop reference.

Random small problems (the 3-D ones tiny: the reference loops are slow) over every option, float32 and float64,
channels-last and channels-first: conv1d / conv3d (stride, padding as an int, per axis, per side, 'valid' or
'same', dilation, groups incl. depthwise with a channel multiplier, bias None, (C_out,) or (1, ..., 1, C_out), and
in 1-D more input channels than the few-channel kernels take), conv_transpose1d / 3d (stride, padding,
output_padding, dilation, groups), max_pool1d / 3d (dilation, ceil_mode, ties and NaNs, ``cache.indices``),
avg_pool1d / 3d (ceil_mode, count_include_pad, divisor_override), adaptive average and max
pooling at 1, 2 and 3 spatial axes along each of the engine's three paths (every output size 1, output sizes that
divide the input, and the general windows: sizes that do not divide, sizes larger than the input, None entries),
unfold / fold and im2col / col2im at 1, 2 and 3 spatial axes. Forward outputs and every gradient, with their
shapes and dtypes; max values, winners and gathered columns exactly. The hyperparameters are passed positionally
(in torch.nn.functional's order) or by keyword. Also: a 1-D layer is the 2-D layer on a unit height, fold and
col2im are the adjoints of unfold and im2col, and pooling problems whose windows miss the input are rejected by
both implementations. Fixed problems check max pooling with kernels of 255 offsets and more and adaptive max
pooling with 255 input positions and more (where the winners no longer fit one byte).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from _helpers import RTOL, assert_close
from _strategies import DTYPES, SEEDS, pool_out_len
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import im2col_cnn as ic
import reference as ref
from im2col_cnn.geometry import tiles as conv_tiling

FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}  # rank -> (channels-last, -first)
MAX_SIZE = {1: 9, 2: 6, 3: 5}  # largest spatial size per axis
MAX_CHANNELS = {1: 6, 2: 4, 3: 4}  # grouped and depthwise
MAX_DENSE = {1: 8, 2: 4, 3: 4}  # ungrouped: over 6 input channels, 1-D reaches the column kernels (not planar)
MAX_DILATION = {1: 3, 2: 2, 3: 2}
ORDER = {  # the hyperparameters each engine forward takes positionally, in torch.nn.functional's order
    "conv": ("stride", "padding", "dilation", "groups"),
    "conv_transpose": ("stride", "padding", "output_padding", "groups", "dilation"),
    "max_pool": ("stride", "padding", "dilation", "ceil_mode"),
    "avg_pool": ("stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
}

LAYER = settings(max_examples=150, deadline=None)  # per rank: 300 problems per layer family


# ------------------------------------------------------------------------------------------- layouts


def to_first(a: np.ndarray) -> np.ndarray:
    """A channels-last activation (N, *spatial, C) as channels-first (N, C, *spatial)."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def to_last(a: np.ndarray, first: bool) -> np.ndarray:
    """An activation in its layout as channels-last."""
    return np.moveaxis(a, 1, -1) if first else a


def weight_first(w: np.ndarray) -> np.ndarray:
    """A channels-last weight (*k, b, a) in PyTorch's layout (a, b, *k)."""
    nd = w.ndim - 2
    return np.ascontiguousarray(w.transpose(nd + 1, nd, *range(nd)))


def layout(shape_last: tuple[int, ...], first: bool) -> tuple[int, ...]:
    """A channels-last shape (N, *spatial, C) in the call's layout."""
    return (shape_last[0], shape_last[-1], *shape_last[1:-1]) if first else tuple(shape_last)


# ------------------------------------------------------------------------------------------- strategies


@dataclass
class NdCase:
    """One drawn layer problem, arrays in the layout of ``kwargs['data_format']``.

    ``kwargs`` are the forward call's hyperparameters (the reference takes them by keyword; the engine by
    keyword, or positionally when ``positional``). ``out_shape`` is the spec's output shape in the call's
    layout, or None when the spec says the problem is invalid (a pooling window that covers no input).
    """

    layer: str  # e.g. 'conv3d', 'max_pool1d'
    x: np.ndarray
    kwargs: dict
    out_shape: tuple[int, ...] | None
    dout: np.ndarray | None
    dtype: type
    positional: bool
    w: np.ndarray | None = None
    b: np.ndarray | None = None
    second: object = None  # pooling's kernel_size or output_size

    @property
    def first(self) -> bool:
        return self.kwargs["data_format"][1] == "C"

    def lead(self, flat_bias: bool = False) -> tuple:
        """The leading positional arguments: x, w, b or x and the kernel / output size. ``flat_bias``: b as
        (C_out,), the only shape the reference takes."""
        if not self.layer.startswith("conv"):
            return (self.x, self.second)
        return (self.x, self.w, self.b.reshape(-1) if flat_bias and self.b is not None else self.b)

    def engine(self):
        """The engine's forward call: ``(out, cache)``."""
        forward = getattr(ic, f"{self.layer}_forward")
        if not self.positional:
            return forward(*self.lead(), **self.kwargs)
        hyper = dict(self.kwargs)
        data_format = hyper.pop("data_format")
        names = [k for k in ORDER[self.layer[:-2]] if k in hyper]  # avg_pool1d has no divisor_override
        return forward(*self.lead(), *(hyper.pop(k) for k in names), data_format=data_format)

    def reference(self):
        return getattr(ref, f"{self.layer}_forward")(*self.lead(flat_bias=True), **self.kwargs)


def api(draw, values: list[int]) -> object:
    """How a per-axis value is passed: an int when every axis agrees (sometimes), else a tuple."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


def ints(draw, lo: int, hi: int, n: int) -> list[int]:
    return [draw(st.integers(lo, hi)) for _ in range(n)]


@st.composite
def channel_groups(draw, ndim: int) -> tuple[int, int, int]:
    """(C_in, C_out, groups): dense (up to ``MAX_DENSE`` channels), grouped, or depthwise (groups == C_in,
    channel multiplier 1 or 2), these two with at most ``MAX_CHANNELS``."""
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    max_c = MAX_CHANNELS[ndim]
    if kind == "dense":
        return draw(st.integers(1, MAX_DENSE[ndim])), draw(st.integers(1, MAX_DENSE[ndim])), 1
    if kind == "grouped":
        g = draw(st.integers(2, max_c // 2))
        return g * draw(st.integers(1, max_c // g)), g * draw(st.integers(1, max_c // g)), g
    g = draw(st.integers(1, max_c))
    return g, g * draw(st.sampled_from([1, 2] if 2 * g <= max_c else [1])), g


def _arrays(draw, dt, x_last, w_last, c_out, out_last, first):
    """x, w (PyTorch's layout when channels-first), b (None, (C_out,) or (1, ..., 1, C_out)) and dout, from a
    seeded generator."""
    rng = np.random.default_rng(draw(SEEDS))
    x = rng.standard_normal(x_last).astype(dt)
    w = None if w_last is None else rng.standard_normal(w_last).astype(dt)
    bias = draw(st.sampled_from(["none", "flat", "broadcast"])) if c_out else "none"
    b = None if bias == "none" else rng.standard_normal(c_out).astype(dt)
    if bias == "broadcast":  # the drop-in APIs' (1, ..., 1, C_out)
        b = b.reshape((1,) * (len(x_last) - 1) + (c_out,))
    dout = None if out_last is None else rng.standard_normal(out_last).astype(dt)
    if first:
        x = to_first(x)
        w = None if w is None else weight_first(w)
        dout = None if dout is None else to_first(dout)
    return x, w, b, dout


@st.composite
def conv_cases(draw, ndim: int) -> NdCase:
    """conv1d / conv3d: padding as an int, per axis, per side, 'valid' or 'same' (stride 1), dilation, groups."""
    dt, first = draw(DTYPES), draw(st.booleans())
    c_in, c_out, groups = draw(channel_groups(ndim))
    kernel, dilation = ints(draw, 1, 3, ndim), ints(draw, 1, MAX_DILATION[ndim], ndim)
    stride = ints(draw, 1, 3, ndim)
    form = draw(st.sampled_from(["int", "axes", "pairs", "valid", "same"]))
    if form == "int":
        p = draw(st.integers(0, 2))
        padding, pads = p, [(p, p)] * ndim
    elif form == "axes":
        ps = ints(draw, 0, 2, ndim)
        padding, pads = tuple(ps), [(p, p) for p in ps]
    elif form == "pairs":
        pads = [tuple(ints(draw, 0, 2, 2)) for _ in range(ndim)]
        padding = tuple(pads)
    elif form == "valid":
        padding, pads = "valid", [(0, 0)] * ndim
    else:
        stride = [1] * ndim
        totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        padding, pads = "same", [(t // 2, t - t // 2) for t in totals]
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    spatial = [
        draw(st.integers(max(1, e - lo - hi), MAX_SIZE[ndim])) for e, (lo, hi) in zip(extents, pads, strict=True)
    ]
    out = [(n + lo + hi - e) // s + 1 for n, (lo, hi), e, s in zip(spatial, pads, extents, stride, strict=True)]
    batch = draw(st.integers(1, 2))
    out_last = (batch, *out, c_out)
    x, w, b, dout = _arrays(draw, dt, (batch, *spatial, c_in), (*kernel, c_in // groups, c_out), c_out, out_last, first)
    kwargs = dict(
        stride=api(draw, stride),
        padding=padding,
        dilation=api(draw, dilation),
        groups=groups,
        data_format=FORMATS[ndim][first],
    )
    return NdCase(f"conv{ndim}d", x, kwargs, layout(out_last, first), dout, dt, draw(st.booleans()), w=w, b=b)


@st.composite
def transpose_cases(draw, ndim: int) -> NdCase:
    """conv_transpose1d / 3d: stride, padding, output_padding (below stride or dilation), dilation, groups."""
    dt, first = draw(DTYPES), draw(st.booleans())
    c_in, c_out, groups = draw(channel_groups(ndim))
    kernel, dilation = ints(draw, 1, 3, ndim), ints(draw, 1, MAX_DILATION[ndim], ndim)
    stride = ints(draw, 1, 3 if ndim == 1 else 2, ndim)
    spatial = ints(draw, 1, 4 if ndim == 1 else 3, ndim)
    extra = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)]
    full = [
        (n - 1) * s + d * (k - 1) + 1 + op
        for n, s, d, k, op in zip(spatial, stride, dilation, kernel, extra, strict=True)
    ]
    pads = [draw(st.integers(0, min(2, (f - 1) // 2))) for f in full]
    out = [f - 2 * p for f, p in zip(full, pads, strict=True)]
    batch = draw(st.integers(1, 2))
    out_last = (batch, *out, c_out)
    x, w, b, dout = _arrays(draw, dt, (batch, *spatial, c_in), (*kernel, c_out // groups, c_in), c_out, out_last, first)
    kwargs = dict(
        stride=api(draw, stride),
        padding=api(draw, pads),
        output_padding=api(draw, extra),
        groups=groups,
        dilation=api(draw, dilation),
        data_format=FORMATS[ndim][first],
    )
    layer = f"conv_transpose{ndim}d"
    return NdCase(layer, x, kwargs, layout(out_last, first), dout, dt, draw(st.booleans()), w=w, b=b)


def windows_reach_input(size: int, out: int, k: int, s: int, p: int, d: int) -> bool:
    """Whether every one of ``out`` windows has a tap inside [0, size)."""
    return all(any(0 <= o * s - p + i * d < size for i in range(k)) for o in range(out))


def max_values(draw, x: np.ndarray) -> np.ndarray:
    """Max-pool input: as drawn (normal), integer-valued in [-2, 2] (many ties), or with NaNs."""
    values = draw(st.sampled_from(["normal", "ties", "nan"]))
    rng = np.random.default_rng(draw(SEEDS))
    if values == "ties":
        return rng.integers(-2, 3, size=x.shape).astype(x.dtype)
    if values == "nan":
        x = x.copy()
        x[rng.random(x.shape) < 0.2] = np.nan
    return x


@st.composite
def pool_cases(draw, kind: str, ndim: int) -> NdCase:
    """max_pool1d / 3d (``kind='max'``: dilation, ceil_mode, ties, NaNs) or avg_pool1d / 3d (ceil_mode,
    count_include_pad, divisor_override in 3-D). Padding at most half the kernel; now and then (dilated, in
    ceil mode) a window covers no input: an invalid problem."""
    dt, first = draw(DTYPES), draw(st.booleans())
    kernel = ints(draw, 1, 4 if ndim == 1 else 3, ndim)
    dilation = ints(draw, 1, MAX_DILATION[ndim], ndim) if kind == "max" else [1] * ndim
    pads = [draw(st.integers(0, k // 2)) for k in kernel]
    ceil_mode = draw(st.booleans())
    stride = ints(draw, 1, 3, ndim) if draw(st.booleans()) else None
    steps = stride or kernel
    need = [d * (k - 1) + 1 - 2 * p for k, d, p in zip(kernel, dilation, pads, strict=True)]
    spatial = [draw(st.integers(max(1, m), max(1, m, MAX_SIZE[ndim]))) for m in need]
    geometry = list(zip(spatial, kernel, steps, pads, dilation, strict=True))
    out = [pool_out_len(n, k, s, p, d, ceil_mode) for n, k, s, p, d in geometry]
    valid = all(windows_reach_input(n, o, k, s, p, d) for (n, k, s, p, d), o in zip(geometry, out, strict=True))
    batch, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    out_last = (batch, *out, c) if valid else None
    x, _, _, dout = _arrays(draw, dt, (batch, *spatial, c), None, 0, out_last, first)
    kwargs = dict(stride=None if stride is None else api(draw, stride), padding=api(draw, pads))
    if kind == "max":
        x = max_values(draw, x)
        kwargs |= dict(dilation=api(draw, dilation), ceil_mode=ceil_mode)
    else:
        kwargs |= dict(ceil_mode=ceil_mode, count_include_pad=draw(st.booleans()))
        if ndim == 3:
            kwargs["divisor_override"] = draw(st.sampled_from([None, None, 1, 2, 3, 7, -2]))
    kwargs["data_format"] = FORMATS[ndim][first]
    out_shape = None if out_last is None else layout(out_last, first)
    layer = f"{kind}_pool{ndim}d"
    return NdCase(layer, x, kwargs, out_shape, dout, dt, draw(st.booleans()), second=api(draw, kernel))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def adaptive_cases(draw, kind: str, ndim: int, path: str) -> NdCase:
    """Adaptive pooling along one of the engine's paths: 'global' (every output size 1), 'dividing' (every
    size divides its axis, not all 1) or 'general' (some size does not divide: smaller, or larger than the
    input). Output sizes are an int or a tuple, None entries keeping an axis' input size."""
    dt, first = draw(DTYPES), draw(st.booleans())
    spatial = ints(draw, 1, MAX_SIZE[ndim], ndim)
    if path == "global":
        sizes = [1] * ndim
    elif path == "dividing":
        sizes = [draw(st.sampled_from(divisors(n))) for n in spatial]
        assume(any(o != 1 for o in sizes))
    else:
        sizes = [draw(st.integers(1, n + 3)) for n in spatial]
        assume(any(n % o for n, o in zip(spatial, sizes, strict=True)))
    # None entries where an axis keeps its size; an int when every axis agrees (sometimes)
    entries = [None if o == n and draw(st.booleans()) else o for n, o in zip(spatial, sizes, strict=True)]
    output_size = sizes[0] if len(set(entries)) == 1 and entries[0] is not None and draw(st.booleans()) else entries
    if not isinstance(output_size, int):
        output_size = draw(st.sampled_from([tuple, list]))(output_size)
    batch, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    out_last = (batch, *sizes, c)
    x, _, _, dout = _arrays(draw, dt, (batch, *spatial, c), None, 0, out_last, first)
    if kind == "max":
        x = max_values(draw, x)
    kwargs = dict(data_format=FORMATS[ndim][first])
    layer = f"adaptive_{kind}_pool{ndim}d"
    return NdCase(layer, x, kwargs, layout(out_last, first), dout, dt, False, second=output_size)


# ------------------------------------------------------------------------------------------- checks


def forward_both(case: NdCase):
    """Both forward calls; both must raise ValueError exactly when the problem is invalid (then None)."""
    results = []
    for call in (case.engine, case.reference):
        try:
            results.append(call())
        except ValueError as exc:
            results.append(exc)
    engine, reference = results
    rejected = (isinstance(engine, ValueError), isinstance(reference, ValueError))
    invalid = case.out_shape is None
    assert rejected == (invalid, invalid), (
        f"{case.layer} {case.kwargs}: engine {engine!r:.200}, reference {reference!r:.200}"
    )
    return None if invalid else (engine, reference)


def check_conv_grads(case: NdCase, cache, rcache) -> None:
    """dx, dw, db against the reference (values, dtypes, shapes: dx like x, dw like w, db like b or (C_out,)),
    and ``need_dx=False``."""
    backward = getattr(ic, f"{case.layer}_backward")
    grads = backward(case.dout, cache)
    rgrads = getattr(ref, f"{case.layer}_backward")(case.dout, rcache)
    c_out = case.out_shape[1 if case.first else -1]
    b_shape = (c_out,) if case.b is None else case.b.shape
    assert grads[0].shape == case.x.shape and grads[1].shape == case.w.shape and grads[2].shape == b_shape
    for g, rg in zip(grads, rgrads, strict=True):
        assert_close(g.reshape(rg.shape), rg, case.dtype)
    dx, dw, db = backward(case.dout, cache, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dw, grads[1])
    np.testing.assert_array_equal(db, grads[2])


def check_max_winners(case: NdCase, out: np.ndarray, indices: np.ndarray, rindices: np.ndarray) -> None:
    """``cache.indices``: int64, shaped like out, exactly the reference's, each pointing at its window's value."""
    assert indices.dtype == np.int64 and indices.shape == out.shape
    np.testing.assert_array_equal(indices, rindices)
    x, o, idx = (to_last(a, case.first) for a in (case.x, out, indices))
    n, c = x.shape[0], x.shape[-1]
    picked = np.take_along_axis(x.reshape(n, -1, c), idx.reshape(n, -1, c), axis=1)
    np.testing.assert_array_equal(picked.reshape(o.shape), o)  # NaN where out is NaN


def assert_adjoint(a, b, c, d, dtype) -> None:
    """<a, b> == <c, d> (both in float64) to the rounding of ``dtype``'s sums."""
    lhs = np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64))
    rhs = np.vdot(np.asarray(c, np.float64), np.asarray(d, np.float64))
    scale = max(1.0, float(np.vdot(np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64)))))
    assert abs(lhs - rhs) <= RTOL[np.dtype(dtype)] * scale, (lhs, rhs)


# ------------------------------------------------------------------------------------------- convolution


@pytest.mark.parametrize("ndim", [1, 3])
@LAYER
@given(data=st.data())
def test_conv(ndim, data):
    case = data.draw(conv_cases(ndim))
    (out, cache), (rout, rcache) = forward_both(case)
    assert out.shape == case.out_shape and out.dtype == case.dtype
    if case.kwargs["padding"] == "same":  # the output has the input's size
        spatial = slice(2, None) if case.first else slice(1, -1)
        assert out.shape[spatial] == case.x.shape[spatial]
    assert_close(out, rout, case.dtype)
    check_conv_grads(case, cache, rcache)


@pytest.mark.parametrize("ndim", [1, 3])
@LAYER
@given(data=st.data())
def test_conv_transpose(ndim, data):
    case = data.draw(transpose_cases(ndim))
    (out, cache), (rout, rcache) = forward_both(case)
    assert out.shape == case.out_shape and out.dtype == case.dtype
    assert_close(out, rout, case.dtype)
    check_conv_grads(case, cache, rcache)


# ------------------------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("ndim", [1, 3])
@LAYER
@given(data=st.data())
def test_max_pool(ndim, data):
    case = data.draw(pool_cases("max", ndim))
    results = forward_both(case)
    assume(results is not None)
    (out, cache), (rout, rcache) = results
    assert out.shape == case.out_shape and out.dtype == case.dtype
    np.testing.assert_array_equal(out, rout)  # a max is exact (NaN in the same places)
    check_max_winners(case, out, cache.indices, rcache.indices)
    dx = getattr(ic, f"{case.layer}_backward")(case.dout, cache)
    assert dx.shape == case.x.shape and dx.dtype == case.dtype
    assert_close(dx, getattr(ref, f"{case.layer}_backward")(case.dout, rcache), case.dtype)


@pytest.mark.parametrize("ndim", [1, 3])
@LAYER
@given(data=st.data())
def test_avg_pool(ndim, data):
    case = data.draw(pool_cases("avg", ndim))
    results = forward_both(case)
    assume(results is not None)
    (out, cache), (rout, rcache) = results
    assert out.shape == case.out_shape and out.dtype == case.dtype
    assert_close(out, rout, case.dtype)
    dx = getattr(ic, f"{case.layer}_backward")(case.dout, cache)
    assert dx.shape == case.x.shape and dx.dtype == case.dtype
    assert_close(dx, getattr(ref, f"{case.layer}_backward")(case.dout, rcache), case.dtype)


@pytest.mark.parametrize("path", ["global", "dividing", "general"])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_adaptive_pool(ndim, kind, path, data):
    case = data.draw(adaptive_cases(kind, ndim, path))
    (out, cache), (rout, rcache) = forward_both(case)
    assert out.shape == case.out_shape and out.dtype == case.dtype
    if kind == "max":
        np.testing.assert_array_equal(out, rout)
        check_max_winners(case, out, cache.indices, rcache.indices)
    else:
        assert_close(out, rout, case.dtype)
    dx = getattr(ic, f"{case.layer}_backward")(case.dout, cache)
    assert dx.shape == case.x.shape and dx.dtype == case.dtype
    assert_close(dx, getattr(ref, f"{case.layer}_backward")(case.dout, rcache), case.dtype)


# ------------------------------------------------------------------------------ unfold / fold, im2col / col2im


@st.composite
def column_geometry(draw, ndim: int, sides: bool):
    """(spatial, kernel, dilation, pads, stride), every kernel fitting its padded axis; ``pads`` one (lo, hi)
    pair per axis, both equal unless ``sides``."""
    kernel, dilation, stride = ints(draw, 1, 3, ndim), ints(draw, 1, 2, ndim), ints(draw, 1, 2, ndim)
    if sides:
        pads = [tuple(ints(draw, 0, 2, 2)) for _ in range(ndim)]
    else:
        pads = [(p, p) for p in ints(draw, 0, 1, ndim)]
    need = [d * (k - 1) + 1 - lo - hi for k, d, (lo, hi) in zip(kernel, dilation, pads, strict=True)]
    spatial = [draw(st.integers(max(1, m), MAX_SIZE[ndim])) for m in need]
    return spatial, kernel, dilation, pads, stride


def column_out(spatial, kernel, dilation, pads, stride) -> list[int]:
    geometry = zip(spatial, kernel, dilation, pads, stride, strict=True)
    return [(n + lo + hi - d * (k - 1) - 1) // s + 1 for n, k, d, (lo, hi), s in geometry]


@pytest.mark.parametrize("ndim", [1, 2, 3])
@settings(max_examples=100, deadline=None)
@given(data=st.data(), dt=DTYPES, seed=SEEDS)
def test_unfold_and_fold(ndim, data, dt, seed):
    spatial, kernel, dilation, pads, stride = data.draw(column_geometry(ndim, sides=False))
    args = [api(data.draw, v) for v in (kernel, dilation, [p for p, _ in pads], stride)]  # PyTorch's order
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    x = rng.standard_normal((n, c, *spatial)).astype(dt)
    cols = ic.unfold(x, *args)
    length = math.prod(column_out(spatial, kernel, dilation, pads, stride))
    assert cols.shape == (n, c * math.prod(kernel), length) and cols.dtype == dt
    np.testing.assert_array_equal(cols, ref.unfold(x, *args))  # a gather: exactly the reference's entries

    dcols = rng.standard_normal(cols.shape).astype(dt)
    size = tuple(spatial)
    if len(set(size)) == 1 and (ndim == 2 or not isinstance(args[0], int)) and data.draw(st.booleans()):
        size = size[0]  # an int output_size: the rank comes from kernel_size (2 when that is an int too)
    folded = ic.fold(dcols, size, *args)
    assert folded.shape == x.shape and folded.dtype == dt
    assert_close(folded, ref.fold(dcols, tuple(spatial), *args), dt)
    assert_adjoint(cols, dcols, x, folded, dt)  # fold is the adjoint of unfold


@pytest.mark.parametrize("ndim", [1, 2, 3])
@settings(max_examples=100, deadline=None)
@given(data=st.data(), dt=DTYPES, seed=SEEDS, pad_value=st.sampled_from([0.0, -np.inf, 2.5]))
def test_im2col_and_col2im(ndim, data, dt, seed, pad_value):
    spatial, kernel, dilation, pads, stride = data.draw(column_geometry(ndim, sides=True))
    form = data.draw(st.sampled_from(["int", "axes", "pairs"]))
    if form != "pairs":  # symmetric padding: the low side of each drawn pair on both sides
        pads = [(lo, lo) for lo, _ in pads] if form == "axes" else [(pads[0][0],) * 2] * ndim
        need = [d * (k - 1) + 1 - lo - hi for k, d, (lo, hi) in zip(kernel, dilation, pads, strict=True)]
        spatial = [max(n, m) for n, m in zip(spatial, need, strict=True)]
    padding = {"int": pads[0][0], "axes": tuple(lo for lo, _ in pads), "pairs": tuple(pads)}[form]
    kw = dict(stride=api(data.draw, stride), padding=padding, dilation=api(data.draw, dilation))
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    x = rng.standard_normal((n, *spatial, c)).astype(dt)
    cols = ic.im2col(x, api(data.draw, kernel), pad_value=pad_value, **kw)
    out = column_out(spatial, kernel, dilation, pads, stride)
    assert cols.shape == (n * math.prod(out), math.prod(kernel) * c) and cols.dtype == dt
    # the reference pads both sides alike: give it the input padded here, with no padding of its own
    x_pad = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=pad_value)
    ref_kw = dict(stride=stride, dilation=dilation)
    np.testing.assert_array_equal(cols, ref.im2col(x_pad, kernel, **ref_kw))

    dcols = rng.standard_normal(cols.shape).astype(dt)
    dx = ic.col2im(dcols, x.shape, kernel, **kw)
    assert dx.shape == x.shape and dx.dtype == dt
    inside = tuple(slice(lo, lo + size) for (lo, _), size in zip(pads, spatial, strict=True))
    assert_close(dx, ref.col2im(dcols, x_pad.shape, kernel, **ref_kw)[(slice(None), *inside)], dt)
    zero_padded = cols if pad_value == 0 else ic.im2col(x, kernel, **kw)
    assert_adjoint(zero_padded, dcols, x, dx, dt)  # col2im is the adjoint of im2col


# ------------------------------------------------------------------------ 1-D == 2-D with a unit height


def with_unit_axis(kwargs: dict) -> dict:
    """A 1-D call's hyperparameters for the 2-D call with a unit height in front."""
    lifted = dict(kwargs, data_format=FORMATS[2][kwargs["data_format"][1] == "C"])
    for key, unit in (("stride", 1), ("dilation", 1), ("padding", 0), ("output_padding", 0)):
        value = kwargs.get(key)
        if value is None or isinstance(value, str):
            continue
        value = tuple(value) if np.ndim(value) else (value,)
        lifted[key] = ((unit, unit) if np.ndim(value[0]) else unit, *value)
    return lifted


STRATEGIES_1D = {
    "conv": lambda: conv_cases(1),
    "conv_transpose": lambda: transpose_cases(1),
    "max_pool": lambda: pool_cases("max", 1),
    "avg_pool": lambda: pool_cases("avg", 1),
}


@pytest.mark.parametrize("family", list(STRATEGIES_1D))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_a_1d_layer_is_the_2d_layer_on_a_unit_height(family, data):
    case = data.draw(STRATEGIES_1D[family]())
    assume(case.out_shape is not None)
    axis = 2 if case.first else 1

    def lift(a):
        return np.expand_dims(a, axis)

    out, cache = case.engine()
    kwargs2 = with_unit_axis(case.kwargs)
    if family.startswith("conv"):
        w2 = np.expand_dims(case.w, 2 if case.first else 0)  # (a, b, 1, k) or (1, k, b, a)
        b = None if case.b is None else case.b.reshape(-1)
        out2, cache2 = getattr(ic, f"{family}2d_forward")(lift(case.x), w2, b, **kwargs2)
    else:
        kernel = (1, *np.atleast_1d(case.second))
        out2, cache2 = getattr(ic, f"{family}2d_forward")(lift(case.x), kernel, **kwargs2)
    assert out2.dtype == out.dtype
    assert_close(lift(out), out2, case.dtype)
    if family == "max_pool":
        np.testing.assert_array_equal(lift(out), out2)
        np.testing.assert_array_equal(lift(cache.indices), cache2.indices)  # h * W + w with h = 0
    grads = getattr(ic, f"{family}1d_backward")(case.dout, cache)
    grads2 = getattr(ic, f"{family}2d_backward")(lift(case.dout), cache2)
    if family.startswith("conv"):
        assert_close(lift(grads[0]), grads2[0], case.dtype)
        assert_close(np.expand_dims(grads[1], 2 if case.first else 0), grads2[1], case.dtype)
        assert_close(grads[2].reshape(-1), grads2[2], case.dtype)
    else:
        assert_close(lift(grads), grads2, case.dtype)


# ---------------------------------------------------------------- winners stored in wider codes, fixed problems


@pytest.mark.parametrize(
    ("x_shape", "kernel", "options"),
    [
        ((2, 600, 2), 255, dict(stride=100)),  # 255 offsets: the largest one-byte code
        ((2, 600, 2), 256, dict(stride=90, padding=128)),
        ((1, 700, 1), 100, dict(stride=150, dilation=3, ceil_mode=True)),  # 100 offsets spanning 298 positions
        ((1, 5, 7, 9, 2), (3, 5, 17), dict(stride=(1, 2, 1), padding=(1, 2, 8))),  # 255 offsets
        ((1, 4, 9, 8, 2), (4, 8, 8), dict(stride=(1, 1, 2), padding=(0, 4, 0), ceil_mode=True)),  # 256
        ((1, 7, 7, 8, 1), 7, dict(stride=1, padding=(3, 0, 1))),  # 343
    ],
)
@pytest.mark.parametrize("values", ["ties", "nan"])
@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
def test_max_pool_with_many_offsets(x_shape, kernel, options, values, first):
    """Kernels of 255 offsets and more (winner codes of one byte, then two), overlapping or not, in both layouts."""
    ndim = len(x_shape) - 2
    rng = np.random.default_rng(x_shape[1] + len(values))
    x = rng.integers(-3, 3, size=x_shape).astype(np.float32)
    if values == "nan":
        x.flat[rng.choice(x.size, 4, replace=False)] = np.nan
    x = to_first(x) if first else x
    kw = dict(options, data_format=FORMATS[ndim][first])
    out, cache = getattr(ic, f"max_pool{ndim}d_forward")(x, kernel, **kw)
    rout, rcache = getattr(ref, f"max_pool{ndim}d_forward")(x, kernel, **kw)
    np.testing.assert_array_equal(out, rout)
    case = NdCase(f"max_pool{ndim}d", x, kw, out.shape, None, np.float32, False)
    check_max_winners(case, out, cache.indices, rcache.indices)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = getattr(ic, f"max_pool{ndim}d_backward")(dout, cache)
    assert_close(dx, getattr(ref, f"max_pool{ndim}d_backward")(dout, rcache), np.float32)


@pytest.mark.parametrize(
    ("x_shape", "output_size"),
    [
        ((2, 255, 2), 7),  # 255 input positions: the largest one-byte winner index
        ((2, 256, 2), 9),
        ((1, 257, 3), (300,)),  # larger than the input
        ((1, 5, 51, 2), (3, 7)),  # 255
        ((1, 3, 5, 17, 2), (2, 3, None)),  # 255
        ((1, 4, 8, 8, 2), (3, 5, 3)),  # 256
    ],
)
@pytest.mark.parametrize("values", ["ties", "nan"])
@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
def test_adaptive_max_pool_with_many_input_positions(x_shape, output_size, values, first):
    """Adaptive max pooling's winners around the one-byte limit of the flat input index, in both layouts."""
    ndim = len(x_shape) - 2
    rng = np.random.default_rng(x_shape[1] + len(values))
    x = rng.integers(-3, 3, size=x_shape).astype(np.float64)
    if values == "nan":
        x.flat[rng.choice(x.size, 4, replace=False)] = np.nan
    x = to_first(x) if first else x
    kw = dict(data_format=FORMATS[ndim][first])
    out, cache = getattr(ic, f"adaptive_max_pool{ndim}d_forward")(x, output_size, **kw)
    rout, rcache = getattr(ref, f"adaptive_max_pool{ndim}d_forward")(x, output_size, **kw)
    np.testing.assert_array_equal(out, rout)
    case = NdCase(f"adaptive_max_pool{ndim}d", x, kw, out.shape, None, np.float64, False)
    check_max_winners(case, out, cache.indices, rcache.indices)
    dout = rng.standard_normal(out.shape)
    dx = getattr(ic, f"adaptive_max_pool{ndim}d_backward")(dout, cache)
    assert_close(dx, getattr(ref, f"adaptive_max_pool{ndim}d_backward")(dout, rcache), np.float64)


# A depthwise convolution in channels-first layout whose windows (or one tile's windows) read only padding: the
# input slab such a tile reads is empty. Found by the hypothesis test above (the first case, verbatim).
PADDING_ONLY = [
    ("conv3d", (1, 3, 1, 1, 3), {"stride": (3, 1, 1), "padding": ((2, 0), (0, 1), (0, 1)), "dilation": (1, 1, 2)}),
    ("conv3d", (2, 4, 2, 3, 3), {"stride": (3, 1, 1), "padding": ((3, 3), (1, 1), (0, 0)), "dilation": 1}),
    ("conv1d", (2, 4, 5), {"stride": 4, "padding": ((6, 0),), "dilation": 1}),
]


@pytest.mark.parametrize("layer, shape, kwargs", PADDING_ONLY)
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_depthwise_channels_first_windows_that_read_only_padding(layer, shape, kwargs, split, bias, monkeypatch):
    if split:  # tiles of one output position each: some read only padding, others do not
        monkeypatch.setattr(conv_tiling, "BLOCK_BYTES", 1)
        monkeypatch.setattr(conv_tiling, "MIN_TILE_POSITIONS", 1)
    rng = np.random.default_rng(0)
    c = shape[1]
    x = rng.standard_normal(shape)
    w = rng.standard_normal((c, 1, *(1,) * (len(shape) - 2)))
    b = rng.standard_normal(c) if bias else None
    fmt = "NCW" if len(shape) == 3 else "NCDHW"
    out, cache = getattr(ic, f"{layer}_forward")(x, w, b, **kwargs, groups=c, data_format=fmt)
    rout, rcache = getattr(ref, f"{layer}_forward")(x, w, b, **kwargs, groups=c, data_format=fmt)
    assert out.shape == rout.shape
    assert np.any(rout == (0.0 if b is None else b.reshape(c, *(1,) * (len(shape) - 2))))  # padding-only windows
    assert_close(out, rout, np.float64)
    dout = rng.standard_normal(out.shape)
    grads = getattr(ic, f"{layer}_backward")(dout, cache)
    rgrads = getattr(ref, f"{layer}_backward")(dout, rcache)
    for g, rg in zip(grads, rgrads, strict=True):
        assert_close(g.reshape(rg.shape), rg, np.float64)
