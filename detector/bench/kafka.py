"""``skewwatch bench --kafka``: throughput through a Kafka broker, JSON out.

On the embedded broker (Tansu, memory only; started and stopped here) it produces ``--events``
prediction events of the core benchmark's shape twice: as single-event messages, and as batch
envelopes (a JSON array of 100 events per message) - on a fresh broker for every run, so no run
inherits the consumer groups, topics and records of the runs before it. Then, each run in this
process, with a fresh consumer group per measurement so every one reads its topic from the start,
each baseline measured next to the worker it is compared with, the pair's order swapped every
run (a drift of the machine's load falls on both alike):

single-event messages
    ``faust``         a bare Faust agent that only counts (``value_serializer="raw"``, Faust's
                      ``stream.take_events(batch, within=0.2)``, the worker's consumer settings):
                      the transport ceiling, and the ``ratio``'s denominator
    ``faust_take_batches``  the same agent taking the worker's batches
                      (:func:`detector.kafka.take.take_batches`: also cut at ``FOLD_BYTES`` and at
                      the partitions' end): what our batching alone does to Faust (information
                      only; ``ratio_vs_take_batches``)
    ``skewwatch``     the real sidecar :class:`~detector.kafka.worker.Worker` (the same kind of
                      agent handing each batch to ``Sidecar.on_predictions``; window partials go to
                      the aggregator through Kafka, as in production)
    ``ratio``         skewwatch / faust (target >= 0.85)
envelopes
    ``aiokafka``      a raw ``AIOKafkaConsumer.getmany`` loop that only counts: the ceiling
    ``faust``, ``faust_take_batches``  as above, in events/s
    ``skewwatch``     the real Worker again, in events/s (target >= 100,000 events/s)
    ``ratio``         skewwatch / aiokafka
and, to show where the time goes, ``core`` (the same Sidecar fed from memory, no Kafka), the
CPU time per message / per event of every variant (``time.process_time`` of this process, which
excludes the broker) and the broker's CPU seconds over each variant's run (``broker_cpu_s_median``,
from ``/proc``: the broker is a child process, pinned to the same core by ``taskset``). Rates count from the moment the consumer holds its partitions (Faust: the
group join done and, for the worker, its units restored - ``restore_s`` in the JSON, ~0.5 s on
this broker, reading the empty state topic; aiokafka: the first fetch) to the last message
processed, so the group join (~4 s on this broker) and the restore are not in them; what the
worker folded before the count starts (its first fold, queued behind the restore) is not counted
either, and what was fetched during the restore is. Where each counted interval went, from
``/proc`` (``idle_s_runs``, ``idle_share_median``; ``runqueue_s_runs``, ``runqueue_share_median``):
idle is the wall time the core ran neither this process nor the broker - the consumer waited (a
fetch held by the broker, a timer) or another process had the core; run queue is how long this
process's threads were runnable but waited for the core. Every figure is the median of
``--runs`` runs, with every run listed. The machine's load average is reported: on a shared
machine wall-clock rates are noisy, CPU per message is the stabler number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

__all__ = ["run", "measure_all"]

ENVELOPE = 100  # events per envelope message
PARTITIONS = 4
POLL = 0.005  # seconds between progress samples
_DATADIR: list[tempfile.TemporaryDirectory[str]] = []
_BROKER_PID: list[int | None] = [None]  # the embedded broker of the current run (its CPU is sampled by _watch)


def _datadir() -> str:
    """Where the Faust apps of this process put their (empty) data directories: not the caller's directory."""
    if not _DATADIR:
        _DATADIR.append(tempfile.TemporaryDirectory(prefix="skewwatch-bench-"))  # removed at exit
    return _DATADIR[0].name


def _progress(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


async def _produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes]) -> float:
    """Send all values (key-partitioned); returns messages per second."""
    from aiokafka import AIOKafkaProducer

    from detector.kafka.clients import plaintext

    prod = AIOKafkaProducer(**plaintext(bootstrap).aiokafka(linger_ms=5, max_batch_size=1024 * 1024,
                                                            max_request_size=16 * 1024 * 1024))
    await prod.start()
    try:
        t0 = time.perf_counter()
        for i in range(0, len(values), 5000):
            futs = [await prod.send(topic, v, key=k) for v, k in zip(values[i : i + 5000], keys[i : i + 5000], strict=True)]
            await asyncio.gather(*futs)
        return len(values) / (time.perf_counter() - t0)
    finally:
        await prod.stop()


