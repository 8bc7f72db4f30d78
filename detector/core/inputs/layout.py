"""The fixed shape of one model's state: features, their bins, and the bounded slice rows.

Every count the engine keeps is a dense array indexed by *row* (row 0 = all traffic, then one
row per slice value of each slice dimension: its top-K values plus ``__other__``), so a batch is
folded in with a few ``np.bincount`` calls and two workers' windows merge by addition. Slice
values are admitted first-come (reference values first) until ``top_k`` per dimension; later
values fold into ``__other__`` and are counted as overflow, so an untrusted producer cannot grow
the state. Memory per window is ``rows x (sum of bins)`` counters, stated by :meth:`Layout.cells`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.inputs.binning import Bins
from detector.core.inputs.events import Schema
from detector.core.reference.hourly import mix_profiles
from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference, coarse_groups

__all__ = ["OTHER", "NONE", "SliceVocab", "Layout", "SCORE", "CodedColumn"]

OTHER = "__other__"
NONE = "__none__"  # the event carried no value for this dimension
SCORE = "__score__"
#: coarse bins of a clock-set numeric feature (one per training bin up to this many: a local hour's 24 values)
CLOCK_BINS = 48
_MISS = object()

_LAT_EDGES = np.concatenate([[0.0], np.logspace(-1, 5, 61)])  # ms: 0.1 ms .. 100 s, 10 per decade


class CodedColumn(list):  # type: ignore[type-arg]
    """A column of (few distinct) values that also carries its dictionary encoding: ``values``
    (distinct, in order of first appearance) and ``codes`` (index into them per event), so a
    slice vocabulary maps each distinct value once (:meth:`~detector.core.inputs.layout.SliceVocab.codes`)."""

    __slots__ = ("values", "codes")

    def __init__(self, values: list[Any], codes: np.ndarray) -> None:
        super().__init__(map(values.__getitem__, codes.tolist()))
        self.values, self.codes = values, codes


@dataclass
class SliceVocab:
    """Bounded value -> code map for one slice dimension (code ``top_k`` is ``__other__``)."""

    dim: str
    top_k: int
    values: list[str] = field(default_factory=list)
    overflow: int = 0  # events folded into __other__ because the vocabulary was full

    def __post_init__(self) -> None:
        self._codes = {v: i for i, v in enumerate(self.values)}

    def codes(self, raw: list[Any]) -> np.ndarray:
        """Codes for a column of raw values, admitting new values while there is room."""
        if type(raw) is CodedColumn:  # each distinct value once (they are in order of first appearance)
            uniq = self.codes(raw.values)
            over = np.flatnonzero(uniq == self.top_k)
            if over.size:  # the values that overflowed were counted once each: count their events
                cnt = np.bincount(raw.codes, minlength=len(raw.values))
                for i in over.tolist():
                    v = raw.values[i]
                    if self._codes.get(NONE if v is None else (v if isinstance(v, str) else str(v))) is None:
                        self.overflow += int(cnt[i]) - 1
            return uniq[raw.codes]
        get = self._codes.get
        out = np.fromiter(map(get, raw, [-1] * len(raw)), dtype=np.int64, count=len(raw))
        miss = np.flatnonzero(out < 0)
        for i in miss.tolist():
            v = raw[i]
            key = NONE if v is None else (v if isinstance(v, str) else str(v))
            code = self._codes.get(key)
            if code is None:
                if len(self.values) < self.top_k:
                    code = len(self.values)
                    self.values.append(key)
                    self._codes[key] = code
                else:
                    code = self.top_k
                    self.overflow += 1
            out[i] = code
        return out

    def label(self, code: int) -> str:
        return self.values[code] if code < len(self.values) else OTHER

    def code_of(self, value: str) -> int | None:
        if value == OTHER:
            return self.top_k
        return self._codes.get(value)

    def to_state(self) -> dict[str, Any]:
        return {"values": list(self.values), "overflow": self.overflow}

    def load_state(self, st: dict[str, Any]) -> None:
        """Restore the admitted values (in code order) and the overflow count."""
        values = st.get("values") if isinstance(st, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or len(values) > self.top_k:
            raise ValueError(f"slice vocabulary state of {self.dim!r} must list at most {self.top_k} str values")
        if len(set(values)) != len(values):
            raise ValueError(f"slice vocabulary state of {self.dim!r} repeats a value")
        self.values = list(values)
        self.overflow = int(st.get("overflow", 0))
        self.__post_init__()


class Layout:
    """Feature order, bins and slice rows of one model (derived from its reference)."""

    def __init__(self, ref: Reference, dims: list[str], top_k: int, category_top_k: int) -> None:
        self.ref = ref
        num = [k for k, p in ref.features.items() if isinstance(p, NumericProfile)]
        cat = [k for k, p in ref.features.items() if isinstance(p, CategoricalProfile)]
        self.numeric: list[str] = num
        self.categorical: list[str] = cat
        # ---- numeric bins (+1 missing bin per feature); the score is the last numeric block
        self.num_profiles: list[NumericProfile | None] = [ref.features[k] for k in num]  # type: ignore[misc]
        score_prof = ref.score
        self.num_edges: list[np.ndarray] = [np.asarray(p.edges, dtype=np.float64) for p in self.num_profiles]  # type: ignore[union-attr]
        if score_prof is not None:
            self.score_edges = np.asarray(score_prof.edges, dtype=np.float64)
        else:  # no training scores: bins on [0, 1] so drift vs production still works
            self.score_edges = np.concatenate([np.linspace(0.0, 1.0, 21), [np.nextafter(1.0, 2.0)]])
        self.score_profile = score_prof
        blocks = [*self.num_edges, self.score_edges]
        sizes = np.array([len(e) + 2 for e in blocks], dtype=np.int64)  # fine bins + missing bin
        self.num_sizes = sizes
        self.num_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.num_total = int(sizes.sum())
        self.bins = Bins(blocks)  # fine bin lookup of every block at once (detector.core.inputs.binning)
        # fine bin -> coarse bin (missing excluded): deciles, except for a feature the clock sets (a local hour,
        # training showed it one value per hour: reference.hourly "clock"), which keeps one bin per training bin -
        # merged into deciles, a one-hour clock error stays inside a bin in most hours of the day
        clock = set((ref.hourly or {}).get("clock") or ())
        self.coarse = [coarse_groups(e, CLOCK_BINS if name in clock else 10) for name, e in zip([*num, SCORE], blocks, strict=True)]
        self.n_num_blocks = len(blocks)  # numeric features + score
        # reference share per coarse bin and per fine bin
        self.ref_fine: list[np.ndarray | None] = []
        profs: list[NumericProfile | None] = [*self.num_profiles, score_prof]
        for p in profs:
            self.ref_fine.append(None if p is None else np.asarray(p.freqs, dtype=np.float64))
        self.num_all_profiles = profs
        # ---- categorical vocab: reference top categories (bounded), unseen, missing
        self.cat_vocab: dict[str, dict[str, int]] = {}
        self.cat_ref: list[np.ndarray] = []  # ref share per code (+ unseen bucket = other_share)
        for k in cat:
            p: CategoricalProfile = ref.features[k]  # type: ignore[assignment]
            items = list(p.categories.items())[:category_top_k]
            self.cat_vocab[k] = {c: i for i, (c, _) in enumerate(items)}
            shares = np.array([s for _, s in items] + [max(0.0, 1.0 - sum(s for _, s in items))], dtype=np.float64)
            self.cat_ref.append(shares)
        csizes = np.array([len(self.cat_vocab[k]) + 2 for k in cat], dtype=np.int64)
        self.cat_sizes = csizes
        self.cat_offsets = np.concatenate([[0], np.cumsum(csizes)[:-1]]) if len(cat) else np.zeros(0, dtype=np.int64)
        self.cat_total = int(csizes.sum())
        self.schema = Schema(numeric=num, categorical=cat, vocab=self.cat_vocab)
        # ---- slices
        self.dims = dims
        self.top_k = top_k
        self.vocabs: list[SliceVocab] = []
        for d in dims:
            seed = sorted(ref.slices.get(d, {}).items(), key=lambda kv: -kv[1].count)
            self.vocabs.append(SliceVocab(d, top_k, [v for v, _ in seed][:top_k]))
        self.n_rows = 1 + len(dims) * (top_k + 1)
        self.lat_edges = _LAT_EDGES
        self._mix_cache: dict[Any, Any] = {}
        self._ref_rows_cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ rows
    def row_offset(self, d: int) -> int:
        return 1 + d * (self.top_k + 1)

    def row_label(self, row: int) -> dict[str, str]:
        """Slice dict of a row ({} for all traffic)."""
        if row == 0:
            return {}
        d, code = divmod(row - 1, self.top_k + 1)
        return {self.dims[d]: self.vocabs[d].label(code)}

    def row_of(self, slice_: dict[str, str]) -> int | None:
        if not slice_:
            return 0
        ((dim, val),) = slice_.items()
        if dim not in self.dims:
            return None
        d = self.dims.index(dim)
        code = self.vocabs[d].code_of(val)
        return None if code is None else self.row_offset(d) + code

    def active_rows(self) -> np.ndarray:
        """Rows that have a value assigned (global + admitted values + __other__)."""
        rows = [0]
        for d, v in enumerate(self.vocabs):
            off = self.row_offset(d)
            rows.extend(off + i for i in range(len(v.values)))
            rows.append(off + self.top_k)
        return np.asarray(rows, dtype=np.int64)

    def ref_for_row(self, row: int, feature: str, hours: np.ndarray | None = None) -> Any:
        """The reference a row is compared with for skew, or None.

        Slices legitimately differ from the overall training distribution, so a slice row is
        only compared with that slice's own training profile; a slice value the training data
        did not have (and ``__other__``) gets no skew test — it is still watched for drift
        against its own production history. A *seasonal* feature (see
        :mod:`detector.core.reference.hourly`) is compared with the training hours the window covers.
        """
        hourly = self.ref.hourly.get("features", {}) if self.ref.hourly else {}
        if row == 0:
            g = self.score_profile if feature == SCORE else self.ref.features.get(feature)
            if hours is not None and feature in hourly:
                return self._mixed(("g", feature), hourly[feature], hours, g)
            return g
        ((dim, val),) = self.row_label(row).items()
        sp = self.ref.slices.get(dim, {}).get(val)
        if sp is None:
            return None
        g = sp.score if feature == SCORE else sp.features.get(feature)
        if hours is not None and feature in hourly:
            per = self.ref.hourly.get("slices", {}).get(dim, {}).get(val, {}).get(feature)
            if per is None:
                return None
            glob = self.score_profile if feature == SCORE else self.ref.features.get(feature)
            return self._mixed((dim, val, feature), per, hours, glob)
        return g

    def _mixed(self, key: tuple[str, ...], profiles: list[Any], hours: np.ndarray, glob: Any) -> Any:
        ck = (key, hours.tobytes())
        hit = self._mix_cache.get(ck, _MISS)
        if hit is _MISS:
            if len(self._mix_cache) > 4096:
                self._mix_cache.clear()
            hit = mix_profiles(profiles, hours, glob)
            self._mix_cache[ck] = hit
        return hit

    def cells(self) -> int:
        """Counters per window (the memory bound: x8 bytes)."""
        return self.n_rows * (self.num_total + self.cat_total + 3 * (len(self.numeric) + 1) + len(self.lat_edges) + 8)
