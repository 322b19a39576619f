"""2-D convolution (cross-correlation, as in PyTorch's ``conv2d``), forward and backward, NHWC or NCHW."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..geometry.windows import WindowGeometry, make_geometry
from ..kernels.conv import correlate, input_grad, weight_grad
from ..runtime.batch_chunks import batch_chunked
from ..runtime.checks import (
    as_flag,
    as_float_arrays,
    as_int,
    as_padding4,
    as_pair,
    check_bias,
    check_data_format,
    check_dout,
    check_groups,
    check_ndim,
)
from ..runtime.half_precision import float16_io
from ..runtime.layout import new_result, to_nhwc, weight_from_hwio, weight_to_hwio
from ..runtime.workspace import BLOCK_BYTES, Buffers, resolve_limit, tiles

__all__ = ["ConvCache", "conv2d_forward", "conv2d_backward"]


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs: input and weights (compute dtype, NHWC/HWIO views), b's shape, geometry.

    The column matrix is rebuilt in the backward pass rather than kept, so a cache costs no more memory than
    the input itself. The cache keeps a reference to the caller's ``x`` (a view, not a copy, as PyTorch's saved
    tensors do): changing ``x`` in place between the forward and the backward pass changes ``dw``.
    """

    x: np.ndarray  # (N, H, W, C_in)
    w: np.ndarray  # (kh, kw, C_in // groups, C_out)
    b_shape: tuple[int, ...] | None  # (C_out,), (1, 1, 1, C_out) or None
    geom: WindowGeometry
    groups: int = 1
    data_format: str = "NHWC"
    io_dtype: np.dtype | None = None  # float16 when the caller's arrays were (computed in float32)


def layer_arrays(
    x: object, w: object, data_format: object, w_layouts: tuple[str, str]
) -> tuple[str, np.ndarray, np.ndarray]:
    """Check ``data_format`` and the 4-D float ``x`` and ``w`` (``w_layouts``: NCHW's and NHWC's names).

    Returns the data format, ``x`` as an (N, H, W, C) view and ``w`` as a (kh, kw, I, O) view.
    """
    data_format = check_data_format(data_format)
    nchw = data_format == "NCHW"
    x, w = as_float_arrays(x, w)
    check_ndim(x, "x", "(N, C_in, H, W)" if nchw else "(N, H, W, C_in)")
    check_ndim(w, "w", w_layouts[0] if nchw else w_layouts[1])
    if 0 in x.shape[1:]:
        raise ValueError(f"x must not be empty except in the batch dimension, got shape {x.shape}")
    if 0 in w.shape:
        raise ValueError(f"w must not be empty, got shape {w.shape}")
    return data_format, to_nhwc(x, data_format), weight_to_hwio(w, data_format)


def layout_hint(
    data_format: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...], w_in_axes: tuple[int, int]
) -> str:
    """A hint for a channel-count error: the arrays (shapes as given) would fit the other ``data_format``.

    ``w_in_axes`` is the axis of w's per-group input channels in NCHW's and in NHWC's weight layout. Returns
    ``''`` when the other layout does not fit either.
    """
    other = "NHWC" if data_format == "NCHW" else "NCHW"
    c_in = x_shape[3] if other == "NHWC" else x_shape[1]
    c_in_w = w_shape[w_in_axes[1] if other == "NHWC" else w_in_axes[0]]
    if c_in_w < 1 or c_in % c_in_w:
        return ""
    if other == "NCHW":
        return (
            f"; x {x_shape} and w {w_shape} look like PyTorch's NCHW layout ((N, C, H, W) and its weight layout): "
            "pass data_format='NCHW'"
        )
    return f"; x {x_shape} and w {w_shape} look like NHWC arrays: leave data_format at 'NHWC'"


