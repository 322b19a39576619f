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
