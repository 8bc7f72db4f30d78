"""One feature's profile from its typed column (pure): quantile edges and fine bin shares of a numeric
feature (:func:`numeric_profile`), category shares of a text one (:func:`categorical_profile`), and the
profiles of the most frequent values of a slice column. Used by
:func:`detector.core.reference.build.build_reference`."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.core.reference.columns import _as_text, _base_rate, to_text
from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference, SliceProfile

__all__ = ["MAX_SLICE_VALUES", "MAX_CODES", "MIN_SLICE_ROWS", "numeric_profile", "categorical_profile"]


MAX_SLICE_VALUES = 50  # per slice column, the most frequent values get a SliceProfile
MAX_CODES = 50  # a numeric feature with at most this many distinct values also gets a category view
MIN_SLICE_ROWS = 30  # ... if they have at least this many rows


def numeric_profile(values: np.ndarray, n_fine: int = 100) -> NumericProfile:
    """The :class:`NumericProfile` of one numeric array (NaN/inf = missing)."""
    return _numeric(np.asarray(values, dtype=np.float64), _quantile_grid(n_fine))


def categorical_profile(values: np.ndarray | Sequence[Any], top_k: int = 1000) -> CategoricalProfile:
    """The :class:`CategoricalProfile` of one text array (None / NaN = missing)."""
    return _categorical(_as_text(np.asarray(values, dtype=object)), top_k)


def _quantile_grid(n_fine: int) -> np.ndarray:
    return np.arange(1, n_fine, dtype=np.float64) / n_fine


def _profile(
    v: np.ndarray, qs: np.ndarray, top_k: int, like: NumericProfile | CategoricalProfile | None = None
) -> NumericProfile | CategoricalProfile:
    if v.dtype.kind != "f":
        return _categorical(v, top_k)
    return _numeric(v, qs, like.edges if isinstance(like, NumericProfile) else None)


def _numeric(x: np.ndarray, qs: np.ndarray, edges: list[float] | None = None) -> NumericProfile:
    """Profile of one float array; ``edges`` given = bin on them (slices use the global edges)."""
    count = len(x)
    s = np.sort(x[np.isfinite(x)])
    n = len(s)
    if n == 0:
        e0 = [] if edges is None else list(edges)
        return NumericProfile(
            count=count, missing=count, edges=e0, freqs=[0.0] * (len(e0) + 1) if e0 else [], min=None, max=None, median=None,  # type: ignore[arg-type]
            iqr=None, mean=None, std=None, top_value=None, top_share=0.0,  # type: ignore[arg-type]
            log_abs_mean=None, log_abs_std=None, zero_share=0.0, integer=False,
        )  # fmt: skip
    lo, hi = float(s[0]), float(s[-1])
    if edges is None:
        q = np.quantile(s, qs, method="inverted_cdf")  # observed values: no interior bin is empty
        e = np.unique(np.concatenate(([lo], q, [np.nextafter(hi, np.inf)])))
    else:
        e = np.asarray(edges, dtype=np.float64)
    # counts per bin b = searchsorted(edges, x, side="right"): the values x with
    # edges[b-1] <= x < edges[b]; on sorted data that is a difference of left-insertion points
    # (O(len(edges) log n) instead of O(n log len(edges))).
    below = np.searchsorted(s, e, side="left")
    counts = np.diff(np.concatenate(([0], below, [n])))
    q1, med, q3 = (float(v) for v in np.quantile(s, [0.25, 0.5, 0.75]))
    # most frequent exact value: longest run in the sorted values (first = smallest on ties)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    runs = np.diff(np.append(starts, n))
    top = int(np.argmax(runs))
    nz = s[s != 0]
    if len(nz):
        la = np.log(np.abs(nz))
        la_mean, la_std = float(la.mean()), float(la.std())
    else:
        la_mean = la_std = None
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(s.mean()), float(s.std())
    return NumericProfile(
        count=count,
        missing=count - n,
        edges=e.tolist(),
        freqs=(counts / n).tolist(),
        min=lo,
        max=hi,
        median=med,
        iqr=q3 - q1,
        mean=mean,
        std=std,
        top_value=float(s[starts[top]]),
        top_share=float(runs[top] / n),
        log_abs_mean=la_mean,
        log_abs_std=la_std,
        zero_share=float((n - len(nz)) / n),
        integer=bool(np.all(np.floor(s) == s)),
    )


def _categorical(v: np.ndarray, top_k: int) -> CategoricalProfile:
    count = len(v)
    counter = Counter(v.tolist())
    missing = 0
    for k in [k for k in counter if to_text(k) is None]:  # None and the missing tokens ("NA", ...)
        missing += counter.pop(k)
    n = count - missing
    items = counter.items()
    top = heapq.nsmallest(top_k, items, key=_order) if len(counter) > top_k else sorted(items, key=_order)
    cats = {k: c / n for k, c in top}
    kept = sum(c for _, c in top)
    return CategoricalProfile(
        count=count,
        missing=missing,
        categories=cats,
        other_share=(n - kept) / n if n else 0.0,
        n_distinct=len(counter),
        top_value=top[0][0] if top else None,
        top_share=top[0][1] / n if top else 0.0,
    )


def _code_like(v: np.ndarray) -> bool:
    """A numeric column with few distinct values (codes, versions, small counts): see Reference.codes."""
    if v.dtype.kind != "f":
        return False
    fin = v[np.isfinite(v)]
    return fin.size > 0 and np.unique(fin).size <= MAX_CODES


def _order(kv: tuple[str, int]) -> tuple[int, str]:
    return -kv[1], kv[0]  # most frequent first, ties by value


def _slices(
    dim_values: np.ndarray,
    feats: dict[str, np.ndarray],
    label: np.ndarray | None,
    score: np.ndarray | None,
    qs: np.ndarray,
    top_k: int,
    ref: Reference,
) -> dict[str, SliceProfile]:
    """Profiles of the most frequent values of one slice column (numeric ones on the global edges)."""
    text = _as_text(dim_values)
    codes_of: dict[str | None, int] = {}
    codes = np.fromiter((codes_of.setdefault(v, len(codes_of)) for v in text.tolist()), dtype=np.int64, count=len(text))
    names = list(codes_of)
    counts = np.bincount(codes, minlength=len(names))
    candidates = [(int(counts[c]), names[c], c) for c in range(len(names)) if to_text(names[c]) is not None]
    candidates.sort(key=lambda t: (-t[0], t[1]))
    chosen = [t for t in candidates[:MAX_SLICE_VALUES] if t[0] >= MIN_SLICE_ROWS]
    if not chosen:
        return {}
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(counts)))
    out: dict[str, SliceProfile] = {}
    for n_rows, value, c in chosen:
        rows = order[bounds[c] : bounds[c + 1]]
        out[str(value)] = SliceProfile(
            count=n_rows,
            features={name: _profile(a[rows], qs, top_k, ref.features[name]) for name, a in feats.items()},
            label_base_rate=_base_rate(label[rows])[0] if label is not None else None,
            score=_numeric(score[rows], qs, ref.score.edges) if score is not None and ref.score else None,
            codes={name: _categorical(_as_text(feats[name][rows]), top_k) for name in ref.codes},
        )
    return out
