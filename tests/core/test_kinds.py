"""The kind registry is complete (every kind and statistic the code can emit is in it) and the only table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from detector.core.decisions import kinds, select, triage
from detector.core.decisions.kinds import KINDS, Kind, Statistic
from detector.core.outcomes import monitor as outcomes

PKG = Path(__file__).resolve().parents[2] / "detector"
GRAFANA = PKG.parent / "grafana" / "build.py"
DESIGN_KINDS = {"feature_drift", "missing_values", "unseen_categories", "unit_shift", "default_value_spike", "schema",
                "feature_parity", "score_drift", "label_drift", "concept_drift", "calibration", "performance",
                "label_delay", "fallback_rate", "decision_rate", "latency", "multivariate_drift"}

#: constructors of check results and findings: positions of their kind and statistic arguments
CALLS = {"Result": (0, 2), "_fact": (0, 2), "Finding": (0, 3)}


# --------------------------------------------------------------------------- reading the code
def _strings(node: ast.AST) -> list[str]:
    """The strings an expression can be: constants, both arms of a conditional, f-strings as ``*`` globs."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)]
    return []


def _bound(fn: ast.FunctionDef, name: str) -> list[str]:
    """Strings assigned to ``name`` in ``fn``: plain and tuple assignments, and for-loops over literal tuples."""
    out: list[str] = []

    def pair(target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, ast.Name) and target.id == name:
            out.extend(_strings(value))
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            for t, v in zip(target.elts, value.elts, strict=False):
                pair(t, v)

    for n in ast.walk(fn):
        if isinstance(n, ast.Assign):
            for t in n.targets:
                pair(t, n.value)
        elif isinstance(n, ast.For) and isinstance(n.iter, ast.Tuple | ast.List):
            for item in n.iter.elts:
                pair(n.target, item)
    return out


class _Module:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.parent = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}

    def function_of(self, node: ast.AST) -> ast.FunctionDef | None:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, ast.FunctionDef):
                return node
        return None

    def resolve(self, expr: ast.AST, at: ast.AST, depth: int = 0) -> list[str]:
        got = _strings(expr)
        fn = self.function_of(at)
        if got or not isinstance(expr, ast.Name) or fn is None or depth > 3:
            return got
        got = _bound(fn, expr.id)
        params = [a.arg for a in fn.args.args]
        if not got and expr.id in params:  # a helper's parameter: what its callers in the module pass
            pos = params.index(expr.id)
            for call in ast.walk(self.tree):
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == fn.name and len(call.args) > pos:
                    got += self.resolve(call.args[pos], call, depth + 1)
        return got


def emitted_sites(root: Path) -> tuple[list[tuple[str, list[str], list[str]]], list[str]]:
    """Per place that builds a check result or finding: (where, kinds, statistics) it can emit; and the
    places whose kind or statistic cannot be read from the code."""
    sites, unread = [], []
    for path in sorted(root.rglob("*.py")):
        mod = _Module(ast.parse(path.read_text()))
        for n in ast.walk(mod.tree):
            name = getattr(n.func, "id", getattr(n.func, "attr", None)) if isinstance(n, ast.Call) else None
            fn = mod.function_of(n) if name in CALLS else None
            if name not in CALLS or fn is not None and fn.name in CALLS:
                continue  # not a constructor call, or the body of a helper that is itself one (read at its callers)
            ki, si = CALLS[name]
            kw = {a.arg: a.value for a in n.keywords}
            k_expr = n.args[ki] if len(n.args) > ki else kw.get("kind")
            s_expr = n.args[si] if len(n.args) > si else kw.get("statistic")
            if isinstance(k_expr, ast.Attribute) or isinstance(s_expr, ast.Attribute):
                continue  # copies another result's own fields (select: Finding(kind=r.kind, ...))
            where = f"{path.relative_to(root.parent)}:{n.lineno}"
            ks = mod.resolve(k_expr, n) if k_expr is not None else []
            ss = mod.resolve(s_expr, n) if s_expr is not None else []
            if not ks or not ss:
                unread.append(where)
            else:
                sites.append((where, ks, ss))
    return sites, unread


# --------------------------------------------------------------------------- the registry is complete
def test_every_kind_and_statistic_the_code_can_emit_is_registered() -> None:
    sites, unread = emitted_sites(PKG)
    assert not unread, f"kind/statistic not readable from the code at {unread}: use literals or local names"
    assert len(sites) > 40, "the scan found too few checks: it no longer reads the code"
    missing_kinds = sorted({(w, k) for w, ks, _ in sites for k in ks if k not in KINDS})
    assert not missing_kinds, f"unregistered kinds (add a Kind to detector/core/decisions/kinds.py): {missing_kinds}"
    missing_stats = sorted((w, s, ks) for w, ks, ss in sites for s in ss
                           if not any(kinds.statistic(k, s) is not None or _glob_registered(k, s) for k in ks))
    assert not missing_stats, f"unregistered statistics (add a Statistic to the kind): {missing_stats}"


