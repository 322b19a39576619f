"""The workspace limit: how many bytes of scratch memory one conv call may use.

Scratch is everything a call allocates besides the arrays it returns and its cache: column matrices and their
gradients, the zero-padded slab of the input that one tile of outputs reads, and the staging buffers through
which arrays that are not NHWC in memory (NCHW) are read and written, one tile at a time.

im2col's weakness is memory: the column matrix of a 3x3 convolution is 9 times the input. The engine never
builds it whole. It works through the (N, *out) output grid in tiles
(:func:`~im2col_cnn.geometry.tiles.conv_tiles`), reusing one set of buffers (:class:`Buffers`) for every tile.
While one image's scratch fits the limit, the tiles are blocks of whole images whose column matrix is about
``BLOCK_BYTES`` (small enough to stay in cache between the copy and the matrix product): they depend only on the
shapes, never on the limit (nor on the layout), so every matrix product has the same shape and results are
bitwise identical for every limit. Only an image whose own scratch exceeds the limit is split, along its first
spatial axis (and further axes where needed); the sums over those tiles may then differ in the last bits.

Tiles run on several threads (:func:`~im2col_cnn.runtime.parallel.map_tiles`), each with its own buffers: a call
runs no more threads than the limit holds one tile's scratch each.

The bound: peak scratch <= limit + ``SCRATCH_SLACK`` (1 MiB: bookkeeping, NumPy's small internal buffers) + at
most three arrays of the weights' size (a reordered or flipped copy of ``w``, the weight gradient's partial
product, and for NCHW or groups its reordered copy). A tile is never smaller than one output position, so a
kernel whose columns for a single position (``kh*kw*C_in`` values) exceed the limit uses that much. A ``dout``
of another dtype than the layer's is converted whole before the call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .checks import as_int

__all__ = [
    "DEFAULT_WORKSPACE",
    "MIN_WORKSPACE",
    "SCRATCH_SLACK",
    "BLOCK_BYTES",
    "Buffers",
    "get_workspace_limit",
    "set_workspace_limit",
    "workspace_limit",
    "resolve_limit",
]

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
