"""Max and average pooling on NHWC input, forward and backward (PyTorch ``max_pool2d``/``avg_pool2d`` semantics).

Both reduce over the kernel offsets: a running maximum or sum of one strided slice of the input per offset,
with the padding never read. The backward passes scatter back with the same per-offset slices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import as_float_array, as_pair, check_dout, check_ndim
from .windows import WindowGeometry, make_geometry
from .workspace import image_blocks

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
    offsets = list(geom.offset_slices())
    # Start from an offset that every window reads inside the input (a copy, not a reduction), if one exists.
    full = [o for o in offsets if o[2] == (slice(0, geom.out_h), slice(0, geom.out_w))][:1]
    rest = [o for o in offsets if o not in full]
    reduce = np.maximum if kind == "max" else np.add
    for images in image_blocks(n, x[0].nbytes):  # blocks small enough for out to stay in cache across offsets
        xb, ob = x[images], out[images]
        if full:
            np.copyto(ob, xb[:, full[0][3][0], full[0][3][1]])
        else:
            ob.fill(-np.inf if kind == "max" else 0)
        for _, _, (orow, ocol), (irow, icol) in rest:
            o = ob[:, orow, ocol]
            reduce(o, xb[:, irow, icol], out=o)
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
    if kind == "avg":
        dout = dout / (geom.kh * geom.kw)
    dx = np.zeros(x.shape, dtype=x.dtype)
    offsets = list(geom.offset_slices())
    # Windows that do not overlap write disjoint slices of dx: assign instead of add.
    disjoint = geom.sh >= (geom.kh - 1) * geom.dh + 1 and geom.sw >= (geom.kw - 1) * geom.dw + 1
    put = np.copyto if disjoint else _add_into
    for images in image_blocks(x.shape[0], x[0].nbytes):
        xb, ob, gb, dxb = x[images], out[images], dout[images], dx[images]
        if kind == "avg":
            for _, _, (orow, ocol), (irow, icol) in offsets:
                put(dxb[:, irow, icol], gb[:, orow, ocol])
        else:
            _scatter_max(xb, ob, gb, dxb, offsets, ties == "first", put)
    return dx


def _add_into(dst: np.ndarray, src: np.ndarray) -> None:
    np.add(dst, src, out=dst)


def _scatter_max(xb, ob, gb, dxb, offsets, first_only: bool, put) -> None:
    """Send each window's gradient ``gb`` (n, Ho, Wo, C) to its maximum in ``xb`` (n, H, W, C), into ``dxb``.

    With ``first_only`` a window's gradient goes to its first maximum in row-major window order (PyTorch),
    else to every position tied at the maximum. A window holding NaN sends it to its last NaN (PyTorch).
    """
    taken = np.zeros(ob.shape, dtype=bool) if first_only else None
    last_nan = _last_nan_offset(xb, ob, offsets)
    # g * mask is exact and fast when g is finite; inf * 0 would be NaN, so otherwise select with np.where.
    finite = bool(np.isfinite(gb).all())
    for k, (_, _, (orow, ocol), (irow, icol)) in enumerate(offsets):
        hit = np.equal(xb[:, irow, icol], ob[:, orow, ocol])
        if last_nan is not None:
            hit |= last_nan[:, orow, ocol] == k
        if taken is not None:
            t = taken[:, orow, ocol]
            hit &= ~t
            t |= hit
        g = gb[:, orow, ocol]
        put(dxb[:, irow, icol], g * hit if finite else np.where(hit, g, 0))


def _last_nan_offset(xb: np.ndarray, ob: np.ndarray, offsets: list) -> np.ndarray | None:
    """For each output (n, Ho, Wo, C), the index of the last offset of its window holding NaN (-1: none).

    ``None`` when no window holds NaN, which is the common case and costs one pass over ``ob``.
    """
    if not np.isnan(ob).any():
        return None
    last = np.full(ob.shape, -1, dtype=np.intp)
    for k, (_, _, (orow, ocol), (irow, icol)) in enumerate(offsets):
        np.copyto(last[:, orow, ocol], k, where=np.isnan(xb[:, irow, icol]))
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
