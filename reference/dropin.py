"""Plain-loop reference for the notebook's drop-in API (NHWC, square windows, int pad and stride).

Same names, signatures and numbers as the original notebook, with its two defects fixed:
``backward`` crops the padding correctly for ``pad=0`` (the notebook's ``dXi[pad:-pad]`` emptied the
gradient), and ``pool_backward`` handles ``pad > 0`` (windows are taken on the zero-padded input, then
the padding is cropped). Pooling pads with zeros, so in max pooling the padding can win a window.

Caches: conv ``(X, W, b, pad, stride)``; pool ``(X, f, stride, pad)``. ``pool_backward`` also accepts the
notebook's hand-built 3-tuple ``(X, f, stride)``, meaning ``pad=0``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float, check_dout, out_size

__all__ = ["backward", "conv_slice", "distribute_value", "forward", "max_mask", "padding", "pool_backward"]

_FORWARD_MODES = ("conv", "maxpool", "avepool")
_POOL_BACKWARD_MODES = ("max", "average")


def padding(X: ArrayLike, pad: int = 1, dims: int = 3, const: float = 0) -> np.ndarray:
    """Constant-pad a vector (dims=1), a matrix (2, both axes), an image (3: H, W, C -> the first two
    axes) or a batch (4: N, H, W, C -> axes 1 and 2) by ``pad`` on each side."""
    if dims == 1:
        return np.pad(X, ((pad, pad)), "constant", constant_values=(const, const))
    if dims == 2:
        return np.pad(X, ((pad, pad), (pad, pad)), "constant", constant_values=(const, const))
    if dims == 3:
        return np.pad(X, ((pad, pad), (pad, pad), (0, 0)), "constant", constant_values=(const, const))
    if dims == 4:
        return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), "constant", constant_values=(const, const))
    raise ValueError(f"dims must be 1, 2, 3 or 4, got {dims!r}")


def conv_slice(slice: ArrayLike, W: ArrayLike, b: Any) -> Any:  # `slice`: the notebook's name
    """One convolution output: ``sum(slice * W) + float(b)``; slice and W of the same shape."""
    return np.sum(np.multiply(slice, W)) + float(np.asarray(b).item())


def forward(
    X: ArrayLike,
    W: ArrayLike | None,
    b: ArrayLike | None,
    pad: int,
    stride: int,
    f: int | None,
    mode: str = "conv",
) -> tuple[np.ndarray, tuple]:
    """Forward pass of a conv ('conv') or pooling ('maxpool', 'avepool') layer.

    Parameters
    ----------
    X : (m, Xh, Xw, Xc)
    W : (f, f, Xc, Zc) for 'conv'; ignored for pooling
    b : (1, 1, 1, Zc) for 'conv'; ignored for pooling
    pad, stride : int
    f : window size for pooling; ignored for 'conv' (taken from W)

    Returns
    -------
    Z : (m, Zh, Zw, Zc), ``Zh = (Xh + 2*pad - f) // stride + 1``; Zc = Xc for pooling
    cache : (X, W, b, pad, stride) for 'conv', (X, f, stride, pad) for pooling
    """
    if mode not in _FORWARD_MODES:
        raise ValueError(f"mode must be one of {_FORWARD_MODES}, got {mode!r}")
    X = as_float(X)
    m, Xh, Xw, Xc = X.shape
    if mode == "conv":
        W = as_float(W)
        dtype = np.result_type(X, W)
        X, W = X.astype(dtype, copy=False), W.astype(dtype, copy=False)
        fh, fw, _, Zc = W.shape
        b = np.zeros((1, 1, 1, Zc), dtype=dtype) if b is None else as_float(b).astype(dtype, copy=False)
        bias = b.reshape(Zc)
    else:
        fh = fw = int(f)  # type: ignore[arg-type]
        Zc = Xc
    Zh = out_size(Xh, fh, stride, pad)
    Zw = out_size(Xw, fw, stride, pad)

    Z = np.zeros((m, Zh, Zw, Zc), dtype=X.dtype)
    X_pad = padding(X, pad, 4, 0)
    for i in range(m):
        Xi = X_pad[i]
        for h in range(Zh):
            for w in range(Zw):
                vert_start, horiz_start = h * stride, w * stride
                vert_end, horiz_end = vert_start + fh, horiz_start + fw
                for c in range(Zc):
                    if mode == "conv":
                        Xi_slice = Xi[vert_start:vert_end, horiz_start:horiz_end, :]
                        Z[i, h, w, c] = conv_slice(Xi_slice, W[:, :, :, c], bias[c])
                    elif mode == "maxpool":
                        Z[i, h, w, c] = np.max(Xi[vert_start:vert_end, horiz_start:horiz_end, c])
                    else:  # avepool
                        Z[i, h, w, c] = np.mean(Xi[vert_start:vert_end, horiz_start:horiz_end, c])

    if mode == "conv":
        return Z, (X, W, b, pad, stride)
    return Z, (X, fh, stride, pad)


def backward(dZ: ArrayLike, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the conv forward pass.

    Parameters
    ----------
    dZ : (m, Zh, Zw, Zc): the forward output's shape, else a ValueError naming dZ
    cache : (X, W, b, pad, stride) from forward(..., mode='conv')

    Returns
    -------
    dX : (m, Xh, Xw, Xc); dW : (f, f, Xc, Zc); db : (1, 1, 1, Zc)
    """
    X, W, b, pad, stride = cache
    X = as_float(X)
    W = as_float(W)
    dtype = np.result_type(X, W)
    X, W = X.astype(dtype, copy=False), W.astype(dtype, copy=False)
    m, Xh, Xw, Xc = X.shape
    fh, fw, _, Zc = W.shape
    Zh, Zw = out_size(Xh, fh, stride, pad), out_size(Xw, fw, stride, pad)
    dZ = check_dout(dZ, (m, Zh, Zw, Zc), dtype, "NHWC", name="dZ")

    dW = np.zeros(W.shape, dtype=dtype)
    db = np.zeros((1, 1, 1, Zc), dtype=dtype)
    X_pad = padding(X, pad, 4, 0)
    dX_pad = np.zeros(X_pad.shape, dtype=dtype)
    for i in range(m):
        Xi = X_pad[i]
        dXi = dX_pad[i]  # a view: writes land in dX_pad
        for h in range(Zh):
            for w in range(Zw):
                vert_start, horiz_start = h * stride, w * stride
                vert_end, horiz_end = vert_start + fh, horiz_start + fw
                Xi_slice = Xi[vert_start:vert_end, horiz_start:horiz_end, :]
                for c in range(Zc):
                    dXi[vert_start:vert_end, horiz_start:horiz_end, :] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += Xi_slice * dZ[i, h, w, c]
                    db[:, :, :, c] += dZ[i, h, w, c]
    dX = dX_pad[:, pad : pad + Xh, pad : pad + Xw, :].copy()  # correct for pad == 0 too
    return dX, dW, db


