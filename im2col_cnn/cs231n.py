"""Stanford CS231n's convolution layers (assignment 2: ``layers.py``, ``fast_layers.py``, ``layer_utils.py``).

Same names, arguments and return values as the assignment's functions, in pure NumPy on the engine (no Cython
``im2col_cython`` build): NCHW ``x`` (N, C, H, W), ``w`` (F, C, HH, WW), ``b`` (F,),
``conv_param = {"stride": s, "pad": p}`` and ``pool_param = {"pool_height": ph, "pool_width": pw, "stride": s}``.

- ``layers.py``: :func:`conv_forward_naive` / :func:`conv_backward_naive`, :func:`max_pool_forward_naive` /
  :func:`max_pool_backward_naive`, :func:`relu_forward` / :func:`relu_backward`.
- ``fast_layers.py``: :func:`conv_forward_fast` / :func:`conv_backward_fast` (= the ``strides`` pair), the
  ``im2col`` pair, :func:`max_pool_forward_fast` / :func:`max_pool_backward_fast` and the ``reshape`` and
  ``im2col`` pooling pairs they choose between.
- ``layer_utils.py``: :func:`conv_relu_forward` / :func:`conv_relu_backward`, :func:`conv_relu_pool_forward` /
  :func:`conv_relu_pool_backward`.

Caches: the naive functions return the assignment's ``(x, w, b, conv_param)`` and ``(x, pool_param)``; their
backward passes rebuild the engine's cache from them (one more forward pass). The fast conv cache is
``(x, w, b, conv_param, engine_cache)``: the engine's ``ConvCache`` stands where CS231n keeps its column matrix.
Every conv backward accepts every conv cache, every max-pool backward every max-pool cache of its kind.

Ties in max pooling (several positions holding a window's maximum) follow the assignment's code: the naive and
``im2col`` backward passes send the gradient to the first maximum in row-major window order (``np.argmax``,
as PyTorch does); ``max_pool_backward_reshape`` (chosen by ``max_pool_forward_fast`` when square windows tile
the input) splits it equally among the tied maxima, as the released ``fast_layers.py`` does (it divides by the
number of maxima, whatever its docstring says). Sizes are floored: the fast functions' asserts that the
windows fit exactly are not reproduced, except the reshape method's own preconditions (a ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .layers.conv import ConvCache, conv2d_backward, conv2d_forward
from .layers.pool import avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .layers.pooling import PoolCache, pool_backward, pool_forward

__all__ = [
    "conv_forward_naive",
    "conv_backward_naive",
    "max_pool_forward_naive",
    "max_pool_backward_naive",
    "relu_forward",
    "relu_backward",
    "conv_forward_fast",
    "conv_backward_fast",
    "conv_forward_strides",
    "conv_backward_strides",
    "conv_forward_im2col",
    "conv_backward_im2col",
    "max_pool_forward_fast",
    "max_pool_backward_fast",
    "max_pool_forward_reshape",
    "max_pool_backward_reshape",
    "max_pool_forward_im2col",
    "max_pool_backward_im2col",
    "conv_relu_forward",
    "conv_relu_backward",
    "conv_relu_pool_forward",
    "conv_relu_pool_backward",
]

_CONV_KEYS = ("stride", "pad")
_POOL_KEYS = ("pool_height", "pool_width", "stride")


def _params(param: object, name: str, keys: tuple[str, ...]) -> tuple:
    """The values of ``keys`` in the dict ``param``; a clear error naming ``name`` when it is not such a dict."""
    wanted = ", ".join(repr(k) for k in keys)
    if not isinstance(param, Mapping):
        raise TypeError(f"{name} must be a dict with {wanted}, got {type(param).__name__}")
    missing = [k for k in keys if k not in param]
    if missing:
        raise ValueError(f"{name} must have the keys {wanted}; missing {', '.join(repr(k) for k in missing)}")
    return tuple(param[k] for k in keys)


def _tuple(cache: object, sizes: tuple[int, ...], what: str) -> tuple:
    if not isinstance(cache, tuple) or len(cache) not in sizes:
        raise TypeError(f"cache must be {what}, got {type(cache).__name__}")
    return cache


# --- convolution -------------------------------------------------------------------------------------------------


def _conv(x: object, w: object, b: object, conv_param: object) -> tuple[np.ndarray, ConvCache]:
    stride, pad = _params(conv_param, "conv_param", _CONV_KEYS)
    return conv2d_forward(x, w, b, stride=stride, padding=pad, data_format="NCHW")


def _conv_grads(dout: object, cache: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db) from any conv cache: the engine's (5th item of a fast cache) or one rebuilt from the first 4."""
    cache = _tuple(cache, (4, 5), "a conv cache: (x, w, b, conv_param) or (x, w, b, conv_param, engine_cache)")
    engine = cache[4] if len(cache) == 5 and isinstance(cache[4], ConvCache) else _conv(*cache[:4])[1]
    return conv2d_backward(dout, engine)


