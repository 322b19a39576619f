"""``python -m benchmarks``: time each op of the engine against the reference loops.

For each op on a small case it prints the engine's median time, the loops' median time, the speedup and the
largest absolute difference between the two results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

import im2col_cnn as engine
import reference


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ops(rng: np.random.Generator, dtype: type) -> dict[str, Callable[[object], tuple[np.ndarray, ...]]]:
    """Op name -> function of a module (engine or reference) running that op on one fixed small input."""
    x = rng.standard_normal((10, 8, 8, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 3, 8)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    conv_dout = rng.standard_normal((10, 4, 4, 8)).astype(dtype)
    pool_dout = rng.standard_normal((10, 4, 4, 3)).astype(dtype)

    def conv_fwd(m):
        return (m.conv2d_forward(x, w, b, stride=2, padding=1)[0],)

    def conv_bwd(m):
        return m.conv2d_backward(conv_dout, m.conv2d_forward(x, w, b, stride=2, padding=1)[1])

    def pool_fwd(name):
        return lambda m: (getattr(m, f"{name}_forward")(x, 3, stride=2, padding=1)[0],)

    def pool_bwd(name):
        def run(m):
            _, cache = getattr(m, f"{name}_forward")(x, 3, stride=2, padding=1)
            return (getattr(m, f"{name}_backward")(pool_dout, cache),)

        return run

    return {
        "conv2d forward": conv_fwd,
        "conv2d forward+backward": conv_bwd,
        "max_pool2d forward": pool_fwd("max_pool2d"),
        "max_pool2d forward+backward": pool_bwd("max_pool2d"),
        "avg_pool2d forward": pool_fwd("avg_pool2d"),
        "avg_pool2d forward+backward": pool_bwd("avg_pool2d"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of the engine per op (default 20)")
    args = parser.parse_args(argv)
    print(f"NumPy {np.__version__}, Python {sys.version.split()[0]}")
    print("case: x (10, 8, 8, 3), conv w (3, 3, 3, 8) stride 2 padding 1; pools 3x3 stride 2 padding 1\n")
    header = f"{'op':<28} {'dtype':<8} {'engine':>10} {'loops':>10} {'speedup':>9} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    for dtype in (np.float32, np.float64):
        for name, run in ops(np.random.default_rng(0), dtype).items():
            t_engine = median_time(lambda: run(engine), args.repeats)
            t_loops = median_time(lambda: run(reference), max(1, args.repeats // 10))
            diff = max(float(np.max(np.abs(a - r))) for a, r in zip(run(engine), run(reference), strict=True))
            print(
                f"{name:<28} {np.dtype(dtype).name:<8} {t_engine * 1e3:>8.3f}ms {t_loops * 1e3:>8.1f}ms"
                f" {t_loops / t_engine:>8.0f}x {diff:>11.2e}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
