"""Bad input to the 1-D and 3-D layer functions, adaptive pooling and N-d unfold/fold/im2col/col2im fails early with a
ValueError/TypeError that names the argument and says what was expected.

Arrays of the wrong rank name the layout their ``data_format`` implies; a ``data_format`` of another rank names
the array's shape and the layouts this layer takes; a cache of another rank or kind names both forward passes;
PyTorch-layout arrays passed without ``data_format`` get a hint; and torch.nn.functional's positional order works
for every new function.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import im2col_cnn as ic

RNG = np.random.default_rng(0)
X1 = RNG.standard_normal((2, 9, 4))  # NWC, C_in = 4
W1 = RNG.standard_normal((3, 4, 6))  # conv1d (kw, C_in, C_out); conv_transpose1d: (kw, C_out // g, C_in) needs C 6
XT1 = RNG.standard_normal((2, 9, 6))
X3 = RNG.standard_normal((2, 5, 6, 7, 4))  # NDHWC, C_in = 4
W3 = RNG.standard_normal((3, 3, 3, 4, 6))
XT3 = RNG.standard_normal((2, 5, 6, 7, 6))
X2 = RNG.standard_normal((2, 6, 7, 4))

TUPLE = {1: r"a \(w,\) tuple", 3: r"a \(d, h, w\) triple"}  # how a message names one value per axis
LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
X = {1: X1, 2: X2, 3: X3}


def re_shape(shape) -> str:
    return re.escape(str(tuple(shape)))


# --- one call per new forward function, taking keyword arguments ------------------------------------------------


def conv(n):
    return lambda x=None, w=None, **kw: getattr(ic, f"conv{n}d_forward")(
        X[n] if x is None else x, (W1 if n == 1 else W3) if w is None else w, **kw
    )


def tconv(n):
    return lambda x=None, w=None, **kw: getattr(ic, f"conv_transpose{n}d_forward")(
        (XT1 if n == 1 else XT3) if x is None else x, (W1 if n == 1 else W3) if w is None else w, **kw
    )


def pool(kind, n):
    return lambda x=None, k=2, **kw: getattr(ic, f"{kind}_pool{n}d_forward")(X[n] if x is None else x, k, **kw)


def adaptive(kind, n):
    return lambda x=None, size=2, **kw: getattr(ic, f"adaptive_{kind}_pool{n}d_forward")(
        X[n] if x is None else x, size, **kw
    )


def unfold(n):  # channels-first x
    x = np.moveaxis(X[n], -1, 1)
    return lambda k=2, **kw: ic.unfold(x, k, **kw)


def fold(n):
    size = X[n].shape[1:-1]
    return lambda k=2, **kw: ic.fold(np.ones((2, 4 * 2**n, 60)), size, k, **kw)  # cols checked after the arguments


def im2col(n):
    return lambda k=2, **kw: ic.im2col(X[n], k, **kw)


def col2im(n):
    return lambda k=2, **kw: ic.col2im(np.ones((4, 12)), X[n].shape, k, **kw)  # cols checked after the arguments


FORWARDS = {
    **{f"conv{n}d": (n, conv(n)) for n in (1, 3)},
    **{f"conv_transpose{n}d": (n, tconv(n)) for n in (1, 3)},
    **{f"{kind}_pool{n}d": (n, pool(kind, n)) for kind in ("max", "avg") for n in (1, 3)},
    **{f"adaptive_{kind}_pool{n}d": (n, adaptive(kind, n)) for kind in ("max", "avg") for n in (1, 2, 3)},
}
WINDOWED = {  # functions taking stride, padding, dilation (and kernel_size, except conv)
    **{f"conv{n}d": (n, conv(n)) for n in (1, 3)},
    **{f"conv_transpose{n}d": (n, tconv(n)) for n in (1, 3)},
    **{f"max_pool{n}d": (n, pool("max", n)) for n in (1, 3)},
    **{f"{name}-{n}d": (n, make(n)) for name, make in [("unfold", unfold), ("fold", fold), ("im2col", im2col),
                                                         ("col2im", col2im)] for n in (1, 3)},
}  # fmt: skip
WITH_KERNEL = {k: v for k, v in WINDOWED.items() if "conv" not in k} | {
    f"avg_pool{n}d": (n, pool("avg", n)) for n in (1, 3)
}
WITH_STRIDE = WINDOWED | {f"avg_pool{n}d": (n, pool("avg", n)) for n in (1, 3)}
WITH_DILATION = dict(WINDOWED)


# --- array ranks --------------------------------------------------------------------------------------------------


def x_layout(name: str, n: int, first: bool) -> str:
    """The layout a message names for x: ``(N, W, C_in)`` for conv, ``(N, C, D, H, W)`` for pooling, ..."""
    axes = {1: ["W"], 2: ["H", "W"], 3: ["D", "H", "W"]}[n]
    c = "C_in" if "conv" in name else "C"
    return "(" + ", ".join(["N", c, *axes] if first else ["N", *axes, c]) + ")"


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("name", list(FORWARDS))
def test_x_of_another_rank_names_the_layout(name, first):
    n, call = FORWARDS[name]
    fmt = FIRST[n] if first else LAST[n]
    expected = rf"x must be a {n + 2}-D array of shape {re.escape(x_layout(name, n, first))} for data_format '{fmt}'"
    for shape in [(2, 6, 7, 4)[: n + 1], (2, 5, 6, 7, 4, 1)[: n + 3], (3,), ()]:
        with pytest.raises(ValueError, match=expected + rf", got shape {re_shape(shape)}"):
            call(x=np.ones(shape), data_format=fmt)


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: conv(1)(w=np.ones((3, 3, 4, 6))), r"w must be a 3-D array of shape \(kw, C_in // groups, C_out\)"),
        (lambda: conv(3)(w=np.ones((3, 3, 4, 6))),
         r"w must be a 5-D array of shape \(kd, kh, kw, C_in // groups, C_out\)"),
        (lambda: conv(1)(x=np.ones((2, 4, 9)), w=np.ones((6, 4)), data_format="NCW"),
         r"w must be a 3-D array of shape \(C_out, C_in // groups, kw\) for data_format 'NCW', got shape \(6, 4\)"),
        (lambda: tconv(1)(w=np.ones((3, 4))), r"w must be a 3-D array of shape \(kw, C_out // groups, C_in\)"),
        (lambda: tconv(3)(x=np.ones((2, 6, 5, 6, 7)), w=np.ones((6, 4, 3, 3)), data_format="NCDHW"),
         r"w must be a 5-D array of shape \(C_in, C_out // groups, kd, kh, kw\) for data_format 'NCDHW'"),
    ],
)  # fmt: skip
def test_w_of_another_rank_names_the_layout(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


@pytest.mark.parametrize("name", ["conv1d", "conv_transpose3d", "max_pool1d", "avg_pool3d", "adaptive_max_pool2d"])
def test_empty_spatial_axes_are_refused(name):
    n, call = FORWARDS[name]
    x = np.ones((2, 0, 4)) if n == 1 else np.ones((2, 5, 0, 6)[: n + 1] + (6 if "transpose" in name else 4,))
    message = rf"x must not be empty except in the batch dimension, got shape {re_shape(x.shape)}"
    with pytest.raises(ValueError, match=message):
        call(x=x)


# --- data_format ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORWARDS))
def test_a_data_format_of_another_rank_names_the_shape_of_x(name):
    n, call = FORWARDS[name]
    x = X[n] if "transpose" not in name else (XT1 if n == 1 else XT3)
    options = f"'{LAST[n]}', '{FIRST[n]}'"
    for rank in {1, 2, 3} - {n}:
        for fmt in (LAST[rank], FIRST[rank]):
            msg = (
                rf"data_format '{fmt}' is the layout of {rank + 2}-D arrays \({rank} spatial ax[ie]s\), but this layer "
                rf"has {n} spatial ax[ie]s and takes {n + 2}-D arrays: data_format must be one of {options}; "
                rf"x has shape {re_shape(x.shape)}"
            )
            with pytest.raises(ValueError, match=msg):
                call(data_format=fmt)


def test_conv1d_with_nchw_names_data_format_and_the_rank_of_x():
    with pytest.raises(ValueError, match=r"data_format 'NCHW' .* takes 3-D arrays.* x has shape \(2, 9, 4\)"):
        ic.conv1d_forward(X1, W1, data_format="NCHW")


@pytest.mark.parametrize("data_format", ["nwc", "ndhwc", "NWHC", "CWN", "", None, 0, "NCWH"], ids=repr)
@pytest.mark.parametrize("name", list(FORWARDS))
def test_unknown_data_format(name, data_format):
    n, call = FORWARDS[name]
    msg = rf"data_format must be one of '{LAST[n]}', '{FIRST[n]}', got {re.escape(repr(data_format))}"
    with pytest.raises(ValueError, match=msg):
        call(data_format=data_format)


# --- window sizes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: conv(1)(w=np.ones((12, 4, 6))), r"w's kernel \(kw,\) \(12,\) is larger than the padded input \(9,\)"),
        (lambda: conv(1)(w=np.ones((12, 4, 6)), padding=1),
         r"w's kernel \(kw,\) \(12,\) is larger than the padded input \(11,\)"),
        (lambda: conv(1)(dilation=5),
         r"w's kernel \(kw,\) \(3,\) \(dilated to \(11,\)\) is larger than the padded input \(9,\)"),
        (lambda: conv(3)(w=np.ones((3, 7, 3, 4, 6))),
         r"w's kernel \(kd, kh, kw\) \(3, 7, 3\) is larger than the padded input \(5, 6, 7\)"),
        (lambda: pool("max", 1)(k=10), r"kernel_size \(10,\) .*is larger than the padded input \(9,\)"),
        (lambda: pool("avg", 3)(k=(2, 7, 2)), r"kernel_size \(2, 7, 2\) .*is larger than the padded input \(5, 6, 7\)"),
        (lambda: pool("max", 3)(k=2, dilation=(1, 6, 1)), r"kernel_size \(2, 2, 2\) .*is larger than the padded input"),
        (lambda: unfold(1)(k=10), r"kernel_size \(10,\) is larger than the padded input \(9,\)"),
        (lambda: unfold(3)(k=(6, 1, 1)), r"kernel_size \(6, 1, 1\) is larger than the padded input \(5, 6, 7\)"),
        (lambda: ic.fold(np.ones((2, 6, 1)), (2, 5, 5), (3, 1, 1)),
         r"kernel_size \(3, 1, 1\) is larger than the padded input \(2, 5, 5\)"),
        (lambda: im2col(3)(k=(2, 7, 2)), r"kernel_size \(2, 7, 2\) is larger than the padded input \(5, 6, 7\)"),
        (lambda: col2im(1)(k=12, padding=1), r"kernel_size \(12,\) is larger than the padded input \(11,\)"),
    ],
)  # fmt: skip
def test_kernel_larger_than_the_padded_input(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_a_kernel_that_exactly_fits_is_fine():
    assert conv(1)(w=np.ones((11, 4, 6)), padding=1)[0].shape == (2, 1, 6)
    assert conv(3)(w=np.ones((5, 6, 7, 4, 6)))[0].shape == (2, 1, 1, 1, 6)
    assert pool("max", 3)(k=(5, 6, 7))[0].shape == (2, 1, 1, 1, 4)


BAD_VALUES = {  # ValueError; per rank: a zero, a negative, tuples of the wrong length
    1: [0, -1, (0,), (1, 1), (), [1, 1, 1]],
    3: [0, -2, (1, 0, 1), (1, 1), (1,), (1, 1, 1, 1), [2, 2]],
}
BAD_TYPES = [1.5, "2", True, np.bool_(True), None, 2.0, np.array(2.0)]  # TypeError


@pytest.mark.parametrize("name", list(WITH_STRIDE))
def test_stride_bad_value_and_type(name):
    n, call = WITH_STRIDE[name]
    for bad in BAD_VALUES[n]:
        with pytest.raises(ValueError, match=rf"stride must be an int >= 1 or {TUPLE[n]} of them, got "):
            call(stride=bad)
    for bad in BAD_TYPES + [(1.5,) * n, ("a",) * n]:
        if bad is None and "pool" in name:
            continue  # None is the pooling default: stride = kernel_size
        with pytest.raises(TypeError, match=rf"stride must be an int >= 1 or {TUPLE[n]} of them, got "):
            call(stride=bad)


@pytest.mark.parametrize("name", list(WITH_DILATION))
def test_dilation_bad_value_and_type(name):
    n, call = WITH_DILATION[name]
    for bad in BAD_VALUES[n]:
        with pytest.raises(ValueError, match=rf"dilation must be an int >= 1 or {TUPLE[n]} of them, got "):
            call(dilation=bad)
    for bad in BAD_TYPES:
        with pytest.raises(TypeError, match=rf"dilation must be an int >= 1 or {TUPLE[n]} of them, got "):
            call(dilation=bad)


@pytest.mark.parametrize("name", list(WITH_KERNEL))
def test_kernel_size_bad_value_and_type(name):
    n, call = WITH_KERNEL[name]
    for bad in BAD_VALUES[n]:
        with pytest.raises(ValueError, match=rf"kernel_size must be an int >= 1 or {TUPLE[n]} of them, got "):
            call(k=bad)
    for bad in BAD_TYPES:
        with pytest.raises(TypeError, match=rf"kernel_size must be an int >= 1 or {TUPLE[n]} of them, got "):
            call(k=bad)


PAD_VALUES = {1: [-1, (-1,), (1, 1), ()], 3: [-1, (0, -1, 0), (1, 1), (1, 1, 1, 1)]}


@pytest.mark.parametrize("name", list(WITH_STRIDE))
def test_padding_bad_value_and_type(name):
    n, call = WITH_STRIDE[name]
    pool_kernel = {"k": 3} if "pool" in name else {}  # room for padding 1
    for bad in PAD_VALUES[n]:
        with pytest.raises(ValueError, match=r"padding must be an int >= 0"):
            call(padding=bad, **pool_kernel)
    for bad in [0.5, False, None, (1.0,) * n]:
        with pytest.raises(TypeError, match=r"padding must be an int >= 0"):
            call(padding=bad, **pool_kernel)
    # conv also takes 'valid' and 'same': another string is a bad value there; elsewhere strings are a bad type
    error = ValueError if name in ("conv1d", "conv3d") else TypeError
    for bad in ["SAME", "full"] + ([] if error is ValueError else ["same", "valid"]):
        with pytest.raises(error, match=r"padding must be an int >= 0"):
            call(padding=bad, **pool_kernel)


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: conv(1)(padding=((1, 1), (1, 1))),
         r"padding must be an int >= 0, a \(w,\) tuple of them, .*'valid' or 'same', got \(\(1, 1\), \(1, 1\)\)"),
        (lambda: conv(3)(padding=((1, 1), (1, 1))),
         r"padding must be an int >= 0, a \(d, h, w\) triple of them, 3 \(lo, hi\) pairs"),
        (lambda: conv(3)(padding=((1, 1, 1), (1, 1), (1, 1))), r"padding must be an int >= 0, a \(d, h, w\) triple"),
        (lambda: conv(1)(padding="same", stride=2),
         r"padding='same' needs stride 1 \(as in PyTorch\), got stride \(2,\)"),
        (lambda: conv(3)(padding="same", stride=(1, 2, 1)),
         r"padding='same' needs stride 1 \(as in PyTorch\), got stride \(1, 2, 1\)"),
        (lambda: pool("max", 1)(k=2, padding=2),
         r"padding must be at most half of kernel_size \(2,\) on each axis, got \(2,\)"),
        (lambda: pool("avg", 3)(k=(2, 4, 2), padding=(1, 3, 0)),
         r"padding must be at most half of kernel_size \(2, 4, 2\) on each axis"),
        (lambda: tconv(1)(padding=9), r"padding \(9,\) leaves no output: the output size would be \(-7,\)"),
        (lambda: ic.im2col(X1, 2, padding="same"), r"padding must be an int >= 0"),
    ],
)  # fmt: skip
def test_padding_rules(call, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        call()


# --- groups, output_padding, bias, flags --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [conv, tconv], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("n", [1, 3])
def test_groups_bad_value_type_and_divisor(make, n):
    call = make(n)
    for bad, exc in [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]:
        with pytest.raises(exc, match=r"groups must be an int >= 1, got " + re.escape(repr(bad))):
            call(groups=bad)
    if make is conv:  # C_in 4, C_out 6
        with pytest.raises(ValueError, match=r"groups must divide both C_in=4 and C_out=6, got groups=4"):
            call(w=np.ones((3,) * n + (1, 6)), groups=4)
        with pytest.raises(ValueError, match=r"w has C_in=4 input channels per group \(groups=2\) but x has C=4"):
            call(groups=2)
    else:  # C_in 6, C_out 4 * groups
        with pytest.raises(ValueError, match=r"groups must divide both C_in=6 and C_out=16, got groups=4"):
            call(groups=4)


@pytest.mark.parametrize("n", [1, 3])
def test_output_padding(n):
    call = tconv(n)
    for bad in [-1, (1,) * (n - 1) + (-1,), (1,) * (n + 1), (), [0, 0]]:
        with pytest.raises(ValueError, match=rf"output_padding must be an int >= 0 or {TUPLE[n]} of them, got "):
            call(output_padding=bad, stride=2)
    for bad in [1.5, True, "1", None]:
        with pytest.raises(TypeError, match=rf"output_padding must be an int >= 0 or {TUPLE[n]} of them, got "):
            call(output_padding=bad, stride=2)
    for op, stride, dilation in [(1, 1, 1), (2, 2, 1), (2, 1, 2)]:
        with pytest.raises(ValueError, match=r"output_padding must be smaller than either stride or dilation on each"):
            call(output_padding=op, stride=stride, dilation=dilation)
    out, _ = call(output_padding=1, stride=2)  # smaller than the stride: fine
    spatial = (XT1 if n == 1 else XT3).shape[1:-1]
    assert out.shape[1:-1] == tuple((size - 1) * 2 + 2 + 1 + 1 for size in spatial)  # (size-1)*s + d*(k-1) + op + 1


@pytest.mark.parametrize("n", [1, 3])
def test_bias_of_another_shape(n):
    broadcast = re.escape(str((1,) * (n + 1) + (6,)))
    for shape in [(5,), (1, 1, 1, 6), (6, 1), (1,) * (n + 2) + (6,)]:
        with pytest.raises(ValueError, match=rf"b must have shape \(C_out,\) = \(6,\) or {broadcast}, got "):
            conv(n)(b=np.ones(shape))
    assert conv(n)(b=np.ones((1,) * (n + 1) + (6,)))[0].shape[-1] == 6  # the drop-in shape is fine


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda v: pool("max", 1)(ceil_mode=v), "ceil_mode"),
        (lambda v: pool("avg", 3)(ceil_mode=v), "ceil_mode"),
        (lambda v: pool("avg", 1)(count_include_pad=v), "count_include_pad"),
        (lambda v: ic.conv3d_backward(np.ones((2, 3, 4, 5, 6)), conv(3)()[1], need_dx=v), "need_dx"),
        (lambda v: ic.conv_transpose1d_backward(np.ones((2, 11, 4)), tconv(1)()[1], need_dx=v), "need_dx"),
    ],
)
def test_flags_must_be_bools(call, name):
    for bad, exc in [("yes", TypeError), (None, TypeError), (1.0, TypeError), (2, ValueError), (-1, ValueError)]:
        with pytest.raises(exc, match=rf"{name} must be a bool \(or 0 or 1\), got {re.escape(repr(bad))}"):
            call(bad)


def test_divisor_override_and_workspace():
    for bad, exc in [(0, ValueError), (1.5, TypeError), (True, TypeError)]:
        with pytest.raises(exc, match=r"divisor_override must be a nonzero int or None, got "):
            pool("avg", 3)(divisor_override=bad)
    with pytest.raises(TypeError, match=r"divisor_override"):  # avg_pool1d has none, as in PyTorch
        pool("avg", 1)(divisor_override=2)
    for call in (lambda v: conv(1)(workspace=v), lambda v: tconv(3)(workspace=v)):
        with pytest.raises(ValueError, match=r"workspace must be an int number of bytes >= 16777216"):
            call(2**20)
        with pytest.raises(TypeError, match=r"workspace must be an int number of bytes"):
            call(1.5e8)


# --- output_size --------------------------------------------------------------------------------------------------

OUTPUT_SIZE_TUPLE = {1: r"\(w,\)", 2: r"\(h, w\)", 3: r"\(d, h, w\)"}


@pytest.mark.parametrize("name", [k for k in FORWARDS if k.startswith("adaptive")])
def test_bad_output_size(name):
    n, call = FORWARDS[name]
    what = rf"output_size must be an int >= 1 or a {OUTPUT_SIZE_TUPLE[n]} tuple, each entry an int >= 1 or None, got "
    wrong_length = [(2,) * (n + 1), (2,) * (n - 1) if n > 1 else (), [2] * (n + 2)]
    for bad in [0, -1, (2,) * (n - 1) + (0,), (2,) * (n - 1) + (-3,), *wrong_length]:
        with pytest.raises(ValueError, match=what):
            call(size=bad)
    for bad in [2.0, True, np.bool_(True), None, "2", (2,) * (n - 1) + (1.5,), (2,) * (n - 1) + (True,)]:
        with pytest.raises(TypeError, match=what):
            call(size=bad)
    with pytest.raises(ValueError, match=r"output_size .* is too large for memory"):
        call(size=2**60)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_good_output_sizes(n):
    """None keeps an axis' size; NumPy ints and 0-d arrays are ints; a size larger than the input is fine."""
    x = X[n]
    spatial = x.shape[1:-1]
    fwd = getattr(ic, f"adaptive_avg_pool{n}d_forward")
    assert fwd(x, (None,) * n)[0].shape == x.shape
    assert fwd(x, np.int64(2))[0].shape == (2, *(2,) * n, 4) == fwd(x, np.array(2))[0].shape
    assert fwd(x, [s + 3 for s in spatial])[0].shape == (2, *(s + 3 for s in spatial), 4)


