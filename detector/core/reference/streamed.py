"""The reference profile of a table of any size, in bounded memory (pure: no I/O).

A :class:`TableProfiler` is fed the table in column chunks (``update``) and keeps

* exact summaries of every column over *all* rows (:mod:`detector.core.reference.colsummary`): row count,
  missing counts, numeric min/max/mean/std/zero share/integrality/log-moments, category counts
  (exact up to 10,000 distinct values per column, then Misra-Gries with a stated error), the label
  base rate, and per slice value its row count and label base rate;
* a uniform random sample of at most ``sample_rows`` rows (:class:`~detector.core.reference.reservoir.RowSample`,
  seeded, independent of chunking) for what needs rows together: quantile edges and bin shares,
  median/IQR, most frequent numeric value, slice profiles, hour-of-day profiles and the audit.

:meth:`TableProfiler.reference` runs :func:`~detector.core.reference.build.build_reference` on the sample
(so every typing and profiling rule stays in one place) and, when the sample is smaller than the
table, replaces the statistics known exactly; counts are put on the scale of the whole table
(slice profiles' counts are their exact row counts, their features' missing counts scaled from the
sample), so a global profile minus a slice profile stays meaningful. ``Reference.sample`` records
rows read, rows sampled, the seed and the quantile error bound.

Why one million rows by default: the sampled statistics are quantiles and bin shares. By the
Dvoretzky-Kiefer-Wolfowitz inequality every quantile rank of a uniform sample of ``m`` rows is
within ``sqrt(ln(2 / a) / (2 m))`` of the truth, simultaneously, with probability ``1 - a``: for
``m = 1,000,000`` and ``a = 0.001`` that is 0.19 percentage points, a fifth of one of the 1%-wide
fine bins, and a bin share's standard error is at most 0.0001 -- small next to the noise of any
serving window (a 1% bin in a 10,000-row window: 0.001). A slice holding 0.1% of the rows still
gets ~1,000 sampled rows. Tables up to the budget are profiled from every row, exactly as before.

>>> import numpy as np
>>> p = TableProfiler(sample_rows=1000, seed=0)
>>> for start in range(0, 10_000, 2_500):
...     x = np.arange(start, start + 2_500, dtype=np.float64)
...     p.update(start, {"x": x, "c": np.array(["a", "b"] * 1_250, dtype=object)})
>>> ref = p.reference()
>>> ref.n_rows, ref.sample["rows_sampled"], ref.features["x"].max, ref.features["c"].categories
(10000, 1000, 9999.0, {'a': 0.5, 'b': 0.5})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from detector.core.reference.build import ProfileError, build_reference, label_values, typed_values
from detector.core.reference.colsummary import FrequentCounter, NumericSummary
from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference
from detector.core.reference.reservoir import RowSample

__all__ = ["SAMPLE_CELLS", "SAMPLE_ROWS", "TableProfiler", "quantile_rank_error"]

SAMPLE_ROWS = 1_000_000  # rows kept for the sampled statistics (see the module docstring)
SAMPLE_CELLS = 50_000_000  # rows x columns: a very wide table gets fewer rows (about 400 MB of numbers)
COUNTER_CAPACITY = 10_000  # distinct values counted exactly per text column
_ERROR_ALPHA = 0.001  # the confidence of the stated quantile error bound


def quantile_rank_error(m: int, alpha: float = _ERROR_ALPHA) -> float:
    """DKW bound on every quantile rank of an ``m``-row uniform sample at confidence ``1 - alpha``.

    >>> round(quantile_rank_error(1_000_000), 5)
    0.00195
    """
    return math.sqrt(math.log(2 / alpha) / (2 * m)) if m > 0 else 1.0


class _SliceCounts:
    """Per value of one slice column: rows, labelled rows, positive labels (exact, or given up)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str | None, np.ndarray] | None = {}

    def update(self, text: np.ndarray, label: np.ndarray | None) -> None:
        if self.counts is None:
            return
        codes_of: dict[str | None, int] = {}
        codes = np.fromiter((codes_of.setdefault(v, len(codes_of)) for v in text.tolist()), np.int64, len(text))
        k = len(codes_of)
        rows = np.bincount(codes, minlength=k)
        if label is not None:
            known = ~np.isnan(label)
            labelled = np.bincount(codes[known], minlength=k)
            pos = np.bincount(codes[known], weights=label[known], minlength=k)
        else:
            labelled = pos = np.zeros(k)
        for v, c in codes_of.items():
            acc = self.counts.get(v)
            add = np.array([rows[c], labelled[c], pos[c]], dtype=np.float64)
            self.counts[v] = add if acc is None else acc + add
        if len(self.counts) > self.capacity:
            self.counts = None  # too many values for exact counts: slices fall back to the sample


