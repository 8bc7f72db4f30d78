"""CPU microseconds per event of each decoding path against bare ``orjson.loads``, same batches.

The benchmark's events (``skewwatch bench``: 20 numeric + 5 categorical features, ~627 bytes)
with epoch-second timestamps, then the same events with RFC 3339 timestamps. Per form: the
median over 5 passes of 40,000 events in batches of 5,000, garbage collector paused (as ingest
runs), of ``orjson.loads`` alone and of each columnar decoder the engine has (the C scanner,
Arrow's reader when pyarrow is installed) and the typed path (msgspec records + columns)::

    taskset -c 1 python tests/bench/measure_decode.py
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import orjson

from detector.bench.workload import make_events, reference
from detector.core.engine import Engine, gc_paused
from detector.core.inputs import ingest
from detector.core.settings import DetectorSettings

BATCH = 5000


def rfc3339(raw: bytes) -> bytes:
    d = orjson.loads(raw)
    d["ts"] = datetime.fromtimestamp(d["ts"], UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return bytes(memoryview(orjson.dumps(d)))


def columnar(ad, st):
    return lambda raws: ad.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)


def timed(fn, data: list[bytes]) -> float:
    with gc_paused():
        t = time.process_time()
        for i in range(0, len(data), BATCH):
            fn(data[i : i + BATCH])
        return time.process_time() - t


def main() -> None:
    ref = reference()
    epoch = make_events(40_000)
    forms = {"epoch seconds": epoch, "RFC 3339": [rfc3339(r) for r in epoch]}
    for form, data in forms.items():
        decoders = {}
        for name, native in (("C scanner", ingest.NativeDecoder), ("Arrow reader", None)):
            saved = ingest.NativeDecoder
            ingest.NativeDecoder = native
            try:
                eng = Engine(DetectorSettings(), default_reference=ref)
                eng.ingest_predictions(data[:BATCH])  # the model state and its decoders
            finally:
                ingest.NativeDecoder = saved
            ms = next(iter(eng.models.values()))
            if ms.arrow is not None and (name == "C scanner") == (type(ms.arrow).__name__ == "NativeDecoder"):
                decoders[name] = columnar(ms.arrow, eng.settings)
            td, dims = eng._typed, ms.layout.dims  # noqa: SLF001 - the engine's own decoders

            def typed(raws: list[bytes], td=td, ms=ms, dims=dims, st=eng.settings) -> None:
                t, _rest = td.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)
                ms.decoder.decode_typed("bench", t, td, dims)

            decoders["typed (msgspec)"] = typed
        runs: dict[str, list[float]] = {k: [] for k in ("orjson.loads", *decoders)}
        for _ in range(5):
            runs["orjson.loads"].append(timed(lambda raws: list(map(orjson.loads, raws)), data))
            for name, fn in decoders.items():
                runs[name].append(timed(fn, data))
        base = runs["orjson.loads"]
        line = ", ".join(f"{k} {1e6 * statistics.median(v) / len(data):.2f}"
                         + ("" if k == "orjson.loads" else
                            f" ({statistics.median(b / x for b, x in zip(base, v, strict=True)):.2f}x orjson's rate)")
                         for k, v in runs.items())
        print(f"{form}: us per event: {line}")


if __name__ == "__main__":
    main()
