"""PyTorch CPU as a benchmark peer (optional: used only when ``import torch`` works).

Forward ops run ``torch.nn.functional``'s conv1d/2d/3d, max/avg pooling and adaptive pooling under
``torch.no_grad()``. Backward ops time only ``torch.autograd.grad(out, inputs, grad_outputs=dout)`` -- the gradient
of ``(out * dout).sum()`` without the extra product -- on a graph whose forward pass is built, untimed, before each
timed run. Inputs are the channels-last arrays of the engine's run, laid out channels-first (contiguous) or, in 2-D
and 3-D, channels-last in memory (``channels_last`` / ``channels_last_3d``); the report keeps the faster layout.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .cases import AdaptiveCase, Case, ConvCase, Inputs, op_family

__all__ = ["layouts_for", "load_torch", "torch_callables", "torch_forward_result"]


def layouts_for(case: Case) -> tuple[str, ...]:
    """The memory layouts PyTorch is timed in for ``case``: channels-first, and channels-last where it has one."""
    return {1: ("NCW",), 2: ("NCHW", "channels_last"), 3: ("NCDHW", "channels_last_3d")}[case.ndim]


def load_torch(threads: int) -> tuple[ModuleType | None, str]:
    """``(torch, description)`` with ``torch.set_num_threads(threads)`` applied, or ``(None, why not)``."""
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install raising something else
        return None, f"PyTorch column skipped: `import torch` failed ({type(exc).__name__}: {exc})"
    torch.set_num_threads(threads)
    return torch, f"PyTorch {torch.__version__} (CPU, {torch.get_num_threads()} threads)"


def _memory_format(torch: ModuleType, layout: str) -> Any:
    if layout == "channels_last":
        return torch.channels_last
    if layout == "channels_last_3d":
        return torch.channels_last_3d
    return torch.contiguous_format


def _first(torch: ModuleType, arr: np.ndarray, layout: str) -> Any:
    """(N, *spatial, C) ndarray -> (N, C, *spatial) tensor in ``layout`` (a copy: the engine's arrays stay as
    they are)."""
    nd = arr.ndim - 2
    return (
        torch.from_numpy(arr).permute(0, nd + 1, *range(1, nd + 1)).clone(memory_format=_memory_format(torch, layout))
    )


def _weights(torch: ModuleType, w: np.ndarray, layout: str) -> Any:
    """(*k, C_in, C_out) ndarray -> (C_out, C_in, *k) tensor in ``layout``."""
    nd = w.ndim - 2
    return torch.from_numpy(w).permute(nd + 1, nd, *range(nd)).clone(memory_format=_memory_format(torch, layout))


def _forward_fn(torch: ModuleType, op: str, case: Case) -> Callable[..., Any]:
    functional = torch.nn.functional
    family = op_family(op)
    if isinstance(case, ConvCase):
        conv = getattr(functional, family)
        return lambda x, w, b: conv(x, w, b, stride=case.stride, padding=case.padding)
    pool = getattr(functional, family)
    if isinstance(case, AdaptiveCase):
        return lambda x: pool(x, case.output_size)
    return lambda x: pool(x, case.k, stride=case.stride, padding=case.padding)  # avg: count_include_pad=True


def torch_callables(
    torch: ModuleType, op: str, case: Case, inputs: Inputs, layout: str
) -> tuple[Callable[..., object], Callable[[], Any] | None]:
    """``(fn, setup)`` timing ``op`` in PyTorch: time ``fn()`` when ``setup`` is None, else ``fn(setup())``."""
    forward = _forward_fn(torch, op, case)
    tensors = [_first(torch, inputs.x, layout)]
    if isinstance(case, ConvCase):
        assert inputs.w is not None and inputs.b is not None
        tensors += [_weights(torch, inputs.w, layout), torch.from_numpy(inputs.b.copy())]

    if op.endswith("_forward"):

        def run_forward() -> Any:
            with torch.no_grad():
                return forward(*tensors)

        return run_forward, None

    dout = _first(torch, inputs.dout, layout)

    def build_graph() -> tuple[Any, list[Any]]:
        leaves = [t.detach().requires_grad_() for t in tensors]
        return forward(*leaves), leaves

    def run_backward(graph: tuple[Any, list[Any]]) -> Any:
        out, leaves = graph
        return torch.autograd.grad(out, leaves, grad_outputs=dout)

    return run_backward, build_graph


def torch_forward_result(
    torch: ModuleType, op: str, case: Case, inputs: Inputs, layout: str | None = None
) -> np.ndarray:
    """The forward output of ``op`` in PyTorch as a channels-last ndarray (to check the peer computes the same)."""
    layout = layout or layouts_for(case)[0]
    fn, _ = torch_callables(torch, op.replace("_backward", "_forward"), case, inputs, layout)
    out = fn()
    nd = out.dim() - 2
    return out.permute(0, *range(2, nd + 2), 1).contiguous().numpy()
