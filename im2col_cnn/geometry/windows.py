"""Window geometry, padding, the strided window view, im2col and col2im.

Everything here is NHWC. One :class:`WindowGeometry` describes where the sliding windows of one op sit; conv and
pooling, forward and backward, all read their windows through it:

* ``window_view`` -- the ``(N, Ho, Wo, kh, kw, C)`` view of the padded input (stride tricks, no copy);
* ``offset_slices`` -- for each kernel offset ``(i, j)``, the output positions whose window reads inside the
  unpadded input and the strided input slice they read. Gathers and scatters loop over these ``kh*kw`` offsets
  (never over the batch, the output positions or the channels), and never need a padded gradient buffer.

The conv kernels build and scatter their column matrices tile by tile (:mod:`~im2col_cnn.tile_columns`); the
public :func:`im2col` and :func:`col2im` work on a whole batch at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..kernels.columns import scatter_tile
from ..runtime.checks import as_float_array, as_int, as_pair, as_real, check_ndim
from ..runtime.workspace import Scratch, Tile

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

    @cached_property
    def padded_h(self) -> int:
        return self.in_h + self.pad_top + self.pad_bottom

    @cached_property
    def padded_w(self) -> int:
        return self.in_w + self.pad_left + self.pad_right

    @cached_property
    def out_h(self) -> int:
        return (self.padded_h - (self.kh - 1) * self.dh - 1) // self.sh + 1

    @cached_property
    def out_w(self) -> int:
        return (self.padded_w - (self.kw - 1) * self.dw - 1) // self.sw + 1

    @property
    def has_padding(self) -> bool:
        return bool(self.pad_top or self.pad_bottom or self.pad_left or self.pad_right)

    @property
    def is_pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: the input already is the column matrix."""
        return (self.kh, self.kw, self.sh, self.sw) == (1, 1, 1, 1) and not self.has_padding

    def offset_slices(
        self, rows: slice | None = None, cols: slice | None = None
    ) -> Iterator[tuple[int, int, tuple[slice, slice], tuple[slice, slice]]]:
        """Yield ``(i, j, (out_rows, out_cols), (in_rows, in_cols))`` for each kernel offset, row-major.

        ``x[:, in_rows, in_cols]`` is what offset ``(i, j)`` of the windows at ``out[:, out_rows, out_cols]``
        reads; output positions whose offset ``(i, j)`` falls in the padding are left out, and so are offsets
        that read no input at all. ``rows`` and ``cols`` restrict the output to a tile of rows and columns;
        ``out_rows`` and ``out_cols`` are then relative to the tile's first row and column.
        """
        row_slices, col_slices = self.axis_slices(rows, cols)
        for i, r in enumerate(row_slices):
            for j, c in enumerate(col_slices):
                if r is not None and c is not None:
                    yield i, j, (r[0], c[0]), (r[1], c[1])

    def axis_slices(
        self, rows: slice | None = None, cols: slice | None = None
    ) -> tuple[list[tuple[slice, slice] | None], list[tuple[slice, slice] | None]]:
        """Per kernel row ``i`` and per kernel column ``j``: ``(out slice, in slice)`` along that axis, or None.

        :meth:`offset_slices` pairs them up: offset ``(i, j)`` is row ``i``'s slices with column ``j``'s.
        """
        lo, hi = (0, self.out_h) if rows is None else (rows.start, rows.stop)
        left, right = (0, self.out_w) if cols is None else (cols.start, cols.stop)
        r_args = (self.in_h, self.sh, self.dh, self.pad_top, lo, hi)
        c_args = (self.in_w, self.sw, self.dw, self.pad_left, left, right)
        return [_axis_slices(i, *r_args) for i in range(self.kh)], [_axis_slices(j, *c_args) for j in range(self.kw)]

    def input_extent(self, rows: slice, cols: slice) -> tuple[int, int, int, int]:
        """Input rows ``[r0, r1)`` and columns ``[c0, c1)`` that the windows of an output tile span.

        Unclipped: where the windows reach into the padding, the extent runs past ``[0, in_h)`` / ``[0, in_w)``.
        """
        r0 = rows.start * self.sh - self.pad_top
        c0 = cols.start * self.sw - self.pad_left
        r1 = (rows.stop - 1) * self.sh + (self.kh - 1) * self.dh + 1 - self.pad_top
        c1 = (cols.stop - 1) * self.sw + (self.kw - 1) * self.dw + 1 - self.pad_left
        return r0, r1, c0, c1

    def tile_scratch(self, c_in: int, itemsize: int, position_bytes: int, *, always_slab: bool = False) -> Scratch:
        """Scratch of a tile: ``position_bytes`` per output position plus the staged input slab of its windows.

        The slab (:func:`stage`) is counted whenever one may be built -- padding, or a kernel larger than 1x1
        read from a layout other than NHWC, or always with ``always_slab`` -- so that the tiles do not depend
        on the layout.
        """
        slab = always_slab or self.has_padding or self.kh * self.kw > 1
        reach_h, reach_w = (self.kh - 1) * self.dh + 1, (self.kw - 1) * self.dw + 1

        def scratch(n_b: int, h_b: int, w_b: int) -> int:
            total = n_b * h_b * w_b * position_bytes
            if slab:
                total += n_b * ((h_b - 1) * self.sh + reach_h) * ((w_b - 1) * self.sw + reach_w) * c_in * itemsize
            return total

        return scratch


