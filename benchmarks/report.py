"""Rows of the benchmark report, and their output as text tables, JSON and a PNG bar chart."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .timing import SETTLE_S

__all__ = [
    "Row",
    "MemoryRow",
    "format_op_table",
    "format_memory_table",
    "table_notes",
    "write_json",
    "check_plot_available",
    "check_writable",
    "plot_figure",
    "write_plot",
]


@dataclass
class Row:
    """One op on one case and dtype. Times in seconds; None where a column does not apply or was skipped."""

    op: str
    case: str
    dtype: str
    batch: int  # images in the timed engine run
    engine_s: float
    peak_mib: float  # tracemalloc peak during one engine call, outputs included
    loops_images: int  # images the reference loops ran on
    loops_s: float  # reference loop time scaled to ``batch`` images
    speedup: float  # loops_s / engine_s
    max_abs_diff: float  # engine vs loops on the first ``loops_images`` images
    gflops: float | None = None  # conv only
    matmul_s: float | None = None  # conv only: the bare matrix product(s)
    x_matmul: float | None = None  # engine_s / matmul_s
    copy_s: float | None = None  # pooling only: one NumPy copy of the input
    x_copy: float | None = None  # engine_s / copy_s
    torch_s: float | None = None  # best of the layouts
    torch_layout: str | None = None
    x_torch: float | None = None  # engine_s / torch_s (< 1: the engine is faster)


@dataclass
class MemoryRow:
    """Conv C4 at the default workspace limit and at a small one (None: the engine has no limit API yet)."""

    op: str
    case: str
    dtype: str
    batch: int
    default_limit_mib: float | None
    small_limit_mib: float
    default_s: float
    default_peak_mib: float
    small_s: float | None
    small_peak_mib: float | None
    time_ratio: float | None  # small_s / default_s
    outputs_mib: float  # the arrays the call returns (part of every peak)


def _num(value: float | None, fmt: str, width: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'n/a':>{width}}"
    return f"{value:>{width}{fmt}}"


def _ms(seconds: float | None, width: int) -> str:
    if seconds is None:
        return f"{'n/a':>{width}}"
    ms = seconds * 1e3
    return f"{ms:>{width}.{3 if ms < 10 else 1}f}"


def format_op_table(op: str, rows: Sequence[Row]) -> list[str]:
    """Text table for one op; rows are case x dtype."""
    conv = op.startswith("conv")
    cols = ["case", "dtype ", "  N", " engine ms"]
    if conv:
        cols += ["GFLOP/s", " matmul ms", "x matmul"]
    else:
        cols += ["  copy ms", " x copy"]
    cols += ["ref N", "loops s*", " speedup", "max |diff|", "peak MiB", " torch ms", "torch layout ", "x torch"]
    header = " ".join(cols)
    lines = [f"== {op} ==", header, "-" * len(header)]
    for r in rows:
        cells = [f"{r.case:<4}", f"{r.dtype:<6}", f"{r.batch:>3}", _ms(r.engine_s, 10)]
        if conv:
            cells += [_num(r.gflops, ".1f", 7), _ms(r.matmul_s, 10), _num(r.x_matmul, ".2f", 8)]
        else:
            cells += [_ms(r.copy_s, 9), _num(r.x_copy, ".2f", 7)]
        cells += [
            f"{r.loops_images:>5}",
            _num(r.loops_s, ".2f", 8),
            f"{r.speedup:>7.0f}x",
            f"{r.max_abs_diff:>10.1e}",
            _num(r.peak_mib, ".1f", 8),
            _ms(r.torch_s, 9),
            f"{r.torch_layout or 'n/a':<13}",
            _num(r.x_torch, ".2f", 7),
        ]
        lines.append(" ".join(cells))
    return lines


def table_notes(torch_line: str, quick_note: str | None) -> list[str]:
    """Footnotes explaining the columns of every op table."""
    notes = [
        "N: images in the timed run. engine ms: median of the im2col_cnn call (time.perf_counter, after a warm-up;",
        "  timed in rounds alternating with the bare matmul, so a slow spell of the machine hits both alike; in",
        f"  each round a call runs {SETTLE_S} s untimed first: the BLAS's threads spin a while after a threaded",
        "  product and would take the engine's cores);",
        "  backward rows time the backward call only (the cache comes from a forward pass made in setup).",
        "GFLOP/s: 2*N*prod(out)*prod(k)*C_in*C_out per forward, twice that per backward.",
        "matmul ms: the bare matrix product on preallocated random matrices of the same shapes, no window copying:",
        "  forward (N*prod(out), prod(k)*C_in) @ (prod(k)*C_in, C_out); backward cols^T @ dout and dout @ w^T,",
        "  together. x matmul = engine / matmul.",
        "copy ms (pooling): one NumPy copy of the input, x.copy(), timed in the same rounds: the floor of any NumPy",
        "  pass over it. x copy = engine / copy.",
        "* loops s: the `reference` package's loops timed on the first `ref N` images and scaled per image to N",
        "  (x N / ref N); speedup = loops / engine; max |diff| = engine vs loops on those ref N images",
        "  (max over dx, dw, db for the conv backward).",
        "peak MiB: tracemalloc peak of the allocations made during one engine call, its outputs included.",
        f"torch: {torch_line}",
    ]
    if torch_line.startswith("PyTorch ") and "skipped" not in torch_line:
        notes += [
            "  best of NCHW and channels_last; forward under torch.no_grad(); backward times only",
            "  torch.autograd.grad(out, (x[, w, b]), grad_outputs=dout) on a graph built (untimed) before each run.",
            "  Timed in a phase of its own before the engine: interleaved, the spinning worker threads of PyTorch",
            "  (OpenMP) and NumPy (OpenBLAS) slow each other down on a small machine.",
            "  x torch = engine / torch (< 1: the engine is faster).",
        ]
    if quick_note:
        notes.append(quick_note)
    return notes


def format_memory_table(rows: Sequence[MemoryRow], api_note: str) -> list[str]:
    """Text table of the workspace-limit section."""
    lines = [f"== workspace limit: conv C4 == ({api_note})"]
    if not rows:
        return lines
    small = rows[0].small_limit_mib
    header = (
        f"{'op':<16} {'dtype':<7} {'N':>3} {'default MiB':>11} {'default ms':>10} {'peak MiB':>9} "
        f"{f'{small:g} MiB: ms':>13} {'peak MiB':>9} {'time ratio':>10} {'outputs MiB':>11}"
    )
    lines += [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.op:<16} {r.dtype:<7} {r.batch:>3} {_num(r.default_limit_mib, '.0f', 11)} {_ms(r.default_s, 10)} "
            f"{_num(r.default_peak_mib, '.1f', 9)} {_ms(r.small_s, 13)} {_num(r.small_peak_mib, '.1f', 9)} "
            f"{_num(r.time_ratio, '.2f', 10)} {_num(r.outputs_mib, '.1f', 11)}"
        )
    lines.append(
        "peak MiB: tracemalloc peak during the call, outputs included (outputs MiB: dx+dw+db or out). "
        "time ratio = small-limit time / default-limit time."
    )
    return lines


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, meta: dict[str, object], rows: Sequence[Row], memory: Sequence[MemoryRow]) -> None:
    """All rows (and the memory section) as JSON: ``{"meta": ..., "rows": [...], "memory": [...]}``."""
    doc = {
        "meta": meta,
        "rows": [{k: _clean(v) for k, v in dataclasses.asdict(r).items()} for r in rows],
        "memory": [{k: _clean(v) for k, v in dataclasses.asdict(r).items()} for r in memory],
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


PLOT_INSTALL_HINT = "--plot needs matplotlib, which is not installed: pip install matplotlib"


def check_plot_available() -> str | None:
    """None when matplotlib imports, else the message to show (checked before the benchmarks run)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return PLOT_INSTALL_HINT
    return None


