"""Helpers shared by the rank-generic reference loops (1, 2 or 3 spatial axes): layouts, per-axis tuples, padding.

The N-d loops work channels-last: an activation is (N, *spatial, C), a weight (*k, b, a). A channels-first call
(PyTorch's layouts: activations (N, C, *spatial), weights (a, b, *k)) is transposed on the way in and its results
back on the way out. The rank of a layer call follows from its data_format's name (``FORMATS``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._common import as_float

IntOrTuple = int | tuple[int, ...]
SidePads = tuple[tuple[int, int], ...]  # per spatial axis: (before, after)
# conv padding: int, one int per axis, one (before, after) pair per axis, 'valid' or 'same'
ConvPaddingNd = int | tuple[int, ...] | tuple[tuple[int, int], ...] | str
# rank -> (channels-last name, channels-first name)
FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def rank_of(data_format: str) -> int:
    """The number of spatial axes of ``data_format`` (one of the six names in FORMATS); ValueError otherwise."""
    for ndim, names in FORMATS.items():
        if data_format in names:
            return ndim
    names = ", ".join(repr(name) for pair in FORMATS.values() for name in pair)
    raise ValueError(f"data_format must be one of {names}; got {data_format!r}")


def check_format(data_format: str, ndim: int) -> str:
    """Return ``data_format`` if it is one of the two names for ``ndim`` spatial axes; ValueError otherwise."""
    last, first = FORMATS[ndim]
    if data_format not in (last, first):
        raise ValueError(f"data_format must be {last!r} or {first!r}, got {data_format!r}")
    return data_format


def check_cache_rank(data_format: str, ndim: int, function: str) -> None:
    """ValueError unless a cache's ``data_format`` is one of ``ndim``'s (a cache handed to the wrong rank)."""
    if data_format not in FORMATS[ndim]:
        raise ValueError(f"{function} needs the cache of a {ndim}-D forward call, got one in {data_format!r}")


def is_channels_last(data_format: str) -> bool:
    """Whether ``data_format`` puts the channels last (NWC, NHWC, NDHWC)."""
    return data_format == FORMATS[rank_of(data_format)][0]


def check_rank(a: np.ndarray, ndim: int, data_format: str, name: str = "x") -> None:
    """ValueError unless ``a`` has ``ndim + 2`` axes (an activation or weight of an ``ndim``-D layer)."""
    if a.ndim != ndim + 2:
        raise ValueError(f"{name} must have {ndim + 2} dimensions for data_format {data_format!r}, got {a.shape}")


def per_axis(value: IntOrTuple | list[int] | np.ndarray, ndim: int, name: str, minimum: int) -> tuple[int, ...]:
    """``value`` as ``ndim`` ints (an int ``v`` becomes ``(v,) * ndim``), each at least ``minimum``; else ValueError."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        result = (int(arr),) * ndim
    elif arr.shape == (ndim,):
        result = tuple(int(v) for v in arr)
    else:
        raise ValueError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")
    if min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return result


