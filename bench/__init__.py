"""Benchmarks: run by hand (`python -m bench.intake`), never part of the timed test suite."""
