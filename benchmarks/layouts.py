"""Both layouts side by side (the report's layout section; ``--layouts`` runs it alone).

The same data as contiguous channels-last and contiguous channels-first arrays (PyTorch's weights in the latter),
for every convolution case: the convolution and the transposed convolution (the transpose of the same weights,
its input shaped like the convolution's output), forward and backward; and for the 2-D cases the CS231n drop-in's
``conv_forward_fast`` / ``conv_backward_fast`` (channels-first by definition) against the engine's channels-last
call. For every pooling case, max and average (adaptive: its kinds) pooling, forward and backward. Each pair is
timed in interleaved rounds (the same library: alternating calls is fair): the ratio is of the minimum per call,
what each call takes when the machine lets it (on a noisy host the median of 15 rounds moved a row 1.11 <-> 1.30
between runs), and the ratio of the medians is shown beside it. The target is channels-first within 1.15x of
channels-last on every convolution row; the pooling rows show where it stands.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import numpy as np

import im2col_cnn as engine
from im2col_cnn import cs231n

from .cases import DTYPES, AdaptiveCase, Case, ConvCase, make_inputs
from .timing import interleaved_times

__all__ = ["measure", "format_table", "TARGET"]

TARGET = 1.15
FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def _first(a: np.ndarray) -> np.ndarray:
    """(N, *spatial, C) -> a contiguous (N, C, *spatial) copy."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def _weight_first(w: np.ndarray) -> np.ndarray:
    """(*k, A, B) -> a contiguous (B, A, *k) copy: PyTorch's convolution weight from the channels-last one (and the
    transposed convolution's, whose (C_in, C_out // groups, *k) is the same array)."""
    return np.ascontiguousarray(np.moveaxis(np.moveaxis(w, -1, 0), -1, 1))


Calls = dict[str, tuple[Callable[[], object], None]]


def _calls(case: Case, dtype: type[np.floating], batch: int | None) -> dict[str, Calls]:
    """Per row name, the two calls (channels-last, channels-first) to time against each other."""
    if not isinstance(case, ConvCase):
        return _pool_calls(case, dtype, batch)
    nd = case.ndim
    last, first = FORMATS[nd]
    conv_f, conv_b = getattr(engine, f"conv{nd}d_forward"), getattr(engine, f"conv{nd}d_backward")
    tr_f, tr_b = getattr(engine, f"conv_transpose{nd}d_forward"), getattr(engine, f"conv_transpose{nd}d_backward")
    inputs = make_inputs(case, dtype, batch)
    x, w, b, dout = inputs.x, inputs.w, inputs.b, inputs.dout
    xf, wf, doutf = _first(x), _weight_first(w), _first(dout)
    opts = dict(stride=case.stride, padding=case.padding)
    _, cache = conv_f(x, w, b, **opts)
    _, cache_f = conv_f(xf, wf, b, data_format=first, **opts)
    # The transposed convolution of the same weights maps dout's shape back to x's: its input is dout.
    y, t_cache = tr_f(dout, w, None, **opts)
    _, t_cache_f = tr_f(doutf, wf, None, data_format=first, **opts)
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    dyf = _first(dy)
    rows: dict[str, Calls] = {
        "conv forward": {
            last: (lambda: conv_f(x, w, b, **opts), None),
            first: (lambda: conv_f(xf, wf, b, data_format=first, **opts), None),
        },
        "conv backward": {last: (lambda: conv_b(dout, cache), None), first: (lambda: conv_b(doutf, cache_f), None)},
        "transposed forward": {
            last: (lambda: tr_f(dout, w, None, **opts), None),
            first: (lambda: tr_f(doutf, wf, None, data_format=first, **opts), None),
        },
        "transposed backward": {last: (lambda: tr_b(dy, t_cache), None), first: (lambda: tr_b(dyf, t_cache_f), None)},
    }
    if nd == 2:
        param = {"stride": case.stride, "pad": case.padding}
        _, cs_cache = cs231n.conv_forward_fast(xf, wf, b, param)
        rows["CS231n conv_forward_fast"] = {
            last: rows["conv forward"][last],
            first: (lambda: cs231n.conv_forward_fast(xf, wf, b, param), None),
        }
        rows["CS231n conv_backward_fast"] = {
            last: rows["conv backward"][last],
            first: (lambda: cs231n.conv_backward_fast(doutf, cs_cache), None),
        }
    return rows


