"""The scaling section of ``python -m benchmarks`` (``--scaling`` runs it alone): one core against all of them.

Every conv case (forward, backward), pooling case and the training step is timed in processes of their own: one
with ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``IM2COL_CNN_NUM_THREADS`` all 1,
one with all of them the number of cores this process may use. The two kinds of process alternate over
``ROUNDS`` rounds; each figure is the minimum over the rounds of each process's minimum of repeated calls. Beside
the op, in a block of runs of its own, the same is measured for its floor: the bare matrix products of the same
shapes (conv; the step's GEMMs for the step), or a copy of the input made by every thread at once, a block of
images each (pooling: :func:`threaded_copy`; NumPy's own copy runs on one thread, so as a floor for scaling it
would say nothing -- the threaded copy shows how far one pass over the input can speed up on this machine's
memory).

From a 1-core time ``t1`` and an N-core time ``tN`` the speedup is ``S = t1 / tN``, and Amdahl's law gives the
serial fraction ``f = (N/S - 1) / (N - 1)``: the part of ``t1`` no core but one can run. An op's time on P cores
is then projected as ``t1 * (f + (1 - f) / P)``, and so is its floor's; the ratio of the two is what a user with
P cores would see. The targets: a conv row's speedup at least 0.95x its bare products' speedup, a pooling row's at
least 1.7 (on 2 cores), the training step's engine layers (the step without the caller's NumPy ReLU and loss) at
least 0.95x its GEMM floor's speedup.

The step is timed twice: as a user's process runs it, and with the C library told to keep the memory a step frees
(the ``:kept`` rows, glibc's ``mallopt``; run last in each process, as it holds for the rest of it). By default
glibc hands large freed blocks back to the system, so each step's fresh activations are mapped and zeroed again,
page by page (about 9,000 page faults a step for net B in float32, on this kind of host about a tenth of the
step); the GEMM floor, timed in a loop of products of one size, pays none. The second row shows the step without
that cost, which no library can remove from the caller's allocations (README, "Fresh memory in a training
loop").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ROUNDS",
    "PROJECTED",
    "threaded_copy",
    "measure",
    "format_table",
    "serial_fraction",
    "projected_ratio",
    "main",
]

ROUNDS = 3
PROJECTED = (8, 16, 64)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "IM2COL_CNN_NUM_THREADS")
CONV_TARGET = 0.95  # a conv row's speedup over its bare products' speedup
POOL_TARGET = 1.7  # a pooling row's speedup on 2 cores
STEP_NET = "B"
PAUSE_S = 0.3  # after each block of runs: the BLAS's idle threads stop spinning within about 0.1 s


def serial_fraction(speedup: float, cores: int) -> float:
    """Amdahl's serial fraction of an op that runs ``speedup`` times faster on ``cores`` cores than on one."""
    return 0.0 if cores <= 1 else (cores / speedup - 1) / (cores - 1)


def projected_ratio(t1: float, speedup: float, floor_t1: float, floor_speedup: float, cores: int, to: int) -> float:
    """The op's time over its floor's at ``to`` cores, each projected by Amdahl's law from its 1-core time and
    its speedup on ``cores`` cores."""

    def at(t: float, s: float) -> float:
        f = min(max(serial_fraction(s, cores), 0.0), 1.0)
        return t * (f + (1 - f) / to)

    return at(t1, speedup) / at(floor_t1, floor_speedup)


def jobs_for(cases: Sequence[Any], step: bool) -> list[str]:
    """Job names ``op:case:dtype`` for ``cases`` (:mod:`benchmarks.cases`), and with ``step`` ``step:B:dtype``."""
    from .cases import DTYPES, OPS, cases_for

    jobs = [
        f"{op}:{case.name}:{np.dtype(dt).name}"
        for case in cases
        for op in OPS
        if case in cases_for(op, [case])
        for dt in DTYPES
    ]
    if step:
        jobs += [f"step:{STEP_NET}:{np.dtype(dt).name}" for dt in DTYPES]
        if keep_freed_memory(check_only=True):
            jobs += [f"step:{STEP_NET}:{np.dtype(dt).name}:{KEPT}" for dt in DTYPES]
    return jobs


KEPT = "kept"
"""The suffix of a step job run with the freed memory kept (:func:`keep_freed_memory`)."""


