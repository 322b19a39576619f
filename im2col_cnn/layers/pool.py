"""Max and average pooling, forward and backward (PyTorch ``max_pool{1,2,3}d``/``avg_pool{1,2,3}d`` semantics),
channels-last or channels-first: the public functions of each rank, thin calls of
:mod:`~im2col_cnn.layers.pooling`."""

from __future__ import annotations

import numpy as np

from ..runtime.batch_chunks import batch_chunked
from ..runtime.half_precision import float16_io
from .arguments import documented
from .pooling import PoolCache, pool_backward, pool_forward

__all__ = [
    "PoolCache",
    "max_pool1d_forward",
    "max_pool1d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "max_pool3d_forward",
    "max_pool3d_backward",
    "avg_pool1d_forward",
    "avg_pool1d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool3d_forward",
    "avg_pool3d_backward",
]


MAX_DOC = """Max pooling (PyTorch ``max_pool{n}d`` semantics).

    ``stride`` to ``ceil_mode`` may be given positionally, in ``torch.nn.functional.max_pool{n}d``'s order.

    Parameters
    ----------
    x : array_like, shape {xc}, or {xc_first} with ``data_format='{first}'``
    kernel_size : int or {kaxes}, >= 1
    stride : int or {saxes}, >= 1, optional
        Defaults to ``kernel_size``.
    padding : int or {paxes}, at most half of ``kernel_size`` on each axis
        Implicit ``-inf`` padding: it never wins a maximum.
    dilation : int or {daxes}, >= 1
        Spacing of the window's taps; a window spans ``(k - 1) * d + 1`` positions.
    ceil_mode : bool
        Round the output size up: a last window that runs past the end of an axis is kept when it starts inside
        the input or the leading padding.
    data_format : '{last}' or '{first}'

    Returns
    -------
    out : ndarray, shape {outc} (or {outc_first})
        Per axis ``floor((size + 2*p - d*(k - 1) - 1) / s) + 1`` positions (``ceil`` with ``ceil_mode``); float
        dtype of ``x``.
    cache : PoolCache
        For :func:`max_pool{n}d_backward`; ``cache.indices`` is the argmax as PyTorch's ``return_indices``. It
        keeps a reference to ``x`` (no copy, as PyTorch's saved tensors) and each window's winner, one byte per
        output for kernels of up to 255 offsets; it shares no memory with ``out``, which the caller may change.
    """

MAX_BACKWARD_DOC = """Gradient of :func:`max_pool{n}d_forward`: each window's ``dout`` goes to its maximum.

    Where several positions of a window tie at the maximum, the first one in row-major window order gets it; a
    window holding NaN sends it to its last NaN (both as PyTorch does). Overlapping windows add up.

    Parameters
    ----------
    dout : array_like, shape of the forward output {outc} (or {outc_first})
    cache : PoolCache from :func:`max_pool{n}d_forward`

    Returns
    -------
    dx : ndarray, shape and layout of ``x``
    """

AVG_DOC = """Average pooling (PyTorch ``avg_pool{n}d`` semantics).

    ``stride`` and the later options may be given positionally, in ``torch.nn.functional.avg_pool{n}d``'s order.

    Parameters
    ----------
    x : array_like, shape {xc}, or {xc_first} with ``data_format='{first}'``
    kernel_size : int or {kaxes}, >= 1
    stride : int or {saxes}, >= 1, optional
        Defaults to ``kernel_size``.
    padding : int or {paxes}, at most half of ``kernel_size`` on each axis
        Implicit zero padding.
    ceil_mode : bool
        Round the output size up, as for :func:`max_pool{n}d_forward`.
    count_include_pad : bool
        Whether the padding counts in a window's divisor. Either way a window that runs past the padded input
        (ceil_mode) counts only what lies inside it, as in PyTorch.{override}
    data_format : '{last}' or '{first}'

    Returns
    -------
    out : ndarray, shape {outc} (or {outc_first})
    cache : PoolCache
        For :func:`avg_pool{n}d_backward`; it keeps a reference to ``x`` (no copy) and shares no memory with
        ``out``.
    """

