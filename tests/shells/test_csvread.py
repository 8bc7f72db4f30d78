"""The shared CSV reader: Arrow and the csv module give the same records, types and errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from detector.io import csvread
from detector.io.csvread import CsvFile, TableError, csv_values
from detector.io.eventrows import EventFile

pa = pytest.importorskip("pyarrow")


def records(path: Path, arrow: bool, ragged: str = "error") -> tuple[list[str], list[list[str]], str]:
    f = CsvFile(path, arrow=arrow)
    rows: list[list[str]] = []
    for _first, _line, cols in f.chunks(ragged=ragged):  # type: ignore[arg-type]
        lists = [c.tolist() if isinstance(c, np.ndarray) else c.to_pylist() for c in cols]
        rows += [list(r) for r in zip(*lists, strict=True)]
    return f.names, rows, f.reader_used


TRICKY = (
    '\ufeffid,"na,me", note ,\r\n'
    '1,"a, b","he said ""hi""",x\r\n'
    "\r\n"
    '2,"multi\nline",ünï,\r\n'
    "3,,NA,  \r\n"
)


@pytest.mark.parametrize("gz", [False, True])
def test_both_readers_give_the_same_records(tmp_path: Path, gz: bool) -> None:
    p = tmp_path / ("t.csv.gz" if gz else "t.csv")
    p.write_bytes(gzip.compress(TRICKY.encode()) if gz else TRICKY.encode())
    a, b = records(p, arrow=True), records(p, arrow=False)
    assert a[2] == "arrow" and b[2] == "csv"
    assert a[:2] == b[:2]
    names, rows, _ = a
    assert names == ["id", "na,me", "note", "unnamed_3"]
    assert rows == [["1", "a, b", 'he said "hi"', "x"], ["2", "multi\nline", "ünï", ""], ["3", "", "NA", "  "]]


def test_a_ragged_row_is_named_by_line_whichever_reader(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(csvread, "_ARROW_BLOCK", 64)
    p = tmp_path / "t.csv"
    p.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(40)) + "41\n42,42\n")
    for arrow in (True, False):
        with pytest.raises(TableError, match=r"t\.csv:42: row has 1 field\(s\) but the header has 2"):
            records(p, arrow)
        _names, rows, used = records(p, arrow, ragged="pad")  # replay: padded, nothing lost
        assert len(rows) == 42 and rows[40] == ["41", ""] and rows[41] == ["42", "42"]
        assert used == "csv"  # Arrow handed over to the csv module at the bad row


def test_invalid_utf8_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    p = tmp_path / "latin.csv"
    p.write_bytes("a,b\n1,caf\u00e9\n".encode("latin-1"))
    for arrow in (True, False):
        with pytest.raises(UnicodeDecodeError):
            records(p, arrow)


def test_arrow_number_parsing_decides_exactly_as_python() -> None:
    r = np.random.default_rng(0)
    tokens = ["1", "-2.5", "1e3", " 7 ", "1_000", "inf", "-inf", "nan", "NaN", "NA", "n/a", "null", "None", "",
              "  ", "0x1f", "1,5", "abc", ".5", "5.", "+3", "1e", "１２", "00123"]
    for _ in range(400):
        chunk = list(r.choice(tokens, size=int(r.integers(1, 6))))
        py = csv_values(np.array(chunk, dtype=object), False)
        ar = csv_values(pa.array(chunk, pa.string()), False)
        assert py.dtype == ar.dtype, chunk
        if py.dtype.kind == "f":
            np.testing.assert_array_equal(py, ar)
        else:
            assert py.tolist() == ar.tolist(), chunk


def test_replay_rows_carry_their_physical_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "pred.csv"
    p.write_text("prediction_id,ts,score,amount,region,zip\n"
                 "a,2026-11-25T14:00:00Z,0.5,12.5,eu,01234\n"
                 "\n"
                 'b,2026-11-25T14:00:01Z,0.7,,"us\nwest",99501\n'
                 "c,2026-11-25T14:00:02Z,0.1,NA,eu\n")  # a short row: padded
    chunks = list(EventFile(p, slice_names=["region"]).chunks(2))
    assert [nums for nums, _ in chunks] == [[2, 5], [6]]
    (first, second), (third,) = (evs for _, evs in chunks)
    assert b'"zip":"01234"' in first and b'"amount"' not in second and b'"region":"us\\nwest"' in second
    assert b'"prediction_id":"c"' in third
