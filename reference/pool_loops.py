"""Plain-loop reference for max_pool2d and avg_pool2d, forward and backward (PyTorch's semantics).

The loops work in NHWC, x (N, H, W, C); an NCHW call ((N, C, H, W)) is transposed on the way in and its
results back on the way out. Every function walks the output one window at a time (loops over n, ho, wo
and the channel). Window (ho, wo) reads input rows ``ho*sh - ph + i*dh`` (i < kh) and columns
``wo*sw - pw + j*dw`` (j < kw); positions outside the input are padding: -inf for max pooling (never
wins), 0 for average pooling (counted in the divisor or not, see ``_avg_divisor``). ceil_mode may add a
last window that runs past the bottom / right padding; the loops pad far enough to cover it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._common import (
    IntOrPair,
    as_float,
    check_data_format,
    check_dout,
    checked_pair,
    from_nhwc,
    pool_out_size,
    to_nhwc,
)

__all__ = ["PoolCache", "avg_pool2d_backward", "avg_pool2d_forward", "max_pool2d_backward", "max_pool2d_forward"]


class PoolCache(NamedTuple):
    """What the pooling backward functions need (the first four fields are the original cache)."""

    x: np.ndarray  # (N, H, W, C) in the compute dtype; an NCHW x is stored transposed to NHWC
    kernel_size: tuple[int, int]  # (kh, kw)
    stride: tuple[int, int]  # (sh, sw)
    padding: tuple[int, int]  # (ph, pw)
    dilation: tuple[int, int] = (1, 1)  # (dh, dw); always (1, 1) for average pooling
    ceil_mode: bool = False
    count_include_pad: bool = True  # average pooling only
    divisor_override: int | None = None  # average pooling only
    data_format: str = "NHWC"  # the layout of the forward call's x and out (and of dx and indices)
    # max pooling only: PyTorch's return_indices. int64, shaped like out (in data_format's layout): the flat
    # index ``row * W + col`` into the (unpadded) H x W input plane of the position that won the window
    indices: np.ndarray | None = None


def _pool_setup(
    x: ArrayLike,
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair,
    data_format: str,
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Normalize pooling arguments: x as NHWC float, kernel, stride (default: kernel), padding, dilation.

    PyTorch's padding rule: at most half the kernel size on each axis (``k // 2``, whatever the dilation).
    """
    check_data_format(data_format)
    x = to_nhwc(as_float(x), data_format)
    kh, kw = checked_pair(kernel_size, "kernel_size", 1)
    sh, sw = checked_pair((kh, kw) if stride is None else stride, "stride", 1)
    ph, pw = checked_pair(padding, "padding", 0)
    dh, dw = checked_pair(dilation, "dilation", 1)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    return x, (kh, kw), (sh, sw), (ph, pw), (dh, dw)


