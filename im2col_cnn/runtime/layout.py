"""Channels-first <-> channels-last: the engine computes on ``(N, *spatial, C)`` arrays; PyTorch-layout arrays
(``(N, C, *spatial)``: NCW, NCHW, NCDHW) are their transposed views.

Inputs are transposed as views (no copy: the kernels read them tile by tile). Results are allocated directly in
the caller's layout (:func:`new_result`) and the kernels write each tile into their channels-last view, so no
full-size conversion is ever made. Weights are small and converted as copies.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "to_channels_last",
    "new_result",
    "weight_to_last",
    "weight_from_last",
    "caller_layout",
    "empty_channels_last",
]


def _last(ndim: int) -> tuple[int, ...]:
    """The axes of an (N, C, *spatial) array in (N, *spatial, C) order."""
    return (0, *range(2, ndim), 1)


def _first(ndim: int) -> tuple[int, ...]:
    """The axes of an (N, *spatial, C) array in (N, C, *spatial) order."""
    return (0, ndim - 1, *range(1, ndim - 1))


def to_channels_last(x: np.ndarray, channels_first: bool) -> np.ndarray:
    """(N, C, *spatial) -> (N, *spatial, C) view when ``channels_first``; ``x`` itself otherwise."""
    return x.transpose(_last(x.ndim)) if channels_first else x


def caller_layout(arr: np.ndarray, channels_first: bool) -> np.ndarray:
    """A channels-last view made by :func:`new_result` (or a channels-last array) -> the caller's layout:
    (N, *spatial, C) -> (N, C, *spatial) when ``channels_first`` (a view), else itself."""
    return arr.transpose(_first(arr.ndim)) if channels_first else arr


def new_result(
    shape: tuple[int, ...], dtype: np.dtype, channels_first: bool, *, zeros: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A new C-contiguous result of channels-last ``shape`` (N, *spatial, C) in the caller's layout, and its
    channels-last view. With ``zeros`` it is zero-filled. Channels-first: the array is (N, C, *spatial)."""
    make = np.zeros if zeros else np.empty
    if channels_first:
        arr = make(tuple(shape[i] for i in _first(len(shape))), dtype=dtype)
        return arr, arr.transpose(_last(arr.ndim))
    arr = make(shape, dtype=dtype)
    return arr, arr


def weight_to_last(w: np.ndarray, channels_first: bool) -> np.ndarray:
    """PyTorch's (O, I, *k) -> (*k, I, O) view when ``channels_first``; ``w`` itself otherwise."""
    return w.transpose(*range(2, w.ndim), 1, 0) if channels_first else w


def weight_from_last(dw: np.ndarray, channels_first: bool) -> np.ndarray:
    """(*k, I, O) -> C-contiguous (O, I, *k) when ``channels_first``; ``dw`` itself otherwise."""
    if not channels_first:
        return dw
    return np.ascontiguousarray(dw.transpose(dw.ndim - 1, dw.ndim - 2, *range(dw.ndim - 2)))


def empty_channels_last(
    shape: tuple[int, ...], dtype: np.dtype, channels_first: bool, buffer: np.ndarray | None = None
) -> np.ndarray:
    """An (N, *spatial, C) array laid out in memory as channels-last, or as channels-first (then a transposed
    view) when ``channels_first``. With ``buffer`` (a flat array of at least the size needed) it is a view into it.
    """
    mem = tuple(shape[i] for i in _first(len(shape))) if channels_first else tuple(shape)
    size = 1
    for s in mem:
        size *= s
    arr = np.empty(mem, dtype=dtype) if buffer is None else buffer[:size].reshape(mem)
    return arr.transpose(_last(arr.ndim)) if channels_first else arr
