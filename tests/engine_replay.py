"""Drive an :class:`~detector.core.engine.Engine` over a log in memory, the way ``skewwatch replay`` does.

Tests replay simulated traffic through the same engine the sidecar runs. This is the one loop
they share: events go in ``chunk`` at a time; after each chunk the engine advances (closing the
windows its event time has passed) and, at the end, flushes (closing the rest), as
:class:`detector.replay.Replay` does with files. Within a chunk the predictions go in first, then
the labels, then the offline features, so a label finds its prediction when both are in the chunk.

A log is either raw prediction messages or ``(topic, raw message)`` pairs in log order, and may be a
generator (weeks of simulated traffic stream through in bounded memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from detector.core.engine import Engine

__all__ = ["TOPICS", "Replayed", "replay_log"]

TOPICS = ("predictions", "labels", "features")


@dataclass
class Replayed:
    """What a replay left behind.

    ``engine``: the engine at the end (a replacement, when a restart swapped it); ``alerts``: every
    alert the engine raised, in order (firing and resolved); ``errors``: the dead letters of each topic.
    """

    engine: Engine
    alerts: list[Any]
    errors: dict[str, list[Any]]

    def dicts(self, state: str | None = None) -> list[dict[str, Any]]:
        """The alerts as alert-contract dicts; only those in ``state`` (``"firing"``, ``"resolved"``) when given."""
        return [a.to_dict() for a in self.alerts if state is None or a.state == state]


def replay_log(eng: Engine, log: Iterable[bytes | tuple[str, bytes]], chunk: int = 2000, *, flush: bool = True,
           after_chunk: Callable[[Engine, int], Engine | None] | None = None) -> Replayed:
    """Ingest ``log`` into ``eng`` ``chunk`` events at a time, advancing after each chunk; flush at the end.

    ``flush=False`` leaves the last windows open (a run that stops mid-stream).
    ``after_chunk(engine, k)`` runs after chunk ``k`` (from 0) is ingested and advanced, to look at the
    engine between chunks; when it returns an engine (a restart from a snapshot), that one takes the
    rest of the log.
    """
    errors: dict[str, list[Any]] = {t: [] for t in TOPICS}
    alerts: list[Any] = []
    events = iter(log)
    k = 0
    while part := list(islice(events, chunk)):
        batch: dict[str, list[bytes]] = {t: [] for t in TOPICS}
        for e in part:
            topic, raw = e if isinstance(e, tuple) else ("predictions", e)
            batch[topic].append(raw)
        for t in TOPICS:
            if batch[t]:
                errors[t] += getattr(eng, f"ingest_{t}")(batch[t])
        alerts += eng.advance()
        if after_chunk is not None and (fresh := after_chunk(eng, k)) is not None:
            eng = fresh
        k += 1
    if flush:
        alerts += eng.flush()
    return Replayed(eng, alerts, errors)
