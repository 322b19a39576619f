"""``python -m benchmarks`` (the README's main job) runs and reports sane figures: a quick run on two cases."""

from __future__ import annotations

from benchmarks.smoke_check import check_report


def test_benchmark_report_runs(tmp_path):
    rows = check_report(tmp_path)
    assert {r["case"] for r in rows} == {"C1", "P1"}
