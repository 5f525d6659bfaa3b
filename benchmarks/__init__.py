"""Benchmarks (not run as tests)."""
