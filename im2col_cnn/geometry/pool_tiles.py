"""Where pooling windows sit along one axis, and the tiles the pooling kernels work through.

Pooling is separable: a window's maximum (or sum) is the maximum over its kernel rows of the maximum over its
kernel columns. Each axis is described by an :class:`AxisMap`; a kernel offset ``t`` of that axis maps a range of
outputs onto one strided range of inputs (:meth:`AxisMap.taps`), the padding never read.

The kernels split their work into tiles of ``(images, rows, columns, channels)``: the forward passes into tiles
of the output (each tile reads the input it needs), the backward passes into tiles of the input (each tile
gathers from the outputs whose windows touch it). Either way every tile writes its own disjoint part of the
result, and every output element is computed by the same operations in the same order whatever the tiling, so
results never depend on the tile size, the workspace limit or the number of threads. Tiles hold about
``TILE_BYTES`` of input: large enough that NumPy's per-call cost is small beside the work, small enough that a
tile and its intermediates stay in cache, and several of them for the threads to share. A tile's taps are worked
out once (:func:`tile_plan`) for every tile, and every call, with the same rows and columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np

from ..runtime.workspace import get_workspace_limit

__all__ = [
    "ALL",
    "Index",
    "Offset",
    "TilePlan",
    "tile_plan",
    "tile_key",
    "outside",
    "TILE_BYTES",
    "WORKER_SCRATCH_BYTES",
    "AxisMap",
    "Tile",
    "output_tiles",
    "input_tiles",
    "max_workers",
    "empty_nhwc",
    "UFUNC_BUFSIZE",
    "short_ufunc_chunks",
]

TILE_BYTES = 2**21
"""Target size of the input one tile reads (forward) or writes (backward): 2 MiB.

Measured on 2 cores (float32, 2 threads): against 1 MiB, P2 max forward 8.9 -> 5.7 ms and P1 max forward 2.3 ->
1.7 ms, as each tile's many ufunc calls cost less per element; from 4 MiB on, a P2 max tile's intermediates
outgrow the cache (14.5 ms on one thread against 8.0)."""

WORKER_SCRATCH_BYTES = 4 * TILE_BYTES
"""A bound on one thread's scratch buffers (its tile's intermediates): the workspace limit caps the number of
threads at ``limit // WORKER_SCRATCH_BYTES``, so that pooling's scratch stays within the limit."""


UFUNC_BUFSIZE = 1024
"""Elements per chunk of NumPy's ufunc iteration within the pooling kernels (NumPy's default is 8192)."""


@contextmanager
def short_ufunc_chunks() -> Iterator[None]:
    """Within the block, NumPy's ufuncs iterate in chunks of :data:`UFUNC_BUFSIZE` elements (this thread only).

    A ufunc over a strided view whose contiguous runs are shorter than its buffer (e.g. a tile's rows of ``W*C``
    elements, every ``sh``-th row) gathers several runs into its buffer, a copy per operand; with chunks no longer
    than a run it reads the runs in place (P2 max forward about 10% faster, float32, one thread; P1, whose runs are
    C elements, is 3-15% slower with it, so the disjoint case keeps NumPy's default). Results are the
    same: only the iteration changes, not the operations on each element. ``np.errstate`` scopes the setting to
    this block and thread on NumPy 2; NumPy 1.x keeps it per thread but outside errstate, so it is restored too.
    """
    with np.errstate():
        previous = np.setbufsize(UFUNC_BUFSIZE)
        try:
            yield
        finally:
            np.setbufsize(previous)


