"""skewwatch: tells a live model's owners whether a production gap is data, model or system.

Notebook API: ``from detector import build_reference, Monitor`` (see :mod:`detector.api`).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Monitor", "build_reference", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: `import detector` stays cheap for the CLI and the sidecar
    if name in ("Monitor", "build_reference"):
        from detector import api

        return getattr(api, name)
    raise AttributeError(f"module 'detector' has no attribute {name!r}")
