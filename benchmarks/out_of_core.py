"""``python -m benchmarks --dask``: a batch larger than memory, through the engine on Dask's local workers.

A float32 batch of ``images`` x 64 x 64 x 8 is generated lazily (``dask.array.random``, one seed per chunk,
never held whole) and run through conv2d 3x3 8->16 pad 1 -> ReLU -> max-pool 2 -> mean per channel on a
``LocalCluster`` of 1 and then 2 worker processes (1 thread each, localhost, no dashboard), each run on a fresh
cluster; then the same layers forward and backward (:func:`gradient`) on 2 workers. Printed per run: wall time,
throughput (images/s and MB/s of input), the CPU seconds the workers spent, and peak memory: the peak resident
set (``getrusage(RUSAGE_SELF).ru_maxrss``) of each worker process, asked through ``client.run``, and of this
process. Default: 2,000 images (262 MB, a quick look); ``--dask-full``: 20,000 (2.6 GB); ``--dask-images N``.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import im2col_cnn as engine

from .sysinfo import collect_system_info

__all__ = ["QUICK_IMAGES", "FULL_IMAGES", "gradient", "numpy_gradient", "pipeline", "numpy_pipeline", "run", "main"]

QUICK_IMAGES = 2_000
FULL_IMAGES = 20_000
IMAGE_SHAPE = (64, 64, 8)  # H, W, C_in
C_OUT = 16
CHUNK_IMAGES = 256  # images per batch block: 33.5 MB of input
MIB = 2**20


def weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The conv's (3, 3, 8, 16) weights and (16,) bias, float32."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((3, 3, IMAGE_SHAPE[2], C_OUT)) / 8).astype(np.float32)
    return w, rng.standard_normal(C_OUT).astype(np.float32) / 8


def lazy_batch(images: int, chunk: int = CHUNK_IMAGES, seed: int = 0) -> Any:
    """(images, 64, 64, 8) float32 in [0, 1), a Dask array of ``chunk``-image blocks, each from its own seed."""
    import dask.array as da

    return da.random.default_rng(seed).random((images, *IMAGE_SHAPE), dtype=np.float32, chunks=(chunk, -1, -1, -1))


def pipeline(x: Any) -> Any:
    """conv -> ReLU -> max-pool -> mean over (N, Ho, Wo): the (16,) mean activation per channel, lazily."""
    import dask.array as da

    w, b = weights()
    out, _ = engine.conv2d_forward(x, w, b, padding=1)
    pooled, _ = engine.max_pool2d_forward(da.maximum(out, 0), 2)
    return pooled.mean(axis=(0, 1, 2), dtype=np.float64)


def numpy_pipeline(x: np.ndarray) -> np.ndarray:
    """The same on a NumPy batch, all at once."""
    w, b = weights()
    out, _ = engine.conv2d_forward(x, w, b, padding=1)
    pooled, _ = engine.max_pool2d_forward(np.maximum(out, 0), 2)
    return pooled.mean(axis=(0, 1, 2), dtype=np.float64)


def gradient(x: Any) -> list[Any]:
    """The same layers, forward and backward, for ``loss = sum(pooled**2) / 2``: ``[loss, dw, db]``, lazily.

    Computed as one graph, each block's forward runs once and its caches wait in memory only until that block's
    backward has run; dw and db are tree sums of per-block partials.
    """
    import dask.array as da

    w, b = weights()
    out, conv_cache = engine.conv2d_forward(x, w, b, padding=1)
    pooled, pool_cache = engine.max_pool2d_forward(da.maximum(out, 0), 2)
    d_out = engine.max_pool2d_backward(pooled, pool_cache) * (out > 0)  # dloss/dpooled = pooled; ReLU's mask
    _, dw, db = engine.conv2d_backward(d_out, conv_cache, need_dx=False)  # a first layer: no dx
    return [(pooled.astype(np.float64) ** 2).sum() / 2, dw, db]


def numpy_gradient(x: np.ndarray) -> list[Any]:
    """The same on a NumPy batch, all at once."""
    w, b = weights()
    out, conv_cache = engine.conv2d_forward(x, w, b, padding=1)
    pooled, pool_cache = engine.max_pool2d_forward(np.maximum(out, 0), 2)
    d_out = engine.max_pool2d_backward(pooled, pool_cache) * (out > 0)
    _, dw, db = engine.conv2d_backward(d_out, conv_cache, need_dx=False)  # a first layer: no dx
    return [(pooled.astype(np.float64) ** 2).sum() / 2, dw, db]


def max_rss_mib() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    workers: int
    seconds: float
    images: int
    input_bytes: int
    worker_peaks_mib: list[float]
    main_peak_mib: float  # this process's peak so far
    worker_cpu_s: float  # CPU seconds the workers spent in the timed run, all together
    result: Any
    work: str = "features"

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / 1e6 / self.seconds


def run(workers: int, images: int, chunk: int = CHUNK_IMAGES, work: str = "features") -> Run:
    """``pipeline`` (``work='features'``) or ``gradient`` on a fresh LocalCluster of ``workers`` processes, timed
    after a one-block warm-up."""
    from distributed import Client, LocalCluster

    lazy = pipeline if work == "features" else gradient
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster) as client:
        client.compute(lazy(lazy_batch(min(images, chunk), chunk, seed=1)), sync=True)  # imports, first calls
        x = lazy_batch(images, chunk)
        cpu_before = sum(client.run(cpu_seconds).values())
        started = time.perf_counter()
        result = client.compute(lazy(x), sync=True)
        seconds = time.perf_counter() - started
        cpu = sum(client.run(cpu_seconds).values()) - cpu_before
        peaks = sorted(client.run(max_rss_mib).values())
    return Run(workers, seconds, images, x.nbytes, peaks, max_rss_mib(), cpu, result, work)


def main(images: int | None = None, chunk: int = CHUNK_IMAGES) -> int:
    """Print the report (``images``: default ``QUICK_IMAGES``); returns the exit status."""
    images = images or QUICK_IMAGES
    started = time.perf_counter()
    info = collect_system_info()
    print("im2col_cnn out-of-core report (python -m benchmarks --dask)")
    for line in info.lines():
        print(line)
    print(f"Load: {_load()}")
    nbytes = images * int(np.prod(IMAGE_SHAPE)) * 4
    block_mb = chunk * nbytes / images / 1e6
    print(
        f"Input: {images:,} x {' x '.join(map(str, IMAGE_SHAPE))} float32 = {nbytes / 1e9:.2f} GB "
        f"({nbytes / 2**30:.2f} GiB), generated lazily in blocks of {chunk} images ({block_mb:.1f} MB)"
    )
    print(f"Pipeline: conv2d 3x3 {IMAGE_SHAPE[2]}->{C_OUT} pad 1 -> ReLU -> max-pool 2 -> mean per channel")
    print("Workers: LocalCluster processes, 1 thread each (the nanny sets OMP/MKL/OPENBLAS_NUM_THREADS=1)\n")
    print("Gradient: the same layers forward and backward, loss = sum(pooled**2) / 2 -> (loss, dw, db) in one graph\n")
    runs = [run(workers, images, chunk) for workers in (1, 2)] + [run(2, images, chunk, "gradient")]
    print(
        "| work | workers | wall s | images/s | input MB/s | workers' CPU s (cores busy) | peak RSS per worker, MiB "
        "| peak RSS of this process, MiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        peaks = ", ".join(f"{p:.0f}" for p in r.worker_peaks_mib)
        speed = f"{r.images_per_s:,.0f} | {r.mb_per_s:,.0f}"
        cpu = f"{r.worker_cpu_s:.1f} ({r.worker_cpu_s / r.seconds:.2f})"
        print(f"| {r.work} | {r.workers} | {r.seconds:.2f} | {speed} | {cpu} | {peaks} | {r.main_peak_mib:.0f} |")
    print(
        f"\nScaling of features, 2 workers over 1: {runs[0].seconds / runs[1].seconds:.2f}x. "
        f"Largest peak RSS: {max(max(r.worker_peaks_mib) for r in runs):.0f} MiB per worker, {max_rss_mib():.0f} MiB "
        f"here, against an input of {nbytes / MIB:,.0f} MiB."
    )
    diff = float(np.max(np.abs(runs[0].result - runs[1].result)))
    print(
        f"Mean activation per channel (first 4): {np.round(runs[0].result[:4], 5)}; 1 vs 2 workers differ by "
        f"{diff:.1e}. Gradient: loss {float(runs[2].result[0]):.6g}, |dw| {np.linalg.norm(runs[2].result[1]):.6g}."
    )
    print(
        "Peak RSS: getrusage(RUSAGE_SELF).ru_maxrss of each worker process (asked through client.run after the run)"
        " and of this process; it includes Python, NumPy and Dask themselves (about 100-150 MiB per process). "
        "Cores busy: the workers' CPU seconds over the wall time; below the worker count, the workers waited "
        "(for the scheduler, or for cores other processes held)."
    )
    print(f"Load after: {_load()}. Total time {time.perf_counter() - started:.1f} s.")
    return 0


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"
