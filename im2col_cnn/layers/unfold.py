"""The public im2col and col2im in two forms, for inputs with 1, 2 or 3 spatial axes.

* :func:`unfold` / :func:`fold` -- PyTorch's ``torch.nn.functional.unfold``/``fold`` (which stop at 2-D):
  channels-first ``x`` (N, C, *spatial), columns ``(N, C*prod(kernel), L)`` with rows channel-major, then the
  kernel offsets in row-major order, and ``L`` the output positions in row-major order.
* :func:`im2col` / :func:`col2im` -- the engine's own channels-last matrix form: ``x`` (N, *spatial, C), columns
  ``(N*prod(out), prod(kernel)*C)``, rows ``(n, *out)``, columns ``(*taps, c)``, so that ``cols @ w.reshape(-1,
  C_out)`` is the convolution.

Each pair is adjoint: unfold/im2col gather, one strided copy per kernel offset
(:func:`~im2col_cnn.kernels.columns.gather_taps`); fold/col2im add each column entry back where it was read from,
one strided slice-add per kernel offset, overlapping windows summing and the padding dropped. Neither makes a
padded copy of the input: they use no scratch memory besides the arrays they return. float16 arrays give float16
results (fold and col2im sum in float32 and round once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..geometry.windows import WindowGeometry, make_geometry
from ..kernels.columns import ALL, gather_taps, scatter_taps
from ..runtime.batch_chunks import is_dask_array
from ..runtime.checks import as_float_array, as_int, as_padding, as_real, as_tuple
from ..runtime.half_precision import HALF

__all__ = ["im2col", "col2im", "unfold", "fold"]

_RANKS = "1 to 3 spatial axes"


def _rank(arr: np.ndarray, name: str, layout: str) -> int:
    """The number of spatial axes of ``arr`` (3-, 4- or 5-D); ``ValueError`` naming ``name`` otherwise."""
    if arr.ndim not in (3, 4, 5):
        raise ValueError(f"{name} must be a 3-, 4- or 5-D array of shape {layout} ({_RANKS}), got shape {arr.shape}")
    return arr.ndim - 2


def _x_shape(value: object, name: str, what: str) -> tuple[int, ...]:
    """A channels-last shape argument (N, *spatial, C): 3 to 5 ints, the batch >= 0 and the others >= 1."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if not 3 <= len(value) <= 5:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return tuple(as_int(v, name, 0 if i == 0 else 1, what) for i, v in enumerate(value))


def _geometry(
    x_shape: tuple[int, ...], kernel_size: object, stride: object, padding: object, dilation: object, ndim: int
) -> WindowGeometry:
    """The windows of channels-last ``x_shape`` (N, *spatial, C) for symmetric or per-side ``padding``."""
    pads = as_padding(padding, ndim, "padding", strings=False)
    return make_geometry(
        x_shape,
        as_tuple(kernel_size, ndim, "kernel_size", minimum=1),
        as_tuple(stride, ndim, "stride", minimum=1),
        pads,  # type: ignore[arg-type]
        as_tuple(dilation, ndim, "dilation", minimum=1),
    )


def _numpy_array(value: object, name: str, function: str) -> np.ndarray:
    """``value`` as a float array; a Dask array is a TypeError (NumPy would compute it whole, silently)."""
    if is_dask_array(value):
        raise TypeError(
            f"{name} must be a NumPy array: {function} does not chunk Dask arrays (the layer functions do); "
            f"compute it first, or apply {function} to each block with dask.array.map_blocks"
        )
    return as_float_array(value, name)


