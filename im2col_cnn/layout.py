"""NCHW <-> NHWC: the engine computes in NHWC; PyTorch-layout arrays are transposed at the API boundary.

Inputs are transposed as views (no copy: the engine copies windows into columns anyway); results go back as
C-contiguous arrays in the layout they came in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_nhwc", "from_nhwc", "weight_to_hwio", "weight_from_hwio"]


def to_nhwc(x: np.ndarray, data_format: str) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W, C) view when ``data_format`` is 'NCHW'; ``x`` itself otherwise."""
    return x.transpose(0, 2, 3, 1) if data_format == "NCHW" else x


def from_nhwc(y: np.ndarray, data_format: str) -> np.ndarray:
    """(N, H, W, C) -> C-contiguous (N, C, H, W) when ``data_format`` is 'NCHW'; ``y`` itself otherwise."""
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if data_format == "NCHW" else y


def weight_to_hwio(w: np.ndarray, data_format: str) -> np.ndarray:
    """PyTorch's (O, I, kh, kw) -> (kh, kw, I, O) view when ``data_format`` is 'NCHW'; ``w`` itself otherwise."""
    return w.transpose(2, 3, 1, 0) if data_format == "NCHW" else w


def weight_from_hwio(dw: np.ndarray, data_format: str) -> np.ndarray:
    """(kh, kw, I, O) -> C-contiguous (O, I, kh, kw) when ``data_format`` is 'NCHW'; ``dw`` itself otherwise."""
    return np.ascontiguousarray(dw.transpose(3, 2, 0, 1)) if data_format == "NCHW" else dw
