"""The logged-traffic arguments of ``skewwatch replay`` and ``skewwatch report`` (one wording for both)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_traffic_arguments"]


def add_traffic_arguments(p: argparse.ArgumentParser, predictions: Any = None, note: str = "") -> None:
    """``--reference``, ``--predictions``, ``--labels``, ``--features``, ``--config``, ``--window``.

    ``predictions``: the group ``--predictions`` belongs to (required when it is not given); ``note``
    ends the help of the arguments that only go with ``--predictions``.
    """
    p.add_argument("--reference", help="reference profile (skewwatch baseline --out); applies to every model")
    (predictions or p).add_argument(
        "--predictions", required=predictions is None,
        help="prediction events: JSONL, or a flat CSV/TSV/Parquet table (one column per feature); may be .gz")
    p.add_argument("--labels", help=f"label events: JSONL, CSV/TSV or Parquet (prediction_id, ts, label){note}")
    p.add_argument("--features", help=f"offline feature events: JSONL, CSV/TSV or Parquet{note}")
    p.add_argument("--config", help="skewwatch YAML config (models, costs, detector settings)")
    p.add_argument("--window", help=f"window length, e.g. 5m or 1h (overrides the config){note}")
