"""State that follows partitions, over the wire: real ``skewwatch run`` workers on the embedded broker.

* two workers rebalance (one joins, then one leaves): partitions and the aggregator move, their
  state follows, and every event counts once across the group;
* the state topic is compacted (simulated: the topic is rebuilt with the last record of every key)
  and a replacement worker with a new name restores from it;
* a forged ``skewwatch-watermark: 1e300`` on the partials topic closes nothing early;
* a pickle where a checkpoint belongs is refused, never run, and the worker carries on.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.stream.test_worker import (  # noqa: F401 - fixtures
    Scenario,
    WorkerProc,
    free_port,
    label_join_expected,
    produce,
    read_alerts,
    read_topic,
    reference_path,
    run,
    scenario,
    topic_names,
    unique,
    wait_until,
    workers,
    write_config,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]
SPLIT = "2026-11-03T12:00:00Z"  # the first part of the traffic; the unit change starts at 21:00


def split_records(scenario: Scenario, topics: dict[str, str]) -> tuple[list[Any], list[Any], int]:  # noqa: F811
    from detector.core.inputs.timeparse import parse_timestamps

    cut = float(parse_timestamps([SPLIT])[0])
    first, rest = scenario.records(topics, hi=cut), scenario.records(topics, lo=cut)
    return first, rest, sum(1 for t, _, _ in first if t == topics["predictions"])


def group_counts(ws: list[WorkerProc]) -> dict[str, int]:
    c: Counter[str] = Counter()
    for w in ws:
        st = w.status()
        c.update(predictions=st["counters"]["predictions"], labels=st["counters"]["labels"],
                 features=st["counters"]["feature_events"], matched=st["label_join"]["matched"],
                 late=st["counters"]["late"], invalid=sum(st["counters"]["invalid"].values()))
    return dict(c)


def check_alerts_once(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    alerts = read_alerts(bootstrap, topic)
    firing = Counter(a["alert_id"] for a in alerts if a["state"] == "firing")
    assert firing and max(firing.values()) == 1, f"alerts fired more than once: {firing}"
    assert any(a["kind"] == "unit_shift" and a["feature"] == "amount" for a in alerts)
    return alerts


def test_two_workers_rebalance_and_state_follows_the_partitions(kafka_bootstrap: str, reference_path: Path,  # noqa: F811
                                                                tmp_path: Path, scenario: Scenario,  # noqa: F811
                                                                workers: Callable[..., WorkerProc]) -> None:  # noqa: F811
    topics, group = topic_names("rebal"), unique("rebal")
    want_preds, want_labels, want_matched = label_join_expected(scenario)
    first, rest, n_first = split_records(scenario, topics)
    cfgs = [write_config(tmp_path / f"w{i}.yaml", kafka_bootstrap, reference_path, group, topics, free_port(),
                         checkpoint_interval=3.0, detector={"allowed_lateness": "10s"}) for i in range(2)]
    a = workers(cfgs[0], "pod-a-1x2y3", json.loads(cfgs[0].read_text())["web"]["port"])
    produce(kafka_bootstrap, first, timeout=120)
    print(f"\npod-a ready {a.wait_ready():.1f}s after launch")
    wait_until("pod-a to fold the first part", lambda: a.status()["counters"]["predictions"] == n_first, timeout=150,
               interval=0.5, on_timeout=a.log_tail)
    held_alone = sorted(a.status()["units"])

    b = workers(cfgs[1], "pod-b-4v5w6", json.loads(cfgs[1].read_text())["web"]["port"])  # joins: partitions move
    wait_until("the partitions to be split between the two", lambda: a.status()["units"] and b.status()["units"]
               and len(a.status()["units"]) + len(b.status()["units"]) == 4, timeout=120, interval=1.0,
               on_timeout=lambda: a.log_tail(15) + "\n" + b.log_tail(15))
    split = {w.worker_id: sorted(w.status()["units"]) for w in (a, b)}
    print(f"after the join: {split} (pod-a held {held_alone} alone)")
    counts = group_counts([a, b])
    assert counts["predictions"] == n_first  # the moved units brought their history with them

    produce(kafka_bootstrap, rest, timeout=120)
    wait_until("the pair to fold everything", lambda: group_counts([a, b])["predictions"] == want_preds, timeout=150,
               interval=0.5, on_timeout=lambda: a.log_tail(15) + "\n" + b.log_tail(15))
    a.signal(signal.SIGTERM)  # pod-a leaves: pod-b takes every partition and, if it was pod-a's, the aggregator
    assert a.wait(30) == 0

    def all_on_b() -> dict[str, int] | None:
        st = b.status()
        if len(st["units"]) != 4 or st["aggregator"] is None:
            return None
        c = group_counts([b])
        return c if c["predictions"] == want_preds and c["matched"] >= want_matched else None

    counts = wait_until("pod-b to hold everything, counted once", all_on_b, timeout=180, interval=1.0,
                        on_timeout=lambda: b.log_tail(20))
    print(f"pod-b alone: {counts}")
    assert counts == {"predictions": want_preds, "labels": want_labels, "features": scenario.counts["features"],
                      "matched": want_matched, "late": 0, "invalid": 0}
    assert b.status()["restore_errors"] == 0
    check_alerts_once(kafka_bootstrap, topics["alerts"])


async def _rebuild_compacted(bootstrap: str, topic: str) -> tuple[int, int]:
    """Replace ``topic`` by what log compaction would keep: the last record of each key, tombstones dropped."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await c.start()
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    end = (await c.end_offsets([tp]))[tp]
    await c.seek_to_beginning(tp)
    log: list[tuple[bytes, bytes | None]] = []
    while len(log) < end:
        got = await c.getmany(tp, timeout_ms=1000)
        log.extend((m.key, m.value) for m in got.get(tp, []))
    await c.stop()
    last: dict[bytes, tuple[int, bytes | None]] = {}
    for i, (k, v) in enumerate(log):
        last[k] = (i, v)
    kept = sorted((i, k, v) for k, (i, v) in last.items() if v is not None)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        for _ in range(50):
            try:
                await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
                break
            except Exception:  # noqa: BLE001 - deletion still in progress
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await prod.start()
    try:
        await asyncio.gather(*[await prod.send(topic, v, key=k, partition=0) for _, k, v in kept])
    finally:
        await prod.stop()
    return len(log), len(kept)


