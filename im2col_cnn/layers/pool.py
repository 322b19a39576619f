"""Max and average pooling, forward and backward (PyTorch ``max_pool2d``/``avg_pool2d`` semantics), NHWC or NCHW.

Both are separable reductions over the kernel offsets, tile by tile (:mod:`~im2col_cnn.pool_kernels`), with the
padding never read. Max pooling records each window's winner (a small integer per output) in the forward pass;
the backward pass reads only those, so nothing the forward pass returns is read again. Results are allocated in
the caller's layout; NCHW input is read through an NHWC view, never copied.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..geometry.windows import WindowGeometry
from ..kernels.pool_backward import scatter_windows
from ..kernels.pool_forward import argmax_indices, avg_divisor, pool_geometry, pool_windows
from ..runtime.batch_chunks import batch_chunked
from ..runtime.checks import as_flag, as_float_array, as_int, as_pair, check_data_format, check_dout, check_ndim
from ..runtime.half_precision import float16_io
from ..runtime.layout import to_nhwc

__all__ = [
    "PoolCache",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]


class PoolCache(NamedTuple):
    """What the pooling backward passes need.

    ``x`` is the caller's input itself, kept by reference (no copy, as PyTorch's saved tensors are); the backward
    passes never read its values, so changing ``x`` in place afterwards does not change the gradient. ``winners``
    (max pooling) holds each window's winner, the kernel offset ``i*kw + j`` of its maximum, in a small unsigned
    type: (N, Ho, Wo, C), an NHWC view of an array in the call's layout. ``kind`` is ``'max'`` or ``'avg'``;
    ``ties`` says where a max window's gradient goes when several positions hold its maximum: ``'first'`` (the
    first in row-major window order, PyTorch) or ``'all'`` (the drop-in API, which keeps a private copy of the
    window maxima in ``peak`` and reads ``x``). ``divisor`` is average pooling's divisor, a number or an
    (Ho, Wo, 1) array.
    """

    x: np.ndarray  # (N, H, W, C) or (N, C, H, W): the caller's array
    winners: np.ndarray | None  # (N, Ho, Wo, C) view, max pooling with ties='first'
    geom: WindowGeometry
    kind: str
    ties: str = "first"
    divisor: float | np.ndarray = 1.0
    data_format: str = "NHWC"
    peak: np.ndarray | None = None  # (N, Ho, Wo, C), ties='all' only: a private copy of the window maxima
    io_dtype: np.dtype | None = None  # float16 when the caller's arrays were (computed in float32)

    @property
    def indices(self) -> np.ndarray:
        """Max pooling's argmax, as PyTorch's ``return_indices`` gives it: int64, shaped like the output (in the
        call's layout), holding ``h * W + w`` of the input position each window's gradient goes to."""
        if self.kind != "max" or self.winners is None:
            raise AttributeError("indices exist for max pooling only")
        nchw = self.data_format == "NCHW"
        return _caller_layout(argmax_indices(self.winners, self.geom, nchw), nchw)


def _caller_layout(arr: np.ndarray, nchw: bool) -> np.ndarray:
    """An NHWC view made by :func:`~im2col_cnn.pool_tiles.empty_nhwc` -> the C-contiguous array in the caller's
    layout: (N, H, W, C) -> (N, C, H, W) when ``nchw`` (undoing the view), else itself."""
    return arr.transpose(0, 3, 1, 2) if nchw else arr


def pool_forward(
    x: object,
    kernel_size: object,
    stride: object,
    padding: object,
    kind: str,
    *,
    ties: str = "first",
    dilation: object = 1,
    ceil_mode: object = False,
    count_include_pad: object = True,
    divisor_override: object = None,
    data_format: object = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Validate, then max- or average-pool ``x`` -> out (N, Ho, Wo, C) (or NCHW).

    Max pooling treats the padding as ``-inf`` (it never wins); average pooling as zeros, counted in the
    divisor unless ``count_include_pad`` is false. Padding is at most half the kernel on each axis (PyTorch).
    """
    data_format = check_data_format(data_format)
    nchw = data_format == "NCHW"
    arr = as_float_array(x, "x")
    check_ndim(arr, "x", "(N, C, H, W)" if nchw else "(N, H, W, C)")
    if 0 in arr.shape[1:]:
        raise ValueError(f"x must not be empty except in the batch dimension, got shape {arr.shape}")
    x4 = to_nhwc(arr, data_format)  # (N, C, H, W) -> (N, H, W, C) view
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    steps = kernel if stride is None else as_pair(stride, "stride", minimum=1)
    pads = as_pair(padding, "padding", minimum=0)
    if pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2:
        raise ValueError(f"padding must be at most half of kernel_size {kernel} on each axis, got {pads}")
    dilations = as_pair(dilation, "dilation", minimum=1)
    geom = pool_geometry(x4.shape, kernel, steps, pads, dilations, as_flag(ceil_mode, "ceil_mode"))
    divisor: float | np.ndarray = 1.0
    if kind == "avg":
        if divisor_override is not None:
            divisor_override = as_int(divisor_override, "divisor_override", -(2**62), "a nonzero int or None")
            if divisor_override == 0:
                raise ValueError("divisor_override must be a nonzero int or None, got 0")
        divisor = avg_divisor(geom, pads, as_flag(count_include_pad, "count_include_pad"), divisor_override)
        if isinstance(divisor, np.ndarray):
            divisor = divisor.astype(x4.dtype.newbyteorder("="))  # dtype never widens: float32 stays float32
    first = kind == "max" and ties == "first"
    out, winners = pool_windows(x4, geom, kind, winners=first, divisor=divisor, nchw=nchw)
    peak = out.copy() if kind == "max" and not first else None  # private: the caller may change out
    cache = PoolCache(arr, winners, geom, kind, ties, divisor, data_format, peak)
    return _caller_layout(out, nchw), cache


def pool_backward(dout: object, cache: PoolCache, kind: str) -> np.ndarray:
    """Scatter ``dout`` (the forward output's shape) back onto the input of the forward pass in ``cache``."""
    if not isinstance(cache, PoolCache) or cache.kind != kind:
        forward = "max_pool2d_forward" if kind == "max" else "avg_pool2d_forward"
        raise TypeError(f"cache must be the PoolCache returned by {forward}, got {_describe(cache)}")
    nchw = cache.data_format == "NCHW"
    x4 = to_nhwc(cache.x, cache.data_format)  # (N, C, H, W) -> (N, H, W, C) view
    n, _, _, c = x4.shape
    geom = cache.geom
    shape = (n, c, geom.out_h, geom.out_w) if nchw else (n, geom.out_h, geom.out_w, c)
    d = as_float_array(dout, "dout")
    d4 = to_nhwc(check_dout(d, shape, d.dtype), cache.data_format)  # cast to x's dtype a tile at a time
    dx = scatter_windows(
        d4,
        x4.shape,
        geom,
        kind,
        winners=cache.winners,
        x=x4,
        peak=cache.peak,
        divisor=cache.divisor,
        dtype=x4.dtype.newbyteorder("="),
        nchw=nchw,
    )
    return _caller_layout(dx, nchw)


def _describe(cache: object) -> str:
    if isinstance(cache, PoolCache):
        return f"a PoolCache of kind {cache.kind!r}"
    return type(cache).__name__


@batch_chunked
@float16_io("forward")
def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    *,
    data_format: str = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Max pooling (PyTorch ``max_pool2d`` semantics).

    ``stride`` to ``ceil_mode`` may be given positionally, in ``torch.nn.functional.max_pool2d``'s order.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C), or (N, C, H, W) with ``data_format='NCHW'``
    kernel_size : int or (kh, kw), >= 1
    stride : int or (sh, sw), >= 1, optional
        Defaults to ``kernel_size``.
    padding : int or (ph, pw), at most half of ``kernel_size`` on each axis
        Implicit ``-inf`` padding: it never wins a maximum.
    dilation : int or (dh, dw), >= 1
        Spacing of the window's taps; a window spans ``(k - 1) * d + 1`` pixels.
    ceil_mode : bool
        Round the output size up: a last window that runs past the bottom/right edge is kept when it starts
        inside the input or the top/left padding.
    data_format : 'NHWC' or 'NCHW'

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C) (or (N, C, Ho, Wo))
        ``Ho = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1`` (``ceil`` with ``ceil_mode``); float dtype of ``x``.
    cache : PoolCache
        For :func:`max_pool2d_backward`; ``cache.indices`` is the argmax as PyTorch's ``return_indices``. It keeps
        a reference to ``x`` (no copy, as PyTorch's saved tensors) and each window's winner, one byte per output
        for kernels of up to 255 offsets; it shares no memory with ``out``, which the caller may change freely.
    """
    return pool_forward(
        x, kernel_size, stride, padding, "max", dilation=dilation, ceil_mode=ceil_mode, data_format=data_format
    )


@batch_chunked
@float16_io("backward")
def max_pool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Gradient of :func:`max_pool2d_forward`: each window's ``dout`` goes to its maximum.

    Where several positions of a window tie at the maximum, the first one in row-major window order gets it;
    a window holding NaN sends it to its last NaN (both as PyTorch does). Overlapping windows add up.

    Parameters
    ----------
    dout : array_like, shape of the forward output
    cache : PoolCache from :func:`max_pool2d_forward`

    Returns
    -------
    dx : ndarray, shape and layout of ``x``
    """
    return pool_backward(dout, cache, "max")


@batch_chunked
@float16_io("forward")
def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    data_format: str = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Average pooling (PyTorch ``avg_pool2d`` semantics).

    ``stride`` to ``divisor_override`` may be given positionally, in ``torch.nn.functional.avg_pool2d``'s order.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C), or (N, C, H, W) with ``data_format='NCHW'``
    kernel_size : int or (kh, kw), >= 1
    stride : int or (sh, sw), >= 1, optional
        Defaults to ``kernel_size``.
    padding : int or (ph, pw), at most half of ``kernel_size`` on each axis
        Implicit zero padding.
    ceil_mode : bool
        Round the output size up, as for :func:`max_pool2d_forward`.
    count_include_pad : bool
        Whether the padding counts in a window's divisor. Either way a window that runs past the padded input
        (ceil_mode) counts only what lies inside it, as in PyTorch.
    divisor_override : int, optional
        Nonzero; if given, every window divides by it.
    data_format : 'NHWC' or 'NCHW'

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C) (or (N, C, Ho, Wo))
    cache : PoolCache
        For :func:`avg_pool2d_backward`; it keeps a reference to ``x`` (no copy) and shares no memory with ``out``.
    """
    return pool_forward(
        x,
        kernel_size,
        stride,
        padding,
        "avg",
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
        data_format=data_format,
    )


@batch_chunked
@float16_io("backward")
def avg_pool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Gradient of :func:`avg_pool2d_forward`: each window spreads ``dout / divisor`` over its positions.

    Parameters
    ----------
    dout : array_like, shape of the forward output
    cache : PoolCache from :func:`avg_pool2d_forward`

    Returns
    -------
    dx : ndarray, shape and layout of ``x``
    """
    return pool_backward(dout, cache, "avg")