def _glob_registered(kind_name: str, glob: str) -> bool:
    return any(st.name == glob for st in KINDS[kind_name].statistics)


def test_the_scan_reads_helpers_loops_and_conditionals() -> None:
    sites, _ = emitted_sites(PKG)
    seen = {(k, s) for _, ks, ss in sites for k in ks for s in ss}
    # a conditional kind (checks: score vs feature), a loop over statistics (outcome_checks), an f-string family
    assert {("score_drift", "psi"), ("feature_drift", "psi"), ("performance", "recall_drop"),
            ("performance", "estimated_*_ratio")} <= seen


def test_the_registry_is_the_contract_vocabulary() -> None:
    assert set(KINDS) == DESIGN_KINDS
    for k in KINDS.values():
        assert k.cause in kinds.CAUSES and k.action == kinds.ACTION_OF[k.cause]
        assert len({s.name for s in k.statistics}) == len(k.statistics), k.name
    assert kinds.OUTCOME_KINDS | kinds.PARITY_KINDS | kinds.INPUT_KINDS == kinds.ALL_KINDS
    assert kinds.PIPELINE_KINDS <= kinds.INPUT_CHANGE <= kinds.ALL_KINDS - kinds.OUTCOME_KINDS


def test_bad_records_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="cause 'pipeline_skew' / action 'fix_model'"):
        Kind("x", "model", "input", "pipeline_skew", "fix_model", (Statistic("s"),))
    with pytest.raises(ValueError, match="scope"):
        Kind("x", "row", "input", "pipeline_skew", "fix_data", (Statistic("s"),))
    with pytest.raises(KeyError, match="not registered in detector.core.decisions.kinds"):
        kinds.kind("no_such_kind")


# --------------------------------------------------------------------------- the registry is the only table
def test_readers_take_their_tables_from_the_registry() -> None:
    from detector.core.decisions import alerts
    from detector.sim import faults
    from detector.web import gates, status

    assert alerts.ALL_KINDS is kinds.ALL_KINDS and alerts.OUTCOME_KINDS is kinds.OUTCOME_KINDS
    assert outcomes.INPUT_CHANGE is kinds.INPUT_CHANGE and status.FEATURE_KINDS is kinds.FEATURE_KINDS
    assert gates.PIPELINE_KINDS is kinds.PIPELINE_KINDS and triage.CAUSES is kinds.CAUSES
    assert select.PRIORITY == kinds.priority("input") and outcomes.PRIORITY == kinds.priority("outcome")
    for info in faults.KINDS.values():
        assert info.alert in KINDS and info.action == kinds.ACTION_OF[info.cause]


KIND_SET = re.compile(r"\{\s*\"(" + "|".join(sorted(DESIGN_KINDS)) + r")\"\s*,")


def test_no_other_module_spells_out_a_set_of_kinds() -> None:
    """A literal set/tuple of three or more kind names outside the registry is a second table."""
    offenders = []
    # the simulator's faults list the alerts that may follow each fault: facts of the fault, checked
    # against the registry when the table is built
    for path in [*PKG.rglob("*.py"), GRAFANA]:
        if path.name == "kinds.py" or path == PKG / "sim" / "faults.py":
            continue
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.Set | ast.Tuple | ast.List) and len(n.elts) >= 3:
                names = [e.value for e in n.elts if isinstance(e, ast.Constant) and e.value in DESIGN_KINDS]
                if len(names) >= 3:
                    offenders.append(f"{path.relative_to(PKG.parent)}:{n.lineno} {names}")
    assert not offenders, f"kind tables outside detector/core/decisions/kinds.py: {offenders}"


def test_priority_puts_specific_causes_before_generic_drift() -> None:
    order = kinds.priority("input")
    assert order[0] == ("schema", None)
    assert order.index(("unit_shift", None)) < order.index(("feature_drift", "psi")) < order.index(
        ("feature_drift", "mean_shift"))
    assert kinds.rank("feature_drift", "no_such_statistic") == len(order)  # unranked: after every ranked one
    assert kinds.rank("label_delay", "match_rate_ratio") < kinds.rank("label_drift", "base_rate_ratio")


def test_ratio_statistics_are_declared_not_guessed_from_a_suffix() -> None:
    assert kinds.is_ratio("scale_ratio") and kinds.is_ratio("estimated_auc_ratio")
    assert not kinds.is_ratio("match_rate_ratio") and not kinds.is_ratio("psi")


def test_the_readme_kind_table_agrees_with_the_registry() -> None:
    readme = (PKG.parent / "README.md").read_text()
    table = readme.split("## What each alert kind means", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \|[^|]*\| ([^|]*) \|", table, re.M)}
    assert set(rows) == set(KINDS), set(rows) ^ set(KINDS)
    for name, text in rows.items():
        k = KINDS[name]
        if name not in ("performance", "score_drift", "decision_rate"):  # triaged by what else moved
            assert text.startswith(f"{k.cause} → {k.action}"), (name, text)
