"""Runtime services the layers and kernels share: argument checks, the workspace limit and scratch buffers, the
thread pool, Dask batches, float16 handling and channels-first <-> channels-last views. Imports nothing above it."""
