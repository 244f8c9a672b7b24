"""Benchmarks: run by hand (``make bench``), print figures, never part of the test suite."""
