"""The golden cases of the 1-D / 3-D layers, adaptive pooling, unfold / fold and the N-d im2col (folder ``nd/``).

Built by ``make_golden.py`` (``python -m reference.golden.make_golden``, ``--check``), which writes them to
``reference/golden/nd/<op>_<dtype>_<nn>.npz``; the key layout of each op is in README.md. Hyperparameters are
stored exactly as they were passed (an int, a per-axis tuple, per-side pairs or a padding string); a pooling case
without a ``stride`` key used the default (the kernel size); an ``output_size`` entry of -1 is None.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import reference as R
from reference.golden import ND_OPS  # their seed ids: op_id = 11 + position

# Convolution: (N, spatial, C_in, C_out, kernel, stride, padding, dilation, groups, data_format, bias)
CONV1D = [
    (2, (9,), 4, 6, (3,), 2, ((2, 1),), 2, 2, "NWC", True),  # per-side padding, dilation, groups
    (2, (8,), 3, 3, (4,), 1, "same", 1, 3, "NCW", True),  # depthwise, 'same' with an even kernel (odd total)
    (1, (10,), 2, 4, (3,), 3, 1, 1, 1, "NWC", False),  # stride 3, no bias
    (2, (7,), 4, 4, (2,), 1, "valid", 3, 4, "NCW", True),  # depthwise, dilation 3
    (1, (6,), 2, 4, (1,), 2, (1,), 1, 2, "NWC", True),  # 1-wide kernel, channel multiplier 2, per-axis padding
]
CONV3D = [
    (1, (4, 5, 4), 2, 3, (2, 3, 2), (1, 2, 1), ((1, 0), (1, 1), (0, 1)), 1, 1, "NDHWC", True),
    (1, (3, 4, 4), 4, 4, (3, 3, 2), 1, "same", (1, 1, 2), 4, "NCDHW", True),  # depthwise, 'same', dilated
    (1, (5, 4, 3), 2, 4, (2, 2, 1), (2, 1, 1), (1, 0, 0), (2, 1, 1), 2, "NCDHW", False),
    (2, (3, 3, 3), 3, 2, (1, 1, 1), 1, 0, 1, 1, "NDHWC", True),  # 1x1x1 kernel
    (1, (4, 4, 5), 2, 2, (3, 2, 2), (1, 2, 2), "valid", 1, 1, "NDHWC", True),
]
# Transposed convolution: (N, spatial, C_in, C_out, kernel, stride, padding, output_padding, dilation, groups,
# data_format, bias)
CONV_TRANSPOSE1D = [
    (2, (4,), 3, 2, (3,), 2, 1, 1, 1, 1, "NWC", True),  # the usual 2x upsampling
    (1, (5,), 4, 6, (2,), 3, 0, 2, 1, 2, "NCW", True),
    (2, (3,), 4, 4, (3,), 1, 1, 1, 2, 4, "NWC", False),  # depthwise; output_padding below the dilation only
    (1, (4,), 2, 3, (4,), (2,), (2,), (0,), (1,), 1, "NCW", True),  # per-axis tuples
]
CONV_TRANSPOSE3D = [
    (1, (2, 3, 2), 2, 2, (2, 2, 2), (2, 1, 2), (1, 0, 0), (1, 0, 0), 1, 1, "NDHWC", True),
    (1, (2, 2, 3), 4, 2, (3, 2, 2), (1, 2, 1), (1, 0, 1), (0, 1, 0), (1, 1, 2), 2, "NCDHW", True),
    (1, (2, 2, 1), 3, 3, (1, 3, 2), (2, 1, 2), 0, (1, 1, 1), (1, 2, 1), 3, "NCDHW", False),  # op < dilation on H
    (1, (2, 2, 2), 2, 4, (2, 2, 2), 2, 0, 0, 1, 1, "NDHWC", True),
]
# Max pooling: (N, spatial, C, kernel, stride, padding, dilation, ceil_mode, data_format, values); stride None:
# the default. values: "randn", "ties" (ints in [-2, 2]), "negative_ties" (ints in [-3, -1]), "nan" (ties, 1/16 NaN)
MAX_POOL1D = [
    (2, (9,), 3, 3, 2, 1, 1, True, "NWC", "ties"),
    (2, (10,), 2, 2, None, 1, 2, True, "NCW", "negative_ties"),  # default stride, dilation
    (1, (11,), 3, 4, 3, 2, 2, False, "NWC", "randn"),
    (2, (7,), 2, 3, 1, 1, 1, False, "NCW", "nan"),  # overlapping windows with NaN: the last NaN wins
    (1, (5,), 2, 2, 2, 1, 1, True, "NWC", "ties"),  # ceil's extra window dropped again
]
MAX_POOL3D = [
    (1, (4, 5, 4), 2, (2, 3, 2), (2, 2, 1), (1, 1, 0), 1, True, "NDHWC", "ties"),
    (2, (3, 4, 5), 2, 2, None, 1, (1, 1, 2), False, "NCDHW", "negative_ties"),
    (1, (5, 5, 3), 2, 2, 2, 1, 1, True, "NCDHW", "nan"),
    (1, (2, 3, 3), 3, (3, 3, 3), (2, 2, 2), 0, 1, True, "NDHWC", "randn"),  # kernel deeper than the input, ceil
]
# Average pooling: (N, spatial, C, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override,
# data_format); avg_pool1d has no divisor_override (always None)
AVG_POOL1D = [
    (2, (9,), 3, 3, 2, 1, True, True, None, "NWC"),  # the ceil-mode overhang is not in the divisor
    (2, (9,), 3, 3, 2, 1, True, False, None, "NCW"),
    (1, (10,), 2, 4, None, 2, False, False, None, "NWC"),
    (2, (7,), 2, 2, 3, 1, True, True, None, "NCW"),
]
AVG_POOL3D = [
    (1, (4, 5, 4), 2, (2, 3, 2), (2, 2, 1), (1, 1, 0), True, False, None, "NDHWC"),
    (2, (3, 4, 4), 2, 2, None, 1, True, True, None, "NCDHW"),
    (1, (5, 4, 3), 2, 3, 2, 1, True, False, 5, "NCDHW"),  # divisor_override beats count_include_pad
    (1, (3, 3, 4), 3, (3, 2, 2), (1, 2, 2), (1, 1, 1), False, True, -3, "NDHWC"),
]
# Adaptive pooling: (N, spatial, C, output_size, data_format, values); the rank is x.ndim - 2
ADAPTIVE = [
    (2, (9,), 3, 4, "NWC", "ties"),  # windows of 3 overlapping by one
    (1, (7,), 2, (None,), "NCW", "randn"),  # None: the input size (one window per position)
    (2, (5, 7), 2, (3, None), "NHWC", "nan"),
    (1, (6, 4), 3, (4, 6), "NCHW", "ties"),  # more outputs than inputs on W
    (1, (4, 5, 3), 2, (2, 3, None), "NDHWC", "negative_ties"),
    (1, (3, 4, 5), 2, (3, 2, 4), "NCDHW", "randn"),
]
# unfold / fold: (N, C, spatial, kernel_size, dilation, padding, stride) -- PyTorch's positional order
UNFOLD = [
    (2, 3, (9,), 3, 2, 1, 2),
    (1, 2, (5, 6), (2, 3), (2, 1), (1, 0), (1, 2)),
    (1, 1, (4, 4, 3), (2, 2, 2), 1, (1, 0, 1), (2, 1, 1)),
    (2, 1, (8,), (4,), (1,), (0,), (3,)),  # the stride leaves the last position unused
]
# N-d im2col / col2im (channels-last): (N, spatial, C, kernel, stride, padding, dilation, pad_value)
IM2COL_ND = [
    (2, (9,), 2, 3, 2, 1, 2, 0.0),
    (1, (7,), 3, (2,), (3,), (1,), (1,), -np.inf),  # max-pool style padding
    (1, (4, 4, 3), 1, (2, 2, 2), (1, 2, 1), (1, 0, 1), (1, 1, 2), 0.0),
    (1, (3, 4, 4), 1, 2, 2, 1, 1, -np.inf),
]


def _values(rng: np.random.Generator, shape: tuple[int, ...], kind: str, dtype: str) -> np.ndarray:
    if kind == "randn":
        return rng.standard_normal(shape).astype(dtype)
    low, high = {"ties": (-2, 2), "nan": (-2, 2), "negative_ties": (-3, -1)}[kind]
    x = rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    if kind == "nan":
        x.flat[rng.choice(x.size, max(2, x.size // 16), replace=False)] = np.nan  # at least two NaN
    return x


def _stored(value: object) -> np.ndarray:
    """A hyperparameter as stored: a 0-d str, bool or float, or an int64 array of any shape (None entries: -1)."""
    if isinstance(value, str | bool | float):
        return np.array(value)
    if isinstance(value, tuple):
        value = tuple(-1 if v is None else v for v in value)
    return np.array(value, dtype=np.int64)


def _first(data_format: str) -> bool:
    return data_format in ("NCW", "NCHW", "NCDHW")


def _activation(a: np.ndarray, data_format: str) -> np.ndarray:
    """A channels-last activation in ``data_format``."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if _first(data_format) else a


