"""The C scanner (detector.core.inputs.nativedecode) changes speed, never results.

Hostile bytes the scanner must send back to the other paths (escapes, invalid UTF-8, surrogates,
big integers, overflowing numbers, deep nesting, repeated keys, trailing bytes...) and clean ones
it must read exactly (numbers rounded as orjson rounds them, every whitespace form): the engine's
windows, counters and error records are those of the general dict path, and what it reads, it
reads as columns (checked on the decoder itself).
"""

from __future__ import annotations

import json
import random

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.core.engine import Engine
from detector.core.settings import DetectorSettings
from tests.core.test_typed_decode import T, clean, ref, run, same_results  # noqa: F401 - ref: the fixture

pytest.importorskip("detector.core.inputs._scan", reason="the C extension is not built in this install")

CLEAN = orjson.dumps(clean(5))
HOSTILE = {
    "escaped id": b'{"prediction_id":"p\\u0031","model":"m","ts":1795615200,"features":{"amount":1,"age":2,"country":"DE","device":"ios"}}',
    "escaped category": CLEAN.replace(b'"country":"DE"', b'"country":"D\\u0045"'),
    "escaped feature name": CLEAN.replace(b'"age"', b'"\\u0061ge"'),
    "lone surrogate escape in an extra field": CLEAN[:-1] + b',"note":"\\ud800"}',
    "invalid utf-8 in an extra field": CLEAN[:-1] + b',"note":"\xff"}',
    "surrogate as utf-8": CLEAN.replace(b'"DE"', b'"\xed\xa0\x80"'),
    "overlong utf-8": CLEAN.replace(b'"DE"', b'"\xc0\xaf"'),
    "truncated utf-8": CLEAN.replace(b'"DE"', b'"\xe2\x82"'),
    "valid utf-8 category": CLEAN.replace(b'"DE"', "\"Zürich €\"".encode()),
    "valid utf-8 id": CLEAN.replace(b'"p5"', "\"p5-ü\"".encode()),
    "big integer feature": CLEAN.replace(b'"age":30', b'"age":123456789012345678901234567890'),
    "19-digit integer": CLEAN.replace(b'"age":30', b'"age":9223372036854775808'),
    "18-digit integer": CLEAN.replace(b'"age":30', b'"age":123456789012345678'),
    "overflowing number": CLEAN.replace(b'"age":30', b'"age":1e400'),
    "underflowing number": CLEAN.replace(b'"age":30', b'"age":1e-400'),
    "long mantissa": CLEAN.replace(b'"age":30', b'"age":0.1000000000000000055511151231257827021181583404541015625'),
    "negative zero": CLEAN.replace(b'"age":30', b'"age":-0'),
    "negative zero float": CLEAN.replace(b'"age":30', b'"age":-0.0'),
    "leading zero": CLEAN.replace(b'"age":30', b'"age":030'),
    "plus sign": CLEAN.replace(b'"age":30', b'"age":+30'),
    "bare dot": CLEAN.replace(b'"age":30', b'"age":30.'),
    "NaN literal": CLEAN.replace(b'"age":30', b'"age":NaN'),
    "Infinity literal": CLEAN.replace(b'"age":30', b'"age":Infinity'),
    "hex": CLEAN.replace(b'"age":30', b'"age":0x1e'),
    "exponent forms": CLEAN.replace(b'"age":30', b'"age":3.0E+1'),
    "true feature": CLEAN.replace(b'"age":30', b'"age":true'),
    "string number feature": CLEAN.replace(b'"age":30', b'"age":"30"'),
    "null feature": CLEAN.replace(b'"age":30', b'"age":null'),
    "number category": CLEAN.replace(b'"country":"DE"', b'"country":7'),
    "repeated feature": CLEAN.replace(b'"age":30', b'"age":30,"age":31'),
    "repeated top-level key": CLEAN[:-1] + b',"score":0.9}',
    "repeated model": CLEAN[:-1] + b',"model":"m"}',
    "deep extra field": CLEAN[:-1] + b',"x":' + b"[" * 40 + b"]" * 40 + b"}",
    "shallow extra field": CLEAN[:-1] + b',"x":{"a":[1,2,{"b":null}],"c":"\\n"}}',
    "unterminated extra field": CLEAN[:-1] + b',"x":[1,2}',
    "trailing garbage": CLEAN + b"x",
    "trailing comma": CLEAN[:-1] + b",}",
    "two objects": CLEAN + CLEAN,
    "bom": b"\xef\xbb\xbf" + CLEAN,
    "whitespace everywhere": json.dumps(clean(6), indent="\t").encode().replace(b":", b" \r\n: "),
    "control char in a string": CLEAN.replace(b'"p5"', b'"p\x015"'),
    "tab in a string": CLEAN.replace(b'"p5"', b'"p\t5"'),
    "truncated": CLEAN[:-7],
    "empty": b"",
    "null": b"null",
    "array of numbers": b"[1,2]",
    "empty envelope": b"[]",
    "envelope with garbage": b"[" + CLEAN + b",1]",
    "envelope of one": b"[" + CLEAN + b"]",
    "spaced envelope": b"[ " + CLEAN + b" ,\n " + orjson.dumps(clean(7)) + b" ]",
    "slice number": CLEAN.replace(b'"region":"eu"', b'"region":7'),
    "slice object": CLEAN.replace(b'"region":"eu"', b'"region":{}'),
    "extra slice object": CLEAN.replace(b'"region":"eu"', b'"region":"eu","x":[1]'),
    "extra slice scalar": CLEAN.replace(b'"region":"eu"', b'"region":"eu","x":1.5,"y":"z","w":null'),
    "repeated slice": CLEAN.replace(b'"region":"eu"', b'"region":"eu","region":"eu"'),
    "slices null": CLEAN.replace(b'{"region":"eu"}', b"null"),
    "slices empty": CLEAN.replace(b'{"region":"eu"}', b"{}"),
    "fallback true": CLEAN.replace(b'"fallback":false', b'"fallback":true'),
    "fallback number": CLEAN.replace(b'"fallback":false', b'"fallback":1'),
    "ts string": CLEAN.replace(b'"ts":1795615235.0', b'"ts":"2026-11-25T14:00:35Z"'),
    "ts string with offset": CLEAN.replace(b'"ts":1795615235.0', b'"ts":"2026-11-25T15:00:35+01:00"'),
    "ts garbage string": CLEAN.replace(b'"ts":1795615235.0', b'"ts":"yesterday"'),
    "ts millis": CLEAN.replace(b'"ts":1795615235.0', b'"ts":1795615235123'),
    "ts too old": CLEAN.replace(b'"ts":1795615235.0', b'"ts":5'),
    "ts negative": CLEAN.replace(b'"ts":1795615235.0', b'"ts":-1795615235'),
    "id too long": CLEAN.replace(b'"p5"', b'"' + b"p" * 600 + b'"'),
    "category too long": CLEAN.replace(b'"DE"', b'"' + b"D" * 5000 + b'"'),
    "other model": CLEAN.replace(b'"model":"m"', b'"model":"n"'),
    "integer id": CLEAN.replace(b'"p5"', b"5"),
    "no features": CLEAN.replace(b'"features":{', b'"feats":{'),
    "unknown feature": CLEAN.replace(b'"age":30', b'"age":30,"new":1'),
    "absent feature": CLEAN.replace(b'"age":30,', b""),
    "score null": CLEAN.replace(b'"score":0.5', b'"score":null'),
    "decision null": CLEAN.replace(b'"decision":"approve"', b'"decision":null'),
    "override and baseline": CLEAN[:-1] + b',"override":"manual","baseline_decision":"review"}',
    "version number": CLEAN.replace(b'"model_version":"v1"', b'"model_version":3'),
}
# what the scanner reads itself (everything else goes back to the other paths)
READS = {"valid utf-8 category", "valid utf-8 id", "18-digit integer", "underflowing number", "long mantissa",
         "negative zero", "negative zero float", "exponent forms", "shallow extra field", "whitespace everywhere",
         "envelope of one", "spaced envelope", "extra slice scalar", "slices null", "slices empty", "fallback true",
         "ts string", "ts string with offset", "ts millis", "score null", "decision null", "override and baseline"}


