"""Shared helpers for the test suite: tolerances, comparisons, numerical gradients, test inputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Relative tolerance per dtype; the absolute tolerance is this times the magnitude of the expected values.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
FLOAT_DTYPES = (np.float32, np.float64)


def assert_close(actual, expected, dtype=None, *, rtol: float | None = None) -> None:
    """Assert ``actual`` matches ``expected`` in shape (and ``dtype``, when given) and in value.

    The tolerance is dtype-appropriate (``RTOL``) and scaled by the largest magnitude in ``expected``
    (at least 1), since the rounding error of a sum of products scales with its terms, not with its result.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype} != expected {np.dtype(dtype)}"
    if rtol is None:
        rtol = RTOL[np.dtype(dtype)] if dtype is not None else RTOL[np.dtype(np.float64)]
    finite = expected[np.isfinite(expected)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to ``x`` (perturbed in place, restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        orig = x[idx]
        x[idx] = orig + eps
        plus = f()
        x[idx] = orig - eps
        minus = f()
        x[idx] = orig
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def tie_free(shape: tuple[int, ...], rng: np.random.Generator, gap: float = 0.1) -> np.ndarray:
    """Float64 array of distinct values at least ``gap`` apart (random order), centred near zero and
    never within ``gap / 2`` of zero, so small perturbations change no max and zero padding never ties."""
    n = int(np.prod(shape))
    values = (np.arange(n) - n // 2 + 0.5) * gap
    return rng.permutation(values).reshape(shape)


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """Standard normal array of ``shape`` in ``dtype``."""
    return rng.standard_normal(shape).astype(dtype)


def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a sliding window along one axis (floor mode)."""
    return (size + 2 * pad - kernel) // stride + 1
