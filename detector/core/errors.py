"""The engine's one error type, below every stage so that any of them can raise it.

:class:`EngineError` is a misuse of the engine, never bad input (bad events become dead letters):
a snapshot or a window partial taken with other references, a batch for a model without state.
"""

from __future__ import annotations

__all__ = ["EngineError"]


class EngineError(ValueError):
    """Misuse of the engine (e.g. restoring a snapshot taken with other references)."""
