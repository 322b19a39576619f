"""Transposed 2-D convolution (PyTorch's ``conv_transpose2d``): the input gradient of conv2d, as a layer.

A transposed convolution with weights ``w`` is exactly the gradient, with respect to its input, of the ordinary
convolution with the same ``w``, stride, padding, dilation and groups -- so it is computed by the same kernels
with their roles swapped: its forward pass is that convolution's :func:`~im2col_cnn.conv_kernels.input_grad`,
its input gradient is that convolution's forward pass, and its weight gradient that convolution's weight
gradient with input and output exchanged.

Weights: NHWC takes ``(kh, kw, C_out // groups, C_in)`` -- the NHWC weight of the convolution being transposed,
which maps C_out channels to C_in; NCHW takes PyTorch's ``(C_in, C_out // groups, kh, kw)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..geometry.windows import MAX_ELEMENTS, WindowGeometry
from ..kernels.conv import correlate, input_grad, weight_grad
from ..runtime.batch_chunks import batch_chunked
from ..runtime.checks import as_flag, as_int, as_pair, check_bias, check_groups
from ..runtime.half_precision import float16_io
from ..runtime.layout import new_result, weight_from_hwio
from ..runtime.workspace import resolve_limit
from .conv import bias_grad, layer_arrays, layout_hint, nhwc_dout

__all__ = ["ConvTransposeCache", "conv_transpose2d_forward", "conv_transpose2d_backward"]


class ConvTransposeCache(NamedTuple):
    """What :func:`conv_transpose2d_backward` needs.

    ``geom`` is the geometry of the convolution being transposed: its input is this layer's output. The cache
    keeps a reference to the caller's ``x`` (a view, not a copy, as PyTorch's saved tensors do): changing ``x``
    in place between the forward and the backward pass changes ``dw``.
    """

    x: np.ndarray  # (N, H, W, C_in)
    w: np.ndarray  # (kh, kw, C_out // groups, C_in)
    b_shape: tuple[int, ...] | None
    geom: WindowGeometry
    groups: int = 1
    data_format: str = "NHWC"
    io_dtype: np.dtype | None = None  # float16 when the caller's arrays were (computed in float32)


def _prepare(
    x: object,
    w: object,
    b: object,
    stride: object,
    padding: object,
    output_padding: object,
    dilation: object,
    groups: object,
    data_format: object,
) -> tuple[ConvTransposeCache, np.ndarray | None]:
    x0, w0 = x, w
    data_format, x, w = layer_arrays(
        x, w, data_format, ("(C_in, C_out // groups, kh, kw)", "(kh, kw, C_out // groups, C_in)")
    )
    kh, kw, c_out_g, c_in = w.shape
    if c_in != x.shape[3]:
        hint = layout_hint(data_format, np.shape(x0), np.shape(w0), (0, 3))
        raise ValueError(f"w has C_in={c_in} input channels but x has C={x.shape[3]} channels{hint}")
    groups = as_int(groups, "groups", 1, "an int >= 1")
    c_out = c_out_g * groups
    check_groups(groups, c_in, c_out)
    bias, b_shape = check_bias(b, c_out, x.dtype)
    (sh, sw), (ph, pw) = as_pair(stride, "stride", minimum=1), as_pair(padding, "padding", minimum=0)
    (oph, opw), (dh, dw) = (
        as_pair(output_padding, "output_padding", minimum=0),
        as_pair(dilation, "dilation", minimum=1),
    )
    if not (oph < sh or oph < dh) or not (opw < sw or opw < dw):
        raise ValueError(
            f"output_padding must be smaller than either stride or dilation on each axis, got output_padding "
            f"{(oph, opw)} with stride {(sh, sw)} and dilation {(dh, dw)}"
        )
    _, h, w_in, _ = x.shape
    out_h = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    out_w = (w_in - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"padding {(ph, pw)} leaves no output: the output size would be {(out_h, out_w)}")
    if max(x.shape[0], 1) * out_h * out_w * c_out > MAX_ELEMENTS:
        raise ValueError(
            f"stride {(sh, sw)}, dilation {(dh, dw)} and output_padding {(oph, opw)} make the output {(out_h, out_w)} "
            "too large for memory"
        )
    # The transposed convolution: input (out_h, out_w), padded (ph, ph - oph, pw, pw - opw), output (H, W).
    geom = WindowGeometry(out_h, out_w, kh, kw, sh, sw, ph, ph - oph, pw, pw - opw, dh, dw)
    return ConvTransposeCache(x, w, b_shape, geom, groups, data_format), bias


@batch_chunked
@float16_io("forward")
def conv_transpose2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
    *,
    data_format: str = "NHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvTransposeCache]:
    """Transposed 2-D convolution (PyTorch ``conv_transpose2d`` semantics).

    ``b`` to ``dilation`` may be given positionally, in ``torch.nn.functional.conv_transpose2d``'s order
    (``groups`` before ``dilation``).

    Parameters
    ----------
    x : array_like, shape (N, H, W, C_in), or (N, C_in, H, W) with ``data_format='NCHW'``
    w : array_like, shape (kh, kw, C_out // groups, C_in), or PyTorch's (C_in, C_out // groups, kh, kw) with NCHW
    b : array_like, shape (C_out,) or (1, 1, 1, C_out), optional
    stride, dilation : int or (h, w) pair, >= 1
    padding : int or (ph, pw), >= 0
        Rows/columns cropped from each side of the full output, as in PyTorch.
    output_padding : int or (h, w) pair, each smaller than stride or dilation
        Extra rows/columns at the bottom/right of the output.
    groups : int, >= 1, dividing C_in and C_out
    data_format : 'NHWC' or 'NCHW'
    workspace : int, optional
        Scratch memory limit in bytes, as for :func:`conv2d_forward`.

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C_out) (or (N, C_out, Ho, Wo))
        ``Ho = (H - 1)*sh - 2*ph + dh*(kh - 1) + output_padding_h + 1``, likewise ``Wo``.
    cache : ConvTransposeCache
        For :func:`conv_transpose2d_backward`. It references ``x`` and ``w`` without copying them: changing
        ``x`` in place before the backward pass changes ``dw``.
    """
    cache, bias = _prepare(x, w, b, stride, padding, output_padding, dilation, groups, data_format)
    x, w, _, geom, groups, data_format, _ = cache
    out_shape = (x.shape[0], geom.in_h, geom.in_w, w.shape[2] * groups)
    out, out4 = new_result(out_shape, x.dtype, data_format)
    input_grad(x, w, geom, out4, resolve_limit(workspace), groups)
    if bias is not None:
        out4 += bias
    return out, cache


@batch_chunked
@float16_io("backward")
def conv_transpose2d_backward(
    dout: np.ndarray, cache: ConvTransposeCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv_transpose2d_forward` with respect to its input, weights and bias.

    Parameters
    ----------
    dout : array_like, shape of the forward output
    cache : ConvTransposeCache from :func:`conv_transpose2d_forward`
    need_dx : bool, default True
        False skips the input gradient: ``dx`` is then None.
    workspace : int, optional
        Scratch memory limit in bytes, as for :func:`conv2d_forward`.

    Returns
    -------
    dx : ndarray, shape and layout of ``x``; None when ``need_dx`` is False
    dw : ndarray, shape and layout of ``w``
    db : ndarray, shape of ``b`` ((C_out,) when ``b`` was None)
    """
    if not isinstance(cache, ConvTransposeCache):
        raise TypeError(
            f"cache must be the ConvTransposeCache returned by conv_transpose2d_forward, got {type(cache).__name__}"
        )
    need_dx = as_flag(need_dx, "need_dx")
    limit = resolve_limit(workspace)
    x, w, b_shape, geom, groups, data_format, _ = cache
    c_out = w.shape[2] * groups
    d4 = nhwc_dout(dout, x.shape[0], (geom.in_h, geom.in_w), c_out, x.dtype, data_format)
    db = bias_grad(d4, b_shape)
    dx = None
    if need_dx:
        dx, dx4 = new_result(x.shape, x.dtype, data_format)
        correlate(d4, w, geom, limit, groups=groups, out=dx4)  # the transposed convolution's forward pass
    dw, _ = weight_grad(d4, x, geom, w.shape[:2], limit, groups)
    return dx, weight_from_hwio(dw, data_format), db
