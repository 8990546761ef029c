"""Checks on the input CSV files before any component runs: structure only, with clear errors.

What the values mean (types, ranges, missing labels, drift) is TFDV's job, in the pipeline's data
gate; this catches what would otherwise surface as a Beam stack trace inside CsvExampleGen.
"""

import csv
from collections.abc import Iterable
from pathlib import Path

ROWS_CHECKED = 100_000  # per file: enough to catch a broken export, cheap on large inputs


class DataError(ValueError):
    """The input files cannot be read as the pipeline's CSV data; the message names the file."""


def check_csv_dir(data_dir: Path, columns: Iterable[str]) -> list[Path]:
    """Returns the CSV files, or raises DataError naming the first problem and where it is."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such directory")
    files = sorted(data_dir.glob("*.csv"))
    if not files:
        raise DataError(f"{data_dir}: no *.csv file in it")
    expected = set(columns)
    for path in files:
        _check_file(path, expected)
    return files


def _check_file(path: Path, expected: set[str]) -> None:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except csv.Error as error:
            raise DataError(f"{path}: line 1: not CSV ({error})") from None
        missing, unexpected = expected - set(header), set(header) - expected
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing column(s) {', '.join(sorted(missing))}")
            if unexpected:
                parts.append(f"unexpected column(s) {', '.join(sorted(unexpected))}")
            raise DataError(f"{path}: the header does not match the schema: {'; '.join(parts)}")
        if len(set(header)) != len(header):
            raise DataError(f"{path}: the header repeats a column name")
        rows = 0
        try:
            for rows, row in enumerate(reader, start=1):
                if len(row) != len(header):
                    raise DataError(
                        f"{path}: line {reader.line_num}: {len(row)} fields where the header has {len(header)}"
                    )
                if rows >= ROWS_CHECKED:
                    break
        except csv.Error as error:
            raise DataError(f"{path}: line {reader.line_num}: unparseable ({error})") from None
        if rows == 0:
            raise DataError(f"{path}: a header but no rows")
