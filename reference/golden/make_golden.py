"""Regenerate the golden npz files from the reference loops (fixed seeds, deterministic bytes).

Run from the repository root: ``python -m reference.golden.make_golden`` (or
``python reference/golden/make_golden.py``). ``--check`` rebuilds the cases in memory and compares them
with the stored files instead of writing. The 2-D cases are built here and go to this folder; the N-d ones are
built by ``make_golden_nd`` and go to ``nd/``. Layout of each file: README.md in this folder.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import reference as R  # noqa: E402
from reference.golden import ND_DIR  # noqa: E402
from reference.golden.make_golden_nd import build_nd_cases  # noqa: E402

GOLDEN_DIR = Path(__file__).resolve().parent
DTYPES = ("float32", "float64")

# Modern conv: (N, H, W, C_in, C_out, (kh, kw), (sh, sw), (ph, pw))
CONV = [
    (2, 5, 5, 3, 4, (3, 3), (1, 1), (0, 0)),
    (1, 6, 7, 2, 3, (3, 3), (1, 1), (1, 1)),  # batch 1, non-square
    (2, 7, 5, 3, 2, (2, 3), (2, 1), (1, 0)),  # rectangular kernel
    (2, 8, 6, 2, 3, (3, 1), (3, 2), (2, 1)),  # 3x1 kernel, padding 2
    (1, 9, 9, 2, 2, (2, 2), (3, 3), (0, 0)),  # stride > kernel
    (3, 5, 4, 1, 2, (1, 1), (1, 1), (0, 0)),  # 1x1 kernel
    (2, 6, 6, 3, 2, (5, 5), (1, 2), (2, 2)),  # big kernel, padding 2
    (1, 4, 4, 2, 2, (4, 4), (1, 1), (0, 0)),  # kernel == input: 1x1 output
    (2, 7, 8, 2, 3, (3, 2), (2, 3), (1, 2)),  # floor division leaves rows/cols unused
]
# Modern pools: (N, H, W, C, (kh, kw), (sh, sw), (ph, pw), values); values: "randn", "ties" (ints in
# [-2, 2]) or "negative_ties" (ints in [-3, -1]: zero padding would win, -inf padding never does)
POOL = [
    (2, 4, 4, 3, (2, 2), (2, 2), (0, 0), "randn"),
    (2, 5, 5, 2, (3, 3), (2, 2), (1, 1), "ties"),
    (1, 6, 7, 2, (2, 3), (1, 1), (1, 1), "randn"),  # rectangular, batch 1, non-square
    (2, 7, 5, 2, (3, 1), (3, 1), (1, 0), "ties"),
    (2, 8, 8, 2, (2, 2), (3, 3), (0, 0), "randn"),  # stride > kernel
    (2, 5, 6, 3, (3, 3), (1, 1), (1, 1), "ties"),  # overlapping windows
    (1, 6, 6, 2, (5, 5), (1, 2), (2, 2), "ties"),  # padding 2
    (2, 5, 5, 2, (2, 2), (1, 1), (1, 1), "ties"),
    (2, 5, 6, 2, (3, 3), (2, 2), (1, 1), "negative_ties"),
]
# im2col / col2im: (N, H, W, C, (kh, kw), (sh, sw), (ph, pw), pad_value)
IM2COL = [
    (2, 4, 4, 2, (2, 2), (1, 1), (0, 0), 0.0),
    (1, 5, 6, 3, (3, 2), (2, 1), (1, 2), 0.0),
    (2, 6, 5, 1, (3, 3), (3, 3), (2, 1), 0.0),
    (1, 7, 7, 2, (2, 2), (3, 2), (0, 1), 0.0),  # stride > kernel on H
    (2, 5, 5, 2, (3, 3), (2, 2), (1, 1), -np.inf),  # max-pool style padding
]
# Drop-in conv: (m, H, W, C_in, C_out, f, pad, stride)
DROPIN_CONV = [
    (2, 4, 4, 3, 4, 2, 2, 2),  # like the notebook's test_forward
    (2, 5, 5, 2, 3, 3, 0, 1),  # pad 0 (the notebook's dXi[pad:-pad] bug)
    (1, 5, 7, 3, 2, 3, 1, 2),
    (2, 6, 5, 2, 2, 2, 0, 3),  # stride > f
    (2, 5, 5, 3, 2, 1, 1, 1),
]
# Drop-in pools: (m, H, W, C, f, pad, stride, values)
DROPIN_POOL = [
    (2, 4, 4, 3, 3, 0, 2, "randn"),  # like the notebook's test_forward
    (2, 5, 5, 2, 2, 0, 1, "ties"),
    (2, 5, 6, 2, 3, 1, 2, "nonpositive_ties"),  # zero padding ties with / beats the data
    (1, 6, 6, 3, 2, 1, 3, "randn"),  # stride > f
    (2, 5, 5, 2, 3, 2, 1, "ties"),  # pad 2
]

# The general options. General conv: (N, H, W, C_in, C_out, (kh, kw), stride, padding, dilation, groups, data_format,
# bias); padding is stored as given (int pairs, ((top, bottom), (left, right)), 'same' or 'valid').
CONV_GENERAL = [
    (2, 7, 7, 4, 6, (3, 3), (1, 1), (1, 1), (2, 2), 2, "NHWC", True),  # dilation + padding + groups
    (2, 6, 6, 3, 3, (3, 3), (1, 1), "same", (1, 1), 3, "NHWC", True),  # depthwise, 'same'
    (1, 7, 8, 4, 8, (3, 3), (2, 2), ((1, 2), (0, 1)), (1, 1), 4, "NCHW", True),  # depthwise x2, asymmetric pad
    (2, 6, 5, 2, 3, (2, 3), (1, 1), "same", (2, 1), 1, "NCHW", False),  # 'same', odd total pad on H, no bias
    (2, 8, 7, 6, 4, (3, 2), (2, 1), "valid", (1, 2), 2, "NCHW", True),
    (1, 9, 9, 3, 2, (3, 3), (3, 2), (2, 1), (3, 2), 1, "NHWC", True),  # dilation > stride, padding pair
    (2, 5, 6, 4, 4, (1, 1), (1, 1), "same", (1, 1), 4, "NHWC", True),  # 1x1 depthwise
    (2, 6, 6, 4, 2, (2, 2), (1, 1), "same", (3, 3), 2, "NHWC", False),  # 'same', odd total pad on both axes
    (1, 6, 7, 2, 4, (5, 3), (1, 2), ((2, 0), (1, 3)), (1, 1), 2, "NCHW", True),
]
# Transposed conv: (N, H, W, C_in, C_out, (kh, kw), stride, padding, output_padding, dilation, groups,
# data_format, bias)
CONV_TRANSPOSE = [
    (2, 4, 4, 3, 2, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1, "NHWC", True),  # the usual 2x upsampling
    (1, 3, 5, 4, 6, (3, 2), (2, 3), (0, 1), (0, 2), (1, 1), 2, "NHWC", True),
    (2, 4, 3, 4, 4, (3, 3), (1, 1), (1, 1), (0, 0), (1, 1), 4, "NCHW", True),  # depthwise
    (2, 3, 4, 2, 3, (2, 2), (1, 2), (0, 0), (1, 1), (2, 2), 1, "NCHW", False),  # output_padding < dilation only
    (1, 5, 4, 6, 4, (3, 3), (3, 2), (2, 1), (2, 1), (2, 1), 2, "NHWC", True),
    (2, 2, 3, 3, 3, (4, 4), (2, 2), (1, 1), (0, 1), (1, 1), 3, "NCHW", True),
    (1, 4, 4, 2, 2, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), 1, "NHWC", True),  # 1x1 kernel
    (2, 3, 3, 4, 2, (2, 3), (3, 3), (1, 1), (2, 2), (1, 2), 2, "NCHW", True),
]
# General max pool: (N, H, W, C, (kh, kw), stride, padding, dilation, ceil_mode, data_format, values)
MAX_POOL_GENERAL = [
    (2, 7, 7, 3, (3, 3), (2, 2), (1, 1), (2, 2), False, "NHWC", "randn"),  # dilation + padding
    (2, 6, 6, 2, (3, 3), (2, 2), (0, 0), (1, 1), True, "NHWC", "ties"),  # ceil: last window runs past the edge
    (1, 7, 8, 3, (2, 3), (2, 2), (1, 1), (1, 1), True, "NCHW", "ties"),
    (2, 5, 7, 2, (2, 2), (3, 3), (1, 1), (2, 1), True, "NCHW", "negative_ties"),  # ceil + dilation
    (2, 8, 6, 2, (4, 2), (1, 2), (2, 1), (3, 2), False, "NHWC", "randn"),  # padding = k // 2 with dilation
    (1, 6, 6, 3, (3, 3), (3, 3), (1, 1), (1, 1), True, "NCHW", "randn"),  # ceil adds a window
    (2, 5, 5, 2, (2, 2), (2, 2), (1, 1), (1, 1), True, "NHWC", "ties"),  # ceil's extra window dropped
    (1, 2, 2, 2, (3, 3), (2, 2), (0, 0), (1, 1), True, "NHWC", "randn"),  # kernel > input, ceil: one window
]
# General avg pool: (N, H, W, C, (kh, kw), stride, padding, ceil_mode, count_include_pad, divisor_override,
# data_format)
AVG_POOL_GENERAL = [
    (2, 6, 6, 2, (3, 3), (2, 2), (1, 1), True, True, None, "NHWC"),  # the overhang is not in the divisor
    (2, 6, 6, 2, (3, 3), (2, 2), (1, 1), True, False, None, "NHWC"),
    (1, 7, 8, 3, (2, 3), (2, 2), (1, 1), False, False, None, "NCHW"),
    (2, 5, 7, 2, (3, 2), (2, 3), (1, 1), True, False, None, "NCHW"),
    (2, 5, 5, 2, (2, 2), (2, 2), (1, 1), True, True, 3, "NHWC"),
    (1, 6, 6, 3, (3, 3), (3, 3), (1, 1), True, False, 5, "NCHW"),  # divisor_override beats count_include_pad
    (2, 4, 4, 2, (3, 3), (1, 1), (1, 1), False, True, None, "NCHW"),
    (1, 2, 2, 2, (3, 3), (2, 2), (0, 0), True, False, None, "NHWC"),  # kernel > input, ceil: one window
]


def _values(rng: np.random.Generator, shape: tuple[int, ...], kind: str, dtype: str) -> np.ndarray:
    if kind == "randn":
        return rng.standard_normal(shape).astype(dtype)
    low, high = {"ties": (-2, 2), "negative_ties": (-3, -1), "nonpositive_ties": (-3, 0)}[kind]
    return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)


def _ints(*values: int) -> np.ndarray:
    return np.array(values if len(values) > 1 else values[0], dtype=np.int64)


def _layout(a: np.ndarray, data_format: str) -> np.ndarray:
    """An NHWC activation in ``data_format``."""
    return a if data_format == "NHWC" else np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _padding_value(padding: object) -> np.ndarray:
    """conv padding as stored: 0-d str, (2,) int64 pair or (2, 2) int64 pair of pairs."""
    return np.array(padding) if isinstance(padding, str) else np.array(padding, dtype=np.int64)


def build_general_cases(dt: str, d_id: int) -> dict[str, dict[str, np.ndarray]]:
    """The general-option cases of one dtype: conv_general, conv_transpose, max_pool_general, avg_pool_general."""
    cases: dict[str, dict[str, np.ndarray]] = {}

    def rng_for(op_id: int, nn: int) -> np.random.Generator:
        return np.random.default_rng([2024, op_id, d_id, nn])

    for nn, (n, h, w, ci, co, k, s, p, d, groups, fmt, bias) in enumerate(CONV_GENERAL):
        rng = rng_for(7, nn)
        x = _layout(rng.standard_normal((n, h, w, ci)).astype(dt), fmt)
        wt = rng.standard_normal((*k, ci // groups, co)).astype(dt)  # NHWC weight
        wt = wt if fmt == "NHWC" else np.ascontiguousarray(wt.transpose(3, 2, 0, 1))
        b = rng.standard_normal(co).astype(dt) if bias else None
        kwargs = dict(stride=s, padding=p, dilation=d, groups=groups, data_format=fmt)
        out, cache = R.conv2d_forward(x, wt, b, **kwargs)
        dout = rng.standard_normal(out.shape).astype(dt)
        dx, dw, db = R.conv2d_backward(dout, cache)
        case = dict(
            op=np.array("conv_general"), x=x, w=wt, dout=dout, kernel=_ints(*k), stride=_ints(*s),
            padding=_padding_value(p), dilation=_ints(*d), groups=_ints(groups), data_format=np.array(fmt),
            out=out, dx=dx, dw=dw, db=db,
        )  # fmt: skip
        if b is not None:
            case["b"] = b
        cases[f"conv_general_{dt}_{nn:02d}"] = case

    for nn, (n, h, w, ci, co, k, s, p, op_, d, groups, fmt, bias) in enumerate(CONV_TRANSPOSE):
        rng = rng_for(8, nn)
        x = _layout(rng.standard_normal((n, h, w, ci)).astype(dt), fmt)
        wt = rng.standard_normal((*k, co // groups, ci)).astype(dt)  # NHWC weight
        wt = wt if fmt == "NHWC" else np.ascontiguousarray(wt.transpose(3, 2, 0, 1))
        b = rng.standard_normal(co).astype(dt) if bias else None
        kwargs = dict(stride=s, padding=p, output_padding=op_, dilation=d, groups=groups, data_format=fmt)
        out, cache = R.conv_transpose2d_forward(x, wt, b, **kwargs)
        dout = rng.standard_normal(out.shape).astype(dt)
        dx, dw, db = R.conv_transpose2d_backward(dout, cache)
        case = dict(
            op=np.array("conv_transpose"), x=x, w=wt, dout=dout, kernel=_ints(*k), stride=_ints(*s),
            padding=_ints(*p), output_padding=_ints(*op_), dilation=_ints(*d), groups=_ints(groups),
            data_format=np.array(fmt), out=out, dx=dx, dw=dw, db=db,
        )  # fmt: skip
        if b is not None:
            case["b"] = b
        cases[f"conv_transpose_{dt}_{nn:02d}"] = case

    for nn, (n, h, w, c, k, s, p, d, ceil, fmt, kind) in enumerate(MAX_POOL_GENERAL):
        rng = rng_for(9, nn)
        x = _layout(_values(rng, (n, h, w, c), kind, dt), fmt)
        out, cache = R.max_pool2d_forward(x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil, data_format=fmt)
        dout = rng.standard_normal(out.shape).astype(dt)
        cases[f"max_pool_general_{dt}_{nn:02d}"] = dict(
            op=np.array("max_pool_general"), x=x, dout=dout, kernel=_ints(*k), stride=_ints(*s),
            padding=_ints(*p), dilation=_ints(*d), ceil_mode=np.array(ceil), data_format=np.array(fmt),
            out=out, indices=cache.indices, dx=R.max_pool2d_backward(dout, cache), ties=np.array(kind != "randn"),
        )  # fmt: skip

    for nn, (n, h, w, c, k, s, p, ceil, cip, div, fmt) in enumerate(AVG_POOL_GENERAL):
        rng = rng_for(10, nn)
        x = _layout(rng.standard_normal((n, h, w, c)).astype(dt), fmt)
        kwargs = dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div, data_format=fmt)
        out, cache = R.avg_pool2d_forward(x, k, **kwargs)
        dout = rng.standard_normal(out.shape).astype(dt)
        case = dict(
            op=np.array("avg_pool_general"), x=x, dout=dout, kernel=_ints(*k), stride=_ints(*s),
            padding=_ints(*p), ceil_mode=np.array(ceil), count_include_pad=np.array(cip),
            data_format=np.array(fmt), out=out, dx=R.avg_pool2d_backward(dout, cache),
        )  # fmt: skip
        if div is not None:
            case["divisor_override"] = _ints(div)
        cases[f"avg_pool_general_{dt}_{nn:02d}"] = case
    return cases


def build_cases() -> dict[str, dict[str, np.ndarray]]:
    """Every golden case, keyed by file stem ``<op>_<dtype>_<nn>``."""
    cases: dict[str, dict[str, np.ndarray]] = {}
    for d_id, dt in enumerate(DTYPES):

        def rng_for(op_id: int, nn: int, d_id: int = d_id) -> np.random.Generator:
            return np.random.default_rng([2024, op_id, d_id, nn])

        for nn, (n, h, w, ci, co, k, s, p) in enumerate(CONV):
            rng = rng_for(0, nn)
            x = rng.standard_normal((n, h, w, ci)).astype(dt)
            wt = rng.standard_normal((*k, ci, co)).astype(dt)
            b = rng.standard_normal(co).astype(dt)
            out, cache = R.conv2d_forward(x, wt, b, stride=s, padding=p)
            dout = rng.standard_normal(out.shape).astype(dt)
            dx, dw, db = R.conv2d_backward(dout, cache)
            cases[f"conv_{dt}_{nn:02d}"] = dict(
                op=np.array("conv"), x=x, w=wt, b=b, dout=dout, kernel=_ints(*k), stride=_ints(*s),
                padding=_ints(*p), out=out, dx=dx, dw=dw, db=db,
            )  # fmt: skip

        for op_id, op in ((1, "max_pool"), (2, "avg_pool")):
            fwd, bwd = {
                "max_pool": (R.max_pool2d_forward, R.max_pool2d_backward),
                "avg_pool": (R.avg_pool2d_forward, R.avg_pool2d_backward),
            }[op]
            for nn, (n, h, w, c, k, s, p, kind) in enumerate(POOL):
                rng = rng_for(op_id, nn)
                x = _values(rng, (n, h, w, c), kind, dt)
                out, cache = fwd(x, k, stride=s, padding=p)
                dout = rng.standard_normal(out.shape).astype(dt)
                case = dict(
                    op=np.array(op), x=x, dout=dout, kernel=_ints(*k), stride=_ints(*s), padding=_ints(*p),
                    out=out, dx=bwd(dout, cache),
                )  # fmt: skip
                if op == "max_pool":
                    case["ties"] = np.array(kind != "randn")
                cases[f"{op}_{dt}_{nn:02d}"] = case

        for nn, (n, h, w, c, k, s, p, pad_value) in enumerate(IM2COL):
            rng = rng_for(3, nn)
            x = rng.standard_normal((n, h, w, c)).astype(dt)
            cols = R.im2col(x, k, stride=s, padding=p, pad_value=pad_value)
            dcols = rng.standard_normal(cols.shape).astype(dt)
            cases[f"im2col_{dt}_{nn:02d}"] = dict(
                op=np.array("im2col"), x=x, kernel=_ints(*k), stride=_ints(*s), padding=_ints(*p),
                pad_value=np.array(pad_value), cols=cols, dcols=dcols,
                dx=R.col2im(dcols, x.shape, k, stride=s, padding=p),
            )  # fmt: skip

        for nn, (n, h, w, ci, co, f, pad, stride) in enumerate(DROPIN_CONV):
            rng = rng_for(4, nn)
            x = rng.standard_normal((n, h, w, ci)).astype(dt)
            wt = rng.standard_normal((f, f, ci, co)).astype(dt)
            b = rng.standard_normal((1, 1, 1, co)).astype(dt)
            out, cache = R.forward(x, wt, b, pad, stride, f, mode="conv")
            dout = rng.standard_normal(out.shape).astype(dt)
            dx, dw, db = R.backward(dout, cache)
            cases[f"dropin_conv_{dt}_{nn:02d}"] = dict(
                op=np.array("dropin_conv"), mode=np.array("conv"), x=x, w=wt, b=b, dout=dout, f=_ints(f),
                pad=_ints(pad), stride=_ints(stride), out=out, dx=dx, dw=dw, db=db,
            )  # fmt: skip

        dropin_pools = ((5, "dropin_maxpool", "maxpool", "max"), (6, "dropin_avepool", "avepool", "average"))
        for op_id, op, mode, bmode in dropin_pools:
            for nn, (n, h, w, c, f, pad, stride, kind) in enumerate(DROPIN_POOL):
                rng = rng_for(op_id, nn)
                x = _values(rng, (n, h, w, c), kind, dt)
                out, cache = R.forward(x, None, None, pad, stride, f, mode=mode)
                dout = rng.standard_normal(out.shape).astype(dt)
                cases[f"{op}_{dt}_{nn:02d}"] = dict(
                    op=np.array(op), mode=np.array(mode), backward_mode=np.array(bmode), x=x, dout=dout,
                    f=_ints(f), pad=_ints(pad), stride=_ints(stride), out=out,
                    dx=R.pool_backward(dout, cache, mode=bmode),
                )  # fmt: skip

        cases.update(build_general_cases(dt, d_id))
    return cases


def build_all_nd_cases() -> dict[str, dict[str, np.ndarray]]:
    """Every N-d golden case (folder ``nd/``), keyed by file stem ``<op>_<dtype>_<nn>``."""
    cases: dict[str, dict[str, np.ndarray]] = {}
    for d_id, dt in enumerate(DTYPES):
        cases.update(build_nd_cases(dt, d_id))
    return cases


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed with fixed timestamps, so regenerating gives identical bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
    path.write_bytes(buf.getvalue())


def check(cases: dict[str, dict[str, np.ndarray]], folder: Path = GOLDEN_DIR) -> int:
    """Compare freshly built cases with the files stored in ``folder``; return the number of mismatches."""
    stored = {p.stem for p in folder.glob("*.npz")}
    bad = sorted(stored ^ set(cases))
    for name in bad:
        print(f"{name}: only {'on disk' if name in stored else 'in build_cases()'}")
    for name in sorted(stored & set(cases)):
        with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
            same = set(data.files) == set(cases[name]) and all(
                data[k].dtype == cases[name][k].dtype
                and data[k].shape == cases[name][k].shape
                and np.allclose(data[k], cases[name][k], rtol=1e-6, atol=1e-6, equal_nan=True)
                if data[k].dtype.kind == "f"
                else np.array_equal(data[k], cases[name][k])
                for k in data.files
            )
        if not same:
            bad.append(name)
            print(f"{name}: differs")
    return len(bad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored files, write nothing")
    args = parser.parse_args(argv)
    folders = {GOLDEN_DIR: build_cases(), ND_DIR: build_all_nd_cases()}
    if args.check:
        n_bad = 0
        for folder, cases in folders.items():
            n_folder = check(cases, folder)
            print(f"{folder.name}/: {len(cases)} cases, {n_folder} mismatches")
            n_bad += n_folder
        return 1 if n_bad else 0
    for folder, cases in folders.items():
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.npz"):
            old.unlink()
        for name, arrays in cases.items():
            write_npz(folder / f"{name}.npz", arrays)
        total = sum(p.stat().st_size for p in folder.glob("*.npz"))
        print(f"wrote {len(cases)} cases to {folder} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
