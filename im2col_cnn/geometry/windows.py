"""Window geometry in 1, 2 or 3 spatial dimensions: one :class:`Axis` per spatial axis, a :class:`WindowGeometry`
that is a tuple of them.

Spatial rank is data, not code: every op -- convolution, transposed convolution, pooling, im2col, forward and
backward -- reads its windows through the same per-axis arithmetic, whatever the number of axes. Arrays are
channels-last, ``(N, *spatial, C)``; an axis is described by its input size, kernel taps, stride, dilation and the
padding before and after it. Two things derive from it:

* :meth:`Axis.taps` -- for each kernel tap of the axis, the outputs whose window reads inside the input (or inside
  a sub-range of it) and the strided input slice they read. A window offset is one tap per axis, so gathers and
  scatters loop over the ``prod(kernel)`` offsets (:meth:`WindowGeometry.offsets`) -- never over the batch, the
  output positions or the channels -- and never need a padded copy of a whole input;
* :meth:`Axis.span` -- the input range the windows of a range of outputs reach, padding included: the slab a tile
  of outputs reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import product

import numpy as np

from ..runtime.checks import axes_tuple

__all__ = ["Axis", "Tap", "WindowGeometry", "MAX_ELEMENTS", "make_geometry", "window_view", "geometry_of"]

Tap = tuple[slice, slice]
"""One kernel tap along one axis: ``(output slice, input slice)``."""

MAX_ELEMENTS = 2**62 // 16
"""More elements than any array can hold: a size past it is a ValueError naming the argument that caused it."""


@dataclass(frozen=True)
class Axis:
    """Windows along one spatial axis: ``k`` taps ``d`` apart, every ``s`` positions of an input of ``size``, with
    ``lo`` positions of padding before it and ``hi`` after it (a negative ``hi`` crops the end).

    Output ``o``'s tap ``t`` reads input ``o*s + t*d - lo``; taps outside ``[0, size)`` read the padding.
    """

    size: int
    k: int
    s: int = 1
    d: int = 1
    lo: int = 0
    hi: int = 0

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _hash(self) -> int:  # worked out once: axes are dictionary keys of the memoized plans
        return hash((self.size, self.k, self.s, self.d, self.lo, self.hi))

    @cached_property
    def padded(self) -> int:
        return self.size + self.lo + self.hi

    @cached_property
    def extent(self) -> int:
        """How many positions one window spans."""
        return (self.k - 1) * self.d + 1

    @cached_property
    def out(self) -> int:
        return (self.padded - self.extent) // self.s + 1

    @property
    def disjoint(self) -> bool:
        """Whether no input is read by two windows."""
        return self.s >= self.extent

    def taps(self, o0: int = 0, o1: int | None = None, i0: int = 0, i1: int | None = None) -> tuple[Tap | None, ...]:
        """For each tap ``t``: the outputs in ``[o0, o1)`` whose tap ``t`` reads an input in ``[i0, i1)``, and those
        inputs (a strided slice), both relative to ``o0`` and ``i0``; ``None`` where there are none.

        The defaults are every output and the whole input.
        """
        return _taps(self, o0, self.out if o1 is None else o1, i0, self.size if i1 is None else i1)

    def span(self, o0: int, o1: int) -> tuple[int, int]:
        """Input positions ``[lo, hi)`` that the windows of outputs ``[o0, o1)`` span, unclipped: where they reach
        into the padding the range runs past ``[0, size)``."""
        return o0 * self.s - self.lo, (o1 - 1) * self.s + self.extent - self.lo

    def in_range(self, o0: int, o1: int) -> tuple[int, int]:
        """The inputs ``[lo, hi)`` that the windows of outputs ``[o0, o1)`` read (the span, clipped to the input)."""
        lo, hi = self.span(o0, o1)
        return max(0, lo), min(self.size, hi)

    def out_range(self, i0: int, i1: int) -> tuple[int, int]:
        """The outputs ``[o0, o1)`` whose windows span any input in ``[i0, i1)``."""
        o0 = max(0, -((self.extent - 1 - i0 - self.lo) // self.s))  # ceil((i0 + lo - extent + 1) / s)
        return o0, max(o0, min(self.out, (i1 - 1 + self.lo) // self.s + 1))

    def first_taps(self, o0: int, o1: int) -> np.ndarray:
        """For each output in ``[o0, o1)``, its first tap that reads an input (pooling windows all have one)."""
        o = np.arange(o0, o1)
        return np.maximum(0, -((o * self.s - self.lo) // self.d))  # ceil((lo - o*s) / d)

    def covers(self, o0: int, o1: int, i0: int, i1: int) -> bool:
        """Whether the windows of outputs ``[o0, o1)`` read every input in ``[i0, i1)``."""
        hit = np.zeros(i1 - i0, dtype=bool)
        for tap in self.taps(o0, o1, i0, i1):
            if tap is not None:
                hit[tap[1]] = True
        return bool(hit.all())


@lru_cache(maxsize=4096)
def _taps(axis: Axis, o0: int, o1: int, i0: int, i1: int) -> tuple[Tap | None, ...]:
    s, d, lo = axis.s, axis.d, axis.lo
    result: list[Tap | None] = []
    for t in range(axis.k):
        shift = t * d - lo
        first = max(o0, -((shift - i0) // s))  # ceil((i0 - shift) / s)
        last = min(o1 - 1, (i1 - 1 - shift) // s)
        if last < first:
            result.append(None)
            continue
        start = first * s + shift - i0
        result.append((slice(first - o0, last - o0 + 1), slice(start, start + (last - first) * s + 1, s)))
    return tuple(result)


Box = tuple[slice, ...]
"""A block of the output (or input) grid: one slice per spatial axis."""

Offset = tuple[tuple[int, ...], Box, Box]
"""One window offset: its tap per axis, the outputs that read inside the input, and the input they read."""


@dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of a sliding-window op sit on a ``(*spatial)`` input: one :class:`Axis` per spatial axis."""

    axes: tuple[Axis, ...]

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _hash(self) -> int:  # worked out once: geometries are dictionary keys of the memoized plans
        return hash(self.axes)

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @cached_property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @cached_property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(a.out for a in self.axes)

    @cached_property
    def kernel(self) -> tuple[int, ...]:
        return tuple(a.k for a in self.axes)

    @cached_property
    def stride(self) -> tuple[int, ...]:
        return tuple(a.s for a in self.axes)

    @cached_property
    def dilation(self) -> tuple[int, ...]:
        return tuple(a.d for a in self.axes)

    @cached_property
    def padded_shape(self) -> tuple[int, ...]:
        return tuple(a.padded for a in self.axes)

    @cached_property
    def taps(self) -> int:
        """Kernel offsets: ``prod(kernel)``."""
        return math.prod(self.kernel)

    @cached_property
    def has_padding(self) -> bool:
        return any(a.lo or a.hi for a in self.axes)

    @cached_property
    def is_pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: the input already is the column matrix."""
        return all(a.k == 1 and a.s == 1 for a in self.axes) and not self.has_padding

    def full_box(self) -> Box:
        return tuple(slice(0, o) for o in self.out_shape)

    def axis_taps(self, box: Box | None = None) -> tuple[tuple[Tap | None, ...], ...]:
        """Per axis, :meth:`Axis.taps` of the outputs in ``box`` (default: all of them)."""
        if box is None:
            return tuple(a.taps() for a in self.axes)
        return tuple(a.taps(s.start, s.stop) for a, s in zip(self.axes, box, strict=True))

    def offsets(self, box: Box | None = None) -> Iterator[Offset]:
        """Yield ``(taps, out_box, in_box)`` for each kernel offset in row-major order.

        ``x[:, *in_box]`` is what offset ``taps`` of the windows at ``out[:, *out_box]`` reads; output positions
        whose offset falls in the padding are left out, and so are offsets that read no input at all. ``box``
        restricts the output to a tile; ``out_box`` is then relative to the tile's first position.
        """
        per_axis = self.axis_taps(box)
        for combo in product(*(range(a.k) for a in self.axes)):
            found = [taps[t] for taps, t in zip(per_axis, combo, strict=True)]
            if all(f is not None for f in found):
                yield combo, tuple(f[0] for f in found), tuple(f[1] for f in found)  # type: ignore[index]

    def span(self, box: Box) -> tuple[tuple[int, int], ...]:
        """Per axis, the unclipped input range ``[lo, hi)`` that the windows of the outputs in ``box`` span."""
        return tuple(a.span(s.start, s.stop) for a, s in zip(self.axes, box, strict=True))

    def reach(self, box: Box) -> tuple[tuple[int, int], ...]:
        """Per axis, the input range ``[lo, hi)`` that the windows of the outputs in ``box`` read: their
        :meth:`span` clipped to the input -- empty (``lo == hi``), never of negative size, where they read only
        padding."""
        clipped = [(max(lo, 0), min(hi, size)) for (lo, hi), size in zip(self.span(box), self.in_shape, strict=True)]
        return tuple((lo, max(lo, hi)) for lo, hi in clipped)

    def tile_scratch(self, c_in: int, itemsize: int, position_bytes: int, *, always_slab: bool = False):
        """Scratch of a tile: ``position_bytes`` per output position plus the staged input slab of its windows.

        The slab (:func:`~im2col_cnn.kernels.columns.stage`) is counted whenever one may be built -- padding, or
        a kernel larger than 1x1 read from a layout other than channels-last, or always with ``always_slab`` --
        so that the tiles do not depend on the layout. Returns ``scratch(images, sizes)``, ``sizes`` the tile's
        output positions per axis.
        """
        slab = always_slab or self.has_padding or self.taps > 1
        axes = self.axes

        def scratch(n_b: int, sizes: Sequence[int]) -> int:
            total = n_b * math.prod(sizes) * position_bytes
            if slab:
                reach = math.prod((b - 1) * a.s + a.extent for a, b in zip(axes, sizes, strict=True))
                total += n_b * reach * c_in * itemsize
            return total

        return scratch


@lru_cache(maxsize=256)
def geometry_of(axes: tuple[Axis, ...]) -> WindowGeometry:
    """The geometry of ``axes``: the same object for the same axes, so that its derived sizes are worked out once."""
    return WindowGeometry(axes)


@lru_cache(maxsize=256)
def make_geometry(
    x_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...] | None = None,
    *,
    kernel_name: str = "kernel_size",
) -> WindowGeometry:
    """Geometry of ``kernel`` windows at ``stride`` and ``dilation`` on channels-last ``x_shape`` (N, *spatial, C).

    ``padding`` is ``(lo, hi)`` per spatial axis. Raises ``ValueError`` when the padded input is too large for
    memory or the (dilated) kernel does not fit in it. Memoized: a layer called again with the same shapes gets
    the same geometry at once.
    """
    n, *spatial, c = x_shape
    ndim = len(spatial)
    dilation = dilation or (1,) * ndim
    padded = tuple(size + lo + hi for size, (lo, hi) in zip(spatial, padding, strict=True))
    shown = tuple(p[0] for p in padding) if all(lo == hi for lo, hi in padding) else tuple(padding)
    if max(n, 1) * math.prod(padded) * c > MAX_ELEMENTS:
        raise ValueError(f"padding {shown} makes the padded input of {tuple(x_shape)} too large for memory")
    # A stride past the padded input gives one window either way; clamped, the window view's strides stay small.
    axes = tuple(
        Axis(size, k, min(s, p), d, lo, hi)
        for size, k, s, d, (lo, hi), p in zip(spatial, kernel, stride, dilation, padding, padded, strict=True)
    )
    reach = tuple(a.extent for a in axes)
    if any(r > p for r, p in zip(reach, padded, strict=True)):
        dilated = f" (dilated to {reach})" if any(d != 1 for d in dilation) else ""
        raise ValueError(
            f"{kernel_name} {tuple(kernel)}{dilated} is larger than the padded input {padded} "
            f"(input {tuple(spatial)} with padding {shown})"
        )
    return geometry_of(axes)


def window_view(src: np.ndarray, geom: WindowGeometry, sizes: Sequence[int] | None = None) -> np.ndarray:
    """Read-only ``(n, *out, *kernel, C)`` view of the windows of ``src`` (n, *padded, C), whose first window is at
    ``src[:, 0, ..., 0]``; ``sizes`` limits the outputs per axis (default: all of them). No copy."""
    sizes = geom.out_shape if sizes is None else tuple(sizes)
    strides = src.strides[1:-1]
    return np.lib.stride_tricks.as_strided(
        src,
        shape=(src.shape[0], *sizes, *geom.kernel, src.shape[-1]),
        strides=(
            src.strides[0],
            *(st * a.s for st, a in zip(strides, geom.axes, strict=True)),
            *(st * a.d for st, a in zip(strides, geom.axes, strict=True)),
            src.strides[-1],
        ),
        writeable=False,
    )


def kernel_names(ndim: int) -> str:
    """``'(kh, kw)'`` for 2-D: the kernel's axes as text."""
    return axes_tuple(ndim, "k")
