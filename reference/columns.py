"""Plain-loop reference for im2col and its adjoint col2im, channels-last, over 1, 2 or 3 spatial axes.

The rank follows from x (N, *spatial, C) (or x_shape). Index map, with ``ravel`` the row-major flat index:
``cols[ravel((n, *o), (N, *out)), ravel((*i, c), (*k, C))] = xpad[n, *(o*s + i*d), c]`` (per axis ``o*s + i*d``).
In 2-D: ``cols[(n*Ho + ho)*Wo + wo, (i*kw + j)*C + c] = xpad[n, ho*sh + i*dh, wo*sw + j*dw, c]``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float, conv_out_size
from ._nd import IntOrTuple, pad_spatial, per_axis, window_point

__all__ = ["col2im", "im2col"]


def _geometry(
    spatial: tuple[int, ...], kernel_size: IntOrTuple, stride: IntOrTuple, padding: IntOrTuple, dilation: IntOrTuple
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Per spatial axis: kernel, stride, padding (both sides), dilation and the number of windows ``out``."""
    ndim = len(spatial)
    if not 1 <= ndim <= 3:
        raise ValueError(f"expected 1 to 3 spatial axes (an (N, *spatial, C) input), got {ndim}")
    kernel = per_axis(kernel_size, ndim, "kernel_size", 1)
    stride_ = per_axis(stride, ndim, "stride", 1)
    pads = per_axis(padding, ndim, "padding", 0)
    dilation_ = per_axis(dilation, ndim, "dilation", 1)
    geometry = zip(spatial, kernel, stride_, pads, dilation_, strict=True)
    out_sizes = tuple(conv_out_size(size, k, s, (p, p), d) for size, k, s, p, d in geometry)
    return kernel, stride_, pads, dilation_, out_sizes


def im2col(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Unfold every (*k, C) window of the padded input into one row.

    Parameters
    ----------
    x : (N, *spatial, C) with 1, 2 or 3 spatial axes, e.g. (N, H, W, C)
    kernel_size, stride, dilation : int or one int per spatial axis, >= 1
    padding : int or one int per spatial axis, >= 0 (on both sides)
    pad_value : constant the padding is filled with

    Returns
    -------
    cols : (N * prod(out), prod(k) * C), per axis ``out = (size + 2*p - d*(k - 1) - 1) // s + 1``;
        rows in (n, *out) row-major order, columns in (*k, c) row-major order (2-D: (N*Ho*Wo, kh*kw*C))
    """
    x = as_float(x)
    n_batch, *spatial, channels = x.shape
    kernel, stride_, pads, dilation_, out_sizes = _geometry(tuple(spatial), kernel_size, stride, padding, dilation)

    x_pad = pad_spatial(x, tuple((p, p) for p in pads), pad_value)
    cols = np.zeros((n_batch * int(np.prod(out_sizes)), int(np.prod(kernel)) * channels), dtype=x.dtype)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):  # the output positions, row-major
            row = np.ravel_multi_index((n, *position), (n_batch, *out_sizes))
            for offset in np.ndindex(*kernel):  # the kernel offsets, row-major
                for c in range(channels):
                    col = np.ravel_multi_index((*offset, c), (*kernel, channels))
                    cols[row, col] = x_pad[(n, *window_point(position, offset, stride_, dilation_), c)]
    return cols


def col2im(
    cols: ArrayLike,
    x_shape: tuple[int, ...],
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> np.ndarray:
    """Adjoint of im2col: add every column entry back to the input position it was read from.

    Parameters
    ----------
    cols : (N * prod(out), prod(k) * C) (see ``im2col``)
    x_shape : (N, *spatial, C) with 1, 2 or 3 spatial axes, e.g. (N, H, W, C)
    kernel_size, stride, dilation : int or one int per spatial axis, >= 1
    padding : int or one int per spatial axis, >= 0 (on both sides)

    Returns
    -------
    dx : x_shape; entries that came from the padding are dropped
    """
    cols = as_float(cols)
    n_batch, *spatial, channels = (int(s) for s in x_shape)
    kernel, stride_, pads, dilation_, out_sizes = _geometry(tuple(spatial), kernel_size, stride, padding, dilation)
    expected = (n_batch * int(np.prod(out_sizes)), int(np.prod(kernel)) * channels)
    if cols.shape != expected:
        raise ValueError(f"cols has shape {cols.shape}, expected {expected}")

    padded = tuple(size + 2 * p for size, p in zip(spatial, pads, strict=True))
    dx_pad = np.zeros((n_batch, *padded, channels), dtype=cols.dtype)
    for n in range(n_batch):
        for position in np.ndindex(*out_sizes):
            row = np.ravel_multi_index((n, *position), (n_batch, *out_sizes))
            for offset in np.ndindex(*kernel):
                for c in range(channels):
                    col = np.ravel_multi_index((*offset, c), (*kernel, channels))
                    dx_pad[(n, *window_point(position, offset, stride_, dilation_), c)] += cols[row, col]
    inside = tuple(slice(p, p + size) for p, size in zip(pads, spatial, strict=True))
    return dx_pad[(slice(None), *inside, slice(None))].copy()
