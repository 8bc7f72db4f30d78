"""`skewwatch baseline` end to end (subprocess) and the table reader behind it."""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from detector.cli import baseline
from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference
from detector.core.reference.streamed import TableProfiler
from detector.io import csvread, tables
from detector.io.tables import TableError, read_table

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "skewwatch baseline: error: "


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "detector.cli.baseline", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )  # fmt: skip


def assert_usage_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert r.stdout == ""
    return lines[0]


def training_rows(n: int = 600, seed: int = 0) -> list[dict[str, object]]:
    r = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append({
            "id": i,
            "amount": round(float(r.lognormal(3, 1)), 2) if r.random() > 0.05 else None,
            "n_tx": int(r.poisson(2)),
            "country": str(r.choice(["DE", "FR", "US"])),
            "zip": ["01234", "99501", "10115"][i % 3],
            "region": "eu" if i % 3 else "us",
            "y": int(r.random() < 0.2),
            "s": round(float(r.random()), 4),
        })  # fmt: skip
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture
def train_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "train.csv", training_rows())


# ----------------------------------------------------------------------------- CLI: success
def test_csv_baseline_end_to_end(tmp_path: Path, train_csv: Path) -> None:
    out = tmp_path / "ref.json"
    r = cli("--data", train_csv, "--label-column", "y", "--score-column", "s", "--slice-column", "region",
            "--model", "fraud", "--out", out, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # small input: no progress lines
    assert "600 rows" in r.stdout and "4 (2 numeric, 2 categorical)" in r.stdout
    assert "numeric with few values (compared as categories if served as strings): n_tx" in r.stdout
    assert "base rate" in r.stdout and "slices: region (2 values)" in r.stdout and str(out) in r.stdout
    ref = Reference.load(out)
    rows = training_rows()
    assert ref.n_rows == 600 and ref.model == "fraud" and ref.source == str(train_csv)
    assert set(ref.features) == {"amount", "n_tx", "country", "zip"}  # id, y, s, region are not features
    assert ref.label_base_rate == pytest.approx(np.mean([row["y"] for row in rows]))
    assert ref.score is not None and ref.score.n == 600
    amount = ref.features["amount"]
    assert isinstance(amount, NumericProfile)
    assert amount.missing == sum(row["amount"] is None for row in rows)
    zip_ = ref.features["zip"]  # a zero-padded numeral is a code, not a number: kept as text
    assert isinstance(zip_, CategoricalProfile) and set(zip_.categories) == {"01234", "99501", "10115"}
    assert set(ref.codes) == {"n_tx"} and set(ref.codes["n_tx"].categories) <= {str(k) for k in range(20)}
    assert set(ref.slices["region"]) == {"eu", "us"}


def test_types_config_keeps_codes_as_text(tmp_path: Path, train_csv: Path) -> None:
    (tmp_path / "types.yaml").write_text("features:\n  zip: categorical\n  n_tx: categorical\n")
    out = tmp_path / "ref.json"
    r = cli("--data", train_csv, "--types-config", "types.yaml", "--out", out, "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""  # --quiet
    ref = Reference.load(out)
    z = ref.features["zip"]
    assert isinstance(z, CategoricalProfile)
    assert set(z.categories) == {"01234", "99501", "10115"}  # leading zero kept
    assert isinstance(ref.features["n_tx"], CategoricalProfile)


@pytest.mark.parametrize("name", ["train.csv.gz", "train.jsonl", "train.jsonl.gz", "train.ndjson", "train.json", "train.parquet"])
def test_every_format_gives_the_same_reference(tmp_path: Path, name: str) -> None:
    rows = training_rows()
    write_csv(tmp_path / "plain.csv", rows)
    path = tmp_path / name
    if name.startswith("train.csv"):
        write_csv(path, rows)
    elif name == "train.json":
        path.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    elif name == "train.parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        write_jsonl(path, rows)
    common = ["--label-column", "y", "--score-column", "s", "--slice-column", "region", "--exclude", "zip"]
    assert cli("--data", "plain.csv", *common, "--out", "a.json", cwd=tmp_path).returncode == 0
    r = cli("--data", name, *common, "--out", "b.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a, b = Reference.load(tmp_path / "a.json"), Reference.load(tmp_path / "b.json")
    assert b.features == a.features
    assert b.slices == a.slices and b.score == a.score and b.label_base_rate == a.label_base_rate


def test_prediction_events(tmp_path: Path) -> None:
    r = np.random.default_rng(3)
    events = []
    for i in range(500):
        events.append({
            "prediction_id": f"p{i}", "model": "fraud", "model_version": "v1", "ts": 1795564800 + 60 * i,
            "features": {"amount": float(r.lognormal(3, 1)), "country": str(r.choice(["DE", "FR"])), "age": None},
            "score": float(r.random()), "decision": "review", "threshold": 0.7,
            "slices": {"region": str(r.choice(["eu", "us"]))}, "latency_ms": 12.0, "fallback": False,
        })  # fmt: skip
    # one line holds a batch envelope (a JSON array of events)
    data = b"".join(orjson.dumps(e) + b"\n" for e in events[:400]) + orjson.dumps(events[400:]) + b"\n"
    (tmp_path / "ev.jsonl").write_bytes(data)
    res = cli("--data", "ev.jsonl", "--out", "ref.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    ref = Reference.load(tmp_path / "ref.json")
    assert ref.n_rows == 500
    assert list(ref.features) == ["amount", "country", "age"]  # event metadata is not a feature
    assert ref.features["age"].n == 0
    assert ref.score_column == "score" and ref.score is not None and ref.score.n == 500
    assert set(ref.slices["region"]) == {"eu", "us"}
    assert ref.model == "fraud" and ref.time_column == "ts"
    assert "model: fraud" in res.stdout


def test_time_column_none_and_unknown(tmp_path: Path, train_csv: Path) -> None:
    r = cli("--data", train_csv, "--time-column", "none", "--out", "ref.json", cwd=tmp_path)
    assert r.returncode == 0 and Reference.load(tmp_path / "ref.json").time_column is None
    r = cli("--data", train_csv, "--time-column", "when", "--out", "ref.json", cwd=tmp_path)
    assert_usage_error(r, "--time-column when", "available columns: id, amount")


# ----------------------------------------------------------------------------- CLI: bad input
def test_missing_file(tmp_path: Path) -> None:
    assert_usage_error(cli("--data", "nope.csv", "--out", "r.json", cwd=tmp_path), "nope.csv", "not found")


def test_malformed_json_line_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\n{"a": 2, }\n{"a": 3}\n')
    msg = assert_usage_error(cli("--data", "bad.jsonl", "--out", "r.json", cwd=tmp_path), "bad.jsonl:3:", "malformed JSON")
    assert "column" in msg


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n42\n')
    assert_usage_error(cli("--data", "bad.jsonl", "--out", "r.json", cwd=tmp_path), "bad.jsonl:2:", "not a JSON object")


def test_missing_label_column_lists_columns(tmp_path: Path, train_csv: Path) -> None:
    r = cli("--data", train_csv, "--label-column", "target", "--out", "r.json", cwd=tmp_path)
    assert_usage_error(r, "--label-column target", "available columns: id, amount, n_tx, country, zip, region, y, s")
    r = cli("--data", train_csv, "--slice-column", "region", "tier", "--out", "r.json", cwd=tmp_path)
    assert_usage_error(r, "--slice-column tier")


def test_non_binary_label(tmp_path: Path, train_csv: Path) -> None:
    r = cli("--data", train_csv, "--label-column", "n_tx", "--task", "binary", "--out", "r.json", cwd=tmp_path)
    assert_usage_error(r, "label column 'n_tx'", "0/1", "--task")
    # without --task the label column decides: counts are a multiclass or regression model's label
    r = cli("--data", train_csv, "--label-column", "n_tx", "--out", "r.json", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref = Reference.load(tmp_path / "r.json")
    assert ref.task_name in ("multiclass", "regression") and "n_tx" not in ref.features and ref.label_base_rate is None


@pytest.mark.parametrize("content", [b"", b"a,b\n", b"a,b\n\n\n"])
def test_empty_data(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "empty.csv").write_bytes(content)
    msg = assert_usage_error(cli("--data", "empty.csv", "--out", "r.json", cwd=tmp_path), "empty.csv")
    assert "empty" in msg or "no data rows" in msg
    (tmp_path / "empty.jsonl").write_bytes(b"\n")
    assert_usage_error(cli("--data", "empty.jsonl", "--out", "r.json", cwd=tmp_path), "no data rows")


def test_ragged_csv(tmp_path: Path) -> None:
    (tmp_path / "rag.csv").write_text('a,b,c\n1,2,3\n"x\ny",5,6\n7,8\n')
    assert_usage_error(cli("--data", "rag.csv", "--out", "r.json", cwd=tmp_path),
                       "rag.csv:5:", "2 field(s)", "header has 3")  # fmt: skip


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "train.xlsx").write_bytes(b"PK")
    assert_usage_error(cli("--data", "train.xlsx", "--out", "r.json", cwd=tmp_path), "'.xlsx'", ".csv", ".parquet")


def test_corrupt_gzip_and_parquet(tmp_path: Path) -> None:
    data = gzip.compress(("a,b\n" + "".join(f"{v},{v * 2}\n" for v in np.random.default_rng(0).random(2000))).encode())
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    assert_usage_error(cli("--data", "t.csv.gz", "--out", "r.json", cwd=tmp_path), "gzip")
    (tmp_path / "t.parquet").write_bytes(b"not parquet at all")
    assert_usage_error(cli("--data", "t.parquet", "--out", "r.json", cwd=tmp_path), "Parquet")


@pytest.mark.parametrize(
    ("yaml_text", "needles"),
    [
        ("features:\n  zip: text\n", ["features.zip", "'text'", "numeric or categorical"]),
        ("features: {zip: categorical}\ncolour: red\n", ["unknown field 'colour'"]),
        ("features: [zip]\n", ["features"]),
        ("features: {zipcode: categorical}\n", ["features.zipcode", "no such column", "available columns"]),
        ("features: {y: categorical\n", ["not valid YAML"]),
        ("- zip\n", ["expected a mapping"]),
    ],
)
def test_bad_types_config(tmp_path: Path, train_csv: Path, yaml_text: str, needles: list[str]) -> None:
    (tmp_path / "types.yaml").write_text(yaml_text)
    r = cli("--data", train_csv, "--label-column", "y", "--types-config", "types.yaml", "--out", "r.json", cwd=tmp_path)
    assert_usage_error(r, "--types-config types.yaml", *needles)


def test_types_config_missing_file(tmp_path: Path, train_csv: Path) -> None:
    r = cli("--data", train_csv, "--types-config", "nope.yaml", "--out", "r.json", cwd=tmp_path)
    assert_usage_error(r, "nope.yaml", "not found")


def test_bad_out_and_usage(tmp_path: Path, train_csv: Path) -> None:
    assert_usage_error(cli("--data", train_csv, "--out", "no/such/dir/r.json", cwd=tmp_path), "does not exist")
    r = cli("--out", "r.json", cwd=tmp_path)
    assert r.returncode == 2 and "skewwatch baseline: error: the following arguments are required: --data" in r.stderr


def test_unexpected_failure_exits_1(tmp_path: Path, train_csv: Path, monkeypatch, capsys) -> None:
    def boom(*_a, **_k):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(TableProfiler, "reference", boom)
    assert baseline.main(["--data", str(train_csv), "--out", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(PREFIX) and "RuntimeError: disk on fire second line" in err[0]


def test_add_arguments_in_a_subcommand_parser(tmp_path: Path, train_csv: Path, capsys) -> None:
    top = argparse.ArgumentParser(prog="skewwatch")
    sub = top.add_subparsers(dest="command")
    baseline.add_arguments(sub.add_parser("baseline"))
    args = top.parse_args(["baseline", "--data", str(train_csv), "--exclude", "zip", "id", "--out", str(tmp_path / "r.json")])
    assert args.exclude == ["zip", "id"]
    assert baseline.run(args) == 0
    assert "wrote" in capsys.readouterr().out


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress_seen(monkeypatch, data: Path, quiet: bool = False, ci: str | None = None, tty: bool = True) -> str:
    """What `baseline._Progress` writes while a real TableReader goes through ``data``."""
    stream = Tty() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    p = baseline._Progress(stream, quiet=quiet)
    reader = tables.TableReader(data)
    for _ in reader.chunks():
        p(reader)
        if p.bar is not None:
            p.bar.refresh()
    p.done()
    return stream.getvalue()


def test_progress_bar_with_percentage_only_on_a_terminal(monkeypatch, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": list(range(100_000))}), data, row_group_size=40_000)
    shown = _progress_seen(monkeypatch, data)
    assert "skewwatch baseline" in shown and "65536/100000" in shown and "100%" in shown, shown
    for quiet, ci in ((True, None), (False, "true")):  # --quiet, CI: nothing
        assert _progress_seen(monkeypatch, data, quiet=quiet, ci=ci) == ""
    assert _progress_seen(monkeypatch, data, tty=False) == ""  # a pipe: nothing


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".jsonl.gz"])
def test_progress_of_text_files_is_bytes_read_with_eta(monkeypatch, tmp_path: Path, suffix: str) -> None:
    n = 3 * tables.CHUNK_ROWS
    x = np.random.default_rng(3).random(n)
    if ".csv" in suffix:
        text = "x,y\n" + "".join(f"{v:.6f},{i % 7}\n" for i, v in enumerate(x.tolist()))
    else:
        text = "".join(f'{{"x": {v:.6f}, "y": {i % 7}}}\n' for i, v in enumerate(x.tolist()))
    data = tmp_path / f"t{suffix}"
    data.write_bytes(gzip.compress(text.encode(), compresslevel=1) if suffix.endswith(".gz") else text.encode())
    monkeypatch.setattr(csvread, "_ARROW_BLOCK", 1 << 15)  # many blocks (Arrow reads a few ahead)
    shown = _progress_seen(monkeypatch, data)
    size = data.stat().st_size
    assert "skewwatch baseline" in shown and "rows" in shown and "<" in shown, shown  # "<" precedes the ETA
    percents = [int(p) for p in __import__("re").findall(r"(\d+)%\|", shown)]
    assert percents and percents[-1] == 100 and any(0 < p < 100 for p in percents), (percents, size)


# ----------------------------------------------------------------------------- the table reader
def test_csv_types_and_missing_tokens(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("\ufeffnum,txt,mixed,empty,code\n1.5,a,1,,007\nNA,null,x, ,010\n-2e3,None,2,NaN,011\n inf ,NaN,3,n/a,012\n")
    t = read_table(p, text_columns=["code"])
    assert t.n_rows == 4 and t.names == ["num", "txt", "mixed", "empty", "code"]  # BOM stripped
    np.testing.assert_array_equal(t["num"], [1.5, np.nan, -2000.0, np.inf])
    assert t["txt"].dtype == object and t["txt"].tolist() == ["a", None, None, None]
    assert t["mixed"].tolist() == ["1", "x", "2", "3"]  # one non-number makes the column text
    assert t["empty"].dtype == np.float64 and np.isnan(t["empty"]).all()
    assert t["code"].tolist() == ["007", "010", "011", "012"]
    assert t.format == "csv" and t.path == p and not t.is_events


@pytest.mark.parametrize("arrow", [False, True])
def test_csv_column_that_turns_text_after_the_first_chunk(tmp_path: Path, monkeypatch, arrow: bool) -> None:
    if arrow:
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(csvread, "CHUNK_ROWS", 4)
    monkeypatch.setattr(csvread, "_ARROW_BLOCK", 24)  # bytes: a few rows per Arrow block
    p = tmp_path / "t.csv"
    p.write_text("code,x\n" + "".join(f"0{i},{i}\n" for i in range(10)) + "A1,10\n")
    seen: list[int] = []
    t = read_table(p, progress=seen.append, arrow=arrow)
    assert t["code"].tolist() == [f"0{i}" for i in range(10)] + ["A1"]  # exact spelling, re-read as text
    assert t["x"].dtype == np.float64 and t["x"].tolist() == list(range(11))
    assert len(seen) >= 2 and seen[-1] == 11 and seen == sorted(seen)


def test_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    with pytest.raises(TableError, match="duplicate column"):
        read_table(tmp_path / "dup.csv")
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TableError, match=r"no column 'c'; available columns: a, b"):
        read_table(tmp_path / "ok.csv", columns=["a", "c"])
    assert list(read_table(tmp_path / "ok.csv", columns=["b"]).columns) == ["b"]
    (tmp_path / "latin.csv").write_bytes("a\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(TableError, match="not UTF-8"):
        read_table(tmp_path / "latin.csv")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(TableError, match="is a directory"):
        read_table(tmp_path / "d.csv")


def test_tsv_and_gzip_detected_by_magic(tmp_path: Path) -> None:
    p = tmp_path / "t.tsv"
    p.write_bytes(gzip.compress(b"a\tb\n1\tx y\n"))  # gzipped without a .gz suffix
    t = read_table(p)
    assert t["a"].tolist() == [1.0] and t["b"].tolist() == ["x y"]


def test_json_types(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    rows = [
        {"n": 1, "b": True, "s": "01", "mix": 1, "nest": {"k": 1}, "late": None},
        {"n": 2.5, "b": False, "s": "NA", "mix": "two", "nest": [1, 2]},
        {"n": None, "b": None, "s": "x", "mix": 3.0, "late": 7},
    ]
    write_jsonl(p, rows)
    t = read_table(p)
    np.testing.assert_array_equal(t["n"], [1.0, 2.5, np.nan])
    np.testing.assert_array_equal(t["b"], [1.0, 0.0, np.nan])
    assert t["s"].tolist() == ["01", None, "x"]  # JSON strings stay text
    assert t["mix"].tolist() == ["1", "two", "3"]
    assert t["nest"].tolist() == ['{"k":1}', "[1,2]", None]
    np.testing.assert_array_equal(t["late"], [np.nan, np.nan, 7.0])


def test_json_columns_appearing_in_later_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    p = write_jsonl(tmp_path / "t.jsonl", [{"a": 1}, {"a": 2}, {"a": 3, "b": "x"}, {"a": 4}, {"b": 5}])
    t = read_table(p)
    np.testing.assert_array_equal(t["a"], [1, 2, 3, 4, np.nan])
    assert t["b"].tolist() == [None, None, "x", None, "5"]


def test_json_array_file_and_single_object(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[\n  {"a": 1},\n  {"a": 2}\n]\n')
    assert read_table(tmp_path / "a.json")["a"].tolist() == [1.0, 2.0]
    (tmp_path / "o.json").write_text('{\n  "a": 1\n}\n')
    assert read_table(tmp_path / "o.json").n_rows == 1
    (tmp_path / "bad.json").write_text('[\n  {"a": 1},\n  {"a": }\n]\n')
    with pytest.raises(TableError, match=r"bad\.json:3: malformed JSON"):
        read_table(tmp_path / "bad.json")


def test_events_flattening(tmp_path: Path) -> None:
    ev = {"prediction_id": "p1", "ts": "2026-11-25T14:00:00Z", "features": {"amount": 3.0, "country": "DE"},
          "score": 0.5, "slices": {"region": "eu"}, "label": 1}  # fmt: skip
    p = write_jsonl(tmp_path / "e.jsonl", [ev, {**ev, "features": {"amount": 4.0, "new": 1}, "slices": None}])
    t = read_table(p)
    assert t.is_events and t.feature_columns == ["amount", "country", "new"] and t.slice_columns == ["region"]
    assert set(t.names) == {"prediction_id", "ts", "score", "label", "amount", "country", "region", "new"}
    assert t["region"].tolist() == ["eu", None]
    clash = {"score": 0.5, "features": {"score": 0.7}}
    with pytest.raises(TableError, match=r"e2\.jsonl:1: 'score' appears both"):
        read_table(write_jsonl(tmp_path / "e2.jsonl", [clash]))


def test_parquet_types_and_nested_events(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import datetime as dt

    table = pa.table({
        "i": pa.array([1, None, 3], pa.int64()),
        "f": pa.array([0.5, 1.5, None]),
        "b": pa.array([True, False, None]),
        "s": pa.array(["a", None, "c"]),
        "d": pa.array(["x", "y", "x"]).dictionary_encode(),
        "t": pa.array([dt.datetime(2026, 11, 25, 14), None, dt.datetime(2026, 11, 25, 15)], pa.timestamp("ms")),
        "features": pa.array([{"amount": 1.0, "c": "DE"}, {"amount": 2.0, "c": None}, {"amount": None, "c": "FR"}]),
        "slices": pa.array([{"region": "eu"}, {"region": "us"}, {"region": "eu"}]),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet")
    seen: list[int] = []
    t = read_table(tmp_path / "t.parquet", progress=seen.append)
    assert seen == [3] and t.format == "parquet"
    np.testing.assert_array_equal(t["i"], [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(t["b"], [1.0, 0.0, np.nan])
    assert t["s"].tolist() == ["a", None, "c"] and t["d"].tolist() == ["x", "y", "x"]
    assert t["t"].tolist()[0].startswith("2026-11-25T14:00") and t["t"].tolist()[1] is None
    assert t.feature_columns == ["amount", "c"] and t.slice_columns == ["region"]
    np.testing.assert_array_equal(t["amount"], [1.0, 2.0, np.nan])
    assert t["c"].tolist() == ["DE", None, "FR"] and t["region"].tolist() == ["eu", "us", "eu"]


def test_parquet_without_pyarrow_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *a, **k)

    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(TableError, match=r"reading parquet needs pyarrow: pip install 'skewwatch\[parquet\]'"):
        read_table(tmp_path / "t.parquet")


@pytest.mark.parametrize("arrow", [False, True])
def test_large_csv_is_read_in_chunks(tmp_path: Path, arrow: bool) -> None:
    if arrow:
        pytest.importorskip("pyarrow")
    n = 3 * tables.CHUNK_ROWS + 17
    r = np.random.default_rng(7)
    x = r.normal(size=n).round(6)
    body = "\n".join(f"{v},{'a' if v > 0 else ''}" for v in x.tolist())
    (tmp_path / "big.csv.gz").write_bytes(gzip.compress(("x,c\n" + body + "\n").encode()))
    seen: list[int] = []
    t = read_table(tmp_path / "big.csv.gz", progress=seen.append, arrow=arrow)
    if not arrow:
        assert seen == [tables.CHUNK_ROWS, 2 * tables.CHUNK_ROWS, 3 * tables.CHUNK_ROWS, n]
    assert seen[-1] == n and seen == sorted(seen)
    np.testing.assert_array_equal(t["x"], x)
    assert t["c"].tolist() == ["a" if v > 0 else None for v in x.tolist()]
