"""float16 layers: computed in float32, returned in float16.

NumPy has no float16 matrix product or fast float16 loops (they run through float32 conversions one element at a
time), and sums over thousands of float16 products lose most of their digits. So the engine never computes in
float16: :func:`~im2col_cnn.runtime.checks.as_float_array` turns float16 input into float32, and the public layer
functions, wrapped by :func:`float16_io`, give their float16 callers float16 results -- outputs, gradients and
``cache.indices`` alike -- each rounded once from the float32 result, as PyTorch's CPU kernels do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

__all__ = ["float16_io", "all_half", "HALF"]

HALF = np.dtype(np.float16)

F = TypeVar("F", bound=Callable[..., Any])


def _is_half(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.dtype.itemsize == 2  # any byte order


def all_half(*arrays: object) -> bool:
    """Whether every argument that is not None is a float16 array (and there is at least one)."""
    given = [a for a in arrays if a is not None]
    return bool(given) and all(_is_half(a) for a in given)


def _to_half(value: object) -> object:
    return value.astype(HALF) if isinstance(value, np.ndarray) and value.dtype.kind == "f" else value


def float16_io(kind: str) -> Callable[[F], F]:
    """Decorate a forward (``kind='forward'``) or backward (``'backward'``) layer function for float16 callers.

    A forward call is a float16 call when its first argument ``x`` is a float16 array and every other array
    argument (weights, bias) is float16 too -- the cases where NumPy's promotion would give float16. Its output
    is rounded to float16 and its cache remembers ``io_dtype=float16``, so that the backward pass returns
    float16 gradients whatever the dtype of ``dout``. Every other call passes through untouched.
    """

    def decorate(fn: F) -> F:
        if kind == "forward":

            @functools.wraps(fn)
            def forward(x: object, *args: Any, **kwargs: Any) -> Any:
                if not _is_half(x):
                    return fn(x, *args, **kwargs)
                arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray) and a.ndim]
                out, cache = fn(x, *args, **kwargs)
                if out.dtype != np.float32 or not all(_is_half(a) for a in arrays):  # promoted to a wider dtype
                    return out, cache
                return out.astype(HALF), cache._replace(io_dtype=HALF)

            return forward  # type: ignore[return-value]

        @functools.wraps(fn)
        def backward(dout: object, cache: Any, *args: Any, **kwargs: Any) -> Any:
            result = fn(dout, cache, *args, **kwargs)
            if getattr(cache, "io_dtype", None) != HALF:
                return result
            if isinstance(result, tuple):
                return tuple(_to_half(r) for r in result)
            return _to_half(result)

        return backward  # type: ignore[return-value]

    return decorate