# --- caches and dout ---------------------------------------------------------------------------------------------


def caches():
    """``{forward name: (out, cache)}`` of the new functions and of their 2-D counterparts."""
    runs = {
        "conv1d_forward": conv(1)(),
        "conv2d_forward": ic.conv2d_forward(X2, np.ones((3, 3, 4, 6))),
        "conv3d_forward": conv(3)(),
        "conv_transpose1d_forward": tconv(1)(),
        "conv_transpose3d_forward": tconv(3)(),
    }
    for kind in ("max", "avg"):
        for n in (1, 2, 3):
            runs[f"{kind}_pool{n}d_forward"] = getattr(ic, f"{kind}_pool{n}d_forward")(X[n], 2)
            runs[f"adaptive_{kind}_pool{n}d_forward"] = getattr(ic, f"adaptive_{kind}_pool{n}d_forward")(X[n], 3)
    return runs


CACHES = caches()


def what_got(forward: str, cache) -> str:
    """How a backward function's message names the cache of ``forward`` it got in place of its own kind."""
    if isinstance(cache, ic.PoolCache):
        return f"a PoolCache of kind '{cache.kind}' in {cache.geom.ndim}-D"
    if isinstance(cache, ic.AdaptivePoolCache):
        return f"the cache of {forward}"
    return f"the {type(cache).__name__} of {forward}"


