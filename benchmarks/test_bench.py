"""pytest-benchmark suite: every op of im2col_cnn on every benchmark case, in float32 and float64.

Run ``python -m pytest benchmarks --benchmark-only`` (the normal test run collects only ``tests/``). Save a run
with ``--benchmark-autosave`` and compare a later one with ``--benchmark-compare`` (add
``--benchmark-compare-fail=median:10%`` to fail on a regression). Backward benchmarks time only the backward
call: the forward pass that makes the cache runs before timing starts.
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn

from .cases import CASES, DTYPES, OPS, Case, cases_for, make_call, make_inputs

PARAMS = [
    pytest.param(op, case, dtype, id=f"{op}-{case.name}-{np.dtype(dtype).name}")
    for op in OPS
    for case in cases_for(op, CASES)
    for dtype in DTYPES
]


@pytest.mark.parametrize(("op", "case", "dtype"), PARAMS)
def test_op(benchmark, op: str, case: Case, dtype: type[np.floating]) -> None:
    inputs = make_inputs(case, dtype)
    call = make_call(im2col_cnn, op, case, inputs)  # backward: the forward pass (cache) runs here, untimed
    benchmark.group = op
    benchmark.extra_info.update(case=case.name, dtype=np.dtype(dtype).name, shape=case.describe())
    result = benchmark(call)
    assert all(np.all(np.isfinite(a)) for a in result)
    assert all(a.dtype == dtype for a in result)