def conv_forward_naive(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: Mapping[str, int]
) -> tuple[np.ndarray, tuple]:
    """Forward pass of a convolution layer (cross-correlation, ``pad`` zeros on every side).

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    w : array_like, shape (F, C, HH, WW)
    b : array_like, shape (F,)
    conv_param : dict with ``"stride"`` and ``"pad"`` (ints)

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
        ``H' = 1 + (H + 2*pad - HH) // stride``, likewise ``W'``.
    cache : tuple ``(x, w, b, conv_param)``
    """
    out, _ = _conv(x, w, b, conv_param)
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of a convolution layer.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
    cache : tuple from :func:`conv_forward_naive` (or any conv forward of this module)

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,)
    """
    return _conv_grads(dout, cache)


def conv_forward_strides(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: Mapping[str, int]
) -> tuple[np.ndarray, tuple]:
    """Fast forward pass of a convolution layer: :func:`conv_forward_naive`'s ``out``, a cache that keeps the engine's.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : tuple ``(x, w, b, conv_param, engine_cache)``
        ``engine_cache`` is the engine's ``ConvCache`` (CS231n keeps its column matrix there).
    """
    out, engine = _conv(x, w, b, conv_param)
    return out, (x, w, b, conv_param, engine)


def conv_backward_strides(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast backward pass of a convolution layer: ``(dx, dw, db)`` as :func:`conv_backward_naive`."""
    return _conv_grads(dout, cache)


conv_forward_fast = conv_forward_strides
conv_backward_fast = conv_backward_strides
conv_forward_im2col = conv_forward_strides
conv_backward_im2col = conv_backward_strides


# --- max pooling -------------------------------------------------------------------------------------------------


def _max_pool(x: object, pool_param: object) -> tuple[np.ndarray, PoolCache]:
    ph, pw, stride = _params(pool_param, "pool_param", _POOL_KEYS)
    return max_pool2d_forward(x, (ph, pw), stride=stride, data_format="NCHW")


def _pool_cache(cache: object) -> PoolCache:
    """The engine's cache from a max-pool cache: ``(x, pool_param)`` (rebuilt) or ``(x, pool_param, engine)``."""
    cache = _tuple(cache, (2, 3), "a max-pool cache: (x, pool_param) or (x, pool_param, engine_cache)")
    if len(cache) == 3 and isinstance(cache[2], PoolCache):
        return cache[2]
    return _max_pool(cache[0], cache[1])[1]


def max_pool_forward_naive(x: np.ndarray, pool_param: Mapping[str, int]) -> tuple[np.ndarray, tuple]:
    """Forward pass of a max-pooling layer (no padding).

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    pool_param : dict with ``"pool_height"``, ``"pool_width"`` and ``"stride"`` (ints)

    Returns
    -------
    out : ndarray, shape (N, C, H', W')
        ``H' = 1 + (H - pool_height) // stride``, likewise ``W'``.
    cache : tuple ``(x, pool_param)``
    """
    out, _ = _max_pool(x, pool_param)
    return out, (x, pool_param)


def max_pool_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward pass of a max-pooling layer: each window's ``dout`` goes to its first maximum.

    Parameters
    ----------
    dout : array_like, shape (N, C, H', W')
    cache : tuple ``(x, pool_param)`` from :func:`max_pool_forward_naive`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    return max_pool2d_backward(dout, _pool_cache(cache))


def max_pool_forward_im2col(x: np.ndarray, pool_param: Mapping[str, int]) -> tuple[np.ndarray, tuple]:
    """Max pooling, any window and stride; cache ``(x, pool_param, engine_cache)``."""
    out, engine = _max_pool(x, pool_param)
    return out, (x, pool_param, engine)


