"""The input gradient as correlations of ``dout``: one per phase of the stride (sub-pixel decomposition).

With stride ``s``, input position ``r`` of an axis receives gradient only from the kernel taps ``i`` with
``i*d - pad ≡ r (mod s)``: the positions of one phase ``r = ph + s*q`` all see the same taps, each at a fixed
shift of ``dout``. So the input gradient of each phase is an ordinary stride-1 correlation of ``dout`` with
those taps, flipped -- a matrix product over columns of ``dout``, with no col2im scatter at all. At stride 1
there is one phase, every tap: the classic flipped-kernel correlation. The phases of the axes combine: phase
``(ph_0, ph_1, ...)`` fills ``dx[:, ph_0::s_0, ph_1::s_1, ...]``, and together they fill every input position once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from math import gcd

from .windows import Axis, WindowGeometry, geometry_of

__all__ = ["AxisPhase", "Phase", "axis_phases", "phases", "column_entries"]


@dataclass(frozen=True)
class AxisPhase:
    """Input positions ``phase, phase + s, ...`` (``size`` of them) along one axis; the kernel taps they see,
    in the order the correlation reads them (flipped), and that correlation's window along ``dout``'s axis.
    """

    phase: int
    size: int
    taps: tuple[int, ...]
    axis: Axis | None  # the correlation's window on dout's axis; None when no tap reaches the phase


@dataclass(frozen=True)
class Phase:
    """One phase of every axis: ``dx[:, *index]`` is ``geom``'s correlation of ``dout``."""

    axes: tuple[AxisPhase, ...]
    index: tuple[slice, ...]  # per axis: slice(phase, None, stride)
    geom: WindowGeometry | None  # None when the phase sees no tap (its gradient is zero)


@lru_cache(maxsize=256)
def axis_phases(axis: Axis) -> tuple[AxisPhase, ...]:
    """The phases of one axis of a convolution (its input is the gradient's output).

    Input position ``r = ph + s*q`` receives ``dout[o]`` through tap ``i`` when ``o*s + i*d - lo = r``, i.e.
    ``o = q + (ph + lo - i*d) / s``. The taps of a phase are evenly spaced, so their shifts are too (by
    ``d / gcd(d, s)``): a dilated correlation of ``dout``, whose padding may be negative (a crop).
    """
    size, out, k, s, d, pad = axis.size, axis.out, axis.k, axis.s, axis.d, axis.lo
    result = []
    for ph in range(min(s, size)):
        q = len(range(ph, size, s))
        taps = [i for i in range(k) if (ph + pad - i * d) % s == 0]
        if not taps:
            result.append(AxisPhase(ph, q, (), None))
            continue
        shift_of_last = (ph + pad - taps[-1] * d) // s  # the smallest shift: the correlation starts there
        step = d // gcd(d, s)
        span = (len(taps) - 1) * step + 1
        pad_lo = -shift_of_last
        pad_hi = (q - 1) + span - out - pad_lo
        result.append(AxisPhase(ph, q, tuple(reversed(taps)), Axis(out, len(taps), 1, step, pad_lo, pad_hi)))
    return tuple(result)


@lru_cache(maxsize=256)
def phases(geom: WindowGeometry) -> tuple[Phase, ...]:
    """The phases of ``geom``'s input gradient (one per combination of the axes' phases), each with the geometry
    of its correlation of ``dout`` (N, *out, C_out): an output of ``size`` positions per axis."""
    result = []
    for combo in product(*(axis_phases(a) for a in geom.axes)):
        index = tuple(slice(p.phase, None, a.s) for p, a in zip(combo, geom.axes, strict=True))
        windows = tuple(p.axis for p in combo)
        sub = None if any(w is None for w in windows) else geometry_of(windows)  # type: ignore[arg-type]
        result.append(Phase(combo, index, sub))
    return tuple(result)


def column_entries(geom: WindowGeometry) -> int:
    """Column entries (per channel of ``dout``) the phase correlations build for one image: Σ positions × taps."""
    return math.prod(sum(p.size * len(p.taps) for p in axis_phases(a)) for a in geom.axes)
