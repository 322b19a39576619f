"""Rows of the benchmark report, and their output as text tables, JSON and a PNG bar chart."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Row",
    "MemoryRow",
    "format_op_table",
    "format_memory_table",
    "table_notes",
    "write_json",
    "check_plot_available",
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
    cols += ["ref N", "loops s*", " speedup", "max |diff|", "peak MiB", " torch ms", "torch layout ", "x torch"]
    header = " ".join(cols)
    lines = [f"== {op} ==", header, "-" * len(header)]
    for r in rows:
        cells = [f"{r.case:<4}", f"{r.dtype:<6}", f"{r.batch:>3}", _ms(r.engine_s, 10)]
        if conv:
            cells += [_num(r.gflops, ".1f", 7), _ms(r.matmul_s, 10), _num(r.x_matmul, ".2f", 8)]
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
        "  timed in rounds alternating with the bare matmul, so a slow spell of the machine hits both alike);",
        "  backward rows time the backward call only (the cache comes from a forward pass made in setup).",
        "GFLOP/s: 2*N*Ho*Wo*kh*kw*C_in*C_out per forward, twice that per backward.",
        "matmul ms: the bare matrix product on preallocated random matrices of the same shapes, no window copying:",
        "  forward (N*Ho*Wo, kh*kw*C_in) @ (kh*kw*C_in, C_out); backward cols^T @ dout and dout @ w^T, together.",
        "  x matmul = engine / matmul.",
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


def write_plot(path: str | Path, rows: Sequence[Row]) -> None:
    """PNG: speedup over the loops (log scale) and the engine/matmul and engine/PyTorch ratios per row."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(PLOT_INSTALL_HINT) from exc

    labels = [f"{r.op.replace('_forward', ' fwd').replace('_backward', ' bwd')} {r.case} {r.dtype[-2:]}" for r in rows]
    xs = list(range(len(rows)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, 0.32 * len(rows) + 3), 9), sharex=True)
    top.bar(xs, [r.speedup for r in rows], color="tab:green")
    top.set_yscale("log")
    top.axhline(300, color="gray", linestyle="--", linewidth=1, label="300x target")
    top.set_ylabel("speedup over the loops (x)")
    top.set_title("im2col_cnn: speedup over the reference loops")
    top.legend(loc="upper right")
    width = 0.4
    matmul = [r.x_matmul if r.x_matmul is not None else math.nan for r in rows]
    torch = [r.x_torch if r.x_torch is not None else math.nan for r in rows]
    bottom.bar([x - width / 2 for x in xs], matmul, width, label="engine / bare matmul", color="tab:blue")
    bottom.bar([x + width / 2 for x in xs], torch, width, label="engine / PyTorch CPU", color="tab:orange")
    bottom.axhline(1.0, color="black", linewidth=1)
    bottom.set_yscale("log")
    bottom.set_ylabel("time ratio (lower is better)")
    bottom.set_title("ratios to the bare matrix product and to PyTorch (missing bar: n/a)")
    bottom.legend(loc="upper right")
    bottom.set_xticks(xs)
    bottom.set_xticklabels(labels, rotation=75, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
