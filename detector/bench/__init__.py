"""Benchmarks behind ``skewwatch bench``."""
