"""Plain-loop reference for unfold and its adjoint fold (PyTorch's torch.nn.functional.unfold / fold) over 1-3 axes.

Channels-first only, as PyTorch: x (N, C, *spatial) with 1, 2 or 3 spatial axes, and the columns
(N, C * prod(k), L). Row ``c * prod(k) + j`` holds channel c at kernel offset j (the offsets in row-major order);
column ``l`` is the l-th output position (row-major). Index map, per spatial axis ``o*s + i*d`` in the
zero-padded input: ``cols[n, c*K + ravel(i, k), ravel(o, out)] = xpad[n, c, *(o*s + i*d)]``. PyTorch's own
unfold / fold take 2 spatial axes only; the hyperparameters are positional in PyTorch's order here too.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float, conv_out_size
from ._nd import IntOrTuple, per_axis, window_point

__all__ = ["fold", "unfold"]


def _geometry(
    spatial: tuple[int, ...], kernel_size: IntOrTuple, dilation: IntOrTuple, padding: IntOrTuple, stride: IntOrTuple
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Per axis: kernel, dilation, padding (both sides), stride and the number of windows ``out``."""
    ndim = len(spatial)
    kernel = per_axis(kernel_size, ndim, "kernel_size", 1)
    dilation_ = per_axis(dilation, ndim, "dilation", 1)
    pads = per_axis(padding, ndim, "padding", 0)
    stride_ = per_axis(stride, ndim, "stride", 1)
    geometry = zip(spatial, kernel, stride_, pads, dilation_, strict=True)
    out_sizes = tuple(conv_out_size(size, k, s, (p, p), d) for size, k, s, p, d in geometry)
    return kernel, dilation_, pads, stride_, out_sizes


def unfold(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    dilation: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    stride: IntOrTuple = 1,
) -> np.ndarray:
    """Every (C, *k) window of the zero-padded input as one column, PyTorch's unfold for 1, 2 or 3 spatial axes.

    Parameters
    ----------
    x : (N, C, *spatial), 1 to 3 spatial axes
    kernel_size, dilation, stride : int or one int per spatial axis, >= 1
    padding : int or one int per spatial axis, >= 0 (zeros on both sides)

    Returns
    -------
    cols : (N, C * prod(k), L), ``L = prod(out)``, per axis ``out = (size + 2*p - d*(k - 1) - 1) // s + 1``;
        rows channel-major then kernel offset (row-major), columns the output positions (row-major)
    """
    x = as_float(x)
    if not 3 <= x.ndim <= 5:
        raise ValueError(f"x must be (N, C, *spatial) with 1 to 3 spatial axes, got shape {x.shape}")
    n_batch, channels, *spatial = x.shape
    kernel, dilation_, pads, stride_, out_sizes = _geometry(tuple(spatial), kernel_size, dilation, padding, stride)
    n_offsets = int(np.prod(kernel))

    x_pad = np.pad(x, ((0, 0), (0, 0), *((p, p) for p in pads)), mode="constant")
    cols = np.zeros((n_batch, channels * n_offsets, int(np.prod(out_sizes))), dtype=x.dtype)
    for n in range(n_batch):
        for l_, position in enumerate(np.ndindex(*out_sizes)):  # the output positions, row-major
            for c in range(channels):
                for j, offset in enumerate(np.ndindex(*kernel)):  # the kernel offsets, row-major
                    cols[n, c * n_offsets + j, l_] = x_pad[(n, c, *window_point(position, offset, stride_, dilation_))]
    return cols


def fold(
    cols: ArrayLike,
    output_size: IntOrTuple,
    kernel_size: IntOrTuple,
    dilation: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    stride: IntOrTuple = 1,
) -> np.ndarray:
    """Adjoint of unfold: add every column entry back to the input position it was read from (PyTorch's fold).

    The rank is the length of the first of output_size, kernel_size, dilation, padding, stride that is a tuple;
    2 when all are ints (PyTorch's fold is 2-D).

    Parameters
    ----------
    cols : (N, C * prod(k), L) with ``L = prod(out)`` (see ``unfold``)
    output_size : the spatial size of the result, int or one int per spatial axis
    kernel_size, dilation, stride : int or one int per spatial axis, >= 1
    padding : int or one int per spatial axis, >= 0 (entries that land in the padding are dropped)

    Returns
    -------
    x : (N, C, *output_size); overlapping windows add up
    """
    cols = as_float(cols)
    if cols.ndim != 3:
        raise ValueError(f"cols must be (N, C * prod(kernel_size), L), got shape {cols.shape}")
    given = (output_size, kernel_size, dilation, padding, stride)
    ndim = next((len(v) for v in given if np.ndim(v) == 1), 2)  # type: ignore[arg-type]
    if not 1 <= ndim <= 3:
        raise ValueError(f"fold takes 1 to 3 spatial axes, got {ndim}")
    spatial = per_axis(output_size, ndim, "output_size", 1)
    kernel, dilation_, pads, stride_, out_sizes = _geometry(spatial, kernel_size, dilation, padding, stride)
    n_offsets = int(np.prod(kernel))
    n_batch, rows, n_windows = cols.shape
    if rows % n_offsets:
        raise ValueError(f"cols has {rows} rows, not a multiple of prod(kernel_size) = {n_offsets}")
    if n_windows != int(np.prod(out_sizes)):
        raise ValueError(f"cols has {n_windows} columns, expected {int(np.prod(out_sizes))} windows {out_sizes}")
    channels = rows // n_offsets

    x_pad = np.zeros((n_batch, channels, *(size + 2 * p for size, p in zip(spatial, pads, strict=True))), cols.dtype)
    for n in range(n_batch):
        for l_, position in enumerate(np.ndindex(*out_sizes)):
            for c in range(channels):
                for j, offset in enumerate(np.ndindex(*kernel)):
                    x_pad[(n, c, *window_point(position, offset, stride_, dilation_))] += cols[n, c * n_offsets + j, l_]
    inside = tuple(slice(p, p + size) for p, size in zip(pads, spatial, strict=True))
    return x_pad[(slice(None), slice(None), *inside)].copy()
