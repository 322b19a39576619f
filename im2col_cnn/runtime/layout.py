"""Channels-first <-> channels-last: the engine computes on ``(N, *spatial, C)`` arrays; PyTorch-layout arrays
(``(N, C, *spatial)``: NCW, NCHW, NCDHW) are their transposed views.

Inputs are transposed as views (no copy: the kernels read them tile by tile). Results are allocated directly in
the caller's layout (:func:`new_result`) and the kernels write each tile into their channels-last view, so no
full-size conversion is ever made. Weights are small and converted as copies.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "to_channels_last",
    "new_result",
    "weight_to_last",
    "weight_from_last",
    "caller_layout",
    "empty_channels_last",
    "copy_rows",
    "add_planes",
]


def _last(ndim: int) -> tuple[int, ...]:
    """The axes of an (N, C, *spatial) array in (N, *spatial, C) order."""
    return (0, *range(2, ndim), 1)


def _first(ndim: int) -> tuple[int, ...]:
    """The axes of an (N, *spatial, C) array in (N, C, *spatial) order."""
    return (0, ndim - 1, *range(1, ndim - 1))


def to_channels_last(x: np.ndarray, channels_first: bool) -> np.ndarray:
    """(N, C, *spatial) -> (N, *spatial, C) view when ``channels_first``; ``x`` itself otherwise."""
    return x.transpose(_last(x.ndim)) if channels_first else x


def caller_layout(arr: np.ndarray, channels_first: bool) -> np.ndarray:
    """A channels-last view made by :func:`new_result` (or a channels-last array) -> the caller's layout:
    (N, *spatial, C) -> (N, C, *spatial) when ``channels_first`` (a view), else itself."""
    return arr.transpose(_first(arr.ndim)) if channels_first else arr


def new_result(
    shape: tuple[int, ...], dtype: np.dtype, channels_first: bool, *, zeros: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A new C-contiguous result of channels-last ``shape`` (N, *spatial, C) in the caller's layout, and its
    channels-last view. With ``zeros`` it is zero-filled. Channels-first: the array is (N, C, *spatial)."""
    make = np.zeros if zeros else np.empty
    if channels_first:
        arr = make(tuple(shape[i] for i in _first(len(shape))), dtype=dtype)
        return arr, arr.transpose(_last(arr.ndim))
    arr = make(shape, dtype=dtype)
    return arr, arr


def weight_to_last(w: np.ndarray, channels_first: bool) -> np.ndarray:
    """PyTorch's (O, I, *k) -> (*k, I, O) view when ``channels_first``; ``w`` itself otherwise."""
    return w.transpose(*range(2, w.ndim), 1, 0) if channels_first else w


def weight_from_last(dw: np.ndarray, channels_first: bool) -> np.ndarray:
    """(*k, I, O) -> C-contiguous (O, I, *k) when ``channels_first``; ``dw`` itself otherwise."""
    if not channels_first:
        return dw
    return np.ascontiguousarray(dw.transpose(dw.ndim - 1, dw.ndim - 2, *range(dw.ndim - 2)))


def empty_channels_last(
    shape: tuple[int, ...], dtype: np.dtype, channels_first: bool, buffer: np.ndarray | None = None
) -> np.ndarray:
    """An (N, *spatial, C) array laid out in memory as channels-last, or as channels-first (then a transposed
    view) when ``channels_first``. With ``buffer`` (a flat array of at least the size needed) it is a view into it.
    """
    mem = tuple(shape[i] for i in _first(len(shape))) if channels_first else tuple(shape)
    size = 1
    for s in mem:
        size *= s
    arr = np.empty(mem, dtype=dtype) if buffer is None else buffer[:size].reshape(mem)
    return arr.transpose(_last(arr.ndim)) if channels_first else arr


def _channel_run(src: np.ndarray) -> int | None:
    """How many channels at a time :func:`copy_rows` copies from ``src`` (..., C), or None for all at once.

    A channels-first array seen channels-last has a channel stride of a whole plane. Where that stride is a
    multiple of 1 KiB, a position's channels all map to a few sets of the L1 cache (4 KiB apart: one set), and a
    copy that reads every channel of a position at once evicts its own lines: NumPy's copy of 2 images of (32,
    16, 32, 32) float32 takes 11x a contiguous copy. Read 8 channels at a time (16 where the stride is a multiple
    of 1 KiB only), it takes 3.3x; with strides that do not alias, the plain copy is the faster one (by 1.5-2x).
    Planes of exactly 1 KiB (16x16 float32) fall in 4 sets of an 8-way L1, so 32 channels fit: C3's input tiles,
    (4, 64, 16, 16) float32 into a padded slab, took 0.46 ms warm for the batch against 0.52 by 16 (C3 float32
    NCHW/NHWC, 2 cores: forward 1.135 -> 1.095); at larger odd multiples of 1 KiB (3, 9, 25, 49 KiB) 32 measured
    no better than 16. Measured on an AMD Zen 4 (32 KiB 8-way L1).
    """
    c, stride = src.shape[-1], abs(src.strides[-1])
    run = 8 if stride % 4096 == 0 else 32 if stride == 1024 else 16 if stride % 1024 == 0 else 0
    return run if run and stride >= 1024 and c > run else None


def copies_whole_positions(src: np.ndarray) -> bool:
    """Whether :func:`copy_rows` copies ``src`` (..., C) in one call, every channel of a position at once: its
    channel stride does not alias in the cache (:func:`_channel_run`)."""
    return _channel_run(src) is None


def copy_rows(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src``: ``dst`` a channels-last (..., C) buffer or a box of one, ``src`` a view of any layout,
    typically a block of a channels-first array seen channels-last (read a few channels at a time where its
    planes alias in the cache, :func:`_channel_run`). The same values as ``np.copyto``."""
    run = _channel_run(src)
    if run is None:
        np.copyto(dst, src)
        return
    for c0 in range(0, src.shape[-1], run):
        np.copyto(dst[..., c0 : c0 + run], src[..., c0 : c0 + run])


def add_planes(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst += src``: ``dst`` (N, *spatial, C) a channels-last view of a channels-first array, ``src`` a
    channels-last one. Added in the channels-first order, along ``dst``'s planes: NumPy's own order for these
    two operands runs along the channels and writes a whole plane apart at every step (7-9x slower)."""
    order = _first(dst.ndim)
    planes = dst.transpose(order)
    np.add(planes, src.transpose(order), out=planes)
