"""``skewwatch simulate --from-file``: any file of events into the broker, over the wire."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson


async def _consume(bootstrap: str, topics: list[str], n: int) -> list[tuple[str, bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await c.start()
    out = []
    try:
        while len(out) < n:
            batch = await c.getmany(timeout_ms=2000)
            if not batch and out:
                break
            out += [(m.topic, m.key, m.value) for msgs in batch.values() for m in msgs]
    finally:
        await c.stop()
    return out


def test_from_file_sends_each_event_to_its_topic_keyed_by_prediction_id(kafka_bootstrap, tmp_path):
    events = [{"topic": "fromfile-p", "prediction_id": "a1", "model": "m", "ts": 1795564800, "features": {"x": 1},
               "score": 0.2},
              {"topic": "fromfile-l", "prediction_id": "a1", "ts": 1795564900, "label": 1},
              {"prediction_id": "a2", "model": "m", "ts": 1795564801, "features": {"x": 2}, "score": 0.4}]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    r = subprocess.run([sys.executable, "-m", "detector", "simulate", "--bootstrap", kafka_bootstrap, "--from-file",
                        str(path), "--topic", "fromfile-p", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = asyncio.run(_consume(kafka_bootstrap, ["fromfile-p", "fromfile-l"], 3))
    by = {(t, k): orjson.loads(v) for t, k, v in got}
    assert set(by) == {("fromfile-p", b"a1"), ("fromfile-l", b"a1"), ("fromfile-p", b"a2")}
    assert "topic" not in by[("fromfile-l", b"a1")] and by[("fromfile-l", b"a1")]["label"] == 1
