"""Max and average pooling on NHWC input, forward and backward (PyTorch ``max_pool2d``/``avg_pool2d`` semantics).

Both reduce over the kernel offsets: a running maximum or sum of one strided slice of the input per offset,
with the padding never read. The backward passes scatter back with the same per-offset slices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import as_float_array, as_pair, check_dout, check_ndim
from .windows import WindowGeometry, make_geometry

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
    """

    x: np.ndarray  # (N, H, W, C), the compute dtype
    out: np.ndarray  # (N, Ho, Wo, C), the forward output
    geom: WindowGeometry
    kind: str
    ties: str = "first"


def pool_forward(
    x: object, kernel_size: object, stride: object, padding: object, kind: str, *, ties: str = "first"
) -> tuple[np.ndarray, PoolCache]:
    """Validate, then max- or average-pool ``x`` (N, H, W, C) -> (N, Ho, Wo, C).

    Max pooling treats the padding as ``-inf`` (it never wins); average pooling as zeros that count in the
    divisor ``kh*kw``. Padding is at most half the kernel on each axis (PyTorch's rule).
    """
    x = as_float_array(x, "x")
    check_ndim(x, "x", "(N, H, W, C)")
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    steps = kernel if stride is None else as_pair(stride, "stride", minimum=1)
    pads = as_pair(padding, "padding", minimum=0)
    if pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2:
        raise ValueError(f"padding must be at most half of kernel_size {kernel} on each axis, got {pads}")
    geom = make_geometry(x.shape, kernel, steps, pads)
    n, _, _, c = x.shape
    out = np.empty((n, geom.out_h, geom.out_w, c), dtype=x.dtype)
    # Start from an offset that every window reads inside the input (a copy, not a reduction), if one exists.
    offsets = list(geom.offset_slices())
    full = [o for o in offsets if o[2] == (slice(0, geom.out_h), slice(0, geom.out_w))]
    if full:
        _, _, _, (irow, icol) = full[0]
        np.copyto(out, x[:, irow, icol])
        offsets.remove(full[0])
    else:
        out.fill(-np.inf if kind == "max" else 0)
    reduce = np.maximum if kind == "max" else np.add
    for _, _, (orow, ocol), (irow, icol) in offsets:
        o = out[:, orow, ocol]
        reduce(o, x[:, irow, icol], out=o)
    if kind == "avg":
        out /= geom.kh * geom.kw
    return out, PoolCache(x, out, geom, kind, ties)


def pool_backward(dout: object, cache: PoolCache, kind: str) -> np.ndarray:
    """Scatter ``dout`` (N, Ho, Wo, C) back onto the input (N, H, W, C) of the forward pass in ``cache``."""
    if not isinstance(cache, PoolCache) or cache.kind != kind:
        forward = "max_pool2d_forward" if kind == "max" else "avg_pool2d_forward"
        raise TypeError(f"cache must be the PoolCache returned by {forward}, got {_describe(cache)}")
    x, out, geom, _, ties = cache
    dout = check_dout(dout, out.shape, x.dtype)
    dx = np.zeros(x.shape, dtype=x.dtype)
    offsets = list(geom.offset_slices())
    if kind == "avg":
        g = dout / (geom.kh * geom.kw)
        for _, _, (orow, ocol), (irow, icol) in offsets:
            d = dx[:, irow, icol]
            np.add(d, g[:, orow, ocol], out=d)
        return dx
    # g holds each window's gradient not yet handed out: with ties="first" the first hit takes it all.
    g = dout.copy() if ties == "first" else dout
    last_nan = _last_nan_offset(x, out, geom)
    for k, (_, _, (orow, ocol), (irow, icol)) in enumerate(offsets):
        hit = np.equal(x[:, irow, icol], out[:, orow, ocol])
        if last_nan is not None:  # a window holding NaN outputs NaN; its gradient goes to its last NaN (PyTorch)
            hit |= last_nan[:, orow, ocol] == k
        d, gk = dx[:, irow, icol], g[:, orow, ocol]
        np.add(d, gk, out=d, where=hit)
        if ties == "first" and k < len(offsets) - 1:
            np.copyto(gk, 0, where=hit)
    return dx


def _last_nan_offset(x: np.ndarray, out: np.ndarray, geom: WindowGeometry) -> np.ndarray | None:
    """For each output (N, Ho, Wo, C), the index of the last offset of its window holding NaN (-1: none).

    ``None`` when no window holds NaN, which is the common case and costs one pass over ``out``.
    """
    if not np.isnan(out).any():
        return None
    last = np.full(out.shape, -1, dtype=np.intp)
    for k, (_, _, (orow, ocol), (irow, icol)) in enumerate(geom.offset_slices()):
        np.copyto(last[:, orow, ocol], k, where=np.isnan(x[:, irow, icol]))
    return last


def _describe(cache: object) -> str:
    if isinstance(cache, PoolCache):
        return f"a PoolCache of kind {cache.kind!r}"
    return type(cache).__name__


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> tuple[np.ndarray, PoolCache]:
    """Max pooling of NHWC ``x`` (PyTorch ``max_pool2d`` semantics).

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
    kernel_size : int or (kh, kw), >= 1
    stride : int or (sh, sw), >= 1, optional
        Defaults to ``kernel_size``.
    padding : int or (ph, pw), at most half the kernel on each axis
        Implicit ``-inf`` padding: it never wins a maximum.

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C)
        ``Ho = (H + 2*ph - kh) // sh + 1``; float dtype of ``x`` (integers become float64).
    cache : PoolCache
        For :func:`max_pool2d_backward`.
    """
    return pool_forward(x, kernel_size, stride, padding, "max")


def max_pool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Gradient of :func:`max_pool2d_forward`: each window's ``dout`` goes to its maximum.

    Where several positions of a window tie at the maximum, the first one in row-major window order gets it
    (as PyTorch does). Overlapping windows add up.

    Parameters
    ----------
    dout : array_like, shape (N, Ho, Wo, C)
    cache : PoolCache from :func:`max_pool2d_forward`

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
    """
    return pool_backward(dout, cache, "max")


def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> tuple[np.ndarray, PoolCache]:
    """Average pooling of NHWC ``x`` (PyTorch ``avg_pool2d`` semantics, ``count_include_pad=True``).

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
    kernel_size : int or (kh, kw), >= 1
    stride : int or (sh, sw), >= 1, optional
        Defaults to ``kernel_size``.
    padding : int or (ph, pw), at most half the kernel on each axis
        Implicit zero padding, counted in the divisor: every window divides by ``kh*kw``.

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C)
    cache : PoolCache
        For :func:`avg_pool2d_backward`.
    """
    return pool_forward(x, kernel_size, stride, padding, "avg")


def avg_pool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Gradient of :func:`avg_pool2d_forward`: each window spreads ``dout / (kh*kw)`` over its positions.

    Parameters
    ----------
    dout : array_like, shape (N, Ho, Wo, C)
    cache : PoolCache from :func:`avg_pool2d_forward`

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
    """
    return pool_backward(dout, cache, "avg")
