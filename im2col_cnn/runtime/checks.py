"""Argument normalization and validation.

Every public function funnels its arguments through here, so that bad input fails early with a
``ValueError``/``TypeError`` that names the argument and says what was expected.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MAX_INT",
    "as_float_array",
    "as_float_arrays",
    "as_int",
    "as_pair",
    "as_padding4",
    "check_bias",
    "check_choice",
    "check_data_format",
    "check_dout",
    "check_groups",
    "check_ndim",
]


MAX_INT = 2**62
"""Largest magnitude accepted for an int argument, so that sizes computed from a few of them stay within int64."""

# NumPy < 1.24 turns ragged nested lists into an object array with a VisibleDeprecationWarning; later versions
# raise ValueError. The warning's class moved to numpy.exceptions in 1.25 and left the main namespace in 2.0.
# warnings.catch_warnings is process-wide (not thread-safe), so it is used only where NumPy would warn.
_RAGGED_WARNING = getattr(np, "exceptions", np).VisibleDeprecationWarning
_RAGGED_WARNS = np.lib.NumpyVersion(np.__version__) < "1.24.0"

_STRINGS = (str, bytes, bytearray, memoryview)  # sequences that are never an (h, w) pair


def as_float_array(value: object, name: str) -> np.ndarray:
    """Return ``value`` as an ndarray of a floating dtype in native byte order, copying only when it has to.

    A float32/64 array in native byte order is returned as it is (no copy); one in the other byte order
    becomes a native copy of the same dtype; float16 becomes float32 (the engine computes float16 layers in
    float32, see :mod:`~im2col_cnn.half_precision`); integer, bool and nested-list input becomes float64.
    Complex, object, string, ragged and other non-numeric input raises ``TypeError``.
    """
    arr = value if type(value) is np.ndarray else _asarray(value, name)
    kind = arr.dtype.kind
    if kind == "f":
        if arr.dtype.itemsize == 2:
            return arr.astype(np.float32)
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
    if kind in "biu":
        return arr.astype(np.float64)
    if kind == "c":
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")


def _asarray(value: object, name: str) -> np.ndarray:
    """``np.asarray(value)``; ragged nested lists are a ``TypeError`` (not a warning) on every NumPy version."""
    try:
        if not _RAGGED_WARNS:
            return np.asarray(value)
        with warnings.catch_warnings():
            warnings.simplefilter("error", _RAGGED_WARNING)
            return np.asarray(value)
    except (ValueError, TypeError, _RAGGED_WARNING) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__} ({exc})") from None


def check_ndim(arr: np.ndarray, name: str, layout: str) -> None:
    """Raise ``ValueError`` unless ``arr`` has as many dimensions as ``layout`` (e.g. ``"(N, H, W, C)"``) names."""
    ndim = layout.count(",") + 1
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array of shape {layout}, got shape {arr.shape}")


def as_int(value: object, name: str, minimum: int, what: str) -> int:
    """``value`` as a Python int in ``[minimum, MAX_INT]``.

    ``TypeError`` unless an integer (Python or NumPy; bools and ``np.bool_`` excluded); ``ValueError`` when out
    of range. ``what`` describes the expected value in the messages, e.g. ``"an int >= 1"``.
    """
    if type(value) is int and minimum <= value <= MAX_INT:  # the common case, without the ABC checks
        return value
    return _checked_int(value, name, minimum, what, value)


def _checked_int(value: object, name: str, minimum: int, what: str, shown: object) -> int:
    """:func:`as_int` without its fast path; messages show ``shown`` (the whole argument ``value`` came from)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {shown!r}")
    if value > MAX_INT:
        raise ValueError(f"{name} must be {what}, at most 2**62, got {shown!r}")
    if value < minimum:
        at_least = "" if minimum >= 0 else ", at least -2**62" if minimum == -MAX_INT else f", at least {minimum}"
        raise ValueError(f"{name} must be {what}{at_least}, got {shown!r}")
    return int(value)


