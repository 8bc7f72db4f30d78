"""Progress bars for long commands (baseline, replay, report): percentage, rate and ETA on a TTY.

One place decides when to show them: on an interactive stderr only, never with ``--quiet``, in
CI (``CI`` set) or in a pipe, so logs and machine output stay clean. Built on tqdm (small, no
dependencies, handles terminal width and rate/ETA smoothing).

>>> bar = progress_bar(100, "B", "replay", quiet=True)
>>> bar.update_to(40); bar.n
40
>>> bar.close()
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

__all__ = ["progress_bar", "Bar", "interactive"]


def interactive(quiet: bool = False) -> bool:
    """True when progress belongs on stderr: a TTY, not CI, not --quiet."""
    return not quiet and not os.environ.get("CI") and bool(getattr(sys.stderr, "isatty", lambda: False)())


class Bar(tqdm):  # type: ignore[misc]
    """tqdm with ``update_to(position)`` for readers that know where they are, not how far they moved."""

    def update_to(self, position: float) -> None:
        if self.disable:
            self.n = position
        elif position > self.n:
            self.update(position - self.n)


def progress_bar(total: float | None, unit: str, desc: str, quiet: bool = False) -> Bar:
    """A bar over ``total`` units (``"B"`` scales to kB/MB/GB; ``None`` = unknown: count and rate only)."""
    return Bar(total=total or None, unit=unit, unit_scale=unit == "B", unit_divisor=1024 if unit == "B" else 1000,
               desc=desc, disable=not interactive(quiet), leave=False, dynamic_ncols=True, file=sys.stderr,
               mininterval=0.5)
