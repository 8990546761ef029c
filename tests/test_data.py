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
