"""Window geometry, padding, the strided window view, im2col and col2im.

Everything here is NHWC. One :class:`WindowGeometry` describes where the sliding windows of one op sit; conv and
pooling, forward and backward, all read their windows through it:

* ``window_view`` -- the ``(N, Ho, Wo, kh, kw, C)`` view of the padded input (stride tricks, no copy);
* ``offset_slices`` -- for each kernel offset ``(i, j)``, the output positions whose window reads inside the
  unpadded input and the strided input slice they read. Gathers and scatters loop over these ``kh*kw`` offsets
  (never over the batch, the output positions or the channels), and never need a padded gradient buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._checks import as_float_array, as_pair, check_ndim

__all__ = ["WindowGeometry", "make_geometry", "pad_input", "window_view", "im2col", "col2im"]


@dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of a 2-D sliding-window op sit on an ``(H, W)`` input.

    Padding is given per side (``pad_top``, ``pad_bottom``, ``pad_left``, ``pad_right``); the effective kernel
    extent is ``(kh - 1) * dh + 1`` rows by ``(kw - 1) * dw + 1`` columns.
    """

    in_h: int
    in_w: int
    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    dh: int = 1
    dw: int = 1

    @property
    def padded_h(self) -> int:
        return self.in_h + self.pad_top + self.pad_bottom

    @property
    def padded_w(self) -> int:
        return self.in_w + self.pad_left + self.pad_right

    @property
    def out_h(self) -> int:
        return (self.padded_h - (self.kh - 1) * self.dh - 1) // self.sh + 1

    @property
    def out_w(self) -> int:
        return (self.padded_w - (self.kw - 1) * self.dw - 1) // self.sw + 1

    @property
    def has_padding(self) -> bool:
        return bool(self.pad_top or self.pad_bottom or self.pad_left or self.pad_right)

    def offset_slices(self) -> Iterator[tuple[int, int, tuple[slice, slice], tuple[slice, slice]]]:
        """Yield ``(i, j, (out_rows, out_cols), (in_rows, in_cols))`` for each kernel offset, row-major.

        ``x[:, in_rows, in_cols]`` is what offset ``(i, j)`` of the windows at ``out[:, out_rows, out_cols]``
        reads; output positions whose offset ``(i, j)`` falls in the padding are left out. Offsets that read no
        input at all are skipped.
        """
        rows = [_axis_slices(self.in_h, self.out_h, self.sh, self.dh, self.pad_top, i) for i in range(self.kh)]
        cols = [_axis_slices(self.in_w, self.out_w, self.sw, self.dw, self.pad_left, j) for j in range(self.kw)]
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                if r is not None and c is not None:
                    yield i, j, (r[0], c[0]), (r[1], c[1])


