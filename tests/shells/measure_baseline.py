"""Peak memory and time of ``skewwatch baseline`` on large generated tables (run by hand, not a test).

    python -m tests.shells.measure_baseline FILE [FILE ...] [--modes arrow,csv,old] [--repeat 1]
        [--old-src DIR] [--sample-rows N] [--json out.json]

Modes: ``arrow`` (this code, pyarrow installed), ``csv`` (this code with pyarrow hidden: the
pure-Python reader), ``old`` (the code in ``--old-src``, e.g. ``git archive <commit> detector |
tar -x -C DIR``, run the same way). Every run is a fresh process; its peak RSS comes from
``wait4``'s resource usage of that process alone, its CPU time is user + system (all threads).
Each row is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HIDE_PYARROW = "import sys; sys.modules['pyarrow'] = None; "
RUN = "from detector.cli.baseline import main; raise SystemExit(main())"


def run_once(data: Path, mode: str, out: Path, old_src: str | None, sample_rows: int | None) -> dict[str, float]:
    env = dict(os.environ)
    code = (HIDE_PYARROW if mode == "csv" else "") + RUN
    if mode == "old":
        env["PYTHONPATH"] = old_src or ""
    args = [sys.executable, "-c", code, "--data", str(data), "--out", str(out), "--label-column", "y",
            "--score-column", "score", "--slice-column", "region", "--quiet"]
    if sample_rows and mode != "old":
        args += ["--sample-rows", str(sample_rows)]
    t0 = time.perf_counter()
    # cwd: not a checkout, so that "old" imports the code in --old-src and the others the installed one
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, cwd=data.parent)
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode} on {data} failed: {err.strip()}")
    return {"peak_rss_mib": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--modes", default="arrow,csv")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--old-src")
    ap.add_argument("--sample-rows", type=int)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    rows = []
    for data in a.files:
        for mode in a.modes.split(","):
            runs = [run_once(data, mode, data.with_suffix(f".{mode}.ref.json"), a.old_src, a.sample_rows)
                    for _ in range(a.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            row = {"file": str(data), "size_mib": data.stat().st_size / 2**20, "mode": mode, "runs": a.repeat, **med}
            rows.append(row)
            print(f"{data.name:>16} {row['size_mib']:9.0f} MiB  {mode:6}  peak RSS {med['peak_rss_mib']:8.0f} MiB"
                  f"  cpu {med['cpu_s']:8.1f} s  wall {med['wall_s']:8.1f} s", flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
