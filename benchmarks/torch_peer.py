"""PyTorch CPU as a benchmark peer (optional: used only when ``import torch`` works).

Forward ops run ``torch.nn.functional.conv2d`` / ``max_pool2d`` / ``avg_pool2d`` under ``torch.no_grad()``.
Backward ops time only ``torch.autograd.grad(out, inputs, grad_outputs=dout)`` -- the gradient of
``(out * dout).sum()`` without the extra product -- on a graph whose forward pass is built, untimed, before each
timed run. Inputs are the NHWC arrays of the engine's run, laid out as NCHW or channels_last (NHWC in memory);
the report keeps the faster layout.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .cases import Case, ConvCase, Inputs, op_family

__all__ = ["LAYOUTS", "load_torch", "torch_callables", "torch_forward_result"]

LAYOUTS: tuple[str, ...] = ("NCHW", "channels_last")


def load_torch(threads: int) -> tuple[ModuleType | None, str]:
    """``(torch, description)`` with ``torch.set_num_threads(threads)`` applied, or ``(None, why not)``."""
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install raising something else
        return None, f"PyTorch column skipped: `import torch` failed ({type(exc).__name__}: {exc})"
    torch.set_num_threads(threads)
    return torch, f"PyTorch {torch.__version__} (CPU, {torch.get_num_threads()} threads)"


def _nchw(torch: ModuleType, arr: np.ndarray, layout: str) -> Any:
    """NHWC ndarray -> (N, C, H, W) tensor in ``layout`` (a copy, so the engine's arrays stay untouched)."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    return torch.from_numpy(arr).permute(0, 3, 1, 2).clone(memory_format=fmt)


def _weights(torch: ModuleType, w: np.ndarray, layout: str) -> Any:
    """(kh, kw, C_in, C_out) ndarray -> (C_out, C_in, kh, kw) tensor in ``layout``."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    return torch.from_numpy(w).permute(3, 2, 0, 1).clone(memory_format=fmt)


def _forward_fn(torch: ModuleType, op: str, case: Case) -> Callable[..., Any]:
    functional = torch.nn.functional
    if isinstance(case, ConvCase):
        return lambda x, w, b: functional.conv2d(x, w, b, stride=case.stride, padding=case.padding)
    pool = getattr(functional, op_family(op))  # max_pool2d or avg_pool2d (count_include_pad=True by default)
    return lambda x: pool(x, case.k, stride=case.stride, padding=case.padding)


def torch_callables(
    torch: ModuleType, op: str, case: Case, inputs: Inputs, layout: str
) -> tuple[Callable[..., object], Callable[[], Any] | None]:
    """``(fn, setup)`` timing ``op`` in PyTorch: time ``fn()`` when ``setup`` is None, else ``fn(setup())``."""
    forward = _forward_fn(torch, op, case)
    tensors = [_nchw(torch, inputs.x, layout)]
    if isinstance(case, ConvCase):
        assert inputs.w is not None and inputs.b is not None
        tensors += [_weights(torch, inputs.w, layout), torch.from_numpy(inputs.b.copy())]

    if op.endswith("_forward"):

        def run_forward() -> Any:
            with torch.no_grad():
                return forward(*tensors)

        return run_forward, None

    dout = _nchw(torch, inputs.dout, layout)

    def build_graph() -> tuple[Any, list[Any]]:
        leaves = [t.detach().requires_grad_() for t in tensors]
        return forward(*leaves), leaves

    def run_backward(graph: tuple[Any, list[Any]]) -> Any:
        out, leaves = graph
        return torch.autograd.grad(out, leaves, grad_outputs=dout)

    return run_backward, build_graph


def torch_forward_result(torch: ModuleType, op: str, case: Case, inputs: Inputs, layout: str = "NCHW") -> np.ndarray:
    """The forward output of ``op`` in PyTorch as an NHWC ndarray (to check that the peer computes the same)."""
    fn, _ = torch_callables(torch, op.replace("_backward", "_forward"), case, inputs, layout)
    return fn().permute(0, 2, 3, 1).contiguous().numpy()
