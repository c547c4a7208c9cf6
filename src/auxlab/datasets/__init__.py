"""Loaders for the real data sets that the demo, examples and benchmarks use."""
