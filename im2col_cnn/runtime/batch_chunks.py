"""Batches chunked along N: every layer function on a Dask array, one batch block at a time through the engine.

The public layer functions carry the :func:`batch_chunked` decorator. Given NumPy input they run the NumPy
engine unchanged (a ``sys.modules`` lookup, and while Dask is loaded a type check per argument, decide; Dask
is never imported here). Given a ``dask.array.Array`` (``x``, ``w``, ``b`` or ``dout``), or a
:class:`ChunkedCache`, they build a task graph and return Dask arrays at once, computing nothing:

- **Forward**: one task per batch block runs the NumPy forward on that block and keeps its result, the pair
  ``(out, cache)``; ``out`` is read from those tasks, and the returned :class:`ChunkedCache` names them.
  ``w`` and ``b`` go whole to every block (one key each in the graph; a NumPy ``x`` given with Dask weights is
  one block). Hyperparameters pass through unchanged, and the engine checks them all at once, on an empty
  batch, so bad arguments raise its usual errors when the graph is built.
- **Backward**: one task per batch block runs the NumPy backward on that block's ``dout`` and that block's
  NumPy cache. ``dx`` is read from those tasks block by block; ``dw`` and ``db`` are per-block partial sums
  stacked on a new axis and summed with Dask's tree reduction (``split_every`` from ``dask.config``, default 4),
  so no task ever holds more than ``split_every`` partials and the batch is never gathered on one worker.
- **Nothing is recomputed** when the forward and backward graphs are computed together (``dask.compute(loss,
  dx, dw)``, ``client.compute([...])``): the backward tasks read the very forward tasks that produced ``out``
  (their NumPy caches: max pooling's window maxima included), so each block's forward runs once and its cache
  is freed when its backward has run. Dask keeps no results between calls, so computed in two separate calls
  the forward runs again in the second; ``out, cache = dask.persist(out, cache)`` (or ``client.persist``) keeps
  the blocks' results in memory for a backward pass computed later.

Chunking: ``x`` may have any chunks along the batch (axis 0), uneven ones included; every other axis is
rechunked to one chunk, since a window needs whole rows and columns and the channels meet in one matrix
product. That is free when the other axes already are one chunk (the layout to use), and otherwise a rechunk
per batch block, never across blocks. ``dout`` is rechunked to the forward output's chunks; a NumPy ``dout`` is
split the same way. Shapes must be known (``x.compute_chunk_sizes()`` first, after boolean indexing).

dtypes: as the NumPy engine's. float16 batches answer in float16; their dw and db are float32 partial sums,
summed by the tree in float32 and rounded once.

Threads: a block task runs the engine and the BLAS with one thread (see :mod:`~im2col_cnn.runtime.block_threads`).
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import sys
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np

from .block_threads import block_threads

__all__ = ["ChunkedCache", "batch_chunked", "is_dask_array"]

F = TypeVar("F", bound=Callable[..., Any])

_ENGINE: dict[str, Callable[..., Any]] = {}
"""Public name -> the function :func:`batch_chunked` decorates (the NumPy engine, with the decorators below it,
e.g. float16 in and out): what a forward block task runs; a backward block runs it unwrapped (its compute dtype)."""

_WHOLE = ("w", "b")
"""Arguments every batch block gets whole (when given)."""


def is_dask_array(value: object) -> bool:
    """Whether ``value`` is a ``dask.array.Array``, without importing Dask (no Dask loaded: it cannot be one)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(value, dask_array.Array)


def batch_chunked(fn: F) -> F:
    """Decorator: ``fn`` (a public layer function) also takes Dask arrays chunked along the batch, lazily."""
    name = fn.__name__
    _ENGINE[name] = fn
    chunked = _chunked_backward if name.endswith("_backward") else _chunked_forward

    @functools.wraps(fn)
    def layer(*args: Any, **kwargs: Any) -> Any:
        if "dask.array" in sys.modules:  # else no argument can be a Dask array, nor a ChunkedCache
            for value in args:
                if type(value) not in _PLAIN and _is_chunked(value):
                    return chunked(name, fn, args, kwargs)
            for value in kwargs.values():
                if type(value) not in _PLAIN and _is_chunked(value):
                    return chunked(name, fn, args, kwargs)
        return fn(*args, **kwargs)

    return layer  # type: ignore[return-value]


