"""The synthetic data generator: the real data's columns and shape, reproducible, streaming."""

import csv
import tracemalloc

import numpy as np
import pytest

from data import synthetic


@pytest.fixture(scope="module")
def real():
    return synthetic.real_profile()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    paths = synthetic.write(out, 30_000, seed=7, shard_rows=12_000)
    return out, paths


def test_shards_are_complete_csv_files_with_the_real_header(generated, real):
    out, paths = generated
    assert [p.name for p in paths] == ["data-00000-of-00003.csv", "data-00001-of-00003.csv", "data-00002-of-00003.csv"]
    assert synthetic.is_complete(out, 30_000, shard_rows=12_000)
    assert not list(out.glob(".*"))  # no partial file left behind
    counts = []
    for path in paths:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            assert tuple(next(reader)) == real.columns
            counts.append(sum(1 for _ in reader))
    assert counts == [12_000, 12_000, 6_000]


def test_every_value_has_its_real_column_kind_and_range(generated, real):
    out, _ = generated
    profile = synthetic.profile_of_dir(out)
    assert profile.kinds == real.kinds  # an int column stays int (the schema says INT)
    for column, (low, high) in profile.ranges.items():
        real_low, real_high = real.ranges[column]
        if column != synthetic.TIMESTAMP:
            assert real_low <= low and high <= real_high, column
    for column, freq in profile.frequencies.items():
        assert set(freq) <= set(real.frequencies[column]), column  # no category the real data lacks


def test_rates_match_the_real_data(generated, real):
    out, _ = generated
    profile = synthetic.profile_of_dir(out)
    assert profile.label_rate == pytest.approx(real.label_rate, abs=0.01)
    for column in real.columns:
        assert profile.missing_rates[column] == pytest.approx(real.missing_rates[column], abs=0.01), column
    for column in ("payment_type", "company", "trip_start_hour", "trip_start_month", "pickup_community_area"):
        for value, share in real.frequencies[column].items():
            if share > 0.02:
                assert profile.frequencies[column].get(value, 0) == pytest.approx(share, abs=0.015), (column, value)


def test_same_seed_same_bytes_other_seed_other_rows(tmp_path):
    a = synthetic.write(tmp_path / "a", 2_000, seed=3, shard_rows=700)
    b = synthetic.write(tmp_path / "b", 2_000, seed=3, shard_rows=700)
    c = synthetic.write(tmp_path / "c", 2_000, seed=4, shard_rows=700)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_memory_does_not_grow_with_rows(tmp_path):
    generator = synthetic.Generator()

    def peak(rows: int) -> int:
        tracemalloc.start()
        synthetic.write(tmp_path / str(rows), rows, shard_rows=rows, generator=generator)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(synthetic.CHUNK_ROWS), peak(4 * synthetic.CHUNK_ROWS)
    assert large < 1.3 * small, (small, large)


def test_rows_are_drawn_in_chunks():
    generator = synthetic.Generator()
    rows = list(generator.rows(np.random.default_rng(0), 25, chunk_rows=10))
    assert len(rows) == 25 and all(len(r) == len(generator.columns) for r in rows)


def test_invalid_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        synthetic.write(tmp_path, 0)
