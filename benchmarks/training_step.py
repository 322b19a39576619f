"""The end-to-end section of ``python -m benchmarks``: a training step of two small CNNs, the engine against PyTorch.

The nets and the step itself are in :mod:`benchmarks.training_nets`. The engine's step is timed whole and op by
op; PyTorch's (``nn.functional`` with autograd, NCHW and channels_last) in a block of runs of its own. Run alone
with ``python -m benchmarks.training_step`` (or ``python -m benchmarks --step-only``); ``--engine DIR`` times the
``im2col_cnn`` package found in ``DIR`` instead of the one on ``sys.path``, e.g. a checkout of an older version.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .timing import bare_products
from .training_nets import (
    DTYPES,
    NETS,
    Engine,
    Inputs,
    Laps,
    Net,
    engine_step,
    load_engine,
    make_inputs,
    max_rel_diff,
    torch_grads,
    torch_step,
    torch_tensors,
    wrap_engine,
)

__all__ = [
    "BATCH",
    "REPEATS",
    "MIN_TOTAL_S",
    "Timing",
    "wrap_engine",
    "repeat",
    "time_engine",
    "time_torch",
    "gemm_products",
    "time_gemms",
    "run",
    "main",
]

BATCH = 64
QUICK_BATCH = 8
QUICK_MIN_TOTAL_S = 0.05
REPEATS = 10  # at least this many timed steps per measurement...
MIN_TOTAL_S = 1.0  # ... and more until this much was timed
PAUSE_S = 0.5  # idle time between PyTorch's block and the engine's: their worker threads spin a while after a call
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Timing:
    """At least ``repeats`` timed steps, more (up to ``max_repeats``) until ``min_total_s`` was timed, on ``clock``:
    'wall' (``time.perf_counter``) or 'cpu' (``time.process_time``: CPU seconds of the whole process, all its
    threads; with one thread per library it ignores other processes sharing the cores)."""

    repeats: int = REPEATS
    min_total_s: float = MIN_TOTAL_S
    clock: str = "wall"
    max_repeats: int = 200


def repeat(fn: Callable[[], object], timing: Timing) -> list[float]:
    """Seconds (by ``timing.clock``) of each timed call of ``fn``, after one warm-up call."""
    clock = CLOCKS[timing.clock]
    fn()
    times: list[float] = []
    while len(times) < max(1, timing.repeats) or (sum(times) < timing.min_total_s and len(times) < timing.max_repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


def time_torch(torch: ModuleType, net: Net, inputs: Inputs, timing: Timing) -> dict[str, Any]:
    """PyTorch's step timed per layout, each in a block of its own; the layout with the lower minimum is kept."""
    best: dict[str, Any] = {}
    for layout in ("NCHW", "channels_last"):
        x, leaves, g = torch_tensors(torch, inputs, layout)
        times = repeat(lambda x=x, leaves=leaves, g=g: torch_step(torch, net, x, leaves, g), timing)
        if not best or min(times) < best["torch_min_s"]:
            best = {"torch_min_s": min(times), "torch_median_s": statistics.median(times), "torch_layout": layout}
    return best


def time_engine(engine: Engine, net: Net, inputs: Inputs, timing: Timing) -> dict[str, Any]:
    """The engine's step timed whole (min, median) and per op (min, median of that op's laps in the same runs)."""
    runs: list[Laps] = []

    def step() -> None:
        runs.append([])
        engine_step(engine, net, inputs, runs[-1], clock=CLOCKS[timing.clock])

    times = repeat(step, timing)
    runs = runs[1:]  # drop the warm-up
    ops = {
        name: {"min_s": min(v), "median_s": statistics.median(v)}
        for name, v in ((name, [run[i][1] for run in runs]) for i, (name, _) in enumerate(runs[0]))
    }
    overhead = sum(v["median_s"] for k, v in ops.items() if k.startswith("relu") or k == "loss")
    return {
        "engine_min_s": min(times),
        "engine_median_s": statistics.median(times),
        "ops": ops,
        "relu_loss_s": overhead,
    }