def keep_freed_memory(*, check_only: bool = False) -> bool:
    """Tell glibc to keep the memory the process frees (no trimming of the heap's top, and blocks up to 32 MiB
    from the heap, not from mappings of their own), so that later allocations reuse pages already mapped. Whether
    this C library can (glibc on Linux); with ``check_only``, nothing is changed."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":  # musl has a mallopt that does nothing; macOS and Windows none
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    if check_only:
        return True
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_trim_threshold, 2**30)) and bool(mallopt(m_mmap_threshold, 32 * 2**20))


# --- In a child process: one thread count ----------------------------------------------------------------------


def _min_time(call: Callable[[], object], repeats: int, min_total_s: float) -> float:
    """Minimum seconds of ``call`` over a block of runs after a warm-up, then a pause.

    The op and its floor are timed in blocks of their own, never alternated call by call: after a product on
    several BLAS threads, OpenBLAS's idle threads spin for about 0.1 s, and an op on the engine's own threads run
    in that time shares the cores with them (measured on 2 cores: C3 forward 8.9 -> 16.4 ms).
    """
    call()
    best, total, runs = float("inf"), 0.0, 0
    while runs < repeats or (total < min_total_s and runs < 200):
        t0 = time.perf_counter()
        call()
        elapsed = time.perf_counter() - t0
        best, total, runs = min(best, elapsed), total + elapsed, runs + 1
    time.sleep(PAUSE_S)
    return best


def threaded_copy(x: np.ndarray) -> np.ndarray:
    """A copy of ``x`` into a fresh array, made by the engine's threads (``IM2COL_CNN_NUM_THREADS``), a block of
    images each (the engine's own per-thread blocks, :func:`~im2col_cnn.kernels.global_mean.image_blocks`): on one
    thread ``x.copy()``; on more, each thread reads and writes its part at once."""
    from im2col_cnn.kernels.global_mean import image_blocks
    from im2col_cnn.runtime.parallel import map_blocks

    y = np.empty_like(x)
    blocks = image_blocks(x.shape, x.itemsize)
    map_blocks(lambda b, _: np.copyto(y[b[0] : b[1]], x[b[0] : b[1]]), blocks, lambda: None)
    return y


def _case_calls(job: str) -> dict[str, Callable[[], object]]:
    import im2col_cnn as engine

    from .cases import ConvCase, case_by_name, make_call, make_inputs
    from .timing import matmul_limit_call

    op, name, dtype_name = job.split(":")
    case, dtype = case_by_name(name), np.dtype(dtype_name).type
    inputs = make_inputs(case, dtype)
    if isinstance(case, ConvCase):
        floor = matmul_limit_call(case, dtype, case.batch, op.endswith("_backward"))
    else:
        floor = partial(threaded_copy, inputs.x)
    return {"op": make_call(engine, op, case, inputs), "floor": floor}


def _step_times(job: str, repeats: int, min_total_s: float) -> dict[str, float]:
    """The training step's minimum, its engine layers' (the sum of every lap but the ReLUs and the loss, per
    step) and its GEMM floor's."""
    import im2col_cnn

    from .training_nets import NETS, engine_step, make_inputs, wrap_engine
    from .training_step import BATCH, gemm_products

    _, name, dtype_name, *kept = job.split(":")
    if kept and not keep_freed_memory():
        raise RuntimeError("this C library cannot be told to keep freed memory")
    net = next(n for n in NETS if n.name == name)
    dtype = np.dtype(dtype_name).type
    inputs = make_inputs(net, dtype, BATCH)
    engine = wrap_engine(im2col_cnn)
    products = gemm_products(net, dtype, BATCH)
    steps: list[tuple[float, float]] = []  # (whole step, its engine layers)

    def step() -> None:
        laps: list[tuple[str, float]] = []
        t0 = time.perf_counter()
        engine_step(engine, net, inputs, laps)
        steps.append((time.perf_counter() - t0, sum(s for op, s in laps if not op.startswith("relu") and op != "loss")))

    _min_time(step, repeats, min_total_s)
    floor = _min_time(lambda: [product() for product in products], repeats, min_total_s)
    steps = steps[1:]  # the warm-up
    return {"op": min(s for s, _ in steps), "layers": min(layers for _, layers in steps), "floor": floor}


def run_child(jobs: Sequence[str], repeats: int, min_total_s: float) -> dict[str, dict[str, float]]:
    """Every job's minimum times in this process (its thread count comes from the environment)."""
    results = {}
    for job in sorted(jobs, key=lambda j: j.endswith(KEPT)):  # the kept-memory steps last: it holds from then on
        if job.startswith("step:"):
            results[job] = _step_times(job, repeats, min_total_s)
        else:
            results[job] = {name: _min_time(call, repeats, min_total_s) for name, call in _case_calls(job).items()}
    return results


# --- In the parent: rounds of child processes ------------------------------------------------------------------


def _child(jobs: Sequence[str], threads: int, repeats: int, min_total_s: float) -> dict[str, dict[str, float]]:
    env = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads)))
    root = str(Path(__file__).resolve().parents[1])  # where this benchmarks package is: the child imports it too
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "benchmarks.scaling", "--child", "--repeats", str(repeats)]
    command += ["--min-total-s", str(min_total_s), "--jobs", ",".join(jobs)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scaling child ({threads} threads) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(
    jobs: Sequence[str],
    *,
    rounds: int = ROUNDS,
    repeats: int = 5,
    min_total_s: float = 0.2,
    cores: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Every job on 1 core and on ``cores`` (default: all this process may use), alternating over ``rounds``."""
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    best: dict[int, dict[str, dict[str, float]]] = {1: {}, cores: {}}
    loads = []
    for r in range(rounds):
        for threads in (1, cores):
            loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
            progress(f"[scaling] round {r + 1}/{rounds}, {threads} thread(s): {len(jobs)} jobs")
            for job, times in _child(jobs, threads, repeats, min_total_s).items():
                seen = best[threads].setdefault(job, {})
                for key, value in times.items():
                    seen[key] = min(seen.get(key, float("inf")), value)
    return {"cores": cores, "rounds": rounds, "loads": loads, "one": best[1], "all": best[cores], "jobs": list(jobs)}


def _target(job: str, speedup: float, floor_speedup: float, cores: int) -> tuple[float, str]:
    """(what this row's speedup must reach, the target as text)."""
    if job.startswith("step:") or "conv" in job:
        return CONV_TARGET * floor_speedup, f">= {CONV_TARGET} x floor"
    return POOL_TARGET if cores == 2 else POOL_TARGET * cores / 2, f">= {POOL_TARGET}"


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per job (and for the step, one more for its engine layers alone), with every derived figure."""
    cores, out = result["cores"], []
    for job in result["jobs"]:
        one, many = result["one"][job], result["all"][job]
        names = [("op", job)] if not job.endswith(KEPT) else []
        if job.startswith("step:"):
            names.append(("layers", job.replace("step:", "step layers:")))
        for key, label in names:
            speedup, floor_speedup = one[key] / many[key], one["floor"] / many["floor"]
            needed, target = _target(job, speedup, floor_speedup, cores)
            out.append(
                {
                    "row": label,
                    "one_ms": one[key] * 1e3,
                    "all_ms": many[key] * 1e3,
                    "speedup": speedup,
                    "floor_speedup": floor_speedup,
                    "serial": serial_fraction(speedup, cores),
                    "floor_serial": serial_fraction(floor_speedup, cores),
                    "projected": {
                        p: projected_ratio(one[key], speedup, one["floor"], floor_speedup, cores, p) for p in PROJECTED
                    },
                    "target": target,
                    "met": speedup >= needed,
                }
            )
    return out


def format_table(result: dict[str, Any]) -> list[str]:
    cores = result["cores"]
    loads = ", ".join(f"{v:.2f}" for v in result["loads"])
    head = (
        f"{'row':<34} {'1 core ms':>9} {cores:>2} cores {'speedup':>7} {'floor':>6} {'serial':>6} {'floor':>6} "
        + " ".join(f"{'x@' + str(p):>6}" for p in PROJECTED)
        + f"  {'target':<14}"
    )
    lines = [
        f"== scaling: 1 core against {cores}, each in processes of its own, min over {result['rounds']} "
        f"alternating rounds ==",
        f"1-minute load average before each process: {loads}",
        head,
        "-" * len(head),
    ]
    for r in rows(result):
        lines.append(
            f"{r['row']:<34} {r['one_ms']:>9.3f} {r['all_ms']:>8.3f} {r['speedup']:>7.2f} {r['floor_speedup']:>6.2f} "
            f"{r['serial']:>6.2f} {r['floor_serial']:>6.2f} "
            + " ".join(f"{r['projected'][p]:>6.2f}" for p in PROJECTED)
            + f"  {r['target']:<11} {'met' if r['met'] else 'MISSED'}"
        )
    lines += [
        "speedup: 1-core time / all-core time; floor: the same for the bare matrix products (conv, step) or a copy",
        "of the input made by every thread at once (pooling); serial: Amdahl's serial fraction of each; x@P: the",
        "op's time over its floor's projected to P cores. 'step layers' is the training step without the caller's",
        "ReLU and loss; ':kept' the same with the C library keeping freed memory (no page faults on each step's",
        "fresh activations).",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cases", help="comma-separated cases (default: all) ")
    parser.add_argument("--no-step", action="store_true", help="leave out the training step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--min-total-s", type=float, default=0.2)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.jobs.split(","), args.repeats, args.min_total_s)))
        return 0
    from .cases import CASES, parse_case_names

    jobs = jobs_for(parse_case_names(args.cases) if args.cases else CASES, step=not args.no_step)
    result = measure(
        jobs,
        rounds=args.rounds,
        repeats=args.repeats,
        min_total_s=args.min_total_s,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print("\n".join(format_table(result)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
