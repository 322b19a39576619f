"""The engine and the loop reference, each against every stored golden case (reference/golden/*.npz).

The cases were produced by the reference loops (see reference/golden/README.md for the keys); the float32
cases were computed in float32, so the comparison uses the float32 tolerance of ``assert_close``.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import assert_close

import im2col_cnn
import reference
from reference.golden import OPS, forward_kwargs, load_cases

CASES = load_cases()
IMPLS = {"engine": im2col_cnn, "reference": reference}


def run_case(impl, case: dict) -> dict[str, np.ndarray]:
    """Run ``case`` through ``impl``; return the results under the case's own key names."""
    op = case["op"]
    if op == "conv":
        out, cache = impl.conv2d_forward(
            case["x"], case["w"], case["b"], stride=case["stride"], padding=case["padding"]
        )
        dx, dw, db = impl.conv2d_backward(case["dout"], cache)
        return {"out": out, "dx": dx, "dw": dw, "db": db}
    if op in ("max_pool", "avg_pool"):
        fwd, bwd = {
            "max_pool": (impl.max_pool2d_forward, impl.max_pool2d_backward),
            "avg_pool": (impl.avg_pool2d_forward, impl.avg_pool2d_backward),
        }[op]
        out, cache = fwd(case["x"], case["kernel"], stride=case["stride"], padding=case["padding"])
        return {"out": out, "dx": bwd(case["dout"], cache)}
    if op == "im2col":
        geometry = dict(stride=case["stride"], padding=case["padding"])
        cols = impl.im2col(case["x"], case["kernel"], pad_value=case["pad_value"], **geometry)
        return {"cols": cols, "dx": impl.col2im(case["dcols"], case["x"].shape, case["kernel"], **geometry)}
    if op == "dropin_conv":
        out, cache = impl.forward(case["x"], case["w"], case["b"], case["pad"], case["stride"], case["f"], mode="conv")
        assert cache[0] is case["x"]
        dx, dw, db = impl.backward(case["dout"], cache)
        return {"out": out, "dx": dx, "dw": dw, "db": db}
    if op in ("dropin_maxpool", "dropin_avepool"):
        x = case["x"]
        out, cache = impl.forward(x, None, None, case["pad"], case["stride"], case["f"], mode=case["mode"])
        assert cache[0] is x
        return {"out": out, "dx": impl.pool_backward(case["dout"], cache, mode=case["backward_mode"])}
    if op in ("conv_general", "conv_transpose"):
        prefix = "conv2d" if op == "conv_general" else "conv_transpose2d"
        fwd, bwd = getattr(impl, f"{prefix}_forward"), getattr(impl, f"{prefix}_backward")
        out, cache = fwd(case["x"], case["w"], case.get("b"), **forward_kwargs(case))
        dx, dw, db = bwd(case["dout"], cache)
        return {"out": out, "dx": dx, "dw": dw} | ({"db": db} if "b" in case else {})
    if op in ("max_pool_general", "avg_pool_general"):
        name = "max_pool2d" if op == "max_pool_general" else "avg_pool2d"
        out, cache = getattr(impl, f"{name}_forward")(case["x"], case["kernel"], **forward_kwargs(case))
        results = {"out": out, "dx": getattr(impl, f"{name}_backward")(case["dout"], cache)}
        return results | ({"indices": cache.indices} if op == "max_pool_general" else {})
    raise AssertionError(f"unknown golden op {op!r}")


def test_golden_cases_cover_every_op_and_dtype():
    assert {case["op"] for _, case in CASES} == set(OPS)
    for op in OPS:
        assert {str(case["x"].dtype) for _, case in CASES if case["op"] == op} == {"float32", "float64"}


@pytest.mark.parametrize("impl_name", list(IMPLS))
@pytest.mark.parametrize(("name", "case"), CASES, ids=[name for name, _ in CASES])
def test_golden_case(name, case, impl_name):
    dtype = case["x"].dtype
    results = run_case(IMPLS[impl_name], case)
    for key, value in results.items():
        assert key in case, f"{name} has no stored {key!r}"
        try:
            if key == "indices":  # int64 positions: exact
                np.testing.assert_array_equal(value, case[key])
            else:
                assert_close(value, case[key], dtype)
        except AssertionError as exc:
            raise AssertionError(f"{impl_name} {name}: {key} differs from the golden value\n{exc}") from None
