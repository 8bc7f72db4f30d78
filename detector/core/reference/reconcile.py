"""Training types vs what serving sends: numbers in the training file, strings on the wire.

A CSV cannot tell a version code (``7.1``, ``3.10``) from a measurement: both parse as numbers.
``skewwatch baseline`` keeps a categorical view of every numeric feature with few distinct values
(``Reference.codes``). When a model's first events send such a feature as JSON strings, the
engine compares it as categories from the start instead of paging ``schema`` ("100% not a
number") every hour: :func:`served_as_text` finds those features and the wire spelling of each
training value (``"3.10"`` for the CSV's ``3.1``), :func:`reconciled` gives the reference the
model is then laid out with. The decision is taken once, when the model's state is created, and
travels with its state and window partials; a feature that *changes* from numbers to strings
later is a schema change and is reported as one.

>>> from detector.core.reference.build import build_reference
>>> import numpy as np
>>> ref = build_reference({"v": np.array([7.1, 7.2, 3.1, 7.1]), "amount": np.array([1.5, 2.5, 9.0, 4.0])})
>>> sp = served_as_text(ref, [{"features": {"v": "3.10", "amount": 2.0}}, {"features": {"v": "7.1", "amount": 3.0}}])
>>> sp
{'v': {'3.1': '3.10', '7.1': '7.1'}}
>>> sorted(reconciled(ref, sp).features["v"].categories)
['3.10', '7.1', '7.2']
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from detector.core.reference.build import to_text
from detector.core.reference.profile import CategoricalProfile, Reference

__all__ = ["served_as_text", "reconciled", "NOTE", "SAMPLE"]

SAMPLE = 1000  # first events of a model that decide
NOTE = "numeric in the training data, served as strings: compared as categories"


def _canonical(s: str) -> str:
    """The training file's spelling of a wire string: ``"3.10"`` -> ``"3.1"``, ``"7"`` -> ``"7"``."""
    try:
        f = float(s)
    except ValueError:
        return s
    return to_text(f) or s


def served_as_text(ref: Reference, events: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Code-like numeric features sent mostly as strings -> {training spelling: wire spelling}."""
    if not ref.codes:
        return {}
    out: dict[str, dict[str, str]] = {}
    sample = events[:SAMPLE]
    for name in ref.codes:
        text: Counter[str] = Counter()
        numbers = 0
        for e in sample:
            f = e.get("features")
            v = f.get(name) if isinstance(f, dict) else None
            if isinstance(v, str):
                text[v] += 1
            elif isinstance(v, int | float) and not isinstance(v, bool):
                numbers += 1
        if sum(text.values()) > numbers:
            spell: dict[str, str] = {}
            for s, _ in text.most_common():
                spell.setdefault(_canonical(s), s)
            out[name] = dict(sorted(spell.items()))
    return out


def _renamed(p: CategoricalProfile, spell: dict[str, str]) -> CategoricalProfile:
    cats = {spell.get(c, c): s for c, s in p.categories.items()}
    top = spell.get(p.top_value, p.top_value) if p.top_value is not None else None
    return replace(p, categories=cats, top_value=top)


def reconciled(ref: Reference, spellings: dict[str, dict[str, str]]) -> Reference:
    """The reference with the features in ``spellings`` as categories, in their wire spelling."""
    if not spellings:
        return ref
    feats = dict(ref.features)
    for name, spell in spellings.items():
        if name in ref.codes:
            feats[name] = _renamed(ref.codes[name], spell)
    slices = {
        dim: {val: replace(sp, features={**sp.features, **{n: _renamed(sp.codes[n], sp_) for n, sp_ in spellings.items()
                                                           if n in sp.codes}})
              for val, sp in vals.items()}
        for dim, vals in ref.slices.items()
    }
    hourly = ref.hourly
    if hourly and any(n in hourly.get("features", {}) for n in spellings):
        hourly = {**hourly, "features": {k: v for k, v in hourly["features"].items() if k not in spellings},
                  "slices": {d: {v: {k: x for k, x in per.items() if k not in spellings} for v, per in vals.items()}
                             for d, vals in hourly.get("slices", {}).items()}}
    return replace(ref, features=feats, slices=slices, hourly=hourly)

