"""The engine's threads: the one module that owns a thread pool; kernels hand it per-block work, never make threads.

NumPy's ufuncs and the BLAS release the GIL, so blocks of work (pooling tiles; convolution tiles with their
products, :func:`map_tiles`) run on several threads at once. How many: :func:`set_num_threads` if called, else the
environment variable ``IM2COL_CNN_NUM_THREADS``, else the number of cores this process may run on
(``os.sched_getaffinity``) -- and never more threads than those cores. Every block writes its own disjoint part of
the result (or hands its part of a sum to be added in block order) and computes it the same way whichever
thread runs it, so results never depend on the number of threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from . import blas
from .checks import as_int

__all__ = ["ENV_VAR", "available_cores", "get_num_threads", "set_num_threads", "map_blocks", "map_tiles"]

ENV_VAR = "IM2COL_CNN_NUM_THREADS"
"""Environment variable giving the default number of threads (an int >= 1)."""

B = TypeVar("B")
S = TypeVar("S")
P = TypeVar("P")

_requested: int | None = None  # set_num_threads's value; None: the environment variable or the cores
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def available_cores() -> int:
    """How many cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _from_environment() -> int | None:
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV_VAR} must be an int >= 1, got {raw!r}")
    return value


def get_num_threads() -> int:
    """The number of threads the engine uses: :func:`set_num_threads`'s value if set, else the environment variable
    ``IM2COL_CNN_NUM_THREADS``, else the cores this process may use; never more than those cores."""
    wanted = _requested if _requested is not None else _from_environment()
    cores = available_cores()
    return cores if wanted is None else min(wanted, cores)


def set_num_threads(n: int | None) -> int:
    """Use ``n`` threads (an int >= 1; more than the available cores means all of them); ``None`` restores the
    default (``IM2COL_CNN_NUM_THREADS``, else every available core). Returns the previous :func:`get_num_threads`."""
    global _requested
    value = None if n is None else as_int(n, "n", 1, "an int >= 1 or None")
    try:
        previous = get_num_threads()
    except ValueError:  # a bad IM2COL_CNN_NUM_THREADS: reported where it is used, not here
        previous = available_cores()
    _requested = value
    return previous


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            workers = max(1, available_cores() - 1)  # the calling thread works too
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="im2col_cnn")
        return _executor


def _forget_pool() -> None:  # a forked child has none of its parent's threads
    global _executor
    _executor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def map_blocks(
    work: Callable[[B, S], P],
    blocks: Sequence[B],
    make_state: Callable[[], S],
    *,
    max_threads: int | None = None,
    then: Callable[[B, P, S], None] | None = None,
    then_key: Callable[[B], Hashable] | None = None,
) -> None:
    """Run ``work(block, state)`` for every block, on up to :func:`get_num_threads` threads (``max_threads`` at
    most), the calling thread included. Each thread makes its own ``state`` (e.g. scratch buffers) once, and takes
    the next block when done with one. Blocks must write disjoint outputs -- or hand what they share to ``then``:
    ``then(block, part, state)``, ``part`` what ``work`` returned, runs for the blocks one at a time in their
    order, whichever thread made them (so a sum over blocks is added up the same way for every thread count).
    With ``then_key``, that order holds only among the blocks of one key (``then_key(block)``, e.g. the image a
    tile belongs to): blocks of different keys hand their parts on at once. An exception in any block is raised
    here, after the other threads have stopped taking blocks.
    """
    # One block runs here and now: no thread count to look up (a few microseconds, a few percent of a small op)
    threads = 1 if len(blocks) <= 1 else min(get_num_threads(), len(blocks), max_threads or len(blocks))
    if threads <= 1:
        state = make_state()
        for block in blocks:
            part = work(block, state)
            if then is not None:
                then(block, part, state)
        return
    queue = enumerate(blocks)
    lock = threading.Lock()
    failed = threading.Event()
    order = _InOrder(failed, [None if then_key is None else then_key(b) for b in blocks]) if then else None

    def run() -> None:
        state = make_state()
        while not failed.is_set():
            with lock:
                item = next(queue, None)
            if item is None:
                return
            index, block = item
            try:
                part = work(block, state)
                if order is not None:
                    with order.turn(index):
                        then(block, part, state)  # type: ignore[misc]
            except _EarlierBlockFailed:
                return
            except BaseException:
                failed.set()
                if order is not None:
                    order.wake()
                raise

    futures = [_pool().submit(run) for _ in range(threads - 1)]
    try:
        run()
    finally:
        for future in futures:
            future.exception()  # wait for every worker
    for future in futures:
        future.result()  # raise the first worker exception, if any


def map_tiles(
    work: Callable[[B, S], P],
    blocks: Sequence[B],
    make_state: Callable[[], S],
    *,
    max_threads: int | None = None,
    then: Callable[[B, P, S], None] | None = None,
    then_key: Callable[[B], Hashable] | None = None,
) -> None:
    """:func:`map_blocks` for blocks whose work includes matrix products, each of which then runs on one BLAS
    thread (:func:`~im2col_cnn.runtime.blas.limited`), whatever the number of engine threads: so every pass of a
    block runs on every core, the busy threads never outnumber the cores, and every product is computed the same
    way for every thread count. Where the BLAS's threads cannot be set, the blocks run one after another on the
    calling thread and the products keep the BLAS's threads.
    """
    with blas.limited(1) as held:
        if len(blocks) == 1:
            state = make_state()
            part = work(blocks[0], state)
            if then is not None:
                then(blocks[0], part, state)
        else:
            threads = max_threads if held else 1
            map_blocks(work, blocks, make_state, max_threads=threads, then=then, then_key=then_key)


class _EarlierBlockFailed(Exception):
    """A block waiting for its turn learns that another block failed: it stops, and that block's error is raised."""


class _InOrder:
    """Blocks numbered 0, 1, ... take turns among the blocks of their key (``keys[i]``): block ``i``'s :meth:`turn`
    waits for the turn of the block before it with the same key; a failed block sets ``failed`` and calls
    :meth:`wake`, which ends every waiting turn."""

    def __init__(self, failed: threading.Event, keys: Sequence[Hashable]) -> None:
        counts: dict[Hashable, int] = {}
        self.places: list[tuple[Hashable, int]] = []  # per block: its key and its place among that key's blocks
        for key in keys:
            self.places.append((key, counts.get(key, 0)))
            counts[key] = counts.get(key, 0) + 1
        self.next = dict.fromkeys(counts, 0)  # per key: the place whose turn it is
        self.failed = failed
        self.cond = threading.Condition()

    def turn(self, index: int) -> _Turn:
        """Context manager: the ``with`` block runs once blocks ``0 .. index - 1`` have had their turns."""
        return _Turn(self, index)

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


class _Turn:
    """One block's turn (a class rather than a generator: entered once per block, and this costs less)."""

    __slots__ = ("order", "key", "place")

    def __init__(self, order: _InOrder, index: int) -> None:
        self.order = order
        self.key, self.place = order.places[index]

    def __enter__(self) -> None:
        order, key, place = self.order, self.key, self.place
        order.cond.acquire()
        if order.next[key] != place and not order.failed.is_set():
            order.cond.wait_for(lambda: order.next[key] == place or order.failed.is_set())
        if order.failed.is_set():
            order.cond.release()
            raise _EarlierBlockFailed

    def __exit__(self, *exc: object) -> None:
        order = self.order
        order.next[self.key] += 1
        order.cond.notify_all()
        order.cond.release()