_PLAIN = frozenset({np.ndarray, int, float, str, bool, tuple, list, type(None)})
"""Types of arguments that are never a Dask array nor a ChunkedCache: skipped without an isinstance check."""


def _is_chunked(value: object) -> bool:
    return isinstance(value, (sys.modules["dask.array"].Array, ChunkedCache))


class _Blocks:
    """The per-batch-block results of one layer of tasks (keys ``(name, i)``), as a minimal Dask collection."""

    def __init__(self, graph: Any, name: str, nblocks: int) -> None:
        self.graph, self.name, self.nblocks = graph, name, nblocks

    def __dask_graph__(self) -> Any:
        return self.graph

    def __dask_layers__(self) -> tuple[str]:
        return (self.name,)

    def __dask_keys__(self) -> list[tuple[str, int]]:
        return [(self.name, i) for i in range(self.nblocks)]


class ChunkedCache(NamedTuple):
    """The cache of a forward pass on a Dask array, for the matching backward function; a Dask collection.

    ``blocks`` holds one task per batch block whose result is that block's NumPy ``(out, cache)``; ``out`` is
    the lazy forward output (its chunks are the ones ``dout`` gets); ``probe`` is the NumPy cache of an empty
    batch, from which the backward pass learns its output shapes and dtypes without computing anything.
    ``dask.persist(cache)`` keeps the blocks' results (in workers' memory on a cluster), so that a backward pass
    computed later does not run the forward again; ``dask.compute(cache)`` gives the list of NumPy caches.
    """

    forward: str
    blocks: _Blocks
    out: Any  # dask.array.Array, (N, Ho, Wo, C_out) or (N, C_out, Ho, Wo)
    probe: Any  # the engine's cache of an empty batch

    @property
    def indices(self) -> Any:
        """Max pooling's argmax as :attr:`PoolCache.indices <im2col_cnn.layers.pooling.PoolCache.indices>` gives
        it, lazily (int64, shaped and chunked like ``out``)."""
        if "max_pool" not in self.forward:
            raise AttributeError("indices exist for max pooling only")
        probe = self.probe.indices
        return _from_blocks(self.blocks, _block_indices, (), probe, f"{self.blocks.name}-indices", self.out.chunks)

    def __dask_graph__(self) -> Any:
        return self.blocks.graph

    def __dask_keys__(self) -> list[tuple[str, int]]:
        return self.blocks.__dask_keys__()

    def __dask_layers__(self) -> tuple[str]:
        return self.blocks.__dask_layers__()

    def __dask_tokenize__(self) -> str:
        return self.blocks.name

    @property
    def __dask_optimize__(self) -> Callable[..., Any]:
        # Dask arrays' own: computed or persisted with arrays, the blocks are optimized in the same graph, so
        # no fusion renames a block's task away from the arrays reading it (the forward would then run twice).
        return type(self.out).__dask_optimize__

    @property
    def __dask_scheduler__(self) -> Callable[..., Any]:
        return type(self.out).__dask_scheduler__

    def __dask_postcompute__(self) -> tuple[Callable[[list[Any]], list[Any]], tuple[()]]:
        return _numpy_caches, ()

    def __dask_postpersist__(self) -> tuple[Callable[..., ChunkedCache], tuple[()]]:
        return self._rebuild, ()

    def _rebuild(self, graph: Any, *, rename: dict[str, str] | None = None) -> ChunkedCache:
        """This cache on ``graph``, the persisted results of its blocks."""
        from dask.highlevelgraph import HighLevelGraph

        name = (rename or {}).get(self.blocks.name, self.blocks.name)
        blocks = _Blocks(HighLevelGraph.from_collections(name, dict(graph)), name, self.blocks.nblocks)
        out = _from_blocks(blocks, operator.getitem, (0,), self.out._meta, self.out.name, self.out.chunks)
        return self._replace(blocks=blocks, out=out)


def _numpy_caches(results: list[Any]) -> list[Any]:
    """The NumPy caches from the blocks' ``(out, cache)`` results."""
    return [result[1] for result in results]


# --- Forward and backward graphs ------------------------------------------------------------------------------