def check_writable(path: str | Path, option: str) -> str | None:
    """None when a file can be written at ``path``, else the message to show (checked before the benchmarks run).

    Nothing is created: the file itself must be writable if it exists, else its directory must exist and be
    writable.
    """
    target = Path(path)
    problem = None
    if target.is_dir():
        problem = "it is a directory"
    elif target.exists():
        if not os.access(target, os.W_OK):
            problem = "the file is not writable"
    else:
        folder = target.parent
        if not folder.is_dir():
            problem = f"the directory {str(folder)!r} does not exist"
        elif not os.access(folder, os.W_OK | os.X_OK):
            problem = f"the directory {str(folder)!r} is not writable"
    return None if problem is None else f"{option} {str(path)!r}: cannot write there: {problem}"


# Lower panel series: (Row attribute, legend label, colour); a series is drawn only where a row has a value.
_RATIO_SERIES = (
    ("x_matmul", "engine / bare matmul", "tab:blue"),
    ("x_copy", "engine / NumPy copy of x", "tab:green"),
    ("x_torch", "engine / PyTorch CPU", "tab:orange"),
)


def _row_label(r: Row) -> str:
    return f"{r.op.replace('_forward', ' fwd').replace('_backward', ' bwd')} {r.case} {r.dtype[-2:]}"


