"""Task-appropriate panels on the status page and in the report: a regression model (``eta``) shows its
errors in the target's units, a multiclass model (``intent``) accuracy, macro-F1 and per-class recall,
each next to training's value; neither shows a binary classifier's ROC AUC or reliability diagram.

The engine is the Kafka worker's evaluator fed through the worker protocol
(:func:`tests.deploy.traffic.task_worker`: 30 h of both models with labels).
"""

from __future__ import annotations

import os

import pytest

from detector.web.report import render_report
from detector.web.status import render_status
from detector.web.task_panels import performance_line, training_class_metrics
from tests.deploy.traffic import SHARES_FAULTY_WORKER, task_worker
from tests.shells.test_report import CHROMIUM, NO_CHROMIUM, assert_self_contained, parse, screenshot_and_dom

pytestmark = SHARES_FAULTY_WORKER  # task_worker is built once per process, next to the faulty worker


@pytest.fixture(scope="module")
def engine():
    return task_worker().sidecar.evaluator


def _section(dom, model: str):
    return dom.find("section", id=f"model-{model}")


def test_the_status_page_shows_each_model_in_its_own_terms(engine):
    dom = parse(render_status(engine, recent=[]))
    eta = _section(dom, "eta").find("p", data_performance="status").text()
    intent = _section(dom, "intent").find("p", data_performance="status").text()
    assert "MAE" in eta and "RMSE" in eta and "bias" in eta and "AUC" not in eta
    assert "accuracy" in intent and "macro-F1" in intent and "lowest recall" in intent and "AUC" not in intent
    from detector.web.svg import fmt_num

    assert f"MAE {fmt_num(engine.outcomes.stats('eta')['slices']['']['mae'])}" in eta


def test_the_report_shows_errors_and_classes_next_to_training(engine):
    html = render_report(engine, alerts=[])
    assert_self_contained(html)
    dom = parse(html)
    reg = dom.find("div", data_task_panel="regression")
    mc = dom.find("div", data_task_panel="multiclass")
    text = reg.text()
    assert "MAE now / training" in text and "RMSE now / training" in text and "|error| p50 / p90 / p99" in text
    assert "ROC AUC" not in reg.text() and "ROC AUC" not in mc.text()
    classes = mc.find("table", data_task_panel="classes")
    rows = [r.text() for r in classes.find_all("tr")[1:]]
    task = engine.models["intent"].layout.ref.task
    train = training_class_metrics(task)
    assert len(rows) >= 5 and all(c in " ".join(rows) for c in task["classes"][:-1])
    assert 0 < train["cancellation"]["recall"] <= 1
    assert reg.find_all("table", data_task_panel="slices")  # per slice: MAE, RMSE, bias
    assert not dom.find_all(data_chart="reliability")  # no binary reliability diagram for these models


def test_performance_line_of_a_binary_model_is_unchanged_in_kind():
    st = {"task": "binary", "window": {"start": "2026-11-03T10:00:00Z"},
          "slices": {"": {"auc": 0.91, "precision": 0.5, "recall": 0.25, "labels": 400}}}
    line = performance_line(st)
    assert "ROC AUC 0.91" in line and "precision 50.0%" in line and "400 labelled" in line
    assert performance_line({"slices": {}}) is None


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=NO_CHROMIUM)
def test_the_task_panels_render_in_headless_chromium(engine, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_report(engine, alerts=[]), encoding="utf-8")
    text = parse(screenshot_and_dom(page, tmp_path / "report.png")).text()
    assert "MAE now / training" in text and "macro-F1 now / training" in text and "cancellation" in text
