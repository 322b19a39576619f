"""The workspace limit: how many bytes of scratch memory one conv call may use.

Scratch is everything a call allocates besides the arrays it returns and its cache: column matrices and their
gradients, the zero-padded slab of the input that one tile of outputs reads, and the staging buffers through
which arrays that are not NHWC in memory (NCHW) are read and written, one tile at a time.

im2col's weakness is memory: the column matrix of a 3x3 convolution is 9 times the input. The engine never
builds it whole. It works through the (N, Ho, Wo) output grid in tiles (:func:`tiles`), reusing one set of
buffers for every tile. While one image's scratch fits the limit, the tiles are blocks of whole images whose
column matrix is about ``BLOCK_BYTES`` (small enough to stay in cache between the copy and the matrix product):
they depend only on the shapes, never on the limit (nor on the layout), so every matrix product has the same
shape and results are bitwise identical for every limit. Only an image whose own scratch exceeds the limit is
split, into blocks of output rows -- and a row that alone exceeds it, into blocks of output columns; the sums
over those tiles may then differ in the last bits.

The bound: peak scratch <= limit + ``SCRATCH_SLACK`` (1 MiB: bookkeeping, NumPy's small internal buffers) + at
most three arrays of the weights' size (a reordered or flipped copy of ``w``, the weight gradient's partial
product, and for NCHW or groups its reordered copy). A tile is never smaller than one output position, so a
kernel whose columns for a single position (``kh*kw*C_in`` values) exceed the limit uses that much. A ``dout``
of another dtype than the layer's is converted whole before the call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from .checks import as_int

__all__ = ["DEFAULT_WORKSPACE", "MIN_WORKSPACE", "get_workspace_limit", "set_workspace_limit", "workspace_limit"]

Scratch = Callable[[int, int, int], int]
"""Bytes of scratch a tile of ``(images, output rows, output columns)`` needs."""

DEFAULT_WORKSPACE = 64 * 2**20
"""Default limit in bytes (64 MiB)."""

MIN_WORKSPACE = 16 * 2**20
"""Smallest limit accepted (16 MiB): room for the buffers of one block of ``BLOCK_BYTES`` in a backward pass."""

SCRATCH_SLACK = 2**20
"""Scratch a call may use beyond the limit (1 MiB), besides arrays of the weights' size (see above)."""

BLOCK_BYTES = 4 * 2**20
"""Target size of one block's column matrix (4 MiB)."""

_limit = DEFAULT_WORKSPACE


def _check_limit(nbytes: object, name: str) -> int:
    return as_int(nbytes, name, MIN_WORKSPACE, f"an int number of bytes >= {MIN_WORKSPACE} (16 MiB)")


def get_workspace_limit() -> int:
    """The global workspace limit in bytes."""
    return _limit


def set_workspace_limit(nbytes: int | None) -> int:
    """Set the global workspace limit in bytes (``None`` restores the default); returns the previous limit."""
    global _limit
    previous = _limit
    _limit = DEFAULT_WORKSPACE if nbytes is None else _check_limit(nbytes, "nbytes")
    return previous


@contextmanager
def workspace_limit(nbytes: int | None) -> Iterator[int]:
    """Context manager: the global workspace limit is ``nbytes`` inside the ``with`` block."""
    previous = set_workspace_limit(nbytes)
    try:
        yield _limit
    finally:
        set_workspace_limit(previous)


def resolve_limit(workspace: int | None) -> int:
    """The limit for one call: its ``workspace`` argument if given, else the global limit."""
    return _limit if workspace is None else _check_limit(workspace, "workspace")


class Tile(NamedTuple):
    """One block of the (N, Ho, Wo) output grid: images, output rows and output columns."""

    images: slice
    rows: slice
    cols: slice


def _largest(fits: Callable[[int], bool], upper: int) -> int:
    """The largest ``v`` in ``[1, upper]`` with ``fits(v)`` (``fits`` is monotone), or 1 when none fits."""
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def tiles(n: int, out_h: int, out_w: int, cols_image_bytes: int, scratch: Scratch, limit: int) -> list[Tile]:
    """Split the (N, Ho, Wo) output grid into the tiles the engine processes one at a time.

    ``scratch(n_b, h_b, w_b)`` is all the scratch a tile of ``n_b`` images, ``h_b`` rows and ``w_b`` columns
    needs (monotone in each); ``cols_image_bytes`` is one image's column matrix. When one image's scratch fits
    ``limit``, the tiles are blocks of whole images with at most ``BLOCK_BYTES`` of columns and
    ``MIN_WORKSPACE`` of scratch (but at least one image): they depend only on the shapes, never on the limit.
    Otherwise each image is split into blocks of output rows that fit, and when a single output row does not
    fit, each row into blocks of output columns (at least one column each).
    """
    if n == 0:
        return []
    per_image = scratch(1, out_h, out_w)
    full_h, full_w = slice(0, out_h), slice(0, out_w)
    if per_image <= limit:
        # Neither term depends on the limit (which is >= MIN_WORKSPACE): the same tiles for every limit.
        step = max(1, min(BLOCK_BYTES // max(cols_image_bytes, 1), MIN_WORKSPACE // max(per_image, 1)))
        return [Tile(slice(n0, min(n, n0 + step)), full_h, full_w) for n0 in range(0, n, step)]
    if scratch(1, 1, out_w) <= limit:
        rows = _largest(lambda h: scratch(1, h, out_w) <= limit, out_h)
        return [
            Tile(slice(i, i + 1), slice(h0, min(out_h, h0 + rows)), full_w)
            for i in range(n)
            for h0 in range(0, out_h, rows)
        ]
    cols = _largest(lambda w: scratch(1, 1, w) <= limit, out_w)
    return [
        Tile(slice(i, i + 1), slice(h, h + 1), slice(w0, min(out_w, w0 + cols)))
        for i in range(n)
        for h in range(out_h)
        for w0 in range(0, out_w, cols)
    ]


class Buffers:
    """Scratch buffers of one call, allocated on first use and grown only if a later tile needs more."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], capacity: int = 0) -> np.ndarray:
        """An uninitialised ``shape`` array in buffer ``name`` (which the next ``get`` of that name reuses).

        A new buffer holds at least ``capacity`` elements, so that later, larger requests need not grow it.
        """
        size = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.size < size:
            self._bufs.pop(name, None)  # freed before its successor is made
            buf = self._bufs[name] = np.empty(max(size, capacity), dtype=self.dtype)
        return buf[:size].reshape(shape)


def image_blocks(batch: np.ndarray) -> list[slice]:
    """Split ``batch`` (N, ...) into blocks of whole images of about ``BLOCK_BYTES`` each (>= 1 image; none if N=0)."""
    n = batch.shape[0]
    image_bytes = batch.itemsize * math.prod(batch.shape[1:])
    step = max(1, BLOCK_BYTES // max(image_bytes, 1))
    return [slice(n0, min(n, n0 + step)) for n0 in range(0, n, step)]
