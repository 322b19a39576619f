"""The seed notebook's layer functions, as drop-in replacements running on the engine.

The seed notebook is the loop code this project started from: a variant of the deeplearning.ai assignment
"Convolutional Neural Networks: Step by Step" (its test inputs and printed numbers are the assignment's), with
its own names. Same names, signatures and numbers as that notebook (``padding``,
``conv_slice``, ``forward``, ``backward``, ``pool_backward``, ``max_mask``, ``distribute_value``), keeping its
choices -- pooling pads with zeros, and a max window's gradient goes to every position tied at its maximum --
and fixing its defects: ``backward`` is right for ``pad=0`` and ``pool_backward`` honours padding.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .layers.conv import conv2d_backward, conv2d_forward, prepare_conv
from .layers.pooling import pool_backward as _pool_backward
from .layers.pooling import pool_forward as _pool_forward
from .runtime.checks import MAX_INT, as_float_array, as_int, as_real, as_tuple, check_choice, check_ndim
from .runtime.half_precision import HALF, all_half

__all__ = [
    "ConvLayerCache",
    "PoolLayerCache",
    "padding",
    "conv_slice",
    "forward",
    "backward",
    "pool_backward",
    "max_mask",
    "distribute_value",
]

MAX_ELEMENTS = MAX_INT // 16  # more elements than any array can hold (as the engine's geometry)
_PAD_WIDTHS = {1: 1, 2: 2, 3: 2, 4: 2}  # dims -> how many spatial axes get padded
_FORWARD_MODES = {"conv": "conv", "maxpool": "max", "avepool": "avg"}
_BACKWARD_MODES = {"max": "max", "average": "avg"}


class ConvLayerCache(NamedTuple):
    """The notebook's conv cache ``(X, W, b, pad, stride)``; ``cache[0]`` is ``X``."""

    X: object
    W: object
    b: object
    pad: object
    stride: object


class PoolLayerCache(NamedTuple):
    """The notebook's pool cache ``(X, f, stride)`` plus the ``pad`` it forgot and the forward ``mode``
    (``'maxpool'`` or ``'avepool'``; None in a hand-built cache); ``cache[0]`` is ``X``, kept by reference."""

    X: object
    f: object
    stride: object
    pad: object = 0
    mode: str | None = None


def padding(X: object, pad: int = 1, dims: int = 3, const: float = 0) -> np.ndarray:
    """Pad a vector (dims=1), matrix (2), image (3: H, W, C) or batch (4: N, H, W, C) with ``const``.

    Only the spatial axes are padded, by ``pad`` on each side; the dtype is kept.
    """
    what = "1 (vector), 2 (matrix), 3 (image) or 4 (batch)"
    dims = as_int(dims, "dims", 1, what)
    if dims not in _PAD_WIDTHS:
        raise ValueError(f"dims must be {what}, got {dims!r}")
    const = as_real(const, "const")
    arr = np.asarray(X)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # results are always in native byte order
    if arr.ndim != dims:
        raise ValueError(f"X must be a {dims}-D array for dims={dims}, got shape {arr.shape}")
    p = as_int(pad, "pad", 0, "an int >= 0")
    first = 1 if dims == 4 else 0
    widths = [(0, 0)] * dims
    for axis in range(first, first + _PAD_WIDTHS[dims]):
        widths[axis] = (p, p)
    return np.pad(arr, widths, mode="constant", constant_values=const)


def conv_slice(slice: object, W: object, b: object) -> np.floating:  # noqa: A002 - the notebook's name
    """One window of a convolution: ``sum(slice * W) + b`` for a slice and weights of the same shape.

    The result has the dtype of ``slice * W`` (float32 stays float32); ``b`` never widens it.
    """
    a = as_float_array(slice, "slice")
    w = as_float_array(W, "W")
    if a.shape != w.shape:
        raise ValueError(f"slice and W must have the same shape, got {a.shape} and {w.shape}")
    bias = as_float_array(b, "b")
    if bias.size != 1:
        raise ValueError(f"b must be a single value, got shape {bias.shape}")
    total = np.sum(a * w)
    # b as a scalar of the result's dtype: NumPy 1.x would widen a float32 sum plus a Python float to float64
    return total + total.dtype.type(bias.reshape(())[()])


