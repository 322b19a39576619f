"""Plain-loop reference implementation (NumPy only): the oracle the im2col engine is tested against.

Modern API (PyTorch semantics, channels-last by default or channels-first):

- 2-D (NHWC or NCHW): conv2d_forward/backward, conv_transpose2d_forward/backward, max_pool2d_forward/backward,
  avg_pool2d_forward/backward, adaptive_avg_pool2d_forward/backward, adaptive_max_pool2d_forward/backward;
- 1-D (NWC or NCW) and 3-D (NDHWC or NCDHW): conv1d / conv3d, conv_transpose1d / conv_transpose3d,
  max_pool1d / max_pool3d, avg_pool1d / avg_pool3d, adaptive_avg_pool1d / 3d and adaptive_max_pool1d / 3d, each
  ``_forward`` and ``_backward``;
- building blocks: im2col / col2im (channels-last, 1 to 3 spatial axes) and unfold / fold (PyTorch's, channels-first,
  1 to 3 spatial axes).

Notebook drop-in API: padding, conv_slice, forward, backward, pool_backward, max_mask, distribute_value.
Golden cases: ``reference.golden.load_cases()`` (2-D) and ``reference.golden.load_nd_cases()``.
Cache types: ``reference.loops.ConvCache``, ``ConvTransposeCache`` and ``PoolCache`` (max pooling's argmax:
``cache.indices``) for the 2-D layers; ``ConvNdCache``, ``ConvTransposeNdCache``, ``PoolNdCache`` and
``AdaptivePoolCache`` for the 1-D / 3-D layers and adaptive pooling. The rank-generic loops behind the 1-D and
3-D names (``conv_forward_nd``, ``max_pool_forward_nd``, ...) live in ``conv_nd``, ``transpose_nd``,
``max_pool_nd``, ``avg_pool_nd`` and ``adaptive_nd``.
"""

from .adaptive_layers import (
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool1d_forward,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_avg_pool3d_backward,
    adaptive_avg_pool3d_forward,
    adaptive_max_pool1d_backward,
    adaptive_max_pool1d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    adaptive_max_pool3d_backward,
    adaptive_max_pool3d_forward,
)
from .avg_pool_nd import avg_pool1d_backward, avg_pool1d_forward, avg_pool3d_backward, avg_pool3d_forward
from .columns import col2im, im2col
from .conv_nd import conv1d_backward, conv1d_forward, conv3d_backward, conv3d_forward
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
from .max_pool_nd import max_pool1d_backward, max_pool1d_forward, max_pool3d_backward, max_pool3d_forward
from .transpose_nd import (
    conv_transpose1d_backward,
    conv_transpose1d_forward,
    conv_transpose3d_backward,
    conv_transpose3d_forward,
)
from .unfold_nd import fold, unfold

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
    "avg_pool1d_backward",
    "avg_pool1d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool3d_backward",
    "avg_pool3d_forward",
    "backward",
    "col2im",
    "conv1d_backward",
    "conv1d_forward",
    "conv2d_backward",
    "conv2d_forward",
    "conv3d_backward",
    "conv3d_forward",
    "conv_slice",
    "conv_transpose1d_backward",
    "conv_transpose1d_forward",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "conv_transpose3d_backward",
    "conv_transpose3d_forward",
    "distribute_value",
    "fold",
    "forward",
    "im2col",
    "max_mask",
    "max_pool1d_backward",
    "max_pool1d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "max_pool3d_backward",
    "max_pool3d_forward",
    "padding",
    "pool_backward",
    "unfold",
]
