"""Transposed convolution (PyTorch's ``conv_transpose1d``/``2d``/``3d``): the input gradient of a convolution, as a
layer, in 1, 2 or 3 spatial dimensions.

A transposed convolution with weights ``w`` is exactly the gradient, with respect to its input, of the ordinary
convolution with the same ``w``, stride, padding, dilation and groups -- so it is computed by the same kernels
with their roles swapped: its forward pass is that convolution's :func:`~im2col_cnn.kernels.input_grad.input_grad`,
its input gradient is that convolution's forward pass, and its weight gradient that convolution's weight
gradient with input and output exchanged.

Weights: channels-last takes ``(*k, C_out // groups, C_in)`` -- the channels-last weight of the convolution being
transposed, which maps C_out channels to C_in; channels-first takes PyTorch's ``(C_in, C_out // groups, *k)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..geometry.windows import MAX_ELEMENTS, Axis, WindowGeometry, geometry_of
from ..kernels.bias import bias_grad
from ..kernels.conv import correlate, weight_grad
from ..kernels.input_grad import input_grad
from ..kernels.shared_columns import correlate_and_weight_grad
from ..runtime.batch_chunks import batch_chunked
from ..runtime.checks import as_flag, as_int, as_tuple, check_bias, check_groups
from ..runtime.half_precision import float16_io
from ..runtime.layout import new_result, weight_from_last
from ..runtime.workspace import resolve_limit
from .arguments import channels_last_dout, documented, layer_arrays, layout_hint
from .conv import check_cache

__all__ = [
    "ConvTransposeCache",
    "conv_transpose1d_forward",
    "conv_transpose1d_backward",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
    "conv_transpose3d_forward",
    "conv_transpose3d_backward",
]


class ConvTransposeCache(NamedTuple):
    """What a transposed-convolution backward function needs.

    ``geom`` is the geometry of the convolution being transposed: its input is this layer's output. The cache
    keeps a reference to the caller's ``x`` (a view, not a copy, as PyTorch's saved tensors do): changing ``x``
    in place between the forward and the backward pass changes ``dw``.
    """

    x: np.ndarray  # (N, *spatial, C_in)
    w: np.ndarray  # (*kernel, C_out // groups, C_in)
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
    ndim: int,
) -> tuple[ConvTransposeCache, np.ndarray | None]:
    x0, w0 = x, w
    channels_first, x, w = layer_arrays(x, w, data_format, ndim, ("C_out // groups", "C_in"))
    kernel, (c_out_g, c_in) = w.shape[:-2], w.shape[-2:]
    if c_in != x.shape[-1]:
        hint = layout_hint(channels_first, np.shape(x0), np.shape(w0), (0, ndim + 1))
        raise ValueError(f"w has C_in={c_in} input channels but x has C={x.shape[-1]} channels{hint}")
    groups = as_int(groups, "groups", 1, "an int >= 1")
    c_out = c_out_g * groups
    check_groups(groups, c_in, c_out)
    bias, b_shape = check_bias(b, c_out, x.dtype, ndim)
    steps = as_tuple(stride, ndim, "stride", minimum=1)
    pads = as_tuple(padding, ndim, "padding", minimum=0)
    extra = as_tuple(output_padding, ndim, "output_padding", minimum=0)
    dilation = as_tuple(dilation, ndim, "dilation", minimum=1)
    if any(not (op < s or op < d) for op, s, d in zip(extra, steps, dilation, strict=True)):
        raise ValueError(
            f"output_padding must be smaller than either stride or dilation on each axis, got output_padding "
            f"{extra} with stride {steps} and dilation {dilation}"
        )
    spatial = x.shape[1:-1]
    out = tuple(
        (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        for size, s, p, d, k, op in zip(spatial, steps, pads, dilation, kernel, extra, strict=True)
    )
    if min(out) < 1:
        raise ValueError(f"padding {pads} leaves no output: the output size would be {out}")
    if max(x.shape[0], 1) * math.prod(out) * c_out > MAX_ELEMENTS:
        raise ValueError(
            f"stride {steps}, dilation {dilation} and output_padding {extra} make the output {out} too large for memory"
        )
    # The convolution being transposed: input `out`, padded (p, p - output_padding) per axis, output `spatial`.
    axes = tuple(
        Axis(size, k, s, d, p, p - op)
        for size, k, s, d, p, op in zip(out, kernel, steps, dilation, pads, extra, strict=True)
    )
    return ConvTransposeCache(x, w, b_shape, geometry_of(axes), groups, str(data_format)), bias


def transpose_forward(
    x: object,
    w: object,
    b: object,
    stride: object,
    padding: object,
    output_padding: object,
    groups: object,
    dilation: object,
    data_format: object,
    workspace: object,
    ndim: int,
) -> tuple[np.ndarray, ConvTransposeCache]:
    """The forward pass of every rank's transposed convolution (see :func:`conv_transpose2d_forward`)."""
    cache, bias = _prepare(x, w, b, stride, padding, output_padding, dilation, groups, data_format, ndim)
    x, w, _, geom, groups, data_format, _ = cache
    out_shape = (x.shape[0], *geom.in_shape, w.shape[-2] * groups)
    out, out_last = new_result(out_shape, x.dtype, data_format[1] == "C")
    input_grad(x, w, geom, out_last, resolve_limit(workspace), groups)
    if bias is not None:
        out_last += bias
    return out, cache