def forward(
    X: object, W: object, b: object, pad: int, stride: int, f: int | None, mode: str = "conv"
) -> tuple[np.ndarray, ConvLayerCache | PoolLayerCache]:
    """Forward pass of a conv (``mode='conv'``), max-pool (``'maxpool'``) or average-pool (``'avepool'``) layer.

    Parameters
    ----------
    X : array_like, shape (m, H, W, C)
    W : array_like, shape (f, f, C, C_out)
        Conv weights; ignored when pooling.
    b : array_like, shape (1, 1, 1, C_out)
        Conv bias; ignored when pooling.
    pad, stride : int
        Zero padding on each side (pooling pads with zeros too) and step.
    f : int or None
        Pooling window size. For conv the window is W's: ``f`` may be None or W's size, anything else is a
        ``ValueError``.

    Returns
    -------
    Z : ndarray, shape (m, Ho, Wo, C_out or C)
        ``Ho = (H + 2*pad - f) // stride + 1``.
    cache : ConvLayerCache ``(X, W, b, pad, stride)`` or PoolLayerCache ``(X, f, stride, pad, mode)``
        Both keep a reference to ``X`` (and ``W``, ``b``), not a copy: changing them in place before
        :func:`backward` changes the gradients it returns.
    """
    kind = _FORWARD_MODES[check_choice(mode, "mode", list(_FORWARD_MODES))]
    pads = as_tuple(pad, 2, "pad", minimum=0)
    steps = as_tuple(stride, 2, "stride", minimum=1)
    X = _array(X, "X", "(m, H, W, C)")
    if kind == "conv":
        W = _array(W, "W", "(f, f, C, C_out)")
        if f is not None:
            _check_window(f, W)
        _check_sizes(X, pad, pads, _kernel(W), "W's window")
        Z, _ = conv2d_forward(X, W, b, stride=steps, padding=pads)
        return Z, ConvLayerCache(X, W, b, pad, stride)
    window = as_tuple(f, 2, "f", minimum=1)
    _check_sizes(X, pad, pads, window, "f", f)
    Z, _ = _pool_forward(_zero_pad(X, pads), window, steps, 0, kind)
    return (Z.astype(HALF) if all_half(X) else Z), PoolLayerCache(X, f, stride, pad, mode)


def _array(value: object, name: str, shape: str | None = None) -> np.ndarray:
    """``value`` as a float ndarray (see :func:`~im2col_cnn.runtime.checks.as_float_array`; float16 is kept as it
    is), of the notebook's 4-D ``shape`` where given; else a ``ValueError``/``TypeError`` naming ``name``."""
    half = isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.dtype.itemsize == 2
    arr = value if half else as_float_array(value, name)
    if shape is not None:
        check_ndim(arr, name, shape)
    return arr


def _kernel(W: object) -> tuple[int, int] | None:
    """W's (fh, fw) window where W is a 4-D array (else None: the engine names what is wrong with W)."""
    shape = np.shape(W) if isinstance(W, np.ndarray) else None
    return (shape[0], shape[1]) if shape is not None and len(shape) == 4 else None


def _check_sizes(
    X: object, pad: object, pads: tuple[int, ...], window: tuple[int, ...] | None, name: str, shown: object = None
) -> None:
    """``ValueError`` naming ``pad`` when the zero-padded ``X`` would be too large for memory, and naming the
    window's argument ``name`` (``f``, or ``W's window``) when the window does not fit in the padded ``X``;
    ``shown`` is the caller's value of that argument (default: the window)."""
    shape = np.shape(X) if isinstance(X, np.ndarray) else None
    if shape is None or len(shape) != 4:
        return  # the engine's own checks name what is wrong with X
    m, h, w, c = shape
    padded = (h + 2 * pads[0], w + 2 * pads[1])
    if max(m, 1) * padded[0] * padded[1] * max(c, 1) > MAX_ELEMENTS:
        raise ValueError(f"pad must be small enough for the padded X {shape} to fit in memory, got {pad!r}")
    if window is not None and (window[0] > padded[0] or window[1] > padded[1]):
        raise ValueError(
            f"{name} must be at most the padded input {padded} (X {(h, w)} with pad={pad!r}), "
            f"got {window if shown is None else shown!r}"
        )


def _check_window(f: object, W: object) -> None:
    """``ValueError`` unless the conv window ``f`` (an int or (fh, fw)) is W's (fh, fw, C, C_out) window."""
    window = as_tuple(f, 2, "f", minimum=1)
    w = as_float_array(W, "w")
    if w.ndim == 4 and window != w.shape[:2]:
        raise ValueError(f"f must be None or the window of W {w.shape[:2]} for mode='conv', got f={f!r}")


