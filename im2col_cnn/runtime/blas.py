"""The BLAS's thread count, taken in hand while the engine runs its own threads, and given back exactly.

The conv kernels run their tiles on the engine's threads (:mod:`~im2col_cnn.runtime.parallel`), each tile's
matrix products on one BLAS thread, as PyTorch's CPU convolution does over its batch: every pass of a tile --
copying its columns, the product, the bias, the scatter -- then runs on every core, and the busy threads never
outnumber the cores. While any call needs it, the BLAS runs one thread per calling thread (:func:`limited`);
when the last such call ends -- also when it raises -- the BLAS has the thread count it had before. Requests
from several threads (the caller's own, Dask's block tasks) overlap: the BLAS has the smallest count asked for
while they run, and the process's count once none does.

The BLAS's count is process-wide: while an engine call runs, a product the caller runs on another thread of its
own runs on one BLAS thread too.

Which BLAS: NumPy's OpenBLAS (the wheels' own, found among the libraries this process has loaded, through its
C API), else, with threadpoolctl installed, any BLAS threadpoolctl controls. Where neither is found
(:func:`controllable` is False), the kernels do not run tiles on threads of their own, and the BLAS keeps its
threads.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from itertools import product
from typing import Any

__all__ = ["controllable", "limited", "get_blas_threads"]

_lock = threading.Lock()
_requests: Counter[int] = Counter()  # thread counts asked for by the calls running now
_restore: tuple[int, ...] | None = None  # the process's count before the first of them


class _Control:
    """Get and set the BLAS's process-wide thread count: ``get`` gives the count of each library controlled (a
    tuple), ``set`` takes one count for all or a tuple of them."""

    def __init__(self, getters: list[Callable[[], int]], setters: list[Callable[[int], object]]) -> None:
        self.getters, self.setters = getters, setters

    def get(self) -> tuple[int, ...]:
        return tuple(int(get()) for get in self.getters)

    def set(self, counts: int | tuple[int, ...]) -> None:
        if not isinstance(counts, tuple) or len(counts) != len(self.setters):  # (a library loaded meanwhile)
            counts = (counts if isinstance(counts, int) else max(counts),) * len(self.setters)
        for setter, n in zip(self.setters, counts, strict=True):
            setter(n)


def _openblas() -> _Control | None:
    """Every OpenBLAS this process has loaded (NumPy's; SciPy and scikit-learn bring copies of their own), through
    its C API."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    getters, setters = [], []
    for path in sorted(p for p in paths if os.path.isfile(p)):
        try:
            lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        for prefix, suffix in product(("scipy_openblas", "openblas"), ("64_", "", "_64_")):
            try:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}")
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}")
            except AttributeError:
                continue
            get.restype, get.argtypes = ctypes.c_int, []
            set_.restype, set_.argtypes = None, [ctypes.c_int]
            getters.append(get)
            setters.append(set_)
            break
    return _Control(getters, setters) if getters else None


def _threadpoolctl() -> _Control | None:
    """Any BLAS threadpoolctl (optional) controls."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    if not libs:
        return None

    def as_controller(call: Callable[[], Any]) -> Any:
        # threadpoolctl (3.8) lets one thread at a time set OpenBLAS's count and silently ignores the others:
        # let go of that control before and after.
        clears = {getattr(type(lib), "clear_controlling_thread", None) for lib in libs} - {None}
        for clear in clears:
            clear(force=True)
        try:
            return call()
        finally:
            for clear in clears:
                clear(force=True)

    getters = [lib.get_num_threads for lib in libs]
    setters = [lambda n, lib=lib: as_controller(lambda: lib.set_num_threads(n)) for lib in libs]
    return _Control(getters, setters)


_found: tuple[int, _Control | None] = (-1, None)  # (len(sys.modules) when looked for, what was found)


def _control() -> _Control | None:
    """The BLAS libraries loaded, looked for again whenever a module was imported since (which may have loaded
    one more: SciPy's own OpenBLAS, say)."""
    global _found
    modules = len(sys.modules)
    if _found[0] != modules:
        _found = (modules, _openblas() or _threadpoolctl())
    return _found[1]


def _forget() -> None:
    """In a forked child no call of the parent's runs: the BLAS gets back the count the parent had before them."""
    global _restore, _lock
    _lock = threading.Lock()
    if _requests and _restore is not None and _control() is not None:
        _control().set(_restore)
    _requests.clear()
    _restore = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def controllable() -> bool:
    """Whether the engine can set the BLAS's thread count (NumPy's OpenBLAS, or a BLAS threadpoolctl controls)."""
    return _control() is not None


def get_blas_threads() -> int | None:
    """The BLAS's thread count now (the largest of the libraries controlled), or None where it cannot be read."""
    control = _control()
    return None if control is None else max(control.get())


def _apply(control: _Control) -> None:
    """Give the BLAS the smallest count asked for, or the process's own once nobody asks (``_lock`` held)."""
    global _restore
    now = control.get()
    if _requests:
        if _restore is None:
            _restore = now
        wanted = (min(_requests),) * len(now)
    else:
        wanted, _restore = _restore, None
    if wanted is not None and now != wanted:
        control.set(wanted)


class limited:  # noqa: N801 -- used as a function: ``with limited(1): ...``
    """While the ``with`` block runs, the BLAS runs at most ``threads`` threads; ``as`` gives whether it could be
    set. (A class rather than a generator: it is entered on every conv call, and this costs a third as much.)"""

    __slots__ = ("threads", "control")

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self.control = _control()

    def __enter__(self) -> bool:
        if self.control is None:
            return False
        with _lock:
            _requests[self.threads] += 1
            _apply(self.control)
        return True

    def __exit__(self, *exc: object) -> None:
        if self.control is None:
            return
        with _lock:
            _requests[self.threads] -= 1
            if not _requests[self.threads]:
                del _requests[self.threads]
            _apply(self.control)
