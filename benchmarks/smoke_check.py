"""A fast smoke test of ``python -m benchmarks`` for the test suite (a few seconds).

Call :func:`check_report` from a test, e.g.::

    from benchmarks.smoke_check import check_report

    def test_benchmark_report_runs(tmp_path):
        check_report(tmp_path)

It runs the report in ``--quick`` mode on cases C1 and P1 without PyTorch, reads back its JSON and checks that
every op/case/dtype row is there with finite positive times and an engine-vs-loops difference within tolerance.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

from .__main__ import main
from .cases import DTYPES, OPS, cases_for, parse_case_names

__all__ = ["check_report", "TOLERANCE"]

TOLERANCE = {"float32": 1e-4, "float64": 1e-10}  # max |engine - loops| allowed per dtype


def check_report(tmp_dir: str | Path, cases: str = "C1,P1", *, use_torch: bool = False) -> list[dict]:
    """Run ``python -m benchmarks --quick --cases <cases> --json ...`` in-process and check its rows.

    Returns the JSON rows; raises ``AssertionError`` naming the first problem found. Output is captured.
    """
    path = Path(tmp_dir) / "benchmark_smoke.json"
    argv = ["--quick", "--cases", cases, "--json", str(path)] + ([] if use_torch else ["--no-torch"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    assert status == 0, f"python -m benchmarks {' '.join(argv)} returned {status}\n{err.getvalue()}"
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    missing_tables = [op for op in {r["op"] for r in rows} if f"== {op} ==" not in out.getvalue()]
    assert not missing_tables, f"no printed table for {missing_tables}:\n{out.getvalue()}"

    selected = parse_case_names(cases)
    expected = {(op, c.name, dtype.__name__) for op in OPS for c in cases_for(op, selected) for dtype in DTYPES}
    found = {(r["op"], r["case"], r["dtype"]) for r in rows}
    assert found == expected, f"rows missing: {sorted(expected - found)}, unexpected: {sorted(found - expected)}"

    for r in rows:
        where = f"{r['op']} {r['case']} {r['dtype']}"
        for key in ("engine_s", "loops_s", "speedup"):
            value = r[key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, f"{where}: {key}={value}"
        assert r["peak_mib"] is not None and r["peak_mib"] >= 0, f"{where}: peak_mib={r['peak_mib']}"
        assert r["max_abs_diff"] <= TOLERANCE[r["dtype"]], f"{where}: max |diff| {r['max_abs_diff']} too large"
        if r["op"].startswith("conv"):
            for key in ("gflops", "matmul_s", "x_matmul"):
                value = r[key]
                assert value is not None and math.isfinite(value) and value > 0, f"{where}: {key}={value}"
    return rows
