"""Hypothesis strategies for small, valid sliding-window problems.

Strategies draw the geometry (shapes, kernel, stride, padding, dtype) and a seed; the arrays themselves come
from a NumPy generator seeded with it, which is much faster than drawing every element through Hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from _helpers import out_size
from hypothesis import strategies as st

DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)


@dataclass
class Case:
    """One drawn problem. ``stride``/``padding``/``kernel_size`` are as passed to the API (int or pair);
    ``sh, sw``, ``ph, pw``, ``kh, kw`` are the normalized per-axis values."""

    x: np.ndarray
    dout: np.ndarray
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    kernel_size: object
    stride: object
    padding: object
    dtype: type
    w: np.ndarray | None = None
    b: np.ndarray | None = None

    @property
    def out_hw(self) -> tuple[int, int]:
        _, h, w, _ = self.x.shape
        return out_size(h, self.kh, self.sh, self.ph), out_size(w, self.kw, self.sw, self.pw)


def _as_api(draw, a: int, b: int) -> object:
    """How a per-axis pair is passed: an int when both axes agree (sometimes), else a tuple."""
    if a == b and draw(st.booleans()):
        return a
    return (a, b)


@st.composite
def conv_cases(draw, dtype=DTYPES) -> Case:
    """conv2d problems: N 1-3, H/W 1-7, C_in/C_out 1-3, rectangular kernels that fit the padded input,
    strides 1-3 and paddings 0-2 per axis, bias None, (C_out,) or (1, 1, 1, C_out)."""
    dt = draw(dtype)
    n, c, co = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, min(h + 2 * ph, 7))), draw(st.integers(1, min(w + 2 * pw, 7)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    bias = draw(st.sampled_from(["none", "flat", "4d"]))
    rng = np.random.default_rng(draw(SEEDS))
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    wt = rng.standard_normal((kh, kw, c, co)).astype(dt)
    b = {"none": None, "flat": rng.standard_normal(co), "4d": rng.standard_normal((1, 1, 1, co))}[bias]
    b = None if b is None else b.astype(dt)
    ho, wo = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    dout = rng.standard_normal((n, ho, wo, co)).astype(dt)
    geometry = dict(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw)
    api = dict(kernel_size=_as_api(draw, kh, kw), stride=_as_api(draw, sh, sw), padding=_as_api(draw, ph, pw))
    return Case(x, dout, **geometry, **api, dtype=dt, w=wt, b=b)


@st.composite
def pool_cases(draw, dtype=DTYPES) -> Case:
    """Pooling problems (modern API): padding <= kernel // 2 per axis, kernel fits the padded input,
    stride None (= kernel), an int, or a pair."""
    dt = draw(dtype)
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, min(2, kh // 2))), draw(st.integers(0, min(2, kw // 2)))
    h, w = draw(st.integers(max(1, kh - 2 * ph), 7)), draw(st.integers(max(1, kw - 2 * pw), 7))
    if draw(st.booleans()):
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        stride = _as_api(draw, sh, sw)
    else:
        sh, sw, stride = kh, kw, None
    rng = np.random.default_rng(draw(SEEDS))
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    dout = rng.standard_normal((n, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw), c)).astype(dt)
    geometry = dict(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw)
    api = dict(kernel_size=_as_api(draw, kh, kw), stride=stride, padding=_as_api(draw, ph, pw))
    return Case(x, dout, **geometry, **api, dtype=dt)


@dataclass
class DropInCase:
    """A drop-in ``forward`` problem: square window ``f``, int ``pad`` and ``stride``; W and b for conv."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    f: int
    pad: int
    stride: int
    dz_conv: np.ndarray
    dz_pool: np.ndarray
    dtype: type


@st.composite
def dropin_cases(draw, dtype=DTYPES) -> DropInCase:
    """Drop-in problems: N 1-3, H/W 1-7, C/C_out 1-3, f fits the zero-padded input, pad 0-2, stride 1-3."""
    dt = draw(dtype)
    n, c, co = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    pad, stride = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    f = draw(st.integers(1, min(h, w) + 2 * pad))
    rng = np.random.default_rng(draw(SEEDS))
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    wt = rng.standard_normal((f, f, c, co)).astype(dt)
    b = rng.standard_normal((1, 1, 1, co)).astype(dt)
    ho, wo = out_size(h, f, stride, pad), out_size(w, f, stride, pad)
    dz_conv = rng.standard_normal((n, ho, wo, co)).astype(dt)
    dz_pool = rng.standard_normal((n, ho, wo, c)).astype(dt)
    return DropInCase(x, wt, b, f, pad, stride, dz_conv, dz_pool, dt)


# --- the general options: conv2d, conv_transpose2d and pooling ------------------------------------------------------
#
# These strategies also produce some invalid problems on purpose (an input one row too short for the dilated
# kernel, 'same' with stride > 1, an output_padding too large, pooling padding over half the kernel, ...). For
# those ``out_shape`` is None: the tests check that the engine and the reference both reject them.