def _padded(x: np.ndarray, cache: PoolCache, out_hw: tuple[int, int], value: float) -> np.ndarray:
    """x padded by (ph, pw) on each side with ``value``, plus what a ceil-mode last window needs at the end."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = cache.kernel_size, cache.stride, cache.padding, cache.dilation
    extra_h = max(0, (out_hw[0] - 1) * sh + dh * (kh - 1) + 1 - (x.shape[1] + 2 * ph))
    extra_w = max(0, (out_hw[1] - 1) * sw + dw * (kw - 1) + 1 - (x.shape[2] + 2 * pw))
    return np.pad(x, ((0, 0), (ph, ph + extra_h), (pw, pw + extra_w), (0, 0)), constant_values=value)


def _out_hw(cache: PoolCache) -> tuple[int, int]:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = cache.kernel_size, cache.stride, cache.padding, cache.dilation
    h_out = pool_out_size(cache.x.shape[1], kh, sh, ph, dh, cache.ceil_mode)
    w_out = pool_out_size(cache.x.shape[2], kw, sw, pw, dw, cache.ceil_mode)
    return h_out, w_out


# ------------------------------------------------------------------------------------------ max pooling


def max_pool2d_forward(
    x: ArrayLike,
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    data_format: str = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Max pooling; padding acts as -inf; stride defaults to kernel_size.

    Parameters
    ----------
    x : (N, H, W, C) for NHWC, (N, C, H, W) for NCHW
    kernel_size, stride, dilation : int or (h, w) pair, >= 1
    padding : int or (h, w) pair, at most half the effective kernel ``d*(k - 1) + 1``
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)
    data_format : 'NHWC' or 'NCHW'

    Returns
    -------
    out : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)); ``Ho = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1`` (floor mode)
    cache : PoolCache; ``cache.indices`` (int64, like out) is the argmax as PyTorch's return_indices gives it
    """
    x, kernel, stride_, pads, dilation_ = _pool_setup(x, kernel_size, stride, padding, dilation, data_format)
    cache = PoolCache(x, kernel, stride_, pads, dilation_, bool(ceil_mode), data_format=data_format)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride_, pads, dilation_
    n_batch, h_in, w_in, channels = x.shape
    h_out, w_out = _out_hw(cache)

    x_pad = _padded(x, cache, (h_out, w_out), -np.inf)
    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    out = np.zeros((n_batch, h_out, w_out, channels), dtype=x.dtype)
    indices = np.zeros((n_batch, h_out, w_out, channels), dtype=np.int64)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                for c in range(channels):
                    window = x_pad[n, top : top + ext_h : dh, left : left + ext_w : dw, c]  # (kh, kw)
                    out[n, ho, wo, c] = np.max(window)
                    best = _window_argmax(x[n, :, :, c], top - ph, left - pw, (kh, kw), (dh, dw))
                    if best is None:
                        raise ValueError(f"max-pool window {(ho, wo)} covers no input position (dilation too large)")
                    indices[n, ho, wo, c] = best
    cache = cache._replace(indices=from_nhwc(indices, data_format))
    return from_nhwc(out, data_format), cache


