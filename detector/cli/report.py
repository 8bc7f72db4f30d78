"""``skewwatch report``: one self-contained HTML diagnosis of a model (rendered by :mod:`detector.web.report`).

Input is either an engine snapshot (``skewwatch replay --snapshot-out``) or logged traffic that is
replayed here with the same core (``--predictions`` [``--labels``] [``--features``]). Optionally
``--alerts`` adds an alert stream: the timeline in snapshot mode, and in replay mode the *live*
alerts the replay is compared with (the seed article's replay test). Exit codes: 0 written, 2 usage
or input error, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import orjson

from detector.cli.inputs import add_traffic_arguments
from detector.web.report import OverrideTally, ReportError, render_report

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--snapshot", help="engine state written by `skewwatch replay --snapshot-out`")
    add_traffic_arguments(p, src, " (with --predictions)")
    p.add_argument("--alerts", help="alert stream, JSONL: the timeline (with --snapshot) or the live alerts the replay "
                                    "is compared with (with --predictions)")
    p.add_argument("--model", action="append", help="only this model (repeatable); default: every model seen")
    p.add_argument("--out", required=True, help="write the HTML report here")
    p.add_argument("--status-out", help="also write the status page (HTML) here")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")


def _read_alerts(path: str) -> list[dict[str, Any]]:
    from detector.replay import UsageError, open_lines

    try:
        f = open_lines(path)
    except UsageError as exc:
        raise ReportError(f"--alerts: {exc}") from exc
    out: list[dict[str, Any]] = []
    bad: list[int] = []
    with f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                a = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad.append(i)
                continue
            if isinstance(a, dict) and a.get("kind") and a.get("state") in ("firing", "resolved"):
                out.append(a)
            else:
                bad.append(i)
    if bad and not out:
        raise ReportError(f"--alerts {path}: no skewwatch alert in the file (line {bad[0]} is not an alert object with "
                          "`kind` and `state`); pass the JSONL written by `skewwatch replay --alerts-out`")
    if bad:
        print(f"skewwatch report: warning: {path}: skipped {len(bad)} line(s) that are not alerts (first: line {bad[0]})",
              file=sys.stderr)
    return out


def _snapshot_settings(path: str) -> tuple[bytes, dict[str, Any] | None]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ReportError(f"--snapshot: cannot read {p}: {exc.strerror or exc}") from exc
    from detector.core.state.codec import StateError, unpack
    from detector.core.state.snapshot import ENGINE_VERSION

    try:  # plain data only: a snapshot file is never executed, whoever wrote it
        state = unpack(data, "engine", {ENGINE_VERSION})
    except StateError as exc:
        raise ReportError(f"--snapshot {p} is not a skewwatch engine snapshot ({exc}); write one with "
                          "`skewwatch replay --snapshot-out STATE.bin`") from exc
    if not isinstance(state, dict) or "models" not in state:
        raise ReportError(f"--snapshot {p} is not a skewwatch engine snapshot; write one with "
                          "`skewwatch replay --snapshot-out STATE.bin`")
    settings = state.get("settings")
    return data, settings if isinstance(settings, dict) else None


def run(args: argparse.Namespace) -> int:
    from detector.config import ConfigError, load_config
    from detector.core.engine import EngineError
    from detector.core.settings import DetectorSettings, parse_duration
    from detector.replay import Replay, UsageError, build_engine, open_lines

    quiet = getattr(args, "quiet", False)
    try:
        if args.snapshot and (args.labels or args.features or args.window):
            raise ReportError("--labels, --features and --window go with --predictions (a snapshot already holds them)")
        out = Path(args.out)
        if out.is_dir():
            raise ReportError(f"--out {out} is a directory; pass a file name such as report.html")
        if not out.parent.exists():
            raise ReportError(f"--out: folder {out.parent} does not exist")
        if args.status_out and not Path(args.status_out).parent.exists():
            raise ReportError(f"--status-out: folder {Path(args.status_out).parent} does not exist")
        overrides_cfg: dict[str, Any] = {}
        if args.window:
            try:
                overrides_cfg = {"detector": {"window": parse_duration(args.window)}}
            except ValueError as exc:
                raise ReportError(f"--window: {exc}") from exc
        cfg = load_config(args.config, overrides=overrides_cfg)
        snap = None
        if args.snapshot:
            snap, settings = _snapshot_settings(args.snapshot)
            if settings is not None:
                cfg = cfg.model_copy(update={"detector": DetectorSettings.model_validate(settings)})
        eng = build_engine(cfg, args.reference, Path(args.config).parent if args.config else None)
        if snap is not None:
            try:
                eng.restore(snap)
            except EngineError as exc:
                raise ReportError(f"--snapshot: {exc}") from exc
        for path in (args.predictions, args.labels, args.features):
            if path:
                open_lines(path).close()
        live = _read_alerts(args.alerts) if args.alerts else None
    except (ReportError, ConfigError, UsageError, ValueError) as exc:
        print(f"skewwatch report: error: {exc}", file=sys.stderr)
        return 2
    try:
        tally: OverrideTally | None = None
        timeline_alerts: list[dict[str, Any]] | None
        inputs = {"reference": args.reference or "(from --config)"}
        if args.predictions:
            tally = OverrideTally(cfg.detector.no_action_decisions)
            tally.tap(eng)
            stream = io.BytesIO()
            rp = Replay(eng, stream, progress=not quiet and sys.stderr.isatty())
            rp.run(args.predictions, args.labels, args.features)
            if rp.lines == 0:
                print(f"skewwatch report: error: {args.predictions} holds no events (empty file?)", file=sys.stderr)
                return 2
            timeline_alerts = [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
            inputs["predictions (replayed)"] = args.predictions
            for k in ("labels", "features"):
                if getattr(args, k):
                    inputs[k] = getattr(args, k)
            if live is not None:
                inputs["live alerts (compared)"] = args.alerts
        else:
            timeline_alerts, live = live, None
            inputs["snapshot"] = args.snapshot
            if args.alerts:
                inputs["alerts"] = args.alerts
        if args.config:
            inputs["config"] = args.config
        models = args.model or None
        if models:
            unknown = [m for m in models if m not in eng.models]
            if unknown:
                print(f"skewwatch report: error: --model {', '.join(unknown)}: not in the input (models: "
                      f"{', '.join(sorted(eng.models)) or 'none'})", file=sys.stderr)
                return 2
        if not eng.models:
            print("skewwatch report: error: no prediction could be attributed to a model with a reference "
                  "(check --reference / the config's models)", file=sys.stderr)
            return 2
        html = render_report(eng, alerts=timeline_alerts, overrides=tally, live_alerts=live, inputs=inputs, models=models)
        Path(args.out).write_text(html, encoding="utf-8")
        if args.status_out:
            from detector.web.status import render_status

            Path(args.status_out).write_text(render_status(eng, recent=(timeline_alerts or [])[-50:]), encoding="utf-8")
    except (UsageError, ReportError) as exc:
        print(f"skewwatch report: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"skewwatch report: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a runtime failure, reported as such
        print(f"skewwatch report: runtime failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not quiet:
        n_open = sum(len(eng.alerts.firing(m)) for m in (models or eng.models))
        print(f"report written to {args.out} ({len(html) / 1024:.0f} kB; {n_open} open incident(s))")
        if args.status_out:
            print(f"status page written to {args.status_out}")
    return 0
