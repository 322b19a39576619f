"""2-D convolution (cross-correlation, as in PyTorch's ``conv2d``) on NHWC input, forward and backward."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import as_float_array, as_pair, check_dout, check_ndim, common_float_dtype
from .conv_kernels import correlate, input_grad, weight_grad
from .windows import WindowGeometry, make_geometry
from .workspace import resolve_limit

__all__ = ["ConvCache", "conv2d_forward", "conv2d_backward"]


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs: the input and weights (in the compute dtype), b's shape, the geometry.

    The column matrix is rebuilt in the backward pass rather than kept, so a cache costs no more memory than
    the input itself.
    """

    x: np.ndarray  # (N, H, W, C_in)
    w: np.ndarray  # (kh, kw, C_in, C_out)
    b_shape: tuple[int, ...] | None  # (C_out,), (1, 1, 1, C_out) or None
    geom: WindowGeometry


def prepare_conv(
    x: object, w: object, b: object, stride: object, padding: object
) -> tuple[ConvCache, np.ndarray | None]:
    """Validate conv arguments; return the cache a forward pass leaves and the bias as a (C_out,) vector."""
    x = as_float_array(x, "x")
    w = as_float_array(w, "w")
    check_ndim(x, "x", "(N, H, W, C_in)")
    check_ndim(w, "w", "(kh, kw, C_in, C_out)")
    kh, kw, c_in, c_out = w.shape
    if c_in != x.shape[3]:
        raise ValueError(f"w has C_in={c_in} input channels (w.shape[2]) but x has C={x.shape[3]} (x.shape[3])")
    dtype = common_float_dtype(x, w)
    x = x.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    bias = None
    b_shape = None
    if b is not None:
        b_arr = as_float_array(b, "b")
        if b_arr.shape not in ((c_out,), (1, 1, 1, c_out)):
            raise ValueError(f"b must have shape (C_out,) = ({c_out},) or (1, 1, 1, {c_out}), got {b_arr.shape}")
        b_shape = b_arr.shape
        bias = b_arr.reshape(c_out).astype(dtype, copy=False)
    geom = make_geometry(
        x.shape,
        (kh, kw),
        as_pair(stride, "stride", minimum=1),
        as_pair(padding, "padding", minimum=0),
        kernel_name="w's kernel (kh, kw)",
    )
    return ConvCache(x, w, b_shape, geom), bias


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvCache]:
    """2-D convolution of a batch of NHWC images (PyTorch ``conv2d`` semantics, zero padding).

    Parameters
    ----------
    x : array_like, shape (N, H, W, C_in)
    w : array_like, shape (kh, kw, C_in, C_out)
    b : array_like, shape (C_out,) or (1, 1, 1, C_out), optional
    stride : int or (sh, sw), >= 1
    padding : int or (ph, pw), >= 0
        Zeros added on both sides of each spatial axis.
    workspace : int, optional
        Scratch memory limit in bytes for this call (default: :func:`get_workspace_limit`, at least 16 MiB).
        The batch is processed in blocks of a few MiB of columns; the result does not depend on the limit.

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C_out)
        ``Ho = (H + 2*ph - kh) // sh + 1``, ``Wo = (W + 2*pw - kw) // sw + 1``; dtype of ``x`` and ``w``
        promoted (float32 stays float32; integer input is computed in float64).
    cache : ConvCache
        For :func:`conv2d_backward`.
    """
    cache, bias = prepare_conv(x, w, b, stride, padding)
    return correlate(cache.x, cache.w, cache.geom, resolve_limit(workspace), bias), cache


def conv2d_backward(
    dout: np.ndarray, cache: ConvCache, *, workspace: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward` with respect to its input, weights and bias.

    Parameters
    ----------
    dout : array_like, shape (N, Ho, Wo, C_out)
        Gradient of the loss with respect to the forward output.
    cache : ConvCache
        As returned by :func:`conv2d_forward`.
    workspace : int, optional
        Scratch memory limit in bytes, as for :func:`conv2d_forward`.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C_in)
    dw : ndarray, shape (kh, kw, C_in, C_out)
    db : ndarray, shape of ``b`` ((C_out,) when ``b`` was None)
    """
    if not isinstance(cache, ConvCache):
        raise TypeError(f"cache must be the ConvCache returned by conv2d_forward, got {type(cache).__name__}")
    limit = resolve_limit(workspace)
    x, w, b_shape, geom = cache
    c_out = w.shape[3]
    d4 = np.ascontiguousarray(check_dout(dout, (x.shape[0], geom.out_h, geom.out_w, c_out), x.dtype))
    db = d4.reshape(-1, c_out).sum(axis=0).reshape(b_shape or (c_out,))  # (N*Ho*Wo, C_out) -> (C_out,)
    dw = weight_grad(x, d4, geom, w.shape[:2], limit)
    return input_grad(d4, w, geom, x.shape, limit), dw, db
