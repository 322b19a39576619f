"""Benchmarks for im2col-cnn: ``python -m benchmarks`` prints the report."""
