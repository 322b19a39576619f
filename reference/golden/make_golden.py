"""Regenerate the golden npz files from the reference loops (fixed seeds, deterministic bytes).

Run from the repository root: ``python -m reference.golden.make_golden`` (or
``python reference/golden/make_golden.py``). ``--check`` rebuilds the cases in memory and compares them
with the stored files instead of writing. Layout of each file: README.md in this folder.
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


def _values(rng: np.random.Generator, shape: tuple[int, ...], kind: str, dtype: str) -> np.ndarray:
    if kind == "randn":
        return rng.standard_normal(shape).astype(dtype)
    low, high = {"ties": (-2, 2), "negative_ties": (-3, -1), "nonpositive_ties": (-3, 0)}[kind]
    return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)


def _ints(*values: int) -> np.ndarray:
    return np.array(values if len(values) > 1 else values[0], dtype=np.int64)


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


def check(cases: dict[str, dict[str, np.ndarray]]) -> int:
    """Compare freshly built cases with the stored files; return the number of mismatches."""
    stored = {p.stem for p in GOLDEN_DIR.glob("*.npz")}
    bad = sorted(stored ^ set(cases))
    for name in bad:
        print(f"{name}: only {'on disk' if name in stored else 'in build_cases()'}")
    for name in sorted(stored & set(cases)):
        with np.load(GOLDEN_DIR / f"{name}.npz", allow_pickle=False) as data:
            same = set(data.files) == set(cases[name]) and all(
                data[k].dtype == cases[name][k].dtype
                and data[k].shape == cases[name][k].shape
                and np.allclose(data[k], cases[name][k], rtol=1e-6, atol=1e-6)
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
    cases = build_cases()
    if args.check:
        n_bad = check(cases)
        print(f"{len(cases)} cases, {n_bad} mismatches")
        return 1 if n_bad else 0
    for old in GOLDEN_DIR.glob("*.npz"):
        old.unlink()
    for name, arrays in cases.items():
        write_npz(GOLDEN_DIR / f"{name}.npz", arrays)
    total = sum(p.stat().st_size for p in GOLDEN_DIR.glob("*.npz"))
    print(f"wrote {len(cases)} cases to {GOLDEN_DIR} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