LAYOUTS = st.sampled_from(["NHWC", "NCHW"])


@dataclass
class GeneralCase:
    """One drawn problem with the general options, arrays in the layout of ``data_format``.

    ``kwargs`` are the keyword arguments of the forward call (the positional ones are ``x``, ``w``, ``b`` for
    convolutions and ``x``, ``kernel_size`` for pooling). ``out_shape`` is the expected output shape in the
    call's layout, worked out here from the spec's formulas, or None when the spec says the call is invalid.
    """

    x: np.ndarray
    kwargs: dict
    out_shape: tuple[int, ...] | None
    dout: np.ndarray | None
    dtype: type
    data_format: str
    w: np.ndarray | None = None
    b: np.ndarray | None = None
    kernel_size: object = None

    @property
    def valid(self) -> bool:
        return self.out_shape is not None


def to_layout(shape_nhwc: tuple[int, int, int, int], data_format: str) -> tuple[int, int, int, int]:
    """An (N, H, W, C) shape in ``data_format``."""
    n, h, w, c = shape_nhwc
    return (n, c, h, w) if data_format == "NCHW" else (n, h, w, c)


def _size(draw, need: int, extra: int = 3) -> int:
    """An input length >= ``need`` (at least 1), or now and then one short of it (an invalid problem)."""
    if need >= 2 and draw(st.integers(0, 11)) == 0:
        return need - 1
    lo = max(1, need)
    return draw(st.integers(lo, lo + extra))


@st.composite
def channel_groups(draw) -> tuple[int, int, int]:
    """(C_in, C_out, groups): dense (groups 1), grouped (2-3 groups of 1-2 channels each side), or depthwise
    (groups == C_in, channel multiplier 1 or 2)."""
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if kind == "dense":
        return draw(st.integers(1, 3)), draw(st.integers(1, 3)), 1
    if kind == "grouped":
        g = draw(st.integers(2, 3))
        return g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2)), g
    g = draw(st.integers(1, 4))
    return g, g * draw(st.sampled_from([1, 2])), g


def _arrays(draw, dt, x_shape, w_shape, c_out, out_shape):
    """x, w, b (None or (C_out,)) and dout (None without an output), from a seeded NumPy generator."""
    rng = np.random.default_rng(draw(SEEDS))
    x = rng.standard_normal(x_shape).astype(dt)
    w = None if w_shape is None else rng.standard_normal(w_shape).astype(dt)
    b = rng.standard_normal(c_out).astype(dt) if c_out and draw(st.booleans()) else None
    dout = None if out_shape is None else rng.standard_normal(out_shape).astype(dt)
    return x, w, b, dout


