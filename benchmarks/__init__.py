"""Benchmarks: the side-by-side timing harness and the naive baseline it measures against."""
