"""Convolution (cross-correlation, as in PyTorch's ``conv1d``/``conv2d``/``conv3d``), forward and backward, in 1, 2
or 3 spatial dimensions, channels-last or channels-first.

One implementation for every rank: :func:`prepare_conv` checks the arguments and builds the window geometry, the
kernels (:mod:`~im2col_cnn.kernels.conv`) compute; the public functions of each rank only name their rank.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..geometry.windows import WindowGeometry, make_geometry
from ..kernels.bias import bias_grad
from ..kernels.conv import correlate, weight_grad
from ..kernels.input_grad import input_grad
from ..runtime.batch_chunks import batch_chunked
from ..runtime.checks import as_flag, as_int, as_padding, as_tuple, axes_tuple, check_bias, check_groups
from ..runtime.half_precision import float16_io
from ..runtime.layout import new_result, weight_from_last
from ..runtime.workspace import resolve_limit
from .arguments import channels_last_dout, documented, layer_arrays, layout_hint, same_padding

__all__ = [
    "ConvCache",
    "conv1d_forward",
    "conv1d_backward",
    "conv2d_forward",
    "conv2d_backward",
    "conv3d_forward",
    "conv3d_backward",
]


_KERNEL_NAMES = {n: f"w's kernel {axes_tuple(n, 'k')}" for n in (1, 2, 3)}  # "w's kernel (kh, kw)"


class ConvCache(NamedTuple):
    """What a conv backward function needs: input and weights (compute dtype, channels-last views), b's shape,
    the geometry.

    The column matrix is rebuilt in the backward pass rather than kept, so a cache costs no more memory than
    the input itself. The cache keeps a reference to the caller's ``x`` (a view, not a copy, as PyTorch's saved
    tensors do): changing ``x`` in place between the forward and the backward pass changes ``dw``.
    """

    x: np.ndarray  # (N, *spatial, C_in)
    w: np.ndarray  # (*kernel, C_in // groups, C_out)
    b_shape: tuple[int, ...] | None  # (C_out,), (1, ..., 1, C_out) or None
    geom: WindowGeometry
    groups: int = 1
    data_format: str = "NHWC"
    io_dtype: np.dtype | None = None  # float16 when the caller's arrays were (computed in float32)


def prepare_conv(
    x: object,
    w: object,
    b: object,
    stride: object,
    padding: object,
    dilation: object = 1,
    groups: object = 1,
    data_format: object = "NHWC",
    ndim: int = 2,
) -> tuple[ConvCache, np.ndarray | None]:
    """Validate the arguments of an ``ndim``-D convolution; return the cache a forward pass leaves and the bias as
    a (C_out,) vector."""
    x0, w0 = x, w
    channels_first, x, w = layer_arrays(x, w, data_format, ndim, ("C_in // groups", "C_out"))
    kernel, (c_in_g, c_out) = w.shape[:-2], w.shape[-2:]
    c_in = x.shape[-1]
    groups = as_int(groups, "groups", 1, "an int >= 1")
    try:  # a channel-count mismatch: say so if the arrays fit the other layout
        check_groups(groups, c_in, c_out)
        if c_in_g * groups != c_in:
            per_group = f" per group (groups={groups})" if groups > 1 else ""
            raise ValueError(f"w has C_in={c_in_g} input channels{per_group} but x has C={c_in} channels")
    except ValueError as exc:
        shapes = (np.shape(x0), np.shape(w0))
        raise ValueError(f"{exc}{layout_hint(channels_first, *shapes, (1, ndim))}") from None
    bias, b_shape = check_bias(b, c_out, x.dtype, ndim)
    steps = as_tuple(stride, ndim, "stride", minimum=1)
    dilation = as_tuple(dilation, ndim, "dilation", minimum=1)
    pads = as_padding(padding, ndim, "padding")
    if pads == "same":
        if any(s != 1 for s in steps):
            raise ValueError(f"padding='same' needs stride 1 (as in PyTorch), got stride {steps}")
        pads = same_padding(kernel, dilation)
    geom = make_geometry(x.shape, kernel, steps, pads, dilation, kernel_name=_KERNEL_NAMES[ndim])  # type: ignore[arg-type]
    return ConvCache(x, w, b_shape, geom, groups, str(data_format)), bias


def conv_forward(
    x: object,
    w: object,
    b: object,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    data_format: object,
    workspace: object,
    ndim: int,
) -> tuple[np.ndarray, ConvCache]:
    """The forward pass of every rank's convolution (see :func:`conv2d_forward`)."""
    cache, bias = prepare_conv(x, w, b, stride, padding, dilation, groups, data_format, ndim)
    geom, channels_first = cache.geom, cache.data_format[1] == "C"
    out_shape = (cache.x.shape[0], *geom.out_shape, cache.w.shape[-1])
    out, out_last = new_result(out_shape, cache.x.dtype, channels_first)
    correlate(cache.x, cache.w, geom, resolve_limit(workspace), bias, cache.groups, out=out_last)
    return out, cache


def check_cache(cache: object, kind: type, forward: str, ndim: int) -> None:
    """``TypeError`` unless ``cache`` is a ``kind`` made by an ``ndim``-D ``forward`` (e.g. ``'conv2d_forward'``)."""
    wanted = f"cache must be the {kind.__name__} returned by {forward}"
    if not isinstance(cache, kind):
        raise TypeError(f"{wanted}, got {type(cache).__name__}")
    made = cache.geom.ndim  # type: ignore[attr-defined]
    if made != ndim:
        raise TypeError(f"{wanted}, got the {kind.__name__} of {forward.replace(f'{ndim}d', f'{made}d')}")