def test_a_compacted_state_topic_restores_a_replacement_with_a_new_name(kafka_bootstrap: str,
                                                                        reference_path: Path,  # noqa: F811
                                                                        tmp_path: Path, scenario: Scenario,  # noqa: F811
                                                                        workers: Callable[..., WorkerProc]) -> None:  # noqa: F811
    topics, group, port = topic_names("compact"), unique("compact"), free_port()
    want_preds, want_labels, want_matched = label_join_expected(scenario)
    first, rest, n_first = split_records(scenario, topics)
    cfg = write_config(tmp_path / "cfg.yaml", kafka_bootstrap, reference_path, group, topics, port,
                       checkpoint_interval=2.0, detector={"allowed_lateness": "10s"})
    w1 = workers(cfg, "pod-old-aaaaa", port)
    produce(kafka_bootstrap, first, timeout=120)
    print(f"\nworker ready {w1.wait_ready():.1f}s after launch")
    wait_until("the first part", lambda: w1.status()["counters"]["predictions"] == n_first, timeout=150, interval=0.5,
               on_timeout=w1.log_tail)
    ckpts = w1.status()["checkpoints"]
    wait_until("several checkpoints", lambda: w1.status()["checkpoints"] >= ckpts + 3, timeout=120)
    w1.signal(signal.SIGTERM)
    assert w1.wait(30) == 0
    total, kept = run(_rebuild_compacted(kafka_bootstrap, f"{group}-state"), timeout=120)
    print(f"state topic compacted: {total} records -> {kept}")
    assert kept < total

    w2 = workers(cfg, "pod-new-bbbbb", port)
    print(f"replacement ready {w2.wait_ready(150):.1f}s after launch")
    restored = wait_until("the restore", lambda: (st := w2.status())["aggregator"] and len(st["units"]) == 4 and st,
                          timeout=120)
    assert restored["restore_errors"] == 0 and restored["restored_counts"]["predictions"] == n_first
    produce(kafka_bootstrap, rest, timeout=120)

    def done() -> dict[str, int] | None:
        c = group_counts([w2])
        return c if c["predictions"] == want_preds and c["matched"] >= want_matched else None

    counts = wait_until("everything once", done, timeout=180, interval=1.0, on_timeout=w2.log_tail)
    assert counts == {"predictions": want_preds, "labels": want_labels, "features": scenario.counts["features"],
                      "matched": want_matched, "late": 0, "invalid": 0}
    check_alerts_once(kafka_bootstrap, topics["alerts"])


