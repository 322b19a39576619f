"""Max and average pooling, forward and backward (PyTorch ``max_pool2d``/``avg_pool2d`` semantics), NHWC or NCHW.

Both reduce over the kernel offsets: a running maximum or sum of one strided slice of the input per offset,
with the padding never read. The backward passes scatter back with the same per-offset slices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import as_float_array, as_int, as_pair, check_data_format, check_dout, check_ndim
from .batch_chunks import batch_chunked
from .layout import from_nhwc, to_nhwc
from .pool_kernels import argmax_indices, avg_divisor, pool_geometry, reduce_windows, scatter_avg, scatter_max
from .windows import WindowGeometry

__all__ = [
    "PoolCache",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]


class PoolCache(NamedTuple):
    """What the pooling backward passes need.

    ``kind`` is ``'max'`` or ``'avg'``; ``ties`` says where a max window's gradient goes when several
    positions hold its maximum: ``'first'`` (the first in row-major window order, PyTorch) or ``'all'``.
    ``divisor`` is average pooling's divisor, a number or an (Ho, Wo, 1) array.
    """

    x: np.ndarray  # (N, H, W, C), the compute dtype, NHWC
    out: np.ndarray  # (N, Ho, Wo, C), the forward output, NHWC
    geom: WindowGeometry
    kind: str
    ties: str = "first"
    divisor: float | np.ndarray = 1.0
    data_format: str = "NHWC"

    @property
    def indices(self) -> np.ndarray:
        """Max pooling's argmax, as PyTorch's ``return_indices`` gives it: int64, shaped like ``out`` (in the
        call's layout), holding ``h * W + w`` of the input position each window's gradient goes to."""
        if self.kind != "max":
            raise AttributeError("indices exist for max pooling only")
        return from_nhwc(argmax_indices(self.x, self.out, self.geom), self.data_format)


def pool_forward(
    x: object,
    kernel_size: object,
    stride: object,
    padding: object,
    kind: str,
    *,
    ties: str = "first",
    dilation: object = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: object = None,
    data_format: object = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Validate, then max- or average-pool ``x`` -> out (N, Ho, Wo, C) (or NCHW).

    Max pooling treats the padding as ``-inf`` (it never wins); average pooling as zeros, counted in the
    divisor unless ``count_include_pad`` is false. Padding is at most half the kernel on each axis (PyTorch).
    """
    data_format = check_data_format(data_format)
    x = as_float_array(x, "x")
    check_ndim(x, "x", "(N, C, H, W)" if data_format == "NCHW" else "(N, H, W, C)")
    x = np.ascontiguousarray(to_nhwc(x, data_format))
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    steps = kernel if stride is None else as_pair(stride, "stride", minimum=1)
    pads = as_pair(padding, "padding", minimum=0)
    if pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2:
        raise ValueError(f"padding must be at most half of kernel_size {kernel} on each axis, got {pads}")
    geom = pool_geometry(x.shape, kernel, steps, pads, as_pair(dilation, "dilation", minimum=1), _flag(ceil_mode))
    out = reduce_windows(x, geom, kind)
    divisor = 1.0
    if kind == "avg":
        if divisor_override is not None:
            divisor_override = as_int(divisor_override, "divisor_override", -(2**62), "a nonzero int or None")
            if divisor_override == 0:
                raise ValueError("divisor_override must be a nonzero int or None, got 0")
        divisor = avg_divisor(geom, pads, _flag(count_include_pad, "count_include_pad"), divisor_override)
        if isinstance(divisor, np.ndarray):
            divisor = divisor.astype(x.dtype)  # dtype never widens: float32 stays float32
        out /= divisor
    return from_nhwc(out, data_format), PoolCache(x, out, geom, kind, ties, divisor, data_format)


def pool_backward(dout: object, cache: PoolCache, kind: str) -> np.ndarray:
    """Scatter ``dout`` (the forward output's shape) back onto the input of the forward pass in ``cache``."""
    if not isinstance(cache, PoolCache) or cache.kind != kind:
        forward = "max_pool2d_forward" if kind == "max" else "avg_pool2d_forward"
        raise TypeError(f"cache must be the PoolCache returned by {forward}, got {_describe(cache)}")
    x, out, geom, _, ties, divisor, data_format = cache
    n, ho, wo, c = out.shape
    shape = (n, c, ho, wo) if data_format == "NCHW" else out.shape
    d4 = np.ascontiguousarray(to_nhwc(check_dout(dout, shape, x.dtype), data_format))
    if kind == "avg":
        dx = scatter_avg(d4 / divisor, geom, x.shape)
    else:
        dx = scatter_max(d4, x, out, geom, first_only=ties == "first")
    return from_nhwc(dx, data_format)


def _flag(value: object, name: str = "ceil_mode") -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _describe(cache: object) -> str:
    if isinstance(cache, PoolCache):
        return f"a PoolCache of kind {cache.kind!r}"
    return type(cache).__name__


@batch_chunked
def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    data_format: str = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Max pooling (PyTorch ``max_pool2d`` semantics).

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
        For :func:`max_pool2d_backward`; ``cache.indices`` is the argmax as PyTorch's ``return_indices``.
    """
    return pool_forward(
        x, kernel_size, stride, padding, "max", dilation=dilation, ceil_mode=ceil_mode, data_format=data_format
    )


@batch_chunked
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
def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    data_format: str = "NHWC",
) -> tuple[np.ndarray, PoolCache]:
    """Average pooling (PyTorch ``avg_pool2d`` semantics).

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
        For :func:`avg_pool2d_backward`.
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