NEW_BACKWARDS = [
    f"{name}_backward"
    for name in ["conv1d", "conv3d", "conv_transpose1d", "conv_transpose3d"]
    + [f"{kind}_pool{n}d" for kind in ("max", "avg") for n in (1, 3)]
    + [f"adaptive_{kind}_pool{n}d" for kind in ("max", "avg") for n in (1, 2, 3)]
]


@pytest.mark.parametrize("backward", NEW_BACKWARDS)
def test_a_cache_of_another_rank_or_kind_is_a_type_error_naming_both(backward):
    forward = backward.replace("_backward", "_forward")
    fn = getattr(ic, backward)
    out, own = CACHES[forward]
    fn(np.ones(out.shape), own)  # its own cache is fine
    for other, (_, cache) in CACHES.items():
        if other == forward:
            continue
        got = what_got(other, cache) if type(cache) is type(own) else type(cache).__name__
        expected = rf"^cache must be the {type(own).__name__} returned by {forward}, got {re.escape(got)}$"
        with pytest.raises(TypeError, match=expected):
            fn(np.ones(out.shape), cache)
    with pytest.raises(TypeError, match=rf"returned by {forward}, got tuple"):
        fn(np.ones(out.shape), tuple(own))


def test_conv1d_backward_with_the_cache_of_conv3d():
    with pytest.raises(
        TypeError, match=r"cache must be the ConvCache returned by conv1d_forward, got the ConvCache of conv3d_forward"
    ):
        ic.conv1d_backward(np.ones(CACHES["conv1d_forward"][0].shape), CACHES["conv3d_forward"][1])