def _half(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.dtype.itemsize == 2


def im2col(
    x: np.ndarray,
    kernel_size: int | tuple[int, ...],
    *,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Unroll the sliding windows of a channels-last ``x`` into a column matrix.

    Parameters
    ----------
    x : array_like, shape (N, W, C), (N, H, W, C) or (N, D, H, W, C)
    kernel_size, stride, dilation : int or a tuple of one per spatial axis, >= 1
    padding : int, a tuple of one per spatial axis, or one ``(lo, hi)`` pair per axis; >= 0
    pad_value : float
        Value the padding reads as (0 for convolution, ``-inf`` for max pooling).

    Returns
    -------
    cols : ndarray, shape (N*prod(out), prod(kernel)*C)
        Row ``n*prod(out) + (row-major output position)`` holds that window of image ``n``, flattened in
        ``(*taps, c)`` order, so ``cols @ w.reshape(-1, C_out)`` is a convolution with ``w`` of shape
        ``(*kernel, C, C_out)``. Per axis ``out = (size + lo + hi - d*(k - 1) - 1) // s + 1``.
    """
    arr = _numpy_array(x, "x", "im2col")
    ndim = _rank(arr, "x", "(N, *spatial, C)")
    value = as_real(pad_value, "pad_value")
    geom = _geometry(arr.shape, kernel_size, stride, padding, dilation, ndim)
    n, c = arr.shape[0], arr.shape[-1]
    dtype = HALF if _half(x) else arr.dtype
    cols = np.empty((n * math.prod(geom.out_shape), geom.taps * c), dtype=dtype)
    view = cols.reshape(n, *geom.out_shape, *geom.kernel, c)  # (M, K) -> (N, *out, *kernel, C)
    spatial = (ALL,) * (1 + ndim)
    gather_taps(arr, geom, lambda taps: view[(*spatial, *taps)], 1, value)
    return cols


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: int | tuple[int, ...],
    *,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
) -> np.ndarray:
    """Fold a column matrix back onto the input: the adjoint of :func:`im2col`.

    Parameters
    ----------
    cols : array_like, shape (N*prod(out), prod(kernel)*C)
        Laid out as :func:`im2col` returns it.
    x_shape : (N, *spatial, C)
        Shape of the channels-last input the columns were taken from (1 to 3 spatial axes).
    kernel_size, stride, padding, dilation
        As given to :func:`im2col`.

    Returns
    -------
    dx : ndarray, shape ``x_shape``
        Each entry of ``cols`` added to the input position it was read from (overlapping windows sum); entries
        read from the padding are dropped.
    """
    arr = _numpy_array(cols, "cols", "col2im")
    if arr.ndim != 2:
        raise ValueError(f"cols must be a 2-D array of shape (N*prod(out), prod(kernel)*C), got shape {arr.shape}")
    shape = _x_shape(x_shape, "x_shape", f"a shape (N, *spatial, C) with {_RANKS}, of positive ints (N >= 0)")
    ndim = len(shape) - 2
    geom = _geometry(shape, kernel_size, stride, padding, dilation, ndim)
    n, c = shape[0], shape[-1]
    expected = (n * math.prod(geom.out_shape), geom.taps * c)
    if arr.shape != expected:
        raise ValueError(
            f"cols must have shape (N*prod(out), prod(kernel)*C) = {expected} for x_shape {shape}, got {arr.shape}"
        )
    view = arr.reshape(n, *geom.out_shape, *geom.kernel, c)  # (M, K) -> (N, *out, *kernel, C)
    spatial = (ALL,) * (1 + ndim)
    dx = scatter_taps(lambda taps: view[(*spatial, *taps)], geom, np.empty(shape, dtype=arr.dtype), 1)
    return dx.astype(HALF) if _half(cols) else dx


def unfold(
    x: np.ndarray,
    kernel_size: int | tuple[int, ...],
    dilation: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    stride: int | tuple[int, ...] = 1,
) -> np.ndarray:
    """PyTorch's ``torch.nn.functional.unfold`` (im2col), for 1, 2 or 3 spatial axes.

    Arguments in PyTorch's order. Its gradient is :func:`fold` (and :func:`fold`'s is this).

    Parameters
    ----------
    x : array_like, shape (N, C, W), (N, C, H, W) or (N, C, D, H, W) (channels-first)
    kernel_size, dilation, stride : int or a tuple of one per spatial axis, >= 1
    padding : int or a tuple of one per spatial axis, >= 0 (zeros on both sides)

    Returns
    -------
    cols : ndarray, shape (N, C*prod(kernel), L)
        Row ``c*prod(kernel) + (row-major kernel offset)``, column ``L``'s row-major output position: entry
        ``[n, c*K + t, l]`` is ``x_padded[n, c, *(o*s + t*d)]``. ``L = prod(out)``, per axis ``out = (size + 2*p -
        d*(k - 1) - 1) // s + 1``. Equal to PyTorch's in 2-D.
    """
    arr = _numpy_array(x, "x", "unfold")
    ndim = _rank(arr, "x", "(N, C, *spatial)")
    n, c, *spatial = arr.shape
    geom = _geometry((n, *spatial, c), kernel_size, stride, _symmetric(padding, ndim), dilation, ndim)
    dtype = HALF if _half(x) else arr.dtype
    cols = np.empty((n, c * geom.taps, math.prod(geom.out_shape)), dtype=dtype)
    view = cols.reshape(n, c, *geom.kernel, *geom.out_shape)  # (N, C*K, L) -> (N, C, *kernel, *out)
    gather_taps(arr, geom, lambda taps: view[(ALL, ALL, *taps)], 2, 0.0)
    return cols


def fold(
    cols: np.ndarray,
    output_size: int | tuple[int, ...],
    kernel_size: int | tuple[int, ...],
    dilation: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    stride: int | tuple[int, ...] = 1,
) -> np.ndarray:
    """PyTorch's ``torch.nn.functional.fold`` (col2im), for 1, 2 or 3 spatial axes: the adjoint of :func:`unfold`.

    Parameters
    ----------
    cols : array_like, shape (N, C*prod(kernel), L)
        Laid out as :func:`unfold` returns it.
    output_size : int or a tuple of one per spatial axis
        The spatial size of the result. Its length (1, 2 or 3; an int counts as 2, as in PyTorch, unless
        ``kernel_size`` is a tuple of another length) gives the number of spatial axes.
    kernel_size, dilation, padding, stride
        As given to :func:`unfold`.

    Returns
    -------
    x : ndarray, shape (N, C, *output_size)
        Each entry of ``cols`` added to the position it was read from (overlapping windows sum); entries read
        from the padding are dropped. Equal to PyTorch's in 2-D, up to rounding.
    """
    arr = _numpy_array(cols, "cols", "fold")
    if arr.ndim != 3:
        raise ValueError(f"cols must be a 3-D array of shape (N, C*prod(kernel), L), got shape {arr.shape}")
    ndim = _fold_rank(output_size, kernel_size)
    size = as_tuple(output_size, ndim, "output_size", minimum=1)
    n, rows, length = arr.shape
    kernel = as_tuple(kernel_size, ndim, "kernel_size", minimum=1)
    taps = math.prod(kernel)
    if rows % taps:
        raise ValueError(
            f"cols must have C*prod(kernel_size) rows, a multiple of prod({kernel}) = {taps}, got {rows} rows"
        )
    c = rows // taps
    geom = _geometry((n, *size, c), kernel, stride, _symmetric(padding, ndim), dilation, ndim)
    if length != math.prod(geom.out_shape):
        raise ValueError(
            f"cols must have L = {math.prod(geom.out_shape)} columns, the {geom.out_shape} windows of output_size "
            f"{size}, got {length}"
        )
    view = arr.reshape(n, c, *kernel, *geom.out_shape)  # (N, C*K, L) -> (N, C, *kernel, *out)
    x = scatter_taps(lambda t: view[(ALL, ALL, *t)], geom, np.empty((n, c, *size), dtype=arr.dtype), 2)
    return x.astype(HALF) if _half(cols) else x


def _symmetric(padding: object, ndim: int) -> tuple[int, ...]:
    """unfold/fold's padding: an int or one int per axis (both sides), as PyTorch's."""
    return as_tuple(padding, ndim, "padding", minimum=0)


def _fold_rank(output_size: object, kernel_size: object) -> int:
    """The number of spatial axes of a :func:`fold` call: the length of ``output_size`` (or of ``kernel_size``
    when ``output_size`` is an int), 2 when both are ints."""
    for name, value in (("output_size", output_size), ("kernel_size", kernel_size)):
        if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
            if len(value) not in (1, 2, 3):
                raise ValueError(f"{name} must be an int or a tuple of 1 to 3 ints, got {value!r}")
            return len(value)
    return 2