def gemm_products(net: Net, dtype: type[np.floating], batch: int) -> list[Callable[[], object]]:
    """The bare matrix products of one step of ``net`` in the im2col design (:func:`~benchmarks.timing.bare_products`).

    Per conv layer (``M = N*H*W``, ``K = 9*C_in``, ``N = C_out``): the forward ``cols @ w``, the weight gradient
    ``colsᵀ @ dout`` and, except for the first layer (whose input needs no gradient), the input gradient's
    ``dout @ wᵀ`` (its flipped-kernel correlation has the same flops). Their time is the floor of this design: no
    window copying, no pooling, no ReLU.
    """
    products: list[Callable[[], object]] = []
    inputs = zip(net.layers, net.shapes(batch)[:-1], strict=True)  # each layer with its input's shape
    convs = [(layer, shape) for layer, shape in inputs if layer[0] == "conv"]
    for index, (layer, (n, h, w, c)) in enumerate(convs):
        m, k = n * h * w, 9 * c
        products += bare_products(m, k, layer[1], dtype, forward=True, backward=True, input_grad=index > 0)
    return products


def time_gemms(net: Net, dtype: type[np.floating], batch: int, timing: Timing) -> dict[str, Any]:
    """Minimum and median seconds of all of :func:`gemm_products` run back to back, as whole steps are timed."""
    products = gemm_products(net, dtype, batch)
    times = repeat(lambda: [product() for product in products], timing)
    return {"gemm_min_s": min(times), "gemm_median_s": statistics.median(times)}


def measure(
    engine: Engine, torch: ModuleType | None, net: Net, dtype: type[np.floating], batch: int, timing: Timing
) -> dict[str, Any]:
    """Every figure of one (net, dtype): PyTorch's block first (then a pause), then the engine's, then the bare
    matrix products of the engine's design."""
    inputs = make_inputs(net, dtype, batch)
    row: dict[str, Any] = {"net": net.name, "dtype": np.dtype(dtype).name, "batch": batch}
    row.update(torch_min_s=None, torch_median_s=None, torch_layout=None, x_torch=None, max_rel_diff=None)
    if torch is not None:
        loss, grads = engine_step(engine, net, inputs, activation_grads=True)
        torch_loss, expected = torch_grads(torch, net, inputs)
        row["max_rel_diff"] = max(max_rel_diff(grads, expected), abs(loss - torch_loss) / max(abs(torch_loss), 1e-30))
        row.update(time_torch(torch, net, inputs, timing))
        time.sleep(PAUSE_S)
    row.update(time_engine(engine, net, inputs, timing))
    row.update(time_gemms(net, dtype, batch, timing))
    row["gemm_x_torch"] = None
    if torch is not None:
        row["x_torch"] = row["engine_min_s"] / row["torch_min_s"]
        row["gemm_x_torch"] = row["gemm_min_s"] / row["torch_min_s"]
    return row


