"""Size and speed of the state format on a realistic checkpoint: ``python -m tests.core.bench_state``.

An engine with outcome monitoring folds 14 simulated hours at ~5,000 predictions/hour (~54,000
predictions held for their labels, open windows and cohorts), then its state is encoded with

* ``skewwatch``: :mod:`detector.core.state.codec` (tagged binary, numpy arrays as raw bytes, zlib 1);
* ``msgpack``: msgpack with arrays as ``{dtype, shape, bytes}`` maps, same zlib level (only when
  msgpack is installed; it is not a dependency);

and decoded again. Medians of several runs, in the same process. Prints JSON.
"""

from __future__ import annotations

import json
import statistics
import time
import zlib
from typing import Any

import numpy as np


def realistic_engine(hours: float = 14.0, rate: float = 5000.0) -> Any:
    import orjson

    from detector.cli.demo import demo_reference
    from detector.core.engine import Engine
    from detector.core.outcomes.monitor import attach_outcomes
    from detector.sim import get_scenario, simulate

    eng = Engine(None, {}, demo_reference())
    attach_outcomes(eng)
    batch: dict[str, list[bytes]] = {"predictions": [], "labels": [], "features": []}
    for _, kind, ev in simulate(get_scenario("unit_change", rate_per_hour=rate, hours=hours)):
        batch[kind].append(orjson.dumps(ev))
        if len(batch[kind]) >= 2000:
            getattr(eng, f"ingest_{kind}")(batch[kind])
            batch[kind] = []
            eng.advance()
    for kind, b in batch.items():
        if b:
            getattr(eng, f"ingest_{kind}")(b)
    return eng


def _mp_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return {"__nd__": True, "dtype": o.dtype.str, "shape": list(o.shape), "bytes": o.tobytes()}
    raise TypeError(type(o).__name__)


def _mp_hook(d: dict[str, Any]) -> Any:
    if d.get("__nd__"):
        return np.frombuffer(d["bytes"], dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
    return d


def main(runs: int = 7) -> dict[str, Any]:
    from detector.core.state.codec import decode, encode
    from detector.core.state.snapshot import engine_state

    eng = realistic_engine()
    st = engine_state(eng)
    out: dict[str, Any] = {"pending_predictions": len(eng.outcomes.join.store), "open_windows": sum(
        len(m.windows) for m in eng.models.values())}
    codecs = {"skewwatch": (lambda v: encode(v, 1), decode)}
    try:
        import msgpack

        codecs["msgpack"] = (
            lambda v: zlib.compress(msgpack.packb(v, default=_mp_default, use_bin_type=True), 1),
            lambda b: msgpack.unpackb(zlib.decompress(b), object_hook=_mp_hook, raw=False, strict_map_key=False),
        )
    except ImportError:
        pass
    for name, (enc, dec) in codecs.items():
        te, td = [], []
        blob = b""
        for _ in range(runs):
            t0 = time.perf_counter()
            blob = enc(st)
            t1 = time.perf_counter()
            dec(blob)
            t2 = time.perf_counter()
            te.append(t1 - t0)
            td.append(t2 - t1)
        out[name] = {"bytes": len(blob), "encode_ms": round(1000 * statistics.median(te), 1),
                     "decode_ms": round(1000 * statistics.median(td), 1)}
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