def conv_pads_nd(
    padding: ConvPaddingNd, kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> SidePads:
    """Resolve a convolution's ``padding`` into one ``(before, after)`` pair per spatial axis.

    int ``p``: p on both sides of every axis; ``ndim`` ints: symmetric per axis; ``ndim`` pairs: taken as is;
    'valid': none; 'same' (stride 1 only): total ``d*(k - 1)`` per axis, ``total // 2`` before and the rest
    (one more when odd) after, as PyTorch does.
    """
    ndim = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            return tuple((total // 2, total - total // 2) for total in totals)
    else:
        arr = np.asarray(padding)
        pads = None
        if arr.ndim == 0:
            pads = ((int(arr), int(arr)),) * ndim
        elif arr.shape == (ndim,):
            pads = tuple((int(p), int(p)) for p in arr)
        elif arr.shape == (ndim, 2):
            pads = tuple((int(before), int(after)) for before, after in arr)
        if pads is not None:
            if min(min(pair) for pair in pads) < 0:
                raise ValueError(f"padding must be >= 0, got {padding!r}")
            return pads
    raise ValueError(
        f"padding must be an int, {ndim} ints, {ndim} (before, after) pairs, 'valid' or 'same'; got {padding!r}"
    )


def pad_spatial(x: np.ndarray, pads: SidePads, value: float = 0.0) -> np.ndarray:
    """Pad the spatial axes of a channels-last (N, *spatial, C) array by ``pads`` with the constant ``value``."""
    return np.pad(x, ((0, 0), *pads, (0, 0)), mode="constant", constant_values=value)


def crop_spatial(x_pad: np.ndarray, pads: SidePads, spatial: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``pad_spatial``: the (N, *spatial, C) part of a padded channels-last array (a view)."""
    inside = tuple(slice(before, before + size) for (before, _), size in zip(pads, spatial, strict=True))
    return x_pad[(slice(None), *inside, slice(None))]


def window_slices(
    position: tuple[int, ...], stride: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[slice, ...]:
    """Per spatial axis, the slice of the padded input a window reads: k positions, d apart, from ``o*s``."""
    return tuple(
        slice(o * s, o * s + d * (k - 1) + 1, d) for o, s, k, d in zip(position, stride, kernel, dilation, strict=True)
    )


def window_point(
    position: tuple[int, ...], offset: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[int, ...]:
    """The padded-input position that kernel ``offset`` of window ``position`` reads: ``o*s + i*d`` per axis."""
    return tuple(o * s + i * d for o, i, s, d in zip(position, offset, stride, dilation, strict=True))


# Layouts. Activations: channels-first (N, C, *spatial) <-> channels-last (N, *spatial, C). Weights: PyTorch's
# (a, b, *k) <-> (*k, b, a) -- conv (C_out, C_in // groups, *k), transposed conv (C_in, C_out // groups, *k).


def to_last(x: np.ndarray, data_format: str) -> np.ndarray:
    """An activation in ``data_format`` as channels-last (N, *spatial, C) (a transposed view if channels-first)."""
    return x if is_channels_last(data_format) else np.moveaxis(x, 1, -1)


def from_last(x: np.ndarray, data_format: str) -> np.ndarray:
    """A channels-last (N, *spatial, C) activation in ``data_format`` (a contiguous copy if channels-first)."""
    return x if is_channels_last(data_format) else np.ascontiguousarray(np.moveaxis(x, -1, 1))


def weight_to_last(w: np.ndarray, data_format: str) -> np.ndarray:
    """A weight in ``data_format``'s layout as (*k, b, a): channels-first (a, b, *k) is transposed (a view)."""
    return w if is_channels_last(data_format) else w.transpose(*range(2, w.ndim), 1, 0)


def weight_from_last(w: np.ndarray, data_format: str) -> np.ndarray:
    """Inverse of ``weight_to_last``: (*k, b, a) -> (a, b, *k) for a channels-first format (a contiguous copy)."""
    if is_channels_last(data_format):
        return w
    ndim = w.ndim - 2
    return np.ascontiguousarray(w.transpose(ndim + 1, ndim, *range(ndim)))


def check_dout_nd(
    dout: ArrayLike, last_shape: tuple[int, ...], dtype: np.dtype, data_format: str, name: str = "dout"
) -> np.ndarray:
    """``dout`` as a channels-last array of ``dtype``, after checking it has the forward output's shape.

    ``last_shape`` is the forward output's (N, *spatial, C); the check is on the shape in ``data_format``'s
    layout ((N, C, *spatial) if channels-first), with the engine's message: a ValueError naming ``name``.
    """
    arr = as_float(dout)
    last_shape = tuple(int(s) for s in last_shape)
    shape = last_shape if is_channels_last(data_format) else (last_shape[0], last_shape[-1], *last_shape[1:-1])
    if arr.shape != shape:
        raise ValueError(f"{name} must have the forward output's shape {shape}, got {arr.shape}")
    return to_last(arr.astype(dtype, copy=False), data_format)
