"""Scratch memory against the workspace limit (``python -m benchmarks --memory-only``, or ``-m benchmarks.memory``).

Scratch is everything a call allocates besides the arrays it returns: the peak that ``tracemalloc`` (to which
NumPy reports its array buffers) traces during the call, minus the returned arrays' sizes. Inputs are built
before tracing starts, so they are not counted. Each row is one op on a shape chosen to strain one way of
overrunning the limit: padding, the stride-1 input gradient, depthwise temporaries, a very wide output row, a
broadcast input, and NCHW layout conversions; pooling rows are there for comparison.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import im2col_cnn as engine

__all__ = ["MemoryCase", "MEMORY_CASES", "peak_scratch", "returned_bytes", "measure", "format_scratch_table", "main"]

MIB = 2**20
SMALL = 16 * MIB  # the smallest workspace limit the engine accepts
DEFAULT = 64 * MIB

Call = Callable[[], object]


@dataclass(frozen=True)
class MemoryCase:
    """One row: a name, what it strains, the limit it runs under, and a function building its call.

    ``make()`` allocates the inputs (untraced) and returns the no-argument call to trace.
    """

    name: str
    what: str
    limit: int
    make: Callable[[], Call]


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (``a`` itself unless it is a view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _arrays(result: object) -> list[np.ndarray]:
    """The arrays a call returned: itself, or the items of a returned tuple and of the tuples in it (a cache)."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, tuple):
        return [a for item in result for a in _arrays(item)]
    return []


def returned_bytes(result: object, inputs: Sequence[np.ndarray] = ()) -> int:
    """Bytes the call's results keep: the memory behind every array it returned (a cache's too), each buffer once,
    leaving out the buffers of ``inputs`` (a cache may hold the caller's ``x``, which the call did not allocate)."""
    given = {id(_root(a)) for a in inputs}
    owners = {id(root): root for root in map(_root, _arrays(result)) if id(root) not in given}
    return sum(root.nbytes for root in owners.values())


def peak_scratch(call: Call, inputs: Sequence[np.ndarray] = ()) -> tuple[int, float]:
    """``(scratch bytes, seconds)`` of one ``call()``: the peak that tracemalloc traces during it, above what was
    allocated before, minus the memory its results keep (see :func:`returned_bytes`).

    The one measure of scratch memory, used by this report and by the tests of the workspace limit.
    """
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        t0 = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        scratch = peak - base - returned_bytes(result, inputs)
        del result
    finally:
        tracemalloc.stop()
    return max(0, scratch), seconds


def _conv(x_shape, w_shape, *, groups=1, padding=0, backward=False, limit=SMALL, data_format="NHWC", broadcast=False):
    def make() -> Call:
        x = np.broadcast_to(np.ones(x_shape[-1]), x_shape) if broadcast else np.ones(x_shape)
        w = np.full(w_shape, 0.01)
        kw = dict(padding=padding, groups=groups, data_format=data_format, workspace=limit)
        if not backward:
            return lambda: engine.conv2d_forward(x, w, **kw)[0]
        out, cache = engine.conv2d_forward(x, w, **kw)
        dout = np.ones_like(out)
        del out
        return lambda: engine.conv2d_backward(dout, cache, workspace=limit)

    return make


def _transpose(x_shape, w_shape, *, padding=0, backward=False, limit=SMALL, data_format="NHWC"):
    def make() -> Call:
        x, w = np.ones(x_shape), np.full(w_shape, 0.01)
        kw = dict(padding=padding, data_format=data_format, workspace=limit)
        if not backward:
            return lambda: engine.conv_transpose2d_forward(x, w, **kw)[0]
        out, cache = engine.conv_transpose2d_forward(x, w, **kw)
        dout = np.ones_like(out)
        del out
        return lambda: engine.conv_transpose2d_backward(dout, cache, workspace=limit)

    return make


def _pool(kind, x_shape, *, backward=False, data_format="NHWC", limit=SMALL):
    def make() -> Call:
        x = np.random.default_rng(0).standard_normal(x_shape)
        forward = getattr(engine, f"{kind}_pool2d_forward")
        kw = dict(stride=2, padding=1, data_format=data_format)

        def limited(fn: Call) -> Call:
            def call() -> object:
                with engine.workspace_limit(limit):
                    return fn()

            return call

        if not backward:
            return limited(lambda: forward(x, 3, **kw)[0])
        out, cache = forward(x, 3, **kw)
        dout = np.ones_like(out)
        del out
        return limited(lambda: getattr(engine, f"{kind}_pool2d_backward")(dout, cache))

    return make


