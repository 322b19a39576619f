"""The engine and the loop reference, each against every stored N-d golden case (reference/golden/nd/*.npz).

The cases were produced by the reference loops (see reference/golden/README.md for the keys): 1-D and 3-D
convolution, transposed convolution, max and average pooling, adaptive pooling at 1, 2 and 3 spatial axes,
unfold / fold and the N-d im2col / col2im. Both implementations get the same call (the function names are
identical); the float32 cases were computed in float32, so the comparison uses the float32 tolerance of
``assert_close``, and max pooling's winners (``cache.indices``) must match exactly. The engine is imported
inside the test, so the reference side runs on its own (``-k reference``).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from _helpers import assert_close

from reference.golden import ND_OPS, OPS, forward_kwargs, load_cases, load_nd_cases

CASES = load_nd_cases()
IMPLS = {"engine": "im2col_cnn", "reference": "reference"}


def run_case(impl, case: dict) -> dict[str, np.ndarray]:
    """Run ``case`` through ``impl``; return the results under the case's own key names."""
    op, x = case["op"], case["x"]
    if op.startswith("conv"):  # conv1d, conv3d, conv_transpose1d, conv_transpose3d
        out, cache = getattr(impl, f"{op}_forward")(x, case["w"], case.get("b"), **forward_kwargs(case))
        dx, dw, db = getattr(impl, f"{op}_backward")(case["dout"], cache)
        return {"out": out, "dx": dx, "dw": dw, "db": db}
    if op.startswith(("max_pool", "avg_pool", "adaptive")):
        if op.startswith("adaptive"):  # adaptive_avg_pool / adaptive_max_pool: the rank from x
            name, second = f"{op}{x.ndim - 2}d", case["output_size"]
        else:
            name, second = op, case["kernel"]
        out, cache = getattr(impl, f"{name}_forward")(x, second, **forward_kwargs(case))
        results = {"out": out, "dx": getattr(impl, f"{name}_backward")(case["dout"], cache)}
        return results | ({"indices": cache.indices} if "indices" in case else {})
    if op == "unfold":  # PyTorch's positional order: kernel_size, dilation, padding, stride
        geometry = (case["kernel"], case["dilation"], case["padding"], case["stride"])
        cols = impl.unfold(x, *geometry)
        return {"cols": cols, "dx": impl.fold(case["dcols"], x.shape[2:], *geometry)}
    if op == "im2col_nd":
        kwargs = forward_kwargs(case)
        cols = impl.im2col(x, case["kernel"], **kwargs)
        del kwargs["pad_value"]
        return {"cols": cols, "dx": impl.col2im(case["dcols"], x.shape, case["kernel"], **kwargs)}
    raise AssertionError(f"unknown N-d golden op {op!r}")


def test_nd_golden_cases_cover_every_op_dtype_and_rank():
    assert {case["op"] for _, case in CASES} == set(ND_OPS)
    for op in ND_OPS:
        assert {str(case["x"].dtype) for _, case in CASES if case["op"] == op} == {"float32", "float64"}
    for op in ("adaptive_avg_pool", "adaptive_max_pool", "unfold"):
        assert {case["x"].ndim - 2 for _, case in CASES if case["op"] == op} == {1, 2, 3}
    ranks = {case["x"].ndim - 2 for _, case in CASES if case["op"] == "im2col_nd"}
    assert ranks == {1, 3}


def test_load_cases_keeps_the_2d_ops_apart():
    assert {case["op"] for _, case in load_cases()} == set(OPS)  # what tests/test_golden.py runs
    assert [name for name, _ in load_cases("conv1d", "float64")] == [
        name for name, case in CASES if case["op"] == "conv1d" and case["x"].dtype == np.float64
    ]
    adaptive = dict(load_nd_cases("adaptive_max_pool"))
    assert any(None in case["output_size"] for case in adaptive.values() if isinstance(case["output_size"], tuple))


@pytest.mark.parametrize("impl_name", list(IMPLS))
@pytest.mark.parametrize(("name", "case"), CASES, ids=[name for name, _ in CASES])
def test_golden_nd_case(name, case, impl_name):
    impl = importlib.import_module(IMPLS[impl_name])
    dtype = case["x"].dtype
    results = run_case(impl, case)
    for key, value in results.items():
        assert key in case, f"{name} has no stored {key!r}"
        try:
            if key == "indices":  # int64 positions: exact
                assert np.asarray(value).dtype == np.int64, f"indices dtype {np.asarray(value).dtype}"
                np.testing.assert_array_equal(value, case[key])
            else:
                assert_close(value, case[key], dtype)
        except AssertionError as exc:
            raise AssertionError(f"{impl_name} {name}: {key} differs from the golden value\n{exc}") from None
