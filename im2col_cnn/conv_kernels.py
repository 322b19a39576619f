"""The three computations every convolution layer is made of, on NHWC arrays, block by block.

* :func:`correlate` -- the forward pass: columns of ``x`` times the weights.
* :func:`input_grad` -- the gradient with respect to the input (also the forward pass of a transposed
  convolution): for stride 1 a correlation of ``dout`` with the flipped kernel (no scatter at all), otherwise the
  columns' gradient ``dout · wᵀ`` scattered back by col2im.
* :func:`weight_grad` -- the gradient with respect to the weights: ``colsᵀ · dout`` summed block by block.

Weights are ``(kh, kw, C_in // groups, C_out)``. With groups, every product is a stack of one matrix product per
group over the group-major columns of :func:`~im2col_cnn.windows.iter_columns`; a depthwise convolution (one
input channel per group) skips columns altogether (:mod:`~im2col_cnn.depthwise`). Blocks do not depend on the
workspace limit, so neither do the results.
"""

from __future__ import annotations

import numpy as np

from . import depthwise
from .windows import WindowGeometry, column_blocks, iter_columns, scatter_columns

__all__ = ["correlate", "input_grad", "weight_grad"]


def _grouped_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """(kh, kw, C_in_g, C_out) -> (G, kh*kw*C_in_g, C_out_g): group g's weight matrix."""
    kh, kw, c_in_g, c_out = w.shape
    return w.reshape(kh * kw * c_in_g, groups, c_out // groups).transpose(1, 0, 2)


def correlate(
    x: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    limit: int,
    bias: np.ndarray | None = None,
    groups: int = 1,
) -> np.ndarray:
    """``out[n, ho, wo, co] = Σ_{i,j,c} x_pad[n, ho*sh + i*dh, wo*sw + j*dw, c_g0 + c] * w[i, j, c, co] (+ bias)``.

    ``x`` (N, H, W, C_in), ``w`` (kh, kw, C_in // groups, C_out) -> out (N, Ho, Wo, C_out), dtype of ``x``;
    ``c_g0`` is the first input channel of output channel ``co``'s group.
    """
    if groups > 1 and w.shape[2] == 1:
        return depthwise.correlate(x, w, geom, bias)
    c_out = w.shape[3]
    wg = _grouped_weights(w, groups)  # (G, Kg, C_out_g)
    out = np.empty((x.shape[0], geom.out_h, geom.out_w, c_out), dtype=x.dtype)
    for images, rows, cols in iter_columns(x, geom, limit, groups):
        block = out[images, rows].reshape(-1, c_out)  # a view: (n_b, h_b, Wo, C_out) -> (m, C_out)
        m = block.shape[0]
        if groups == 1:
            np.matmul(cols, wg[0], out=block)  # (m, K) @ (K, C_out)
        else:  # (G, m, Kg) @ (G, Kg, C_out_g) -> (G, m, C_out_g), written straight into the (m, G, C_out_g) block
            g_out = block.reshape(m, groups, wg.shape[2]).transpose(1, 0, 2)
            np.matmul(cols.reshape(m, groups, wg.shape[1]).transpose(1, 0, 2), wg, out=g_out)
        if bias is not None:
            block += bias
    return out


def input_grad(
    dout: np.ndarray,
    w: np.ndarray,
    geom: WindowGeometry,
    x_shape: tuple[int, ...],
    limit: int,
    groups: int = 1,
) -> np.ndarray:
    """Gradient of :func:`correlate` with respect to ``x``: ``dout`` (N, Ho, Wo, C_out) -> dx ``x_shape``."""
    kh, kw, c_in_g, c_out = w.shape
    if groups > 1 and c_in_g == 1:
        return depthwise.input_grad(dout, w, geom, x_shape)
    reach_h, reach_w = (kh - 1) * geom.dh, (kw - 1) * geom.dw  # effective kernel extent - 1
    pads = (geom.pad_top, geom.pad_bottom, geom.pad_left, geom.pad_right)
    if (geom.sh, geom.sw) == (1, 1) and max(pads[:2]) <= reach_h and max(pads[2:]) <= reach_w:
        # dx is dout, padded by the kernel's reach less the forward padding, correlated with the flipped kernel.
        flipped = WindowGeometry(
            geom.out_h, geom.out_w, kh, kw, 1, 1, reach_h - pads[0], reach_h - pads[1],
            reach_w - pads[2], reach_w - pads[3], geom.dh, geom.dw,
        )  # fmt: skip
        # (kh, kw, C_in_g, G, C_out_g) -> (kh, kw, C_out_g, G, C_in_g) -> (kh, kw, C_out_g, C_in), flipped
        w_flip = w[::-1, ::-1].reshape(kh, kw, c_in_g, groups, -1).transpose(0, 1, 4, 3, 2)
        return correlate(dout, w_flip.reshape(kh, kw, -1, c_in_g * groups), flipped, limit, groups=groups)
    wg_t = _grouped_weights(w, groups).transpose(0, 2, 1)  # (G, C_out_g, Kg)
    k = kh * kw * c_in_g * groups
    dx = np.zeros(x_shape, dtype=dout.dtype)
    dcols_buf = None
    # The column gradient of each block of output rows is scattered into that block's images.
    for images, rows in column_blocks(x_shape, dout.dtype.itemsize, geom, limit):
        d = dout[images, rows].reshape(-1, c_out)  # (m, C_out)
        m = d.shape[0]
        if dcols_buf is None:
            dcols_buf = np.empty(m * k, dtype=dout.dtype)
        dcols = dcols_buf[: m * k].reshape(m, groups, k // groups)  # (m, G, Kg): group-major columns
        if groups == 1:
            np.matmul(d, wg_t[0], out=dcols[:, 0])  # (m, C_out) @ (C_out, K)
        else:  # (G, m, C_out_g) @ (G, C_out_g, Kg) -> (G, m, Kg)
            np.matmul(d.reshape(m, groups, c_out // groups).transpose(1, 0, 2), wg_t, out=dcols.transpose(1, 0, 2))
        scatter_columns(dcols.reshape(m, k), geom, dx[images], rows, groups)
    return dx


def weight_grad(
    x: np.ndarray,
    dout: np.ndarray,
    geom: WindowGeometry,
    kernel: tuple[int, int],
    limit: int,
    groups: int = 1,
) -> np.ndarray:
    """Gradient of :func:`correlate` with respect to ``w``: Σ over blocks, in order, of ``colsᵀ · dout``.

    ``x`` (N, H, W, C_in), ``dout`` (N, Ho, Wo, C_out) -> dw (kh, kw, C_in // groups, C_out).
    """
    c_in_g, c_out = x.shape[3] // groups, dout.shape[3]
    if groups > 1 and c_in_g == 1:
        return depthwise.weight_grad(x, dout, geom)
    k_g = kernel[0] * kernel[1] * c_in_g
    dw = np.zeros((groups, k_g, c_out // groups), dtype=x.dtype)
    partial = np.empty_like(dw)
    for images, rows, cols in iter_columns(x, geom, limit, groups):
        d = dout[images, rows].reshape(-1, c_out)  # (m, C_out)
        m = d.shape[0]
        if groups == 1:
            dw[0] += np.matmul(cols.T, d, out=partial[0])  # (K, m) @ (m, C_out)
        else:  # (G, Kg, m) @ (G, m, C_out_g) -> (G, Kg, C_out_g)
            g_cols = cols.reshape(m, groups, k_g).transpose(1, 2, 0)
            dw += np.matmul(g_cols, d.reshape(m, groups, c_out // groups).transpose(1, 0, 2), out=partial)
    # (G, Kg, C_out_g) -> (Kg, G, C_out_g) -> (kh, kw, C_in_g, C_out)
    return dw.transpose(1, 0, 2).reshape(*kernel, c_in_g, c_out)