def backward(dZ: object, cache: ConvLayerCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a conv layer: ``dX`` (m, H, W, C), ``dW`` like W, ``db`` (1, 1, 1, C_out)."""
    if not isinstance(cache, tuple) or len(cache) != 5:
        raise TypeError("cache must be the conv cache (X, W, b, pad, stride) returned by forward(mode='conv')")
    X, W, b, pad, stride = cache
    X, W = _array(X, "X", "(m, H, W, C)"), _array(W, "W", "(f, f, C, C_out)")
    dZ = _array(dZ, "dZ")  # its shape is checked against the forward output's below
    pads = as_tuple(pad, 2, "pad", minimum=0)
    _check_sizes(X, pad, pads, _kernel(W), "W's window")
    conv_cache, _ = prepare_conv(X, W, b, as_tuple(stride, 2, "stride", minimum=1), pads)
    if all_half(X, W, b):  # as forward(): float16 layers are computed in float32 and answer in float16
        conv_cache = conv_cache._replace(io_dtype=HALF)
    expected = (conv_cache.x.shape[0], *conv_cache.geom.out_shape, conv_cache.w.shape[-1])
    _check_gradient(dZ, "dZ", expected, pad, stride)
    dX, dW, db = conv2d_backward(dZ, conv_cache)
    return dX, dW, db.reshape(1, 1, 1, -1)


def pool_backward(dA: object, cache: PoolLayerCache | tuple, mode: str = "max") -> np.ndarray:
    """Gradient of a pooling layer with respect to its input X, shape (m, H, W, C).

    ``mode='max'`` sends each window's gradient to every position tied at the window's maximum (padding
    included, then cropped); it needs a max-pool cache, so a cache made by ``forward(mode='avepool')`` is a
    ``ValueError``. ``mode='average'`` spreads it evenly over the ``f*f`` window; it depends only on the window
    geometry, so it takes any pool cache (the notebook's own test takes it from a max-pool cache).
    """
    kind = _BACKWARD_MODES[check_choice(mode, "mode", list(_BACKWARD_MODES))]
    if not isinstance(cache, tuple) or len(cache) not in (3, 4, 5):
        raise TypeError("cache must be the pool cache (X, f, stride[, pad]) returned by forward(mode='maxpool')")
    X, f, stride, pad, made_by = PoolLayerCache(*cache)
    if kind == "max" and made_by == "avepool":
        raise ValueError(
            "mode must be 'average' for a cache made by forward(mode='avepool'), got mode='max' "
            "(a max-pool gradient needs a max-pool layer)"
        )
    ph, pw = as_tuple(pad, 2, "pad", minimum=0)
    window = as_tuple(f, 2, "f", minimum=1)
    X, dA = _array(X, "X", "(m, H, W, C)"), _array(dA, "dA")
    _check_sizes(X, pad, (ph, pw), window, "f", f)
    xp = _zero_pad(X, (ph, pw))
    _, pool_cache = _pool_forward(xp, window, as_tuple(stride, 2, "stride", minimum=1), 0, kind, ties="all")
    expected = (xp.shape[0], *pool_cache.geom.out_shape, xp.shape[-1])
    _check_gradient(dA, "dA", expected, pad, stride)
    dxp = _pool_backward(dA, pool_cache, kind)  # (m, H + 2ph, W + 2pw, C), a fresh array
    h, w = xp.shape[1] - 2 * ph, xp.shape[2] - 2 * pw
    dx = np.ascontiguousarray(dxp[:, ph : ph + h, pw : pw + w])
    return dx.astype(HALF) if all_half(X) else dx


def _check_gradient(grad: object, name: str, expected: tuple[int, ...], pad: object, stride: object) -> None:
    """``ValueError`` naming ``name`` (``dZ``, ``dA``) unless ``grad`` has the forward output's shape, which the
    cache's ``pad`` and ``stride`` give (a cache built by hand may not match the gradient)."""
    shape = np.shape(grad) if isinstance(grad, np.ndarray) else None
    if shape is not None and shape != expected:
        raise ValueError(
            f"{name} must have the forward output's shape {expected} (the cache's pad={pad!r}, stride={stride!r}), "
            f"got {shape}"
        )


def max_mask(x: object) -> np.ndarray:
    """Boolean mask of the positions of ``x`` equal to its maximum."""
    arr = as_float_array(x, "x")
    return arr == np.max(arr)


def distribute_value(dz: float, shape: tuple[int, int]) -> np.ndarray:
    """A ``shape`` (h, w) array holding ``dz / (h*w)`` everywhere: an average's gradient."""
    h, w = as_tuple(shape, 2, "shape", minimum=1)
    as_real(dz, "dz")
    dtype = np.result_type(dz)
    if dtype.kind != "f":  # ints become float64; float32 stays float32
        dtype = np.dtype(np.float64)
    return np.full((h, w), dz / (h * w), dtype=dtype)


def _zero_pad(X: object, pads: tuple[int, int]) -> np.ndarray:
    """``X`` (m, H, W, C) as a float array, zero-padded by ``pads`` (ph, pw) on both sides of H and W."""
    x = as_float_array(X, "X")
    check_ndim(x, "X", "(m, H, W, C)")
    ph, pw = pads
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
