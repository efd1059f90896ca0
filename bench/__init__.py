"""Benchmarks: figures printed beside their baselines, never asserted in tests."""
