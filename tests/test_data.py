"""The bundled data reaches the data directory once, intact, and is left alone after that."""

import csv
import os

from data import taxi


def test_bundled_csv_has_the_taxi_columns():
    with taxi.bundled_csv().open() as f:
        header = next(csv.reader(f))
    assert len(header) == 18 and {"tips", "fare", "payment_type", "trip_start_hour"} <= set(header)


def test_materialize_copies_once_and_keeps_the_file_untouched_afterwards(tmp_path):
    data_dir = taxi.materialize(tmp_path / "taxi")
    target = data_dir / "data.csv"
    assert target.read_bytes() == taxi.bundled_csv().read_bytes()
    # ExampleGen fingerprints inputs by size and mtime: a second call must not rewrite the file.
    os.utime(target, (1_000_000, 1_000_000))
    taxi.materialize(tmp_path / "taxi")
    assert target.stat().st_mtime == 1_000_000
    assert [p.name for p in data_dir.iterdir()] == ["data.csv"]  # no temporary file left behind


def test_a_truncated_copy_is_replaced(tmp_path):
    target = tmp_path / "data.csv"
    target.write_text("pickup_community_area,fare\n")
    taxi.materialize(tmp_path)
    assert target.stat().st_size == taxi.bundled_csv().stat().st_size


def test_write_sample_keeps_the_header_and_the_row_count(tmp_path):
    path = taxi.write_sample(tmp_path, rows=100) / "data.csv"
    with path.open() as f:
        rows = list(csv.reader(f))
    with taxi.bundled_csv().open() as f:
        assert rows[0] == next(csv.reader(f))
    assert len(rows) == 101


# --- the preflight (data/validate.py): every shape of file a user may have, and its one line -----

import gzip  # noqa: E402
import io  # noqa: E402

import pytest  # noqa: E402

from data.validate import DataError, check_csv_dir  # noqa: E402
from pipeline.schemas import schema_columns  # noqa: E402


def _table(rows: int = 60) -> list[list[str]]:
    with taxi.bundled_csv().open(newline="") as f:
        reader = csv.reader(f)
        return [next(reader) for _ in range(rows + 1)]


def _csv(table, eol: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=eol).writerows(table)
    return buffer.getvalue()


def _with(table, row: int, column: str, value: str):
    table = [list(r) for r in table]
    table[row][table[0].index(column)] = value
    return table


def _reordered(table):
    order = table[0][::-1]
    return [[r[table[0].index(c)] for c in order] for r in table]


def _big_with_bad_line(bad: bytes, line: int = 50_000) -> bytes:
    header, *body = _table(1000)
    lines = _csv([header] + body * 60).encode().splitlines(keepends=True)
    lines[line - 1] = bad
    return b"".join(lines)


