"""Measurement primitives: median wall time, peak traced memory, the bare matrix-product limit, workspace limits."""

from __future__ import annotations

import contextlib
import gc
import inspect
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from .cases import ConvCase

__all__ = [
    "MIB",
    "median_time",
    "interleaved_medians",
    "interleaved_times",
    "SETTLE_S",
    "peak_memory_mib",
    "bare_products",
    "matmul_limit_call",
    "workspace_mode",
    "workspace_call",
    "default_workspace_limit",
]

MIB = 2**20
T = TypeVar("T")


def median_time(
    fn: Callable[..., object],
    *,
    repeats: int = 5,
    warmup: int = 1,
    min_total_s: float = 0.0,
    max_repeats: int = 200,
    setup: Callable[[], Any] | None = None,
) -> float:
    """Median ``time.perf_counter`` seconds of ``fn()`` (or ``fn(setup())``: setup untimed) after warm-up runs.

    At least ``repeats`` timed runs, more (up to ``max_repeats``) until ``min_total_s`` seconds were timed, so
    that tiny ops get enough samples for a stable median.
    """
    for _ in range(warmup):
        fn() if setup is None else fn(setup())
    times: list[float] = []
    while len(times) < max(1, repeats) or (sum(times) < min_total_s and len(times) < max_repeats):
        arg = None if setup is None else setup()
        t0 = time.perf_counter()
        fn() if setup is None else fn(arg)
        times.append(time.perf_counter() - t0)
        del arg
    return statistics.median(times)


SETTLE_S = 0.1
"""How long each call of :func:`interleaved_medians` runs untimed before its timed runs, when asked to settle.
A threaded BLAS product leaves OpenBLAS's worker threads spinning for up to about 0.1 s, which takes the cores
the engine's threads need; and on a virtual machine a core left idle (a pause) is slow to wake. On 2 cores, the C3
case's forward right after the bare product took 17-19 ms, after a 0.15 s sleep 12-17 ms, run back to back 8.5."""


def interleaved_medians(
    calls: dict[str, tuple[Callable[..., object], Callable[[], Any] | None]], **options: Any
) -> dict[str, float]:
    """Median seconds of each of ``calls`` over the rounds of :func:`interleaved_times` (the same arguments)."""
    return {name: statistics.median(values) for name, values in interleaved_times(calls, **options).items()}


def interleaved_times(
    calls: dict[str, tuple[Callable[..., object], Callable[[], Any] | None]],
    *,
    repeats: int = 5,
    warmup: int = 1,
    min_total_s: float = 0.0,
    max_repeats: int = 200,
    settle_s: float = 0.0,
    block_s: float = 0.0,
) -> dict[str, list[float]]:
    """Seconds of every timed run of each of ``calls`` (name -> ``(fn, setup)``, as in :func:`median_time`),
    timed in rounds.

    Every round runs each call -- once, or with ``block_s`` for about that long in a row --, so slow spells of a
    noisy machine hit all of them alike and their ratios stay fair. With ``settle_s``, each call first runs
    untimed for that long in every round (see ``SETTLE_S``), so that it is timed in the steady state the call
    before it left. At least ``repeats`` rounds, more (up to ``max_repeats``) until ``min_total_s`` per call was
    timed.
    """

    def run(fn: Callable[..., object], setup: Callable[[], Any] | None) -> float:
        arg = None if setup is None else setup()
        t0 = time.perf_counter()
        fn() if setup is None else fn(arg)
        return time.perf_counter() - t0

    def for_about(seconds: float, fn: Callable[..., object], setup: Callable[[], Any] | None) -> list[float]:
        done = [run(fn, setup)]
        while sum(done) < seconds:
            done.append(run(fn, setup))
        return done

    for fn, setup in calls.values():
        for _ in range(warmup):
            run(fn, setup)
    times: dict[str, list[float]] = {name: [] for name in calls}
    rounds = 0
    while rounds < max(1, repeats) or (
        sum(map(sum, times.values())) < min_total_s * len(calls) and rounds < max_repeats
    ):
        for name, (fn, setup) in calls.items():
            if settle_s:
                for_about(settle_s, fn, setup)
            times[name].extend(for_about(block_s, fn, setup))
        rounds += 1
    return times