@pytest.mark.parametrize("first", [False, True], ids=["channels-last", "channels-first"])
@pytest.mark.parametrize("backward", NEW_BACKWARDS)
def test_dout_of_another_shape(backward, first):
    forward = getattr(ic, backward.replace("_backward", "_forward"))
    n = int(re.search(r"(\d)d_", backward).group(1))
    x = CACHES[backward.replace("_backward", "_forward")][1].x
    if first:  # the same layer on channels-first arrays
        x = np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1))
    kw = {"data_format": FIRST[n] if first else LAST[n]}
    if backward.startswith("conv"):
        w = W1 if n == 1 else W3
        w = np.ascontiguousarray(w.transpose(n + 1, n, *range(n))) if first else w
        out, cache = forward(x, w, **kw)
    else:
        out, cache = forward(x, 2 if "adaptive" not in backward else 3, **kw)
    shape = out.shape
    bad_shapes = [shape[:-1], shape + (1,), (shape[0] + 1, *shape[1:]), (*shape[:-1], shape[-1] + 1)]
    bad_shapes.append(shape[:1] + shape[2:] + shape[1:2])  # the other layout
    for bad in bad_shapes:
        if bad == shape:
            continue
        with pytest.raises(ValueError, match=rf"dout must have the forward output's shape {re_shape(shape)}, got "):
            getattr(ic, backward)(np.ones(bad), cache)
    getattr(ic, backward)(np.ones(shape), cache)  # the right shape is fine


