"""The rank-specific public names of adaptive pooling: adaptive_{avg,max}_pool{1,2,3}d_{forward,backward}.

Each checks that data_format is one of its rank's two names (or that the cache comes from its rank) and calls the
rank-generic loops in ``adaptive_nd``, where the window rule is written out.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._nd import check_cache_rank, check_format
from .adaptive_nd import (
    AdaptivePoolCache,
    OutputSize,
    adaptive_avg_pool_backward_nd,
    adaptive_avg_pool_forward_nd,
    adaptive_max_pool_backward_nd,
    adaptive_max_pool_forward_nd,
)

__all__ = [
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool1d_forward",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_avg_pool3d_backward",
    "adaptive_avg_pool3d_forward",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool1d_forward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool2d_forward",
    "adaptive_max_pool3d_backward",
    "adaptive_max_pool3d_forward",
]


def adaptive_avg_pool1d_forward(
    x: ArrayLike, output_size: OutputSize, *, data_format: str = "NWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """1-D adaptive average pooling, PyTorch's adaptive_avg_pool1d.

    Parameters
    ----------
    x : (N, W, C) for NWC, (N, C, W) for NCW
    output_size : an int or a 1-tuple (int or None) (None: that axis keeps its input size)
    data_format : 'NWC' or 'NCW'

    Returns
    -------
    out : (N, Wo, C) (NCW: (N, C, Wo)), (Wo,) = output_size: the mean of each window
    cache : AdaptivePoolCache
    """
    check_format(data_format, 1)
    return adaptive_avg_pool_forward_nd(x, output_size, data_format=data_format)


def adaptive_avg_pool1d_backward(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_avg_pool1d_forward: each window spreads dout / (its size) over its positions.

    Parameters
    ----------
    dout : (N, Wo, C) (NCW: (N, C, Wo)): the forward output's shape, else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_avg_pool1d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 1, "adaptive_avg_pool1d_backward")
    return adaptive_avg_pool_backward_nd(dout, cache)


def adaptive_max_pool1d_forward(
    x: ArrayLike, output_size: OutputSize, *, data_format: str = "NWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """1-D adaptive max pooling, PyTorch's adaptive_max_pool1d (with return_indices).

    Parameters
    ----------
    x : (N, W, C) for NWC, (N, C, W) for NCW
    output_size : an int or a 1-tuple (int or None) (None: that axis keeps its input size)
    data_format : 'NWC' or 'NCW'

    Returns
    -------
    out : (N, Wo, C) (NCW: (N, C, Wo)), (Wo,) = output_size:
        the value of each window's winner (PyTorch's rule, see ``window_argmax``)
    cache : AdaptivePoolCache; ``cache.indices``: int64 like out, the winner's ``w`` in the input
    """
    check_format(data_format, 1)
    return adaptive_max_pool_forward_nd(x, output_size, data_format=data_format)


def adaptive_max_pool1d_backward(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_max_pool1d_forward: each window's dout goes to its winner ``cache.indices``.

    Parameters
    ----------
    dout : (N, Wo, C) (NCW: (N, C, Wo)): the forward output's shape, else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_max_pool1d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 1, "adaptive_max_pool1d_backward")
    return adaptive_max_pool_backward_nd(dout, cache)


def adaptive_avg_pool2d_forward(
    x: ArrayLike, output_size: OutputSize, *, data_format: str = "NHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """2-D adaptive average pooling, PyTorch's adaptive_avg_pool2d.

    Parameters
    ----------
    x : (N, H, W, C) for NHWC, (N, C, H, W) for NCHW
    output_size : an int or 2 entries, each an int >= 1 or None (None: that axis keeps its input size)
    data_format : 'NHWC' or 'NCHW'

    Returns
    -------
    out : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)), (Ho, Wo) = output_size: the mean of each window
    cache : AdaptivePoolCache
    """
    check_format(data_format, 2)
    return adaptive_avg_pool_forward_nd(x, output_size, data_format=data_format)


def adaptive_avg_pool2d_backward(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_avg_pool2d_forward: each window spreads dout / (its size) over its positions.

    Parameters
    ----------
    dout : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_avg_pool2d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 2, "adaptive_avg_pool2d_backward")
    return adaptive_avg_pool_backward_nd(dout, cache)


def adaptive_max_pool2d_forward(
    x: ArrayLike, output_size: OutputSize, *, data_format: str = "NHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """2-D adaptive max pooling, PyTorch's adaptive_max_pool2d (with return_indices).

    Parameters
    ----------
    x : (N, H, W, C) for NHWC, (N, C, H, W) for NCHW
    output_size : an int or 2 entries, each an int >= 1 or None (None: that axis keeps its input size)
    data_format : 'NHWC' or 'NCHW'

    Returns
    -------
    out : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)), (Ho, Wo) = output_size:
        the value of each window's winner (PyTorch's rule, see ``window_argmax``)
    cache : AdaptivePoolCache; ``cache.indices``: int64 like out, the winner's ``h*W + w`` in the input
    """
    check_format(data_format, 2)
    return adaptive_max_pool_forward_nd(x, output_size, data_format=data_format)


def adaptive_max_pool2d_backward(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_max_pool2d_forward: each window's dout goes to its winner ``cache.indices``.

    Parameters
    ----------
    dout : (N, Ho, Wo, C) (NCHW: (N, C, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_max_pool2d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 2, "adaptive_max_pool2d_backward")
    return adaptive_max_pool_backward_nd(dout, cache)


def adaptive_avg_pool3d_forward(
    x: ArrayLike, output_size: OutputSize, *, data_format: str = "NDHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """3-D adaptive average pooling, PyTorch's adaptive_avg_pool3d.

    Parameters
    ----------
    x : (N, D, H, W, C) for NDHWC, (N, C, D, H, W) for NCDHW
    output_size : an int or 3 entries, each an int >= 1 or None (None: that axis keeps its input size)
    data_format : 'NDHWC' or 'NCDHW'

    Returns
    -------
    out : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)), (Do, Ho, Wo) = output_size: the mean of each window
    cache : AdaptivePoolCache
    """
    check_format(data_format, 3)
    return adaptive_avg_pool_forward_nd(x, output_size, data_format=data_format)


def adaptive_avg_pool3d_backward(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_avg_pool3d_forward: each window spreads dout / (its size) over its positions.

    Parameters
    ----------
    dout : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_avg_pool3d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 3, "adaptive_avg_pool3d_backward")
    return adaptive_avg_pool_backward_nd(dout, cache)


def adaptive_max_pool3d_forward(
    x: ArrayLike, output_size: OutputSize, *, data_format: str = "NDHWC"
) -> tuple[np.ndarray, AdaptivePoolCache]:
    """3-D adaptive max pooling, PyTorch's adaptive_max_pool3d (with return_indices).

    Parameters
    ----------
    x : (N, D, H, W, C) for NDHWC, (N, C, D, H, W) for NCDHW
    output_size : an int or 3 entries, each an int >= 1 or None (None: that axis keeps its input size)
    data_format : 'NDHWC' or 'NCDHW'

    Returns
    -------
    out : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)), (Do, Ho, Wo) = output_size:
        the value of each window's winner (PyTorch's rule, see ``window_argmax``)
    cache : AdaptivePoolCache; ``cache.indices``: int64 like out, the winner's ``(d*H + h)*W + w`` in the input
    """
    check_format(data_format, 3)
    return adaptive_max_pool_forward_nd(x, output_size, data_format=data_format)


def adaptive_max_pool3d_backward(dout: ArrayLike, cache: AdaptivePoolCache) -> np.ndarray:
    """Gradient of adaptive_max_pool3d_forward: each window's dout goes to its winner ``cache.indices``.

    Parameters
    ----------
    dout : (N, Do, Ho, Wo, C) (NCDHW: (N, C, Do, Ho, Wo)): the forward output's shape, else a ValueError naming dout
    cache : AdaptivePoolCache from adaptive_max_pool3d_forward

    Returns
    -------
    dx : like x, in the forward call's layout
    """
    check_cache_rank(cache.data_format, 3, "adaptive_max_pool3d_backward")
    return adaptive_max_pool_backward_nd(dout, cache)