@st.composite
def general_conv_cases(draw, dtype=DTYPES) -> GeneralCase:
    """conv2d problems over every option: stride, padding as an int, a pair, ((t, b), (l, r)), 'valid' or 'same',
    dilation, groups (dense, grouped, depthwise), data_format, bias None or (C_out,)."""
    dt, fmt = draw(dtype), draw(LAYOUTS)
    c_in, c_out, groups = draw(channel_groups())
    n = draw(st.integers(1, 2))
    kh, kw, dh, dw = (draw(st.integers(1, 3)) for _ in range(4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    form = draw(st.sampled_from(["int", "pair", "pairs", "valid", "same"]))
    if form == "int":
        padding = draw(st.integers(0, 2))
        pads = (padding,) * 4
    elif form == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        pads = (padding[0], padding[0], padding[1], padding[1])
    elif form == "pairs":
        pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
        padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    elif form == "valid":
        padding, pads = "valid", (0, 0, 0, 0)
    else:
        padding = "same"
        if draw(st.integers(0, 5)) > 0:  # mostly stride 1; otherwise an invalid problem
            sh = sw = 1
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h, w = _size(draw, ext_h - pads[0] - pads[1]), _size(draw, ext_w - pads[2] - pads[3])
    valid = ext_h <= h + pads[0] + pads[1] and ext_w <= w + pads[2] + pads[3]
    valid = valid and not (padding == "same" and (sh, sw) != (1, 1))
    out_shape = None
    if valid:
        ho = (h + pads[0] + pads[1] - ext_h) // sh + 1
        wo = (w + pads[2] + pads[3] - ext_w) // sw + 1
        out_shape = to_layout((n, ho, wo, c_out), fmt)
    w_shape = (c_out, c_in // groups, kh, kw) if fmt == "NCHW" else (kh, kw, c_in // groups, c_out)
    x, wt, b, dout = _arrays(draw, dt, to_layout((n, h, w, c_in), fmt), w_shape, c_out, out_shape)
    kwargs = dict(
        stride=_as_api(draw, sh, sw), padding=padding, dilation=_as_api(draw, dh, dw), groups=groups, data_format=fmt
    )
    return GeneralCase(x, kwargs, out_shape, dout, dt, fmt, w=wt, b=b)


def _crop(draw, full: int) -> int:
    """A transposed-conv padding 0-2 that leaves some of a ``full``-long output, or now and then any 0-2."""
    if draw(st.integers(0, 11)) == 0:
        return draw(st.integers(0, 2))
    return draw(st.integers(0, min(2, (full - 1) // 2)))


@st.composite
def transpose_cases(draw, dtype=DTYPES) -> GeneralCase:
    """conv_transpose2d problems: stride, padding, output_padding (smaller than stride or dilation, now and then
    not: invalid), dilation, groups (dense, grouped, depthwise), data_format, bias None or (C_out,)."""
    dt, fmt = draw(dtype), draw(LAYOUTS)
    c_in, c_out, groups = draw(channel_groups())
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw, dh, dw = (draw(st.integers(1, 3)) for _ in range(4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if draw(st.integers(0, 11)) == 0:
        oph, opw = max(sh, dh), draw(st.integers(0, max(sw, dw) - 1))  # invalid: not below stride or dilation
    else:
        oph, opw = draw(st.integers(0, max(sh, dh) - 1)), draw(st.integers(0, max(sw, dw) - 1))
    # padding crops the full output (h - 1)*s + d*(k - 1) + 1 + op; now and then it leaves nothing (invalid)
    ph = _crop(draw, (h - 1) * sh + dh * (kh - 1) + 1 + oph)
    pw = _crop(draw, (w - 1) * sw + dw * (kw - 1) + 1 + opw)
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    valid = ho >= 1 and wo >= 1 and (oph < sh or oph < dh) and (opw < sw or opw < dw)
    out_shape = to_layout((n, ho, wo, c_out), fmt) if valid else None
    w_shape = (c_in, c_out // groups, kh, kw) if fmt == "NCHW" else (kh, kw, c_out // groups, c_in)
    x, wt, b, dout = _arrays(draw, dt, to_layout((n, h, w, c_in), fmt), w_shape, c_out, out_shape)
    kwargs = dict(
        stride=_as_api(draw, sh, sw),
        padding=_as_api(draw, ph, pw),
        output_padding=_as_api(draw, oph, opw),
        dilation=_as_api(draw, dh, dw),
        groups=groups,
        data_format=fmt,
    )
    return GeneralCase(x, kwargs, out_shape, dout, dt, fmt, w=wt, b=b)


def pool_out_len(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length (spec): floor or ceil, and in ceil mode the last window must start
    inside the input or the left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows_reach_input(size: int, out: int, k: int, s: int, p: int, d: int) -> bool:
    """Whether every one of ``out`` windows has a tap inside [0, size)."""
    return all(any(0 <= o * s - p + i * d < size for i in range(k)) for o in range(out))


@st.composite
def general_pool_cases(draw, kind: str, dtype=DTYPES) -> GeneralCase:
    """max_pool2d (``kind='max'``: dilation, ceil_mode) or avg_pool2d (``'avg'``: ceil_mode, count_include_pad,
    divisor_override) problems in either layout. Padding is at most kernel // 2, now and then one more (invalid).
    Max-pool inputs are normal, integer-valued in [-2, 1] (many ties) or normal with NaNs."""
    dt, fmt = draw(dtype), draw(LAYOUTS)
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if kind == "max" else (1, 1)
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    if draw(st.integers(0, 15)) == 0:
        ph = kh // 2 + 1  # invalid: more than half the kernel
    ceil_mode = draw(st.booleans())
    if draw(st.booleans()):
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        stride = _as_api(draw, sh, sw)
    else:
        sh, sw, stride = kh, kw, None
    h = _size(draw, dh * (kh - 1) + 1 - 2 * ph, extra=4)
    w = _size(draw, dw * (kw - 1) + 1 - 2 * pw, extra=4)
    ho, wo = pool_out_len(h, kh, sh, ph, dh, ceil_mode), pool_out_len(w, kw, sw, pw, dw, ceil_mode)
    valid = ph <= kh // 2 and pw <= kw // 2 and ho >= 1 and wo >= 1
    valid = valid and _windows_reach_input(h, ho, kh, sh, ph, dh) and _windows_reach_input(w, wo, kw, sw, pw, dw)
    out_shape = to_layout((n, ho, wo, c), fmt) if valid else None
    x, _, _, dout = _arrays(draw, dt, to_layout((n, h, w, c), fmt), None, 0, out_shape)
    kwargs = dict(stride=stride, padding=_as_api(draw, ph, pw), ceil_mode=ceil_mode, data_format=fmt)
    if kind == "max":
        kwargs["dilation"] = _as_api(draw, dh, dw)
        values = draw(st.sampled_from(["normal", "ties", "nan"]))
        rng = np.random.default_rng(draw(SEEDS))
        if values == "ties":
            x = rng.integers(-2, 2, size=x.shape).astype(dt)
        elif values == "nan":
            x[rng.random(x.shape) < 0.2] = np.nan
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        kwargs["divisor_override"] = draw(st.sampled_from([None, None, 1, 2, 3, 7, -2]))
    return GeneralCase(x, kwargs, out_shape, dout, dt, fmt, kernel_size=_as_api(draw, kh, kw))