# --- fold, col2im, unfold, im2col -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: ic.fold(np.ones((2, 12, 8)), (9,), 3),
         r"cols must have L = 7 columns, the \(7,\) windows of output_size \(9,\), got 8"),
        (lambda: ic.fold(np.ones((2, 13, 7)), (9,), 3),
         r"cols must have C\*prod\(kernel_size\) rows, a multiple of prod\(\(3,\)\) = 3, got 13 rows"),
        (lambda: ic.fold(np.ones((2, 24, 60)), (5, 6, 7), 2),
         r"cols must have L = 120 columns, the \(4, 5, 6\) windows of output_size \(5, 6, 7\), got 60"),
        (lambda: ic.fold(np.ones((2, 23, 120)), (5, 6, 7), 2), r"a multiple of prod\(\(2, 2, 2\)\) = 8, got 23 rows"),
        (lambda: ic.fold(np.ones((2, 24, 60)), 5, (2, 2, 2)),
         r"cols must have L = 64 columns, the \(4, 4, 4\) windows of output_size \(5, 5, 5\), got 60"),
        (lambda: ic.fold(np.ones((2, 24)), (9,), 3),
         r"cols must be a 3-D array of shape \(N, C\*prod\(kernel\), L\), got shape \(2, 24\)"),
        (lambda: ic.fold(np.ones((2, 24, 60)), (5, 6, 7, 8), 2),
         r"output_size must be an int or a tuple of 1 to 3 ints, got \(5, 6, 7, 8\)"),
        (lambda: ic.fold(np.ones((2, 24, 60)), (5, 0, 7), 2),
         r"output_size must be an int >= 1 or a \(d, h, w\) triple of them, got \(5, 0, 7\)"),
        (lambda: ic.fold(np.ones((2, 24, 60)), (5, 6, 7), (2, 2)),
         r"kernel_size must be an int >= 1 or a \(d, h, w\) triple of them, got \(2, 2\)"),
        (lambda: ic.col2im(np.ones((60, 12)), (1, 5, 6, 7, 4), (2, 1, 1)),
         r"cols must have shape \(N\*prod\(out\), prod\(kernel\)\*C\) = \(168, 8\) for x_shape \(1, 5, 6, 7, 4\), "
         r"got \(60, 12\)"),
        (lambda: ic.col2im(np.ones((14, 8)), (2, 9, 4), 2),
         r"cols must have shape \(N\*prod\(out\), prod\(kernel\)\*C\) = \(16, 8\) for x_shape \(2, 9, 4\)"),
        (lambda: ic.col2im(np.ones((16, 8)), (2, 9, 4, 1, 1, 1), 2),
         r"x_shape must be a shape \(N, \*spatial, C\) with 1 to 3 spatial axes"),
        (lambda: ic.col2im(np.ones((16, 8)), (2, 9, 4), (2, 2)),
         r"kernel_size must be an int >= 1 or a \(w,\) tuple of them, got \(2, 2\)"),
        (lambda: ic.unfold(np.ones((2, 3)), 2),
         r"x must be a 3-, 4- or 5-D array of shape \(N, C, \*spatial\) \(1 to 3 spatial axes\), got shape \(2, 3\)"),
        (lambda: ic.unfold(np.ones((2, 3, 4, 5, 6, 7)), 2),
         r"x must be a 3-, 4- or 5-D array .* got shape \(2, 3, 4, 5, 6, 7\)"),
        (lambda: ic.unfold(np.ones((2, 3, 9)), (2, 2)),
         r"kernel_size must be an int >= 1 or a \(w,\) tuple of them, got \(2, 2\)"),
        (lambda: ic.im2col(np.ones((2, 3, 4, 5, 6, 7)), 2),
         r"x must be a 3-, 4- or 5-D array of shape \(N, \*spatial, C\)"),
    ],
)  # fmt: skip
def test_unfold_family_shapes(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_fold_names_kernel_size_when_its_length_is_wrong():
    """An int output_size takes its rank from kernel_size: a kernel_size of 4 axes is kernel_size's fault."""
    with pytest.raises(ValueError, match=r"kernel_size"):
        ic.fold(np.ones((2, 32, 60)), 5, (2, 2, 2, 2))


# --- PyTorch habits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "fmt"),
    [
        (lambda: ic.conv1d_forward(np.ones((2, 3, 9)), np.ones((4, 3, 3))), "NCW"),
        (lambda: ic.conv3d_forward(np.ones((2, 3, 8, 8, 8)), np.ones((4, 3, 3, 3, 3))), "NCDHW"),
        (lambda: ic.conv_transpose1d_forward(np.ones((2, 3, 9)), np.ones((3, 4, 3))), "NCW"),
        (lambda: ic.conv_transpose3d_forward(np.ones((2, 3, 8, 8, 8)), np.ones((3, 4, 3, 3, 3))), "NCDHW"),
        (lambda: ic.conv1d_forward(np.ones((2, 4, 9)), np.ones((6, 2, 3)), groups=2), "NCW"),
    ],
)
def test_pytorch_shaped_arrays_without_data_format_say_so(call, fmt):
    with pytest.raises(ValueError, match=rf"look like PyTorch's {fmt} layout .*pass data_format='{fmt}'"):
        call()


