"""The workspace limit: how many bytes of scratch memory (column matrices, padded copies) one call may use.

im2col's weakness is memory: the column matrix of a 3x3 convolution is 9 times the input. The engine therefore
works through the batch in chunks of whole images whose scratch buffers fit the limit, reusing one set of
buffers for every chunk. Results are identical for every limit: each image is computed with the same
operations in the same order whatever chunk it falls in. Only when a single image's scratch is larger than the
limit is that image split into blocks of output rows (then the backward pass may differ in the last bits).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._checks import as_int

__all__ = ["DEFAULT_WORKSPACE", "MIN_WORKSPACE", "get_workspace_limit", "set_workspace_limit", "workspace_limit"]

DEFAULT_WORKSPACE = 64 * 2**20
"""Default limit in bytes (64 MiB)."""

MIN_WORKSPACE = 2**20
"""Smallest limit accepted (1 MiB)."""

_limit = DEFAULT_WORKSPACE


def _check_limit(nbytes: object, name: str) -> int:
    return as_int(nbytes, name, MIN_WORKSPACE, f"an int number of bytes >= {MIN_WORKSPACE} (1 MiB)")


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


def row_blocks(n: int, out_h: int, bytes_per_row: int, limit: int) -> Iterator[tuple[slice, slice]]:
    """Split the (N, Ho) output rows into blocks whose scratch (``bytes_per_row`` per output row) fits ``limit``.

    Yields ``(images, rows)`` slices: whole images while at least one image fits, else blocks of rows of one
    image (at least one row each).
    """
    per_image = bytes_per_row * out_h
    if per_image <= limit:
        step = max(1, limit // max(per_image, 1))
        for n0 in range(0, n, step):
            yield slice(n0, min(n, n0 + step)), slice(0, out_h)
        return
    rows = max(1, limit // max(bytes_per_row, 1))
    for i in range(n):
        for h0 in range(0, out_h, rows):
            yield slice(i, i + 1), slice(h0, min(out_h, h0 + rows))