def _layer(forward: str, x_shape, *args, backward: bool = False, limit=SMALL, broadcast=False, **kw):
    """Any layer function of ``engine`` by name (``'conv3d_forward'``, ...): its forward or backward call at
    ``limit``; ``args`` follow ``x`` (a weight's shape is turned into weights), ``kw`` are keyword arguments."""

    def make() -> Call:
        x = np.broadcast_to(np.ones(x_shape[-1]), x_shape) if broadcast else np.ones(x_shape)
        values = [np.full(a, 0.01) if isinstance(a, tuple) else a for a in args]
        fn = getattr(engine, forward)
        is_conv = forward.startswith("conv")
        extra = dict(workspace=limit) if is_conv else {}

        def limited(call: Call) -> Call:
            def run() -> object:
                with engine.workspace_limit(limit):
                    return call()

            return run

        if not backward:
            return limited(lambda: fn(x, *values, **kw, **extra)[0])
        out, cache = fn(x, *values, **kw, **extra)
        dout = np.broadcast_to(np.ones(out.shape[-1]), out.shape)
        del out
        bwd = getattr(engine, forward.replace("_forward", "_backward"))
        return limited(lambda: bwd(dout, cache, **extra))

    return make


_BIG = (1, 1024, 1024, 32)
_NCHW = (512, 32, 32, 32)
_SIGNAL = (1, 1_000_000, 16)
_VOLUME = (1, 64, 64, 64, 16)
_VOLUMES = (4, 32, 32, 32, 64)
_FEATURES = (32, 28, 28, 128)

MEMORY_CASES: tuple[MemoryCase, ...] = (
    (
        MemoryCase("conv fwd", f"x {_BIG}, w 3x3 32->8, padding 1", SMALL, _conv(_BIG, (3, 3, 32, 8), padding=1)),
        MemoryCase(
            "conv bwd",
            f"x {_BIG}, w 3x3 32->8, padding 1 (stride-1 input gradient)",
            SMALL,
            _conv(_BIG, (3, 3, 32, 8), padding=1, backward=True),
        ),
        MemoryCase(
            "depthwise fwd",
            f"x {_BIG}, w 3x3 groups=32, padding 1",
            SMALL,
            _conv(_BIG, (3, 3, 1, 32), groups=32, padding=1),
        ),
        MemoryCase(
            "depthwise bwd",
            f"x {_BIG}, w 3x3 groups=32, padding 1",
            SMALL,
            _conv(_BIG, (3, 3, 1, 32), groups=32, padding=1, backward=True),
        ),
        MemoryCase(
            "wide row fwd", "x (1, 3, 200000, 64), w 3x3 64->1", SMALL, _conv((1, 3, 200_000, 64), (3, 3, 64, 1))
        ),
        MemoryCase(
            "wide row bwd",
            "x (1, 3, 200000, 64), w 3x3 64->1",
            SMALL,
            _conv((1, 3, 200_000, 64), (3, 3, 64, 1), backward=True),
        ),
        MemoryCase(
            "broadcast fwd",
            "x broadcast (1, 3, 2000000, 64), w 3x3 64->1, default limit (backward: its dx alone is 2.9 GiB)",
            DEFAULT,
            _conv((1, 3, 2_000_000, 64), (3, 3, 64, 1), limit=DEFAULT, broadcast=True),
        ),
        MemoryCase(
            "NCHW conv fwd",
            f"x {_NCHW} NCHW, w 32->32 3x3, padding 1",
            SMALL,
            _conv(_NCHW, (32, 32, 3, 3), padding=1, data_format="NCHW"),
        ),
        MemoryCase(
            "NCHW conv bwd",
            f"x {_NCHW} NCHW, w 32->32 3x3, padding 1",
            SMALL,
            _conv(_NCHW, (32, 32, 3, 3), padding=1, data_format="NCHW", backward=True),
        ),
        MemoryCase(
            "NCHW transp. fwd",
            f"x {_NCHW} NCHW, w 32->32 3x3, padding 1",
            SMALL,
            _transpose(_NCHW, (32, 32, 3, 3), padding=1, data_format="NCHW"),
        ),
        MemoryCase(
            "NCHW transp. bwd",
            f"x {_NCHW} NCHW, w 32->32 3x3, padding 1",
            SMALL,
            _transpose(_NCHW, (32, 32, 3, 3), padding=1, data_format="NCHW", backward=True),
        ),
    )
    + tuple(
        MemoryCase(
            f"{name} {'bwd' if backward else 'fwd'}",
            what,
            SMALL,
            _layer(forward, shape, *args, backward=backward, broadcast=broadcast, **kw),
        )
        for name, what, forward, shape, args, kw, broadcast in (
            (
                "conv1d",
                f"x broadcast {_SIGNAL}, w 9 16->16, padding 4",
                "conv1d_forward",
                _SIGNAL,
                [(9, 16, 16)],
                dict(padding=4),
                True,
            ),
            (
                "conv3d",
                f"x {_VOLUME}, w 3x3x3 16->16, padding 1",
                "conv3d_forward",
                _VOLUME,
                [(3, 3, 3, 16, 16)],
                dict(padding=1),
                False,
            ),
            (
                "transposed 3d",
                f"x {_VOLUME}, w 2x2x2 16->16, stride 2",
                "conv_transpose3d_forward",
                _VOLUME,
                [(2, 2, 2, 16, 16)],
                dict(stride=2),
                False,
            ),
            (
                "max pool3d",
                f"x {_VOLUMES}, 3x3x3 s2 p1",
                "max_pool3d_forward",
                _VOLUMES,
                [3],
                dict(stride=2, padding=1),
                False,
            ),
            (
                "avg pool3d",
                f"x {_VOLUMES}, 3x3x3 s2 p1",
                "avg_pool3d_forward",
                _VOLUMES,
                [3],
                dict(stride=2, padding=1),
                False,
            ),
            ("adaptive max", f"x {_FEATURES} to 5x5", "adaptive_max_pool2d_forward", _FEATURES, [5], {}, False),
            ("adaptive avg", f"x {_FEATURES} to 5x5", "adaptive_avg_pool2d_forward", _FEATURES, [5], {}, False),
        )  # fmt: skip
        for backward in (False, True)
    )
    + tuple(
        MemoryCase(
            f"{kind} pool {'bwd' if backward else 'fwd'} {fmt}",
            f"x {_NCHW} {fmt}, 3x3 s2 p1",
            SMALL,
            _pool(kind, _NCHW, backward=backward, data_format=fmt),
        )
        for kind in ("max", "avg")
        for fmt in ("NHWC", "NCHW")
        for backward in (False, True)
    )
)