def conv_backward(
    dout: object, cache: ConvCache, need_dx: object, workspace: object, ndim: int
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The backward pass of every rank's convolution (see :func:`conv2d_backward`)."""
    check_cache(cache, ConvCache, f"conv{ndim}d_forward", ndim)
    need_dx = as_flag(need_dx, "need_dx")
    limit = resolve_limit(workspace)
    x, w, b_shape, geom, groups, data_format, _ = cache
    channels_first = data_format[1] == "C"
    d = channels_last_dout(dout, x.shape[0], geom.out_shape, w.shape[-1], x.dtype, channels_first)
    dw, db = weight_grad(x, d, geom, limit, groups, with_bias=True, c_out_major=channels_first)
    db = bias_grad(d, b_shape) if db is None else db.reshape(b_shape or (w.shape[-1],))
    dx = None
    if need_dx:
        dx, dx_last = new_result(x.shape, x.dtype, channels_first)
        input_grad(d, w, geom, dx_last, limit, groups)
    return dx, weight_from_last(dw, channels_first), db


FORWARD_DOC = """{n}-D convolution of a batch (PyTorch ``conv{n}d`` semantics: cross-correlation, zero padding).

    ``b`` to ``groups`` may be given positionally, in ``torch.nn.functional.conv{n}d``'s order.

    Parameters
    ----------
    x : array_like, shape {x}, or {x_first} with ``data_format='{first}'``
    w : array_like, shape {w}, or PyTorch's {w_first} with ``'{first}'``
    b : array_like, shape (C_out,) or {bias}, optional
    stride : int or {saxes}, >= 1
    padding : int, {paxes}, {sides}, 'valid' or 'same'
        Zeros added around the input. 'same' (stride 1 only) pads ``d*(k-1)`` per axis in all, the odd one at the
        end, so that the output has the input's size.
    dilation : int or {daxes}, >= 1
        Spacing of the kernel taps; the kernel spans ``(k - 1) * d + 1`` positions.
    groups : int, >= 1, dividing C_in and C_out
        Output channels of group g see only input channels of group g (``groups == C_in``: depthwise).
    data_format : '{last}' or '{first}'
        Layout of ``x``, ``w`` and ``out``.
    workspace : int, optional
        Scratch memory limit in bytes for this call (default: :func:`get_workspace_limit`, at least 16 MiB);
        scratch stays within it plus the small slack :mod:`~im2col_cnn.runtime.workspace` documents. The batch is
        processed in blocks of a few MiB of columns; the result does not depend on the limit unless one image
        alone exceeds it.

    Returns
    -------
    out : ndarray, shape {out} (or {out_first})
        Per axis ``(size + lo + hi - d*(k - 1) - 1) // s + 1`` positions; dtype of ``x`` and ``w`` promoted
        (float32 stays float32; integer input is computed in float64).
    cache : ConvCache
        For :func:`conv{n}d_backward`. It references ``x`` and ``w`` without copying them: changing ``x`` in
        place before the backward pass changes ``dw``.
    """

BACKWARD_DOC = """Gradients of :func:`conv{n}d_forward` with respect to its input, weights and bias.

    Parameters
    ----------
    dout : array_like, shape of the forward output {out} (or {out_first})
        Gradient of the loss with respect to the forward output.
    cache : ConvCache
        As returned by :func:`conv{n}d_forward`.
    need_dx : bool, default True
        False skips the input gradient (a network's first layer never needs it): ``dx`` is then None.
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
def conv1d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | tuple[tuple[int, int]] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    *,
    data_format: str = "NWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvCache]:
    return conv_forward(x, w, b, stride, padding, dilation, groups, data_format, workspace, 1)


@batch_chunked
@float16_io("backward")
@documented(BACKWARD_DOC, 1)
def conv1d_backward(
    dout: np.ndarray, cache: ConvCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return conv_backward(dout, cache, need_dx, workspace, 1)


@batch_chunked
@float16_io("forward")
@documented(FORWARD_DOC, 2)
def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    data_format: str = "NHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvCache]:
    return conv_forward(x, w, b, stride, padding, dilation, groups, data_format, workspace, 2)


@batch_chunked
@float16_io("backward")
@documented(BACKWARD_DOC, 2)
def conv2d_backward(
    dout: np.ndarray, cache: ConvCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return conv_backward(dout, cache, need_dx, workspace, 2)


@batch_chunked
@float16_io("forward")
@documented(FORWARD_DOC, 3)
def conv3d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] | tuple[tuple[int, int], ...] | str = 0,
    dilation: int | tuple[int, int, int] = 1,
    groups: int = 1,
    *,
    data_format: str = "NDHWC",
    workspace: int | None = None,
) -> tuple[np.ndarray, ConvCache]:
    return conv_forward(x, w, b, stride, padding, dilation, groups, data_format, workspace, 3)


@batch_chunked
@float16_io("backward")
@documented(BACKWARD_DOC, 3)
def conv3d_backward(
    dout: np.ndarray, cache: ConvCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    return conv_backward(dout, cache, need_dx, workspace, 3)
