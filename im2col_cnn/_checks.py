"""Argument normalization and validation.

Every public function funnels its arguments through here, so that bad input fails early with a
``ValueError``/``TypeError`` that names the argument and says what was expected.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["as_float_array", "as_int", "as_pair", "check_choice", "check_dout", "check_ndim", "common_float_dtype"]


def as_float_array(value: object, name: str) -> np.ndarray:
    """Return ``value`` as an ndarray of a floating dtype, without copying when it already is one.

    float16/32/64 arrays are returned as they are (no copy); integer, bool and nested-list input becomes
    float64. Complex, object, string and other non-numeric input raises ``TypeError``.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__} ({exc})") from None
    kind = arr.dtype.kind
    if kind == "f":
        return arr
    if kind in "biu":
        return arr.astype(np.float64)
    if kind == "c":
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")


def common_float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The floating dtype the computation runs in: NumPy's promotion of the (already float) inputs."""
    return np.result_type(*arrays)


def check_ndim(arr: np.ndarray, name: str, layout: str) -> None:
    """Raise ``ValueError`` unless ``arr`` has as many dimensions as ``layout`` (e.g. ``"(N, H, W, C)"``) names."""
    ndim = layout.count(",") + 1
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array of shape {layout}, got shape {arr.shape}")


def as_int(value: object, name: str, minimum: int, what: str) -> int:
    """``value`` as an int ``>= minimum``: ``TypeError`` unless an integer (bools excluded), else ``ValueError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def as_pair(value: object, name: str, *, minimum: int) -> tuple[int, int]:
    """Normalize an int or an ``(h, w)`` pair of ints, each ``>= minimum``, to a ``(h, w)`` tuple."""
    what = f"an int >= {minimum} or an (h, w) pair of them"
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a 0-d array is its scalar
    if isinstance(value, Sequence) and not isinstance(value, str) or isinstance(value, np.ndarray):
        items = list(value)
        if len(items) != 2:
            raise ValueError(f"{name} must be {what}, got {value!r}")
        return (as_int(items[0], name, minimum, what), as_int(items[1], name, minimum, what))
    v = as_int(value, name, minimum, what)
    return (v, v)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of the strings in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_dout(dout: object, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``dout`` as an array of ``dtype``; ``ValueError`` unless it has the forward output's ``shape``."""
    arr = as_float_array(dout, "dout")
    if arr.shape != shape:
        raise ValueError(f"dout must have the forward output's shape {shape}, got {arr.shape}")
    return arr.astype(dtype, copy=False)