def _chunked_forward(
    op: str, engine: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ChunkedCache]:
    from dask.base import tokenize

    params = dict(_signature(engine).bind(*args, **kwargs).arguments)
    x = _batch_chunked(params.pop("x"), "x")
    whole = {key: _whole_array(params.pop(key), key) for key in _WHOLE if params.get(key) is not None}
    _check_no_dask(params)
    # The engine itself checks every argument and gives the output's shape and dtype, on an empty batch.
    probe_out, probe_cache = engine(
        np.zeros((0, *x.shape[1:]), x.dtype), **{key: _zeros_like(arr) for key, arr in whole.items()}, **params
    )
    token = tokenize(op, x, *whole.values(), params)
    name = f"{op}-blocks-{token}"
    task = functools.partial(_forward_block, op, tuple(whole), params)
    zeros = tuple((arr.name, *(0,) * arr.ndim) for arr in whole.values())
    rest = (0,) * (x.ndim - 1)
    layer = {(name, i): (task, (x.name, i, *rest), *zeros) for i in range(x.numblocks[0])}
    blocks = _layer(name, layer, [x, *whole.values()], x.numblocks[0])
    out_chunks = (x.chunks[0], *((size,) for size in probe_out.shape[1:]))
    out = _from_blocks(blocks, operator.getitem, (0,), probe_out, f"{op}-{token}", out_chunks)
    return out, ChunkedCache(op, blocks, out, probe_cache)


