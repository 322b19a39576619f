"""Plain-loop reference for the modern API: conv2d, max_pool2d and avg_pool2d, forward and backward.

Layout is NHWC: x (N, H, W, C), w (kh, kw, C_in, C_out). Every function walks the output one window at a
time (loops over n, ho, wo and the output channel), so each line can be checked against the formula in
the spec. These functions are the oracle the fast engine is tested against: clarity over speed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import IntOrPair, as_float, out_size, pad_hw, pair

__all__ = [
    "ConvCache",
    "PoolCache",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv2d_backward",
    "conv2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
]


class ConvCache(NamedTuple):
    """What conv2d_backward needs: the float inputs and the normalized hyperparameters."""

    x: np.ndarray  # (N, H, W, C_in), in the compute dtype
    w: np.ndarray  # (kh, kw, C_in, C_out), in the compute dtype
    b: np.ndarray | None  # as given ((C_out,) or (1, 1, 1, C_out)), in the compute dtype, or None
    stride: tuple[int, int]  # (sh, sw)
    padding: tuple[int, int]  # (ph, pw)


class PoolCache(NamedTuple):
    """What the pooling backward functions need."""

    x: np.ndarray  # (N, H, W, C), in the compute dtype
    kernel_size: tuple[int, int]  # (kh, kw)
    stride: tuple[int, int]  # (sh, sw)
    padding: tuple[int, int]  # (ph, pw)


# ----------------------------------------------------------------------------------------------- conv2d


def conv2d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> tuple[np.ndarray, ConvCache]:
    """2-D convolution (cross-correlation), NHWC, zero padding.

    Parameters
    ----------
    x : (N, H, W, C_in)
    w : (kh, kw, C_in, C_out)
    b : (C_out,) or (1, 1, 1, C_out) or None
    stride, padding : int or (h, w) pair

    Returns
    -------
    out : (N, Ho, Wo, C_out), ``Ho = (H + 2*ph - kh) // sh + 1``
    cache : ConvCache
    """
    x = as_float(x)
    w = as_float(w)
    dtype = np.result_type(x, w)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    if b is not None:
        b = as_float(b).astype(dtype, copy=False)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    n_batch, h_in, w_in, _ = x.shape
    kh, kw, _, c_out = w.shape
    h_out = out_size(h_in, kh, sh, ph)
    w_out = out_size(w_in, kw, sw, pw)
    bias = np.zeros(c_out, dtype=dtype) if b is None else b.reshape(c_out)

    x_pad = pad_hw(x, ph, pw, 0.0)
    out = np.zeros((n_batch, h_out, w_out, c_out), dtype=dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                window = x_pad[n, top : top + kh, left : left + kw, :]  # (kh, kw, C_in)
                for co in range(c_out):
                    out[n, ho, wo, co] = np.sum(window * w[:, :, :, co]) + bias[co]
    return out, ConvCache(x, w, b, (sh, sw), (ph, pw))


def conv2d_backward(dout: ArrayLike, cache: ConvCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of conv2d_forward.

    Parameters
    ----------
    dout : (N, Ho, Wo, C_out)
    cache : ConvCache from conv2d_forward

    Returns
    -------
    dx : (N, H, W, C_in); dw : (kh, kw, C_in, C_out); db : b's shape, (C_out,) when b was None
    """
    x, w, b, (sh, sw), (ph, pw) = cache
    dtype = x.dtype
    dout = as_float(dout).astype(dtype, copy=False)
    n_batch, h_out, w_out, c_out = dout.shape
    kh, kw, _, _ = w.shape

    x_pad = pad_hw(x, ph, pw, 0.0)
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.zeros(c_out, dtype=dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                window = x_pad[n, top : top + kh, left : left + kw, :]  # (kh, kw, C_in)
                for co in range(c_out):
                    g = dout[n, ho, wo, co]
                    dx_pad[n, top : top + kh, left : left + kw, :] += w[:, :, :, co] * g
                    dw[:, :, :, co] += window * g
                    db[co] += g
    dx = dx_pad[:, ph : ph + x.shape[1], pw : pw + x.shape[2], :]  # drop the padding (works for pad 0)
    if b is not None:
        db = db.reshape(b.shape)
    return dx.copy(), dw, db


# ---------------------------------------------------------------------------------------------- pooling


def _pool_setup(x: ArrayLike, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair) -> PoolCache:
    """Normalize pooling arguments; PyTorch's rule: padding <= kernel_size // 2 on each axis."""
    x = as_float(x)
    kh, kw = pair(kernel_size)
    sh, sw = pair((kh, kw) if stride is None else stride)
    ph, pw = pair(padding)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    return PoolCache(x, (kh, kw), (sh, sw), (ph, pw))


def max_pool2d_forward(
    x: ArrayLike, kernel_size: IntOrPair, *, stride: IntOrPair | None = None, padding: IntOrPair = 0
) -> tuple[np.ndarray, PoolCache]:
    """Max pooling, NHWC; padding acts as -inf; stride defaults to kernel_size.

    Parameters
    ----------
    x : (N, H, W, C)
    kernel_size, stride, padding : int or (h, w) pair

    Returns
    -------
    out : (N, Ho, Wo, C)
    cache : PoolCache
    """
    cache = _pool_setup(x, kernel_size, stride, padding)
    x, (kh, kw), (sh, sw), (ph, pw) = cache
    n_batch, h_in, w_in, channels = x.shape
    h_out = out_size(h_in, kh, sh, ph)
    w_out = out_size(w_in, kw, sw, pw)

    x_pad = pad_hw(x, ph, pw, -np.inf)
    out = np.zeros((n_batch, h_out, w_out, channels), dtype=x.dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                for c in range(channels):
                    window = x_pad[n, top : top + kh, left : left + kw, c]  # (kh, kw)
                    out[n, ho, wo, c] = np.max(window)
    return out, cache


def max_pool2d_backward(dout: ArrayLike, cache: PoolCache) -> np.ndarray:
    """Gradient of max_pool2d_forward: each window's gradient goes to its FIRST maximum.

    "First" is row-major order inside the (kh, kw) window; see ``_window_argmax`` for the exact rule.

    Parameters
    ----------
    dout : (N, Ho, Wo, C)
    cache : PoolCache from max_pool2d_forward

    Returns
    -------
    dx : (N, H, W, C)
    """
    x, (kh, kw), (sh, sw), (ph, pw) = cache
    dout = as_float(dout).astype(x.dtype, copy=False)
    n_batch, h_out, w_out, channels = dout.shape

    x_pad = pad_hw(x, ph, pw, -np.inf)
    dx_pad = np.zeros_like(x_pad)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                for c in range(channels):
                    i, j = _window_argmax(x_pad[n, :, :, c], top, left, kh, kw, (ph, pw), x.shape[1:3])
                    dx_pad[n, top + i, left + j, c] += dout[n, ho, wo, c]
    return dx_pad[:, ph : ph + x.shape[1], pw : pw + x.shape[2], :].copy()


def _window_argmax(
    plane: np.ndarray, top: int, left: int, kh: int, kw: int, pads: tuple[int, int], size: tuple[int, int]
) -> tuple[int, int]:
    """Offset (i, j) in the window at (top, left) of padded ``plane`` that receives the max-pool gradient.

    PyTorch's scan: start at the first position inside the unpadded input, then move to any later
    position whose value is greater than the best so far, or is NaN. So ties go to the first maximum,
    padding never wins, and a window holding NaN sends its gradient to its last NaN.
    """
    best = None
    for i in range(kh):
        for j in range(kw):
            row, col = top + i - pads[0], left + j - pads[1]
            if not (0 <= row < size[0] and 0 <= col < size[1]):
                continue  # padding
            value = plane[top + i, left + j]
            if best is None or value > plane[top + best[0], left + best[1]] or np.isnan(value):
                best = (i, j)
    assert best is not None, "a max-pool window must overlap the input"
    return best


def avg_pool2d_forward(
    x: ArrayLike, kernel_size: IntOrPair, *, stride: IntOrPair | None = None, padding: IntOrPair = 0
) -> tuple[np.ndarray, PoolCache]:
    """Average pooling, NHWC; zero padding counted in the divisor kh*kw; stride defaults to kernel_size.

    Parameters
    ----------
    x : (N, H, W, C)
    kernel_size, stride, padding : int or (h, w) pair

    Returns
    -------
    out : (N, Ho, Wo, C)
    cache : PoolCache
    """
    cache = _pool_setup(x, kernel_size, stride, padding)
    x, (kh, kw), (sh, sw), (ph, pw) = cache
    n_batch, h_in, w_in, channels = x.shape
    h_out = out_size(h_in, kh, sh, ph)
    w_out = out_size(w_in, kw, sw, pw)

    x_pad = pad_hw(x, ph, pw, 0.0)
    out = np.zeros((n_batch, h_out, w_out, channels), dtype=x.dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                for c in range(channels):
                    window = x_pad[n, top : top + kh, left : left + kw, c]  # (kh, kw)
                    out[n, ho, wo, c] = np.sum(window) / (kh * kw)
    return out, cache


def avg_pool2d_backward(dout: ArrayLike, cache: PoolCache) -> np.ndarray:
    """Gradient of avg_pool2d_forward: each window spreads dout / (kh*kw) over its kh*kw positions.

    Parameters
    ----------
    dout : (N, Ho, Wo, C)
    cache : PoolCache from avg_pool2d_forward

    Returns
    -------
    dx : (N, H, W, C)
    """
    x, (kh, kw), (sh, sw), (ph, pw) = cache
    dout = as_float(dout).astype(x.dtype, copy=False)
    n_batch, h_out, w_out, channels = dout.shape

    dx_pad = np.zeros((n_batch, x.shape[1] + 2 * ph, x.shape[2] + 2 * pw, channels), dtype=x.dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                for c in range(channels):
                    dx_pad[n, top : top + kh, left : left + kw, c] += dout[n, ho, wo, c] / (kh * kw)
    return dx_pad[:, ph : ph + x.shape[1], pw : pw + x.shape[2], :].copy()
