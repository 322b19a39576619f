"""im2col-cnn: fast, exact NumPy conv2d and max/avg pooling, forward and backward (NHWC).

Modern API (PyTorch semantics, NHWC layout): :func:`conv2d_forward`, :func:`conv2d_backward`,
:func:`max_pool2d_forward`, :func:`max_pool2d_backward`, :func:`avg_pool2d_forward`,
:func:`avg_pool2d_backward`, :func:`conv_transpose2d_forward`, :func:`conv_transpose2d_backward`, and the
building blocks :func:`im2col` / :func:`col2im`. Scratch memory is
bounded by :func:`workspace_limit` / :func:`set_workspace_limit` (or ``workspace=`` per conv call); pooling runs on
:func:`get_num_threads` threads (:func:`set_num_threads`, or the ``IM2COL_CNN_NUM_THREADS`` environment variable).

Drop-in API (the notebook's loop functions, same names and numbers): :func:`padding`, :func:`conv_slice`,
:func:`forward`, :func:`backward`, :func:`pool_backward`, :func:`max_mask`, :func:`distribute_value`.
"""

from .compat import (
    ConvLayerCache,
    PoolLayerCache,
    backward,
    conv_slice,
    distribute_value,
    forward,
    max_mask,
    padding,
    pool_backward,
)
from .conv import ConvCache, conv2d_backward, conv2d_forward
from .parallel import get_num_threads, set_num_threads
from .pool import (
    PoolCache,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .transpose import ConvTransposeCache, conv_transpose2d_backward, conv_transpose2d_forward
from .windows import col2im, im2col
from .workspace import get_workspace_limit, set_workspace_limit, workspace_limit

__version__ = "0.1.0"

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
    "im2col",
    "col2im",
    "get_workspace_limit",
    "set_workspace_limit",
    "workspace_limit",
    "get_num_threads",
    "set_num_threads",
    "ConvCache",
    "PoolCache",
    "ConvTransposeCache",
    "padding",
    "conv_slice",
    "forward",
    "backward",
    "pool_backward",
    "max_mask",
    "distribute_value",
    "ConvLayerCache",
    "PoolLayerCache",
]