def _pool_calls(case: Case, dtype: type[np.floating], batch: int | None) -> dict[str, Calls]:
    """A pooling case's rows: each kind's forward and backward pass in both layouts."""
    nd = case.ndim
    last, first = FORMATS[nd]
    inputs = make_inputs(case, dtype, batch)
    x, dout = inputs.x, inputs.dout
    xf, doutf = _first(x), _first(dout)
    if isinstance(case, AdaptiveCase):
        kinds = [(f"adaptive {kind}", f"adaptive_{kind}_pool{nd}d", (case.output_size,), {}) for kind in case.kinds]
    else:
        opts = {"stride": case.stride, "padding": case.padding}
        kinds = [(kind, f"{kind}_pool{nd}d", (case.k,), opts) for kind in ("max", "avg")]
    rows: dict[str, Calls] = {}
    for name, family, args, opts in kinds:
        fwd, bwd = getattr(engine, f"{family}_forward"), getattr(engine, f"{family}_backward")
        _, cache = fwd(x, *args, **opts)
        _, cache_f = fwd(xf, *args, data_format=first, **opts)
        rows[f"{name} pool forward"] = {
            last: (lambda fwd=fwd, args=args, opts=opts: fwd(x, *args, **opts), None),
            first: (lambda fwd=fwd, args=args, opts=opts: fwd(xf, *args, data_format=first, **opts), None),
        }
        rows[f"{name} pool backward"] = {
            last: (lambda bwd=bwd, cache=cache: bwd(dout, cache), None),
            first: (lambda bwd=bwd, cache=cache_f: bwd(doutf, cache), None),
        }
    return rows


def measure(
    cases: Sequence[Case], repeats: int, min_total_s: float, batch: int | None = None, progress=print
) -> list[dict[str, object]]:
    """Per case, dtype and row: the channels-last and channels-first seconds, minimum and median of the rounds."""
    out: list[dict[str, object]] = []
    for case in cases:
        for dtype in DTYPES:
            progress(f"[layouts] {case.name} {np.dtype(dtype).name}")
            for row, calls in _calls(case, dtype, batch).items():
                last, first = FORMATS[case.ndim]
                times = interleaved_times(calls, repeats=repeats, min_total_s=min_total_s)
                out.append(
                    {
                        "case": case.name,
                        "dtype": np.dtype(dtype).name,
                        "row": row,
                        "last": last,
                        "first": first,
                        "last_s": min(times[last]),
                        "first_s": min(times[first]),
                        "last_median_s": statistics.median(times[last]),
                        "first_median_s": statistics.median(times[first]),
                        "rounds": len(times[last]),
                    }
                )
    return out


def format_table(rows: Sequence[dict[str, object]]) -> list[str]:
    lines = [
        "== Layouts: contiguous channels-first against contiguous channels-last, the same data ==",
        f"{'case':<5} {'dtype':<8} {'row':<26} {'last ms':>9} {'first ms':>9} {'ratio':>6} {'median':>7}",
    ]
    for r in rows:
        last, first = float(r["last_s"]), float(r["first_s"])  # type: ignore[arg-type]
        ratio = first / last
        median = float(r["first_median_s"]) / float(r["last_median_s"])  # type: ignore[arg-type]
        mark = " *" if ratio > TARGET else ""
        lines.append(
            f"{r['case']:<5} {r['dtype']:<8} {r['row']:<26} {last * 1e3:>9.3f} {first * 1e3:>9.3f} {ratio:>6.2f}"
            f" {median:>7.2f}{mark}"
        )
    fewest = min((int(r["rounds"]) for r in rows), default=0)  # type: ignore[call-overload]
    lines.append(
        f"Minimum of {fewest} or more interleaved rounds per call; ratio = channels-first / channels-last of those "
        f"minima (target <= {TARGET}; * marks a row above it; the target is the convolutions', pooling rows are "
        "shown for where they stand), median = the same of the medians. CS231n rows: the drop-in's fast conv (NCHW) "
        "against the engine's channels-last call."
    )
    return lines
