"""``eta``: a delivery-time regression model (minutes from order to door).

Inputs follow the local clock: ``traffic_index`` peaks at the morning and evening rush hours,
``n_items`` grows in the evening, ``temp_c`` follows the day. ``courier_load`` and
``prep_time_min`` move together (busy kitchens, busy couriers: Gaussian-copula correlation 0.7).
The true delivery time is additive in the inputs with an interaction of distance and traffic,
and its noise is multiplicative (longer trips vary more), so errors are larger at rush hours.
The served model knows the right inputs with slightly wrong coefficients.

Faults: ``concept_change`` flips the effect of preparation time around its mean (a kitchen
process change: the target's mean and spread stay, the model's errors grow); ``correlation_flip``
makes the copula correlation -0.7; ``shuffled_join`` serves ``courier_load`` from another row.

>>> m = EtaModel()
>>> d = m.draw(0, 10, 0, np.arange(0, 3_600_000, 1000, dtype=np.int64) + 1_800_000_000_000, -5, {}, {})
>>> 15 < float(np.mean(d.label)) < 60, float(np.corrcoef(d.num["courier_load"], d.num["prep_time_min"])[0, 1]) > 0.5
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.sim.tasks.copula import correlated_uniforms, shuffle_rows
from detector.sim.tasks.model import Draw
from detector.sim.world import local_hours, rng_for

__all__ = ["EtaModel", "REGIONS", "VEHICLES"]

REGIONS = ("north", "south", "east", "west")
VEHICLES = ("bike", "car", "van")
WEATHER = ("clear", "rain", "snow")
_WEATHER_MIN = np.array([0.0, 4.0, 10.0])
_PREP_MEAN = 8.0 + 12.0 * 0.4  # E[8 + 12 v^1.5], v ~ U(0, 1)


def _pick(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    c = np.cumsum(p) / np.sum(p)
    return np.minimum(np.searchsorted(c, u, side="right"), len(p) - 1)


class EtaModel:
    name = "eta"
    task = "regression"
    version = "2026-10-15"

    def draw(self, seed: int, domain: int, chunk: int, t_ms: np.ndarray, tz: int, faults: dict[str, np.ndarray],
             params: dict[str, Mapping[str, Any]]) -> Draw:
        n = len(t_ms)

        def rng(k: int) -> np.random.Generator:
            return rng_for(seed, domain, chunk, 100 + k)

        h, _ = local_hours(t_ms / 1000.0, tz)
        zero = np.zeros(n)
        rush = np.exp(-(((h - 8.5) / 1.5) ** 2)) + 1.2 * np.exp(-(((h - 18.0) / 2.0) ** 2))
        evening = np.cos(2 * np.pi * (h - 20.0) / 24.0)
        region = _pick(rng(0).random(n), np.array([0.35, 0.25, 0.2, 0.2]))
        vehicle = _pick(rng(1).random(n), np.array([0.4, 0.45, 0.15]))
        distance = np.exp(np.log(3.0) + 0.3 * (vehicle > 0) + 0.6 * rng(2).standard_normal(n))
        traffic = np.clip(0.25 + 0.45 * rush + 0.1 * rng(3).standard_normal(n), 0.0, 1.5)
        n_items = 1.0 + rng(4).poisson(2.0 + 0.8 * np.maximum(evening, 0.0))
        u, v = correlated_uniforms(rng(5), n, 0.7, faults.get("correlation_flip", zero))
        courier = -np.log1p(-np.minimum(u, 1 - 1e-12)) * 1.5
        prep = 8.0 + 12.0 * v**1.5
        temp = 10.0 + 6.0 * np.cos(2 * np.pi * (h - 15.0) / 24.0) + 3.0 * rng(6).standard_normal(n)
        weather = _pick(rng(7).random(n), np.array([0.7, 0.25, 0.05]))
        # truth
        w_c = faults.get("concept_change", zero)
        prep_eff = 0.7 * ((1 - w_c) * prep + w_c * (2 * _PREP_MEAN - prep))
        base = 6.0 + 2.6 * distance * (1.0 + 0.9 * traffic) + prep_eff + 1.2 * n_items + 3.0 * courier + _WEATHER_MIN[weather] \
            + 1.0 * distance * (vehicle == 0)
        eta = base * np.exp(0.12 * rng(8).standard_normal(n)) + 1.5 * rng(9).standard_normal(n)
        eta = np.maximum(eta, 3.0)
        # serving: a courier_load joined from the wrong row
        served_courier = courier
        if "shuffled_join" in faults:
            served_courier = shuffle_rows(rng(10), courier, faults["shuffled_join"] > 0)
        pred = 5.5 + 2.5 * distance * (1.0 + 0.85 * traffic) + 0.75 * prep + 1.1 * n_items + 2.8 * served_courier \
            + 0.9 * _WEATHER_MIN[weather] + 0.9 * distance * (vehicle == 0)
        return Draw(
            num={"distance_km": distance, "traffic_index": traffic, "n_items": n_items, "courier_load": served_courier,
                 "prep_time_min": prep, "temp_c": temp},
            decimals={"distance_km": 2, "traffic_index": 3, "n_items": 0, "courier_load": 2, "prep_time_min": 1, "temp_c": 1},
            cat={"weather": np.array(WEATHER, dtype=object)[weather]},
            slices={"region": np.array(REGIONS, dtype=object)[region], "vehicle": np.array(VEHICLES, dtype=object)[vehicle]},
            label=np.round(eta, 1), prediction=pred)
