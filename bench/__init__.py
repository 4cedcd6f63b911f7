"""Benchmarks, one module per op family (bench/<family>.py); `python -m bench` runs them all
in their --quick form. Shared timing, table and JSON code: bench/_common.py."""
