"""`skewwatch baseline --task`: the task from the label column or the option, the output columns kept out of
the features, multiclass scores as JSON text in a CSV, and clear exit-2 errors naming the fix."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import orjson
import pytest

from detector.core.reference.profile import Reference
from tests.shells.test_baseline_cli import assert_usage_error, cli

CLASSES = ["billing", "tech", "delivery"]


def table(path: Path, task: str, n: int = 600) -> Path:
    rng = np.random.default_rng(3)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        if task == "multiclass":
            w.writerow(["x", "city", "intent", "guess", "probs"])
            for _ in range(n):
                y = CLASSES[int(rng.integers(0, 3))]
                p = rng.dirichlet([1, 1, 1])
                w.writerow([f"{rng.normal():.3f}", rng.choice(["a", "b"]), y, CLASSES[int(np.argmax(p))],
                            orjson.dumps(dict(zip(CLASSES, np.round(p, 4).tolist(), strict=True))).decode()])
        else:
            w.writerow(["x", "city", "minutes", "predicted"])
            for _ in range(n):
                y = rng.gamma(3, 10)
                w.writerow([f"{rng.normal():.3f}", rng.choice(["a", "b"]), f"{y:.2f}", f"{y + rng.normal(0, 3):.2f}"])
    return path


def test_a_numeric_label_with_many_values_is_regression(tmp_path):
    data = table(tmp_path / "t.csv", "regression")
    r = cli("--data", data, "--out", tmp_path / "r.json", "--label-column", "minutes", "--prediction-column", "predicted",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "task: regression" in r.stdout
    ref = Reference.load(tmp_path / "r.json")
    assert ref.task_name == "regression" and set(ref.features) == {"x", "city"}
    assert ref.label_base_rate is None and 2.0 < ref.task["errors"]["mae"] < 3.0


def test_class_names_are_multiclass_and_csv_scores_are_read(tmp_path):
    data = table(tmp_path / "t.csv", "multiclass")
    r = cli("--data", data, "--out", tmp_path / "m.json", "--label-column", "intent", "--prediction-column", "guess",
            "--scores-column", "probs", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref = Reference.load(tmp_path / "m.json")
    assert ref.task_name == "multiclass" and sorted(ref.task["classes"][:-1]) == sorted(CLASSES)
    assert set(ref.features) == {"x", "city"} and len(ref.task["calibration"]) == 4


def test_a_binary_label_keeps_todays_reference(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("x,y\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(200)))
    r = cli("--data", p, "--out", tmp_path / "b.json", "--label-column", "y", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref = Reference.load(tmp_path / "b.json")
    assert ref.task == {} and ref.task_name == "binary" and ref.label_base_rate == 0.5


@pytest.mark.parametrize("args, needles", [
    (["--label-column", "minutes", "--task", "binary"], ["label column 'minutes' must hold 0/1", "--task regression"]),
    (["--label-column", "minutes", "--task", "regression", "--scores-column", "x"], ["--scores-column is for multiclass"]),
    (["--task", "regression", "--prediction-column", "nope"], ["--prediction-column nope", "no such column"]),
    (["--task", "regression"], ["needs the label column"]),
])
def test_bad_task_options_exit_2_naming_the_fix(tmp_path, args, needles):
    data = table(tmp_path / "t.csv", "regression")
    assert_usage_error(cli("--data", data, "--out", tmp_path / "r.json", *args, cwd=tmp_path), *needles)
