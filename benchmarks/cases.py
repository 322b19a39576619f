"""The benchmark cases and deterministic inputs for them, shared by the pytest suite and the report.

Convolution C1-C6 (2-D), C7 (1-D: a long signal), C8 (3-D: a volume) and C9 (2-D: a deep layer on one image, few
positions and large weights); pooling P1-P2 (2-D) and P3 (3-D),
each as max and average pooling; adaptive pooling A1 (global average) and A2 (adaptive max to 5x5).

Layout is channels-last: ``x`` (N, *spatial, C_in), ``w`` (*k, C_in, C_out). Every case runs in float32 and
float64, forward and backward. Inputs come from ``np.random.default_rng`` seeded by the case and the dtype, so
every run sees the same numbers; a reduced batch is the first images of the full one (the same ``w``, ``b``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "CONV_CASES",
    "POOL_CASES",
    "ADAPTIVE_CASES",
    "CASES",
    "DTYPES",
    "OPS",
    "ConvCase",
    "PoolCase",
    "AdaptiveCase",
    "Case",
    "Inputs",
    "case_by_name",
    "cases_for",
    "make_call",
    "make_inputs",
    "op_family",
    "parse_case_names",
]

DTYPES: tuple[type[np.floating], ...] = (np.float32, np.float64)


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class _WindowCase:
    """What every windowed case has: a name, the channels-last input shape, a ``k`` x ... x ``k`` window, stride
    and padding."""

    name: str
    x_shape: tuple[int, ...]  # (N, *spatial, C_in)
    k: int
    stride: int
    padding: int

    @property
    def batch(self) -> int:
        return self.x_shape[0]

    @property
    def ndim(self) -> int:
        """Spatial axes: 1, 2 or 3."""
        return len(self.x_shape) - 2

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(_out_size(s, self.k, self.stride, self.padding) for s in self.x_shape[1:-1])

    @property
    def out_hw(self) -> tuple[int, ...]:  # the name the 2-D report used
        return self.out_shape

    def _window(self) -> str:
        return "x".join([str(self.k)] * self.ndim)


@dataclass(frozen=True, kw_only=True)
class ConvCase(_WindowCase):
    """A convolution case: input shape, cubic kernel ``k``, ``c_out`` filters, padding and stride."""

    c_out: int

    @property
    def families(self) -> tuple[str, ...]:
        return (f"conv{self.ndim}d",)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (*(self.k,) * self.ndim, self.x_shape[-1], self.c_out)

    def matmul_shape(self, batch: int | None = None) -> tuple[int, int, int]:
        """``(M, K, N)`` of the forward product ``cols (M, K) @ w (K, N)``."""
        n = self.batch if batch is None else batch
        return n * math.prod(self.out_shape), self.k**self.ndim * self.x_shape[-1], self.c_out

    def flops(self, backward: bool, batch: int | None = None) -> int:
        """Floating-point operations: ``2*M*K*N`` forward, twice that backward (dw and dcols products)."""
        m, k, n = self.matmul_shape(batch)
        return 2 * m * k * n * (2 if backward else 1)

    def loop_iterations_per_image(self) -> int:
        """How many innermost loop bodies the reference runs per image (one per output value)."""
        return math.prod(self.out_shape) * self.c_out

    def describe(self) -> str:
        return (
            f"x {self.x_shape}, w {self._window()}x{self.x_shape[-1]}->{self.c_out}, p={self.padding}, s={self.stride}"
        )


@dataclass(frozen=True)
class PoolCase(_WindowCase):
    """A pooling case (run as both max and average pooling): input shape, cubic kernel, stride, padding."""

    @property
    def families(self) -> tuple[str, ...]:
        return (f"max_pool{self.ndim}d", f"avg_pool{self.ndim}d")

    def loop_iterations_per_image(self) -> int:
        return math.prod(self.out_shape) * self.x_shape[-1]

    def describe(self) -> str:
        return f"x {self.x_shape}, pool {self._window()}, s={self.stride}, p={self.padding}"


@dataclass(frozen=True)
class AdaptiveCase:
    """An adaptive pooling case: input shape, output size per axis, and the kinds ('avg', 'max') it runs as."""

    name: str
    x_shape: tuple[int, ...]
    output_size: int
    kinds: tuple[str, ...]

    @property
    def batch(self) -> int:
        return self.x_shape[0]

    @property
    def ndim(self) -> int:
        return len(self.x_shape) - 2

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.output_size,) * self.ndim

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(f"adaptive_{kind}_pool{self.ndim}d" for kind in self.kinds)

    def loop_iterations_per_image(self) -> int:
        return math.prod(self.out_shape) * self.x_shape[-1]

    def describe(self) -> str:
        what = "global average pooling" if self.output_size == 1 else f"adaptive {'/'.join(self.kinds)} pooling"
        return f"x {self.x_shape}, {what} to {'x'.join([str(self.output_size)] * self.ndim)}"


Case = ConvCase | PoolCase | AdaptiveCase

CONV_CASES: tuple[ConvCase, ...] = (
    ConvCase("C1", (10, 4, 4, 3), k=2, c_out=8, padding=2, stride=2),  # the notebook's case: overhead-bound
    ConvCase("C2", (64, 32, 32, 3), k=3, c_out=32, padding=1, stride=1),
    ConvCase("C3", (64, 16, 16, 64), k=3, c_out=64, padding=1, stride=1),
    ConvCase("C4", (32, 28, 28, 128), k=3, c_out=128, padding=1, stride=1),
    ConvCase("C5", (32, 56, 56, 64), k=3, c_out=128, padding=1, stride=2),
    ConvCase("C6", (32, 28, 28, 256), k=1, c_out=64, padding=0, stride=1),
    ConvCase("C7", (64, 1024, 64), k=9, c_out=64, padding=4, stride=1),  # 1-D: a signal
    ConvCase("C8", (8, 16, 32, 32, 32), k=3, c_out=64, padding=1, stride=1),  # 3-D: a volume
    # a network's last stage on one image (ResNet's 7x7x512, inference): 2.4 M weights, 49 positions, one tile
    ConvCase("C9", (1, 7, 7, 512), k=3, c_out=512, padding=1, stride=1),
)
POOL_CASES: tuple[PoolCase, ...] = (
    PoolCase("P1", (64, 32, 32, 64), k=2, stride=2, padding=0),
    PoolCase("P2", (32, 56, 56, 64), k=3, stride=2, padding=1),
    PoolCase("P3", (8, 16, 32, 32, 64), k=2, stride=2, padding=0),  # 3-D
)
ADAPTIVE_CASES: tuple[AdaptiveCase, ...] = (
    AdaptiveCase("A1", (64, 7, 7, 512), output_size=1, kinds=("avg",)),  # global average pooling
    AdaptiveCase("A2", (64, 14, 14, 256), output_size=5, kinds=("max",)),  # windows that do not divide
)
CASES: tuple[Case, ...] = CONV_CASES + POOL_CASES + ADAPTIVE_CASES

_FAMILIES = ("conv1d", "conv2d", "conv3d", "max_pool2d", "max_pool3d", "avg_pool2d", "avg_pool3d")
_FAMILIES += ("adaptive_avg_pool2d", "adaptive_max_pool2d")
# Op names are the public function names of both ``im2col_cnn`` and ``reference``.
OPS: tuple[str, ...] = tuple(f"{family}_{way}" for family in _FAMILIES for way in ("forward", "backward"))


def case_by_name(name: str) -> Case:
    for case in CASES:
        if case.name == name.upper():
            return case
    raise ValueError(f"unknown case {name!r}; known: {', '.join(c.name for c in CASES)}")


def parse_case_names(text: str) -> list[Case]:
    """``"C2,c4, P1"`` -> those cases, in table order; raises ``ValueError`` for an unknown name."""
    wanted = {case_by_name(part.strip()).name for part in text.split(",") if part.strip()}
    if not wanted:
        raise ValueError("no case named; give a comma-separated list such as C2,C4,P1")
    return [case for case in CASES if case.name in wanted]


def op_family(op: str) -> str:
    """``'conv2d_backward'`` -> ``'conv2d'``; ``'max_pool3d_forward'`` -> ``'max_pool3d'``."""
    return op.rsplit("_", 1)[0]


def cases_for(op: str, cases: Sequence[Case] = CASES) -> list[Case]:
    """The cases of ``cases`` an op runs on."""
    return [case for case in cases if op_family(op) in case.families]


@dataclass(frozen=True)
class Inputs:
    """Arrays for one case and dtype. ``w``/``b`` are None for pooling; ``dout`` is the output gradient."""

    x: np.ndarray
    dout: np.ndarray
    w: np.ndarray | None = None
    b: np.ndarray | None = None

    @property
    def batch(self) -> int:
        return self.x.shape[0]


def _rng(case: Case, dtype: type[np.floating], stream: str) -> np.random.Generator:
    seed = zlib.crc32(f"{case.name}/{np.dtype(dtype).name}/{stream}".encode())
    return np.random.default_rng(seed)


def _normal(case: Case, dtype: type[np.floating], stream: str, shape: tuple[int, ...], scale: float = 1.0):
    # Drawn in float64 and cast, so the first images of a batch do not depend on the batch size.
    return (_rng(case, dtype, stream).standard_normal(shape) * scale).astype(dtype)


def make_inputs(case: Case, dtype: type[np.floating], batch: int | None = None) -> Inputs:
    """Deterministic inputs for ``case`` in ``dtype``; ``batch`` images (default: the case's batch).

    A smaller ``batch`` gives the first images of the full batch and the same weights. Weights are scaled by
    ``1/sqrt(prod(k)*C_in)`` so outputs stay of order one.
    """
    n = case.batch if batch is None else batch
    if n < 1:
        raise ValueError(f"batch must be >= 1, got {n}")
    x = _normal(case, dtype, "x", (n, *case.x_shape[1:]))
    if isinstance(case, ConvCase):
        fan_in = case.k**case.ndim * case.x_shape[-1]
        w = _normal(case, dtype, "w", case.w_shape, scale=fan_in**-0.5)
        b = _normal(case, dtype, "b", (case.c_out,))
        dout = _normal(case, dtype, "dout", (n, *case.out_shape, case.c_out))
        return Inputs(x=x, dout=dout, w=w, b=b)
    dout = _normal(case, dtype, "dout", (n, *case.out_shape, case.x_shape[-1]))
    return Inputs(x=x, dout=dout)


def _forward(module: ModuleType, family: str, case: Case, inputs: Inputs, kwargs: dict[str, Any]):
    fn = getattr(module, f"{family}_forward")
    if isinstance(case, ConvCase):
        return fn(inputs.x, inputs.w, inputs.b, stride=case.stride, padding=case.padding, **kwargs)
    if isinstance(case, AdaptiveCase):
        return fn(inputs.x, case.output_size)
    return fn(inputs.x, case.k, stride=case.stride, padding=case.padding)


def make_call(
    module: ModuleType, op: str, case: Case, inputs: Inputs, **kwargs: Any
) -> Callable[[], tuple[np.ndarray, ...]]:
    """A no-argument callable running ``op`` of ``module`` (``im2col_cnn`` or ``reference``) on ``inputs``.

    It returns the op's arrays as a tuple: ``(out,)`` for a forward op, ``(dx, dw, db)`` for a conv backward,
    ``(dx,)`` for a pooling backward. For a backward op the forward pass runs once here (the cache is made in
    setup) and the callable runs only the backward call. ``kwargs`` go to the conv functions only (e.g.
    ``workspace=``).
    """
    family = op_family(op)
    if op.endswith("_forward"):
        return lambda: (_forward(module, family, case, inputs, kwargs)[0],)
    _, cache = _forward(module, family, case, inputs, kwargs)
    backward = getattr(module, f"{family}_backward")
    if isinstance(case, ConvCase):
        return lambda: tuple(backward(inputs.dout, cache, **kwargs))
    return lambda: (backward(inputs.dout, cache),)