def test_the_scanner_is_chosen_for_the_usual_model(ref):  # noqa: F811 - the fixture
    eng = Engine(DetectorSettings(), default_reference=ref)
    eng.ingest_predictions([orjson.dumps(clean(i)) for i in range(50)])
    assert type(eng._arrow).__name__ == "NativeDecoder"  # noqa: SLF001
    b, rest = eng._arrow_decode([orjson.dumps(clean(i)) for i in range(50, 53)])  # noqa: SLF001 - no size floor
    assert b.n == 3 and rest == [] and b.ids == ["p50", "p51", "p52"]
    assert b.num.tolist() == [[60.0, 30.0], [61.0, 30.0], [62.0, 30.0]]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bytes_give_the_general_paths_results(ref, name):  # noqa: F811 - the fixture
    msgs = [orjson.dumps(clean(i)) for i in range(8)] + [HOSTILE[name]] + [orjson.dumps(clean(i)) for i in range(8, 12)]
    labels = [orjson.dumps({"prediction_id": f"p{i}", "ts": T + 9000, "label": i % 2}) for i in range(12)]
    b, eb = run(ref, msgs, "general", labels)
    a, ea = run(ref, msgs, "native", labels)
    assert type(a._arrow).__name__ == "NativeDecoder"  # noqa: SLF001
    same_results(a, ea, b, eb)
    a._arrow_skip = 0  # noqa: SLF001 - no back-off
    got, rest = a._arrow_decode([HOSTILE[name]])  # noqa: SLF001
    assert (rest == [] and got.n >= 1) if name in READS else (got is None and rest == [0])


