"""The training-step section of ``python -m benchmarks``: the step's gradients are right, the first layer skips its
input gradient when the engine can, the section reports every op, and ``--engine`` picks the package timed."""

from __future__ import annotations

import inspect
import json
import math
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import im2col_cnn
from benchmarks import __main__ as report_module
from benchmarks import sysinfo
from benchmarks import training_nets as tn
from benchmarks import training_step as ts
from benchmarks.__main__ import main as report_main

ROOT = Path(__file__).resolve().parents[1]
ENGINE = tn.wrap_engine(im2col_cnn)
NET_A, NET_B = tn.NETS
OPS_A = [
    *("conv1 fwd", "relu1 fwd", "pool1 fwd", "conv2 fwd", "relu2 fwd", "pool2 fwd", "loss"),
    *("pool2 bwd", "relu2 bwd", "conv2 bwd", "pool1 bwd", "relu1 bwd", "conv1 bwd"),
]


def _snapshot(inputs: tn.Inputs) -> list[np.ndarray]:
    return [inputs.x.copy(), inputs.g.copy(), *(a.copy() for pair in inputs.params for a in pair)]


def test_nets_have_the_layers_and_shapes_of_the_section():
    assert NET_A.labels() == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
    assert NET_A.shapes(64)[-1] == (64, 7, 7, 64)
    assert NET_B.labels()[4] == "pool1" and NET_B.shapes(64)[-1] == (64, 8, 8, 64)
    inputs = tn.make_inputs(NET_B, np.float32, 3)
    assert [w.shape for w, _ in inputs.params] == [(3, 3, 3, 32), (3, 3, 32, 32), (3, 3, 32, 64), (3, 3, 64, 64)]
    assert inputs.x.dtype == inputs.g.dtype == np.float32 and inputs.g.shape == (3, 8, 8, 64)


@pytest.mark.parametrize("net", tn.NETS, ids=lambda n: n.name)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_engine_step_matches_pytorch(net, dtype, tol):
    torch = pytest.importorskip("torch")
    inputs = tn.make_inputs(net, dtype, 2)
    before = _snapshot(inputs)
    loss, grads = tn.engine_step(ENGINE, net, inputs, activation_grads=True)
    for layout in ("NCHW", "channels_last"):
        torch_loss, expected = tn.torch_grads(torch, net, inputs, layout)
        assert sorted(grads) == sorted(expected)
        assert abs(loss - torch_loss) <= tol * abs(torch_loss)
        assert tn.max_rel_diff(grads, expected) <= tol
    convs = sum(layer[0] == "conv" for layer in net.layers)
    assert len(grads) == 3 * convs - 1  # dw, db per conv; dx of every conv input but the first
    assert all(np.array_equal(a, b) for a, b in zip(_snapshot(inputs), before, strict=True))  # inputs untouched


def _loss(net: tn.Net, inputs: tn.Inputs) -> float:
    return tn.engine_step(ENGINE, net, inputs)[0]


def test_engine_step_matches_numerical_gradients():
    """Central differences of the loss in float64 for a few weights and a bias of every conv of net B (its
    ReLU backward runs in place on the gradient of a conv input)."""
    inputs = tn.make_inputs(NET_B, np.float64, 1)
    loss, grads = tn.engine_step(ENGINE, NET_B, inputs)
    eps = 1e-6
    for k, (w, b) in enumerate(inputs.params, 1):
        for arr, key, idx in ((w, "dw", (1, 2, w.shape[2] - 1, 5)), (b, "db", (7,))):
            saved = arr[idx]
            arr[idx] = saved + eps
            up = _loss(NET_B, inputs)
            arr[idx] = saved - eps
            down = _loss(NET_B, inputs)
            arr[idx] = saved
            assert grads[f"conv{k} {key}"][idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7)


def test_engine_step_loss_matches_the_reference_loops():
    """Net A's loss from an independent forward pass: the reference loops (conv, pool) and NumPy ReLU."""
    import reference

    inputs = tn.make_inputs(NET_A, np.float64, 1)
    a, params = inputs.x, iter(inputs.params)
    for layer in NET_A.layers:
        if layer[0] == "conv":
            a = reference.conv2d_forward(a, *next(params), stride=1, padding=1)[0]
        elif layer[0] == "relu":
            a = np.maximum(a, 0)
        else:
            a = reference.max_pool2d_forward(a, 2)[0]
    assert _loss(NET_A, inputs) == pytest.approx(float(np.sum(a * inputs.g)), rel=1e-12)


def _engine_with_need_dx(calls: list[bool]) -> types.SimpleNamespace:
    """The engine with ``conv2d_backward(..., need_dx=)`` as it is being added, recording each call's flag."""

    def conv2d_backward(dout, cache, *, need_dx=True):
        calls.append(need_dx)
        dx, dw, db = im2col_cnn.conv2d_backward(dout, cache)
        return (dx if need_dx else None), dw, db

    return types.SimpleNamespace(
        __file__="fake_engine.py",
        conv2d_forward=im2col_cnn.conv2d_forward,
        conv2d_backward=conv2d_backward,
        max_pool2d_forward=im2col_cnn.max_pool2d_forward,
        max_pool2d_backward=im2col_cnn.max_pool2d_backward,
    )


