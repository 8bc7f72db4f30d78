"""Fixtures of the stream tests: ``sidecars`` spawns ``skewwatch run`` processes (see sidecar_proc.py)."""

from tests.stream.sidecar_proc import sidecars  # noqa: F401 - a fixture, registered by being imported here