def transpose_backward(
    dout: object, cache: ConvTransposeCache, need_dx: object, workspace: object, ndim: int
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The backward pass of every rank's transposed convolution (see :func:`conv_transpose2d_backward`)."""
    check_cache(cache, ConvTransposeCache, f"conv_transpose{ndim}d_forward", ndim)
    need_dx = as_flag(need_dx, "need_dx")
    limit = resolve_limit(workspace)
    x, w, b_shape, geom, groups, data_format, _ = cache
    channels_first = data_format[1] == "C"
    c_out = w.shape[-2] * groups
    d = channels_last_dout(dout, x.shape[0], geom.in_shape, c_out, x.dtype, channels_first)
    db = bias_grad(d, b_shape)
    dx = dw = None
    if need_dx:
        dx, dx_last = new_result(x.shape, x.dtype, channels_first)
        # the convolution's forward pass and its weight gradient, on one set of columns of d where they can be
        dw = correlate_and_weight_grad(d, w, x, geom, limit, groups, dx_last, c_out_major=channels_first)
        if dw is None:  # the kernel the one pass runs, so that dx does not depend on whether it ran
            correlate(d, w, geom, limit, groups=groups, out=dx_last, strided_planes=False)
    if dw is None:
        dw, _ = weight_grad(d, x, geom, limit, groups, c_out_major=channels_first)
    return dx, weight_from_last(dw, channels_first), db


FORWARD_DOC = """Transposed {n}-D convolution (PyTorch ``conv_transpose{n}d`` semantics).

    ``b`` to ``dilation`` may be given positionally, in ``torch.nn.functional.conv_transpose{n}d``'s order
    (``groups`` before ``dilation``).

    Parameters
    ----------
    x : array_like, shape {x}, or {x_first} with ``data_format='{first}'``
    w : array_like, shape {wt}, or PyTorch's {wt_first} with ``'{first}'``
    b : array_like, shape (C_out,) or {bias}, optional
    stride, dilation : int or {axes} tuple, >= 1
    padding : int or {paxes}, >= 0
        Positions cropped from each side of the full output, as in PyTorch.
    output_padding : int or {axes} tuple, each smaller than stride or dilation
        Extra positions at the end of each axis of the output.
    groups : int, >= 1, dividing C_in and C_out
    data_format : '{last}' or '{first}'
    workspace : int, optional
        Scratch memory limit in bytes, as for :func:`conv{n}d_forward`.

    Returns
    -------
    out : ndarray, shape {out} (or {out_first})
        Per axis ``(size - 1)*s - 2*p + d*(k - 1) + output_padding + 1`` positions.
    cache : ConvTransposeCache
        For :func:`conv_transpose{n}d_backward`. It references ``x`` and ``w`` without copying them: changing
        ``x`` in place before the backward pass changes ``dw``.
    """

BACKWARD_DOC = """Gradients of :func:`conv_transpose{n}d_forward` with respect to its input, weights and bias.

    Parameters
    ----------
    dout : array_like, shape of the forward output {out} (or {out_first})
    cache : ConvTransposeCache from :func:`conv_transpose{n}d_forward`
    need_dx : bool, default True
        False skips the input gradient: ``dx`` is then None.
    workspace : int, optional
        Scratch memory limit in bytes, as for :func:`conv{n}d_forward`.

    Returns
    -------
    dx : ndarray, shape and layout of ``x``; None when ``need_dx`` is False
    dw : ndarray, shape and layout of ``w``
    db : ndarray, shape of ``b`` ((C_out,) when ``b`` was None)
    """


@batch_chunked
@float16_io("forward")
@documented(FORWARD_DOC, 1)
def conv_transpose1d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] = 0,
    output_padding: int | tuple[int] = 0,
    groups: int = 1,
    dilation: int | tuple[int] = 1,
    *,
    data_format: str = "NWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvTransposeCache]:
    return transpose_forward(x, w, b, stride, padding, output_padding, groups, dilation, data_format, workspace, 1)


@batch_chunked
@float16_io("backward")
@documented(BACKWARD_DOC, 1)
def conv_transpose1d_backward(
    dout: np.ndarray, cache: ConvTransposeCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return transpose_backward(dout, cache, need_dx, workspace, 1)


@batch_chunked
@float16_io("forward")
@documented(FORWARD_DOC, 2)
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
    return transpose_forward(x, w, b, stride, padding, output_padding, groups, dilation, data_format, workspace, 2)


@batch_chunked
@float16_io("backward")
@documented(BACKWARD_DOC, 2)
def conv_transpose2d_backward(
    dout: np.ndarray, cache: ConvTransposeCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return transpose_backward(dout, cache, need_dx, workspace, 2)


@batch_chunked
@float16_io("forward")
@documented(FORWARD_DOC, 3)
def conv_transpose3d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] = 0,
    output_padding: int | tuple[int, int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int, int] = 1,
    *,
    data_format: str = "NDHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvTransposeCache]:
    return transpose_forward(x, w, b, stride, padding, output_padding, groups, dilation, data_format, workspace, 3)


@batch_chunked
@float16_io("backward")
@documented(BACKWARD_DOC, 3)
def conv_transpose3d_backward(
    dout: np.ndarray, cache: ConvTransposeCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return transpose_backward(dout, cache, need_dx, workspace, 3)