def as_pair(value: object, name: str, *, minimum: int, what: str | None = None) -> tuple[int, int]:
    """Normalize an int or an ``(h, w)`` pair of ints, each in ``[minimum, MAX_INT]``, to a ``(h, w)`` tuple.

    ``what`` describes the expected value in the messages (default: ``"an int >= minimum or an (h, w) pair of
    them"``).
    """
    if type(value) is int and minimum <= value <= MAX_INT:  # the common case, without the ABC checks
        return (value, value)
    what = what or f"an int >= {minimum} or an (h, w) pair of them"
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a 0-d array is its scalar
    if isinstance(value, Sequence) and not isinstance(value, _STRINGS) or isinstance(value, np.ndarray):
        items = list(value)
        if len(items) != 2 or isinstance(value, np.ndarray) and value.ndim != 1:
            raise ValueError(f"{name} must be {what}, got {value!r}")
        h, w = (_checked_int(v, name, minimum, what, value) for v in items)
        return (h, w)
    v = _checked_int(value, name, minimum, what, value)
    return (v, v)


def as_real(value: object, name: str) -> float:
    """``value`` as a float: ``TypeError`` unless a real number (a Python or NumPy int or float, or a 0-d real array;
    bools excluded). ``inf`` and ``nan`` are accepted."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def as_flag(value: object, name: str) -> bool:
    """A bool argument: bools, ``np.bool_`` and the bool-like ints 0 and 1 (as PyTorch's flags take them).

    Other ints are a ``ValueError``, anything else a ``TypeError``, each naming the argument.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        if value in (0, 1):
            return bool(value)
        raise ValueError(f"{name} must be a bool (or 0 or 1), got {value!r}")
    raise TypeError(f"{name} must be a bool (or 0 or 1), got {value!r}")


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


def as_padding4(value: object, name: str) -> tuple[int, int, int, int] | str:
    """Normalize a convolution padding to ``(top, bottom, left, right)``, or return ``'same'``.

    Accepts an int, an ``(h, w)`` pair, ``((top, bottom), (left, right))``, ``'valid'`` (no padding) and
    ``'same'`` (resolved by the caller, which knows the kernel).
    """
    if type(value) is int and 0 <= value <= MAX_INT:  # the common case
        return (value, value, value, value)
    what = "an int >= 0, an (h, w) pair of them, ((top, bottom), (left, right)), 'valid' or 'same'"
    if isinstance(value, np.ndarray) and value.shape == (2, 2):
        value = value.tolist()  # a (2, 2) array of ints is ((top, bottom), (left, right))
    if isinstance(value, str):
        if value == "valid":
            return (0, 0, 0, 0)
        if value == "same":
            return value
        raise ValueError(f"{name} must be {what}, got {value!r}")
    nested = isinstance(value, Sequence) and not isinstance(value, _STRINGS) and len(value) == 2
    if nested and all(isinstance(v, Sequence) for v in value):
        if not all(len(v) == 2 and not isinstance(v, _STRINGS) for v in value):
            raise ValueError(f"{name} must be {what}, got {value!r}")
        (t, b), (left, r) = value
        return tuple(_checked_int(v, name, 0, what, value) for v in (t, b, left, r))  # type: ignore[return-value]
    ph, pw = as_pair(value, name, minimum=0, what=what)
    return (ph, ph, pw, pw)


def check_data_format(value: object) -> str:
    """``'NHWC'`` or ``'NCHW'``; ``ValueError`` naming ``data_format`` otherwise."""
    return check_choice(value, "data_format", ("NHWC", "NCHW"))


def as_float_arrays(x: object, w: object) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``w`` as float arrays of their promoted dtype (see :func:`as_float_array`)."""
    x_arr, w_arr = as_float_array(x, "x"), as_float_array(w, "w")
    dtype = np.result_type(x_arr, w_arr)  # NumPy's promotion: float32 with float64 computes in float64
    return x_arr.astype(dtype, copy=False), w_arr.astype(dtype, copy=False)


def check_groups(groups: object, c_in: int, c_out: int) -> int:
    """``groups`` as an int >= 1 that divides both channel counts; ``ValueError``/``TypeError`` otherwise."""
    g = as_int(groups, "groups", 1, "an int >= 1")
    if c_in % g or c_out % g:
        raise ValueError(f"groups must divide both C_in={c_in} and C_out={c_out}, got groups={g}")
    return g


def check_bias(b: object, c_out: int, dtype: np.dtype) -> tuple[np.ndarray | None, tuple[int, ...] | None]:
    """The bias as a (C_out,) vector of ``dtype`` and its original shape; ``(None, None)`` for no bias."""
    if b is None:
        return None, None
    arr = as_float_array(b, "b")
    if arr.shape not in ((c_out,), (1, 1, 1, c_out)):
        raise ValueError(f"b must have shape (C_out,) = ({c_out},) or (1, 1, 1, {c_out}), got {arr.shape}")
    return arr.reshape(c_out).astype(dtype, copy=False), arr.shape