def _chunked_backward(op: str, engine: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import dask.array as da
    from dask.base import tokenize

    forward = op.replace("_backward", "_forward")
    params = dict(_signature(engine).bind(*args, **kwargs).arguments)
    dout, cache = params.pop("dout"), params.pop("cache")
    if not isinstance(cache, ChunkedCache):
        raise TypeError(
            f"dout is a Dask array but cache comes from {forward} on NumPy arrays: pass dout as a NumPy array "
            f"(dout.compute()), or run {forward} on a Dask array to get a lazy cache"
        )
    if cache.forward != forward:
        raise TypeError(f"cache must be the cache returned by {forward}, got the cache of {cache.forward}")
    _check_no_dask(params)
    out = cache.out
    if tuple(np.shape(dout)) != out.shape:
        raise ValueError(f"dout must have the forward output's shape {out.shape}, got shape {np.shape(dout)}")
    dout = dout.rechunk(out.chunks) if is_dask_array(dout) else da.from_array(np.asarray(dout), chunks=out.chunks)
    empty = np.zeros((0, *out.shape[1:]), dout.dtype)
    probe = _as_tuple(engine(empty, cache.probe, **params))  # what the caller gets: shapes and dtypes
    computed = _as_tuple(inspect.unwrap(engine)(empty, cache.probe, **params))  # what a block computes in
    name = f"{op}-blocks-{tokenize(op, dout, cache.blocks.name, params)}"
    task = functools.partial(_backward_block, op, params)
    rest = (0,) * (dout.ndim - 1)
    layer = {(name, i): (task, (dout.name, i, *rest), (cache.blocks.name, i)) for i in range(dout.numblocks[0])}
    grads = _layer(name, layer, [dout, cache.blocks], dout.numblocks[0])
    dx = probe[0]
    if dx is not None:  # (N, ...) in the blocks of dout
        dx_chunks = (dout.chunks[0], *((size,) for size in dx.shape[1:]))
        dx = _from_blocks(grads, _item_as, (0, dx.dtype), dx, f"{name}-0", dx_chunks)
    results = [dx]
    for k, (grad, block_grad) in enumerate(zip(probe[1:], computed[1:], strict=True), 1):
        # dw, db: per-block partial sums (1, ...) stacked, summed by a tree in the dtype the blocks compute in
        # (float32 for float16 callers), then given the caller's dtype: one rounding, as for a NumPy batch.
        chunks = ((1,) * grads.nblocks, *((size,) for size in grad.shape))
        parts = _from_blocks(grads, _stacked, (k,), block_grad, f"{name}-{k}", chunks)
        results.append(parts.sum(axis=0, dtype=block_grad.dtype).astype(grad.dtype))  # split_every at a time
    return results[0] if len(results) == 1 else tuple(results)


def _forward_block(op: str, names: tuple[str, ...], params: dict[str, Any], x: np.ndarray, *whole: Any) -> Any:
    """One batch block's ``(out, cache)`` from the NumPy engine."""
    with block_threads():
        return _ENGINE[op](x, **dict(zip(names, whole, strict=True)), **params)


def _backward_block(op: str, params: dict[str, Any], dout: np.ndarray, forward: tuple[Any, Any]) -> tuple[Any, ...]:
    """One batch block's gradients in the engine's compute dtype (the public function unwrapped: float16 callers
    get float32 partial sums, rounded once when summed), always a tuple: ``(dx,)`` or ``(dx, dw, db)``."""
    with block_threads():
        return _as_tuple(inspect.unwrap(_ENGINE[op])(dout, forward[1], **params))


def _as_tuple(grads: Any) -> tuple[Any, ...]:
    return grads if isinstance(grads, tuple) else (grads,)


def _item_as(grads: tuple[Any, ...], k: int, dtype: np.dtype) -> np.ndarray:
    """Gradient ``k`` of one block in the caller's ``dtype``."""
    return grads[k].astype(dtype, copy=False)


def _stacked(grads: tuple[Any, ...], k: int) -> np.ndarray:
    """Gradient ``k`` of one block with a new leading axis of 1: (...) -> (1, ...)."""
    return grads[k][np.newaxis]


def _block_indices(forward: tuple[Any, Any]) -> np.ndarray:
    return forward[1].indices


# --- Building blocks ------------------------------------------------------------------------------------------


@functools.cache
def _signature(engine: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(engine)


def _layer(name: str, layer: dict[Any, Any], dependencies: list[Any], nblocks: int) -> _Blocks:
    from dask.highlevelgraph import HighLevelGraph

    return _Blocks(HighLevelGraph.from_collections(name, layer, dependencies=dependencies), name, nblocks)


def _from_blocks(
    blocks: _Blocks,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    probe: np.ndarray,
    name: str,
    chunks: tuple[tuple[int, ...], ...],
) -> Any:
    """A Dask array whose block ``i`` is ``func(result of task i of blocks, *args)``, of ``probe``'s dtype."""
    import dask.array as da

    zeros = (0,) * (len(chunks) - 1)
    layer = {(name, i, *zeros): (func, (blocks.name, i), *args) for i in range(blocks.nblocks)}
    graph = _layer(name, layer, [blocks], blocks.nblocks).graph
    return da.Array(graph, name, chunks, meta=np.empty((0,) * len(chunks), probe.dtype))


def _batch_chunked(value: object, name: str) -> Any:
    """``value`` as a Dask array with known shape, one chunk on every axis but the batch.

    Its rank is checked by the engine (which knows the layer's), on an empty batch, after this."""
    import dask.array as da

    arr = value if is_dask_array(value) else da.asarray(value)
    if arr.ndim < 2:
        raise ValueError(f"{name} must be an array chunked along the batch (axis 0), got shape {arr.shape}")
    if any(math.isnan(size) for size in arr.shape):
        raise ValueError(f"{name} has unknown chunk sizes {arr.chunks}: call {name}.compute_chunk_sizes() first")
    if any(len(sizes) > 1 for sizes in arr.chunks[1:]):
        arr = arr.rechunk({axis: -1 for axis in range(1, arr.ndim)})  # whole rows, columns and channels per block
    return arr


def _whole_array(value: object, name: str) -> Any:
    """``value`` (NumPy or Dask) as a one-chunk Dask array: one key in the graph that every block reads."""
    import dask.array as da

    arr = value if is_dask_array(value) else da.from_array(np.asarray(value), chunks=-1)
    if any(math.isnan(size) for size in arr.shape):
        raise ValueError(f"{name} has unknown chunk sizes {arr.chunks}: call {name}.compute_chunk_sizes() first")
    return arr.rechunk(-1)


def _zeros_like(arr: Any) -> np.ndarray:
    return np.zeros(arr.shape, arr.dtype)


def _check_no_dask(params: dict[str, Any]) -> None:
    for key, value in params.items():
        if is_dask_array(value):
            raise TypeError(f"{key} must not be a Dask array (only x, w, b and dout may be)")
