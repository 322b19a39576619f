"""The deeplearning.ai assignment "Convolutional Neural Networks: Step by Step" (Coursera, course 4, week 1).

Same names, signatures, shapes, caches and numbers as the assignment's functions, running on the engine:
``zero_pad``, ``conv_single_step``, ``conv_forward``, ``conv_backward``, ``pool_forward``, ``pool_backward``,
``create_mask_from_window`` and ``distribute_value``. Arrays are NHWC: ``A_prev`` (m, n_H_prev, n_W_prev,
n_C_prev), ``W`` (f, f, n_C_prev, n_C), ``b`` (1, 1, 1, n_C). Caches are the assignment's tuples, so code that
indexes into them keeps working: ``conv_forward`` returns ``(A_prev, W, b, hparameters)``, ``pool_forward``
``(A_prev, hparameters)``.

Semantics are the assignment's: pooling has no padding; in ``pool_backward(mode="max")`` every position equal to
its window's maximum receives the window's gradient, and overlapping windows add up. Float32 input stays
float32 (the assignment's loops always return float64).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .layers.conv import conv2d_forward
from .layers.pool import avg_pool2d_forward, max_pool2d_forward
from .notebook import backward as _conv_grads
from .notebook import conv_slice, distribute_value, max_mask, padding
from .notebook import pool_backward as _pool_grads
from .runtime.checks import check_choice

__all__ = [
    "zero_pad",
    "conv_single_step",
    "conv_forward",
    "conv_backward",
    "pool_forward",
    "pool_backward",
    "create_mask_from_window",
    "distribute_value",
]

_POOL_MODES = ("max", "average")


def _hparam(hparameters: object, key: str, keys: str) -> object:
    """``hparameters[key]``, with a clear error when ``hparameters`` is not a dict holding ``keys``."""
    if not isinstance(hparameters, Mapping):
        raise TypeError(f"hparameters must be a dict with {keys}, got {type(hparameters).__name__}")
    if key not in hparameters:
        raise ValueError(f"hparameters must have a {key!r} entry ({keys}), got keys {sorted(hparameters)}")
    return hparameters[key]


def _cache_items(cache: object, size: int, what: str) -> tuple:
    """``cache`` as a tuple of ``size`` items; ``TypeError`` naming the expected cache otherwise."""
    if not isinstance(cache, tuple) or len(cache) != size:
        raise TypeError(f"cache must be the {what}, got {type(cache).__name__}")
    return cache


def zero_pad(X: object, pad: int) -> np.ndarray:
    """Pad the height and width of every image of ``X`` with ``pad`` zeros on each side.

    Parameters
    ----------
    X : array_like, shape (m, n_H, n_W, n_C)
    pad : int, >= 0

    Returns
    -------
    X_pad : ndarray, shape (m, n_H + 2*pad, n_W + 2*pad, n_C), dtype of ``X``
    """
    return padding(X, pad, dims=4)


def conv_single_step(a_slice_prev: object, W: object, b: object) -> np.floating:
    """One output value of a convolution: ``sum(a_slice_prev * W) + b``.

    Parameters
    ----------
    a_slice_prev : array_like, shape (f, f, n_C_prev)
    W : array_like, shape (f, f, n_C_prev)
    b : array_like, shape (1, 1, 1) (any single value)

    Returns
    -------
    Z : numpy float scalar (np.float64 for float64 input)
    """
    return conv_slice(a_slice_prev, W, b)


def conv_forward(
    A_prev: np.ndarray, W: np.ndarray, b: np.ndarray, hparameters: Mapping[str, int]
) -> tuple[np.ndarray, tuple]:
    """Forward pass of a convolution layer (cross-correlation with zero padding).

    Parameters
    ----------
    A_prev : array_like, shape (m, n_H_prev, n_W_prev, n_C_prev)
    W : array_like, shape (f, f, n_C_prev, n_C)
    b : array_like, shape (1, 1, 1, n_C)
    hparameters : dict with ``"stride"`` and ``"pad"`` (ints)

    Returns
    -------
    Z : ndarray, shape (m, n_H, n_W, n_C)
        ``n_H = (n_H_prev - f + 2*pad) // stride + 1``, likewise ``n_W``.
    cache : tuple ``(A_prev, W, b, hparameters)``
        The arguments themselves, for :func:`conv_backward`.
    """
    keys = "'stride' and 'pad'"
    stride = _hparam(hparameters, "stride", keys)
    pad = _hparam(hparameters, "pad", keys)
    Z, _ = conv2d_forward(A_prev, W, b, stride=stride, padding=pad)
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv_forward`.

    Parameters
    ----------
    dZ : array_like, shape (m, n_H, n_W, n_C)
        Gradient of the cost with respect to the output ``Z``.
    cache : tuple ``(A_prev, W, b, hparameters)`` from :func:`conv_forward`

    Returns
    -------
    dA_prev : ndarray, shape (m, n_H_prev, n_W_prev, n_C_prev)
    dW : ndarray, shape (f, f, n_C_prev, n_C)
    db : ndarray, shape (1, 1, 1, n_C)
    """
    A_prev, W, b, hparameters = _cache_items(cache, 4, "(A_prev, W, b, hparameters) tuple returned by conv_forward")
    keys = "'stride' and 'pad'"
    stride = _hparam(hparameters, "stride", keys)
    pad = _hparam(hparameters, "pad", keys)
    return _conv_grads(dZ, (A_prev, W, b, pad, stride))