def test_first_conv_skips_its_input_gradient_when_the_engine_takes_need_dx():
    calls: list[bool] = []
    fake = tn.wrap_engine(_engine_with_need_dx(calls))
    assert fake.need_dx
    assert ENGINE.need_dx == ("need_dx" in inspect.signature(im2col_cnn.conv2d_backward).parameters)
    inputs = tn.make_inputs(NET_A, np.float64, 2)
    loss, grads = tn.engine_step(fake, NET_A, inputs, activation_grads=True)
    assert calls == [True, False]  # conv2 (its dx feeds pool1), then conv1 without dx
    expected_loss, expected = tn.engine_step(ENGINE, NET_A, inputs, activation_grads=True)
    assert loss == expected_loss and tn.max_rel_diff(grads, expected) == 0.0


def test_section_reports_every_op_and_returns_json_rows(capsys):
    result = ts.run(ENGINE, None, "PyTorch skipped", batch=2, timing=ts.Timing(2, 0.0), nets=[NET_A])
    out = capsys.readouterr().out
    assert f"Engine: {im2col_cnn.__file__}" in out and "Per op, net A" in out and "Load average" in out
    assert f"Engine threads (get_num_threads): {im2col_cnn.get_num_threads()};" in out
    assert result["meta"]["engine_threads"] == im2col_cnn.get_num_threads()
    assert [(r["net"], r["dtype"]) for r in result["rows"]] == [("A", "float32"), ("A", "float64")]
    for row in result["rows"]:
        assert list(row["ops"]) == OPS_A
        assert 0 < row["engine_min_s"] <= row["engine_median_s"] and row["x_torch"] is None
        assert all(0 < v["min_s"] <= v["median_s"] for v in row["ops"].values())
        relu_loss = sum(v["median_s"] for k, v in row["ops"].items() if k[:4] == "relu" or k == "loss")
        assert row["relu_loss_s"] == pytest.approx(relu_loss)
    json.dumps(result)  # JSON-able as it is


def test_gemm_floor_is_every_conv_product_of_the_step():
    results = [product() for product in ts.gemm_products(NET_A, np.float32, 2)]
    # conv1: x (2, 28, 28, 1), 1 -> 32: cols @ w (M, 32) and colsᵀ @ dout (9, 32), no input gradient;
    # conv2: x (2, 14, 14, 32), 32 -> 64: (M, 64), (288, 64) and dout @ wᵀ (M, 288)
    assert [r.shape for r in results] == [(1568, 32), (9, 32), (392, 64), (288, 64), (392, 288)]
    assert all(r.dtype == np.float32 for r in results)
    row = ts.time_gemms(NET_A, np.float32, 2, ts.Timing(2, 0.0))
    assert 0 < row["gemm_min_s"] <= row["gemm_median_s"]


def test_section_times_on_the_chosen_clock(monkeypatch, capsys):
    ticks = iter(range(10**6))
    monkeypatch.setitem(ts.CLOCKS, "cpu", lambda: 0.25 * next(ticks))  # every reading 0.25 s after the last
    assert ts.repeat(lambda: None, ts.Timing(3, 0.0, "cpu")) == [0.25, 0.25, 0.25]
    result = ts.run(ENGINE, None, "PyTorch skipped", batch=1, timing=ts.Timing(1, 0.0, "cpu"), nets=[NET_A])
    out = capsys.readouterr().out
    assert "Clock: cpu" in out and "time.process_time (CPU, all threads)" in out
    row = result["rows"][0]
    assert result["meta"]["clock"] == "cpu" and all(v["min_s"] == 0.25 for v in row["ops"].values())
    assert row["engine_min_s"] == 0.25 * (len(OPS_A) + 2)  # readings: the step's start (twice), each lap, the end


def test_step_only_flag_runs_only_the_section(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report_module, "QUICK_BATCH", 1)  # keep the test fast: one image per step
    monkeypatch.setattr(sysinfo, "SAMPLE_S", 0.01)
    path = tmp_path / "step.json"
    assert report_main(["--step-only", "--quick", "--no-torch", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "== training step: batch 1" in out and "Per op, net B" in out
    assert "== conv2d_forward ==" not in out and "workspace limit" not in out
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["rows"] == [] and doc["memory"] == []
    rows = doc["meta"]["training_step"]["rows"]
    assert [(r["net"], r["dtype"]) for r in rows] == [(n.name, d) for n in tn.NETS for d in ("float32", "float64")]
    assert all(math.isfinite(r["engine_min_s"]) for r in rows)


def test_engine_flag_times_the_package_in_the_given_directory(tmp_path):
    shutil.copytree(ROOT / "im2col_cnn", tmp_path / "im2col_cnn", ignore=shutil.ignore_patterns("__pycache__"))
    argv = [sys.executable, "-m", "benchmarks.training_step", "--engine", str(tmp_path), "--quick", "--batch", "1"]
    done = subprocess.run([*argv, "--no-torch"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"Engine: {tmp_path.resolve() / 'im2col_cnn' / '__init__.py'}" in done.stdout


def test_engine_flag_errors(tmp_path):
    with pytest.raises(ValueError, match="expected a directory holding the im2col_cnn package, got 'nowhere'"):
        tn.load_engine("nowhere")
    (tmp_path / "im2col_cnn").mkdir()
    (tmp_path / "im2col_cnn" / "__init__.py").write_text("", encoding="utf-8")
    path_before = list(sys.path)
    with pytest.raises(ValueError, match="im2col_cnn was already imported from .*, not from"):
        tn.load_engine(str(tmp_path))  # one process cannot hold two engines
    assert tn.load_engine(str(ROOT)).module is im2col_cnn  # the one already imported
    assert sys.path == path_before
