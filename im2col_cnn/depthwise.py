"""Depthwise convolution (one input channel per group), without columns.

With one input channel per group the per-group matrix products would be tiny (kh*kw by the channel
multiplier), so these kernels instead accumulate one strided slice of the input per kernel offset, for all
channels at once -- the same per-offset slices pooling uses. Weights are ``(kh, kw, 1, C_out)`` with
``C_out = C_in * multiplier``; output channel ``c * multiplier + q`` reads input channel ``c``.
"""

from __future__ import annotations

import numpy as np

from .windows import WindowGeometry
from .workspace import image_blocks

__all__ = ["correlate", "input_grad", "weight_grad"]


def _taps(w: np.ndarray, c_in: int) -> np.ndarray:
    """(kh, kw, 1, C_out) -> (kh, kw, C_in, multiplier): each offset's weights, per input channel."""
    return w.reshape(w.shape[0], w.shape[1], c_in, w.shape[3] // c_in)


def correlate(x: np.ndarray, w: np.ndarray, geom: WindowGeometry, bias: np.ndarray | None = None) -> np.ndarray:
    """Depthwise forward: ``x`` (N, H, W, C_in), ``w`` (kh, kw, 1, C_out) -> out (N, Ho, Wo, C_out)."""
    n, _, _, c_in = x.shape
    taps = _taps(w, c_in)
    out = np.zeros((n, geom.out_h, geom.out_w, w.shape[3]), dtype=x.dtype)
    out5 = out.reshape(*out.shape[:3], c_in, taps.shape[3])  # (N, Ho, Wo, C_in, multiplier)
    for images in image_blocks(x):  # blocks small enough for out to stay in cache across offsets
        xb, ob = x[images], out5[images]
        for i, j, (orow, ocol), (irow, icol) in geom.offset_slices():
            o = ob[:, orow, ocol]
            o += xb[:, irow, icol, :, None] * taps[i, j]  # (n_b, h, w, C_in, 1) * (C_in, multiplier)
    if bias is not None:
        out += bias
    return out


def input_grad(dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, x_shape: tuple[int, ...]) -> np.ndarray:
    """Depthwise gradient with respect to the input: ``dout`` (N, Ho, Wo, C_out) -> dx ``x_shape``."""
    n, _, _, c_in = x_shape
    taps = _taps(w, c_in)
    d5 = dout.reshape(*dout.shape[:3], c_in, taps.shape[3])  # (N, Ho, Wo, C_in, multiplier)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for images in image_blocks(dx):
        db, dxb = d5[images], dx[images]
        for i, j, (orow, ocol), (irow, icol) in geom.offset_slices():
            g = dxb[:, irow, icol]
            if taps.shape[3] == 1:
                g += db[:, orow, ocol, :, 0] * taps[i, j, :, 0]
            else:
                g += np.einsum("nhwcq,cq->nhwc", db[:, orow, ocol], taps[i, j])
    return dx


def weight_grad(x: np.ndarray, dout: np.ndarray, geom: WindowGeometry) -> np.ndarray:
    """Depthwise gradient with respect to the weights: -> dw (kh, kw, 1, C_out), summed block by block."""
    n, _, _, c_in = x.shape
    d5 = dout.reshape(*dout.shape[:3], c_in, dout.shape[3] // c_in)  # (N, Ho, Wo, C_in, multiplier)
    dw = np.zeros((geom.kh, geom.kw, c_in, d5.shape[4]), dtype=x.dtype)
    for images in image_blocks(x):
        xb, db = x[images], d5[images]
        for i, j, (orow, ocol), (irow, icol) in geom.offset_slices():
            # Σ over (n, h, w) of x[..., c] * dout[..., c, q] -> (C_in, multiplier)
            dw[i, j] += np.einsum("nhwc,nhwcq->cq", xb[:, irow, icol], db[:, orow, ocol])
    return dw.reshape(geom.kh, geom.kw, 1, dout.shape[3])