def pool_forward(A_prev: np.ndarray, hparameters: Mapping[str, int], mode: str = "max") -> tuple[np.ndarray, tuple]:
    """Forward pass of a max or average pooling layer (no padding).

    Parameters
    ----------
    A_prev : array_like, shape (m, n_H_prev, n_W_prev, n_C_prev)
    hparameters : dict with ``"f"`` (window size) and ``"stride"`` (ints)
    mode : ``"max"`` or ``"average"``

    Returns
    -------
    A : ndarray, shape (m, n_H, n_W, n_C_prev)
        ``n_H = (n_H_prev - f) // stride + 1``, likewise ``n_W``.
    cache : tuple ``(A_prev, hparameters)``
        For :func:`pool_backward`.
    """
    check_choice(mode, "mode", _POOL_MODES)
    keys = "'f' and 'stride'"
    f = _hparam(hparameters, "f", keys)
    stride = _hparam(hparameters, "stride", keys)
    pool = max_pool2d_forward if mode == "max" else avg_pool2d_forward
    A, _ = pool(A_prev, f, stride=stride)
    return A, (A_prev, hparameters)


def pool_backward(dA: np.ndarray, cache: tuple, mode: str = "max") -> np.ndarray:
    """Backward pass of :func:`pool_forward`.

    ``mode="max"`` sends each window's gradient to every position holding the window's maximum (the mask of
    :func:`create_mask_from_window`); ``mode="average"`` spreads it evenly over the ``f*f`` window (as
    :func:`distribute_value`). Overlapping windows add up.

    Parameters
    ----------
    dA : array_like, shape (m, n_H, n_W, n_C)
        Gradient of the cost with respect to the output ``A``.
    cache : tuple ``(A_prev, hparameters)`` from :func:`pool_forward`
    mode : ``"max"`` or ``"average"``

    Returns
    -------
    dA_prev : ndarray, shape of ``A_prev``
    """
    check_choice(mode, "mode", _POOL_MODES)
    A_prev, hparameters = _cache_items(cache, 2, "(A_prev, hparameters) tuple returned by pool_forward")
    keys = "'f' and 'stride'"
    f = _hparam(hparameters, "f", keys)
    stride = _hparam(hparameters, "stride", keys)
    return _pool_grads(dA, (A_prev, f, stride), mode)


def create_mask_from_window(x: object) -> np.ndarray:
    """Boolean mask, shape of ``x`` (f, f), True at every position equal to the maximum of ``x``."""
    return max_mask(x)