@pytest.mark.parametrize(
    ("call", "fmt"),
    [
        (lambda: ic.conv1d_forward(np.ones((2, 9, 3)), np.ones((3, 3, 4)), data_format="NCW"), "NWC"),
        (lambda: ic.conv3d_forward(np.ones((2, 8, 8, 8, 3)), np.ones((3, 3, 3, 3, 4)), data_format="NCDHW"), "NDHWC"),
        (lambda: ic.conv_transpose3d_forward(np.ones((2, 8, 8, 8, 3)), np.ones((3, 3, 3, 4, 3)), data_format="NCDHW"),
         "NDHWC"),
    ],
)  # fmt: skip
def test_channels_last_arrays_with_channels_first_data_format_say_so(call, fmt):
    with pytest.raises(ValueError, match=rf"look like {fmt} arrays: leave data_format at '{fmt}'"):
        call()


def test_no_hint_when_neither_layout_fits():
    with pytest.raises(ValueError, match=r"w has C_in=3 input channels but x has C=5 channels$"):
        ic.conv1d_forward(np.ones((2, 8, 5)), np.ones((3, 3, 4)))
    with pytest.raises(ValueError, match=r"w has C_in=3 input channels but x has C=5 channels$"):
        ic.conv3d_forward(np.ones((2, 8, 8, 8, 5)), np.ones((3, 3, 3, 3, 4)))


