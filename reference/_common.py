"""Small helpers shared by the reference loops: pairs, dtypes, output sizes, padding and layouts."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

IntOrPair = int | tuple[int, int]
Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
# conv2d padding: int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
ConvPadding = int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]] | str
DATA_FORMATS = ("NHWC", "NCHW")


def pair(value: int | tuple[int, int] | list[int] | np.ndarray) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints (an int ``v`` becomes ``(v, v)``)."""
    if np.ndim(value) == 0:
        return (int(value), int(value))  # type: ignore[arg-type]
    h, w = value  # type: ignore[misc]
    return (int(h), int(w))


def checked_pair(value: IntOrPair, name: str, minimum: int) -> tuple[int, int]:
    """``pair(value)``, with a ValueError naming ``name`` when an entry is below ``minimum``."""
    result = pair(value)
    if min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return result


def check_data_format(data_format: str) -> str:
    """Return ``data_format`` if it is 'NHWC' or 'NCHW'; ValueError otherwise."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'NHWC' or 'NCHW', got {data_format!r}")
    return data_format


def as_float(value: ArrayLike) -> np.ndarray:
    """Return ``value`` as a float array: float dtypes are kept, ints/bools/lists become float64."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(f"expected a real numeric array, got dtype {arr.dtype}")


def check_dout(
    dout: ArrayLike, nhwc_shape: tuple[int, int, int, int], dtype: np.dtype, data_format: str, name: str = "dout"
) -> np.ndarray:
    """``dout`` as an (N, Ho, Wo, C) array of ``dtype``, after checking it has the forward output's shape.

    ``nhwc_shape`` is the forward output's (N, Ho, Wo, C); the check is on the shape in ``data_format``'s layout
    ((N, C, Ho, Wo) for NCHW), with the engine's message: a ValueError naming ``name`` and the expected shape.
    """
    arr = as_float(dout)
    n, h, w, c = nhwc_shape
    shape = (n, c, h, w) if data_format == "NCHW" else (n, h, w, c)
    if arr.shape != shape:
        raise ValueError(f"{name} must have the forward output's shape {shape}, got {arr.shape}")
    return to_nhwc(arr.astype(dtype, copy=False), data_format)


def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Number of windows along one axis: ``(size + 2*pad - kernel) // stride + 1``."""
    if kernel > size + 2 * pad:
        raise ValueError(f"kernel size {kernel} is larger than the padded input size {size + 2 * pad}")
    return (size + 2 * pad - kernel) // stride + 1