T = _table()
H = ",".join(T[0])
# name -> ({file name: content}, the exact message with {d} for the directory; None: accepted)
SHAPES = {
    "plain": ({"data.csv": _csv(T)}, None),
    "CRLF line endings": ({"data.csv": _csv(T, "\r\n")}, None),
    "UTF-8 text with accents": ({"data.csv": _csv(_with(T, 3, "company", "Taxi Café"))}, None),
    "quoted comma and newline in a field": ({"data.csv": _csv(_with(T, 3, "company", "A, B\nC"))}, None),
    "blank lines and no final newline": ({"data.csv": _csv(T[:30]) + "\n\n" + _csv(T[30:]).rstrip("\n")}, None),
    "columns in another order than the schema": ({"data.csv": _csv(_reordered(T))}, None),
    "two files with the same header": ({"a.csv": _csv(T[:30]), "b.csv": _csv(T[:1] + T[30:])}, None),
    "fares inf, -inf, NaN, nan, 1e400 (the data gate's job)": (
        {"data.csv": _csv(_with(_with(_with(_with(_with(T, 1, "fare", "inf"), 2, "fare", "-inf"), 3, "fare", "NaN"),
                                            4, "fare", "nan"), 5, "fare", "1e400"))}, None),
    "empty file": ({"data.csv": ""}, "{d}/data.csv: the file is empty"),
    "header only": ({"data.csv": H + "\n"}, "{d}/data.csv: a header but no rows"),
    "UTF-8 byte-order mark": (
        {"data.csv": b"\xef\xbb\xbf" + _csv(T).encode()},
        "{d}/data.csv: starts with a UTF-8 byte-order mark, which CsvExampleGen reads as part of the first "
        "column's name: save it as UTF-8 without a byte-order mark"),
    "UTF-16": (
        {"data.csv": _csv(T).encode("utf-16")},
        "{d}/data.csv: is UTF-16 text (byte-order mark FF FE); CsvExampleGen reads UTF-8 only: save it as UTF-8"),
    "Latin-1": (
        {"data.csv": _csv(_with(T, 3, "company", "Taxi Café")).encode("latin-1")},
        "{d}/data.csv: line 4: not UTF-8 text (byte 0xe9 at column {col}): save the file as UTF-8"),
    "Latin-1 at line 50,000 of a large file": (
        {"data.csv": _big_with_bad_line("Caf\xe9,".encode("latin-1") + b"1" * 40 + b"\n")},
        "{d}/data.csv: line 50000: not UTF-8 text (byte 0xe9 at column 4): save the file as UTF-8"),
    "ragged row at line 50,000 of a large file": (
        {"data.csv": _big_with_bad_line(b"1,2,3\n")}, "{d}/data.csv: line 50000: 3 fields where the header has 18"),
    "gzip named .csv": (
        {"data.csv": gzip.compress(_csv(T).encode())},
        "{d}/data.csv: gzip-compressed; CsvExampleGen reads plain-text CSV files only: decompress it"),
    "gzip next to a CSV file": (
        {"a.csv": _csv(T), "b.csv.gz": gzip.compress(_csv(T).encode())},
        "{d}/b.csv.gz: gzip-compressed; CsvExampleGen reads plain-text CSV files only: decompress it "
        "(CsvExampleGen reads every file in the data directory, whatever its name: move it out)"),
    "binary file": ({"data.csv": bytes(range(256)) * 4}, "{d}/data.csv: line 1: binary data (a NUL byte at column 1), not CSV text"),
    "lone CR line endings": (
        {"data.csv": _csv(T, "\r")},
        "{d}/data.csv: line 1: lines end in a lone CR (old Mac line endings), which CsvExampleGen reads as one "
        "line: convert them to LF or CRLF"),
    "quoted column names": (
        {"data.csv": _csv(T).replace(H, ",".join(f'"{c}"' for c in T[0]), 1)},
        "{d}/data.csv: line 1: the header quotes column names, and CsvExampleGen keeps the quotes as part of the "
        "names: write them unquoted"),
    "spaces after the commas of the header": (
        {"data.csv": _csv(T).replace(H, ", ".join(T[0]), 1)},
        "{d}/data.csv: line 1: column name ' fare' has spaces around it, and CsvExampleGen keeps them as part "
        "of the name: remove them"),
    "unclosed quote": (
        {"data.csv": _csv(T) + '1,"2,3\n4,5\n'},
        '{d}/data.csv: line 62: a quoted field is not closed (an unbalanced ") before the end of the file'),
    "huge field": (
        {"data.csv": _csv(_with(T, 7, "company", "x" * 200_000))},
        "{d}/data.csv: line 8: a field longer than 131,072 characters, more than CsvExampleGen's CSV reader takes"),
    "huge line": ({"data.csv": H + "\n" + "1," * 1_000_000}, "{d}/data.csv: line 2: 1000001 fields where the header has 18"),
    "second file: columns in another order": (
        {"a.csv": _csv(T[:30]), "b.csv": _csv(_reordered(T[:1] + T[30:]))},
        "{d}/b.csv: its columns are in another order than in a.csv; CsvExampleGen needs the same header in every "
        "file: write them in one order"),
    "second file: a column fewer": (
        {"a.csv": _csv(T[:30]), "b.csv": _csv([r[:-1] for r in T[:1] + T[30:]])},
        "{d}/b.csv: line 1: the header does not match the schema: missing column(s) tips"),
    "a notes file beside the data": (
        {"data.csv": _csv(T), "notes.txt": "exported on Monday\n"},
        "{d}/notes.txt: line 1: the first line is not a header naming the schema's columns (company, "
        "dropoff_census_tract, dropoff_community_area, ...) (CsvExampleGen reads every file in the data "
        "directory, whatever its name: move it out)"),
}


def _make(directory, files: dict) -> None:
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_file_shape_is_accepted_or_refused_with_one_line_naming_file_and_line(tmp_path, shape):
    files, message = SHAPES[shape]
    directory = tmp_path / "data"
    _make(directory, files)
    columns = schema_columns()
    if message is None:
        assert [p.name for p in check_csv_dir(directory, columns)] == sorted(files)
        return
    with pytest.raises(DataError) as refused:
        check_csv_dir(directory, columns)
    latin1_column = _csv(_with(T, 3, "company", "Taxi Café")).splitlines()[3].index("é") + 1
    assert str(refused.value) == message.format(d=directory, col=latin1_column)
    assert "\n" not in str(refused.value)


def test_directories_and_links_in_the_data_directory(tmp_path):
    columns = schema_columns()
    _make(tmp_path / "data", {"data.csv": _csv(T)})
    os.symlink(tmp_path / "data" / "data.csv", tmp_path / "data" / "link.csv")
    assert [p.name for p in check_csv_dir(tmp_path / "data", columns)] == ["data.csv", "link.csv"]  # a link to a good file
    os.symlink(tmp_path / "gone.csv", tmp_path / "data" / "old.csv")
    with pytest.raises(DataError) as refused:
        check_csv_dir(tmp_path / "data", columns)
    assert str(refused.value) == f"{tmp_path}/data/old.csv: a symbolic link to {tmp_path}/gone.csv, which does not exist"
    (tmp_path / "data" / "old.csv").unlink()
    (tmp_path / "data" / "archive").mkdir()
    with pytest.raises(DataError) as refused:
        check_csv_dir(tmp_path / "data", columns)
    assert str(refused.value) == (f"{tmp_path}/data/archive: a directory; CsvExampleGen reads every entry of the data "
                                  "directory as a CSV file: move it out")
    (tmp_path / "data" / "archive").rmdir()
    (tmp_path / "data" / ".data.csv.swp").write_bytes(b"b0VIM 9.0\x00\x00")
    with pytest.raises(DataError, match=r"\.data\.csv\.swp: line 1: binary data \(a NUL byte at column 10\), not CSV "
                                        r"text \(CsvExampleGen reads every file in the data directory, whatever its name"):
        check_csv_dir(tmp_path / "data", columns)
