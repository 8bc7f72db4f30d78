"""``skewwatch report``: the HTML diagnosis of a faulty simulated model, its CLI, and a real browser.

One scenario is built once per process (:func:`faulty`): the simulated fraud model serves
``amount`` in cents from hour 24 and renames the country ``DE`` to ``GER`` from hour 27, with
labels, offline features and human overrides; the engine (with the outcome monitor) ingests it
in-process. The report must diagnose "fix data" with the parity gate failing, chart the drifted
features against training, draw a reliability diagram and attribute the loss to slices.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.cli import main as cli_main
from detector.cli import report as report_cli
from detector.config import Config, ModelConfig
from detector.core.engine import Engine
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.sim import Fault, get_scenario, simulate, training_table
from detector.web.report import OverrideTally, render_report

CHROMIUM = "/usr/bin/chromium"
NO_CHROMIUM = "chromium not installed: apt-get update && apt-get install -y chromium"
SLICES = ("region", "channel", "tier")
HOURS = 34.0
RATE = 300.0


# --------------------------------------------------------------------------- the faulty scenario (built once)
@lru_cache(maxsize=1)
def reference() -> Any:
    cols = training_table(6000, seed=3)
    return build_reference(cols, label_column="label", score_column="score", slice_columns=SLICES,
                           time_column="ts", model="fraud")


@lru_cache(maxsize=1)
def messages() -> tuple[tuple[str, bytes], ...]:
    sc = get_scenario("unit_change", rate_per_hour=RATE, hours=HOURS)
    sc = sc.with_(faults=(Fault("unit_change", 24, None), Fault("renamed_category", 27, None)))
    return tuple((topic, orjson.dumps(ev)) for _, topic, ev in simulate(sc))


def config() -> Config:
    return Config(models={"fraud": ModelConfig(reference="unused.json", cost_fp=1.0, cost_fn=20.0, review_capacity=60)})


@lru_cache(maxsize=1)
def faulty() -> tuple[Engine, list[dict[str, Any]], OverrideTally]:
    """(engine, every alert event, override tally) after the whole scenario, ingested in batches."""
    eng = Engine(DetectorSettings(), default_reference=reference())
    attach_outcomes(eng, config())
    tally = OverrideTally(eng.settings.no_action_decisions)
    tally.tap(eng)
    ingest = {"predictions": eng.ingest_predictions, "labels": eng.ingest_labels, "features": eng.ingest_features}
    alerts: list[dict[str, Any]] = []
    buf: dict[str, list[bytes]] = {k: [] for k in ingest}
    for topic, raw in messages():
        buf[topic].append(raw)
        if len(buf["predictions"]) >= 1000:
            for t, msgs in buf.items():
                if msgs:
                    ingest[t](msgs)
            buf = {k: [] for k in ingest}
            alerts += [a.to_dict() for a in eng.advance()]
    for t, msgs in buf.items():
        if msgs:
            ingest[t](msgs)
    alerts += [a.to_dict() for a in eng.advance()]
    return eng, alerts, tally


# --------------------------------------------------------------------------- a tiny DOM from html.parser
class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text_parts: list[str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Any:
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}> in the page"
        return found[0]

    def text(self) -> str:
        return " ".join(" ".join(n.text_parts) for n in self.iter() if n.tag not in ("style", "script")).strip()


_VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "source", "wbr"}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        n = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(n)
        if tag not in _VOID:
            self.cur = n

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.cur.text_parts.append(data.strip())


def parse(html: str) -> Node:
    p = _Parser()
    p.feed(html)
    p.close()
    return p.root


def assert_self_contained(html: str) -> None:
    """No scripts, no stylesheets or images from anywhere, no URLs but the SVG namespace."""
    low = html.lower()
    assert "<script" not in low and "<link" not in low and "<img" not in low and "@import" not in low
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>)]*", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


# --------------------------------------------------------------------------- PNG check (zlib only)
def png_rows(path: Path, max_rows: int) -> tuple[int, int, list[bytes]]:
    """(width, height, first ``max_rows`` unfiltered rows) of an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w, h, ct = 8, b"", 0, 0, 6
    while pos < len(data):
        (ln,) = struct.unpack(">I", data[pos : pos + 4])
        typ, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + ln]
        pos += 12 + ln
        if typ == b"IHDR":
            w, h, depth, ct = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ct in (2, 6), (depth, ct)
        elif typ == b"IDAT":
            idat += body
    bpp = 3 if ct == 2 else 4
    raw = zlib.decompressobj().decompress(idat, (1 + w * bpp) * max_rows)
    stride, prev, rows = w * bpp, bytearray(w * bpp), []
    for y in range(min(h, max_rows, len(raw) // (stride + 1))):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line[i] for i in range(stride) if (i % bpp) < 3))  # drop alpha
        prev = line
    return w, h, rows


def check_screenshot(png: Path, min_kb: int = 40) -> None:
    assert png.exists(), "chromium wrote no screenshot"
    assert png.stat().st_size > min_kb * 1024, f"screenshot only {png.stat().st_size} bytes: blank page?"
    w, h, rows = png_rows(png, 360)
    assert (w, h) == (1280, 2000)
    colours = {r[i : i + 3] for r in rows[::3] for i in range(0, len(r), 3 * 7)}
    assert len(colours) > 40, f"only {len(colours)} distinct colours in the top of the page"
    # not one flat colour: the most common colour covers less than 97% of the sampled pixels
    flat = [r[i : i + 3] for r in rows[::3] for i in range(0, len(r), 3 * 7)]
    top = max(set(flat), key=flat.count)
    assert flat.count(top) / len(flat) < 0.97


def chromium(args: list[str], tmp: Path, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'chromium-profile'}"]
    return subprocess.run(base + args, capture_output=True, timeout=timeout, check=False)


def screenshot_and_dom(html_path: Path, png: Path) -> str:
    """Screenshot at 1280x2000 and the rendered DOM (``--dump-dom``) of a local HTML file."""
    url = html_path.resolve().as_uri()
    r = chromium([f"--screenshot={png}", "--window-size=1280,2000", url], png.parent)
    assert png.exists(), r.stderr.decode(errors="replace")[-2000:]
    d = chromium(["--dump-dom", url], png.parent)
    assert d.returncode == 0, d.stderr.decode(errors="replace")[-2000:]
    keep = os.environ.get("SKEWWATCH_TEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    return d.stdout.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- the report's content
@pytest.fixture(scope="module")
def report_html() -> str:
    eng, alerts, tally = faulty()
    return render_report(eng, alerts=alerts, overrides=tally, inputs={"scenario": "unit_change + renamed_category"})


def test_scenario_fires_the_expected_incidents():
    _eng, alerts, _ = faulty()
    firing = {(a["kind"], a["feature"]) for a in alerts if a["state"] == "firing"}
    assert {("unit_shift", "amount"), ("feature_parity", "amount"), ("unseen_categories", "country")} <= firing


def test_verdict_is_fix_data_with_supporting_alerts(report_html):
    dom = parse(report_html)
    v = dom.find("section", data_section="verdict")
    assert v.attrs["data-verdict"] == "fix_data" and "fix_data" in v.classes
    text = v.text()
    assert "Fix data" in text and "pipeline skew" in text
    lever = dom.find("div", cls="lever", data_lever="fix_data").text()
    assert "unit_shift" in lever and "feature_parity" in lever and "cents vs dollars" in lever


def test_five_gates_with_status_and_evidence(report_html):
    dom = parse(report_html)
    gates = {g.attrs["data-gate"]: g for g in dom.find("section", data_section="gates").find_all("div", cls="gate")}
    assert list(gates) == ["measurement", "replay", "parity", "decisioning", "adoption"]
    for key, g in gates.items():
        assert g.attrs["data-status"] in ("pass", "fail", "unknown"), key
        assert len(g.find_all("li")) >= 1, f"gate {key} has no evidence"
    assert gates["parity"].attrs["data-status"] == "fail"
    parity = gates["parity"].text()
    assert "unit_shift" in parity and "offline" in parity and "mismatch" in parity
    assert gates["measurement"].attrs["data-status"] == "pass" and "match rate" in gates["measurement"].text()
    # the simulator sends human overrides on ~15% of reviews: adoption is measured, not unknown
    adoption = gates["adoption"]
    assert adoption.attrs["data-status"] == "pass" and "approved_manually" in adoption.text()
    assert gates["decisioning"].attrs["data-status"] in ("pass", "fail")
    assert "calibration error" in gates["decisioning"].text()


def test_timeline_draws_every_incident(report_html):
    eng, alerts, _ = faulty()
    dom = parse(report_html)
    sec = dom.find("section", data_section="timeline")
    svg = sec.find("svg", cls="chart-timeline")
    bars = svg.find_all("rect", cls="incident")
    n_incidents = len({a["alert_id"] for a in alerts if a["state"] == "firing"})
    assert len(bars) == n_incidents >= 4
    assert all(float(b.attrs["width"]) >= 3 for b in bars)
    rows = sec.find("table", cls="incidents").find_all("tr")
    assert len(rows) == n_incidents + 1
    assert "renamed category" in sec.text()


def test_drifted_feature_charts_compare_training_and_current(report_html):
    dom = parse(report_html)
    sec = dom.find("section", data_section="features")
    charts = {(c.attrs["data-feature"], c.attrs["data-slice"]): c for c in sec.find_all("div", cls="chart")}
    assert ("amount", "") in charts and ("country", "") in charts
    amount = charts[("amount", "")]
    svg = amount.find("svg", cls="chart-bars")
    ref = [float(r.attrs["height"]) for r in svg.find_all("rect", cls="ref")]
    cur = [float(r.attrs["height"]) for r in svg.find_all("rect", cls="cur")]
    assert len(ref) == len(cur) >= 10 and sum(ref) > 0 and sum(cur) > 0
    # cents: the current mass sits above the training maximum, where training had none
    labels = [t.text() for t in svg.find_all("text")]
    assert any(lab.startswith(">") for lab in labels)
    assert cur[-1] > 10 * max(ref[-1], 0.1)
    assert "outside the training range" in amount.text() and "scale_ratio" in amount.text()
    country = charts[("country", "")].text()
    assert "GER" in country and "unseen" in country


def test_reliability_diagram_and_outcome_metrics(report_html):
    dom = parse(report_html)
    sec = dom.find("section", data_section="outcomes")
    svg = sec.find("svg", cls="chart-reliability")
    assert len(svg.find_all("circle", cls="current")) >= 3
    assert len(svg.find_all("circle", cls="baseline")) >= 3
    assert svg.find_all("line", cls="diagonal")
    text = sec.text()
    for k in ("ROC AUC", "calibration error", "Brier", "precision", "cost-minimising threshold"):
        assert k in text


def test_top_slices_by_contribution_to_loss(report_html):
    dom = parse(report_html)
    sec = dom.find("section", data_section="slices")
    rows = sec.find("table", cls="slices").find_all("tr")[1:]
    assert len(rows) >= 3
    assert all(re.match(r"^(region|channel|tier)=", r.find("td").text()) for r in rows)
    assert sec.find("svg", cls="chart-share").find_all("rect")
    text = sec.text()
    assert "Brier" in text and "excess cost" in text  # costs are configured: excess cost next to the Brier loss
    shares = [float(r.find_all("td")[5].text().rstrip("%")) for r in rows]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0


def test_pipeline_health_and_self_contained(report_html):
    dom = parse(report_html)
    assert "predictions" in dom.find("section", data_section="pipeline").text()
    assert_self_contained(report_html)
    assert report_html.lstrip().lower().startswith("<!doctype html>")


def test_gates_are_unknown_without_labels_overrides_or_windows():
    ref = reference()
    eng = Engine(DetectorSettings(), default_reference=ref)
    evs = [raw for topic, raw in messages()[:3000] if topic == "predictions"][:300]
    eng.ingest_predictions(evs)  # an hour of traffic, no window closed yet, no labels
    dom = parse(render_report(eng))
    gates = {g.attrs["data-gate"]: g.attrs["data-status"] for g in dom.find_all("div", cls="gate")}
    assert gates["measurement"] == "unknown" and gates["adoption"] == "unknown" and gates["parity"] == "unknown"
    assert "send `override`" in dom.find("div", data_gate="adoption").text()
    assert dom.find("section", data_section="verdict").attrs["data-verdict"] == "none"


# --------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("report-inputs")
    eng, alerts, _ = faulty()
    out = {"reference": d / "reference.json", "snapshot": d / "state.bin", "alerts": d / "alerts.jsonl"}
    reference().save(out["reference"])
    out["snapshot"].write_bytes(eng.snapshot())
    out["alerts"].write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    for topic in ("predictions", "labels", "features"):
        out[topic] = d / f"{topic}.jsonl"
        out[topic].write_bytes(b"".join(raw + b"\n" for t, raw in messages() if t == topic))
    return out


def test_cli_report_from_snapshot_and_alert_stream(files, tmp_path, capsys):
    out = tmp_path / "report.html"
    status = tmp_path / "status.html"
    rc = cli_main(["report", "--reference", str(files["reference"]), "--snapshot", str(files["snapshot"]),
                   "--alerts", str(files["alerts"]), "--out", str(out), "--status-out", str(status)])
    assert rc == 0, capsys.readouterr().err
    html = out.read_text()
    dom = parse(html)
    assert dom.find("section", data_section="verdict").attrs["data-verdict"] == "fix_data"
    assert dom.find("svg", cls="chart-timeline").find_all("rect", cls="incident")
    assert dom.find("section", data_section="features").find_all("svg", cls="chart-bars")
    assert dom.find_all("svg", cls="chart-reliability")
    assert dom.find("div", data_gate="adoption").attrs["data-status"] == "unknown"  # a snapshot has no overrides
    assert_self_contained(html)
    assert "skewwatch status" in status.read_text()
    assert "report written to" in capsys.readouterr().out


def test_cli_report_replays_logged_traffic_and_compares_with_live_alerts(files, tmp_path, capsys):
    eng, alerts, _ = faulty()
    dropped = next(a for a in alerts if a["state"] == "firing" and a["kind"] == "unit_shift")
    live = tmp_path / "live.jsonl"
    live.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts if a["alert_id"] != dropped["alert_id"]))
    out = tmp_path / "report.html"
    rc = cli_main(["report", "--reference", str(files["reference"]), "--predictions", str(files["predictions"]),
                   "--labels", str(files["labels"]), "--features", str(files["features"]), "--window", "1h",
                   "--alerts", str(live), "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    dom = parse(out.read_text())
    assert dom.find("section", data_section="verdict").attrs["data-verdict"] == "fix_data"
    replay = dom.find("div", data_gate="replay")
    assert replay.attrs["data-status"] == "fail"  # the live stream lacks an incident the replay found
    assert "only in the replay" in replay.text() and "only replay: unit_shift amount" in replay.text()
    adoption = dom.find("div", data_gate="adoption")
    assert adoption.attrs["data-status"] == "pass" and "overrides" in adoption.text()
    assert "predictions (replayed)" in dom.find("section", data_section="inputs").text()


def _err(capsys) -> str:
    return capsys.readouterr().err


def test_cli_usage_errors_exit_2_with_a_clear_message(files, tmp_path, capsys):
    ref, snap, pred = str(files["reference"]), str(files["snapshot"]), str(files["predictions"])
    out = str(tmp_path / "r.html")
    bad_snap = tmp_path / "bad.bin"
    bad_snap.write_bytes(b"not a snapshot")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b'{"hello": 1}\nnot json\n')
    bad_ref = tmp_path / "bad_ref.json"
    bad_ref.write_bytes(b'{"format": "something else"}')
    cases = [
        (["--reference", str(tmp_path / "nope.json"), "--snapshot", snap, "--out", out], "cannot read reference"),
        (["--reference", str(bad_ref), "--snapshot", snap, "--out", out], "not a skewwatch reference"),
        (["--reference", ref, "--snapshot", str(bad_snap), "--out", out], "not a skewwatch engine snapshot"),
        (["--reference", ref, "--snapshot", str(tmp_path / "missing.bin"), "--out", out], "cannot read"),
        (["--reference", ref, "--predictions", str(tmp_path / "missing.jsonl"), "--out", out], "no such file"),
        (["--reference", ref, "--predictions", str(empty), "--out", out], "holds no events"),
        (["--reference", ref, "--snapshot", snap, "--labels", pred, "--out", out], "go with --predictions"),
        (["--reference", ref, "--snapshot", snap, "--alerts", str(garbage), "--out", out], "no skewwatch alert"),
        (["--reference", ref, "--snapshot", snap, "--out", str(tmp_path / "no" / "dir" / "r.html")], "does not exist"),
        (["--reference", ref, "--snapshot", snap, "--out", str(tmp_path)], "is a directory"),
        (["--snapshot", snap, "--out", out], "no reference"),
        (["--reference", ref, "--predictions", pred, "--window", "soon", "--out", out], "window"),
        (["--reference", ref, "--snapshot", snap, "--model", "churn", "--out", out], "not in the input"),
    ]
    for argv, msg in cases:
        rc = cli_main(["report", *argv])
        err = _err(capsys)
        assert rc == 2, (argv, err)
        assert msg in err and err.startswith("skewwatch report: error:"), (argv, err)
        assert not Path(out).exists()


def test_a_pickle_given_as_snapshot_is_refused_and_never_run(files, tmp_path, capsys):
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for name, blob in (("state.pkl", pickle.dumps(Exploit())), ("state.pkl.z", zlib.compress(pickle.dumps(Exploit())))):
        snap = tmp_path / name
        snap.write_bytes(blob)
        out = tmp_path / "r.html"
        rc = cli_main(["report", "--reference", str(files["reference"]), "--snapshot", str(snap), "--out", str(out)])
        err = _err(capsys)
        assert rc == 2 and "not a skewwatch engine snapshot" in err and "no SWST header" in err, err
        assert not marker.exists() and not out.exists()


def test_cli_argument_errors_exit_2(files, tmp_path, capsys):
    ref, snap, pred = str(files["reference"]), str(files["snapshot"]), str(files["predictions"])
    for argv in (["--reference", ref, "--out", "x.html"],  # neither --snapshot nor --predictions
                 ["--reference", ref, "--snapshot", snap, "--predictions", pred, "--out", "x.html"],  # both
                 ["--reference", ref, "--snapshot", snap]):  # no --out
        with pytest.raises(SystemExit) as exc:
            cli_main(["report", *argv])
        assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_cli_runtime_failure_exits_1(files, tmp_path, capsys, monkeypatch):
    def boom(*a: Any, **k: Any) -> str:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(report_cli, "render_report", boom)  # the command renders through it
    rc = cli_main(["report", "--reference", str(files["reference"]), "--snapshot", str(files["snapshot"]),
                   "--out", str(tmp_path / "r.html")])
    assert rc == 1 and "renderer exploded" in capsys.readouterr().err


# --------------------------------------------------------------------------- a real browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=NO_CHROMIUM)
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    _eng, alerts, _ = faulty()
    page = tmp_path / "report.html"
    page.write_text(report_html, encoding="utf-8")
    dom_text = parse(screenshot_and_dom(page, tmp_path / "report.png")).text()
    check_screenshot(tmp_path / "report.png")
    assert "Fix data" in dom_text
    for a in alerts:
        if a["state"] == "firing":
            assert a["summary"] in dom_text, a["summary"]
