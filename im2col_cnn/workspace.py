"""The workspace limit: how many bytes of scratch memory (column matrices, padded copies) one call may use.

im2col's weakness is memory: the column matrix of a 3x3 convolution is 9 times the input. The engine never
builds it whole. It works through the batch in blocks of whole images whose column matrix is about
``BLOCK_BYTES`` (small enough to stay in cache between the copy and the matrix product), reusing one set of
buffers for every block. The block size depends only on the shapes, never on the limit, so every matrix product
has the same shape and results are bitwise identical for every limit. The limit only matters when one image's
scratch exceeds it: that image is then split into blocks of output rows, and the backward pass may differ in
the last bits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ._checks import as_int

__all__ = ["DEFAULT_WORKSPACE", "MIN_WORKSPACE", "get_workspace_limit", "set_workspace_limit", "workspace_limit"]

DEFAULT_WORKSPACE = 64 * 2**20
"""Default limit in bytes (64 MiB)."""

MIN_WORKSPACE = 16 * 2**20
"""Smallest limit accepted (16 MiB): room for the buffers of one block of ``BLOCK_BYTES`` in a backward pass."""

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


def row_blocks(
    n: int, out_h: int, cols_row_bytes: int, scratch_row_bytes: int, limit: int
) -> list[tuple[slice, slice]]:
    """Split the (N, Ho) output rows into the blocks the engine processes one at a time.

    ``cols_row_bytes`` is the size of the column matrix of one output row, ``scratch_row_bytes`` all the scratch
    one output row needs. Returns ``(images, rows)`` slices: blocks of whole images with at most ``BLOCK_BYTES``
    of columns and ``MIN_WORKSPACE`` of scratch (but at least one image); if one image's scratch exceeds
    ``limit``, blocks of rows of one image (at least one row each).
    """
    per_image = scratch_row_bytes * out_h
    if per_image <= limit:
        # Neither term depends on the limit (which is >= MIN_WORKSPACE): the same blocks for every limit.
        step = max(1, min(BLOCK_BYTES // max(cols_row_bytes * out_h, 1), MIN_WORKSPACE // max(per_image, 1)))
        return [(slice(n0, min(n, n0 + step)), slice(0, out_h)) for n0 in range(0, n, step)]
    rows = max(1, limit // max(scratch_row_bytes, 1))
    return [(slice(i, i + 1), slice(h0, min(out_h, h0 + rows))) for i in range(n) for h0 in range(0, out_h, rows)]


def image_blocks(batch: np.ndarray) -> list[slice]:
    """Split ``batch`` (N, ...) into blocks of whole images of about ``BLOCK_BYTES`` each (>= 1 image; none if N=0)."""
    n = batch.shape[0]
    image_bytes = batch.itemsize * math.prod(batch.shape[1:])
    step = max(1, BLOCK_BYTES // max(image_bytes, 1))
    return [slice(n0, min(n, n0 + step)) for n0 in range(0, n, step)]
