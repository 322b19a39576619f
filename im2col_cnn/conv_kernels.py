"""The three computations every convolution layer is made of, on NHWC arrays, block by block.

* :func:`correlate` -- the forward pass: columns of ``x`` times the weights.
* :func:`input_grad` -- the gradient with respect to the input (also the forward pass of a transposed
  convolution): for stride 1 a correlation of ``dout`` with the flipped kernel (no scatter at all), otherwise the
  columns' gradient ``dout · wᵀ`` scattered back by col2im.
* :func:`weight_grad` -- the gradient with respect to the weights: ``colsᵀ · dout`` summed block by block.

Weights are ``(kh, kw, C_in, C_out)``. Blocks come from :func:`~im2col_cnn.windows.iter_columns`; their size does
not depend on the workspace limit, so neither do the results.
"""

from __future__ import annotations

import numpy as np

from .windows import WindowGeometry, column_blocks, iter_columns, scatter_columns

__all__ = ["correlate", "input_grad", "weight_grad"]


def correlate(x: np.ndarray, w: np.ndarray, geom: WindowGeometry, limit: int, bias: np.ndarray | None = None):
    """``out[n, ho, wo, :] = Σ_{i,j,c} x_pad[n, ho*sh + i*dh, wo*sw + j*dw, c] * w[i, j, c, :] (+ bias)``.

    ``x`` (N, H, W, C_in), ``w`` (kh, kw, C_in, C_out) -> out (N, Ho, Wo, C_out), dtype of ``x``.
    """
    kh, kw, c_in, c_out = w.shape
    w2 = w.reshape(kh * kw * c_in, c_out)  # (kh, kw, C_in, C_out) -> (kh*kw*C_in, C_out)
    out = np.empty((x.shape[0], geom.out_h, geom.out_w, c_out), dtype=x.dtype)
    for images, rows, cols in iter_columns(x, geom, limit):
        block = out[images, rows].reshape(-1, c_out)  # a view: (n_b, h_b, Wo, C_out) -> (n_b*h_b*Wo, C_out)
        np.matmul(cols, w2, out=block)  # (n_b*h_b*Wo, kh*kw*C_in) @ (kh*kw*C_in, C_out)
        if bias is not None:
            block += bias
    return out


def input_grad(dout: np.ndarray, w: np.ndarray, geom: WindowGeometry, x_shape: tuple[int, ...], limit: int):
    """Gradient of :func:`correlate` with respect to ``x``: ``dout`` (N, Ho, Wo, C_out) -> dx ``x_shape``."""
    kh, kw, c_in, c_out = w.shape
    reach_h, reach_w = (kh - 1) * geom.dh, (kw - 1) * geom.dw  # effective kernel extent - 1
    pads = (geom.pad_top, geom.pad_bottom, geom.pad_left, geom.pad_right)
    if (geom.sh, geom.sw) == (1, 1) and max(pads[:2]) <= reach_h and max(pads[2:]) <= reach_w:
        # dx is dout, padded by the kernel's reach less the forward padding, correlated with the flipped kernel.
        flipped = WindowGeometry(
            geom.out_h, geom.out_w, kh, kw, 1, 1, reach_h - pads[0], reach_h - pads[1],
            reach_w - pads[2], reach_w - pads[3], geom.dh, geom.dw,
        )  # fmt: skip
        w_flip = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))  # (kh, kw, C_out, C_in)
        return correlate(dout, w_flip, flipped, limit)
    k = kh * kw * c_in
    w2t = w.reshape(k, c_out).T  # (C_out, kh*kw*C_in)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    dcols_buf = None
    # The column gradient of each block of output rows is scattered into that block's images.
    for images, rows in column_blocks(x_shape, dout.dtype.itemsize, geom, limit):
        d = dout[images, rows].reshape(-1, c_out)  # (n_b*h_b*Wo, C_out)
        if dcols_buf is None:
            dcols_buf = np.empty(d.shape[0] * k, dtype=dout.dtype)
        dcols = np.matmul(d, w2t, out=dcols_buf[: d.shape[0] * k].reshape(-1, k))  # (n_b*h_b*Wo, kh*kw*C_in)
        scatter_columns(dcols, geom, dx[images], rows)
    return dx


def weight_grad(x: np.ndarray, dout: np.ndarray, geom: WindowGeometry, kernel: tuple[int, int], limit: int):
    """Gradient of :func:`correlate` with respect to ``w``: Σ over blocks, in order, of ``colsᵀ · dout``.

    ``x`` (N, H, W, C_in), ``dout`` (N, Ho, Wo, C_out) -> dw (kh, kw, C_in, C_out).
    """
    c_out = dout.shape[3]
    dw = np.zeros((kernel[0] * kernel[1] * x.shape[3], c_out), dtype=x.dtype)
    partial = np.empty_like(dw)
    for images, rows, cols in iter_columns(x, geom, limit):
        d = dout[images, rows].reshape(-1, c_out)  # (n_b*h_b*Wo, C_out)
        dw += np.matmul(cols.T, d, out=partial)  # (kh*kw*C_in, n_b*h_b*Wo) @ (n_b*h_b*Wo, C_out)
    return dw.reshape(*kernel, x.shape[3], c_out)  # (kh*kw*C_in, C_out) -> (kh, kw, C_in, C_out)