AVG_BACKWARD_DOC = """Gradient of :func:`avg_pool{n}d_forward`: each window spreads ``dout / divisor`` over its
    positions.

    Parameters
    ----------
    dout : array_like, shape of the forward output {outc} (or {outc_first})
    cache : PoolCache from :func:`avg_pool{n}d_forward`

    Returns
    -------
    dx : ndarray, shape and layout of ``x``
    """

_OVERRIDE = """
    divisor_override : int, optional
        Nonzero; if given, every window divides by it."""


def _avg_doc(override: bool) -> str:
    return AVG_DOC.replace("{override}", _OVERRIDE if override else "")


@batch_chunked
@float16_io("forward")
@documented(MAX_DOC, 1)
def max_pool1d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    dilation: int | tuple[int] = 1,
    ceil_mode: bool = False,
    *,
    data_format: str = "NWC",
) -> tuple[np.ndarray, PoolCache]:
    return pool_forward(
        x, kernel_size, stride, padding, "max", dilation=dilation, ceil_mode=ceil_mode, data_format=data_format, ndim=1
    )


@batch_chunked
@float16_io("forward")
@documented(MAX_DOC, 2)
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
    return pool_forward(
        x, kernel_size, stride, padding, "max", dilation=dilation, ceil_mode=ceil_mode, data_format=data_format, ndim=2
    )


@batch_chunked
@float16_io("forward")
@documented(MAX_DOC, 3)
def max_pool3d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    padding: int | tuple[int, int, int] = 0,
    dilation: int | tuple[int, int, int] = 1,
    ceil_mode: bool = False,
    *,
    data_format: str = "NDHWC",
) -> tuple[np.ndarray, PoolCache]:
    return pool_forward(
        x, kernel_size, stride, padding, "max", dilation=dilation, ceil_mode=ceil_mode, data_format=data_format, ndim=3
    )


@batch_chunked
@float16_io("backward")
@documented(MAX_BACKWARD_DOC, 1)
def max_pool1d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    return pool_backward(dout, cache, "max", 1)


@batch_chunked
@float16_io("backward")
@documented(MAX_BACKWARD_DOC, 2)
def max_pool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    return pool_backward(dout, cache, "max", 2)


@batch_chunked
@float16_io("backward")
@documented(MAX_BACKWARD_DOC, 3)
def max_pool3d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    return pool_backward(dout, cache, "max", 3)


@batch_chunked
@float16_io("forward")
@documented(_avg_doc(False), 1)
def avg_pool1d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    data_format: str = "NWC",
) -> tuple[np.ndarray, PoolCache]:
    return pool_forward(
        x,
        kernel_size,
        stride,
        padding,
        "avg",
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        data_format=data_format,
        ndim=1,
    )


@batch_chunked
@float16_io("forward")
@documented(_avg_doc(True), 2)
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
        ndim=2,
    )


@batch_chunked
@float16_io("forward")
@documented(_avg_doc(True), 3)
def avg_pool3d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    padding: int | tuple[int, int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    data_format: str = "NDHWC",
) -> tuple[np.ndarray, PoolCache]:
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
        ndim=3,
    )


@batch_chunked
@float16_io("backward")
@documented(AVG_BACKWARD_DOC, 1)
def avg_pool1d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    return pool_backward(dout, cache, "avg", 1)


@batch_chunked
@float16_io("backward")
@documented(AVG_BACKWARD_DOC, 2)
def avg_pool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    return pool_backward(dout, cache, "avg", 2)


@batch_chunked
@float16_io("backward")
@documented(AVG_BACKWARD_DOC, 3)
def avg_pool3d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    return pool_backward(dout, cache, "avg", 3)
