"""Golden cases: small inputs and the reference loops' outputs, stored as ``<op>_<dtype>_<nn>.npz``.

Regenerate with ``python -m reference.golden.make_golden``; the key layout per op is in README.md here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GOLDEN_DIR", "HYPERPARAMETER_KEYS", "OPS", "load_case", "load_cases"]

GOLDEN_DIR = Path(__file__).parent
OPS = ("conv", "max_pool", "avg_pool", "im2col", "dropin_conv", "dropin_maxpool", "dropin_avepool")
# Stored as small arrays; load_case turns them into Python values (str, int, float, bool, (h, w) tuples).
HYPERPARAMETER_KEYS = frozenset(
    {"op", "mode", "backward_mode", "kernel", "stride", "padding", "pad_value", "pad", "f", "ties"}
)


def load_case(path: str | Path) -> dict[str, Any]:
    """Load one golden npz: arrays stay arrays, hyperparameters become str/int/float/bool or (h, w) tuples."""
    case: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            arr = data[key]
            if key in HYPERPARAMETER_KEYS:
                case[key] = arr.item() if arr.ndim == 0 else tuple(v.item() for v in arr)
            else:
                case[key] = arr
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
