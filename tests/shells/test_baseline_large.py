"""`skewwatch baseline` on tables larger than its row sample: same answer from both CSV readers,
exact counts, the sample said in the summary and in reference.json, memory that does not grow."""

from __future__ import annotations

import gzip
import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from detector.cli.baseline import scan
from detector.core.reference.profile import Reference
from detector.io import csvread, tables
from tests.shells import tablegen

ROOT = Path(__file__).resolve().parents[2]
ROLES = dict(label_column="y", score_column="score", slice_columns=["region"], time_column="ts")


def close(a: Any, b: Any, path: str = "") -> None:
    """Equal, numbers up to float rounding (sums merged over other chunk boundaries)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def reference_of(path: Path, arrow: bool, sample_rows: int) -> dict[str, Any]:
    t = scan(path, label="y", score="score", slices=["region"], sample_rows=sample_rows, arrow=arrow)
    assert t.reader == ("arrow" if arrow else "csv")
    d = t.profiler.reference(**ROLES).to_dict()
    d.pop("created")
    return d


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_arrow_and_the_csv_module_give_the_same_reference(tmp_path: Path, suffix: str, monkeypatch) -> None:
    pytest.importorskip("pyarrow")
    monkeypatch.setattr(csvread, "_ARROW_BLOCK", 1 << 18)  # several Arrow blocks
    monkeypatch.setattr(csvread, "CHUNK_ROWS", 5_000)  # chunks of other sizes in the csv module
    data = tablegen.write(tmp_path / f"train{suffix}", 12_000, seed=4)
    a = reference_of(data, arrow=True, sample_rows=3_000)
    b = reference_of(data, arrow=False, sample_rows=3_000)
    assert a["sample"]["rows_read"] == 12_000 and a["sample"]["rows_sampled"] == 3_000
    close(a, b)
    assert a["features"]["zip"]["type"] == "categorical"  # zero-padded numerals are codes


def test_cli_says_rows_read_and_sampled(tmp_path: Path) -> None:
    data = tablegen.write(tmp_path / "train.csv.gz", 8_000, seed=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run(
        [sys.executable, "-m", "detector.cli.baseline", "--data", str(data), "--out", "ref.json",
         "--label-column", "y", "--score-column", "score", "--slice-column", "region", "--sample-rows", "2000"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "8,000 rows from" in r.stdout and "sample: 2,000 of 8,000 rows, uniform, seed 0" in r.stdout, r.stdout
    assert "quantile ranks within 4.36 pp" in r.stdout, r.stdout
    ref = Reference.load(tmp_path / "ref.json")
    assert ref.n_rows == 8_000 and ref.sample["rows_read"] == 8_000 and ref.sample["rows_sampled"] == 2_000
    assert ref.features["amount"].count == 8_000
    assert sum(sp.count for sp in ref.slices["region"].values()) == 8_000
    raw = orjson.loads((tmp_path / "ref.json").read_bytes())
    assert raw["sample"]["seed"] == 0 and raw["sample"]["method"].startswith("uniform")


def _peak(path: Path, **kw: Any) -> int:
    tracemalloc.start()
    try:
        t = scan(path, label="y", score="score", slices=["region"], **kw)
        t.profiler.reference(**ROLES)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_memory_does_not_grow_with_the_table(tmp_path: Path, monkeypatch, suffix: str) -> None:
    """Python-level peak (tracemalloc: numpy arrays and Python objects) of reading and profiling a
    table 4x larger stays about the same: one chunk, the summaries and the sample."""
    monkeypatch.setattr(csvread, "CHUNK_ROWS", 4_096)
    monkeypatch.setattr(tables, "CHUNK_ROWS", 4_096)
    small = tablegen.write(tmp_path / f"small{suffix}", 12_000, seed=2)
    large = tablegen.write(tmp_path / f"large{suffix}", 48_000, seed=2)
    p_small = _peak(small, sample_rows=3_000, arrow=False)
    p_large = _peak(large, sample_rows=3_000, arrow=False)
    assert p_large < 1.35 * p_small, (p_small, p_large)


def test_a_json_column_that_turns_text_is_read_again_and_profiled_as_text(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "CHUNK_ROWS", 100)
    rows = [{"features": {"code": i % 7, "x": float(i)}, "score": 0.5, "label": i % 2} for i in range(1_000)]
    rows += [{"features": {"code": "A1", "x": 1.0}, "score": 0.5, "label": 0} for _ in range(10)]
    p = tmp_path / "events.jsonl.gz"
    p.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows)))
    t = scan(p, sample_rows=50)
    assert t.is_events and not t.profiler.flipped
    ref = t.profiler.reference(label_column="label", score_column="score")
    code = ref.features["code"]
    assert code.type == "categorical" and code.count == 1_010 and code.missing == 0
    assert code.categories["A1"] == pytest.approx(10 / 1_010) and code.categories["0"] == pytest.approx(143 / 1_010)
    sampled = t.profiler.sample.columns()["code"]
    assert sampled.dtype == object and all(isinstance(v, str) for v in sampled.tolist())
    assert ref.label_count == 1_010 and ref.label_base_rate == pytest.approx(500 / 1_010)


def test_a_csv_column_that_turns_text_keeps_its_spelling_in_the_sample(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(csvread, "CHUNK_ROWS", 64)
    monkeypatch.setattr(csvread, "_ARROW_BLOCK", 512)
    p = tmp_path / "t.csv"
    p.write_text("code,x\n" + "".join(f"{i % 50:03d},{i}\n" for i in range(2_000)) + "A1,1\n")
    for arrow in (False, True):
        t = scan(p, sample_rows=300, arrow=arrow)
        sampled = t.profiler.sample.columns()["code"]
        assert all(isinstance(v, str) and (len(v) == 3 or v == "A1") for v in sampled.tolist())
        ref = t.profiler.reference()
        assert ref.features["code"].categories["007"] == pytest.approx(40 / 2_001)
        assert ref.features["x"].count == 2_001 and np.isclose(ref.features["x"].max, 1_999)