def _weight(w: np.ndarray, data_format: str) -> np.ndarray:
    """A channels-last weight (*k, b, a) in ``data_format``'s layout ((a, b, *k) if channels-first)."""
    nd = w.ndim - 2
    return np.ascontiguousarray(w.transpose(nd + 1, nd, *range(nd))) if _first(data_format) else w


def _conv_cases(op: str, rng_for: Callable[[int], np.random.Generator], dt: str, table: list) -> dict:
    transposed = op.startswith("conv_transpose")
    cases = {}
    for nn, row in enumerate(table):
        if transposed:
            n, spatial, ci, co, k, s, p, op_, d, groups, fmt, bias = row
        else:
            n, spatial, ci, co, k, s, p, d, groups, fmt, bias = row
        rng = rng_for(nn)
        x = _activation(rng.standard_normal((n, *spatial, ci)).astype(dt), fmt)
        w_shape = (*k, co // groups, ci) if transposed else (*k, ci // groups, co)
        w = _weight(rng.standard_normal(w_shape).astype(dt), fmt)
        b = rng.standard_normal(co).astype(dt) if bias else None
        kwargs = dict(stride=s, padding=p, dilation=d, groups=groups, data_format=fmt)
        if transposed:
            kwargs["output_padding"] = op_
        out, cache = getattr(R, f"{op}_forward")(x, w, b, **kwargs)
        dout = rng.standard_normal(out.shape).astype(dt)
        dx, dw, db = getattr(R, f"{op}_backward")(dout, cache)
        case = dict(op=np.array(op), x=x, w=w, dout=dout, kernel=_stored(k), out=out, dx=dx, dw=dw, db=db)
        case |= {key: _stored(value) for key, value in kwargs.items()}
        if b is not None:
            case["b"] = b
        cases[f"{op}_{dt}_{nn:02d}"] = case
    return cases


def _pool_cases(op: str, rng_for: Callable[[int], np.random.Generator], dt: str, table: list) -> dict:
    cases = {}
    for nn, row in enumerate(table):
        if op.startswith("max"):
            n, spatial, c, k, s, p, d, ceil, fmt, kind = row
            kwargs = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil, data_format=fmt)
        else:
            n, spatial, c, k, s, p, ceil, cip, div, fmt = row
            kwargs = dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, data_format=fmt)
            if div is not None:
                kwargs["divisor_override"] = div
            kind = "randn"
        rng = rng_for(nn)
        x = _activation(_values(rng, (n, *spatial, c), kind, dt), fmt)
        out, cache = getattr(R, f"{op}_forward")(x, k, **kwargs)
        dout = rng.standard_normal(out.shape).astype(dt)
        case = dict(op=np.array(op), x=x, dout=dout, kernel=_stored(k), out=out)
        case["dx"] = getattr(R, f"{op}_backward")(dout, cache)
        case |= {key: _stored(value) for key, value in kwargs.items() if value is not None}  # no stride: default
        if op.startswith("max"):
            case |= dict(indices=cache.indices, ties=np.array(kind != "randn"))
        cases[f"{op}_{dt}_{nn:02d}"] = case
    return cases


