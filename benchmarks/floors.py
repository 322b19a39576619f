"""Floors of the report's rows that stay short of their targets (``python -m benchmarks.floors``): the least a
NumPy implementation of each pass costs, timed beside the engine on the same data.

* **A2 forward** -- adaptive max pooling of (64, 14, 14, 256) to 5x5, whose windows are those of a 4x4 pooling at
  stride 3 with padding 1 (target: 3x one ``x.copy()``). Three floors, in blocks of images the size of the
  engine's tiles, on its threads, axis by axis over strided slices of the taps
  (:meth:`~im2col_cnn.geometry.windows.Axis.taps`): the window maxima alone, by the fewest ``np.maximum`` calls
  (the first reads two taps that reach every output); the same plus one comparison per later tap (``np.greater``
  into a bool buffer); and plus one one-byte operation a tap on that comparison -- the least any record of each
  window's winner needs. None of them keeps a winner, so all lie below any implementation that does.
* **A2 backward** (target: 2x one copy). Each window's gradient set at its winner's flat offset (computed before
  the timing) in a zeroed ``dx``: below any scatter, as it neither computes the offsets nor adds up the gradients
  of windows that share a winner. The exact float64 histogram the engine adds (``np.bincount`` over the same
  precomputed offsets, cast once), and the same computing the offsets from the winners' codes (one ``np.take``,
  one add): the engine's own scatter, less its Python.

Each figure is the minimum over rounds that run every call of a section in turn, a few times in a row.
``--batch`` shrinks the batches (a quick look; the targets are stated for the full ones).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np

import im2col_cnn as engine
from im2col_cnn.geometry.tiles import TILE_BYTES, even_blocks, output_tiles
from im2col_cnn.geometry.windows import Axis
from im2col_cnn.kernels.pool_forward import pool_geometry, winner_offsets
from im2col_cnn.kernels.pool_plan import forward_tile_bytes
from im2col_cnn.kernels.winner_scatter import _scratch_per_image
from im2col_cnn.runtime.parallel import get_num_threads, map_blocks

from .cases import case_by_name, make_inputs

__all__ = ["window_max", "a2_forward_floors", "a2_backward_floors", "main"]

ALL = slice(None)
DTYPES = (np.float32, np.float64)


def min_times(calls: dict[str, Callable[[], object]], rounds: int, in_a_row: int = 3) -> dict[str, float]:
    """Seconds: each call's minimum over ``rounds`` rounds that run every call ``in_a_row`` times, in turn (after
    one warm-up): the later calls of a row find the memory the first one freed, as in a loop of that call."""
    for fn in calls.values():
        fn()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, fn in calls.items():
            for _ in range(in_a_row):
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def window_max(
    src: np.ndarray,
    dst: np.ndarray,
    axis: Axis,
    array_axis: int,
    better: np.ndarray | None,
    counts: np.ndarray | None = None,
) -> None:
    """``dst`` = the maximum over each window of ``axis`` along ``array_axis`` of ``src``, by the fewest
    ``np.maximum`` calls over strided slices (two taps that reach every output first; outputs that the first tap
    does not reach start at -inf). With ``better`` (bool, shaped like ``dst``), one ``np.greater`` per later tap
    too: where it beats the running maximum. With ``counts`` (uint8, shaped like ``dst``) also one one-byte
    operation a tap, the least that keeps anything of each comparison (it adds ``better`` up: not a winner)."""
    lead = (ALL,) * array_axis
    taps = [t for t in axis.taps() if t is not None]
    whole = [t for t in taps if (t[0].start, t[0].stop) == (0, axis.out)]
    if len(whole) >= 2:  # (outputs, inputs) of two taps that reach every output
        (o, a), (_, b) = whole[:2]
        np.maximum(src[(*lead, a)], src[(*lead, b)], out=dst)
        if better is not None:
            np.greater(src[(*lead, b)], src[(*lead, a)], out=better)
            if counts is not None:
                np.copyto(counts, better)
        later = [t for t in taps if t not in whole[:2]]
    else:
        o, a = taps[0]
        dst[(*lead, slice(0, o.start))].fill(-np.inf)
        dst[(*lead, slice(o.stop, axis.out))].fill(-np.inf)
        np.copyto(dst[(*lead, o)], src[(*lead, a)])
        later = taps[1:]
    for o, i in later:
        d, s = dst[(*lead, o)], src[(*lead, i)]
        if better is not None:
            np.greater(s, d, out=better[(*lead, o)])
            if counts is not None:
                np.add(counts[(*lead, o)], better[(*lead, o)].view(np.uint8), out=counts[(*lead, o)])
        np.maximum(d, s, out=d)


def a2_forward_floors(x: np.ndarray, k: int, s: int, p: int) -> dict[str, Callable[[], np.ndarray]]:
    """The forward floors of a k x k max pooling at stride s with padding p of ``x`` (N, H, W, C), as calls
    returning the window maxima (N, Ho, Wo, C)."""
    geom = pool_geometry(x.shape, (k, k), (s, s), (p, p), (1, 1), False)
    rows, cols = geom.axes
    out = np.empty((x.shape[0], rows.out, cols.out, x.shape[-1]), x.dtype)
    tiles = output_tiles(x.shape, geom.axes, x.itemsize, forward_tile_bytes(geom, winners=True))  # the engine's
    blocks = sorted({(t.images.start, t.images.stop) for t in tiles})
    if len(blocks) != len(tiles):
        raise ValueError(f"the engine's tiles of {x.shape} split images; these floors take whole images")

    def floor(compare: bool, count: bool = False) -> Callable[[], np.ndarray]:
        def work(block: tuple[int, int], scratch: dict[str, np.ndarray]) -> None:
            n0, n1 = block
            shape = (n1 - n0, rows.out, x.shape[2], x.shape[3])  # the rows' windows first: (n, Ho, W, C)
            if "mid" not in scratch or scratch["mid"].shape != shape:
                scratch["mid"] = np.empty(shape, x.dtype)
                scratch["b1"], scratch["b2"] = np.empty(shape, bool), np.empty(out[n0:n1].shape, bool)
                scratch["c1"], scratch["c2"] = np.zeros(shape, np.uint8), np.zeros(out[n0:n1].shape, np.uint8)
            mid, (b1, b2), (c1, c2) = scratch["mid"], (None, None), (None, None)
            if compare:
                b1, b2 = scratch["b1"], scratch["b2"]
            if count:
                c1, c2 = scratch["c1"], scratch["c2"]
            window_max(x[n0:n1], mid, rows, 1, b1, c1)
            window_max(mid, out[n0:n1], cols, 2, b2, c2)

        return _on_blocks(work, blocks, dict, out)

    return {
        "maxima alone": floor(False),
        "maxima + a comparison a tap": floor(True),
        "... + a one-byte op a tap": floor(True, True),
    }


def a2_backward_floors(
    dout: np.ndarray, cache: object, x_shape: tuple[int, ...]
) -> dict[str, Callable[[], np.ndarray]]:
    """The backward floors of a max pooling whose cache holds the pooling kernels' winner codes: ``dx`` (x_shape)
    with each window's gradient set at its winner, and with the exact float64 histogram of them."""
    pool = cache.pool  # type: ignore[attr-defined]
    shift, start = winner_offsets(pool.geom)
    n, c = x_shape[0], x_shape[-1]
    per_image = int(np.prod(x_shape[1:]))
    # the engine's blocks (kernels.winner_scatter.scatter_winners)
    blocks = even_blocks(n, max(1, 2 * TILE_BYTES // _scratch_per_image(per_image, int(np.prod(dout.shape[1:])))))
    scaled = shift * c  # a winner's code -> its position's offset in the image
    # what a winner's offset in its block of dx (channels-last) adds to its shift: its image within the block, its
    # window's start, its channel
    images = np.arange(max(b1 - b0 for b0, b1 in blocks)) * per_image
    base = images.reshape(-1, 1, 1, 1) + (start * c)[None, ..., None] + np.arange(c)
    # each block's offsets, computed before the timing
    local = {(b0, b1): (scaled[pool.winners[b0:b1]] + base[: b1 - b0]).reshape(-1) for b0, b1 in blocks}
    dx = np.empty(x_shape, dout.dtype)
    flat = dx.reshape(-1)

    def floor(exact: bool, codes: bool = False) -> Callable[[], np.ndarray]:
        def work(block: tuple[int, int], _: None) -> None:
            n0, n1 = block
            part, g = flat[n0 * per_image : n1 * per_image], dout[n0:n1].reshape(-1)
            at = local[block]
            if codes:  # the offsets from the winners' codes: one take, one add
                at = np.take(scaled, pool.winners[n0:n1], mode="clip")
                at += base[: n1 - n0]
                at = at.reshape(-1)
            if exact:
                np.copyto(part, np.bincount(at, weights=g, minlength=part.size), casting="unsafe")
            else:
                part.fill(0)
                part[at] = g

        return _on_blocks(work, blocks, lambda: None, dx)

    return {
        "set at precomputed offsets": floor(False),
        "float64 histogram": floor(True),
        "... + offsets from the codes": floor(True, True),
    }


def _on_blocks(
    work: Callable[[tuple[int, int], object], None],
    blocks: list[tuple[int, int]],
    make_state: Callable[[], object],
    result: np.ndarray,
) -> Callable[[], np.ndarray]:
    """A call running ``work`` over ``blocks`` on the engine's threads, returning ``result``."""

    def run() -> np.ndarray:
        map_blocks(work, blocks, make_state)
        return result

    return run


def _a2_rows(dtype: type[np.floating], batch: int | None, rounds: int) -> list[tuple[str, float, float]]:
    case = case_by_name("A2")
    x = make_inputs(case, dtype, batch).x
    out, cache = engine.adaptive_max_pool2d_forward(x, case.output_size)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    forward = {"engine forward": lambda: engine.adaptive_max_pool2d_forward(x, case.output_size)}
    forward |= a2_forward_floors(x, 4, 3, 1)
    backward = {"engine backward": lambda: engine.adaptive_max_pool2d_backward(dout, cache)}
    backward |= a2_backward_floors(dout, cache, x.shape)
    copy = {"x.copy()": x.copy}  # timed in both blocks of rounds; its least time is the ratios' unit
    ahead, behind = min_times(copy | forward, rounds), min_times(copy | backward, rounds)
    times = ahead | behind | {"x.copy()": min(ahead["x.copy()"], behind["x.copy()"])}
    return [(name, t, t / times["x.copy()"]) for name, t in times.items()]


def report(batch: int | None = None, rounds: int = 15) -> list[str]:
    lines = [f"Floors (python -m benchmarks.floors), {get_num_threads()} engine threads; minimum of {rounds} rounds"]
    for dtype in DTYPES:
        lines.append(f"A2 {np.dtype(dtype).name} (target: forward 3x x.copy(), backward 2x)   ms    x copy")
        lines += [f"  {name:<34} {t * 1e3:8.3f} {ratio:6.2f}" for name, t, ratio in _a2_rows(dtype, batch, rounds)]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=None, help="images per case (default: the cases' own)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of every call (default 15)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.batch is not None and args.batch < 1):
        parser.error(f"--batch and --rounds must be at least 1, got {args.batch} and {args.rounds}")
    print("\n".join(report(args.batch, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
