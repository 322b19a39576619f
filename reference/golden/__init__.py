"""Golden cases: small inputs and the reference loops' outputs, stored as ``<op>_<dtype>_<nn>.npz``.

Regenerate with ``python -m reference.golden.make_golden``; the key layout per op is in README.md here.
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
    "OPS",
    "forward_kwargs",
    "load_case",
    "load_cases",
]

GOLDEN_DIR = Path(__file__).parent
BASE_OPS = ("conv", "max_pool", "avg_pool", "im2col", "dropin_conv", "dropin_maxpool", "dropin_avepool")
# The general options: dilation, groups, 'same'/'valid'/asymmetric padding, NCHW, ceil_mode, transposed convolution, ...
GENERAL_OPS = ("conv_general", "conv_transpose", "max_pool_general", "avg_pool_general")
OPS = BASE_OPS + GENERAL_OPS
# Stored as small arrays; load_case turns them into Python values (str, int, float, bool, (h, w) tuples,
# ((top, bottom), (left, right)) tuples).
HYPERPARAMETER_KEYS = frozenset(
    {"op", "mode", "backward_mode", "kernel", "stride", "padding", "pad_value", "pad", "f", "ties"}
    | {"dilation", "groups", "data_format", "output_padding", "ceil_mode", "count_include_pad", "divisor_override"}
)
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
}


def _to_python(arr: np.ndarray) -> Any:
    """0-d array -> scalar; (2,) -> tuple; (2, 2) -> tuple of tuples."""
    return arr.item() if arr.ndim == 0 else tuple(_to_python(v) for v in arr)


def load_case(path: str | Path) -> dict[str, Any]:
    """Load one golden npz: arrays stay arrays, hyperparameters become str/int/float/bool or (nested) tuples."""
    case: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            arr = data[key]
            case[key] = _to_python(arr) if key in HYPERPARAMETER_KEYS else arr
    return case


def load_cases(op: str | None = None, dtype: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """All golden cases as ``(name, case)`` pairs sorted by name (name = file stem, e.g. ``conv_float32_03``).

    ``op`` (one of OPS) and ``dtype`` ('float32' or 'float64') filter the list.
    """
    cases = []
    for path in sorted(GOLDEN_DIR.glob("*.npz")):
        case = load_case(path)
        if op is not None and case["op"] != op:
            continue
        if dtype is not None and case["x"].dtype != np.dtype(dtype):
            continue
        cases.append((path.stem, case))
    return cases


def forward_kwargs(case: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a modern-API case's forward call (ops conv, max_pool, avg_pool and GENERAL_OPS).

    E.g. ``conv2d_forward(case["x"], case["w"], case.get("b"), **forward_kwargs(case))`` or
    ``max_pool2d_forward(case["x"], case["kernel"], **forward_kwargs(case))``.
    """
    return {key: case[key] for key in _FORWARD_KEYWORDS[case["op"]] if key in case}
