"""The input gradient as correlations of ``dout``: one per phase of the stride (sub-pixel decomposition).

With stride ``s``, input row ``r`` of a convolution receives gradient only from the kernel taps ``i`` with
``i*d - pad ≡ r (mod s)``: the rows of one phase ``r = ph + s*q`` all see the same taps, each at a fixed
shift of ``dout``. So the input gradient of each phase is an ordinary stride-1 correlation of ``dout`` with
those taps, flipped -- a matrix product over columns of ``dout``, with no col2im scatter at all. At stride 1
there is one phase, every tap: the classic flipped-kernel correlation. The phases of the two axes combine:
phase ``(ph_h, ph_w)`` fills ``dx[:, ph_h::sh, ph_w::sw]``, and together they fill every input position once.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from .windows import WindowGeometry

__all__ = ["AxisPhase", "Phase", "axis_phases", "phases", "column_entries"]


@dataclass(frozen=True)
class AxisPhase:
    """Input positions ``phase, phase + s, ...`` (``size`` of them) along one axis; the kernel taps they see,
    in the order the correlation reads them (flipped), and that correlation's padding and dilation on ``dout``.
    """

    phase: int
    size: int
    taps: tuple[int, ...]
    pad_lo: int
    pad_hi: int
    dilation: int


@dataclass(frozen=True)
class Phase:
    """One phase of both axes: ``dx[:, rows.phase::sh, cols.phase::sw]`` is ``geom``'s correlation of ``dout``."""

    rows: AxisPhase
    cols: AxisPhase
    geom: WindowGeometry | None  # None when the phase sees no tap (its gradient is zero)


def axis_phases(size: int, out: int, k: int, s: int, d: int, pad: int) -> list[AxisPhase]:
    """The phases of one axis: input ``size``, output ``out``, kernel ``k``, stride ``s``, dilation ``d``, padding
    ``pad`` before the first input position.

    Input position ``r = ph + s*q`` receives ``dout[o]`` through tap ``i`` when ``o*s + i*d - pad = r``, i.e.
    ``o = q + (ph + pad - i*d) / s``. The taps of a phase are evenly spaced, so their shifts are too (by
    ``d / gcd(d, s)``): a dilated correlation of ``dout``, whose padding may be negative (a crop).
    """
    result = []
    for ph in range(min(s, size)):
        q = len(range(ph, size, s))
        taps = [i for i in range(k) if (ph + pad - i * d) % s == 0]
        if not taps:
            result.append(AxisPhase(ph, q, (), 0, 0, 1))
            continue
        shift_of_last = (ph + pad - taps[-1] * d) // s  # the smallest shift: the correlation starts there
        step = d // gcd(d, s)
        span = (len(taps) - 1) * step + 1
        pad_lo = -shift_of_last
        pad_hi = (q - 1) + span - out - pad_lo
        result.append(AxisPhase(ph, q, tuple(reversed(taps)), pad_lo, pad_hi, step))
    return result


def phases(geom: WindowGeometry) -> list[Phase]:
    """The phases of ``geom``'s input gradient (one per ``(row phase, column phase)``), each with the geometry
    of its correlation of ``dout`` (N, Ho, Wo, C_out): an output of ``(rows.size, cols.size)`` positions."""
    row_phases = axis_phases(geom.in_h, geom.out_h, geom.kh, geom.sh, geom.dh, geom.pad_top)
    col_phases = axis_phases(geom.in_w, geom.out_w, geom.kw, geom.sw, geom.dw, geom.pad_left)
    result = []
    for r in row_phases:
        for c in col_phases:
            g = None
            if r.taps and c.taps:
                g = WindowGeometry(
                    geom.out_h, geom.out_w, len(r.taps), len(c.taps), 1, 1,
                    r.pad_lo, r.pad_hi, c.pad_lo, c.pad_hi, r.dilation, c.dilation,
                )  # fmt: skip
            result.append(Phase(r, c, g))
    return result


def column_entries(geom: WindowGeometry) -> int:
    """Column entries (per channel of ``dout``) the phase correlations build for one image: Σ positions × taps."""
    rows = sum(
        p.size * len(p.taps) for p in axis_phases(geom.in_h, geom.out_h, geom.kh, geom.sh, geom.dh, geom.pad_top)
    )
    cols = sum(
        p.size * len(p.taps) for p in axis_phases(geom.in_w, geom.out_w, geom.kw, geom.sw, geom.dw, geom.pad_left)
    )
    return rows * cols
