"""A seeded training table of any size, written in chunks (for the large-table tests and measurements).

Columns (about 150 bytes a row as CSV): ``ts`` (RFC 3339, 90 days), ``amount`` (log-normal cents
with 2% missing), ``age``, ``tenure_days`` (5% ``NA``), ``n_tx`` (Poisson), ten ``f0..f9``
normals, ``country`` (40 values, Zipf), ``device`` (4), ``merchant`` (20,000 values, Zipf:
beyond the exact category counter), ``zip`` (zero-padded codes), ``region`` (slice, 6 values),
``score`` and ``y`` (label, ~5% positive, tied to the score).

    python -m tests.shells.tablegen OUT.csv[.gz]|OUT.jsonl|OUT.parquet --rows N | --bytes 1G
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

COUNTRIES = [f"C{i:02d}" for i in range(40)]
DEVICES = ["ios", "android", "web", "pos"]
REGIONS = ["eu", "us", "apac", "latam", "mea", "other"]
BYTES_PER_ROW = 150  # CSV, measured on the default columns


def _zipf_choice(r: np.random.Generator, n_values: int, size: int, a: float = 1.3) -> np.ndarray:
    w = 1.0 / np.arange(1, n_values + 1) ** a
    return r.choice(n_values, size=size, p=w / w.sum())


def chunks(n_rows: int, seed: int = 0, chunk: int = 200_000) -> Iterator[dict[str, np.ndarray]]:
    """Columns of ``n_rows`` rows, ``chunk`` rows at a time (numbers as float64, NaN = missing)."""
    r = np.random.default_rng(seed)
    t0 = np.datetime64("2026-01-01T00:00:00")
    done = 0
    while done < n_rows:
        k = min(chunk, n_rows - done)
        ts = t0 + r.integers(0, 90 * 86400, size=k).astype("timedelta64[s]")
        amount = np.round(np.exp(r.normal(3.5, 1.2, k)), 2)
        amount[r.random(k) < 0.02] = np.nan
        tenure = r.integers(0, 3000, k).astype(np.float64)
        tenure[r.random(k) < 0.05] = np.nan
        score = 1 / (1 + np.exp(-(r.normal(-3.2, 1.3, k))))
        cols: dict[str, np.ndarray] = {
            "ts": np.datetime_as_string(ts, unit="s").astype(object) + "Z",
            "amount": amount,
            "age": r.integers(18, 90, k).astype(np.float64),
            "tenure_days": tenure,
            "n_tx": r.poisson(3, k).astype(np.float64),
        }
        for j in range(10):
            cols[f"f{j}"] = np.round(r.normal(j, 1 + j / 5, k), 5)
        cols["country"] = np.array(COUNTRIES, dtype=object)[_zipf_choice(r, len(COUNTRIES), k)]
        cols["device"] = np.array(DEVICES, dtype=object)[r.choice(4, k, p=[0.4, 0.35, 0.2, 0.05])]
        cols["merchant"] = np.char.add("m", _zipf_choice(r, 20_000, k, a=1.05).astype(str)).astype(object)
        cols["zip"] = np.char.zfill(r.integers(0, 99_999, k).astype(str), 5).astype(object)
        cols["region"] = np.array(REGIONS, dtype=object)[r.choice(6, k, p=[0.35, 0.3, 0.15, 0.1, 0.06, 0.04])]
        cols["score"] = np.round(score, 4)
        cols["y"] = (r.random(k) < np.clip(score * 1.1, 0, 1)).astype(np.float64)
        done += k
        yield cols


def _csv_lines(cols: dict[str, np.ndarray]) -> str:
    out = []
    names = list(cols)
    for name in names:
        a = cols[name]
        if a.dtype.kind == "f":
            s = np.char.mod("%.10g", a).astype(object)
            s[np.isnan(a)] = "NA" if name == "tenure_days" else ""
            out.append(s)
        else:
            out.append(a)
    rows = zip(*(c.tolist() for c in out), strict=True)
    return "".join(",".join(row) + "\n" for row in rows)


def write(path: str | Path, n_rows: int, seed: int = 0) -> Path:
    """Write ``n_rows`` rows to ``path`` (.csv, .csv.gz, .jsonl, .jsonl.gz or .parquet)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        for cols in chunks(n_rows, seed):
            t = pa.table({k: pa.array(v, from_pandas=True) for k, v in cols.items()})
            writer = writer or pq.ParquetWriter(p, t.schema)
            writer.write_table(t)
        if writer is not None:
            writer.close()
        return p
    opener = gzip.open if name.endswith(".gz") else open
    with opener(p, "wt", encoding="utf-8", newline="") as f:  # type: ignore[operator]
        first = True
        for cols in chunks(n_rows, seed):
            if ".csv" in name:
                if first:
                    f.write(",".join(cols) + "\n")
                f.write(_csv_lines(cols))
            else:
                import orjson

                keys = list(cols)
                lists = [c.tolist() for c in cols.values()]
                for row in zip(*lists, strict=True):
                    obj = {k: (None if isinstance(v, float) and v != v else v) for k, v in zip(keys, row, strict=True)}
                    f.write(orjson.dumps(obj).decode() + "\n")
            first = False
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--rows", type=int)
    g.add_argument("--bytes", help="approximate CSV size, e.g. 500M, 1G, 10G")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rows = a.rows
    if rows is None:
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        b = a.bytes.upper().rstrip("B")
        rows = int(float(b[:-1]) * units[b[-1]] if b[-1] in units else float(b)) // BYTES_PER_ROW
    p = write(a.out, rows, a.seed)
    print(f"{p}: {rows:,} rows, {p.stat().st_size / 2**20:.1f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