@dataclass(frozen=True)
class AxisMap:
    """Windows along one axis: ``out`` windows of ``k`` taps, ``d`` apart, every ``s`` inputs of ``size``.

    Output ``o``'s tap ``t`` reads input ``o*s + t*d - pad``; taps outside ``[0, size)`` read the padding.
    """

    size: int
    k: int
    s: int
    d: int
    pad: int
    out: int

    @property
    def extent(self) -> int:
        """How many inputs one window spans."""
        return (self.k - 1) * self.d + 1

    @property
    def disjoint(self) -> bool:
        """Whether no input is read by two windows."""
        return self.s >= self.extent

    def taps(self, o0: int, o1: int, lo: int, hi: int) -> list[tuple[slice, slice] | None]:
        """For each tap ``t``: the outputs in ``[o0, o1)`` whose tap ``t`` reads an input in ``[lo, hi)``, and
        those inputs (a strided slice), both relative to ``o0`` and ``lo``; ``None`` where there are none."""
        result: list[tuple[slice, slice] | None] = []
        for t in range(self.k):
            shift = t * self.d - self.pad
            first = max(o0, -((shift - lo) // self.s))  # ceil((lo - shift) / s)
            last = min(o1 - 1, (hi - 1 - shift) // self.s)
            if last < first:
                result.append(None)
                continue
            start = first * self.s + shift - lo
            result.append((slice(first - o0, last - o0 + 1), slice(start, start + (last - first) * self.s + 1, self.s)))
        return result

    def in_range(self, o0: int, o1: int) -> tuple[int, int]:
        """The inputs ``[lo, hi)`` that the windows of outputs ``[o0, o1)`` read."""
        return max(0, o0 * self.s - self.pad), min(self.size, (o1 - 1) * self.s + self.extent - self.pad)

    def out_range(self, lo: int, hi: int) -> tuple[int, int]:
        """The outputs ``[o0, o1)`` whose windows span any input in ``[lo, hi)``."""
        o0 = max(0, -((self.extent - 1 - lo - self.pad) // self.s))  # ceil((lo + pad - extent + 1) / s)
        return o0, max(o0, min(self.out, (hi - 1 + self.pad) // self.s + 1))

    def first_taps(self, o0: int, o1: int) -> np.ndarray:
        """For each output in ``[o0, o1)``, its first tap that reads an input (every window has one), (o1 - o0,)."""
        o = np.arange(o0, o1)
        return np.maximum(0, -((o * self.s - self.pad) // self.d))  # ceil((pad - o*s) / d)

    def covers(self, o0: int, o1: int, lo: int, hi: int) -> bool:
        """Whether the windows of outputs ``[o0, o1)`` read every input in ``[lo, hi)``."""
        hit = np.zeros(hi - lo, dtype=bool)
        for tap in self.taps(o0, o1, lo, hi):
            if tap is not None:
                hit[tap[1]] = True
        return bool(hit.all())


@dataclass(frozen=True)
class Tile:
    """One tile: images, output rows and columns (``out``), input rows and columns (``inp``), channels."""

    images: slice
    rows: tuple[slice, slice]  # (output rows, input rows)
    cols: tuple[slice, slice]  # (output columns, input columns)
    channels: slice

    def out(self) -> tuple[slice, slice, slice, slice]:
        return self.images, self.rows[0], self.cols[0], self.channels

    def inp(self) -> tuple[slice, slice, slice, slice]:
        return self.images, self.rows[1], self.cols[1], self.channels

    def out_shape(self) -> tuple[int, int, int, int]:
        return _lens(self.out())

    def in_shape(self) -> tuple[int, int, int, int]:
        return _lens(self.inp())


def _lens(slices: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in slices)  # type: ignore[return-value]


def _blocks(total: int, step: int) -> list[tuple[int, int]]:
    """``[0, total)`` in blocks of at most ``step``, as even as possible."""
    count = -(-total // max(1, step))
    return [(total * b // count, total * (b + 1) // count) for b in range(count)]


def _steps(shape: tuple[int, ...], win_rows: int, win_cols: int, itemsize: int, budget: int) -> tuple[int, ...]:
    """``(images, rows, columns, channels)`` of input per tile: whole images when one fits the ``budget`` (bytes);
    else blocks of one image's rows, splitting its columns only when the window rows of a whole row do not fit,
    and its channels only when one window's taps over all channels do not."""
    n, h, w, c = shape
    image = h * w * c * itemsize
    if image <= budget:
        return max(1, budget // max(1, image)), h, w, c
    c_step = min(c, max(1, budget // (win_rows * win_cols * itemsize)))
    col_step = min(w, max(1, budget // (win_rows * c_step * itemsize)))
    row_step = min(h, max(1, budget // (col_step * c_step * itemsize)))
    return 1, row_step, col_step, c_step


def output_tiles(x_shape: tuple[int, ...], rows: AxisMap, cols: AxisMap, itemsize: int) -> tuple[Tile, ...]:
    """Tiles of the (N, Ho, Wo, C) output, each with the input rows and columns its windows read."""
    return _output_tiles(x_shape, rows, cols, itemsize, TILE_BYTES)


@lru_cache(maxsize=256)
def _output_tiles(
    x_shape: tuple[int, ...], rows: AxisMap, cols: AxisMap, itemsize: int, budget: int
) -> tuple[Tile, ...]:
    n, _, _, c = x_shape
    n_step, h_step, w_step, c_step = _steps(x_shape, rows.extent, cols.extent, itemsize, budget)
    _, h, w, _ = x_shape
    rows_per = rows.out if h_step >= h else max(1, (h_step - rows.extent) // rows.s + 1)
    cols_per = cols.out if w_step >= w else max(1, (w_step - cols.extent) // cols.s + 1)
    tiles = []
    for (n0, n1), (r0, r1), (q0, q1), (c0, c1) in product(
        _blocks(n, n_step), _blocks(rows.out, rows_per), _blocks(cols.out, cols_per), _blocks(c, c_step)
    ):
        row_in, col_in = rows.in_range(r0, r1), cols.in_range(q0, q1)
        tiles.append(
            Tile(slice(n0, n1), (slice(r0, r1), slice(*row_in)), (slice(q0, q1), slice(*col_in)), slice(c0, c1))
        )
    return tiles


def input_tiles(x_shape: tuple[int, ...], rows: AxisMap, cols: AxisMap, itemsize: int) -> tuple[Tile, ...]:
    """Tiles of the (N, H, W, C) input, each with the output rows and columns whose windows span it."""
    return _input_tiles(x_shape, rows, cols, itemsize, TILE_BYTES)


@lru_cache(maxsize=256)
def _input_tiles(
    x_shape: tuple[int, ...], rows: AxisMap, cols: AxisMap, itemsize: int, budget: int
) -> tuple[Tile, ...]:
    n, h, w, c = x_shape
    n_step, h_step, w_step, c_step = _steps(x_shape, rows.extent, cols.extent, itemsize, budget)
    tiles = []
    for (n0, n1), (h0, h1), (w0, w1), (c0, c1) in product(
        _blocks(n, n_step), _blocks(h, h_step), _blocks(w, w_step), _blocks(c, c_step)
    ):
        row_out, col_out = rows.out_range(h0, h1), cols.out_range(w0, w1)
        tiles.append(
            Tile(slice(n0, n1), (slice(*row_out), slice(h0, h1)), (slice(*col_out), slice(w0, w1)), slice(c0, c1))
        )
    return tiles


ALL = slice(None)
Index = tuple[slice, ...]
Offset = tuple[int, Index, Index, list[Index]]  # (code, outputs, their inputs, the outputs outside those)
Codes = np.ndarray | int


@dataclass(frozen=True)
class TilePlan:
    """An output tile's taps, worked out once for all the tiles with the same rows and columns.

    ``row_offsets`` (code ``i*kw``) and ``offsets`` (code ``i*kw + j``, row-major) list the valid kernel rows and
    kernel offsets with the tile-relative outputs they reach, the inputs those read, and the outputs outside
    them. ``first_row``/``first`` give each output's first valid code -- a (1, ho, 1, 1) or (1, ho, wo, 1) array,
    or one int when all outputs share it; ``rows_rest``/``cols_rest`` the outputs the first kernel row / column
    does not reach.
    """

    row_taps: list
    col_taps: list
    row_offsets: list[Offset]
    offsets: list[Offset]
    first_row: Codes
    first: Codes
    rows_rest: list[Index]
    cols_rest: list[Index]


def tile_key(tile: Tile) -> tuple[int, ...]:
    """What a tile's plan depends on: its output and input rows and columns."""
    (orows, irows), (ocols, icols) = tile.rows, tile.cols
    return (orows.start, orows.stop, irows.start, irows.stop, ocols.start, ocols.stop, icols.start, icols.stop)


@lru_cache(maxsize=1024)
def tile_plan(rows: AxisMap, cols: AxisMap, key: tuple[int, ...], code: np.dtype) -> TilePlan:
    """The :class:`TilePlan` of an output tile with :func:`tile_key` ``key`` (memoized: the same for every call)."""
    r0, r1, i0, i1, q0, q1, j0, j1 = key
    return _make_plan(rows, cols, Tile(ALL, (slice(r0, r1), slice(i0, i1)), (slice(q0, q1), slice(j0, j1)), ALL), code)


def _make_plan(rows: AxisMap, cols: AxisMap, tile: Tile, code: np.dtype) -> TilePlan:
    (orows, irows), (ocols, icols) = tile.rows, tile.cols
    ho, wo, kw = orows.stop - orows.start, ocols.stop - ocols.start, cols.k
    row_taps = rows.taps(orows.start, orows.stop, irows.start, irows.stop)
    col_taps = cols.taps(ocols.start, ocols.stop, icols.start, icols.stop)
    row_offsets = [
        (i * kw, (ALL, rt[0]), (ALL, rt[1]), outside((ALL, rt[0]), ho, wo)) for i, rt in enumerate(row_taps) if rt
    ]
    offsets = [
        (i * kw + j, (ALL, rt[0], ct[0]), (ALL, rt[1], ct[1]), outside((ALL, rt[0], ct[0]), ho, wo))
        for i, rt in enumerate(row_taps)
        for j, ct in enumerate(col_taps)
        if rt and ct
    ]
    first_row = rows.first_taps(orows.start, orows.stop) * kw  # (ho,)
    first = first_row[:, None] + cols.first_taps(ocols.start, ocols.stop)  # (ho, wo)
    first_col = next(ct for ct in col_taps if ct)
    return TilePlan(
        row_taps,
        col_taps,
        row_offsets,
        offsets,
        _codes(first_row[None, :, None, None], code),  # (ho,) -> (1, ho, 1, 1)
        _codes(first[None, :, :, None], code),  # (ho, wo) -> (1, ho, wo, 1)
        row_offsets[0][3],
        outside((ALL, ALL, first_col[0]), ho, wo),
    )


def _codes(first: np.ndarray, code: np.dtype) -> Codes:
    return int(first.flat[0]) if first.min() == first.max() else first.astype(code)


def outside(index: Index, h: int, w: int) -> list[Index]:
    """The parts of an (n, h, w, c) array outside ``index`` = (:, rows), (:, :, cols) or (:, rows, cols)."""
    rows = slice(*(index[1] if len(index) > 1 else ALL).indices(h)[:2])
    cols = slice(*(index[2] if len(index) > 2 else ALL).indices(w)[:2])
    parts = [(ALL, slice(0, rows.start)), (ALL, slice(rows.stop, h))]
    parts += [(ALL, rows, slice(0, cols.start)), (ALL, rows, slice(cols.stop, w))]
    return [p for p in parts if p[-1].start < p[-1].stop]


def max_workers() -> int:
    """How many threads may work on tiles at once within the workspace limit."""
    return max(1, get_workspace_limit() // WORKER_SCRATCH_BYTES)


def empty_nhwc(shape: tuple[int, int, int, int], dtype: np.dtype, nchw: bool, buffer: np.ndarray | None = None):
    """An (N, H, W, C) array laid out in memory as NHWC, or as NCHW (then a transposed view) when ``nchw``.

    With ``buffer`` (a flat array of at least the size needed), the array is a view into it.
    """
    n, h, w, c = shape
    mem = (n, c, h, w) if nchw else shape
    if buffer is None:
        arr = np.empty(mem, dtype=dtype)
    else:
        arr = buffer[: n * h * w * c].reshape(mem)
    return arr.transpose(0, 2, 3, 1) if nchw else arr  # (N, C, H, W) -> (N, H, W, C) view