def _runqueue_seconds() -> float | None:
    """Seconds the threads of this process (the event loop's, Faust's consumer thread) have waited in a run
    queue so far - runnable, the core taken by something else - from ``/proc`` (None elsewhere)."""
    try:
        total = 0
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return None


async def _watch(count: Callable[[], int], total: int, timeout: float, started: Callable[[], bool]) -> dict[str, float]:
    """Sample ``count()`` until it reaches ``total``, timing from when ``started()`` (partitions assigned).

    Where the wall time went (Linux, one core under ``taskset``): this process's CPU, the broker's
    (``broker_cpu_counted_s``), and ``idle_s``, the rest - the core ran neither: the consumer waited
    (for a fetch, a timer) or another process had the core; ``runqueue_s``, how long this process's
    threads were runnable but waited for the core (the broker, each other, anyone else's work)."""
    t0 = c0 = cpu0 = None
    s0 = b0 = None
    deadline = time.monotonic() + timeout
    while True:
        now = time.perf_counter()
        if t0 is None and started():
            t0, c0, cpu0, s0 = now, count(), time.process_time(), _runqueue_seconds()
            b0 = _cpu_seconds(_BROKER_PID[0])
        c = count()
        if c >= total and t0 is not None:
            now = time.perf_counter()
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {c:,} of {total:,} consumed after {timeout:.0f}s")
        await asyncio.sleep(POLL)
    assert t0 is not None and c0 is not None and cpu0 is not None
    s1, b1, cpu = _runqueue_seconds(), _cpu_seconds(_BROKER_PID[0]), time.process_time() - cpu0
    dt = max(now - t0, 1e-9)
    n = max(total - c0, 1)
    out = {"rate": n / dt, "seconds": dt, "cpu_us": 1e6 * cpu / n, "counted": float(n)}
    if s0 is not None and s1 is not None:
        out["runqueue_s"] = s1 - s0
    if b0 is not None and b1 is not None:
        out["broker_cpu_counted_s"] = b1 - b0  # the broker's CPU while the rate was counted
        out["idle_s"] = max(0.0, dt - cpu - (b1 - b0))
    return out


