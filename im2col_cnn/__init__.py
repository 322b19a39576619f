"""im2col-cnn: fast, exact NumPy layer functions for convolutional networks over 1-, 2- and 3-D windows,
channels-last or in PyTorch's channels-first layout.

Modern API (PyTorch semantics; channels-last ``NWC``/``NHWC``/``NDHWC`` by default, channels-first with
``data_format="NCW"``/``"NCHW"``/``"NCDHW"``), each a ``_forward`` returning ``(out, cache)`` and a ``_backward``:
``conv{1,2,3}d``, ``conv_transpose{1,2,3}d``, ``max_pool{1,2,3}d``, ``avg_pool{1,2,3}d``,
``adaptive_avg_pool{1,2,3}d`` and ``adaptive_max_pool{1,2,3}d``; and the column functions :func:`im2col` /
:func:`col2im` (channels-last matrices) and :func:`unfold` / :func:`fold` (PyTorch's). Scratch memory is bounded by
:func:`workspace_limit` / :func:`set_workspace_limit` (or ``workspace=`` per conv call); every op runs its tiles on
:func:`get_num_threads` threads (:func:`set_num_threads`, or the ``IM2COL_CNN_NUM_THREADS`` environment variable), a
convolution's products each on one BLAS thread. The layer functions also take Dask arrays chunked along the batch
(``pip install im2col-cnn[dask]``). API.md is the full reference.

Drop-in APIs, each a thin translation onto the same engine:

- the seed notebook's loop functions, importable from here (:mod:`im2col_cnn.notebook`): :func:`padding`,
  :func:`conv_slice`, :func:`forward`, :func:`backward`, :func:`pool_backward`, :func:`max_mask`,
  :func:`distribute_value`;
- :mod:`im2col_cnn.coursera`: the deeplearning.ai assignment "Convolutional Neural Networks: Step by Step";
- :mod:`im2col_cnn.cs231n`: Stanford CS231n's convolution layers (NCHW).
"""

from . import coursera as coursera  # the drop-in modules, public as modules
from . import cs231n as cs231n
from . import notebook as notebook
from .layers.adaptive import (
    AdaptivePoolCache,
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
from .layers.conv import (
    ConvCache,
    conv1d_backward,
    conv1d_forward,
    conv2d_backward,
    conv2d_forward,
    conv3d_backward,
    conv3d_forward,
)
from .layers.pool import (
    PoolCache,
    avg_pool1d_backward,
    avg_pool1d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    avg_pool3d_backward,
    avg_pool3d_forward,
    max_pool1d_backward,
    max_pool1d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool3d_backward,
    max_pool3d_forward,
)
from .layers.transpose import (
    ConvTransposeCache,
    conv_transpose1d_backward,
    conv_transpose1d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    conv_transpose3d_backward,
    conv_transpose3d_forward,
)
from .layers.unfold import col2im, fold, im2col, unfold
from .notebook import (
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
from .runtime.parallel import get_num_threads, set_num_threads
from .runtime.workspace import get_workspace_limit, set_workspace_limit, workspace_limit

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

__all__ = [
    "conv1d_forward",
    "conv1d_backward",
    "conv2d_forward",
    "conv2d_backward",
    "conv3d_forward",
    "conv3d_backward",
    "conv_transpose1d_forward",
    "conv_transpose1d_backward",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
    "conv_transpose3d_forward",
    "conv_transpose3d_backward",
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
    "adaptive_avg_pool1d_forward",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_forward",
    "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d_forward",
    "adaptive_max_pool1d_backward",
    "adaptive_max_pool2d_forward",
    "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d_forward",
    "adaptive_max_pool3d_backward",
    "unfold",
    "fold",
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
    "AdaptivePoolCache",
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

_PUBLIC_MODULES = ["coursera", "cs231n", "notebook"]


def __dir__() -> list[str]:
    """The public API only: the names in ``__all__``, the drop-in modules and ``__version__``."""
    return sorted([*__all__, *_PUBLIC_MODULES, "__version__"])
