"""Pooling against PyTorch and another checkout of the engine: P1/P2, max/avg, forward/backward, ms.

Run ``python -m benchmarks.pool_peer [--baseline PATH] [--repeats N] [--dtypes float32,float64]``. Each side runs
in its own subprocess (the engine of this checkout, the engine at ``--baseline`` if given, PyTorch CPU with 2
threads, best of NCHW and channels_last), so that no side's idle worker threads slow another. Figures are the
minimum of repeats; on a shared machine they are noisy, so compare sides of one run only. ``--threads N`` sets
the engine's threads; ``--clock cpu`` times the engine by its thread's CPU time (one thread), which a busy
machine disturbs less than wall time; ``--rows 'P2 max'`` keeps the rows whose name contains that text.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# name: (x shape NHWC, kernel, stride, padding)
CASES = {"P1": ((64, 32, 32, 64), 2, 2, 0), "P2": ((32, 56, 56, 64), 3, 2, 1)}
ROWS = [(case, kind, op) for case in CASES for kind in ("max", "avg") for op in ("fwd", "bwd")]


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
_clock = time.perf_counter
_row_filter: str | None = None


def _best(fn: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None) -> float:
    """Minimum time in ms of ``fn()`` (or ``fn(setup())``, setup untimed) over ``repeats`` runs after a warm-up."""
    fn() if setup is None else fn(setup())
    best = float("inf")
    for _ in range(repeats):
        arg = None if setup is None else setup()
        t0 = _clock()
        fn() if setup is None else fn(arg)
        best = min(best, _clock() - t0)
    return best * 1e3


def _inputs(case: str, dtype: str) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    shape, k, s, p = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)  # (N, H, W, C)
    ho = (shape[1] + 2 * p - k) // s + 1
    wo = (shape[2] + 2 * p - k) // s + 1
    dout = rng.standard_normal((shape[0], ho, wo, shape[3])).astype(dtype)  # (N, Ho, Wo, C)
    return x, dout, k, s, p


def _engine_times(repeats: int, dtypes: list[str], threads: int | None) -> dict[str, float]:
    import im2col_cnn as ic

    if threads is not None and hasattr(ic, "set_num_threads"):
        ic.set_num_threads(threads)

    times = {}
    for dtype in dtypes:
        for case, kind, op in ROWS:
            x, dout, k, s, p = _inputs(case, dtype)
            fwd = getattr(ic, f"{kind}_pool2d_forward")
            bwd = getattr(ic, f"{kind}_pool2d_backward")
            if op == "fwd":
                t = _best(lambda: fwd(x, k, stride=s, padding=p), repeats)  # noqa: B023
            else:
                cache = fwd(x, k, stride=s, padding=p)[1]
                t = _best(lambda: bwd(dout, cache), repeats)  # noqa: B023
            times[f"{dtype} {case} {kind} {op}"] = t
    return times


def _torch_times(repeats: int, dtypes: list[str]) -> dict[str, float]:
    import torch

    torch.set_num_threads(2)
    functional = torch.nn.functional
    times = {}
    for dtype in dtypes:
        for case, kind, op in ROWS:
            x, dout, k, s, p = _inputs(case, dtype)
            pool = getattr(functional, f"{kind}_pool2d")
            best = float("inf")
            for fmt in (torch.contiguous_format, torch.channels_last):
                xt = torch.from_numpy(x).permute(0, 3, 1, 2).clone(memory_format=fmt)  # NHWC -> NCHW tensor
                dt = torch.from_numpy(dout).permute(0, 3, 1, 2).clone(memory_format=fmt)
                if op == "fwd":

                    def run(xt=xt, pool=pool, k=k, s=s, p=p):
                        with torch.no_grad():
                            return pool(xt, k, stride=s, padding=p)

                    best = min(best, _best(run, repeats))
                else:

                    def graph(xt=xt, pool=pool, k=k, s=s, p=p):
                        leaf = xt.detach().requires_grad_()
                        return pool(leaf, k, stride=s, padding=p), leaf

                    def back(g, dt=dt):
                        return torch.autograd.grad(g[0], g[1], grad_outputs=dt)

                    best = min(best, _best(back, repeats, setup=graph))
            times[f"{dtype} {case} {kind} {op}"] = best
    return times


def _side(
    name: str, path: Path | None, repeats: int, dtypes: list[str], clock: str, threads: int | None = None
) -> dict[str, float]:
    """Run one side in a subprocess (the engine found at ``path``, or PyTorch) and return its times."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    cmd = [sys.executable, str(Path(__file__)), "--side", name, "--repeats", str(repeats), "--dtypes", ",".join(dtypes)]
    cmd += ["--clock", clock] + ([] if threads is None else ["--threads", str(threads)])
    cmd += [] if _row_filter is None else ["--rows", _row_filter]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout of the engine to compare against")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--rows", help="only the rows whose name contains this, e.g. 'P2 max'")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="'cpu': the engine's thread CPU time (one thread only; steadier on a busy machine)",
    )
    parser.add_argument("--threads", type=int, help="the engine's threads (default: its own default)")
    parser.add_argument("--side", choices=["engine", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtypes = args.dtypes.split(",")
    global _clock, ROWS, _row_filter
    _row_filter = args.rows
    if args.rows:
        ROWS = [row for row in ROWS if args.rows in " ".join(row)]
    if args.side == "engine":
        _clock = CLOCKS[args.clock]
    if args.side == "engine":
        print(json.dumps(_engine_times(args.repeats, dtypes, args.threads)))
        return
    if args.side == "torch":
        print(json.dumps(_torch_times(args.repeats, dtypes)))
        return
    if args.clock == "cpu":
        args.threads = 1  # a thread's CPU time measures that thread only
    sides = {"engine": _side("engine", ROOT, args.repeats, dtypes, args.clock, args.threads)}
    if args.baseline is not None:
        sides["baseline"] = _side("engine", args.baseline.resolve(), args.repeats, dtypes, args.clock, args.threads)
    if not args.no_torch:
        try:
            sides["torch"] = _side("torch", None, args.repeats, dtypes, "wall")
        except subprocess.CalledProcessError as exc:
            print(f"PyTorch skipped: {exc.stderr.strip().splitlines()[-1] if exc.stderr else exc}")
    print(f"load average {os.getloadavg()}; minimum of {args.repeats} repeats, ms ({args.clock} clock for the engine)")
    names = list(sides)
    header = "".join(f"{n:>10}" for n in names)
    ratio = "  engine/torch" if "torch" in sides else ""
    print(f"{'row':<24}{header}{ratio}")
    for key in sides["engine"]:
        cells = "".join(f"{sides[n][key]:10.2f}" for n in names)
        extra = f"{sides['engine'][key] / sides['torch'][key]:14.2f}" if "torch" in sides else ""
        print(f"{key:<24}{cells}{extra}")


if __name__ == "__main__":
    main()
