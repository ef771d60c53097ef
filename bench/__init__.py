"""Benchmark suite for hashguard: ``python -m bench`` prints one table of measured figures."""