def max_mask(x: ArrayLike) -> np.ndarray:
    """Boolean mask of the positions equal to the maximum of ``x`` (every tied position is True)."""
    return x == np.max(x)


def distribute_value(dz: Any, shape: tuple[int, int]) -> np.ndarray:
    """Spread ``dz`` evenly over an (h, w) window: ``np.full(shape, dz / (h*w))``."""
    (h, w) = shape
    return np.full(shape, dz / (h * w))


def pool_backward(dA: ArrayLike, cache: tuple, mode: str = "max") -> np.ndarray:
    """Gradient of a pooling forward pass.

    Parameters
    ----------
    dA : (m, Zh, Zw, Xc): the forward output's shape, else a ValueError naming dA
    cache : (X, f, stride, pad) from forward, or the notebook's (X, f, stride) meaning pad = 0
    mode : 'max' (the gradient goes to every position tied at the window's max; the windows include the
        zero padding, as in forward) or 'average' (dA / (f*f) to each of the f*f positions)

    Returns
    -------
    dX : (m, Xh, Xw, Xc)
    """
    if mode not in _POOL_BACKWARD_MODES:
        raise ValueError(f"mode must be one of {_POOL_BACKWARD_MODES}, got {mode!r}")
    if len(cache) == 3:
        X, f, stride = cache
        pad = 0
    else:
        X, f, stride, pad = cache
    X = as_float(X)
    m, Xh, Xw, Xc = X.shape
    Zh, Zw, Zc = out_size(Xh, f, stride, pad), out_size(Xw, f, stride, pad), Xc
    dA = check_dout(dA, (m, Zh, Zw, Zc), X.dtype, "NHWC", name="dA")

    X_pad = padding(X, pad, 4, 0)
    dX_pad = np.zeros(X_pad.shape, dtype=X.dtype)
    for i in range(m):
        Xi = X_pad[i]
        for h in range(Zh):
            for w in range(Zw):
                vert_start, horiz_start = h * stride, w * stride
                vert_end, horiz_end = vert_start + f, horiz_start + f
                for c in range(Zc):
                    if mode == "max":
                        mask = max_mask(Xi[vert_start:vert_end, horiz_start:horiz_end, c])
                        dX_pad[i, vert_start:vert_end, horiz_start:horiz_end, c] += mask * dA[i, h, w, c]
                    else:  # average
                        dX_pad[i, vert_start:vert_end, horiz_start:horiz_end, c] += distribute_value(
                            dA[i, h, w, c], (f, f)
                        )
    return dX_pad[:, pad : pad + Xh, pad : pad + Xw, :].copy()
