"""``python -m benchmarks`` (the README's main job): a quick run, the quick-run marks, the plot, bad output paths."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

from benchmarks.__main__ import main
from benchmarks.report import Row, check_writable, plot_figure
from benchmarks.smoke_check import check_report


def test_benchmark_report_runs(tmp_path):
    rows = check_report(tmp_path)
    assert {r["case"] for r in rows} == {"C1", "P1"}


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def test_quick_run_is_marked_in_the_report_and_the_json(tmp_path):
    path = tmp_path / "quick.json"
    status, out, _ = _run(["--quick", "--cases", "C1", "--no-torch", "--repeats", "1", "--json", str(path)])
    assert status == 0
    assert out.splitlines()[0] == "im2col_cnn benchmark report (python -m benchmarks --quick): QUICK RUN"
    meta = json.loads(path.read_text(encoding="utf-8"))["meta"]
    assert meta["quick"] is True and meta["batch_cap"] == 8
    assert meta["quick_note"].startswith("QUICK MODE: at most 8 images per case")


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_unwritable_output_path_fails_before_the_run(tmp_path, option):
    missing = tmp_path / "no-such-dir" / "out.file"
    status, out, err = _run(["--quick", "--cases", "C1", "--no-torch", option, str(missing)])
    assert status == 2 and out == ""  # argparse's usage error, before the report's first line
    assert f"{option} '{missing}': cannot write there: the directory '{missing.parent}' does not exist" in err
    status, out, err = _run(["--quick", "--cases", "C1", "--no-torch", option, str(tmp_path)])
    assert status == 2 and out == ""
    assert f"{option} '{tmp_path}': cannot write there: it is a directory" in err
    assert not missing.parent.exists()


def test_check_writable_names_a_read_only_file_or_directory(tmp_path, monkeypatch):
    existing = tmp_path / "old.json"
    existing.write_text("{}", encoding="utf-8")
    new = tmp_path / "new.json"
    assert check_writable(existing, "--json") is None and check_writable(new, "--json") is None
    assert not new.exists()  # checking creates nothing
    monkeypatch.setattr("benchmarks.report.os.access", lambda path, mode: False)  # as an unprivileged user sees it
    assert check_writable(existing, "--json") == f"--json '{existing}': cannot write there: the file is not writable"
    expected = f"--json '{new}': cannot write there: the directory '{tmp_path}' is not writable"
    assert check_writable(new, "--json") == expected


def _row(op, case, **ratios):
    return Row(op, case, "float32", 8, 1e-3, 1.0, 1, 0.5, 500.0, 0.0, **ratios)


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_draws_only_the_series_it_has():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    conv = _row("conv2d_forward", "C1", gflops=1.0, matmul_s=1e-4, x_matmul=10.0)
    pool = _row("max_pool2d_forward", "P1")
    fig = plot_figure([conv, pool], note="quick run: at most 8 images per case, not the figures to quote")
    top, bottom = fig.axes
    assert "quick run" in top.get_title()
    assert len(top.patches) == 2  # a speedup bar for every row
    assert _legend(bottom) == ["engine / bare matmul"]  # no PyTorch series without PyTorch figures
    assert len(bottom.patches) == 1 and [t.get_text() for t in bottom.get_xticklabels()] == ["conv2d fwd C1 32"]
    assert "PyTorch" not in bottom.get_title()
    plt.close(fig)

    fig = plot_figure([pool])  # pooling without PyTorch: nothing to draw below, so no lower panel
    assert len(fig.axes) == 1 and "quick run" not in fig.axes[0].get_title()
    plt.close(fig)

    pool_torch = _row("max_pool2d_forward", "P1", torch_s=1e-3, torch_layout="NCHW", x_torch=0.5)
    fig = plot_figure([conv, pool_torch])
    bottom = fig.axes[1]
    assert _legend(bottom) == ["engine / bare matmul", "engine / PyTorch CPU"]
    assert "(missing bar: n/a)" in bottom.get_title()  # conv C1 has no PyTorch figure, P1 no matmul
    plt.close(fig)


def test_layout_section_times_both_layouts_of_every_row():
    status, out, _ = _run(["--layouts", "--cases", "C1,P1,A1", "--quick", "--repeats", "1"])
    assert status == 0
    lines = [line.replace(" *", "") for line in out.splitlines() if line.startswith(("C1 ", "P1 ", "A1 "))]
    rows = {(line.split()[0], " ".join(line.split()[2:-4])) for line in lines}
    assert rows == {
        ("C1", "conv forward"),
        ("C1", "conv backward"),
        ("C1", "transposed forward"),
        ("C1", "transposed backward"),
        ("C1", "CS231n conv_forward_fast"),
        ("C1", "CS231n conv_backward_fast"),
        *(("P1", f"{kind} pool {way}") for kind in ("max", "avg") for way in ("forward", "backward")),
        ("A1", "adaptive avg pool forward"),
        ("A1", "adaptive avg pool backward"),
    }
    assert len(lines) == 24  # both dtypes
    assert re.search(r"Minimum of [1-9]\d* or more interleaved rounds per call", out)
    for line in lines:
        last, first, ratio, median = (float(v) for v in line.split()[-4:])
        assert last > 0 and first > 0 and median > 0
        # the ratio of the unrounded times: within what the printed (3-decimal ms, 2-decimal ratio) values allow
        assert (first - 5e-4) / (last + 5e-4) - 5e-3 <= ratio <= (first + 5e-4) / (last - 5e-4) + 5e-3


def test_scaling_figures_follow_amdahls_law():
    from benchmarks.scaling import projected_ratio, serial_fraction

    assert serial_fraction(2.0, 2) == 0.0 and serial_fraction(1.0, 2) == 1.0
    assert serial_fraction(1.25, 2) == pytest.approx(0.6)  # 2 / 1.25 - 1
    assert serial_fraction(4.0, 8) == pytest.approx(1 / 7)  # (8/4 - 1) / 7
    # An op twice its floor on one core; the op does not scale, the floor does perfectly: at 16 cores, 2 * 16.
    assert projected_ratio(2.0, 1.0, 1.0, 2.0, 2, 16) == pytest.approx(32.0)
    # Both scale alike: the 1-core ratio holds at every core count.
    assert projected_ratio(3.0, 1.6, 1.0, 1.6, 2, 64) == pytest.approx(3.0)


def test_the_pooling_floor_for_scaling_is_a_copy_made_by_every_thread():
    import benchmarks.scaling as scaling
    import im2col_cnn as ic

    x = np.arange(5 * 64 * 64 * 8, dtype=np.float32).reshape(5, 64, 64, 8)  # 640 KiB
    ic.set_num_threads(2)
    try:
        y = scaling.threaded_copy(x)  # on 2 cores: blocks of 3 and 2 images, one per thread
    finally:
        ic.set_num_threads(None)  # the default again (the environment or the cores), not a fixed count
    assert y.dtype == x.dtype and np.array_equal(y, x) and not np.shares_memory(x, y)
    floor = scaling._case_calls("max_pool2d_forward:P1:float32")["floor"]
    assert floor.func is scaling.threaded_copy and floor.args[0].shape == (64, 32, 32, 64)


def test_scaling_section_times_each_row_on_one_core_and_on_all(monkeypatch):
    import benchmarks.scaling as scaling

    status, out, _ = _run(["--scaling", "--cases", "C1,P1", "--quick", "--repeats", "1"])
    assert status == 0
    lines = [line for line in out.splitlines() if line.split(":")[0].endswith(("_forward", "_backward"))]
    names = {line.split()[0] for line in lines}
    assert names == {
        f"{op}:{case}:{dtype}"
        for op, case in [("conv2d_forward", "C1"), ("conv2d_backward", "C1")]
        + [(f"{k}_pool2d_{way}", "P1") for k in ("max", "avg") for way in ("forward", "backward")]
        for dtype in ("float32", "float64")
    }
    for line in lines:
        one, many, speedup, floor, serial = (float(v) for v in line.split()[1:6])
        assert one > 0 and many > 0
        # the ratio of the unrounded times: within what the printed (3-decimal ms, 2-decimal ratio) values allow
        assert (one - 5e-4) / (many + 5e-4) - 5e-3 <= speedup <= (one + 5e-4) / (many - 5e-4) + 5e-3
        assert line.split()[-1] in ("met", "MISSED")
    assert not [line for line in out.splitlines() if line.startswith("step")]  # --cases: no training step
    assert scaling.THREAD_VARIABLES[-1] == "IM2COL_CNN_NUM_THREADS"


def test_interleaved_rounds_settle_each_call_untimed_then_time_a_block():
    """The report's conv rows: in every round each call runs ``settle_s`` untimed, then ``block_s`` timed."""
    import itertools
    import time

    from benchmarks.timing import interleaved_medians

    log = []

    def call(name, seconds):
        def fn():
            log.append(name)
            time.sleep(seconds)

        return fn

    calls = {"engine": (call("engine", 0.002), None), "floor": (call("floor", 0.001), None)}
    medians = interleaved_medians(calls, repeats=2, warmup=1, settle_s=0.01, block_s=0.004)
    assert 0.002 <= medians["engine"] < 0.02 and 0.001 <= medians["floor"] < 0.02
    runs = [(name, len(list(group))) for name, group in itertools.groupby(log[2:])]  # after warm-ups
    assert [name for name, _ in runs] == ["engine", "floor"] * 2  # rounds alternate the calls
    assert all(n >= (8 if name == "floor" else 5) for name, n in runs)  # settled 10 ms and timed 4 ms each time
    plain = interleaved_medians(calls, repeats=3, warmup=0)  # by default once per round, no settling
    assert plain.keys() == medians.keys()