def timed_call(fn: Callable[[], T]) -> tuple[float, T]:
    """``(seconds, result)`` of one call of ``fn``."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def peak_memory_mib(fn: Callable[[], object]) -> float:
    """Peak memory (MiB) allocated during one call of ``fn``, above what was allocated before it, outputs included.

    Measured with ``tracemalloc``, to which NumPy reports its array buffers.
    """
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        if started:
            tracemalloc.stop()
    return max(0, peak - base) / MIB


def bare_products(
    m: int, k: int, n: int, dtype: type[np.floating], *, forward: bool, backward: bool, input_grad: bool = True
) -> list[Callable[[], object]]:
    """The bare matrix products of a conv layer on preallocated random matrices (no window copying), in order.

    ``M`` output positions, ``K = kh*kw*C_in``, ``N = C_out``. With ``forward``: ``cols (M, K) @ w (K, N)``. With
    ``backward``: ``colsᵀ @ dout`` (dw) and, with ``input_grad``, ``dout @ wᵀ`` (dcols). The products allocate
    their results, as the engine's do.
    """
    rng = np.random.default_rng(0)
    cols = rng.random((m, k), dtype=dtype)
    w = rng.random((k, n), dtype=dtype)
    products: list[Callable[[], object]] = [lambda: cols @ w] if forward else []
    if backward:
        dout = rng.random((m, n), dtype=dtype)
        products.append(lambda: cols.T @ dout)
        if input_grad:
            products.append(lambda: dout @ w.T)
    return products


def matmul_limit_call(case: ConvCase, dtype: type[np.floating], batch: int, backward: bool) -> Callable[[], object]:
    """The bare matrix products of a conv case (:func:`bare_products`), as one call: the forward product, or the
    backward's two together."""
    products = bare_products(*case.matmul_shape(batch), dtype, forward=not backward, backward=backward)
    if not backward:
        return products[0]
    return lambda: tuple(product() for product in products)


def workspace_mode(engine: ModuleType) -> str | None:
    """How the engine takes a workspace limit: ``'context'`` (``workspace_limit(nbytes)`` context manager),
    ``'keyword'`` (``workspace=`` on ``conv2d_forward``/``conv2d_backward``), or None (not there yet)."""
    if callable(getattr(engine, "workspace_limit", None)):
        return "context"
    try:
        forward = inspect.signature(engine.conv2d_forward).parameters
        backward = inspect.signature(engine.conv2d_backward).parameters
    except (TypeError, ValueError):
        return None
    if "workspace" in forward and "workspace" in backward:
        return "keyword"
    return None


def default_workspace_limit(engine: ModuleType) -> int | None:
    """The engine's current global workspace limit in bytes, or None when it has no ``get_workspace_limit``."""
    getter = getattr(engine, "get_workspace_limit", None)
    if not callable(getter):
        return None
    value = getter()
    return None if value is None else int(value)


@contextlib.contextmanager
def _limit(engine: ModuleType, nbytes: int) -> Iterator[None]:
    with engine.workspace_limit(nbytes):
        yield


def workspace_call(
    engine: ModuleType, make: Callable[..., Callable[[], T]], nbytes: int | None
) -> Callable[[], T] | None:
    """``make(**kwargs)`` built and run under a workspace limit of ``nbytes`` (None: the default limit).

    ``make`` builds the timed callable (for a backward op it runs the forward pass, so the limit applies to
    both). Returns None when the engine has no workspace limit API.
    """
    if nbytes is None:
        return make()
    mode = workspace_mode(engine)
    if mode == "keyword":
        return make(workspace=nbytes)
    if mode == "context":
        with _limit(engine, nbytes):
            call = make()

        def limited() -> T:
            with _limit(engine, nbytes):
                return call()

        return limited
    return None