def _arrays(*shapes):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(s) for s in shapes]


def test_conv_takes_pytorchs_positional_order():
    x, w, b = _arrays((2, 19, 4), (3, 2, 6), (6,))
    # F.conv1d(input, weight, bias, stride, padding, dilation, groups)
    out, _ = ic.conv1d_forward(x, w, b, 2, 1, 2, 2)
    np.testing.assert_array_equal(out, ic.conv1d_forward(x, w, b, stride=2, padding=1, dilation=2, groups=2)[0])
    assert out.shape == (2, 9, 6)
    x, w, b = _arrays((2, 7, 8, 9, 4), (3, 3, 3, 2, 6), (6,))
    out, _ = ic.conv3d_forward(x, w, b, (1, 2, 1), 1, (1, 1, 2), 2)
    expected = ic.conv3d_forward(x, w, b, stride=(1, 2, 1), padding=1, dilation=(1, 1, 2), groups=2)[0]
    np.testing.assert_array_equal(out, expected)


def test_conv_transpose_takes_pytorchs_positional_order():
    # F.conv_transpose{1,3}d(input, weight, bias, stride, padding, output_padding, groups, dilation): groups first
    x, w, b = _arrays((2, 5, 4), (3, 3, 4), (6,))
    out, _ = ic.conv_transpose1d_forward(x, w, b, 2, 1, 1, 2, 2)
    expected = ic.conv_transpose1d_forward(x, w, b, stride=2, padding=1, output_padding=1, groups=2, dilation=2)[0]
    np.testing.assert_array_equal(out, expected)
    assert out.shape == (2, 12, 6)
    x, w, b = _arrays((2, 3, 4, 5, 4), (2, 3, 2, 3, 4), (6,))
    out, _ = ic.conv_transpose3d_forward(x, w, b, 2, (0, 1, 0), (1, 0, 1), 2, 1)
    expected = ic.conv_transpose3d_forward(x, w, b, stride=2, padding=(0, 1, 0), output_padding=(1, 0, 1), groups=2)[0]
    np.testing.assert_array_equal(out, expected)