def _assigned(app: Any) -> bool:
    try:
        return bool(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - consumer not created yet
        return False


def _faust_settings(batch: int) -> dict[str, Any]:
    """The worker's consumer-side Faust settings (see ``detector.kafka.worker.Worker._build``)."""
    from detector.kafka.worker import FETCH_BYTES

    return dict(value_serializer="raw", key_serializer="raw", store="memory://", autodiscover=False,
                broker_commit_every=10**9, broker_commit_interval=10**9, topic_disable_leader=True,
                stream_buffer_maxsize=max(4096, 2 * batch), broker_max_poll_records=max(500, batch),
                consumer_max_fetch_size=FETCH_BYTES,
                consumer_auto_offset_reset="earliest", table_standby_replicas=0, broker_session_timeout=6.0,
                broker_heartbeat_interval=1.0, broker_rebalance_timeout=10.0)


async def faust_count(bootstrap: str, topic: str, total: int, batch: int, within: float, timeout: float,
                      ours: bool = False) -> dict[str, float]:
    """A Faust agent that only counts the messages of ``topic``: with Faust's own ``take_events``
    (the bare agent a user would write), or with ``ours`` the worker's ``take_batches``."""
    import faust

    from detector.kafka.clients import plaintext
    from detector.kafka.take import take_batches
    from detector.kafka.worker import FOLD_BYTES

    app = faust.App(f"bench-faust-{uuid.uuid4().hex[:8]}", broker=plaintext(bootstrap).faust_brokers(), web_enabled=False,
                    datadir=_datadir(), **_faust_settings(batch))
    src = app.topic(topic, value_serializer="raw", key_serializer="raw")
    seen = [0]

    @app.agent(src)
    async def count(stream: Any) -> None:
        batches = take_batches(stream, batch, FOLD_BYTES, within) if ours else stream.take_events(batch, within=within)
        async for events in batches:
            seen[0] += len(events)

    await app.start()
    try:
        return await _watch(lambda: seen[0], total, timeout, lambda: _assigned(app))
    finally:
        await app.stop()


async def aiokafka_count(bootstrap: str, topic: str, total: int, timeout: float, max_records: int = 10_000) -> dict[str, float]:
    """A raw ``getmany`` loop over every partition of ``topic`` that only counts messages."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from detector.kafka.clients import plaintext

    c = AIOKafkaConsumer(**plaintext(bootstrap).aiokafka(enable_auto_commit=False, group_id=None,
                                                         auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
                                                         fetch_max_bytes=64 * 1024 * 1024))
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        seen = 0
        t0, cpu0 = time.perf_counter(), time.process_time()  # from the first fetch, as for Faust
        deadline = time.monotonic() + timeout
        while seen < total:
            got = await c.getmany(timeout_ms=200, max_records=max_records)
            seen += sum(len(v) for v in got.values())
            if time.monotonic() > deadline:
                raise TimeoutError(f"aiokafka: only {seen:,} of {total:,} after {timeout:.0f}s")
        dt = max(time.perf_counter() - t0, 1e-9)
        return {"rate": total / dt, "seconds": dt, "cpu_us": 1e6 * (time.process_time() - cpu0) / total,
                "counted": float(total)}
    finally:
        await c.stop()


def _config(bootstrap: str, topic: str, window: str) -> Any:
    from detector.config import Config
    from detector.kafka.broker import free_port

    gid = f"bench-sw-{uuid.uuid4().hex[:8]}"
    return Config.model_validate({
        "kafka": {"brokers": [bootstrap], "group_id": gid, "max_message_bytes": 16 * 1024 * 1024,
                  "topics": {"predictions": topic, "labels": f"{gid}-labels", "features": f"{gid}-features",
                             "alerts": f"{gid}-alerts", "dlq": f"{gid}-dlq", "partitions": PARTITIONS}},
        "web": {"host": "127.0.0.1", "port": free_port()},
        "detector": {"window": window},
        "checkpoint_interval": 3600.0, "shutdown_grace": 5.0,
    })


async def worker_rate(bootstrap: str, topic: str, total_events: int, ref: Any, batch: int, window: str,
                      timeout: float) -> dict[str, float]:
    """The real sidecar Worker (Faust app) reading ``topic``; rate in events/s."""
    from detector.kafka.broker import acreate_topics
    from detector.kafka.worker import Worker

    cfg = _config(bootstrap, topic, window)
    t = cfg.kafka.topics
    await acreate_topics(bootstrap, {t.labels: PARTITIONS, t.features: PARTITIONS, t.alerts: 1, t.dlq: 1,
                                     f"{cfg.kafka.group_id}-partials": 1})
    w = Worker(cfg, {}, ref, worker_id="bench", batch=batch)
    w.app.conf.datadir = _datadir()
    side = w.sidecar
    got: list[float] = []  # when the consumer first held its partitions (before the units were restored)

    def started() -> bool:
        if not got and _assigned(w.app):
            got.append(time.monotonic())
        return w.assigned_at is not None and w.restored.is_set()

    await w.app.start()
    try:
        r = await _watch(lambda: sum(side.counts().values()), total_events, timeout, started)
        assert w.assigned_at is not None
        r["restore_s"] = max(0.0, w.assigned_at - got[0]) if got else 0.0
        c = side.counts()
        if c["predictions"] != total_events:
            raise RuntimeError(f"the worker folded {c['predictions']:,} of {total_events:,} events ({c})")
        r["windows_closed"] = float(side.evaluator.counters.windows_closed)
        return r
    finally:
        await w.app.stop()


def core_rate(messages: list[bytes], ref: Any, window: str, per_message: int) -> dict[str, float]:
    """The worker's own path fed from memory (no Kafka): one unit per partition, each folding what
    the worker would gather before a fold (``FOLD_BYTES``), checkpoints, the aggregator."""

    from detector.config import Config
    from detector.kafka.local import LocalGroup
    from detector.kafka.worker import FOLD_BYTES

    g = LocalGroup(Config.model_validate({"detector": {"window": window}}), {}, ref, PARTITIONS)
    parts = [messages[k::PARTITIONS] for k in range(PARTITIONS)]
    step = max(1, FOLD_BYTES // max(1, round(sum(map(len, messages)) / max(len(messages), 1))))
    gc.collect()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for n_batch, i in enumerate(range(0, max(map(len, parts)), step)):
        for k, vals in enumerate(parts):
            if vals[i : i + step]:
                g.feed("predictions", k, vals[i : i + step])
        if n_batch % 2 == 1:  # the worker checkpoints (and hands steps to the aggregator) periodically
            g.checkpoint()
    g.checkpoint()
    dt = time.perf_counter() - t0
    n = len(messages) * per_message
    got = sum(s.counts()["predictions"] for s in g.sidecars.values())
    if got != n:
        raise RuntimeError(f"core folded {got:,} of {n:,}")
    return {"rate": n / dt, "seconds": dt, "cpu_us": 1e6 * (time.process_time() - cpu0) / n, "counted": float(n)}


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; None elsewhere or when it is gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Feed:
    """One run's broker, fresh: an embedded broker started for the run, its two topics produced
    (``skewwatch bench --kafka`` measures every run on a new broker, so no run inherits the consumer
    groups, topics and records of the runs before it)."""

    def __init__(self, singles: list[bytes], keys: list[bytes], envelopes: list[bytes], env_keys: list[bytes]) -> None:
        self.singles, self.keys, self.envelopes, self.env_keys = singles, keys, envelopes, env_keys
        self.broker: Any = None
        self.bootstrap = self.single_topic = self.envelope_topic = ""
        self.produced: list[tuple[float, float]] = []  # per run: single msgs/s, envelopes/s

    async def start(self) -> None:
        from detector.kafka.broker import EmbeddedBroker, acreate_topics

        self.broker = EmbeddedBroker().start()
        _BROKER_PID[0] = self.broker.pid
        self.bootstrap = self.broker.bootstrap
        self.single_topic, self.envelope_topic = f"bench-single-{uuid.uuid4().hex[:6]}", f"bench-envelope-{uuid.uuid4().hex[:6]}"
        await acreate_topics(self.bootstrap, {self.single_topic: PARTITIONS, self.envelope_topic: PARTITIONS})
        p1 = await _produce(self.bootstrap, self.single_topic, self.singles, self.keys)
        p2 = await _produce(self.bootstrap, self.envelope_topic, self.envelopes, self.env_keys)
        self.produced.append((p1, p2))

    def stop(self) -> None:
        _BROKER_PID[0] = None
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        self.broker = None


def _order(r: int) -> list[str]:
    """Run ``r``'s variants: each baseline next to the worker it is compared with, the pair's order
    swapped every run (so a drift of the machine's load, or of the broker's state within the run,
    falls on both sides alike)."""
    single = ["single.faust", "single.skewwatch"]
    env = ["envelope.aiokafka", "envelope.skewwatch"]
    if r % 2:
        single.reverse()
        env.reverse()
    return [*single, "single.faust_take_batches", "single.aiokafka", *env, "envelope.faust", "envelope.faust_take_batches"]


async def measure_all(feed: Feed, n_single: int, n_env: int, ref: Any, runs: int, batch: int, window: str, quiet: bool,
                      single_values: list[bytes], env_values: list[bytes]) -> dict[str, list[dict[str, float]]]:
    """Every variant ``runs`` times; each run on a fresh broker (``feed``), the variants compared
    run next to each other, in alternating order; with the broker's pid known (Linux), its CPU
    seconds over each variant's whole run (start, join and stop included)."""
    timeout = 600.0
    variants: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {
        "single.faust": lambda: faust_count(feed.bootstrap, feed.single_topic, n_single, batch, 0.2, timeout),
        "single.faust_take_batches": lambda: faust_count(feed.bootstrap, feed.single_topic, n_single, batch, 0.2, timeout,
                                                         ours=True),
        "single.skewwatch": lambda: worker_rate(feed.bootstrap, feed.single_topic, n_single, ref, batch, window, timeout),
        "single.aiokafka": lambda: aiokafka_count(feed.bootstrap, feed.single_topic, n_single, timeout),
        "envelope.aiokafka": lambda: aiokafka_count(feed.bootstrap, feed.envelope_topic, n_env, timeout),
        "envelope.faust": lambda: faust_count(feed.bootstrap, feed.envelope_topic, n_env, batch, 0.2, timeout),
        "envelope.faust_take_batches": lambda: faust_count(feed.bootstrap, feed.envelope_topic, n_env, batch, 0.2, timeout,
                                                           ours=True),
        "envelope.skewwatch": lambda: worker_rate(feed.bootstrap, feed.envelope_topic, n_env * ENVELOPE, ref, batch, window,
                                                  timeout),
    }
    out: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    out["single.core"], out["envelope.core"] = [], []
    for r in range(runs):
        await feed.start()
        try:
            for name in _order(r):
                gc.collect()
                b0 = _cpu_seconds(_BROKER_PID[0])
                res = await variants[name]()
                b1 = _cpu_seconds(_BROKER_PID[0])
                if b0 is not None and b1 is not None:
                    res["broker_cpu_s"] = b1 - b0
                if name.startswith("envelope.") and not name.endswith("skewwatch"):
                    res = {**res, "rate": res["rate"] * ENVELOPE, "cpu_us": res["cpu_us"] / ENVELOPE}  # per event
                res["load"] = os.getloadavg()[0]
                out[name].append(res)
                _progress(quiet, f"  run {r + 1}/{runs} {name:28s} {res['rate']:>12,.0f} /s  {res['cpu_us']:8.2f} CPU us each"
                                 + (f"  idle {res['idle_s']:.2f} s, run queue {res.get('runqueue_s', 0):.2f} s of "
                                    f"{res['seconds']:.2f}" if "idle_s" in res else ""))
        finally:
            feed.stop()
        for name, values, per in (("single.core", single_values, 1), ("envelope.core", env_values, ENVELOPE)):
            res = core_rate(values, ref, window, per)
            out[name].append(res)
            _progress(quiet, f"  run {r + 1}/{runs} {name:28s} {res['rate']:>12,.0f} /s  {res['cpu_us']:8.2f} CPU us each")
    return out


def _summary(rs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"median_per_s": round(statistics.median(r["rate"] for r in rs)),
                           "runs_per_s": [round(r["rate"]) for r in rs],
                           "cpu_us_median": round(statistics.median(r["cpu_us"] for r in rs), 2)}
    if all("broker_cpu_s" in r for r in rs):  # the broker's CPU over the variant's whole run (it shares the core)
        out["broker_cpu_s_median"] = round(statistics.median(r["broker_cpu_s"] for r in rs), 3)
    for k in ("idle_s", "runqueue_s"):  # where the counted wall time went (see _watch), per run
        if all(k in r for r in rs):
            out[k + "_runs"] = [round(r[k], 3) for r in rs]
            out[k.removesuffix("_s") + "_share_median"] = round(statistics.median(r[k] / r["seconds"] for r in rs), 3)
    if all("restore_s" in r for r in rs):  # the worker: seconds from holding its partitions to their units restored
        out["restore_s_median"] = round(statistics.median(r["restore_s"] for r in rs), 3)
    return out


def run(args: argparse.Namespace) -> int:
    from detector.bench.workload import make_events, reference, stages
    from detector.kafka.broker import BrokerError

    n = (args.events // ENVELOPE) * ENVELOPE
    if n < 1000 or args.runs < 1:
        print("skewwatch bench --kafka: error: --events must be >= 1000 and --runs >= 1", file=sys.stderr)
        return 2
    quiet = bool(getattr(args, "quiet", False))
    batch = int(getattr(args, "batch", 2000) or 2000)
    window = getattr(args, "window", "5m") or "5m"
    for name in ("aiokafka", "faust", "mode", "skewwatch.worker", "skewwatch.sidecar", "detector.kafka"):
        logging.getLogger(name).setLevel(logging.ERROR)  # reconnect chatter would drown the progress
    ref = reference()
    events = make_events(n)
    keys = [orjson.loads(e)["prediction_id"].encode() for e in events]
    envelopes = [b"[" + b",".join(events[i : i + ENVELOPE]) + b"]" for i in range(0, n, ENVELOPE)]
    env_keys = [keys[i] for i in range(0, n, ENVELOPE)]
    feed = Feed(events, keys, envelopes, env_keys)
    _progress(quiet, f"{args.runs} runs, each on a fresh embedded broker holding {n:,} single-event messages "
                     f"({sum(map(len, events)) / n:.0f} bytes) and {len(envelopes):,} envelopes of {ENVELOPE}...")
    # warm up: the first model state imports river and builds its detectors (~3 s, once per process)
    core_rate(events[:ENVELOPE], ref, window, 1)
    load0 = os.getloadavg()[0]
    try:
        res = asyncio.run(measure_all(feed, n, len(envelopes), ref, args.runs, batch, window, quiet, events, envelopes))
    except BrokerError as exc:
        print(f"skewwatch bench --kafka: error: {exc}", file=sys.stderr)
        return 1
    finally:
        feed.stop()
    load1 = os.getloadavg()[0]
    p1 = statistics.median(p for p, _ in feed.produced)
    p2 = statistics.median(p for _, p in feed.produced)
    s = {k: _summary(v) for k, v in res.items()}

    def ratio(a: str, b: str) -> dict[str, Any]:
        """Wall-clock rate ratio a/b, and the CPU-bound one (b's CPU per item / a's)."""
        per_run = [x["rate"] / y["rate"] for x, y in zip(res[a], res[b], strict=True)]
        cpu = [y["cpu_us"] / x["cpu_us"] for x, y in zip(res[a], res[b], strict=True)]
        return {"median_of_medians": round(s[a]["median_per_s"] / s[b]["median_per_s"], 3),
                "median_per_run": round(statistics.median(per_run), 3), "runs": [round(x, 3) for x in per_run],
                "cpu_ratio_median": round(statistics.median(cpu), 3), "cpu_ratio_runs": [round(x, 3) for x in cpu]}

    result = {
        "benchmark": "kafka: embedded Tansu broker -> consumer -> skewwatch sidecar",
        "events": n, "envelope_events": ENVELOPE, "partitions": PARTITIONS, "runs": args.runs,
        "take_events_batch": batch, "window": window,
        "bytes_per_event": round(sum(map(len, events)) / n, 1),
        "produce": {"single_msgs_per_s": round(p1), "envelope_events_per_s": round(p2 * ENVELOPE)},
        "single": {
            "faust_msgs_per_s": s["single.faust"], "skewwatch_msgs_per_s": s["single.skewwatch"],
            "ratio": ratio("single.skewwatch", "single.faust"), "target_ratio": 0.85,
            "faust_take_batches_msgs_per_s": s["single.faust_take_batches"],
            "ratio_vs_take_batches": ratio("single.skewwatch", "single.faust_take_batches"),
            "aiokafka_msgs_per_s": s["single.aiokafka"], "core_events_per_s": s["single.core"],
            "core_stages_us_per_event": {k: round(v, 2) for k, v in stages(events, ref, batch)[0].items() if k.endswith("_us")},
        },
        "envelope": {
            "aiokafka_events_per_s": s["envelope.aiokafka"], "faust_events_per_s": s["envelope.faust"],
            "faust_take_batches_events_per_s": s["envelope.faust_take_batches"],
            "skewwatch_events_per_s": s["envelope.skewwatch"],
            "ratio": ratio("envelope.skewwatch", "envelope.aiokafka"), "target_events_per_s": 100_000,
            "core_events_per_s": s["envelope.core"],
        },
        "cpu_note": "cpu_us_median: CPU microseconds of this process per message (single) or per event "
                    "(envelope), broker excluded; skewwatch - faust (single) is the sidecar's own cost; "
                    "cpu_ratio: the rate ratio when one core is the limit (stabler than wall-clock on a busy machine)",
        "load_average": [round(load0, 2), round(load1, 2)], "cpus": os.cpu_count(),
        "load_runs": {"single.faust": [round(r["load"], 2) for r in res["single.faust"]],
                      "single.skewwatch": [round(r["load"], 2) for r in res["single.skewwatch"]]},
        "fresh_broker_per_run": True,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": sys.version.split()[0],
    }
    with contextlib.suppress(ImportError):
        import faust

        result["faust"] = faust.__version__
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if getattr(args, "out", None):
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0