def conv_out_size(size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int = 1) -> int:
    """Windows along one axis of a (dilated) convolution with ``pads = (before, after)``.

    ``(size + before + after - dilation*(kernel - 1) - 1) // stride + 1``; ValueError if the effective
    kernel ``dilation*(kernel - 1) + 1`` does not fit in the padded input.
    """
    extent = dilation * (kernel - 1) + 1
    padded = size + pads[0] + pads[1]
    if extent > padded:
        what = "kernel size" if dilation == 1 else "dilated kernel size"
        raise ValueError(f"{what} {extent} is larger than the padded input size {padded}")
    return (padded - extent) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """Windows along one axis of a pooling, PyTorch's rule (floor or ceil mode).

    span = size + 2*pad - dilation*(kernel - 1) - 1; floor mode: ``span // stride + 1``. Ceil mode:
    ``ceil(span / stride) + 1``, minus one when the last window would start at or after ``size + pad``
    (a window must start inside the input or the left padding). ValueError when that leaves no window.
    """
    if not ceil_mode:
        return conv_out_size(size, kernel, stride, (pad, pad), dilation)
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    count = -(-span // stride) + 1  # ceil division
    if (count - 1) * stride >= size + pad:
        count -= 1
    if count < 1:
        raise ValueError(f"output size is too small: input size {size}, kernel {kernel}, padding {pad}")
    return count


def conv_pads(
    padding: ConvPadding, kernel: tuple[int, int], dilation: tuple[int, int], stride: tuple[int, int]
) -> Pads:
    """Resolve conv2d's ``padding`` argument into ``((top, bottom), (left, right))``.

    int ``p``: p on all four sides; ``(ph, pw)``: ph top and bottom, pw left and right; a pair of pairs is
    taken as is; 'valid': no padding; 'same' (stride 1 only): total ``d*(k - 1)`` per axis, ``total // 2``
    on the top/left and the rest (one more when odd) on the bottom/right, as PyTorch does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            total_h = dilation[0] * (kernel[0] - 1)
            total_w = dilation[1] * (kernel[1] - 1)
            return ((total_h // 2, total_h - total_h // 2), (total_w // 2, total_w - total_w // 2))
        raise ValueError(f"padding must be an int, a pair, a pair of pairs, 'valid' or 'same'; got {padding!r}")
    arr = np.asarray(padding)
    if arr.ndim == 0:
        pads = ((int(arr), int(arr)), (int(arr), int(arr)))
    elif arr.shape == (2,):
        pads = ((int(arr[0]), int(arr[0])), (int(arr[1]), int(arr[1])))
    elif arr.shape == (2, 2):
        pads = ((int(arr[0, 0]), int(arr[0, 1])), (int(arr[1, 0]), int(arr[1, 1])))
    else:
        raise ValueError(f"padding must be an int, a pair, a pair of pairs, 'valid' or 'same'; got {padding!r}")
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pads


def as_pads(padding: tuple[int, int] | Pads) -> Pads:
    """A cache's padding as ``((top, bottom), (left, right))``; a symmetric ``(ph, pw)`` pair is expanded."""
    ph, pw = padding
    if np.ndim(ph) == 0:
        return ((int(ph), int(ph)), (int(pw), int(pw)))  # type: ignore[arg-type]
    return ((int(ph[0]), int(ph[1])), (int(pw[0]), int(pw[1])))  # type: ignore[index]


def pad_hw(x: np.ndarray, ph: int, pw: int, value: float = 0.0) -> np.ndarray:
    """Pad axes 1 (H) and 2 (W) of an (N, H, W, C) array with the constant ``value``."""
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="constant", constant_values=value)


def pad_hw_sides(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad axes 1 (H) and 2 (W) of an (N, H, W, C) array by ``((top, bottom), (left, right))``."""
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), mode="constant", constant_values=value)


# Layouts: the loops work in NHWC; NCHW inputs are transposed on the way in and results on the way out.
# conv2d weight: NHWC (kh, kw, C_in // groups, C_out) <-> NCHW (C_out, C_in // groups, kh, kw).
# conv_transpose2d weight: NHWC (kh, kw, C_out // groups, C_in) <-> NCHW (C_in, C_out // groups, kh, kw).
# Both pairs are related by the same axis permutation.


def to_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    """An activation in ``data_format`` as (N, H, W, C) (a transposed view for NCHW)."""
    return x if data_format == "NHWC" else x.transpose(0, 2, 3, 1)


def from_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    """An (N, H, W, C) activation in ``data_format`` (a contiguous copy for NCHW)."""
    return x if data_format == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def weight_to_nhwc(w: np.ndarray, data_format: str) -> np.ndarray:
    """A weight in ``data_format`` layout as its NHWC layout (kh, kw, ., .): NCHW (a, b, kh, kw) -> (kh, kw, b, a)."""
    return w if data_format == "NHWC" else w.transpose(2, 3, 1, 0)


def weight_from_nhwc(w: np.ndarray, data_format: str) -> np.ndarray:
    """Inverse of ``weight_to_nhwc``: (kh, kw, b, a) -> (a, b, kh, kw) for NCHW (a contiguous copy)."""
    return w if data_format == "NHWC" else np.ascontiguousarray(w.transpose(3, 2, 0, 1))