def max_pool_backward_im2col(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward pass of :func:`max_pool_forward_im2col`: to each window's first maximum, shape (N, C, H, W)."""
    return max_pool2d_backward(dout, _pool_cache(cache))


def max_pool_forward_reshape(x: np.ndarray, pool_param: Mapping[str, int]) -> tuple[np.ndarray, tuple]:
    """Max pooling over square windows that tile the input (``pool_height == pool_width == stride``).

    Raises ``ValueError`` for other windows or sizes; cache ``(x, pool_param, engine_cache)``.
    """
    ph, pw, stride = _params(pool_param, "pool_param", _POOL_KEYS)
    if not ph == pw == stride:
        raise ValueError(f"the reshape method needs pool_height == pool_width == stride, got {ph}, {pw}, {stride}")
    shape = np.shape(x)
    if len(shape) == 4 and (shape[2] % ph or shape[3] % pw):
        raise ValueError(f"the reshape method needs windows that tile x: H and W multiples of {ph}, got {shape}")
    return max_pool_forward_im2col(x, pool_param)


def max_pool_backward_reshape(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward pass of :func:`max_pool_forward_reshape`: each window's ``dout`` split equally among its maxima.

    Parameters
    ----------
    dout : array_like, shape (N, C, H', W')
    cache : tuple from :func:`max_pool_forward_reshape`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    x = _pool_cache(cache).x
    ph, pw, stride = _params(cache[1], "pool_param", _POOL_KEYS)
    # The engine's drop-in tie rule: every maximum of a window gets the window's gradient.
    _, tied = pool_forward(x, (ph, pw), stride, 0, "max", ties="all", data_format="NCHW")
    ones = np.ones(np.shape(dout), dtype=tied.peak.dtype)
    held = pool_backward(ones, tied, "max")  # (N, C, H, W): 1 where a position holds its window's maximum
    counts, _ = avg_pool2d_forward(held, (ph, pw), stride=stride, divisor_override=1, data_format="NCHW")
    return pool_backward(np.asarray(dout) / counts, tied, "max")  # counts: (N, C, H', W') maxima per window


def max_pool_forward_fast(x: np.ndarray, pool_param: Mapping[str, int]) -> tuple[np.ndarray, tuple]:
    """Max pooling, choosing the reshape method when square windows tile ``x`` and the im2col method otherwise.

    Returns
    -------
    out : ndarray, shape (N, C, H', W')
    cache : tuple ``("reshape", cache)`` or ``("im2col", cache)``
    """
    ph, pw, stride = _params(pool_param, "pool_param", _POOL_KEYS)
    shape = np.shape(x)
    if ph == pw == stride and len(shape) == 4 and shape[2] % ph == 0 and shape[3] % pw == 0:
        out, cache = max_pool_forward_reshape(x, pool_param)
        return out, ("reshape", cache)
    out, cache = max_pool_forward_im2col(x, pool_param)
    return out, ("im2col", cache)


def max_pool_backward_fast(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward pass of :func:`max_pool_forward_fast`, by the method its cache names; shape (N, C, H, W)."""
    method, real_cache = _tuple(cache, (2,), "the (method, cache) pair returned by max_pool_forward_fast")
    if method == "reshape":
        return max_pool_backward_reshape(dout, real_cache)
    if method == "im2col":
        return max_pool_backward_im2col(dout, real_cache)
    raise ValueError(f'Unrecognized method "{method}"')


# --- ReLU and the sandwich layers ----------------------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ReLU: ``out = max(x, 0)``, shape of ``x``; the cache is ``x``."""
    return np.maximum(x, 0), x


def relu_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu_forward`: ``dout`` where ``x > 0``, 0 elsewhere; shape of ``x``."""
    return dout * (np.asarray(cache) > 0)


def conv_relu_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: Mapping[str, int]
) -> tuple[np.ndarray, tuple]:
    """Convolution then ReLU: ``out`` (N, F, H', W'), cache ``(conv_cache, relu_cache)``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv_relu_forward`: ``(dx, dw, db)``."""
    conv_cache, relu_cache = _tuple(cache, (2,), "the (conv_cache, relu_cache) pair from conv_relu_forward")
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


def conv_relu_pool_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: Mapping[str, int], pool_param: Mapping[str, int]
) -> tuple[np.ndarray, tuple]:
    """Convolution, ReLU, then max pooling: ``out`` (N, F, H'', W''), cache ``(conv_cache, relu_cache, pool_cache)``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv_relu_pool_forward`: ``(dx, dw, db)``."""
    conv_cache, relu_cache, pool_cache = _tuple(
        cache, (3,), "the (conv_cache, relu_cache, pool_cache) triple from conv_relu_pool_forward"
    )
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_backward_fast(relu_backward(ds, relu_cache), conv_cache)
