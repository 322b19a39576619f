"""Plain-loop reference for im2col and its adjoint col2im (NHWC).

Index map: ``cols[(n*Ho + ho)*Wo + wo, (i*kw + j)*C + c] = xpad[n, ho*sh + i, wo*sw + j, c]``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import IntOrPair, as_float, out_size, pad_hw, pair

__all__ = ["col2im", "im2col"]


def im2col(
    x: ArrayLike,
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Unfold every (kh, kw, C) window of the padded input into one row.

    Parameters
    ----------
    x : (N, H, W, C)
    kernel_size, stride, padding : int or (h, w) pair
    pad_value : constant the padding is filled with

    Returns
    -------
    cols : (N*Ho*Wo, kh*kw*C); rows in (n, ho, wo) order, columns in (i, j, c) order
    """
    x = as_float(x)
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    n_batch, h_in, w_in, channels = x.shape
    h_out = out_size(h_in, kh, sh, ph)
    w_out = out_size(w_in, kw, sw, pw)

    x_pad = pad_hw(x, ph, pw, pad_value)
    cols = np.zeros((n_batch * h_out * w_out, kh * kw * channels), dtype=x.dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                row = (n * h_out + ho) * w_out + wo
                for i in range(kh):
                    for j in range(kw):
                        for c in range(channels):
                            cols[row, (i * kw + j) * channels + c] = x_pad[n, ho * sh + i, wo * sw + j, c]
    return cols


def col2im(
    cols: ArrayLike,
    x_shape: tuple[int, int, int, int],
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """Adjoint of im2col: add every column entry back to the input position it was read from.

    Parameters
    ----------
    cols : (N*Ho*Wo, kh*kw*C)
    x_shape : (N, H, W, C)
    kernel_size, stride, padding : int or (h, w) pair

    Returns
    -------
    dx : x_shape; entries that came from the padding are dropped
    """
    cols = as_float(cols)
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    n_batch, h_in, w_in, channels = (int(s) for s in x_shape)
    h_out = out_size(h_in, kh, sh, ph)
    w_out = out_size(w_in, kw, sw, pw)
    expected = (n_batch * h_out * w_out, kh * kw * channels)
    if cols.shape != expected:
        raise ValueError(f"cols has shape {cols.shape}, expected {expected}")

    dx_pad = np.zeros((n_batch, h_in + 2 * ph, w_in + 2 * pw, channels), dtype=cols.dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                row = (n * h_out + ho) * w_out + wo
                for i in range(kh):
                    for j in range(kw):
                        for c in range(channels):
                            dx_pad[n, ho * sh + i, wo * sw + j, c] += cols[row, (i * kw + j) * channels + c]
    return dx_pad[:, ph : ph + h_in, pw : pw + w_in, :].copy()
