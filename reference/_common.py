"""Small helpers shared by the reference loops: pairs, dtypes, output sizes and padding."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

IntOrPair = int | tuple[int, int]


def pair(value: int | tuple[int, int] | list[int] | np.ndarray) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints (an int ``v`` becomes ``(v, v)``)."""
    if np.ndim(value) == 0:
        return (int(value), int(value))  # type: ignore[arg-type]
    h, w = value  # type: ignore[misc]
    return (int(h), int(w))


def as_float(value: ArrayLike) -> np.ndarray:
    """Return ``value`` as a float array: float dtypes are kept, ints/bools/lists become float64."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(f"expected a real numeric array, got dtype {arr.dtype}")


def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Number of windows along one axis: ``(size + 2*pad - kernel) // stride + 1``."""
    if kernel > size + 2 * pad:
        raise ValueError(f"kernel size {kernel} is larger than the padded input size {size + 2 * pad}")
    return (size + 2 * pad - kernel) // stride + 1


def pad_hw(x: np.ndarray, ph: int, pw: int, value: float = 0.0) -> np.ndarray:
    """Pad axes 1 (H) and 2 (W) of an (N, H, W, C) array with the constant ``value``."""
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="constant", constant_values=value)
