"""The two small CNNs of the training-step benchmark, and one training step of each with the engine and PyTorch.

A step is the forward and backward pass of every conv and max-pool layer (the engine's functions, NHWC), ReLU in
NumPy and the loss ``sum(out * g)`` for a fixed random ``g`` (so the backward pass starts from a real ``dout``).
PyTorch's step uses ``nn.functional`` with autograd on the same numbers, so the two can be checked against each
other. Timing and tables are in :mod:`benchmarks.training_step`.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "NETS",
    "DTYPES",
    "Net",
    "Engine",
    "Inputs",
    "Laps",
    "wrap_engine",
    "load_engine",
    "make_inputs",
    "engine_step",
    "torch_tensors",
    "torch_step",
    "torch_grads",
    "max_rel_diff",
]


@dataclass(frozen=True)
class Net:
    """A stack of layers: ``("conv", C_out)`` (3x3, stride 1, padding 1, with bias), ``("relu",)``, ``("pool",)``
    (max, 2x2, stride 2). ``hwc`` is the input image's (H, W, C)."""

    name: str
    hwc: tuple[int, int, int]
    layers: tuple[tuple[Any, ...], ...]

    def labels(self) -> list[str]:
        """One name per layer: conv1, relu1, pool1, conv2, ... (numbered per kind)."""
        counts: dict[str, int] = {}
        out = []
        for layer in self.layers:
            counts[layer[0]] = counts.get(layer[0], 0) + 1
            out.append(f"{layer[0]}{counts[layer[0]]}")
        return out

    def shapes(self, batch: int) -> list[tuple[int, int, int, int]]:
        """NHWC shape of the input, then of each layer's output."""
        shape = (batch, *self.hwc)
        out = [shape]
        for layer in self.layers:
            n, h, w, c = shape
            if layer[0] == "conv":
                shape = (n, h, w, layer[1])
            elif layer[0] == "pool":
                shape = (n, h // 2, w // 2, c)
            out.append(shape)
        return out

    def describe(self) -> str:
        parts = {"conv": lambda c: f"conv 3x3 ->{c[1]}", "relu": lambda c: "ReLU", "pool": lambda c: "max-pool 2"}
        h, w, c = self.hwc
        return f"{h}x{w}x{c}: " + ", ".join(parts[layer[0]](layer) for layer in self.layers)


_R, _P = ("relu",), ("pool",)
NETS: tuple[Net, ...] = (
    Net("A", (28, 28, 1), (("conv", 32), _R, _P, ("conv", 64), _R, _P)),
    Net("B", (32, 32, 3), (("conv", 32), _R, ("conv", 32), _R, _P, ("conv", 64), _R, ("conv", 64), _R, _P)),
)
DTYPES: tuple[type[np.floating], ...] = (np.float32, np.float64)


@dataclass(frozen=True)
class Engine:
    """The engine module and what it supports, detected once: ``need_dx`` is True when ``conv2d_backward``
    takes ``need_dx=`` (then the first layer skips its input gradient)."""

    module: ModuleType
    need_dx: bool


def wrap_engine(module: ModuleType) -> Engine:
    """Feature-detect ``module`` (an ``im2col_cnn``-like module) once."""
    return Engine(module, "need_dx" in inspect.signature(module.conv2d_backward).parameters)


def load_engine(directory: str | None = None) -> Engine:
    """``im2col_cnn`` from ``directory`` (which holds the ``im2col_cnn`` package), or from ``sys.path`` when None.

    Raises ``ValueError`` when ``directory`` has no ``im2col_cnn`` package, or when another ``im2col_cnn`` was
    imported already (a process cannot hold two).
    """
    if directory is not None:
        root = Path(directory).resolve()
        if not (root / "im2col_cnn" / "__init__.py").is_file():
            raise ValueError(f"--engine: expected a directory holding the im2col_cnn package, got {str(directory)!r}")
        loaded = sys.modules.get("im2col_cnn")
        if loaded is not None:
            if Path(loaded.__file__ or "").resolve().parents[1] != root:
                raise ValueError(f"--engine: im2col_cnn was already imported from {loaded.__file__}, not from {root}")
            return wrap_engine(loaded)
        sys.path.insert(0, str(root))
    return wrap_engine(importlib.import_module("im2col_cnn"))


@dataclass
class Inputs:
    """``x`` (N, H, W, C); per conv ``(w (3, 3, C_in, C_out), b (C_out,))``; ``g``: the loss weights, shape of
    the net's output (N, Ho, Wo, C_last)."""

    x: np.ndarray
    params: list[tuple[np.ndarray, np.ndarray]]
    g: np.ndarray


def make_inputs(net: Net, dtype: type[np.floating], batch: int, seed: int = 0) -> Inputs:
    """Deterministic random inputs (He-scaled weights, so activations keep their size through the net)."""
    rng = np.random.default_rng(seed)
    shapes = net.shapes(batch)
    x = rng.standard_normal(shapes[0]).astype(dtype)
    params = []
    for layer, shape_in in zip(net.layers, shapes, strict=False):
        if layer[0] == "conv":
            c_in = shape_in[3]
            w = rng.standard_normal((3, 3, c_in, layer[1])) * np.sqrt(2.0 / (9 * c_in))
            params.append((w.astype(dtype), (0.1 * rng.standard_normal(layer[1])).astype(dtype)))
    return Inputs(x, params, rng.standard_normal(shapes[-1]).astype(dtype))


Laps = list[tuple[str, float]]


def engine_step(
    engine: Engine,
    net: Net,
    inputs: Inputs,
    laps: Laps | None = None,
    *,
    activation_grads: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, dict[str, Any]]:
    """One training step with the engine: ``(loss, grads)``.

    ``grads`` maps ``"conv<k> dw"`` and ``"conv<k> db"`` to arrays of the parameters' shapes and, with
    ``activation_grads``, ``"conv<k> dx"`` (k >= 2) to a copy of the gradient of conv k's input (an intermediate
    activation, NHWC). When ``laps`` is a list, ``(op, seconds)`` is appended for every op in order
    ("conv1 fwd", "relu1 fwd", ..., "loss", ..., "conv1 bwd"). ReLU runs in place on arrays the step owns (the
    engine's fresh outputs), so the gradients flowing down are overwritten on the way.
    """
    eng = engine.module
    last = [clock()]

    def lap(name: str) -> None:
        if laps is not None:
            now = clock()
            laps.append((name, now - last[0]))
            last[0] = now

    a, saved, params = inputs.x, [], iter(inputs.params)
    for label, layer in zip(net.labels(), net.layers, strict=True):
        if layer[0] == "conv":
            w, b = next(params)
            a, cache = eng.conv2d_forward(a, w, b, stride=1, padding=1)
            saved.append(cache)
        elif layer[0] == "relu":
            a = np.maximum(a, 0, out=a)
            saved.append(a)
        else:
            a, cache = eng.max_pool2d_forward(a, 2)
            saved.append(cache)
        lap(f"{label} fwd")
    # sum(out * g): d loss / d out = g. Not np.vdot: a threaded BLAS dot leaves OpenBLAS's threads spinning for
    # about 0.1 s, and the engine layers run next would share the cores with them (net B's conv4 backward, float64,
    # 2 cores: 59 ms after np.vdot, 36 ms after this sum; README, "Threads").
    loss = float(np.multiply(a, inputs.g).sum())
    d = inputs.g
    lap("loss")
    grads: dict[str, Any] = {}
    for label, layer, kept in reversed(list(zip(net.labels(), net.layers, saved, strict=True))):
        if layer[0] == "conv":
            if label == "conv1" and engine.need_dx:
                d, grads[f"{label} dw"], grads[f"{label} db"] = eng.conv2d_backward(d, kept, need_dx=False)
            else:
                d, grads[f"{label} dw"], grads[f"{label} db"] = eng.conv2d_backward(d, kept)
                if activation_grads and label != "conv1":
                    grads[f"{label} dx"] = d.copy()
        elif layer[0] == "relu":
            mask = kept > 0  # (N, H, W, C) bool; ReLU'(0) = 0 as in PyTorch
            d = np.multiply(d, mask, out=d) if d is not inputs.g and d.flags.writeable else d * mask
        else:
            d = eng.max_pool2d_backward(d, kept)
        lap(f"{label} bwd")
    return loss, grads


def torch_tensors(torch: ModuleType, inputs: Inputs, layout: str) -> tuple[Any, list[Any], Any]:
    """``(x, [w1, b1, w2, b2, ...], g)`` as NCHW tensors in ``layout`` ('NCHW' or 'channels_last'); weights and
    biases require grad. Copies: the engine's arrays stay untouched."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format

    def nchw(a: np.ndarray) -> Any:  # (N, H, W, C) -> (N, C, H, W) tensor
        return torch.from_numpy(a).permute(0, 3, 1, 2).clone(memory_format=fmt)

    leaves = []
    for w, b in inputs.params:  # w (kh, kw, C_in, C_out) -> (C_out, C_in, kh, kw)
        leaves += [torch.from_numpy(w).permute(3, 2, 0, 1).clone(memory_format=fmt), torch.from_numpy(b.copy())]
    for leaf in leaves:
        leaf.requires_grad_()
    return nchw(inputs.x), leaves, nchw(inputs.g)


def torch_step(
    torch: ModuleType, net: Net, x: Any, leaves: Sequence[Any], g: Any, activations: bool = False
) -> tuple[Any, tuple[Any, ...], list[Any]]:
    """One training step in PyTorch: ``(loss, grads of leaves, grads of conv k's input for k >= 2)``; the last
    only with ``activations=True`` (to check the engine; autograd computes them on its way anyway)."""
    functional = torch.nn.functional
    a, params, conv_inputs = x, iter(leaves), []
    for label, layer in zip(net.labels(), net.layers, strict=True):
        if layer[0] == "conv":
            if label != "conv1":
                conv_inputs.append(a)
            a = functional.conv2d(a, next(params), next(params), stride=1, padding=1)
        elif layer[0] == "relu":
            a = functional.relu(a)
        else:
            a = functional.max_pool2d(a, 2)
    loss = (a * g).sum()
    grads = torch.autograd.grad(loss, [*leaves, *(conv_inputs if activations else [])])
    return loss, grads[: len(leaves)], list(grads[len(leaves) :])


def torch_grads(torch: ModuleType, net: Net, inputs: Inputs, layout: str = "NCHW") -> tuple[float, dict[str, Any]]:
    """PyTorch's ``(loss, grads)`` with the keys and NHWC / (kh, kw, C_in, C_out) shapes of :func:`engine_step`."""
    x, leaves, g = torch_tensors(torch, inputs, layout)
    loss, grads, acts = torch_step(torch, net, x, leaves, g, activations=True)
    convs = [label for label, layer in zip(net.labels(), net.layers, strict=True) if layer[0] == "conv"]
    out: dict[str, Any] = {}
    for i, label in enumerate(convs):
        out[f"{label} dw"] = grads[2 * i].permute(2, 3, 1, 0).contiguous().numpy()
        out[f"{label} db"] = grads[2 * i + 1].numpy()
    for label, act in zip(convs[1:], acts, strict=True):
        out[f"{label} dx"] = act.permute(0, 2, 3, 1).contiguous().numpy()
    return loss.item(), out


def max_rel_diff(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """Largest ``max |ours - theirs| / max |theirs|`` over the gradients (the same keys in both)."""
    assert ours.keys() == theirs.keys(), (sorted(ours), sorted(theirs))
    return max(float(np.max(np.abs(ours[k] - theirs[k])) / max(np.max(np.abs(theirs[k])), 1e-30)) for k in ours)