def max_pool2d_backward(dout: ArrayLike, cache: PoolCache) -> np.ndarray:
    """Gradient of max_pool2d_forward: each window's gradient goes to ONE position, ``cache.indices``.

    That is the window's FIRST maximum in row-major order (see ``_window_argmax`` for the exact rule).
    A cache without indices (built by hand) gets them recomputed.

    Parameters
    ----------
    dout : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : PoolCache from max_pool2d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    x, data_format = cache.x, cache.data_format
    if cache.indices is None:  # a hand-built cache: recompute the argmax (cache.x is NHWC)
        geometry = dict(stride=cache.stride, padding=cache.padding, dilation=cache.dilation, ceil_mode=cache.ceil_mode)
        indices = max_pool2d_forward(x, cache.kernel_size, **geometry)[1].indices
    else:
        indices = to_nhwc(cache.indices, data_format)
    dout = check_dout(dout, indices.shape, x.dtype, data_format)
    n_batch, h_out, w_out, channels = dout.shape

    w_in = x.shape[2]
    dx = np.zeros_like(x)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                for c in range(channels):
                    row, col = divmod(int(indices[n, ho, wo, c]), w_in)
                    dx[n, row, col, c] += dout[n, ho, wo, c]
    return from_nhwc(dx, data_format)


def _window_argmax(
    plane: np.ndarray, row0: int, col0: int, kernel: tuple[int, int], dilation: tuple[int, int]
) -> int | None:
    """Flat index ``row * W + col`` into the (H, W) ``plane`` of the max-pool winner of one window.

    The window's positions are ``(row0 + i*dh, col0 + j*dw)``, i < kh, j < kw (row0 / col0 may be negative:
    the window starts in the padding). PyTorch's scan: start at the first position inside the input, then
    move to any later position (row-major) whose value is greater than the best so far, or is NaN. So ties
    go to the first maximum, positions outside the input (padding, ceil-mode overhang) never win, and a
    window holding NaN sends its gradient to its last NaN. None when no position is inside the input.
    """
    height, width = plane.shape
    best, best_value = None, None
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            row, col = row0 + i * dilation[0], col0 + j * dilation[1]
            if not (0 <= row < height and 0 <= col < width):
                continue  # padding
            value = plane[row, col]
            if best is None or value > best_value or np.isnan(value):
                best, best_value = row * width + col, value
    return best


# -------------------------------------------------------------------------------------- average pooling


def _avg_divisor(cache: PoolCache, ho: int, wo: int) -> int:
    """PyTorch's divisor for window (ho, wo).

    ``hstart = ho*sh - ph``, ``hend = min(hstart + kh, H + ph)`` (likewise for w); ``pool = (hend - hstart) *
    (wend - wstart)`` counts the padding but not a ceil-mode overhang past it. divisor_override, if given,
    else pool if count_include_pad, else the number of input positions (start and end clipped to the input).
    """
    if cache.divisor_override is not None:
        return cache.divisor_override
    (kh, kw), (sh, sw), (ph, pw) = cache.kernel_size, cache.stride, cache.padding
    h_in, w_in = cache.x.shape[1], cache.x.shape[2]
    hstart, wstart = ho * sh - ph, wo * sw - pw
    hend, wend = min(hstart + kh, h_in + ph), min(wstart + kw, w_in + pw)
    if cache.count_include_pad:
        return (hend - hstart) * (wend - wstart)
    return (min(hend, h_in) - max(hstart, 0)) * (min(wend, w_in) - max(wstart, 0))


def avg_pool2d_forward(
    x: ArrayLike,
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    data_format: str = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Average pooling with zero padding; stride defaults to kernel_size.

    Parameters
    ----------
    x : (N, H, W, C) for NHWC, (N, C, H, W) for NCHW
    kernel_size, stride : int or (h, w) pair, >= 1
    padding : int or (h, w) pair, at most kernel_size // 2
    ceil_mode : output size rounded up (PyTorch's rule, see ``pool_out_size``)
    count_include_pad : whether the padding counts in the divisor (see ``_avg_divisor``)
    divisor_override : int != 0, the divisor of every window
    data_format : 'NHWC' or 'NCHW'

    Returns
    -------
    out : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)); ``out = sum(window) / divisor``
    cache : PoolCache
    """
    x, kernel, stride_, pads, _ = _pool_setup(x, kernel_size, stride, padding, 1, data_format)
    if divisor_override is not None:
        if int(divisor_override) != divisor_override or divisor_override == 0:
            raise ValueError(f"divisor_override must be a nonzero int, got {divisor_override!r}")
        divisor_override = int(divisor_override)
    cache = PoolCache(
        x, kernel, stride_, pads, (1, 1), bool(ceil_mode), bool(count_include_pad), divisor_override, data_format
    )
    (kh, kw), (sh, sw) = kernel, stride_
    n_batch, _, _, channels = x.shape
    h_out, w_out = _out_hw(cache)

    x_pad = _padded(x, cache, (h_out, w_out), 0.0)
    out = np.zeros((n_batch, h_out, w_out, channels), dtype=x.dtype)
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                divisor = _avg_divisor(cache, ho, wo)
                for c in range(channels):
                    window = x_pad[n, top : top + kh, left : left + kw, c]  # (kh, kw)
                    out[n, ho, wo, c] = np.sum(window) / divisor
    return from_nhwc(out, data_format), cache


def avg_pool2d_backward(dout: ArrayLike, cache: PoolCache) -> np.ndarray:
    """Gradient of avg_pool2d_forward: each window spreads dout / divisor over its kh*kw positions.

    Positions in the padding (or a ceil-mode overhang) are cropped away afterwards.

    Parameters
    ----------
    dout : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : PoolCache from avg_pool2d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    x, (kh, kw), (sh, sw), (ph, pw) = cache.x, cache.kernel_size, cache.stride, cache.padding
    h_out, w_out = _out_hw(cache)
    dout = check_dout(dout, (x.shape[0], h_out, w_out, x.shape[3]), x.dtype, cache.data_format)
    n_batch, _, _, channels = dout.shape

    dx_pad = np.zeros_like(_padded(x, cache, (h_out, w_out), 0.0))
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                top, left = ho * sh, wo * sw
                divisor = _avg_divisor(cache, ho, wo)
                for c in range(channels):
                    dx_pad[n, top : top + kh, left : left + kw, c] += dout[n, ho, wo, c] / divisor
    dx = dx_pad[:, ph : ph + x.shape[1], pw : pw + x.shape[2], :]
    return from_nhwc(dx.copy(), cache.data_format)