def _axis_slices(in_size: int, out_size: int, s: int, d: int, pad: int, k: int) -> tuple[slice, slice] | None:
    """Output positions ``o`` whose kernel index ``k`` reads input ``o*s + k*d - pad`` inside ``[0, in_size)``."""
    first = max(0, -((k * d - pad) // s))  # ceil((pad - k*d) / s)
    last = min(out_size - 1, (in_size - 1 + pad - k * d) // s)
    if last < first:
        return None
    start = first * s + k * d - pad
    return slice(first, last + 1), slice(start, start + (last - first) * s + 1, s)


def make_geometry(
    x_shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    *,
    kernel_name: str = "kernel_size",
) -> WindowGeometry:
    """Geometry of ``kernel_size`` windows at ``stride`` on NHWC ``x_shape`` zero-padded by ``padding`` (h, w).

    Raises ``ValueError`` when the kernel does not fit in the padded input.
    """
    _, in_h, in_w, _ = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    geom = WindowGeometry(in_h, in_w, kh, kw, sh, sw, ph, ph, pw, pw)
    if kh > geom.padded_h or kw > geom.padded_w:
        raise ValueError(
            f"{kernel_name} {(kh, kw)} is larger than the padded input {(geom.padded_h, geom.padded_w)} "
            f"(input {(in_h, in_w)} with padding {(ph, pw)})"
        )
    return geom


def pad_input(x: np.ndarray, geom: WindowGeometry, value: float = 0.0) -> np.ndarray:
    """Return ``x`` (N, H, W, C) padded to (N, Hp, Wp, C) with ``value``; ``x`` itself when there is no padding."""
    if not geom.has_padding:
        return x
    n, h, w, c = x.shape
    t, left = geom.pad_top, geom.pad_left
    xp = np.empty((n, geom.padded_h, geom.padded_w, c), dtype=x.dtype)
    # Fill only the border strips, then copy the interior once.
    xp[:, :t] = value
    xp[:, t + h :] = value
    xp[:, t : t + h, :left] = value
    xp[:, t : t + h, left + w :] = value
    xp[:, t : t + h, left : left + w] = x
    return xp


def window_view(xp: np.ndarray, geom: WindowGeometry) -> np.ndarray:
    """Read-only ``(N, Ho, Wo, kh, kw, C)`` view of the windows of padded ``xp`` (N, Hp, Wp, C); no copy."""
    n, _, _, c = xp.shape
    s_n, s_h, s_w, s_c = xp.strides
    return as_strided(
        xp,
        shape=(n, geom.out_h, geom.out_w, geom.kh, geom.kw, c),
        strides=(s_n, s_h * geom.sh, s_w * geom.sw, s_h * geom.dh, s_w * geom.dw, s_c),
        writeable=False,
    )


def columns(x: np.ndarray, geom: WindowGeometry, pad_value: float = 0.0) -> np.ndarray:
    """Column matrix of ``x`` (N, H, W, C): ``(N*Ho*Wo, kh*kw*C)``, rows (n, ho, wo), columns (i, j, c)."""
    n, c = x.shape[0], x.shape[3]
    view = window_view(pad_input(x, geom, pad_value), geom)
    # (N, Ho, Wo, kh, kw, C) -> (N*Ho*Wo, kh*kw*C); reshaping the strided view copies it once.
    return view.reshape(n * geom.out_h * geom.out_w, geom.kh * geom.kw * c)


def scatter_columns(cols: np.ndarray, geom: WindowGeometry, x_shape: tuple[int, ...]) -> np.ndarray:
    """Adjoint of :func:`columns`: add each column entry back where it was read from; drop the padding.

    ``cols`` is ``(N*Ho*Wo, kh*kw*C)`` (or already ``(N, Ho, Wo, kh, kw, C)``); returns ``x_shape`` (N, H, W, C)
    in ``cols``' dtype. One strided slice-add per kernel offset.
    """
    n, _, _, c = x_shape
    # (N*Ho*Wo, kh*kw*C) -> (N, Ho, Wo, kh, kw, C)
    cols6 = cols.reshape(n, geom.out_h, geom.out_w, geom.kh, geom.kw, c)
    dx = np.zeros(x_shape, dtype=cols.dtype)
    for i, j, (orow, ocol), (irow, icol) in geom.offset_slices():
        dx[:, irow, icol] += cols6[:, orow, ocol, i, j]
    return dx


def _geometry_from_args(
    x_shape: tuple[int, ...], kernel_size: object, stride: object, padding: object
) -> WindowGeometry:
    return make_geometry(
        x_shape,
        as_pair(kernel_size, "kernel_size", minimum=1),
        as_pair(stride, "stride", minimum=1),
        as_pair(padding, "padding", minimum=0),
    )


def im2col(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Unroll the sliding windows of ``x`` into a column matrix.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
    kernel_size, stride, padding : int or (h, w) pair
        Window size (>= 1), step (>= 1) and padding on each side (>= 0).
    pad_value : float
        Value the padding reads as (0 for convolution, ``-inf`` for max pooling).

    Returns
    -------
    cols : ndarray, shape (N*Ho*Wo, kh*kw*C)
        Row ``(n*Ho + ho)*Wo + wo`` holds window ``(ho, wo)`` of image ``n``, flattened in ``(i, j, c)`` order,
        so ``cols @ w.reshape(kh*kw*C, C_out)`` is a convolution with ``w`` of shape (kh, kw, C, C_out).
        ``Ho = (H + 2*ph - kh) // sh + 1`` and likewise ``Wo``.
    """
    arr = as_float_array(x, "x")
    check_ndim(arr, "x", "(N, H, W, C)")
    geom = _geometry_from_args(arr.shape, kernel_size, stride, padding)
    return columns(arr, geom, pad_value)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> np.ndarray:
    """Fold a column matrix back onto the input: the adjoint of :func:`im2col`.

    Parameters
    ----------
    cols : array_like, shape (N*Ho*Wo, kh*kw*C)
        Laid out as :func:`im2col` returns it.
    x_shape : (N, H, W, C)
        Shape of the input the columns were taken from.
    kernel_size, stride, padding : int or (h, w) pair
        As given to :func:`im2col`.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
        Each entry of ``cols`` added to the input position it was read from (overlapping windows sum);
        entries read from the padding are dropped.
    """
    arr = as_float_array(cols, "cols")
    check_ndim(arr, "cols", "(N*Ho*Wo, kh*kw*C)")
    shape = tuple(x_shape)
    if len(shape) != 4 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in shape):
        raise ValueError(f"x_shape must be a shape (N, H, W, C) of positive ints, got {x_shape!r}")
    geom = _geometry_from_args(shape, kernel_size, stride, padding)
    n, _, _, c = shape
    expected = (n * geom.out_h * geom.out_w, geom.kh * geom.kw * c)
    if arr.shape != expected:
        raise ValueError(f"cols must have shape (N*Ho*Wo, kh*kw*C) = {expected} for x_shape {shape}, got {arr.shape}")
    return scatter_columns(arr, geom, shape)
