"""How the engine treats its inputs: never modified (read-only arrays work), NaN propagates, dtype rules.

float32 stays float32 and float64 stays float64 through outputs, gradients and caches; int, bool and nested
lists are computed in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import im2col_cnn as ic


def _inputs(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((2, 5, 6, 3)).astype(dtype),
        "w": rng.standard_normal((3, 2, 3, 4)).astype(dtype),
        "b": rng.standard_normal(4).astype(dtype),
        "b4": rng.standard_normal((1, 1, 1, 4)).astype(dtype),
        "cols": rng.standard_normal((2 * 2 * 5, 2 * 2 * 3)).astype(dtype),  # as im2col(x, 2, stride=(2, 1))
    }


class Douts:
    """Makes the upstream gradients fed to backward passes, remembering a copy of each for later checks."""

    def __init__(self, dtype, read_only=False):
        self.rng, self.dtype, self.read_only, self.made = np.random.default_rng(1), dtype, read_only, []

    def __call__(self, shape):
        d = self.rng.standard_normal(shape).astype(self.dtype)
        self.made.append((d, d.copy()))
        d.setflags(write=not self.read_only)
        return d


def _all_public_calls(a, dout):
    """Run every public function on the arrays in ``a``, backward passes on ``dout(shape)``; yield results."""
    for padding in (0, 1, (1, 0)):
        out, cache = ic.conv2d_forward(a["x"], a["w"], a["b"], stride=(2, 1), padding=padding)
        yield out, *ic.conv2d_backward(dout(out.shape), cache)
        out, cache = ic.conv2d_forward(a["x"], a["w"], a["b4"], stride=1, padding=padding)
        yield out, *ic.conv2d_backward(dout(out.shape), cache)
    for fwd, bwd in ((ic.max_pool2d_forward, ic.max_pool2d_backward), (ic.avg_pool2d_forward, ic.avg_pool2d_backward)):
        for padding in (0, 1):
            out, cache = fwd(a["x"], (3, 2), stride=(1, 2), padding=padding)
            yield out, bwd(dout(out.shape), cache)
    for k, s, p in ((2, (2, 1), 0), (1, 1, 0), (3, 2, 1)):
        yield (ic.im2col(a["x"], k, stride=s, padding=p),)
    yield (ic.col2im(a["cols"], a["x"].shape, 2, stride=(2, 1)),)
    # drop-in
    W, b = a["w"][:2, :2], a["b4"]
    for pad in (0, 2):
        Z, cache = ic.forward(a["x"], W, b, pad, 1, None)
        yield Z, *ic.backward(dout(Z.shape), cache)
        for fmode, bmode in (("maxpool", "max"), ("avepool", "average")):
            Z, cache = ic.forward(a["x"], None, None, pad, 2, 3, mode=fmode)
            yield Z, ic.pool_backward(dout(Z.shape), cache, mode=bmode)
    yield ic.padding(a["x"], 2, 4, 1.5), ic.padding(a["w"][:, :, 0, 0], 1, 2)
    yield (ic.conv_slice(a["x"][0, :3, :2], a["w"][:, :, :, 0], a["b"][0]),)
    yield (ic.max_mask(a["x"][0, :, :, 0]),)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_inputs_are_never_modified(dtype, read_only):
    a = _inputs(dtype)
    copies = {k: v.copy() for k, v in a.items()}
    if read_only:
        for v in a.values():
            v.setflags(write=False)
    dout = Douts(dtype, read_only)
    results = [r for group in _all_public_calls(a, dout) for r in group]
    assert len(results) > 30
    for k, v in a.items():
        np.testing.assert_array_equal(v, copies[k], err_msg=f"{k} was modified")
    assert len(dout.made) == 16
    for d, d_copy in dout.made:
        np.testing.assert_array_equal(d, d_copy, err_msg=f"a dout of shape {d.shape} was modified")


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_outputs_are_fresh_writable_arrays(read_only):
    """No output may alias an input (writing to it would corrupt the input, or fail when it is read-only)."""
    a = _inputs()
    if read_only:
        for v in a.values():
            v.setflags(write=False)
    for group in _all_public_calls(a, Douts(np.float64, read_only)):
        for r in group:
            if isinstance(r, np.ndarray) and r.ndim > 0:
                assert r.flags.writeable, f"an output of shape {r.shape} is read-only"
                for k, v in a.items():
                    assert not np.shares_memory(r, v), f"an output of shape {r.shape} aliases input {k}"


# --- NaN ------------------------------------------------------------------------------------------------


def test_nan_propagates_through_conv_forward():
    x = np.random.default_rng(2).standard_normal((2, 6, 6, 2))
    x[0, 2, 2, 1] = np.nan
    out, _ = ic.conv2d_forward(x, np.ones((3, 3, 2, 3)), np.zeros(3))
    # windows starting at rows/cols 0..2 contain (2, 2): NaN in every output channel; the rest is finite
    assert np.all(np.isnan(out[0, :3, :3]))
    assert np.all(np.isfinite(out[0, 3, :])) and np.all(np.isfinite(out[0, :, 3]))
    assert np.all(np.isfinite(out[1]))


@pytest.mark.parametrize("where", [(0, 0), (1, 1), (2, 3)], ids=["first", "last", "middle"])
@pytest.mark.parametrize("pool", [ic.max_pool2d_forward, ic.avg_pool2d_forward], ids=["max", "avg"])
@pytest.mark.parametrize("padding", [0, 1])
def test_nan_propagates_through_pools(pool, where, padding):
    x = np.random.default_rng(3).standard_normal((2, 4, 4, 2))
    x[0, where[0], where[1], 0] = np.nan
    out, _ = pool(x, 2, stride=2, padding=padding)
    expected = np.zeros(out.shape, dtype=bool)
    expected[0, (where[0] + padding) // 2, (where[1] + padding) // 2, 0] = True  # only the window holding it
    np.testing.assert_array_equal(np.isnan(out), expected)


def test_nan_in_max_pool_windows():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    x[0, 3, 3, 0] = np.nan  # the last window position; the window's real max is 14 before it
    x[0, 0, 0, 0] = np.nan  # the first window position
    out, _ = ic.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(np.isnan(out[0, :, :, 0]), [[True, False], [False, True]])
    np.testing.assert_array_equal(out[0, [0, 1], [1, 0], 0], [7.0, 13.0])


# --- dtypes -----------------------------------------------------------------------------------------------------


def _float_leaves(obj):
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        yield obj
    elif isinstance(obj, tuple):
        for item in obj:
            yield from _float_leaves(item)


def test_float32_stays_float32_everywhere():
    a = _inputs(np.float32)
    outs = [r for group in _all_public_calls(a, Douts(np.float32)) for r in group]
    for r in outs[:-1]:  # the last is max_mask's boolean mask
        assert np.asarray(r).dtype == np.float32, f"result of shape {np.shape(r)} is {np.asarray(r).dtype}"
    for fwd in (
        lambda: ic.conv2d_forward(a["x"], a["w"], a["b"], padding=1),
        lambda: ic.max_pool2d_forward(a["x"], 2, padding=1),
        lambda: ic.avg_pool2d_forward(a["x"], 2, padding=1),
    ):
        _, cache = fwd()
        leaves = list(_float_leaves(tuple(cache)))
        assert leaves and all(leaf.dtype == np.float32 for leaf in leaves)


def test_gradients_take_the_forward_dtype():
    a = _inputs(np.float32)
    out, cache = ic.conv2d_forward(a["x"], a["w"], a["b"])
    assert all(g.dtype == np.float32 for g in ic.conv2d_backward(np.ones(out.shape), cache))  # float64 dout
    out, cache = ic.max_pool2d_forward(a["x"], 2)
    assert ic.max_pool2d_backward(np.ones(out.shape, dtype=int), cache).dtype == np.float32


@pytest.mark.parametrize(
    "convert",
    [lambda a: a.astype(np.int64), lambda a: a.astype(np.int8), lambda a: a > 0, lambda a: a.tolist()],
    ids=["int64", "int8", "bool", "list"],
)
def test_integer_bool_and_list_input_become_float64(convert):
    rng = np.random.default_rng(4)
    xf = np.round(rng.standard_normal((2, 4, 5, 2)) * 3)
    wf = np.round(rng.standard_normal((2, 2, 2, 3)) * 3)
    x, w = convert(xf), convert(wf)
    xv, wv = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    out, cache = ic.conv2d_forward(x, w, convert(np.ones(3)), padding=1)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, ic.conv2d_forward(xv, wv, np.ones(3), padding=1)[0])
    dout = convert(np.ones(out.shape))
    grads = ic.conv2d_backward(dout, cache)
    assert all(g.dtype == np.float64 for g in grads)
    for fwd, bwd in ((ic.max_pool2d_forward, ic.max_pool2d_backward), (ic.avg_pool2d_forward, ic.avg_pool2d_backward)):
        out, cache = fwd(x, 2, stride=1)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, fwd(xv, 2, stride=1)[0])
        assert bwd(convert(np.ones(out.shape)), cache).dtype == np.float64
    cols = ic.im2col(x, 2)
    assert cols.dtype == np.float64
    np.testing.assert_array_equal(cols, ic.im2col(xv, 2))
    assert ic.col2im(convert(np.ones(cols.shape)), xv.shape, 2).dtype == np.float64
    Z, cache = ic.forward(x, w, convert(np.ones((1, 1, 1, 3))), 1, 1, None)
    assert Z.dtype == np.float64 and all(g.dtype == np.float64 for g in ic.backward(np.ones(Z.shape), cache))
    A, cache = ic.forward(x, None, None, 1, 1, 2, mode="maxpool")
    assert A.dtype == np.float64 and ic.pool_backward(np.ones(A.shape), cache).dtype == np.float64