def _axis_slices(k: int, in_size: int, s: int, d: int, pad: int, lo: int, hi: int) -> tuple[slice, slice] | None:
    """Outputs ``o`` in ``[lo, hi)`` whose kernel index ``k`` reads input ``o*s + k*d - pad`` in ``[0, in_size)``.

    Returns the output slice (relative to ``lo``) and the strided input slice, or ``None`` when there are none.
    """
    first = max(lo, -((k * d - pad) // s))  # ceil((pad - k*d) / s)
    last = min(hi - 1, (in_size - 1 + pad - k * d) // s)
    if last < first:
        return None
    start = first * s + k * d - pad
    return slice(first - lo, last - lo + 1), slice(start, start + (last - first) * s + 1, s)


MAX_ELEMENTS = 2**62 // 16
"""More elements than any array can hold: a size past it is a ValueError naming the argument that caused it."""


_geometry = lru_cache(maxsize=256)(WindowGeometry)
"""The same :class:`WindowGeometry` object for the same arguments: its derived sizes are then worked out once."""


def make_geometry(
    x_shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] | tuple[int, int, int, int],
    dilation: tuple[int, int] = (1, 1),
    *,
    kernel_name: str = "kernel_size",
) -> WindowGeometry:
    """Geometry of ``kernel_size`` windows at ``stride`` and ``dilation`` on NHWC ``x_shape``.

    ``padding`` is ``(ph, pw)`` (both sides) or ``(top, bottom, left, right)``. Raises ``ValueError`` when the
    (dilated) kernel does not fit in the padded input.
    """
    n, in_h, in_w, c = x_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    t, b, left, right = padding if len(padding) == 4 else (padding[0], padding[0], padding[1], padding[1])
    if max(n, 1) * (in_h + t + b) * (in_w + left + right) * c > MAX_ELEMENTS:
        raise ValueError(f"padding {tuple(padding)} makes the padded input of {tuple(x_shape)} too large for memory")
    # A stride past the padded input gives one window either way; clamped, the window view's strides stay small.
    sh, sw = min(sh, in_h + t + b), min(sw, in_w + left + right)
    geom = _geometry(in_h, in_w, kh, kw, sh, sw, t, b, left, right, dh, dw)
    reach = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    if reach[0] > geom.padded_h or reach[1] > geom.padded_w:
        dilated = f" (dilated to {reach})" if (dh, dw) != (1, 1) else ""
        raise ValueError(
            f"{kernel_name} {(kh, kw)}{dilated} is larger than the padded input {(geom.padded_h, geom.padded_w)} "
            f"(input {(in_h, in_w)} with padding {tuple(padding)})"
        )
    return geom


def pad_input(x: np.ndarray, geom: WindowGeometry, value: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """Return ``x`` (N, H, W, C) padded to (N, Hp, Wp, C) with ``value``; ``x`` itself when there is no padding.

    A negative bottom or right padding crops. ``out``, if given, is a buffer of at least N images of shape
    (Hp, Wp, C) to pad into.
    """
    if not geom.has_padding:
        return x
    t, b, left, r = geom.pad_top, geom.pad_bottom, geom.pad_left, geom.pad_right
    x = x[:, : x.shape[1] + min(b, 0), : x.shape[2] + min(r, 0)]  # negative padding crops
    n, h, w, c = x.shape
    shape = (n, geom.padded_h, geom.padded_w, c)
    xp = np.empty(shape, dtype=x.dtype) if out is None else out[:n]
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
    view = window_view(pad_input(x, geom, pad_value), geom)  # (N, Ho, Wo, kh, kw, C)
    cols = np.empty((n * geom.out_h * geom.out_w, geom.kh * geom.kw * c), dtype=x.dtype)
    np.copyto(cols.reshape(view.shape), view)  # always a fresh array, even where a reshape could be a view
    return cols


def scatter_columns(cols: np.ndarray, geom: WindowGeometry, dx: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`columns`: ``cols`` (N*Ho*Wo, kh*kw*C) added into ``dx`` (N, H, W, C); returns ``dx``."""
    tile = Tile(slice(0, dx.shape[0]), slice(0, geom.out_h), slice(0, geom.out_w))
    return scatter_tile(cols, geom, tile, dx)


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
    return columns(arr, geom, as_real(pad_value, "pad_value"))


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
    what = "a shape (N, H, W, C) of positive ints"
    if isinstance(x_shape, (str, bytes)) or not isinstance(x_shape, (Sequence, np.ndarray)):
        raise TypeError(f"x_shape must be {what}, got {x_shape!r}")
    if len(x_shape) != 4:
        raise ValueError(f"x_shape must be {what}, got {x_shape!r}")
    shape = tuple(as_int(v, "x_shape", 1, what) for v in x_shape)
    geom = _geometry_from_args(shape, kernel_size, stride, padding)
    n, _, _, c = shape
    expected = (n * geom.out_h * geom.out_w, geom.kh * geom.kw * c)
    if arr.shape != expected:
        raise ValueError(f"cols must have shape (N*Ho*Wo, kh*kw*C) = {expected} for x_shape {shape}, got {arr.shape}")
    return scatter_columns(arr, geom, np.zeros(shape, dtype=arr.dtype))
