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
    "as_padding",
    "as_tuple",
    "axes_tuple",
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
    float32, see :mod:`~im2col_cnn.runtime.half_precision`); integer, bool and nested-list input becomes float64.
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


def check_ndim(arr: np.ndarray, name: str, layout: str, data_format: str | None = None) -> None:
    """Raise ``ValueError`` unless ``arr`` has as many dimensions as ``layout`` (e.g. ``"(N, H, W, C)"``) names;
    the message names ``data_format`` when given (the layout it implies)."""
    ndim = layout.count(",") + 1
    if arr.ndim != ndim:
        fmt = "" if data_format is None else f" for data_format {data_format!r}"
        raise ValueError(f"{name} must be a {ndim}-D array of shape {layout}{fmt}, got shape {arr.shape}")


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


AXIS_NAMES = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}
"""The names of the spatial axes of a layer with 1, 2 or 3 of them (in messages and docstrings)."""

_TUPLE_NAMES = {1: "a (w,) tuple", 2: "an (h, w) pair", 3: "a (d, h, w) triple"}


def axes_tuple(ndim: int, prefix: str = "") -> str:
    """``'(h, w)'``, or with ``prefix='k'`` ``'(kh, kw)'``: the spatial axes of an ``ndim``-D layer as text."""
    names = [prefix + a for a in AXIS_NAMES[ndim]]
    return f"({names[0]},)" if ndim == 1 else f"({', '.join(names)})"


def as_tuple(value: object, ndim: int, name: str, *, minimum: int, what: str | None = None) -> tuple[int, ...]:
    """Normalize an int, or a sequence of ``ndim`` ints, each in ``[minimum, MAX_INT]``, to an ``ndim``-tuple.

    ``what`` describes the expected value in the messages (default: ``"an int >= minimum or an (h, w) pair of
    them"``, with the tuple named for ``ndim``).
    """
    if type(value) is int and minimum <= value <= MAX_INT:  # the common case, without the ABC checks
        return (value,) * ndim
    what = what or f"an int >= {minimum} or {_TUPLE_NAMES[ndim]} of them"
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]  # a 0-d array is its scalar
    if isinstance(value, Sequence) and not isinstance(value, _STRINGS) or isinstance(value, np.ndarray):
        items = list(value)
        if len(items) != ndim or isinstance(value, np.ndarray) and value.ndim != 1:
            raise ValueError(f"{name} must be {what}, got {value!r}")
        return tuple(_checked_int(v, name, minimum, what, value) for v in items)
    v = _checked_int(value, name, minimum, what, value)
    return (v,) * ndim


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


def as_padding(value: object, ndim: int, name: str, *, strings: bool = True) -> tuple[tuple[int, int], ...] | str:
    """Normalize a convolution padding to ``((lo, hi), ...)`` per spatial axis, or return ``'same'``.

    Accepts an int, a tuple of ``ndim`` ints (both sides of each axis), a tuple of ``ndim`` ``(lo, hi)`` pairs
    (e.g. ``((top, bottom), (left, right))``), ``'valid'`` (no padding) and ``'same'`` (resolved by the caller,
    which knows the kernel). With ``strings=False`` the two strings are a ``TypeError``.
    """
    if type(value) is int and 0 <= value <= MAX_INT:  # the common case
        return ((value, value),) * ndim
    sides = "((top, bottom), (left, right))" if ndim == 2 else f"{ndim} (lo, hi) pairs"
    what = f"an int >= 0, {_TUPLE_NAMES[ndim]} of them, {sides}" + (", 'valid' or 'same'" if strings else "")
    if isinstance(value, np.ndarray) and value.shape == (ndim, 2):
        value = value.tolist()  # an (ndim, 2) array of ints is one (lo, hi) pair per axis
    if isinstance(value, str) and not strings:
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if isinstance(value, str):
        if value == "valid":
            return ((0, 0),) * ndim
        if value == "same":
            return value
        raise ValueError(f"{name} must be {what}, got {value!r}")
    nested = isinstance(value, Sequence) and not isinstance(value, _STRINGS) and len(value) == ndim
    if nested and all(isinstance(v, Sequence) for v in value):
        if not all(len(v) == 2 and not isinstance(v, _STRINGS) for v in value):
            raise ValueError(f"{name} must be {what}, got {value!r}")
        return tuple(
            (_checked_int(lo, name, 0, what, value), _checked_int(hi, name, 0, what, value)) for lo, hi in value
        )
    return tuple((p, p) for p in as_tuple(value, ndim, name, minimum=0, what=what))


def _axes(ndim: int) -> str:
    return "1 spatial axis" if ndim == 1 else f"{ndim} spatial axes"


DATA_FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}
"""The channels-last (default) and channels-first layout of a layer with 1, 2 or 3 spatial dimensions."""


def check_data_format(value: object, ndim: int, x: object = None) -> bool:
    """Whether ``value`` is the channels-first layout of an ``ndim``-D layer (False: channels-last).

    ``ValueError`` naming ``data_format`` otherwise; a layout of another rank also names the shape of the array
    ``x`` (the arrays an ``ndim``-D layer takes have ``ndim + 2`` dimensions).
    """
    choices = DATA_FORMATS[ndim]
    if value in choices:
        return value == choices[1]
    options = ", ".join(repr(c) for c in choices)
    for rank, names in DATA_FORMATS.items():
        if value in names:
            shape = "" if getattr(x, "shape", None) is None else f"; x has shape {tuple(x.shape)}"  # type: ignore[union-attr]
            raise ValueError(
                f"data_format {value!r} is the layout of {rank + 2}-D arrays ({_axes(rank)}), but this layer has "
                f"{_axes(ndim)} and takes {ndim + 2}-D arrays: data_format must be one of {options}{shape}"
            )
    raise ValueError(f"data_format must be one of {options}, got {value!r}")


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


def check_bias(
    b: object, c_out: int, dtype: np.dtype, ndim: int = 2
) -> tuple[np.ndarray | None, tuple[int, ...] | None]:
    """The bias of an ``ndim``-D layer, (C_out,) or the drop-in APIs' (1, ..., 1, C_out) with ``ndim + 2`` axes,
    as a (C_out,) vector of ``dtype``, and its original shape; ``(None, None)`` for no bias."""
    if b is None:
        return None, None
    arr = as_float_array(b, "b")
    broadcast = (1,) * (ndim + 1) + (c_out,)
    if arr.shape not in ((c_out,), broadcast):
        raise ValueError(f"b must have shape (C_out,) = ({c_out},) or {broadcast}, got {arr.shape}")
    return arr.reshape(c_out).astype(dtype, copy=False), arr.shape