def test_scaling_times_the_step_with_freed_memory_kept_last_in_each_process(monkeypatch):
    import benchmarks.scaling as scaling

    jobs = scaling.jobs_for([], step=True)
    kept = [j for j in jobs if j.endswith(":kept")]
    can = scaling.keep_freed_memory(check_only=True)
    assert kept == (["step:B:float32:kept", "step:B:float64:kept"] if can else [])
    order = []
    monkeypatch.setattr(scaling, "_step_times", lambda job, *_: order.append(job) or {"op": 2.0, "layers": 1.0})
    scaling.run_child(["step:B:float32:kept", "step:B:float32", "step:B:float64:kept", "step:B:float64"], 1, 0.0)
    assert order == ["step:B:float32", "step:B:float64", "step:B:float32:kept", "step:B:float64:kept"]
    times = {"op": 2.0, "layers": 1.0, "floor": 0.5}
    result = {"cores": 2, "jobs": ["step:B:float32", "step:B:float32:kept"], "one": {}, "all": {}}
    for job in result["jobs"]:
        result["one"][job], result["all"][job] = times, {k: v / 1.6 for k, v in times.items()}
    labels = [r["row"] for r in scaling.rows(result)]
    assert labels == ["step:B:float32", "step layers:B:float32", "step layers:B:float32:kept"]  # no whole-step kept row
