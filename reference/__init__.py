"""Plain-loop reference implementation (NumPy only): the oracle the im2col engine is tested against.

Modern API (PyTorch semantics, NHWC or NCHW): conv2d_forward/backward, conv_transpose2d_forward/backward,
max_pool2d_forward/backward, avg_pool2d_forward/backward, im2col, col2im. Notebook drop-in API: padding,
conv_slice, forward, backward, pool_backward, max_mask, distribute_value.
Golden cases: ``reference.golden.load_cases()``.
Cache types: ``reference.loops.ConvCache``, ``ConvTransposeCache`` and ``PoolCache`` (max pooling's argmax:
``cache.indices``).
"""

from .columns import col2im, im2col
from .dropin import backward, conv_slice, distribute_value, forward, max_mask, padding, pool_backward
from .loops import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "backward",
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "conv_slice",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "distribute_value",
    "forward",
    "im2col",
    "max_mask",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "padding",
    "pool_backward",
]
