"""``skewwatch baseline``: profile the training data into a reference file.

::

    skewwatch baseline --data TRAIN.{csv,jsonl,json,parquet}[.gz] [--label-column y]
        [--score-column s] [--slice-column region ...] [--types-config types.yaml]
        [--exclude col ...] [--time-column ts|none] [--model NAME] [--sample-rows N] [--seed S]
        --out reference.json [--quiet]

``--types-config`` is YAML: ``{features: {zip: categorical, age: numeric}}``.

The table is read once, chunk by chunk (:func:`~detector.cli.baseline_scan.scan`; CSV through Arrow's
streaming reader when pyarrow is installed), into exact per-column summaries and a seeded uniform sample of
``--sample-rows`` rows (:mod:`detector.core.reference.streamed` says what comes from which and why
one million rows is enough), so memory does not grow with the file. A table no larger than the
sample is profiled from every row. Progress (on a terminal) is the share of the file's bytes
read -- compressed bytes for ``.gz`` -- with rate and ETA.

When the data are skewwatch prediction events (rows with a ``features`` object), the features are
exactly the keys of ``features``; ``score`` is the score column, ``label`` the label column and the
keys of ``slices`` the slice columns unless the options say otherwise; the other top-level fields
(``ts``, ``model``, ``decision``, ``latency_ms`` ...) are not features. ``--model`` defaults to the
events' ``model`` when they all name the same one.

With a timestamp column (``--time-column``, by default the first of ``ts``, ``timestamp``,
``time``, ``event_time`` that exists) the reference also gets hour-of-day profiles of the
features whose distribution changes over the day (:mod:`detector.core.reference.hourly`).

With a label column the reference also gets an audit (``Reference.audit``, printed in the
summary; :mod:`detector.core.reference.audit`): every feature's predictiveness on its own (AUC, mutual
information), leak suspects (near-perfect predictors, features populated only after the outcome)
and, with a timestamp column, the random-split vs time-split AUC of a simple model (a warning
when the gap is significant and above 0.03).

The command's parts: the read pass in :mod:`detector.cli.baseline_scan`, the ``--types-config`` file
and the columns' roles (checked against the table) in :mod:`detector.cli.baseline_columns`, what a
multiclass or regression reference adds in :mod:`detector.cli.baseline_task`; this module holds the
options, the run and its summary.

Exit codes: 0 success, 2 bad input or usage (the one-line message on stderr says what and how to
fix it), 1 unexpected runtime failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from detector.cli.baseline_columns import (
    InputError,
    TypesConfig,
    check_columns,
    column_roles,
    load_types,
    task_columns,
    time_column_of,
)
from detector.cli.baseline_scan import Scanned, scan
from detector.cli.baseline_task import TASK_CHOICES, task_block
from detector.core.reference.build import ProfileError
from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference
from detector.core.reference.streamed import SAMPLE_ROWS
from detector.io.tables import TableError, TableReader

__all__ = ["PROG", "Scanned", "TypesConfig", "add_arguments", "main", "run", "scan"]

PROG = "skewwatch baseline"


# ----------------------------------------------------------------------------- CLI wiring
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, metavar="TRAIN",
        help="training data: .csv, .tsv, .jsonl/.ndjson, .json or .parquet, optionally gzipped (.csv.gz)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, metavar="REF.json", help="where to write the reference (.json or .json.gz)")
    parser.add_argument("--label-column", metavar="COL",
                        help="label column: 0/1 or true/false (binary), the class name (multiclass), the true number (regression)")
    parser.add_argument("--score-column", metavar="COL", help="binary model score column (profiled like a numeric feature)")
    parser.add_argument(
        "--task", choices=TASK_CHOICES, default=None,
        help="what the model predicts; default: inferred from the label column (two values -> binary, a numeric"
        " column with many values -> regression, otherwise multiclass), binary without one",
    )  # fmt: skip
    parser.add_argument(
        "--prediction-column", metavar="COL",
        help="the model's output: the predicted number (regression) or class (multiclass); default prediction /"
        " predicted_class when present",
    )  # fmt: skip
    parser.add_argument(
        "--scores-column", metavar="COL",
        help="multiclass class scores, an object of class -> probability per row (JSON text in a CSV); default scores",
    )  # fmt: skip
    parser.add_argument(
        "--slice-column", dest="slice_columns", action="extend", nargs="+", default=None, metavar="COL",
        help="segment column(s): each of their top 50 values (>= 30 rows) gets its own profiles",
    )  # fmt: skip
    parser.add_argument(
        "--exclude", action="extend", nargs="+", default=[], metavar="COL", help="column(s) that are not features"
    )
    parser.add_argument(
        "--types-config", metavar="types.yaml",
        help="YAML {features: {name: numeric|categorical}} overriding the inferred feature types",
    )  # fmt: skip
    parser.add_argument(
        "--time-column", metavar="COL",
        help="timestamp column (epoch or RFC 3339) for hour-of-day profiles of seasonal features;"
        " default: the first of ts, timestamp, time, event_time present; 'none' turns them off",
    )  # fmt: skip
    parser.add_argument("--model", metavar="NAME", help="model name recorded in the reference")
    parser.add_argument(
        "--top-k-categories", type=int, default=1000, metavar="K", help="categories kept per categorical feature (default 1000)"
    )
    parser.add_argument(
        "--sample-rows", type=int, default=SAMPLE_ROWS, metavar="N",
        help=f"rows kept (a seeded uniform sample) for quantiles, slice and hour-of-day profiles and the audit"
        f" (default {SAMPLE_ROWS:,}); counts, missing rates, min/max/mean/std and category counts are exact over"
        " every row; memory stays flat however large the file",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the row sample (default 0)")
    parser.add_argument(
        "--no-multivariate", dest="multivariate", action="store_false",
        help="do not fit the joint structure of the numeric features (turns the multivariate_drift check off)",
    )  # fmt: skip
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary (errors still go to stderr)")


def run(args: argparse.Namespace) -> int:
    """Run ``skewwatch baseline``; returns the exit code (0 ok, 2 bad input, 1 runtime failure)."""
    try:
        return _run(args, sys.stdout, sys.stderr)
    except (InputError, TableError, ProfileError) as exc:
        _error(exc)
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # the CLI's last line of defence: one line, exit 1
        _error(f"unexpected failure ({type(exc).__name__}: {exc}); please report it with the command line used")
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Profile training data into a skewwatch reference file.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _error(msg: object) -> None:
    text = " ".join(str(msg).split())  # always one line
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the command
def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    t0 = time.monotonic()
    types = load_types(Path(args.types_config)) if args.types_config else {}
    if args.top_k_categories < 1:
        raise InputError(f"--top-k-categories must be >= 1 (got {args.top_k_categories})")
    out_path = Path(args.out)
    if not out_path.parent.is_dir():
        raise InputError(f"--out {out_path}: directory {out_path.parent} does not exist; create it first")
    if out_path.is_dir():
        raise InputError(f"--out {out_path} is a directory; give a file name such as {out_path / 'reference.json'}")

    if args.sample_rows < 1:
        raise InputError(f"--sample-rows must be >= 1 (got {args.sample_rows})")

    progress = _Progress(err, quiet=args.quiet)
    task = getattr(args, "task", None)
    table = scan(
        args.data, types=types, label=args.label_column, score=args.score_column, slices=args.slice_columns,
        sample_rows=args.sample_rows, seed=args.seed, progress=progress,
        label_strict=task == "binary" if args.label_column is not None else False,
    )  # fmt: skip
    progress.done()

    label, score, slices, exclude, model = column_roles(args, table)
    time_column = time_column_of(args, table)
    task, label, outputs = task_columns(args, table, task, label, exclude)
    check_columns(table, label, score, slices, exclude, types, args.types_config, time_column)
    if progress.shown:
        print(f"{PROG}: profiling {len(table.names)} columns ...", file=err, flush=True)
    ref = table.profiler.reference(
        label_column=label if task == "binary" else None,
        score_column=score,
        slice_columns=slices,
        exclude=exclude,
        types=types,
        top_k_categories=args.top_k_categories,
        source=str(table.path),
        model=model,
        time_column=time_column,
        multivariate=getattr(args, "multivariate", True),
    )
    if task != "binary":
        feats = {n: ("numeric" if isinstance(p, NumericProfile) else "categorical") for n, p in ref.features.items()}
        ref.task = task_block(task, table.path, label=label, prediction=outputs[0], scores=outputs[1],
                              time_column=time_column, features=feats, limit=args.sample_rows, fail=InputError)
    _write(ref, out_path)
    if not args.quiet:
        _summary(ref, table, out_path, time.monotonic() - t0, out)
    return 0


def _write(ref: Reference, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        ref.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"--out {path}: cannot write it ({exc.strerror or exc}); check the path and permissions") from exc


def _summary(ref: Reference, table: Scanned, path: Path, seconds: float, out: TextIO) -> None:
    num = [n for n, p in ref.features.items() if isinstance(p, NumericProfile)]
    cat = [n for n, p in ref.features.items() if isinstance(p, CategoricalProfile)]
    how = {"arrow": "Arrow CSV reader", "csv": "csv module", "json": "JSON lines", "parquet": "Parquet"}.get(table.reader, "")
    lines = [f"{PROG}: {ref.n_rows:,} rows from {table.path} in {seconds:.1f}s" + (f" ({how})" if how else "")]
    sample = ref.sample or {}
    m = int(sample.get("rows_sampled", ref.n_rows))
    if m < ref.n_rows:
        err = 100 * float(sample.get("quantile_rank_error", 0.0))
        lines.append(f"  sample: {m:,} of {ref.n_rows:,} rows, uniform, seed {sample.get('seed', 0)}: quantile edges,"
                     f" slice and hour-of-day profiles and the audit (quantile ranks within {err:.2f} pp at 99.9%);")
        lines.append("          counts, missing rates, min/max/mean/std, category and label counts from every row")
    else:
        lines.append(f"  every row profiled (sample budget {m:,} rows not reached)" if sample else "  every row profiled")
    lines.append(f"  features: {len(ref.features)} ({len(num)} numeric, {len(cat)} categorical)")
    if ref.task:
        t = ref.task
        what = (f"{len(t.get('classes', [])) - 1} classes (+ __other__)" if t.get("task") == "multiclass" else
                f"target MAE of the predictions {t.get('errors', {}).get('mae', float('nan')):.4g}" if t.get("errors") else "")
        lines.append(f"  task: {t.get('task')}" + (f", {what}" if what else ""))
    empty = [n for n, p in ref.features.items() if p.n == 0]
    if empty:
        lines.append(f"  note: no values at all in {len(empty)} feature(s): {_names(empty)}")
    if ref.label_column is not None:
        rate = "n/a (no labelled rows)" if ref.label_base_rate is None else f"{ref.label_base_rate:.4g}"
        lines.append(f"  label {ref.label_column!r}: base rate {rate} over {ref.label_count:,} labelled rows")
    if ref.score is not None:
        med = "n/a" if ref.score.median is None else f"{ref.score.median:.4g}"
        lines.append(f"  score {ref.score_column!r}: median {med}, missing {ref.score.missing_rate:.2%}")
    if ref.slices:
        dims = ", ".join(f"{d} ({len(v)} value{'s' if len(v) != 1 else ''})" for d, v in ref.slices.items())
        lines.append(f"  slices: {dims}")
    if ref.codes:
        codes = [f"{n} ({len(p.categories)})" for n, p in ref.codes.items()]
        lines.append(f"  numeric with few values (compared as categories if served as strings): {_names(codes)}")
    seasonal = list((ref.hourly or {}).get("features", {}))
    if seasonal:
        lines.append(f"  hour-of-day profiles ({ref.time_column!r}): {len(seasonal)} seasonal: {_names(seasonal)}")
    mv = ref.multivariate
    if mv:
        by = "by hour of day" if mv.get("hourly") else "whole days (no time column)"
        lines.append(f"  joint structure: {len(mv['features'])} numeric features, {len(mv['components'])} components"
                     f" ({sum(mv['explained']):.0%} of the variance), standardised {by}")
    if ref.audit:
        from detector.core.reference.audit import summary_lines

        lines += summary_lines(ref.audit)
    if ref.model:
        lines.append(f"  model: {ref.model}")
    lines.append(f"  wrote {path}")
    print("\n".join(lines), file=out, flush=True)


def _names(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


class _Progress:
    """How far into the file the reading is, as a progress bar on an interactive stderr: percentage
    and ETA from the bytes read (compressed bytes of a .gz) or Parquet rows; silent with --quiet, in
    pipes and in CI."""

    def __init__(self, err: TextIO, quiet: bool) -> None:
        from detector.progress import interactive

        self.shown = interactive(quiet) and err is sys.stderr
        self.bar: Any = None

    def __call__(self, reader: TableReader) -> None:
        if self.bar is None:
            from detector.progress import progress_bar

            self.bar = progress_bar(reader.size, reader.unit, PROG, quiet=not self.shown)
        self.bar.update_to(reader.position())
        self.bar.set_postfix_str(f"{reader.rows:,} rows", refresh=False)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
