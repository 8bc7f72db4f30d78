"""The columnar (C scanner, Arrow) and typed (msgspec) decoding paths change speed, never results.

Property: any mix of clean and imperfect events, as single messages or envelopes, gives the same
window counts, counters, slice vocabularies, label-join state and error records (reason, message,
envelope item) with the columnar and typed paths on as with every event taking the general dict path.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.core.engine import Engine
from detector.core.inputs import ingest
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings

T = 1795615200.0
ARRAYS = ("num", "cat", "nz", "slog", "slog2", "sx", "cand", "rates", "lat", "absent", "type_err", "nonfinite")


@pytest.fixture(scope="module")
def ref():
    rng = np.random.default_rng(4)
    n = 3000
    return build_reference({"amount": rng.lognormal(3, 1, n).round(2), "age": rng.integers(0, 90, n).astype(float),
                            "country": np.array(rng.choice(["DE", "FR", "US"], n), dtype=object),
                            "device": np.array(rng.choice(["ios", "web"], n), dtype=object),
                            "region": np.array(rng.choice(["eu", "us"], n), dtype=object),
                            "score": rng.random(n).round(3), "label": (rng.random(n) < 0.2).astype(float)},
                           score_column="score", label_column="label", slice_columns=["region"])


def clean(i: int) -> dict:
    return {"prediction_id": f"p{i}", "model": "m", "model_version": "v1", "ts": T + 7 * i,
            "features": {"amount": 10.0 + i, "age": 30, "country": "DE", "device": "ios"}, "score": (i % 10) / 10,
            "decision": "approve" if i % 3 else "review", "threshold": 0.5, "slices": {"region": "eu" if i % 2 else "us"},
            "latency_ms": 3.0 + i % 7, "fallback": False}


_value = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([9 * 10**30, 1e308, -0.0, 2.5]),
                   st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["DE", "XX", "", "12.5", "é" * 200]),
                   st.lists(st.integers(), max_size=2))
_change = st.sampled_from([
    "drop_feature", "feature_value", "extra_feature", "ts_string", "ts_millis", "ts_bad", "id_int", "id_empty",
    "other_model", "decision_bool", "version_int", "fallback_int", "slices_extra", "slice_number", "no_score",
    "prediction_instead", "override", "baseline", "features_null", "extra_top", "ts_null", "model_null", "slices_null",
])
_form = st.sampled_from(["compact", "spaced", "indent", "trailing_space", "leading_space", "two_objects", "empty"])


def encode(e: dict, form: str) -> bytes:
    """One event as a message, in one of the forms producers send (or get wrong)."""
    if form == "compact":
        return orjson.dumps(e) if _orjson_ok(e) else json.dumps(e, separators=(",", ":")).encode()
    if form == "indent":
        return json.dumps(e, indent=2).encode()
    if form == "trailing_space":
        return json.dumps(e).encode() + b" \n"
    if form == "leading_space":
        return b" " + json.dumps(e).encode()
    if form == "two_objects":
        return json.dumps(e).encode() + b" " + json.dumps(e).encode()
    if form == "empty":
        return b""
    return json.dumps(e).encode()


def _orjson_ok(e: dict) -> bool:
    try:
        orjson.dumps(e)
        return True
    except (TypeError, orjson.JSONEncodeError):
        return False


def mutate(e: dict, change: str, v, i: int) -> dict:
    f = e["features"] if type(e["features"]) is dict else {}
    if change in ("slices_extra", "slice_number") and type(e["slices"]) is not dict:
        e["slices"] = {}
    if change == "drop_feature":
        f.pop(["amount", "age", "country", "device"][i % 4], None)
    elif change == "feature_value":
        f[["amount", "age", "country", "device"][i % 4]] = v
    elif change == "extra_feature":
        f[f"new_{i % 3}"] = v
    elif change == "ts_string":
        e["ts"] = f"2026-11-25T14:{i % 60:02d}:{i % 60:02d}Z"
    elif change == "ts_millis":
        if type(e["ts"]) in (int, float) and abs(e["ts"]) < 1e15:
            e["ts"] = int(e["ts"] * 1000)
    elif change == "ts_bad":
        e["ts"] = v
    elif change == "id_int":
        e["prediction_id"] = 10_000 + i
    elif change == "id_empty":
        e["prediction_id"] = ""
    elif change == "other_model":
        e["model"] = "other"
    elif change == "decision_bool":
        e["decision"] = bool(i % 2)
    elif change == "version_int":
        e["model_version"] = 3
    elif change == "fallback_int":
        e["fallback"] = i % 2
    elif change == "slices_extra":
        e["slices"]["tier"] = v
    elif change == "slice_number":
        e["slices"]["region"] = 7
    elif change == "no_score":
        e.pop("score", None)
    elif change == "prediction_instead":
        e["prediction"] = e.pop("score", 0.5)
    elif change == "override":
        e["override"] = v
    elif change == "baseline":
        e["baseline_decision"] = v
    elif change == "features_null":
        e["features"] = None
    elif change == "extra_top":
        e["request_id"] = v
    elif change == "ts_null":
        e["ts"] = None
    elif change == "model_null":
        e["model"] = None
    elif change == "slices_null":
        e["slices"] = None
    return e


def run(ref, msgs: list[bytes], mode: str, labels: list[bytes]):
    """Ingest with a columnar path (``native``: the C scanner; ``columnar``: Arrow's reader, on
    every batch however small), the typed path alone, or neither (``general``)."""
    eng = Engine(DetectorSettings(typed_decode=mode != "general", columnar_decode=mode in ("columnar", "native"),
                                  window=3600.0), default_reference=ref)
    attach_outcomes(eng)
    warm = [orjson.dumps(clean(i)) for i in range(1000, 1040)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "ARROW_MIN_BYTES", 1)
        if mode != "native":
            mp.setattr(ingest, "NativeDecoder", None)
        out = [eng.ingest_predictions(warm)]  # the typed decoder is chosen after this batch
        eng._arrow_skip = 0  # noqa: SLF001 - no back-off: every batch is offered to the columnar reader
        out.append(eng.ingest_predictions(msgs))
    out.append(eng.ingest_labels(labels))
    return eng, out


def state(eng):
    """What the engine holds, with slice rows in the order of their labels: the paths fold events in
    another order (columnar, then typed, then general), so new slice values may get other codes."""
    ms = eng.models["m"]
    lay = ms.layout
    active = lay.active_rows()
    order = active[np.argsort([json.dumps(lay.row_label(int(r)), sort_keys=True) for r in active], kind="stable")]

    def rows(w, a):
        v = getattr(w, a)
        return v[order] if v.ndim >= 2 and v.shape[0] == lay.n_rows else v

    wins = {s: {a: rows(w, a) for a in ARRAYS} | {"unseen": [sorted(u.items()) for u in w.unseen], "unexpected": w.unexpected,
                                                               "versions": w.versions, "decisions": w.decisions,
                                                               "thresholds": w.thresholds, "reasons": w.reasons}
            for s, w in ms.windows.items()}
    c = eng.counters
    join = eng.outcomes.join
    return {"windows": wins, "vocab": [sorted(v.values) for v in ms.layout.vocabs], "counters": (c.predictions, c.late, c.invalid,
            c.clipped), "join": (dict(join.counters), sorted(join.store.index)), "models": sorted(eng.models),
            "cands": np.nan_to_num(ms.cands, nan=-12345.0).tolist()}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_typed_and_general_paths_agree(ref, data):
    draw = data.draw
    n = draw(st.integers(1, 30))
    events = []
    level = draw(st.integers(0, 4))  # how many events in four are imperfect (4: all of them)
    for i in range(n):
        e = clean(i)
        if draw(st.integers(0, 3)) < level:
            for change in draw(st.lists(_change, max_size=2)):
                e = mutate(e, change, draw(_value), i)
        events.append(e)
    forms = [draw(_form) if draw(st.integers(0, 3)) < level else "compact" for _ in range(n)]
    if draw(st.booleans()) and n > 3:  # some of them in an envelope
        k = draw(st.integers(2, n))
        env = orjson.dumps(events[:k]) if draw(st.booleans()) and all(map(_orjson_ok, events[:k])) else json.dumps(events[:k]).encode()
        msgs = [env] + [encode(e, f) for e, f in zip(events[k:], forms[k:], strict=True)]
    elif draw(st.booleans()) and n > 1:  # a batch of envelopes only (the columnar reader's own split of them)
        cuts = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=4))))
        msgs = [orjson.dumps(events[i:j]) if all(map(_orjson_ok, events[i:j])) else json.dumps(events[i:j]).encode()
                for i, j in zip([0, *cuts], [*cuts, n], strict=True)]
    else:
        msgs = [encode(e, f) for e, f in zip(events, forms, strict=True)]
    labels = [orjson.dumps({"prediction_id": f"p{i}", "ts": T + 9000, "label": i % 2}) for i in range(n)]
    b, eb = run(ref, msgs, "general", labels)
    for mode in ("native", "columnar", "typed") if ingest.NativeDecoder is not None else ("columnar", "typed"):
        a, ea = run(ref, msgs, mode, labels)
        assert a._typed is not None and b._typed is not None  # noqa: SLF001 - the typed path really ran in `a`
        if mode in ("native", "columnar"):  # the columnar reader asked for was there to use
            assert type(a._arrow).__name__ == ("NativeDecoder" if mode == "native" else "ArrowDecoder")  # noqa: SLF001
        same_results(a, ea, b, eb)


def same_results(a, ea, b, eb):
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys()
    assert sa["windows"].keys() == sb["windows"].keys()
    for w, wa in sa["windows"].items():
        for k, v in wa.items():  # events are summed in another order: floats agree to rounding
            assert np.allclose(v, sb["windows"][w][k], rtol=1e-12, atol=1e-12) if k in ARRAYS else v == sb["windows"][w][k], k
    for k in sa:
        assert k == "windows" or sa[k] == sb[k], k
    errs = [[(e.reason, e.index, e.item, e.raw) for e in batch] for batch in ea]
    assert errs == [[(e.reason, e.index, e.item, e.raw) for e in batch] for batch in eb]


def test_clean_batches_take_the_typed_path(ref):
    eng = Engine(DetectorSettings(), default_reference=ref)
    eng.ingest_predictions([orjson.dumps(clean(i)) for i in range(50)])
    typed, rest = eng._typed_decode([orjson.dumps(clean(i)) for i in range(50, 100)])  # noqa: SLF001
    assert len(typed.events) == 50 and rest == []
    e = clean(7)
    del e["features"]["age"]
    typed, rest = eng._typed_decode([orjson.dumps(clean(1)), orjson.dumps(e)])  # noqa: SLF001
    assert len(typed.events) == 1 and rest == [1]  # an absent feature needs the general path's count


def test_clean_batches_take_the_columnar_path(ref, monkeypatch):
    monkeypatch.setattr(ingest, "NativeDecoder", None)  # Arrow's reader (without the C scanner)
    eng = Engine(DetectorSettings(), default_reference=ref)
    eng.ingest_predictions([orjson.dumps(clean(i)) for i in range(50)])
    small = [orjson.dumps(clean(i)) for i in range(50, 100)]
    assert eng._arrow_decode(small) == (None, list(range(50)))  # noqa: SLF001 - too small: its fixed cost
    monkeypatch.setattr(ingest, "ARROW_MIN_BYTES", 1)  # every batch, however small, below
    b, rest = eng._arrow_decode(small)  # noqa: SLF001
    assert b.n == 50 and rest == [] and b.origin.tolist() == list(range(50))
    e = clean(7)
    del e["features"]["age"]
    pretty = json.dumps(clean(8), indent=1).encode()
    msgs = [orjson.dumps(clean(i)) for i in range(40)] + [orjson.dumps(e), pretty, b"", b"[]"]
    b, rest = eng._arrow_decode(msgs)  # noqa: SLF001
    assert b.n == 41 and rest == [40, 42, 43]  # absent feature, empty, envelope: the other paths (a pretty one is fine)
    two = orjson.dumps(clean(9)) + b"\n" + orjson.dumps(clean(10))  # two events in one message: not JSON
    b, rest = eng._arrow_decode(msgs[:40] + [two])  # noqa: SLF001
    assert b.n == 40 and rest == [40]
    env = orjson.dumps([clean(60), clean(61), clean(62)])
    bad_env = orjson.dumps([clean(63), e])  # one item needs the general path: the whole envelope goes there
    b, rest = eng._arrow_decode(msgs[:38] + [env, bad_env])  # noqa: SLF001
    assert b.n == 41 and rest == [39] and b.item.tolist()[-3:] == [0, 1, 2] and b.origin.tolist()[-3:] == [38] * 3
    assert eng._arrow_decode(msgs[:38] + [b'{"prediction_id": "x", "ts": true}'])[0] is None  # noqa: SLF001 - refused


def test_feature_names_that_are_not_identifiers(ref):
    rng = np.random.default_rng(5)
    n = 2000
    odd = build_reference({"amount (usd)": rng.random(n), "class": np.array(rng.choice(["a", "b"], n), dtype=object),
                           "score": rng.random(n)}, score_column="score")
    eng = Engine(DetectorSettings(slice_on_features=["class"]), default_reference=odd)
    evs = [orjson.dumps({"prediction_id": f"p{i}", "model": "m", "ts": T + i, "score": 0.3,
                         "features": {"amount (usd)": 0.5, "class": "ab"[i % 2]}}) for i in range(100)]
    assert eng.ingest_predictions(evs[:50]) == [] and eng.ingest_predictions(evs[50:]) == []
    typed, rest = eng._typed_decode(evs)  # noqa: SLF001
    assert len(typed.events) == 100 and rest == []
    assert eng.counters.predictions == 100 and eng.models["m"].layout.vocabs[0].values == ["a", "b"]


@settings(max_examples=100, deadline=None)
@given(vals=st.lists(st.sampled_from(["a", "b", "c", "d", None, "__other__", "e"]), max_size=40),
       seed=st.lists(st.sampled_from(["a", "x"]), max_size=2, unique=True), top_k=st.integers(1, 4))
def test_a_coded_column_gets_the_codes_of_its_plain_list(vals, seed, top_k):
    import pyarrow as pa

    from detector.core.inputs.arrowdecode import _pylist
    from detector.core.inputs.layout import SliceVocab

    col = _pylist(pa.array(vals, type=pa.string()))
    assert list(col) == vals
    plain, coded = SliceVocab("d", top_k, list(seed)), SliceVocab("d", top_k, list(seed))
    assert plain.codes(list(vals)).tolist() == coded.codes(col).tolist()
    assert (plain.values, plain.overflow) == (coded.values, coded.overflow)



def test_a_batch_of_one_message_picks_the_typed_decoder(ref):
    eng = Engine(DetectorSettings(), default_reference=ref)
    assert eng.ingest_predictions([orjson.dumps(clean(0))]) == []
    assert eng._typed is not None and eng._typed.model == "m"  # noqa: SLF001 - the next batches are read typed
    st = eng.settings
    typed, rest = eng._typed.decode([orjson.dumps(clean(i)) for i in range(1, 20)], st.min_epoch, st.max_id_bytes,  # noqa: SLF001
                                    st.max_value_bytes)
    assert len(typed.events) == 19 and rest == []


def test_a_batch_of_envelopes_is_split_into_the_same_rows_as_one_by_one(monkeypatch):
    """The columnar reader's split of a batch of compact envelopes (two passes over the joined
    bytes) gives the rows, their messages and items that splitting each envelope alone gives."""
    import random

    from detector.core.inputs import arrowdecode

    lines = arrowdecode._lines  # noqa: SLF001 - and again with the batch split turned off below
    rnd = random.Random(5)
    items = [orjson.dumps(clean(i)) for i in range(40)] + [b"{}", b'{"a":"},{"}', b'{"a":[{},{}]}']
    cases = [[b"[{}]"], [b"[{},{}]", b"[{}]"], [b"[{}]", None, b'[{"x":1},{"y":2},{}]'], [b"[]", b"[{}]"], [b"[{\n}]"],
             [b"[{}]\r"], [b"[{},{}]", b"{}"], [b"[{} ]"], [b"[{}],"]]
    cases += [[None if rnd.random() < 0.1 else b"[" + b",".join(rnd.sample(items, rnd.randint(1, 5))) + b"]"
               for _ in range(rnd.randint(1, 6))] for _ in range(200)]
    for raws in cases:
        got = lines(raws)
        with monkeypatch.context() as mp:
            mp.setattr(arrowdecode, "_envelopes", lambda *a: None)
            want = arrowdecode._lines(raws)  # noqa: SLF001
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist() and got[2] == want[2], raws
