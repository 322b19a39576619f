"""The reference loops check their backward passes' upstream gradient as the engine does.

An oracle that accepts a wrong-shaped ``dout`` (and silently loops over whatever it is given) could hide a bug in
the engine or in a test. Every reference backward raises a ValueError naming the gradient argument and the
forward output's shape (in the call's layout); for the modern API the message is the engine's, word for word.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import im2col_cnn as ic
import reference as ref

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 7, 6, 4))
X_NCHW = np.ascontiguousarray(X.transpose(0, 3, 1, 2))
W = RNG.standard_normal((3, 2, 2, 6))  # (kh, kw, C_in // groups, C_out) for groups=2
W_NCHW = np.ascontiguousarray(W.transpose(3, 2, 0, 1))
WT = RNG.standard_normal((3, 2, 3, 4))  # transposed conv: (kh, kw, C_out // groups, C_in)
WT_NCHW = np.ascontiguousarray(WT.transpose(3, 2, 0, 1))

# label -> (forward, backward, args, kwargs): the same call works on the engine (ic) and on the reference (ref)
LAYERS = {
    "conv": ("conv2d_forward", "conv2d_backward", (X, W), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    "conv NCHW": ("conv2d_forward", "conv2d_backward", (X_NCHW, W_NCHW), dict(groups=2, data_format="NCHW")),
    "conv same": ("conv2d_forward", "conv2d_backward", (X, W), dict(padding="same", groups=2)),
    "transposed": ("conv_transpose2d_forward", "conv_transpose2d_backward", (X, WT), dict(stride=2, output_padding=1)),
    "transposed NCHW": (
        "conv_transpose2d_forward",
        "conv_transpose2d_backward",
        (X_NCHW, WT_NCHW),
        dict(padding=1, data_format="NCHW"),
    ),
    "max": ("max_pool2d_forward", "max_pool2d_backward", (X, 3), dict(stride=2, padding=1, ceil_mode=True)),
    "max NCHW": ("max_pool2d_forward", "max_pool2d_backward", (X_NCHW, 2), dict(dilation=2, data_format="NCHW")),
    "avg": ("avg_pool2d_forward", "avg_pool2d_backward", (X, (3, 2)), dict(stride=2, ceil_mode=True)),
    "avg NCHW": (
        "avg_pool2d_forward",
        "avg_pool2d_backward",
        (X_NCHW, 2),
        dict(padding=1, count_include_pad=False, data_format="NCHW"),
    ),
}


def _wrong_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shapes a mistaken dout could have: one axis off by one, axes swapped, a dimension missing or extra."""
    wrong = [tuple(s + (i == axis) for i, s in enumerate(shape)) for axis in range(len(shape))]
    wrong += [(shape[0], *shape[2:], shape[1]), shape[1:], (*shape, 1), (shape[0] * shape[1], *shape[2:])]
    return [s for s in wrong if s != shape]


@pytest.mark.parametrize("label", LAYERS)
def test_reference_backward_rejects_a_wrong_dout_as_the_engine_does(label):
    forward, backward, args, kwargs = LAYERS[label]
    out, cache = getattr(ic, forward)(*args, **kwargs)
    rout, rcache = getattr(ref, forward)(*args, **kwargs)
    assert rout.shape == out.shape
    for shape in _wrong_shapes(out.shape):
        expected = f"dout must have the forward output's shape {out.shape}, got {shape}"
        with pytest.raises(ValueError) as engine_error:
            getattr(ic, backward)(np.ones(shape), cache)
        with pytest.raises(ValueError, match=f"^{re.escape(expected)}$") as reference_error:
            getattr(ref, backward)(np.ones(shape), rcache)
        assert str(reference_error.value) == str(engine_error.value)


@pytest.mark.parametrize("label", LAYERS)
def test_reference_backward_takes_a_dout_of_the_right_shape(label):
    forward, backward, args, kwargs = LAYERS[label]
    out, cache = getattr(ic, forward)(*args, **kwargs)
    _, rcache = getattr(ref, forward)(*args, **kwargs)
    dout = RNG.standard_normal(out.shape)
    got = getattr(ref, backward)(dout.tolist(), rcache)  # a nested list of the right shape is fine too
    expected = getattr(ic, backward)(dout, cache)
    got, expected = (r if isinstance(r, tuple) else (r,) for r in (got, expected))
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)


def test_reference_max_pool_backward_checks_a_hand_built_cache_too():
    _, rcache = ref.max_pool2d_forward(X, 2)
    rcache = rcache._replace(indices=None)  # backward recomputes the argmax
    with pytest.raises(
        ValueError, match=re.escape("dout must have the forward output's shape (2, 3, 3, 4), got (2, 3, 4, 4)")
    ):
        ref.max_pool2d_backward(np.ones((2, 3, 4, 4)), rcache)


def test_reference_drop_in_backward_checks_dZ():
    W4, b = RNG.standard_normal((3, 3, 4, 5)), RNG.standard_normal((1, 1, 1, 5))
    Z, cache = ref.forward(X, W4, b, 1, 2, None)
    assert Z.shape == (2, 4, 3, 5)
    for shape in _wrong_shapes(Z.shape):
        with pytest.raises(
            ValueError, match=re.escape(f"dZ must have the forward output's shape (2, 4, 3, 5), got {shape}")
        ):
            ref.backward(np.ones(shape), cache)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("notebook_cache", [False, True], ids=["(X, f, stride, pad)", "(X, f, stride)"])
def test_reference_drop_in_pool_backward_checks_dA(mode, notebook_cache):
    pad = 0 if notebook_cache else 1
    A, cache = ref.forward(X, None, None, pad, 2, 3, mode="maxpool" if mode == "max" else "avepool")
    cache = cache[:3] if notebook_cache else cache
    expected = (2, 3, 2, 4) if notebook_cache else (2, 4, 3, 4)
    assert A.shape == expected
    for shape in _wrong_shapes(A.shape):
        with pytest.raises(
            ValueError, match=re.escape(f"dA must have the forward output's shape {expected}, got {shape}")
        ):
            ref.pool_backward(np.ones(shape), cache, mode=mode)
