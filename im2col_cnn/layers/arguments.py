"""What every layer function does with its arguments before any kernel runs, in 1, 2 or 3 spatial dimensions.

The layer functions of each rank are thin: they name their rank and layout and call the same code here, which
checks the arrays against the ``data_format`` (channels-last ``NWC``/``NHWC``/``NDHWC`` or channels-first
``NCW``/``NCHW``/``NCDHW``), turns them into channels-last views, and words every error after the caller's
arguments. :func:`documented` fills one docstring template per function family with each rank's shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ..runtime.checks import (
    AXIS_NAMES,
    DATA_FORMATS,
    as_float_arrays,
    axes_tuple,
    check_data_format,
    check_dout,
    check_ndim,
)
from ..runtime.layout import to_channels_last, weight_to_last

__all__ = [
    "layer_arrays",
    "layout_hint",
    "same_padding",
    "channels_last_dout",
    "array_layout",
    "documented",
    "rank_names",
]

F = TypeVar("F", bound=Callable[..., Any])


def array_layout(ndim: int, channels_first: bool, c: str = "C", suffix: str = "") -> str:
    """``'(N, H, W, C)'`` (or ``'(N, C, H, W)'``): an activation's layout as text, ``c`` naming its channels and
    ``suffix`` following each spatial axis' name (``'o'``: ``'(N, Ho, Wo, C)'``)."""
    spatial = [a.upper() + suffix for a in AXIS_NAMES[ndim]]
    return f"({', '.join(['N', c, *spatial] if channels_first else ['N', *spatial, c])})"


def weight_layout(ndim: int, channels_first: bool, inner: str, outer: str) -> str:
    """A weight's layout as text: channels-last ``(*k, inner, outer)``, channels-first ``(outer, inner, *k)``."""
    k = axes_tuple(ndim, "k")[1:-1].rstrip(",")
    return f"({outer}, {inner}, {k})" if channels_first else f"({k}, {inner}, {outer})"


def layer_arrays(
    x: object, w: object, data_format: object, ndim: int, w_names: tuple[str, str]
) -> tuple[bool, np.ndarray, np.ndarray]:
    """Check ``data_format`` and the float ``x`` (N, *spatial, C) and ``w`` of an ``ndim``-D layer.

    ``w_names`` are the weight's (inner, outer) channel names, e.g. ``('C_in // groups', 'C_out')``. Returns
    whether the layout is channels-first, ``x`` as an (N, *spatial, C) view and ``w`` as a (*k, inner, outer)
    view.
    """
    channels_first = check_data_format(data_format, ndim, x)
    x, w = as_float_arrays(x, w)
    if x.ndim != ndim + 2:  # the layouts are worded only for the message
        check_ndim(x, "x", array_layout(ndim, channels_first, "C_in"), data_format)  # type: ignore[arg-type]
    if w.ndim != ndim + 2:
        check_ndim(w, "w", weight_layout(ndim, channels_first, *w_names), data_format)  # type: ignore[arg-type]
    if 0 in x.shape[1:]:
        raise ValueError(f"x must not be empty except in the batch dimension, got shape {x.shape}")
    if 0 in w.shape:
        raise ValueError(f"w must not be empty, got shape {w.shape}")
    return channels_first, to_channels_last(x, channels_first), weight_to_last(w, channels_first)


def layout_hint(
    channels_first: bool, x_shape: tuple[int, ...], w_shape: tuple[int, ...], w_in_axes: tuple[int, int]
) -> str:
    """A hint for a channel-count error: the arrays (shapes as given) would fit the other layout.

    ``w_in_axes`` is the axis of w's per-group input channels in the channels-first and in the channels-last
    weight layout. Returns ``''`` when the other layout does not fit either.
    """
    ndim = len(x_shape) - 2
    last, first = DATA_FORMATS[ndim]
    c_in = x_shape[-1] if channels_first else x_shape[1]
    c_in_w = w_shape[w_in_axes[1] if channels_first else w_in_axes[0]]
    if c_in_w < 1 or c_in % c_in_w:
        return ""
    if not channels_first:
        return (
            f"; x {x_shape} and w {w_shape} look like PyTorch's {first} layout ({array_layout(ndim, True)} and its "
            f"weight layout): pass data_format='{first}'"
        )
    return f"; x {x_shape} and w {w_shape} look like {last} arrays: leave data_format at '{last}'"


def same_padding(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """PyTorch's padding='same' at stride 1: total ``d*(k-1)`` per axis, the odd one at the end."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    return tuple((t // 2, t - t // 2) for t in totals)


def channels_last_dout(
    dout: object, n: int, out_shape: tuple[int, ...], c_out: int, dtype: np.dtype, channels_first: bool
) -> np.ndarray:
    """``dout`` checked against the forward output's shape, as an (N, *out, C_out) array (a view) of ``dtype``."""
    shape = (n, c_out, *out_shape) if channels_first else (n, *out_shape, c_out)
    return to_channels_last(check_dout(dout, shape, dtype), channels_first)


def rank_names(ndim: int) -> dict[str, str]:
    """The words a docstring template uses for an ``ndim``-D layer: shapes, layouts, axes, PyTorch's function."""
    last, first = DATA_FORMATS[ndim]
    return {
        "n": str(ndim),
        "last": last,
        "first": first,
        "x": array_layout(ndim, False, "C_in"),
        "x_first": array_layout(ndim, True, "C_in"),
        "xc": array_layout(ndim, False),
        "xc_first": array_layout(ndim, True),
        "out": array_layout(ndim, False, "C_out", "o"),
        "out_first": array_layout(ndim, True, "C_out", "o"),
        "outc": array_layout(ndim, False, "C", "o"),
        "outc_first": array_layout(ndim, True, "C", "o"),
        "w": weight_layout(ndim, False, "C_in // groups", "C_out"),
        "w_first": weight_layout(ndim, True, "C_in // groups", "C_out"),
        "wt": weight_layout(ndim, False, "C_out // groups", "C_in"),
        "wt_first": weight_layout(ndim, True, "C_out // groups", "C_in"),
        "axes": axes_tuple(ndim),
        "kaxes": axes_tuple(ndim, "k"),
        "saxes": axes_tuple(ndim, "s"),
        "daxes": axes_tuple(ndim, "d"),
        "paxes": axes_tuple(ndim, "p"),
        "sides": "((top, bottom), (left, right))" if ndim == 2 else f"{ndim} (lo, hi) pairs",
        "bias": f"(1, {', '.join(['1'] * ndim)}, C_out)",
    }


def documented(template: str, ndim: int) -> Callable[[F], F]:
    """Decorator: the function's docstring is ``template`` filled with :func:`rank_names` of ``ndim``."""

    def decorate(fn: F) -> F:
        fn.__doc__ = template.format(**rank_names(ndim))
        return fn

    return decorate