def same_padding(kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """PyTorch's padding='same' at stride 1: total ``d*(k-1)`` per axis, the odd one at the bottom/right."""
    (kh, kw), (dh, dw) = kernel, dilation
    th, tw = dh * (kh - 1), dw * (kw - 1)
    return (th // 2, th - th // 2, tw // 2, tw - tw // 2)


def prepare_conv(
    x: object,
    w: object,
    b: object,
    stride: object,
    padding: object,
    dilation: object = 1,
    groups: object = 1,
    data_format: object = "NHWC",
) -> tuple[ConvCache, np.ndarray | None]:
    """Validate conv arguments; return the cache a forward pass leaves and the bias as a (C_out,) vector."""
    x0, w0 = x, w
    data_format, x, w = layer_arrays(
        x, w, data_format, ("(C_out, C_in // groups, kh, kw)", "(kh, kw, C_in // groups, C_out)")
    )
    kh, kw, c_in_g, c_out = w.shape
    c_in = x.shape[3]
    groups = as_int(groups, "groups", 1, "an int >= 1")
    try:  # a channel-count mismatch: say so if the arrays fit the other layout
        check_groups(groups, c_in, c_out)
        if c_in_g * groups != c_in:
            per_group = f" per group (groups={groups})" if groups > 1 else ""
            raise ValueError(f"w has C_in={c_in_g} input channels{per_group} but x has C={c_in} channels")
    except ValueError as exc:
        shapes = (x.shape, w.shape) if data_format == "NHWC" else (np.shape(x0), np.shape(w0))
        raise ValueError(f"{exc}{layout_hint(data_format, *shapes, (1, 2))}") from None
    bias, b_shape = check_bias(b, c_out, x.dtype)
    steps = as_pair(stride, "stride", minimum=1)
    dilation = as_pair(dilation, "dilation", minimum=1)
    pads = as_padding4(padding, "padding")
    if pads == "same":
        if steps != (1, 1):
            raise ValueError(f"padding='same' needs stride 1 (as in PyTorch), got stride {steps}")
        pads = same_padding((kh, kw), dilation)
    geom = make_geometry(x.shape, (kh, kw), steps, pads, dilation, kernel_name="w's kernel (kh, kw)")
    return ConvCache(x, w, b_shape, geom, groups, data_format), bias


@batch_chunked
@float16_io("forward")
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
    """2-D convolution of a batch of images (PyTorch ``conv2d`` semantics: cross-correlation, zero padding).

    ``b`` to ``groups`` may be given positionally, in ``torch.nn.functional.conv2d``'s order.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C_in), or (N, C_in, H, W) with ``data_format='NCHW'``
    w : array_like, shape (kh, kw, C_in // groups, C_out), or PyTorch's (C_out, C_in // groups, kh, kw) with NCHW
    b : array_like, shape (C_out,) or (1, 1, 1, C_out), optional
    stride : int or (sh, sw), >= 1
    padding : int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'
        Zeros added around the input. 'same' (stride 1 only) pads ``d*(k-1)`` per axis in all, the odd one
        at the bottom/right, so that the output has the input's size.
    dilation : int or (dh, dw), >= 1
        Spacing of the kernel taps; the kernel spans ``(k - 1) * d + 1`` pixels.
    groups : int, >= 1, dividing C_in and C_out
        Output channels of group g see only input channels of group g (``groups == C_in``: depthwise).
    data_format : 'NHWC' or 'NCHW'
        Layout of ``x``, ``w`` and ``out``.
    workspace : int, optional
        Scratch memory limit in bytes for this call (default: :func:`get_workspace_limit`, at least 16 MiB);
        scratch stays within it plus the small slack :mod:`~im2col_cnn.workspace` documents. The batch is
        processed in blocks of a few MiB of columns; the result does not depend on the limit unless one image
        alone exceeds it.

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C_out) (or (N, C_out, Ho, Wo))
        ``Ho = (H + top + bottom - dh*(kh - 1) - 1) // sh + 1``, likewise ``Wo``; dtype of ``x`` and ``w``
        promoted (float32 stays float32; integer input is computed in float64).
    cache : ConvCache
        For :func:`conv2d_backward`. It references ``x`` and ``w`` without copying them: changing ``x`` in
        place before the backward pass changes ``dw``.
    """
    cache, bias = prepare_conv(x, w, b, stride, padding, dilation, groups, data_format)
    n, geom = cache.x.shape[0], cache.geom
    out, out4 = new_result((n, geom.out_h, geom.out_w, cache.w.shape[3]), cache.x.dtype, cache.data_format)
    correlate(cache.x, cache.w, geom, resolve_limit(workspace), bias, cache.groups, out=out4)
    return out, cache


@batch_chunked
@float16_io("backward")
def conv2d_backward(
    dout: np.ndarray, cache: ConvCache, *, need_dx: bool = True, workspace: int | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward` with respect to its input, weights and bias.

    Parameters
    ----------
    dout : array_like, shape of the forward output (N, Ho, Wo, C_out) (or (N, C_out, Ho, Wo))
        Gradient of the loss with respect to the forward output.
    cache : ConvCache
        As returned by :func:`conv2d_forward`.
    need_dx : bool, default True
        False skips the input gradient (a network's first layer never needs it): ``dx`` is then None.
    workspace : int, optional
        Scratch memory limit in bytes, as for :func:`conv2d_forward`.

    Returns
    -------
    dx : ndarray, shape and layout of ``x``; None when ``need_dx`` is False
    dw : ndarray, shape and layout of ``w``
    db : ndarray, shape of ``b`` ((C_out,) when ``b`` was None)
    """
    if not isinstance(cache, ConvCache):
        raise TypeError(f"cache must be the ConvCache returned by conv2d_forward, got {type(cache).__name__}")
    need_dx = as_flag(need_dx, "need_dx")
    limit = resolve_limit(workspace)
    x, w, b_shape, geom, groups, data_format, _ = cache
    d4 = nhwc_dout(dout, x.shape[0], (geom.out_h, geom.out_w), w.shape[3], x.dtype, data_format)
    dw, db = weight_grad(x, d4, geom, w.shape[:2], limit, groups, with_bias=True)
    db = bias_grad(d4, b_shape) if db is None else db.reshape(b_shape or (w.shape[3],))
    dx = None
    if need_dx:
        dx, dx4 = new_result(x.shape, x.dtype, data_format)
        input_grad(d4, w, geom, dx4, limit, groups)
    return dx, weight_from_hwio(dw, data_format), db


def nhwc_dout(
    dout: object, n: int, out_hw: tuple[int, int], c_out: int, dtype: np.dtype, data_format: str
) -> np.ndarray:
    """``dout`` checked against the forward output's shape, as an (N, Ho, Wo, C_out) array (a view) of ``dtype``."""
    shape = (n, c_out, *out_hw) if data_format == "NCHW" else (n, *out_hw, c_out)
    return to_nhwc(check_dout(dout, shape, dtype), data_format)


def bias_grad(d4: np.ndarray, b_shape: tuple[int, ...] | None) -> np.ndarray:
    """``db``: ``d4`` (N, Ho, Wo, C_out), any memory layout, summed over all but the channels, in ``b``'s shape.

    Summed in blocks of about ``BLOCK_BYTES`` (whole images, or rows of one image where an image is larger),
    copied to NHWC where ``d4`` is not NHWC in memory: the same blocks in every layout and for every limit, so
    the sum is the same, bit for bit.
    """
    n, ho, wo, c_out = d4.shape
    size = d4.itemsize * c_out
    blocks = tiles(n, ho, wo, ho * wo * size, lambda n_b, h_b, w_b: n_b * h_b * w_b * size, BLOCK_BYTES)
    db = np.zeros(c_out, dtype=d4.dtype)
    bufs = Buffers(d4.dtype)
    room = math.prod(len(range(s.start, s.stop)) for s in blocks[0]) * c_out if blocks else 0
    for tile in blocks:
        block = d4[tile.images, tile.rows, tile.cols]  # (n_b, h_b, w_b, C_out)
        if not block.flags.c_contiguous:
            copy = bufs.get("dout", block.shape, room)
            np.copyto(copy, block)
            block = copy
        db += block.reshape(-1, c_out).sum(axis=0)  # (n_b, h_b, w_b, C_out) -> (m, C_out) -> (C_out,)
    return db.reshape(b_shape or (c_out,))