def plot_figure(rows: Sequence[Row], note: str | None = None):  # -> matplotlib.figure.Figure
    """The report's figure: speedup over the loops (log scale) for every row; below, for the rows that have them,
    the ratios of the engine's time to the bare matrix product (conv rows) and to PyTorch (when it was timed).

    Only the series that have values are drawn (and named in the legend); without any, there is no lower panel.
    ``note`` (e.g. that this was a quick run) is added to the title. Needs matplotlib (Agg backend).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(PLOT_INSTALL_HINT) from exc

    ratio_rows = [r for r in rows if any(getattr(r, attr) is not None for attr, _, _ in _RATIO_SERIES)]
    series = [s for s in _RATIO_SERIES if any(getattr(r, s[0]) is not None for r in ratio_rows)]
    panels = 2 if ratio_rows else 1
    width_in = max(10, 0.32 * len(rows) + 3)
    fig, axes = plt.subplots(panels, 1, figsize=(width_in, 5.5 * panels), squeeze=False)
    top = axes[0][0]
    xs = list(range(len(rows)))
    top.bar(xs, [r.speedup for r in rows], color="tab:green")
    top.set_yscale("log")
    top.axhline(300, color="gray", linestyle="--", linewidth=1, label="300x target")
    top.set_ylabel("speedup over the loops (x)")
    title = "im2col_cnn: speedup over the reference loops"
    top.set_title(title if note is None else f"{title}\n{note}", color="black" if note is None else "darkred")
    top.legend(loc="best")
    top.set_xticks(xs)
    top.set_xticklabels([_row_label(r) for r in rows], rotation=75, ha="right", fontsize=8)
    if ratio_rows:
        bottom = axes[1][0]
        xs = list(range(len(ratio_rows)))
        width = 0.8 / len(series)
        missing = False
        for i, (attr, label, color) in enumerate(series):
            offset = (i - (len(series) - 1) / 2) * width
            values = [getattr(r, attr) for r in ratio_rows]
            missing |= None in values
            bottom.bar(
                [x + offset for x in xs],
                [math.nan if v is None else v for v in values],
                width,
                label=label,
                color=color,
            )
        bottom.axhline(1.0, color="black", linewidth=1)
        bottom.set_yscale("log")
        bottom.set_ylabel("time ratio (lower is better)")
        names = {"x_matmul": "the bare matrix product", "x_copy": "a NumPy copy of x", "x_torch": "PyTorch CPU"}
        against = " and to ".join(names[attr] for attr, _, _ in series)
        bottom.set_title(f"ratio of the engine's time to {against}" + (" (missing bar: n/a)" if missing else ""))
        bottom.legend(loc="best")
        bottom.set_xticks(xs)
        bottom.set_xticklabels([_row_label(r) for r in ratio_rows], rotation=75, ha="right", fontsize=8)
    fig.tight_layout()
    return fig


def write_plot(path: str | Path, rows: Sequence[Row], note: str | None = None) -> None:
    """Save :func:`plot_figure` as a PNG at ``path``."""
    fig = plot_figure(rows, note)
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