def _ms(seconds: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if seconds is None else f"{seconds * 1e3:>{width}.2f}"


def format_tables(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The step table (one line per net and dtype), then one per-op table per net."""
    head = (
        f"{'net':<4}{'dtype':<8}{'N':>3} {'engine min':>10} {'median':>7} {'torch min':>9} {'median':>7} "
        f"{'torch layout':<13} {'x torch':>7} {'GEMMs min':>9} {'x torch':>7} {'ReLU+loss':>9} {'max rel diff':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio, floor = ("n/a" if v is None else f"{v:.2f}" for v in (r["x_torch"], r["gemm_x_torch"]))
        diff = "n/a" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        lines.append(
            f"{r['net']:<4}{r['dtype']:<8}{r['batch']:>3} {_ms(r['engine_min_s'], 10)} {_ms(r['engine_median_s'], 7)} "
            f"{_ms(r['torch_min_s'], 9)} {_ms(r['torch_median_s'], 7)} {r['torch_layout'] or 'n/a':<13} {ratio:>7} "
            f"{_ms(r['gemm_min_s'], 9)} {floor:>7} {_ms(r['relu_loss_s'], 9)} {diff:>12}"
        )
    for net in NETS:
        mine = [r for r in rows if r["net"] == net.name]
        if not mine:
            continue
        lines += ["", f"Per op, net {net.name} (ms; % of the sum of the ops' medians):"]
        head = f"{'op':<11}" + "".join(f" {r['dtype'] + ' min':>11} {'median':>7} {'%':>5}" for r in mine)
        lines += [head, "-" * len(head)]
        for op in mine[0]["ops"]:
            cells = []
            for r in mine:
                total = sum(v["median_s"] for v in r["ops"].values())
                v = r["ops"][op]
                cells.append(f" {_ms(v['min_s'], 11)} {_ms(v['median_s'], 7)} {100 * v['median_s'] / total:>5.1f}")
            lines.append(f"{op:<11}" + "".join(cells))
        sums = [
            (sum(v["min_s"] for v in r["ops"].values()), sum(v["median_s"] for v in r["ops"].values())) for r in mine
        ]
        lines.append(f"{'sum of ops':<11}" + "".join(f" {_ms(lo, 11)} {_ms(mid, 7)} {100.0:>5.1f}" for lo, mid in sums))
        steps = "".join(f" {_ms(r['engine_min_s'], 11)} {_ms(r['engine_median_s'], 7)} {'':>5}" for r in mine)
        lines.append(f"{'whole step':<11}" + steps)
    return lines


def load_average() -> list[float] | None:
    """``os.getloadavg()`` (1, 5 and 15 minutes), or None where the platform has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def thread_pools() -> list[str]:
    """One line per thread pool loaded in this process (BLAS libraries, OpenMP runtimes), from threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["thread pools: threadpoolctl not installed"]
    return [
        f"thread pool: {p.get('internal_api')} {p.get('version')} ({p.get('user_api')}"
        + (f", kernel {p['architecture']}" if p.get("architecture") else "")
        + f", {p.get('num_threads')} threads) {os.path.basename(str(p.get('filepath', '')))}"
        for p in threadpool_info()
    ]


def engine_threads(engine: Engine) -> int | None:
    """The engine's own thread count (``get_num_threads()``), or None for an engine without that setting."""
    getter = getattr(engine.module, "get_num_threads", None)
    return int(getter()) if callable(getter) else None


def _load_text(load: list[float] | None) -> str:
    return "n/a" if load is None else ", ".join(f"{v:.2f}" for v in load)


def header(engine: Engine, torch_line: str, batch: int, timing: Timing, load: list[float] | None) -> list[str]:
    skip = "conv2d_backward(need_dx=False)" if engine.need_dx else "not available (conv1's dx computed, discarded)"
    pools = thread_pools()
    lines = [
        f"== training step: batch {batch}, forward + backward of every layer, loss sum(out * g) ==",
        f"Engine: {engine.module.__file__}; first layer's input gradient skipped: {skip}",
        f"Engine threads (get_num_threads): {engine_threads(engine) or 'n/a (no such setting)'}; {torch_line}",
        *pools,
        f"Load average (1, 5, 15 min) at the start: {_load_text(load)} on {os.cpu_count()} cores",
        f"Clock: {timing.clock}",
    ]
    if timing.clock == "cpu" and ((engine_threads(engine) or 1) > 1 or any(", 1 threads)" not in p for p in pools)):
        lines.append("WARNING: CPU time counts every thread, spinning ones too: set one thread per library to compare.")
    return lines


def notes(timing: Timing, load: list[float] | None) -> list[str]:
    clock = "time.perf_counter (wall)" if timing.clock == "wall" else "time.process_time (CPU, all threads)"
    return [
        f"ms: {clock} over whole steps after a warm-up; min and median of at least {timing.repeats} steps",
        f"  (more until {timing.min_total_s:g} s was timed). The machine may be shared and noisy: compare minimums.",
        "torch: nn.functional conv2d / relu / max_pool2d and autograd.grad of the weights and biases (the",
        "  activations' gradients computed on the way), best of NCHW and channels_last, timed in a block of runs",
        "  of its own before the engine's. x torch = engine min / torch min (< 1: the engine is faster).",
        "GEMMs: the bare matrix products of the step in this design (forward, weight gradient and, past the first",
        "  layer, input gradient of every conv) on preallocated random matrices, run back to back after the engine's",
        "  block: the floor of an im2col engine on this BLAS. The x torch beside it = GEMMs min / torch min.",
        "ReLU+loss: the medians of the NumPy ReLU ops (in place; backward multiplies by a bool mask) and the loss.",
        "max rel diff: max |engine - torch| / max |torch| over the loss, dw, db and every conv input's gradient.",
        "Per op: laps within the same timed engine steps; 'conv1 bwd' skips dx only where need_dx exists.",
        f"Load average (1, 5, 15 min) at the end: {_load_text(load)}",
    ]


def run(
    engine: Engine,
    torch: ModuleType | None,
    torch_line: str,
    *,
    batch: int = BATCH,
    timing: Timing = Timing(),
    nets: Sequence[Net] = NETS,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Measure and print the section; return it as a JSON-able dict (``{"meta": ..., "rows": [...]}``)."""
    load_start = load_average()
    print("\n".join(header(engine, torch_line, batch, timing, load_start)), flush=True)
    rows = []
    for net in nets:
        for dtype in DTYPES:
            progress(f"[training step] net {net.name} {np.dtype(dtype).name}")
            rows.append(measure(engine, torch, net, dtype, batch, timing))
    print("\n".join([*(f"Net {n.name}: {n.describe()}" for n in nets), *format_tables(rows)]))
    load_end = load_average()
    print("\n".join(notes(timing, load_end)) + "\n", flush=True)
    meta = {
        "engine_file": engine.module.__file__,
        "need_dx": engine.need_dx,
        "engine_threads": engine_threads(engine),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "torch": torch_line,
        "thread_pools": thread_pools(),
        "batch": batch,
        "repeats": timing.repeats,
        "min_total_s": timing.min_total_s,
        "clock": timing.clock,
        "nets": {n.name: n.describe() for n in nets},
    }
    return {"meta": meta, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_step", description=__doc__)
    parser.add_argument("--engine", metavar="DIR", help="time the im2col_cnn package in DIR (e.g. an older checkout)")
    parser.add_argument("--quick", action="store_true", help=f"a first look: batch {QUICK_BATCH}, 3 timed steps")
    parser.add_argument("--batch", type=int, help=f"images per step (default {BATCH}; {QUICK_BATCH} with --quick)")
    parser.add_argument("--repeats", type=int, help=f"minimum timed steps (default {REPEATS}; 3 with --quick)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall (default) or cpu: the process's CPU time, which other processes sharing the cores do not inflate; "
        "meaningful with one thread per library (OPENBLAS_NUM_THREADS=1 IM2COL_CNN_NUM_THREADS=1; PyTorch then "
        "gets one thread too), as spinning worker threads count",
    )
    args = parser.parse_args(argv)
    batch = (QUICK_BATCH if args.quick else BATCH) if args.batch is None else args.batch
    repeats = (3 if args.quick else REPEATS) if args.repeats is None else args.repeats
    if batch < 1 or repeats < 1:
        parser.error("--batch and --repeats must be >= 1")
    from .sysinfo import collect_system_info

    try:
        engine = load_engine(args.engine)
    except ValueError as exc:
        parser.error(str(exc))
    info = collect_system_info()  # before torch loads its own threading libraries
    print("\n".join(info.lines()))
    torch, torch_line = None, "PyTorch skipped: --no-torch given"
    if not args.no_torch:
        from .torch_peer import load_torch

        torch, torch_line = load_torch(info.blas_threads or os.cpu_count() or 1)
    timing = Timing(repeats, QUICK_MIN_TOTAL_S if args.quick else MIN_TOTAL_S, args.clock)
    run(engine, torch, torch_line, batch=batch, timing=timing)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
