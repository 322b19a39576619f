"""Plain-loop reference for the modern API (PyTorch semantics): one import point for every loop function.

The 2-D loops live in ``conv_loops`` (conv2d), ``transpose_loops`` (conv_transpose2d) and ``pool_loops``
(max_pool2d, avg_pool2d); this module re-exports them and their cache types, so ``reference.loops.ConvCache``
and ``reference.loops.PoolCache`` keep working. The cache types of the 1-D / 3-D layers and of adaptive pooling
(whose loops live in ``conv_nd``, ``transpose_nd``, ``max_pool_nd``, ``avg_pool_nd`` and ``adaptive_nd``) are
re-exported here too. Every function walks the output (or, for the transposed
convolution, the input) one window at a time, so each line can be checked against the formula in the spec.
These functions are the oracle the fast engine is tested against: clarity over speed.
"""

from __future__ import annotations

from ._pool_nd import PoolNdCache
from .adaptive_nd import AdaptivePoolCache
from .conv_loops import ConvCache, conv2d_backward, conv2d_forward
from .conv_nd import ConvNdCache
from .pool_loops import PoolCache, avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .transpose_loops import ConvTransposeCache, conv_transpose2d_backward, conv_transpose2d_forward
from .transpose_nd import ConvTransposeNdCache

__all__ = [
    "AdaptivePoolCache",
    "ConvCache",
    "ConvNdCache",
    "ConvTransposeCache",
    "ConvTransposeNdCache",
    "PoolCache",
    "PoolNdCache",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv2d_backward",
    "conv2d_forward",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
]
