"""Benchmarks: separate from tests, each reports ratios measured in the same run."""
