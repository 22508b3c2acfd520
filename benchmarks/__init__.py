"""Benchmarks: our commands next to the plain tools, with ratios (see README.md)."""
