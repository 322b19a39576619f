"""Golden cases: small inputs and the reference loops' outputs, stored as ``<op>_<dtype>_<nn>.npz``.

The 2-D ops (``OPS``) are in this folder, the N-d ones (``ND_OPS``: 1-D / 3-D layers, adaptive pooling, unfold /
fold, N-d im2col) in ``nd/``. Regenerate with ``python -m reference.golden.make_golden``; the key layout per op is
in README.md here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BASE_OPS",
    "GENERAL_OPS",
    "GOLDEN_DIR",
    "HYPERPARAMETER_KEYS",
    "ND_DIR",
    "ND_OPS",
    "OPS",
    "forward_kwargs",
    "load_case",
    "load_cases",
    "load_nd_cases",
]

GOLDEN_DIR = Path(__file__).parent
BASE_OPS = ("conv", "max_pool", "avg_pool", "im2col", "dropin_conv", "dropin_maxpool", "dropin_avepool")
# The general options: dilation, groups, 'same'/'valid'/asymmetric padding, NCHW, ceil_mode, transposed convolution, ...
GENERAL_OPS = ("conv_general", "conv_transpose", "max_pool_general", "avg_pool_general")
OPS = BASE_OPS + GENERAL_OPS  # the 2-D ops: every case of this folder, what load_cases() returns by default
ND_DIR = GOLDEN_DIR / "nd"
# The N-d ops (files in nd/): the rank-specific layers, adaptive pooling (rank = x.ndim - 2), unfold / fold and
# the channels-last im2col / col2im at 1 and 3 spatial axes.
ND_OPS = (
    "conv1d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose3d",
    "max_pool1d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool3d",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "unfold",
    "im2col_nd",
)
# Stored as small arrays; load_case turns them into Python values (str, int, float, bool, per-axis tuples such as
# (h, w), per-side pairs such as ((top, bottom), (left, right))); output_size's -1 entries become None.
HYPERPARAMETER_KEYS = frozenset(
    {"op", "mode", "backward_mode", "kernel", "stride", "padding", "pad_value", "pad", "f", "ties"}
    | {"dilation", "groups", "data_format", "output_padding", "ceil_mode", "count_include_pad", "divisor_override"}
    | {"output_size"}
)
_CONV = ("stride", "padding", "dilation", "groups", "data_format")
_MAX_POOL = ("stride", "padding", "dilation", "ceil_mode", "data_format")
_AVG_POOL = ("stride", "padding", "ceil_mode", "count_include_pad", "divisor_override", "data_format")
# Keyword arguments of the forward call, per op (the kernel size is positional for the pools); a key missing
# from a case means the default (e.g. no ``divisor_override`` key: None).
_FORWARD_KEYWORDS = {
    "conv": ("stride", "padding"),
    "max_pool": ("stride", "padding"),
    "avg_pool": ("stride", "padding"),
    "conv_general": ("stride", "padding", "dilation", "groups", "data_format"),
    "conv_transpose": ("stride", "padding", "output_padding", "dilation", "groups", "data_format"),
    "max_pool_general": ("stride", "padding", "dilation", "ceil_mode", "data_format"),
    "avg_pool_general": ("stride", "padding", "ceil_mode", "count_include_pad", "divisor_override", "data_format"),
    "conv1d": _CONV,
    "conv3d": _CONV,
    "conv_transpose1d": (*_CONV, "output_padding"),
    "conv_transpose3d": (*_CONV, "output_padding"),
    "max_pool1d": _MAX_POOL,
    "max_pool3d": _MAX_POOL,
    "avg_pool1d": _AVG_POOL,
    "avg_pool3d": _AVG_POOL,
    "adaptive_avg_pool": ("data_format",),  # output_size is positional
    "adaptive_max_pool": ("data_format",),
    "unfold": ("dilation", "padding", "stride"),  # positional in PyTorch's order, keywords work too
    "im2col_nd": ("stride", "padding", "dilation", "pad_value"),  # col2im: the same without pad_value
}


def _to_python(arr: np.ndarray) -> Any:
    """0-d array -> scalar; (n,) -> tuple; (n, 2) -> tuple of tuples."""
    return arr.item() if arr.ndim == 0 else tuple(_to_python(v) for v in arr)


def _output_size(value: Any) -> Any:
    """An adaptive pooling output size as stored (an int, or a tuple with -1 for None) as the call takes it."""
    return tuple(None if v == -1 else v for v in value) if isinstance(value, tuple) else value


def load_case(path: str | Path) -> dict[str, Any]:
    """Load one golden npz: arrays stay arrays, hyperparameters become str/int/float/bool or (nested) tuples."""
    case: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            arr = data[key]
            case[key] = _to_python(arr) if key in HYPERPARAMETER_KEYS else arr
    if "output_size" in case:
        case["output_size"] = _output_size(case["output_size"])
    return case


def _load_folder(folder: Path, op: str | None, dtype: str | None) -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted(folder.glob("*.npz")):
        case = load_case(path)
        if op is not None and case["op"] != op:
            continue
        if dtype is not None and case["x"].dtype != np.dtype(dtype):
            continue
        cases.append((path.stem, case))
    return cases


def load_cases(op: str | None = None, dtype: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """All 2-D golden cases as ``(name, case)`` pairs sorted by name (name = file stem, e.g. ``conv_float32_03``).

    ``op`` (one of OPS, or of ND_OPS: then the cases come from ``nd/``) and ``dtype`` ('float32' or 'float64')
    filter the list.
    """
    return _load_folder(ND_DIR if op in ND_OPS else GOLDEN_DIR, op, dtype)


def load_nd_cases(op: str | None = None, dtype: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """All N-d golden cases (folder ``nd/``, ops ND_OPS) as sorted ``(name, case)`` pairs; filters as load_cases."""
    return _load_folder(ND_DIR, op, dtype)


def forward_kwargs(case: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a modern-API case's forward call (ops conv, max_pool, avg_pool, GENERAL_OPS, ND_OPS).

    E.g. ``conv2d_forward(case["x"], case["w"], case.get("b"), **forward_kwargs(case))``,
    ``max_pool3d_forward(case["x"], case["kernel"], **forward_kwargs(case))``,
    ``adaptive_max_pool2d_forward(case["x"], case["output_size"], **forward_kwargs(case))``,
    ``unfold(case["x"], case["kernel"], **forward_kwargs(case))`` or ``im2col(case["x"], case["kernel"], ...)``.
    """
    return {key: case[key] for key in _FORWARD_KEYWORDS[case["op"]] if key in case}
