"""A scenario: a world, a time span and the faults injected into it, plus its ground truth.

:meth:`Scenario.ground_truth` says, for each fault, which alert a correct monitor raises
(``kind``, ``feature``, ``slice``, ``cause``, ``action`` in the alert contract's vocabulary, README) and when the
incident starts and ends. Detection tests elsewhere assert against it.

>>> from detector.sim.faults import Fault
>>> s = Scenario("x", faults=(Fault("unit_change", 40, 52),), hours=60)
>>> gt = s.ground_truth()[0]
>>> gt["kind"], gt["feature"], gt["slice"], gt["cause"], gt["onset"]
('unit_shift', 'amount', {}, 'pipeline_skew', '2026-11-03T21:00:00.000Z')
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.sim.faults import Fault
from detector.sim.world import DEFAULT_START, World, to_epoch_ms

__all__ = ["Scenario", "rfc3339"]

_FEATURELESS_STAGES = ("model", "label", "arrival")


def rfc3339(ms: int) -> str:
    """Epoch milliseconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Scenario:
    """World parameters + time span + faults. ``seed`` is the default seed for :func:`simulate`."""

    name: str
    world: World = field(default_factory=World)
    faults: tuple[Fault, ...] = ()
    start: datetime = DEFAULT_START
    hours: float = 72.0
    seed: int = 0
    ts_format: str = "rfc3339"  # or "epoch" (float seconds)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(self.faults))
        if self.start.tzinfo is None:
            object.__setattr__(self, "start", self.start.replace(tzinfo=UTC))
        if not self.hours > 0:
            raise ValueError(f"Scenario.hours must be > 0, got {self.hours}")
        if self.ts_format not in ("rfc3339", "epoch"):
            raise ValueError(f"Scenario.ts_format must be 'rfc3339' or 'epoch', got {self.ts_format!r}")

    @property
    def start_ms(self) -> int:
        return to_epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(round(self.hours * 3_600_000))

    def with_(self, **changes: Any) -> Scenario:
        return replace(self, **changes)

    def ground_truth(self) -> list[dict[str, Any]]:
        """The expected alert per fault (see the module docstring)."""
        out = []
        for f in self.faults:
            info = f.info
            featureless = info.stage in _FEATURELESS_STAGES
            onset = self.start_ms + int(round(f.onset_h * 3.6e6))
            full = onset + int(round((f.ramp_h or 0.0) * 3.6e6))
            end = self.start_ms + int(round(f.end_h * 3.6e6)) if f.end_h is not None else None
            out.append({
                "fault": f.kind,
                "kind": info.alert,
                "feature": None if featureless else f.feature,
                "features": [] if featureless else list(f.features),
                "slice": dict(f.slice),
                "cause": info.cause,
                "action": info.action,
                "onset": rfc3339(onset),
                "onset_ts": onset / 1000.0,
                "full_effect": rfc3339(full),
                "full_effect_ts": full / 1000.0,
                "end": rfc3339(end) if end is not None else None,
                "end_ts": end / 1000.0 if end is not None else None,
                "also": list(info.also),
                "params": {**dict(f.params), **({"flipped": list(f.features)} if f.kind == "concept_drift" else {})},
                "summary": info.summary,
            })
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (written next to simulated files)."""
        return {
            "name": self.name,
            "description": self.description,
            "start": rfc3339(self.start_ms),
            "end": rfc3339(self.end_ms),
            "hours": self.hours,
            "seed": self.seed,
            "ts_format": self.ts_format,
            "world": {k: getattr(self.world, k) for k in self.world.__dataclass_fields__},
            "faults": [{"kind": f.kind, "onset_h": f.onset_h, "end_h": f.end_h, "features": list(f.features),
                        "slice": dict(f.slice), "ramp_h": f.ramp_h, "params": dict(f.params)} for f in self.faults],
            "ground_truth": self.ground_truth(),
        }