@dataclass(frozen=True)
class ScratchRow:
    name: str
    what: str
    limit_mib: float
    scratch_mib: float
    seconds: float


def measure(
    cases: Sequence[MemoryCase] = MEMORY_CASES, progress: Callable[[str], None] | None = None
) -> list[ScratchRow]:
    """Trace each case once; returns one :class:`ScratchRow` per case."""
    rows = []
    for case in cases:
        if progress is not None:
            progress(f"[scratch] {case.name}")
        call = case.make()
        scratch, seconds = peak_scratch(call)
        del call
        rows.append(ScratchRow(case.name, case.what, case.limit / MIB, scratch / MIB, seconds))
    return rows


def format_scratch_table(rows: Sequence[ScratchRow]) -> list[str]:
    """The report's scratch-memory section: one line per row, peak scratch MiB against the limit."""
    lines = [
        "Scratch memory (float64; tracemalloc peak during one call minus the returned arrays; inputs not counted).",
        "Bound (conv): the limit + 1 MiB + at most 3 arrays of the weights' size (tiny here). One call each, so the",
        "time column is only a rough guide.",
        f"| {'row':<20} | {'limit MiB':>9} | {'scratch MiB':>11} | {'x limit':>7} | {'time s':>7} | shape |",
        f"|{'-' * 22}|{'-' * 11}|{'-' * 13}|{'-' * 9}|{'-' * 9}|-------|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name:<20} | {r.limit_mib:>9.0f} | {r.scratch_mib:>11.1f} | {r.scratch_mib / r.limit_mib:>7.2f} "
            f"| {r.seconds:>7.3f} | {r.what} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--rows", help="comma-separated substrings: only rows whose name contains one of them")
    args = parser.parse_args(argv)
    cases = MEMORY_CASES
    if args.rows:
        wanted = [s.strip() for s in args.rows.split(",") if s.strip()]
        cases = tuple(c for c in cases if any(s in c.name for s in wanted))
    print("\n".join(format_scratch_table(measure(cases, progress=print))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
