"""Fuzz the C scanner (detector/core/inputs/_scan.c) built with AddressSanitizer and UBSan.

Not part of the test run (minutes, and it needs gcc with libasan): run it by hand after changing
the scanner, e.g.

    python tests/fuzz/scan_sanitized.py --seconds 300 --seed 1

It compiles the scanner with ``-fsanitize=address,undefined`` into a temporary directory, re-runs
itself with libasan preloaded and Python's allocator off (``PYTHONMALLOC=malloc``, so every
buffer is checked), and feeds batches of clean events and envelopes with random damage: bytes
flipped, cut or truncated, tokens inserted (quotes, escapes, brackets, huge numbers, invalid
UTF-8, surrogates, deep nesting), random id and text budgets, a non-bytes message now and then.
Any sanitizer report aborts the run. Every message the scanner accepts must be valid JSON to
orjson with the same number of events, and each of its columns (features, score, threshold,
latency, fallback, numeric timestamps, ids, text values) must equal what orjson reads from it.
Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import array
import os
import pathlib
import random
import subprocess
import sys
import sysconfig
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE = REPO / "detector" / "core" / "inputs" / "_scan.c"
T = 1795615200
NUMERIC, CATEGORICAL, SLICES = ["amount", "age"], ["country", "device"], ["region"]
TOKENS = [b'"', b"\\", b"\\u", b"\\ud800", b"{", b"}", b"[", b"]", b",", b":", b"1e999", b"-", b".", b"e", b"\xff",
          b"\xed\xa0\x80", b"\xc3\xa9", b"null", b"true", b'"features"', b'"ts"', b'"model"', b"\x00", b" ", b"\t",
          b"9" * 30, b"[" * 40, b'{"a":' * 40, b'"2026-11-25T14:00:00Z"', b"-0", b"0.1e-400"]


def build(out: pathlib.Path) -> pathlib.Path:
    so = out / ("_scan" + sysconfig.get_config_var("EXT_SUFFIX"))
    inc = sysconfig.get_paths()["include"]
    cmd = ["gcc", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer",
           "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{inc}", str(SOURCE), "-o", str(so)]
    subprocess.run(cmd, check=True)
    return so


def clean(rnd: random.Random, i: int) -> dict:
    e = {"prediction_id": f"p{i}", "model": "m", "model_version": rnd.choice(["v1", "v2", None]),
         "ts": rnd.choice([T + 7 * i, T + 0.25 * i, f"2026-11-25T14:{i % 60:02d}:00Z"]),
         "features": {"amount": rnd.choice([10.0 + i * 1.37, rnd.uniform(-1e9, 1e9), rnd.lognormvariate(0, 20), 5]),
                      "age": rnd.randint(-10**17, 10**17), "country": rnd.choice(["DE", "Zürich", "", "x" * 70]),
                      "device": "ios"},
         "score": rnd.choice([(i % 10) / 10, None]), "decision": rnd.choice(["approve", "review", None]),
         "threshold": 0.5, "slices": rnd.choice([{"region": "eu" if i % 2 else "us"}, None, {}, {"other": 1}]),
         "latency_ms": 3.0 + i % 7, "fallback": rnd.choice([False, True, None])}
    if rnd.random() < 0.1:
        e["extra"] = {"nested": [1, {"b": "\\n"}]}
    return e


def mutate(rnd: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rnd.randint(1, 4)):
        if not b:
            b += b"{"
        i = rnd.randrange(len(b) + 1)
        op = rnd.random()
        if op < 0.3:
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        elif op < 0.5:
            del b[i : i + rnd.randint(1, 20)]
        elif op < 0.8:
            b[i:i] = rnd.choice(TOKENS)
        elif op < 0.9:
            b = b[:i]
        else:
            b[i:i] = bytes(b[rnd.randrange(len(b)) :][: rnd.randint(1, 50)])
    return bytes(b)


def check(raw: bytes, rows: list[int], d: array.array, codes: array.array, ids: list, dicts: list, ts_text: dict,
          nd: int, ni: int) -> str | None:
    import orjson

    try:
        o = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"accepted invalid JSON ({exc})"
    evs = o if isinstance(o, list) else [o]
    if len(evs) != len(rows):
        return f"{len(rows)} rows for {len(evs)} events"
    nn = len(NUMERIC)
    for r, ev in zip(rows, evs, strict=True):
        f = ev["features"]
        want = [float(f[k]) for k in NUMERIC] + [ev.get(k) for k in ("score", "prediction", "threshold", "latency_ms")]
        fb = ev.get("fallback")
        want.append(None if fb is None else float(fb))
        got = [d[r * nd + j] for j in range(nn + 5)]
        for w, g in zip(want, got, strict=True):
            if (w is None and g == g) or (w is not None and g != float(w)):
                return f"numbers {want} != {got}"
        if isinstance(ev["ts"], str):
            if ts_text.get(r) != ev["ts"]:
                return f"ts {ev['ts']!r} != {ts_text.get(r)!r}"
        elif d[r * nd + nn + 5] != float(ev["ts"]):
            return f"ts {ev['ts']} != {d[r * nd + nn + 5]}"
        if ids[r] != ev["prediction_id"]:
            return f"id {ev['prediction_id']!r} != {ids[r]!r}"
        sl = ev.get("slices") or {}
        texts = [f[k] for k in CATEGORICAL] + [ev.get(k) for k in ("model_version", "decision", "baseline_decision",
                                                                    "override")] + [sl.get(k) for k in SLICES]
        for j, w in enumerate(texts):
            c = codes[r * ni + j]
            g = None if c < 0 else dicts[j][c]
            if g != w:
                return f"text {j}: {w!r} != {g!r}"
    return None


def fuzz(seconds: float, seed: int) -> int:
    import orjson
    from _scan import N_FLOATS, N_STRS, Scanner  # the sanitized build, on sys.path

    names = tuple(k.encode() for k in (*NUMERIC, *CATEGORICAL, *SLICES))
    sc = Scanner(b"m", names, len(NUMERIC), len(CATEGORICAL), len(SLICES))
    nd, ni = len(NUMERIC) + N_FLOATS, len(CATEGORICAL) + N_STRS + len(SLICES)
    rnd = random.Random(seed)
    t0 = time.monotonic()
    n = accepted = bad = 0
    while time.monotonic() - t0 < seconds:
        raws: list = []
        for _ in range(rnd.randint(1, 20)):
            if rnd.random() < 0.2:
                raws.append(orjson.dumps([clean(rnd, rnd.randrange(1000)) for _ in range(rnd.randint(1, 5))]))
            else:
                raws.append(orjson.dumps(clean(rnd, rnd.randrange(1000))))
            if rnd.random() < 0.7:
                raws[-1] = mutate(rnd, raws[-1])
        if rnd.random() < 0.05:
            raws.append(rnd.choice(["text", None, bytearray(b"{}"), 7]))
        max_id, max_value = rnd.choice([0, 8, 64, 256]), rnd.choice([0, 4, 64, 1024])
        rows, dbl, ints, msg, item, ids, dicts, ts_rows, ts_text, rest = sc.scan(raws, max_id, max_value)
        n += len(raws)
        ms = array.array("q", bytes(msg))
        d, codes = array.array("d", bytes(dbl)), array.array("i", bytes(ints))
        tsx = dict(zip(array.array("q", bytes(ts_rows)), ts_text, strict=True))
        by_msg: dict[int, list[int]] = {}
        for r, m in enumerate(ms):
            by_msg.setdefault(m, []).append(r)
        if set(by_msg) & set(rest) or len(set(by_msg) | set(rest)) != len(raws):
            print("messages both read and sent back, or neither", file=sys.stderr)
            bad += 1
        accepted += len(by_msg)
        for m, rws in by_msg.items():
            why = check(raws[m], rws, d, codes, ids, dicts, tsx, nd, ni)
            if why:
                bad += 1
                print(f"MISMATCH {why}: {raws[m][:300]!r}", file=sys.stderr)
    print(f"messages {n:,}, read by the scanner {accepted:,}, mismatches {bad}, {time.monotonic() - t0:.0f} s")
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if os.environ.get("_SCAN_FUZZ_SO"):  # the re-run: sanitizers loaded
        sys.path.insert(0, os.environ["_SCAN_FUZZ_SO"])
        return fuzz(args.seconds, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        so = build(pathlib.Path(tmp))
        asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], check=True, capture_output=True, text=True).stdout.strip()
        ubsan = subprocess.run(["gcc", "-print-file-name=libubsan.so"], check=True, capture_output=True, text=True).stdout.strip()
        env = dict(os.environ, _SCAN_FUZZ_SO=str(so.parent), LD_PRELOAD=f"{asan}:{ubsan}", PYTHONMALLOC="malloc",
                   ASAN_OPTIONS="detect_leaks=0:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        return subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