class TableProfiler:
    """Exact column summaries and a row sample of a chunked table -> a :class:`Reference`.

    The role hints say which columns to track before the roles are final: ``label`` (its base
    rate overall and per slice value; ``label_strict`` raises on a non-binary value, else the hint
    is dropped), ``score`` (``score_strict`` raises on a non-number), ``slices`` (``None`` = the
    slice columns each chunk names, for skewwatch events). ``types`` are the feature type overrides.
    """

    def __init__(
        self,
        *,
        sample_rows: int = SAMPLE_ROWS,
        sample_cells: int | None = SAMPLE_CELLS,
        seed: int = 0,
        types: Mapping[str, str] | None = None,
        label: str | None = None,
        label_strict: bool = False,
        score: str | None = None,
        score_strict: bool = False,
        slices: Sequence[str] | None = (),
        capacity: int = COUNTER_CAPACITY,
    ) -> None:
        self.sample = RowSample(sample_rows, seed=seed, max_cells=sample_cells)
        self.seed = seed
        self.types = dict(types or {})
        self.label, self.label_strict = label, label_strict
        self.score, self.score_strict = score, score_strict
        self.slice_hint = None if slices is None else list(slices)
        self.capacity = capacity
        self.rows = 0
        self.numeric: dict[str, NumericSummary] = {}
        self.text: dict[str, FrequentCounter] = {}
        self.flipped: set[str] = set()  # numeric in early chunks, text later: read them again as text
        self.label_ok = label is not None
        self.label_counts = np.zeros(2)  # labelled rows, positives
        self.slices: dict[str, _SliceCounts] = {}

    # ------------------------------------------------------------------ feeding
    def update(
        self, start: int, columns: Mapping[str, np.ndarray], slice_columns: Sequence[str] = (), n: int | None = None
    ) -> None:
        """Rows ``start .. start + n - 1`` of the table (``n`` defaults to the columns' length; a
        chunk may have no columns at all); ``slice_columns`` names the chunk's event slice columns."""
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0
        if start != self.rows:
            raise ValueError(f"chunks must arrive in order: expected row {self.rows}, got {start}")
        typed = {name: self._typed(name, a, start) for name, a in columns.items()}
        for name, a in typed.items():
            self._summarise(name, a)
        label = self._label(typed.get(self.label) if self.label else None, start, n)
        dims = self.slice_hint if self.slice_hint is not None else slice_columns
        for dim in dims:
            tracker = self.slices.setdefault(dim, _SliceCounts(self.capacity))
            if dim in typed:
                tracker.update(typed_values(dim, typed[dim], "categorical"), label)
            elif tracker.counts is not None:
                tracker.update(np.full(n, None, dtype=object), label)
        self.sample.add(start, typed, n)
        self.rows += n

    def reread(self, start: int, columns: Mapping[str, np.ndarray]) -> None:
        """Columns read again (as text, from the first row on) after :attr:`flipped` named them."""
        for name, a in columns.items():
            if name in self.flipped:
                self.flipped.discard(name)
                self.numeric.pop(name, None)
                self.text[name] = FrequentCounter(self.capacity)
                if name in self.slices:
                    self.slices[name].counts = None  # its per-value label counts are gone: use the sample
            a = self._typed(name, a, start)
            self._summarise(name, a)
            self.sample.replace(name, start, a)

    def values(self, name: str) -> list[str] | None:
        """The distinct text values of a column when they are known exactly (else ``None``)."""
        c = self.text.get(name)
        return sorted(c.counts) if c is not None and c.exact else None

    def label_binary(self) -> bool:
        """Every value of the label hint column was 0/1/true/false or missing."""
        return self.label_ok

    # ------------------------------------------------------------------ the reference
    def reference(self, **kwargs: Any) -> Reference:
        """:func:`build_reference` on the sample (same keyword arguments), exact where known."""
        cols = self.sample.columns()
        for name in self.numeric:  # columns whose rows all missed the sample
            cols.setdefault(name, np.full(self.sample.n, np.nan))
        for name in self.text:
            cols.setdefault(name, np.full(self.sample.n, None, dtype=object))
        ref = build_reference(cols, **kwargs)
        m, n = self.sample.n, self.rows
        ref.sample = {
            "rows_read": n,
            "rows_sampled": m,
            "seed": self.seed,
            "method": "uniform without replacement (bottom-k priority sampling)",
            "quantile_rank_error": round(quantile_rank_error(m), 6) if m < n else 0.0,
            "confidence": 1 - _ERROR_ALPHA,
            "exact": "row count, missing counts, numeric min/max/mean/std/zero share, category counts,"
                     " label base rate, slice row counts and label base rates",
            "sampled": "" if m >= n else "quantile edges and bin shares, median/IQR, most frequent number,"
                       " slice feature profiles, hour-of-day profiles, audit",
        }  # fmt: skip
        if m < n:
            self._exact(ref, int(kwargs.get("top_k_categories", 1000)))
        return ref

    # ------------------------------------------------------------------ internals
    def _typed(self, name: str, a: np.ndarray, start: int) -> np.ndarray:
        kind = self.types.get(name)
        if name == self.score and a.dtype.kind == "O" and kind is None:
            kind = "numeric" if self.score_strict else None
        if kind is None or (kind == "numeric" and a.dtype.kind == "f"):
            return a
        try:
            return typed_values(name, a, kind)
        except ProfileError as exc:
            raise ProfileError(f"{exc} (rows {start + 1:,}-{start + len(a):,})") from exc

    def _summarise(self, name: str, a: np.ndarray) -> None:
        if a.dtype.kind == "O":
            num = self.numeric.get(name)
            if num is not None:
                if num.n > 0:
                    self.flipped.add(name)
                    return
                del self.numeric[name]  # nothing but missing values so far: text from now on
            self.text.setdefault(name, FrequentCounter(self.capacity)).update(a.tolist())
        elif name in self.text:  # numbers in a text column (JSON): their text form
            self.text[name].update(typed_values(name, a, "categorical").tolist())
        else:
            self.numeric.setdefault(name, NumericSummary()).update(a)

    def _label(self, a: np.ndarray | None, start: int, n: int) -> np.ndarray | None:
        if not self.label_ok:
            return None
        if a is None:
            return np.full(n, np.nan)
        try:
            y = label_values(self.label or "", a)
        except ProfileError as exc:
            if self.label_strict:
                raise ProfileError(f"{exc} (rows {start + 1:,}-{start + n:,}; later rows not checked)") from exc
            self.label_ok = False
            return None
        known = ~np.isnan(y)
        self.label_counts += (known.sum(), y[known].sum())
        return y

    def _exact(self, ref: Reference, top_k: int) -> None:
        n, m = self.rows, self.sample.n
        ref.n_rows = n
        for name, p in list(ref.features.items()):
            ref.features[name] = self._global(name, p, n, m, top_k)
        if ref.score is not None and ref.score_column is not None:
            ref.score = self._global(ref.score_column, ref.score, n, m, top_k)
        if ref.label_column is not None and ref.label_column == self.label and self.label_ok:
            labelled, pos = self.label_counts
            ref.label_count = int(labelled)
            ref.label_base_rate = float(pos / labelled) if labelled else None
        codes = getattr(ref, "codes", None)
        if isinstance(codes, dict):
            for name, p in codes.items():
                codes[name] = _rescale(p, n, m)
        for dim, values in ref.slices.items():
            tracker = self.slices.get(dim)
            exact = tracker.counts if tracker is not None else None
            for value, sp in values.items():
                got = exact.get(value) if exact is not None else None
                count = int(got[0]) if got is not None else round(sp.count * n / m)
                if got is not None and ref.label_column == self.label and self.label_ok and sp.label_base_rate is not None:
                    sp.label_base_rate = float(got[2] / got[1]) if got[1] else None
                scale = (sp.count, count)
                sp.features = {k: _rescale(p, count, scale[0]) for k, p in sp.features.items()}
                if sp.score is not None:
                    sp.score = _rescale(sp.score, count, scale[0])
                slice_codes = getattr(sp, "codes", None)
                if isinstance(slice_codes, dict):
                    for k, p in slice_codes.items():
                        slice_codes[k] = _rescale(p, count, scale[0])
                sp.count = count
        self._align_edges(ref)

    @staticmethod
    def _align_edges(ref: Reference) -> None:
        """Slice and hour-of-day profiles are binned on the global edges: give them the global
        edges as corrected (only the outer two moved, to the exact min and max)."""
        edges = {k: p.edges for k, p in ref.features.items() if isinstance(p, NumericProfile)}
        if ref.score is not None and ref.score_column is not None:
            edges[ref.score_column] = ref.score.edges

        def align(name: str, p: Any) -> Any:
            e = edges.get(name)
            if isinstance(p, NumericProfile) and e is not None and len(p.edges) == len(e) and p.edges != e:
                return replace(p, edges=list(e))
            return p

        for values in ref.slices.values():
            for sp in values.values():
                sp.features = {k: align(k, p) for k, p in sp.features.items()}
                if sp.score is not None and ref.score_column is not None:
                    sp.score = align(ref.score_column, sp.score)
        hourly = ref.hourly or {}
        for name, hours in hourly.get("features", {}).items():
            hourly["features"][name] = [align(name, p) for p in hours]
        for per_value in hourly.get("slices", {}).values():
            for per_feature in per_value.values():
                for name, hours in per_feature.items():
                    per_feature[name] = [align(name, p) for p in hours]

    def _global(self, name: str, p: Any, n: int, m: int, top_k: int) -> Any:
        if isinstance(p, NumericProfile):
            s = self.numeric.get(name)
            if s is None or s.n == 0 or not p.edges or p.n == 0:
                return _rescale(p, n, m)
            edges = list(p.edges)
            edges[0], edges[-1] = s.min, float(np.nextafter(s.max, np.inf))
            return replace(
                p, count=n, missing=n - s.n, edges=edges, min=s.min, max=s.max, mean=s.mean, std=s.std,
                zero_share=s.zeros / s.n, integer=s.integer,
                log_abs_mean=s.log_mean if s.n_log else None, log_abs_std=s.log_std if s.n_log else None,
            )  # fmt: skip
        if isinstance(p, CategoricalProfile):
            c = self.text.get(name)
            if c is None:
                return _rescale(p, n, m)
            top = c.most_common(top_k)
            nn = c.n
            cats = {v: cnt / nn for v, cnt in top} if nn else {}
            return replace(
                p, count=n, missing=n - nn, categories=cats, other_share=max(0.0, 1.0 - sum(cats.values())) if nn else 0.0,
                n_distinct=c.distinct_seen if c.exact else max(c.distinct_seen, p.n_distinct),
                top_value=top[0][0] if top else None, top_share=top[0][1] / nn if top and nn else 0.0,
            )  # fmt: skip
        return p


def _rescale(p: Any, count: int, sample_count: int) -> Any:
    """A profile from ``sample_count`` sampled rows put on the scale of ``count`` rows."""
    if sample_count <= 0 or not hasattr(p, "count"):
        return p
    rate = p.missing / p.count if p.count else 0.0
    return replace(p, count=int(count), missing=int(round(rate * count)))
