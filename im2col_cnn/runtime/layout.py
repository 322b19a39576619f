"""NCHW <-> NHWC: the engine computes on (N, H, W, C) arrays; PyTorch-layout arrays are their transposed views.

Inputs are transposed as views (no copy: the conv kernels read them tile by tile). Conv results are allocated
directly in the caller's layout (:func:`new_result`) and the kernels write each tile into their (N, H, W, C)
view, so no full-size conversion is ever made. Weights are small and converted as copies.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_nhwc", "from_nhwc", "new_result", "weight_to_hwio", "weight_from_hwio"]


def to_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W, C) view when ``data_format`` is 'NCHW'; ``x`` itself otherwise."""
    return x.transpose(0, 2, 3, 1) if data_format == "NCHW" else x


def from_nhwc(y: np.ndarray, data_format: str) -> np.ndarray:
    """(N, H, W, C) -> C-contiguous (N, C, H, W) when ``data_format`` is 'NCHW'; ``y`` itself otherwise."""
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if data_format == "NCHW" else y


def new_result(
    shape: tuple[int, int, int, int], dtype: np.dtype, data_format: str, *, zeros: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A new C-contiguous result of NHWC ``shape`` (N, H, W, C) in ``data_format``, and its (N, H, W, C) view.

    With ``zeros`` it is zero-filled. For 'NCHW' the array is (N, C, H, W) and the view its transpose.
    """
    n, h, w, c = shape
    make = np.zeros if zeros else np.empty
    if data_format == "NCHW":
        arr = make((n, c, h, w), dtype=dtype)
        return arr, arr.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C) view
    arr = make(shape, dtype=dtype)
    return arr, arr


def weight_to_hwio(w: np.ndarray, data_format: str) -> np.ndarray:
    """PyTorch's (O, I, kh, kw) -> (kh, kw, I, O) view when ``data_format`` is 'NCHW'; ``w`` itself otherwise."""
    return w.transpose(2, 3, 1, 0) if data_format == "NCHW" else w


def weight_from_hwio(dw: np.ndarray, data_format: str) -> np.ndarray:
    """(kh, kw, I, O) -> C-contiguous (O, I, kh, kw) when ``data_format`` is 'NCHW'; ``dw`` itself otherwise."""
    return np.ascontiguousarray(dw.transpose(3, 2, 0, 1)) if data_format == "NCHW" else dw