def test_what_the_scanner_reads_it_reads_exactly(ref):  # noqa: F811 - the fixture
    """Numbers as orjson rounds them (random doubles, their shortest and long forms), text values
    and ids as Python reads them."""
    eng = Engine(DetectorSettings(), default_reference=ref)
    eng.ingest_predictions([orjson.dumps(clean(i)) for i in range(50)])
    rnd = random.Random(3)
    vals = [rnd.uniform(-1e6, 1e6) for _ in range(300)] + [rnd.lognormvariate(0, 30) for _ in range(300)]
    vals += [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 9007199254740993.0, 0.1, 1e22, 1e23, 123456789e-30]
    msgs = []
    for i, v in enumerate(vals):
        e = clean(i)
        e["features"]["amount"] = v
        raw = orjson.dumps(e)
        if i % 3 == 0:  # a long decimal form of the same double
            raw = raw.replace(orjson.dumps(v), f"{v:.25e}".encode())
        msgs.append(raw)
    b, rest = eng._arrow_decode(msgs)  # noqa: SLF001
    assert rest == [] and b.n == len(msgs)
    want = [orjson.loads(m)["features"]["amount"] for m in msgs]
    assert b.num[:, 0].tolist() == want  # bit for bit


_word = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_byte_damage_gives_the_general_paths_results(ref, data):  # noqa: F811 - the fixture
    """Clean messages with bytes cut, inserted or flipped (random hostile bytes the table does not name)."""
    draw = data.draw
    msgs = []
    for i in range(draw(st.integers(1, 12))):
        raw = bytearray(orjson.dumps(clean(i)) if draw(st.booleans()) else orjson.dumps([clean(i), clean(i + 50)]))
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(raw)))
            op = draw(st.sampled_from(["cut", "insert", "flip", "text"]))
            if op == "cut":
                del raw[at:at + draw(st.integers(1, 4))]
            elif op == "insert":
                raw[at:at] = draw(st.binary(min_size=1, max_size=3))
            elif op == "flip" and at < len(raw):
                raw[at] = draw(st.integers(0, 255))
            elif op == "text":
                raw[at:at] = draw(_word).encode()
        msgs.append(bytes(raw))
    labels = [orjson.dumps({"prediction_id": f"p{i}", "ts": T + 9000, "label": i % 2}) for i in range(12)]
    b, eb = run(ref, msgs, "general", labels)
    a, ea = run(ref, msgs, "native", labels)
    same_results(a, ea, b, eb)


def test_decoded_columns_match_the_arrow_reader(ref, monkeypatch):  # noqa: F811 - the fixture
    """The same clean batch, with every optional field: the same columns from the scanner and from Arrow's reader."""
    from detector.core.inputs import ingest

    evs = []
    for i in range(60):
        e = clean(i)
        if i % 4 == 0:
            e["override"] = "manual"
        if i % 5 == 0:
            e["baseline_decision"] = "review"
        if i % 7 == 0:
            e["slices"] = None
        e["ts"] = f"2026-11-25T14:{i % 60:02d}:{i % 7:02d}Z"  # Arrow's reader takes one form per batch
        evs.append(e)
    msgs = [orjson.dumps(e) for e in evs[:50]] + [orjson.dumps(evs[50:55]), orjson.dumps(evs[55:])]
    got = {}
    for kind in ("native", "arrow"):
        eng = Engine(DetectorSettings(), default_reference=ref)
        with monkeypatch.context() as mp:
            if kind == "arrow":
                mp.setattr(ingest, "NativeDecoder", None)
            mp.setattr(ingest, "ARROW_MIN_BYTES", 1)
            eng.ingest_predictions([orjson.dumps(clean(i)) for i in range(100, 140)])
            got[kind] = eng._arrow_decode(msgs)  # noqa: SLF001
    (a, ra), (b, rb) = got["native"], got["arrow"]
    assert ra == rb == []
    for k in ("ts", "num", "cat_codes", "score", "acted", "threshold", "latency_ms", "fallback", "origin", "item", "baseline"):
        assert np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True), k
    for k in ("ids", "unseen", "versions", "decisions", "override"):
        assert getattr(a, k) == getattr(b, k), k
    assert {d: list(v) for d, v in a.slices.items()} == {d: list(v) for d, v in b.slices.items()}
    assert {d: v.values for d, v in a.slices.items()} == {d: v.values for d, v in b.slices.items()}


def test_the_scanner_refuses_misuse_with_errors_not_crashes():
    from detector.core.inputs._scan import Scanner

    with pytest.raises(RuntimeError):
        Scanner.__new__(Scanner).scan([b"{}"], 64, 64)  # never initialised
    with pytest.raises(ValueError):
        Scanner(b"m", (b"a",), 1, 1, 0)  # names do not add up
    with pytest.raises(TypeError):
        Scanner(b"m", ("a",), 1, 0, 0)  # names are bytes
    sc = Scanner(b"m", (b"a",), 1, 0, 0)
    with pytest.raises(TypeError):
        sc.scan(7, 64, 64)  # not a sequence
    got = sc.scan((b'{"prediction_id":"x","model":"m","ts":1795615200,"features":{"a":1}}', None, "text", 7), 64, 64)
    assert got[0] == 1 and got[-1] == [1, 2, 3]  # a tuple of messages; what is not bytes goes back