def test_a_forged_watermark_header_closes_nothing_early(kafka_bootstrap: str, reference_path: Path,  # noqa: F811
                                                       tmp_path: Path, scenario: Scenario,  # noqa: F811
                                                       workers: Callable[..., WorkerProc]) -> None:  # noqa: F811
    topics, group = topic_names("forge"), unique("forge")
    want_preds, _, _ = label_join_expected(scenario)
    first, rest, n_first = split_records(scenario, topics)
    ws = []
    for i in range(2):  # two workers: the aggregator's worker takes some units' claims from headers
        port = free_port()
        cfg = write_config(tmp_path / f"w{i}.yaml", kafka_bootstrap, reference_path, group, topics, port,
                           checkpoint_interval=2.0, detector={"allowed_lateness": "10s"})
        ws.append(workers(cfg, f"forge-{i}", port))
    for w in ws:
        print(f"\n{w.worker_id} ready {w.wait_ready():.1f}s after launch", end="")
    produce(kafka_bootstrap, first, timeout=120)
    wait_until("the first part", lambda: group_counts(ws)["predictions"] == n_first, timeout=150, interval=0.5)
    agg = wait_until("a steady aggregator", lambda: next((st["aggregator"] for st in (w.status() for w in ws)
                                                          if st["aggregator"] and st["aggregator"]["boundary"]), None),
                     timeout=90, interval=1.0)
    # whoever can write the partials topic can also read it: forge claims with the units' real lives
    lives = {}
    for r in read_topic(kafka_bootstrap, f"{group}-partials"):
        h = {k: v for k, v in (r.headers or [])}
        if h.get("skewwatch-kind") == b"claim":
            lives[h["skewwatch-unit"]] = (h.get("skewwatch-life", b""), h["skewwatch-seq"])
    assert len(lives) == 4, lives
    forged = [(f"{group}-partials", unit, b"") for unit in lives]
    from aiokafka import AIOKafkaProducer

    async def send_forged() -> None:
        prod = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await prod.start()
        try:
            for topic, unit, value in forged:
                life, seq = lives[unit]
                await (await prod.send(topic, value, key=unit, partition=0, headers=[
                    ("skewwatch-kind", b"claim"), ("skewwatch-unit", unit), ("skewwatch-seq", seq),
                    ("skewwatch-life", life), ("skewwatch-watermark", b"1e300")]))
        finally:
            await prod.stop()

    run(send_forged())
    time.sleep(3.0)  # the aggregator reads them before the rest of the traffic comes
    produce(kafka_bootstrap, rest, timeout=120)
    wait_until("the rest", lambda: group_counts(ws)["predictions"] == want_preds, timeout=150, interval=0.5)

    def aggregated() -> dict[str, Any] | None:
        a = next((st["aggregator"] for st in (w.status() for w in ws) if st["aggregator"]), None)
        return a if a and a["boundary"] and a["alerts_fired"] >= 2 else None

    a = wait_until("the unit change to be evaluated", aggregated, timeout=150, interval=1.0)
    print(f"aggregator after the forged claims: {json.dumps(a)} (before: boundary {agg['boundary']})")
    assert a["late"] == 0, a  # no window was closed before its events had been merged
    assert a["capped_claims"] >= 1  # the claims of units the aggregator does not own were capped ...
    alerts = check_alerts_once(kafka_bootstrap, topics["alerts"])  # ... and the unit change (hour 40) still fired
    assert any(a_["kind"] == "unit_shift" and a_["window"]["start"] == "2026-11-03T21:00:00.000Z" for a_ in alerts)


def test_a_pickle_on_the_state_topic_is_refused_and_never_run(kafka_bootstrap: str, reference_path: Path,  # noqa: F811
                                                             tmp_path: Path, scenario: Scenario,  # noqa: F811
                                                             workers: Callable[..., WorkerProc]) -> None:  # noqa: F811
    topics, group, port = topic_names("poison"), unique("poison"), free_port()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps(Exploit())
    state = f"{group}-state"
    from detector.kafka.broker import create_topics

    create_topics(kafka_bootstrap, {state: 1}, configs={"cleanup.policy": "compact"})
    produce(kafka_bootstrap, [(state, f"{group}/p0".encode(), evil), (state, f"{group}/aggregator".encode(), evil),
                              (state, f"{group}/p1/0123/0".encode(), evil), (state, f"{group}/p1".encode(), b"\x00" * 40)])
    cfg = write_config(tmp_path / "cfg.yaml", kafka_bootstrap, reference_path, group, topics, port, checkpoint_interval=2.0)
    w = workers(cfg, "poison-w", port)
    preds = [(t, k, v) for t, k, v in scenario.records(topics) if t == topics["predictions"]][:500]
    produce(kafka_bootstrap, preds)
    print(f"\nworker ready {w.wait_ready():.1f}s after launch")
    st = wait_until("the predictions", lambda: (s := w.status())["counters"]["predictions"] == 500 and s, timeout=90,
                    interval=0.5, on_timeout=w.log_tail)
    assert st["restore_errors"] >= 3, st["restore_errors"]  # p0, p1 and the aggregator started from empty state
    assert w.alive and not marker.exists()
    log = w.log_path.read_text(errors="replace")
    assert "checkpoint of p0 refused" in log and "no SWST header" in log