def test_pooling_takes_pytorchs_positional_order():
    (x1,) = _arrays((2, 19, 3))
    (x3,) = _arrays((2, 9, 8, 7, 3))
    # max_pool: kernel_size, stride, padding, dilation, ceil_mode
    for x in (x1, x3):
        n = x.ndim - 2
        fwd = getattr(ic, f"max_pool{n}d_forward")
        out, cache = fwd(x, 3, 2, 1, 1, True)
        e_out, e_cache = fwd(x, 3, stride=2, padding=1, dilation=1, ceil_mode=True)
        np.testing.assert_array_equal(out, e_out)
        np.testing.assert_array_equal(cache.indices, e_cache.indices)
    # avg_pool1d: kernel_size, stride, padding, ceil_mode, count_include_pad (no divisor_override, as in PyTorch)
    out, _ = ic.avg_pool1d_forward(x1, 3, 2, 1, True, False)
    expected = ic.avg_pool1d_forward(x1, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)[0]
    np.testing.assert_array_equal(out, expected)
    out, _ = ic.avg_pool3d_forward(x3, 3, 2, 1, True, False, 5)
    expected = ic.avg_pool3d_forward(
        x3, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=5
    )[0]
    np.testing.assert_array_equal(out, expected)
    for n, x in ((1, x1), (3, x3)):
        for kind in ("avg", "max"):
            fwd = getattr(ic, f"adaptive_{kind}_pool{n}d_forward")
            np.testing.assert_array_equal(fwd(x, 4)[0], fwd(x, output_size=4)[0])


def test_unfold_and_fold_take_pytorchs_positional_order():
    # F.unfold(input, kernel_size, dilation, padding, stride); F.fold(input, output_size, kernel_size, dilation, ...)
    (x,) = _arrays((2, 3, 6, 7, 8))
    cols = ic.unfold(x, 2, (1, 2, 1), 1, (2, 1, 2))
    np.testing.assert_array_equal(cols, ic.unfold(x, 2, dilation=(1, 2, 1), padding=1, stride=(2, 1, 2)))
    back = ic.fold(cols, (6, 7, 8), 2, (1, 2, 1), 1, (2, 1, 2))
    np.testing.assert_array_equal(back, ic.fold(cols, (6, 7, 8), 2, dilation=(1, 2, 1), padding=1, stride=(2, 1, 2)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: ic.conv1d_forward(X1, W1, None, 1, 0, 1, 1, "NWC"),
        lambda: ic.conv_transpose3d_forward(XT3, W3, None, 1, 0, 0, 1, 1, "NDHWC"),
        lambda: ic.max_pool3d_forward(X3, 2, 2, 0, 1, False, "NDHWC"),
        lambda: ic.avg_pool1d_forward(X1, 2, 2, 0, False, True, "NWC"),
        lambda: ic.adaptive_avg_pool2d_forward(X2, 2, "NHWC"),
    ],
)
def test_data_format_and_workspace_stay_keyword_only(call):
    with pytest.raises(TypeError, match="positional"):
        call()
