"""``python -m benchmarks``: the performance report of im2col_cnn on the benchmark cases (``benchmarks/cases.py``:
convolution C1-C9 in 1, 2 and 3 dimensions, pooling P1-P3, adaptive pooling A1-A2).

For every op (conv1d/2d/3d, max/avg pooling, adaptive pooling; forward and backward), case and dtype it prints the
engine's median time, GFLOP/s and the ratio to the bare matrix product (conv) or to one NumPy copy of the input
(pooling), the reference loops' time (reduced batch, scaled) and the speedup over them, the largest difference from
the loops, the peak memory of the call, and PyTorch CPU's time when PyTorch is installed. Then the 1-D convolution
against the same data through conv2d with a unit height, both layouts side by side (contiguous channels-first
against channels-last on every conv and pooling case, and the CS231n drop-in's fast conv; ``--layouts``: that
section alone;
see ``benchmarks/layouts.py``), conv C4 at the default workspace limit and at a small one, and a training step
of two small nets against PyTorch (``--step-only``: that section alone; see ``benchmarks/training_step.py``). A
--quick run says so in the report's first line, in the JSON (meta.quick) and in the plot's title.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

import im2col_cnn as engine
import reference

from . import layouts, scaling
from . import unit_height as unit_height_case
from .cases import CASES, DTYPES, OPS, Case, ConvCase, case_by_name, cases_for, make_call, make_inputs
from .cases import parse_case_names as parse_cases
from .memory import format_scratch_table
from .memory import measure as measure_scratch
from .report import (
    MemoryRow,
    Row,
    check_plot_available,
    check_writable,
    format_memory_table,
    format_op_table,
    table_notes,
    write_json,
    write_plot,
)
from .sysinfo import collect_system_info
from .timing import (
    MIB,
    SETTLE_S,
    default_workspace_limit,
    interleaved_medians,
    matmul_limit_call,
    median_time,
    peak_memory_mib,
    timed_call,
    workspace_call,
    workspace_mode,
)

QUICK_CASES = "C1,C2,C3,C6,P1,P2"
QUICK_BATCH = 8  # images per case in --quick
ROUND_BLOCK_S = 0.06  # each round times the engine and its floor for this long in a row, after SETTLE_S
LOOP_BUDGET = 20_000  # innermost reference-loop bodies per measurement: decides the reduced batch (>= 1 image)
SMALL_WORKSPACE = 32 * MIB
MEMORY_CASE = "C4"


@dataclass(frozen=True)
class Settings:
    repeats: int  # at least this many timed runs per measurement
    min_total_s: float  # ... and more until this much was timed (tiny ops)
    batch_cap: int | None  # --quick: images per case
    quick: bool


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _max_abs_diff(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]) -> float:
    return max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(ours, theirs, strict=True))


def _loops(op: str, case: Case, dtype: type[np.floating], batch: int) -> tuple[int, float, float]:
    """``(ref_n, loop seconds scaled to batch, max |engine - loops|)`` on the first ``ref_n`` images."""
    ref_n = max(1, min(batch, LOOP_BUDGET // case.loop_iterations_per_image()))
    inputs = make_inputs(case, dtype, ref_n)
    ref_call = make_call(reference, op, case, inputs)
    seconds, expected = timed_call(ref_call)
    if seconds < 0.05:  # cheap enough to take a median
        seconds = median_time(ref_call, repeats=3, warmup=0, min_total_s=0.2, max_repeats=20)
    diff = _max_abs_diff(make_call(engine, op, case, inputs)(), expected)
    return ref_n, seconds * batch / ref_n, diff


Job = tuple[str, Case, type[np.floating]]  # (op, case, dtype)


def _batch(case: Case, settings: Settings) -> int:
    return case.batch if settings.batch_cap is None else min(case.batch, settings.batch_cap)


def measure_torch(torch: ModuleType, jobs: Sequence[Job], settings: Settings) -> dict[Job, tuple[float, str]]:
    """PyTorch's median time and faster layout per job, all measured before any engine timing.

    PyTorch's OpenMP threads and NumPy's OpenBLAS threads each spin for a while after a call; interleaved on a
    machine with few cores they slow each other down (measured here: up to 2x), so the two are kept apart.
    """
    from .torch_peer import layouts_for, torch_callables

    results = {}
    for i, (op, case, dtype) in enumerate(jobs, 1):
        inputs = make_inputs(case, dtype, _batch(case, settings))
        calls = {layout: torch_callables(torch, op, case, inputs, layout) for layout in layouts_for(case)}
        medians = interleaved_medians(calls, repeats=settings.repeats, min_total_s=settings.min_total_s)
        layout = min(medians, key=medians.__getitem__)
        results[(op, case, dtype)] = (medians[layout], layout)
        progress(f"[torch {i:>2}/{len(jobs)}] {op} {case.name} {np.dtype(dtype).name}: {medians[layout] * 1e3:.3f} ms")
    time.sleep(0.5)  # let PyTorch's worker threads go idle before the engine is timed
    return results


def measure_row(
    op: str, case: Case, dtype: type[np.floating], settings: Settings, torch_result: tuple[float, str] | None
) -> Row:
    """Every column of one table row (see ``report.table_notes``); PyTorch's time comes from ``measure_torch``.

    The engine and its floor -- the bare matrix product (conv) or one NumPy copy of the input (pooling) -- are
    timed in interleaved rounds, so a slow spell of the machine hits both alike; peak memory and the loops are
    measured after.
    """
    batch = _batch(case, settings)
    backward = op.endswith("_backward")
    inputs = make_inputs(case, dtype, batch)
    call = make_call(engine, op, case, inputs)
    calls: dict[str, tuple[Callable[..., object], Callable[[], Any] | None]] = {"engine": (call, None)}
    if isinstance(case, ConvCase):
        calls["matmul"] = (matmul_limit_call(case, dtype, batch, backward), None)
    else:
        calls["copy"] = (inputs.x.copy, None)
    # The bare product runs on the BLAS's threads, which spin a while after it: each call settles before timing.
    settle_s, block_s = (SETTLE_S, ROUND_BLOCK_S) if "matmul" in calls else (0.0, 0.0)
    medians = interleaved_medians(
        calls, repeats=settings.repeats, min_total_s=settings.min_total_s, settle_s=settle_s, block_s=block_s
    )
    del calls
    engine_s = medians["engine"]
    row_extra: dict[str, float | str | None] = {}
    if "matmul" in medians:
        matmul_s = medians["matmul"]
        row_extra.update(
            gflops=case.flops(backward, batch) / engine_s / 1e9, matmul_s=matmul_s, x_matmul=engine_s / matmul_s
        )
    if "copy" in medians:
        row_extra.update(copy_s=medians["copy"], x_copy=engine_s / medians["copy"])
    if torch_result is not None:
        torch_s, layout = torch_result
        row_extra.update(torch_s=torch_s, torch_layout=layout, x_torch=engine_s / torch_s)
    peak = peak_memory_mib(call)
    del call
    ref_n, loops_s, diff = _loops(op, case, dtype, batch)
    return Row(
        op=op,
        case=case.name,
        dtype=np.dtype(dtype).name,
        batch=batch,
        engine_s=engine_s,
        peak_mib=peak,
        loops_images=ref_n,
        loops_s=loops_s,
        speedup=loops_s / engine_s,
        max_abs_diff=diff,
        **row_extra,  # type: ignore[arg-type]
    )


def measure_memory(settings: Settings) -> tuple[list[MemoryRow], str]:
    """Conv C4 forward and backward at the default workspace limit and at ``SMALL_WORKSPACE``."""
    case = case_by_name(MEMORY_CASE)
    mode = workspace_mode(engine)
    default_limit = default_workspace_limit(engine)
    if mode is None:
        note = "n/a: im2col_cnn has no workspace_limit() / workspace= yet; default-limit columns only"
    else:
        via = "workspace_limit() context manager" if mode == "context" else "workspace= keyword"
        note = f"small limit set via {via}"
    batch = _batch(case, settings)
    rows = []
    for dtype in DTYPES:
        inputs = make_inputs(case, dtype, batch)
        for op in ("conv2d_forward", "conv2d_backward"):
            progress(f"[memory] {op} {case.name} {np.dtype(dtype).name}")
            call = make_call(engine, op, case, inputs)
            small = workspace_call(engine, functools.partial(make_call, engine, op, case, inputs), SMALL_WORKSPACE)
            calls: dict[str, tuple[Callable[..., object], None]] = {"default": (call, None)}
            if small is not None:
                calls["small"] = (small, None)
            medians = interleaved_medians(calls, repeats=settings.repeats, min_total_s=settings.min_total_s)
            default_s, small_s = medians["default"], medians.get("small")
            default_peak = peak_memory_mib(call)
            outputs_mib = sum(a.nbytes for a in call()) / MIB
            small_peak = None if small is None else peak_memory_mib(small)
            rows.append(
                MemoryRow(
                    op=op,
                    case=case.name,
                    dtype=np.dtype(dtype).name,
                    batch=batch,
                    default_limit_mib=None if default_limit is None else default_limit / MIB,
                    small_limit_mib=SMALL_WORKSPACE / MIB,
                    default_s=default_s,
                    default_peak_mib=default_peak,
                    small_s=small_s,
                    small_peak_mib=small_peak,
                    time_ratio=None if small_s is None else small_s / default_s,
                    outputs_mib=outputs_mib,
                )
            )
    return rows, note


def _scaling(cases: Sequence[Case], step: bool, settings: Settings) -> list[str]:
    """The scaling section's table (:mod:`benchmarks.scaling`): ``cases`` and, with ``step``, the training step."""
    jobs = scaling.jobs_for(cases, step=step)
    rounds = 1 if settings.quick else scaling.ROUNDS
    result = scaling.measure(
        jobs, rounds=rounds, repeats=settings.repeats, min_total_s=settings.min_total_s / 2, progress=progress
    )
    return scaling.format_table(result)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"about a minute on 2 cores: cases {QUICK_CASES} (unless --cases), "
        f"at most {QUICK_BATCH} images per case, fewer timed runs; for CI and a first look",
    )
    all_cases = ",".join(c.name for c in CASES)
    parser.add_argument("--cases", help=f"comma-separated cases to run, e.g. C2,C4,P1 (all: {all_cases})")
    parser.add_argument("--repeats", type=int, help="minimum timed runs per measurement (default 5; 3 with --quick)")
    parser.add_argument("--json", metavar="PATH", help="write all rows as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG bar chart to PATH (needs matplotlib)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column even if torch is installed")
    parser.add_argument("--step-only", action="store_true", help="run only the training-step section (two small nets)")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="print only the scratch-memory section (peak scratch against the workspace limit; also part of a "
        "full run without --cases or --quick)",
    )
    parser.add_argument(
        "--layouts",
        action="store_true",
        help="run only the layout section: channels-first against channels-last on the conv cases (also part of a "
        "full run without --cases or --quick)",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="run only the scaling section: each case (and, without --cases, the training step) on 1 core and on "
        "all cores, each in processes of its own, against its floor's scaling (also part of a full run without "
        "--cases or --quick)",
    )
    parser.add_argument(
        "--dask", action="store_true", help="only the out-of-core section: a lazy batch on 1 and 2 Dask workers"
    )
    parser.add_argument("--dask-full", action="store_true", help="--dask on 20,000 images (2.6 GB) instead of 2,000")
    parser.add_argument("--dask-images", type=int, metavar="N", help="--dask on N images")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.dask_images is not None and args.dask_images < 1:
        parser.error("--dask-images must be >= 1")
    try:
        args.selected = parse_cases(args.cases or (QUICK_CASES if args.quick else all_cases))
    except ValueError as exc:
        parser.error(str(exc))
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path and (problem := check_writable(path, option)):
            parser.error(problem)
    if args.plot and (problem := check_plot_available()):
        parser.error(problem)
    if args.step_only:
        args.selected = []
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dask or args.dask_full or args.dask_images:
        from . import out_of_core

        return out_of_core.main(args.dask_images or (out_of_core.FULL_IMAGES if args.dask_full else None))
    if args.memory_only:
        print("\n".join(format_scratch_table(measure_scratch(progress=progress))))
        return 0
    settings = Settings(
        repeats=args.repeats or (3 if args.quick else 5),
        min_total_s=0.05 if args.quick else 0.3,
        batch_cap=QUICK_BATCH if args.quick else None,
        quick=args.quick,
    )
    started = time.perf_counter()
    info = collect_system_info()  # before torch loads its own threading libraries
    print("im2col_cnn benchmark report (python -m benchmarks" + (" --quick): QUICK RUN" if args.quick else ")"))
    for line in info.lines():
        print(line)
    torch = None
    if args.no_torch:
        torch_line = "PyTorch column skipped: --no-torch given"
    else:
        from .torch_peer import load_torch

        torch, torch_line = load_torch(info.blas_threads or os.cpu_count() or 1)
    print(torch_line)
    quick_note = None
    if args.quick:
        quick_note = (
            f"QUICK MODE: at most {QUICK_BATCH} images per case, >= {settings.repeats} timed runs per measurement; "
            "a first look, not the figures for the targets (run without --quick for those)."
        )
        print(quick_note)
    print("Cases:")
    for case in args.selected:
        print(f"  {case.name}: {case.describe()}")
    print(flush=True)

    if args.scaling:
        print("\n".join(_scaling(args.selected, args.cases is None, settings)))
        return 0
    if args.layouts:
        batch = settings.batch_cap
        layout_rows = layouts.measure(args.selected, settings.repeats, settings.min_total_s, batch, progress)
        print("\n".join(layouts.format_table(layout_rows)))
        return 0

    rows: list[Row] = []
    jobs = [(op, case, dtype) for op in OPS for case in cases_for(op, args.selected) for dtype in DTYPES]
    torch_results = {} if torch is None else measure_torch(torch, jobs, settings)
    for op in OPS:
        op_rows = []
        for case in cases_for(op, args.selected):
            for dtype in DTYPES:
                row = measure_row(op, case, dtype, settings, torch_results.get((op, case, dtype)))
                op_rows.append(row)
                torch_text = "" if row.torch_s is None else f", torch {row.torch_s * 1e3:.3f} ms ({row.torch_layout})"
                progress(
                    f"[{len(rows) + len(op_rows):>2}/{len(jobs)}] {op} {case.name} {row.dtype}: "
                    f"engine {row.engine_s * 1e3:.3f} ms, loops {row.loops_s:.2f} s "
                    f"({row.speedup:.0f}x){torch_text}"
                )
        rows += op_rows
        if op_rows:
            print("\n".join(format_op_table(op, op_rows)) + "\n", flush=True)
    if rows:
        print("\n".join(table_notes(torch_line, quick_note)) + "\n")

    unit_height = []
    if not args.step_only and unit_height_case.CASE in {c.name for c in args.selected}:
        progress(f"[unit height] {unit_height_case.CASE}")
        unit_height = unit_height_case.measure(settings.repeats, settings.min_total_s, settings.batch_cap)
        print("\n".join(unit_height_case.format_table(unit_height)) + "\n")

    layout_rows: list[dict[str, object]] = []
    if not args.step_only and args.cases is None and not args.quick:
        layout_rows = layouts.measure(args.selected, settings.repeats, settings.min_total_s, None, progress)
        print("\n".join(layouts.format_table(layout_rows)) + "\n")

    memory: list[MemoryRow] = []
    if not args.step_only and (args.cases is None or MEMORY_CASE in {c.name for c in args.selected}):
        memory, note = measure_memory(settings)
        print("\n".join(format_memory_table(memory, note)) + "\n")
    if not args.step_only and args.cases is None and not args.quick:
        print("\n".join(format_scratch_table(measure_scratch(progress=progress))) + "\n")

    if not args.step_only and args.cases is None and not args.quick:
        print("\n".join(_scaling(args.selected, True, settings)) + "\n", flush=True)

    step = None
    if args.step_only or args.cases is None:
        from . import training_step

        step = training_step.run(
            training_step.wrap_engine(engine),
            torch,
            torch_line,
            batch=QUICK_BATCH if args.quick else training_step.BATCH,
            timing=training_step.Timing(settings.repeats, settings.min_total_s)
            if args.quick
            else training_step.Timing(max(settings.repeats, training_step.REPEATS)),
            progress=progress,
        )

    elapsed = time.perf_counter() - started
    print(f"Total time {elapsed:.1f} s.", flush=True)
    if args.json:
        meta = {
            "system": info.as_dict(),
            "torch": torch_line,
            "quick": args.quick,
            "quick_note": quick_note,
            "repeats": settings.repeats,
            "batch_cap": settings.batch_cap,
            "cases": {c.name: c.describe() for c in args.selected},
            "elapsed_s": elapsed,
            "training_step": step,
            "unit_height": unit_height,
            "layouts": layout_rows,
        }
        write_json(args.json, meta, rows, memory)
        print(f"Wrote {args.json}")
    if args.plot:
        note = f"quick run: at most {QUICK_BATCH} images per case, not the figures to quote" if args.quick else None
        write_plot(args.plot, rows, note)
        print(f"Wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
