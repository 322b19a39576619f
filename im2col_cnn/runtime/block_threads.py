"""Threads per batch block: what a Dask task running the engine on one block may use.

Dask runs one task per worker thread, and its workers are sized to the cores; a block that also ran the engine's
thread pool (:mod:`~im2col_cnn.runtime.parallel`) or the BLAS with a thread per core would oversubscribe them. So
while any block task runs in a process (the context manager :func:`block_threads`, entered by every block task),
the engine runs with :func:`get_block_threads` threads, default 1, and so does the BLAS (through
:mod:`~im2col_cnn.runtime.blas`: NumPy's OpenBLAS, or what threadpoolctl controls); when no block task runs, both
are back as they were. These limits are process-wide (the engine and OpenBLAS each have one thread pool per
process): while block tasks run they also hold for the process's other threads. ``dask.distributed``'s nanny
starts worker processes with ``OMP/MKL/OPENBLAS_NUM_THREADS=1`` already; where the BLAS cannot be controlled
(:func:`~im2col_cnn.runtime.blas.controllable`), set ``OPENBLAS_NUM_THREADS=1`` before NumPy starts.
:func:`set_block_threads` changes the count (e.g. 2 for one worker process with one thread on a 2-core machine);
``None`` leaves the engine's and the BLAS's threads as the process has them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import blas, parallel

__all__ = ["block_threads", "get_block_threads", "set_block_threads"]

_block_thread_count: int | None = 1
_lock = threading.Lock()
_running = 0
_undo: list[Callable[[], object]] = []


def get_block_threads() -> int | None:
    """Threads a batch block task runs the engine and the BLAS with (``None``: as the process is set up)."""
    return _block_thread_count


def set_block_threads(n: int | None) -> int | None:
    """Set the threads a batch block task runs with (an int >= 1, or ``None``); returns the previous setting."""
    global _block_thread_count
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be an int >= 1 or None, got {n!r}")
    previous, _block_thread_count = _block_thread_count, n
    return previous


@contextmanager
def block_threads() -> Iterator[None]:
    """While any block task runs in this process, the engine and the BLAS run with the block thread count."""
    global _running
    count = _block_thread_count
    if count is None:
        yield
        return
    with _lock:
        if _running == 0:
            _undo.extend(_limit_threads(count))
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                while _undo:
                    _undo.pop()()


def _limit_threads(count: int) -> list[Callable[[], object]]:
    """Limit the engine and the BLAS to ``count`` threads; returns what undoes it, last first (called with
    ``_lock`` held, from any thread)."""
    requested = parallel._requested  # None (the environment variable, else the cores) is restored as None
    parallel.set_num_threads(count)
    undo: list[Callable[[], object]] = [lambda: parallel.set_num_threads(requested)]
    limit = blas.limited(count)  # the one owner of the BLAS's count: overlapping engine calls restore it right
    limit.__enter__()
    undo.append(lambda: limit.__exit__(None, None, None))
    return undo