def _adaptive_cases(op: str, rng_for: Callable[[int], np.random.Generator], dt: str) -> dict:
    cases = {}
    kind_of = op.split("_")[1]  # 'avg' or 'max'
    for nn, (n, spatial, c, output_size, fmt, kind) in enumerate(ADAPTIVE):
        rng = rng_for(nn)
        x = _activation(_values(rng, (n, *spatial, c), kind if kind_of == "max" else "randn", dt), fmt)
        name = f"adaptive_{kind_of}_pool{len(spatial)}d"
        out, cache = getattr(R, f"{name}_forward")(x, output_size, data_format=fmt)
        dout = rng.standard_normal(out.shape).astype(dt)
        case = dict(op=np.array(op), x=x, dout=dout, output_size=_stored(output_size), data_format=np.array(fmt))
        case |= dict(out=out, dx=getattr(R, f"{name}_backward")(dout, cache))
        if kind_of == "max":
            case |= dict(indices=cache.indices, ties=np.array(kind != "randn"))
        cases[f"{op}_{dt}_{nn:02d}"] = case
    return cases


def build_nd_cases(dt: str, d_id: int) -> dict[str, dict[str, np.ndarray]]:
    """The N-d golden cases of one dtype, keyed by file stem ``<op>_<dtype>_<nn>`` (files in ``nd/``)."""
    cases: dict[str, dict[str, np.ndarray]] = {}

    def rng_maker(op: str) -> Callable[[int], np.random.Generator]:
        op_id = 11 + ND_OPS.index(op)
        return lambda nn: np.random.default_rng([2024, op_id, d_id, nn])

    conv_tables = (CONV1D, CONV3D, CONV_TRANSPOSE1D, CONV_TRANSPOSE3D)
    for op, table in zip(ND_OPS[:4], conv_tables, strict=True):
        cases |= _conv_cases(op, rng_maker(op), dt, table)
    for op, table in zip(ND_OPS[4:8], (MAX_POOL1D, MAX_POOL3D, AVG_POOL1D, AVG_POOL3D), strict=True):
        if op == "avg_pool1d":
            assert all(row[8] is None for row in table)  # PyTorch's avg_pool1d has no divisor_override
        cases |= _pool_cases(op, rng_maker(op), dt, table)
    for op in ("adaptive_avg_pool", "adaptive_max_pool"):
        cases |= _adaptive_cases(op, rng_maker(op), dt)

    for nn, (n, c, spatial, k, d, p, s) in enumerate(UNFOLD):
        rng = rng_maker("unfold")(nn)
        x = rng.standard_normal((n, c, *spatial)).astype(dt)
        cols = R.unfold(x, k, d, p, s)
        dcols = rng.standard_normal(cols.shape).astype(dt)
        cases[f"unfold_{dt}_{nn:02d}"] = dict(
            op=np.array("unfold"), x=x, kernel=_stored(k), dilation=_stored(d), padding=_stored(p), stride=_stored(s),
            cols=cols, dcols=dcols, dx=R.fold(dcols, spatial, k, d, p, s),
        )  # fmt: skip

    for nn, (n, spatial, c, k, s, p, d, pad_value) in enumerate(IM2COL_ND):
        rng = rng_maker("im2col_nd")(nn)
        x = rng.standard_normal((n, *spatial, c)).astype(dt)
        geometry = dict(stride=s, padding=p, dilation=d)
        cols = R.im2col(x, k, pad_value=pad_value, **geometry)
        dcols = rng.standard_normal(cols.shape).astype(dt)
        case = dict(op=np.array("im2col_nd"), x=x, kernel=_stored(k), pad_value=np.array(pad_value), cols=cols)
        case |= {key: _stored(value) for key, value in geometry.items()}
        case |= dict(dcols=dcols, dx=R.col2im(dcols, x.shape, k, **geometry))
        cases[f"im2col_nd_{dt}_{nn:02d}"] = case
    return cases
