"""The 1-D convolution against the same data through conv2d with a unit height (the report's C7 section).

A 1-D layer is the 2-D one with a height of one: the engine runs both through the same geometry, so the 1-D call
should cost no more than the 2-D call on ``x[:, None]`` (N, 1, W, C) with ``w[None]`` (1, k, C_in, C_out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import im2col_cnn as engine

from .cases import DTYPES, ConvCase, case_by_name, make_inputs
from .timing import interleaved_medians

__all__ = ["CASE", "measure", "format_table"]

CASE = "C7"


def _calls(dtype: type[np.floating], batch: int | None) -> dict[str, tuple[Callable[..., object], None]]:
    """The four timed calls of one dtype: each pass as conv1d and as conv2d on a unit height."""
    case = case_by_name(CASE)
    assert isinstance(case, ConvCase)
    inputs = make_inputs(case, dtype, batch)
    x, w, b, dout = inputs.x, inputs.w, inputs.b, inputs.dout
    one = dict(stride=case.stride, padding=case.padding)
    two = dict(stride=(1, case.stride), padding=(0, case.padding))
    x2, w2, dout2 = x[:, None], w[None], dout[:, None]  # (N, 1, W, C), (1, k, C_in, C_out), (N, 1, Wo, C_out): views
    _, cache1 = engine.conv1d_forward(x, w, b, **one)
    _, cache2 = engine.conv2d_forward(x2, w2, b, **two)
    return {
        "forward 1-D": (lambda: engine.conv1d_forward(x, w, b, **one), None),
        "forward 2-D": (lambda: engine.conv2d_forward(x2, w2, b, **two), None),
        "backward 1-D": (lambda: engine.conv1d_backward(dout, cache1), None),
        "backward 2-D": (lambda: engine.conv2d_backward(dout2, cache2), None),
    }


def measure(repeats: int, min_total_s: float, batch: int | None = None) -> list[dict[str, object]]:
    """Per dtype and pass: the conv1d and the unit-height conv2d median seconds, timed in interleaved rounds."""
    rows: list[dict[str, object]] = []
    for dtype in DTYPES:
        medians = interleaved_medians(_calls(dtype, batch), repeats=repeats, min_total_s=min_total_s)
        for way in ("forward", "backward"):
            one, two = medians[f"{way} 1-D"], medians[f"{way} 2-D"]
            rows.append({"dtype": np.dtype(dtype).name, "pass": way, "conv1d_s": one, "conv2d_s": two})
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> list[str]:
    case = case_by_name(CASE)
    lines = [
        f"== conv1d against conv2d on a unit height: {CASE}, {case.describe()} ==",
        f"{'dtype':<8} {'pass':<9} {'conv1d ms':>10} {'conv2d (N,1,W,C) ms':>20} {'ratio':>6}",
    ]
    for r in rows:
        one, two = float(r["conv1d_s"]), float(r["conv2d_s"])  # type: ignore[arg-type]
        lines.append(f"{r['dtype']:<8} {r['pass']:<9} {one * 1e3:>10.3f} {two * 1e3:>20.3f} {one / two:>6.2f}")
    lines.append("Median of interleaved rounds; ratio = conv1d / conv2d (target <= 1.1).")
    return lines
