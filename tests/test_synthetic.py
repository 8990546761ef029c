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


# --- spans: data arriving period by period ------------------------------------------------------

def read_rows(directory) -> list[dict[str, str]]:
    rows = []
    for path in sorted(directory.glob("*.csv")):
        rows += synthetic.read_csv(path)[1]
    return rows


def test_spans_are_span_folders_of_csv_files_deterministic_by_seed(tmp_path):
    a = synthetic.write_spans(tmp_path / "a", 3, 300, seed=5)
    b = synthetic.write_spans(tmp_path / "b", 3, 300, seed=5)
    assert [p.name for p in a] == ["span-1", "span-2", "span-3"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["span-1", "span-2", "span-3"]  # no partial
    for x, y in zip(a, b):
        assert synthetic.is_complete(x, 300)
        assert [f.read_bytes() for f in sorted(x.glob("*.csv"))] == [f.read_bytes() for f in sorted(y.glob("*.csv"))]
    # Each span is other trips (its own seed), not a copy of the first.
    assert read_rows(a[0]) != read_rows(a[1])


def test_fare_drift_scales_fares_and_tips_by_span_and_keeps_the_rest(tmp_path):
    flat = read_rows(synthetic.write_span(tmp_path / "flat", 3, 500, seed=2))
    drifted = read_rows(synthetic.write_span(tmp_path / "drift", 3, 500, seed=2, fare_drift=0.03))
    assert len(flat) == len(drifted) == 500
    factor = 1.03 ** 2  # span 3: two spans of drift on top of span 1
    for before, after in zip(flat, drifted):
        for key in ("fare", "tips"):
            if before[key] == "":
                assert after[key] == ""
            else:
                assert float(after[key]) == pytest.approx(float(before[key]) * factor, abs=0.006)
        assert {k: v for k, v in before.items() if k not in ("fare", "tips")} == \
               {k: v for k, v in after.items() if k not in ("fare", "tips")}
    # Span 1 has no drift yet.
    assert read_rows(synthetic.write_span(tmp_path / "one", 1, 200, seed=2, fare_drift=0.03)) == \
        read_rows(synthetic.write_span(tmp_path / "one-flat", 1, 200, seed=2))


def test_bad_span_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--broken-span must be between 1 and 3"):
        synthetic.write_spans(tmp_path, 3, 10, broken_span=4)
    with pytest.raises(ValueError, match="broken kind"):
        synthetic.write_span(tmp_path, 1, 10, broken="typo")
    with pytest.raises(ValueError, match="numbered from 1"):
        synthetic.write_span(tmp_path, 0, 10)


@pytest.fixture(scope="module")
def span_statistics(tmp_path_factory):
    """TFDV statistics of four 2,000-row spans with 3% fare drift: 3 is broken by a payment type
    never seen, 4 by fares x100 (two layouts, as --broken-kind writes them)."""
    import tensorflow_data_validation as tfdv

    from pipeline.beam import DirectBeam

    root = tmp_path_factory.mktemp("spans")
    generator = synthetic.Generator()
    kinds = {1: None, 2: None, 3: "payment", 4: "fare"}
    stats = {}
    for span, broken in kinds.items():
        path = synthetic.write_span(root, span, 2_000, seed=0, fare_drift=0.03, broken=broken, generator=generator)
        from apache_beam.options.pipeline_options import PipelineOptions

        stats[span] = tfdv.generate_statistics_from_csv(
            str(path / "*.csv"), pipeline_options=PipelineOptions(DirectBeam("in_memory").args()))
    return stats


def curated_schema():
    import tensorflow_data_validation as tfdv

    from pipeline.schemas import CURATED_SCHEMA

    return tfdv.load_schema_text(str(CURATED_SCHEMA))


def test_a_span_broken_by_an_unseen_payment_type_is_an_anomaly_the_data_gate_stops(span_statistics):
    import tensorflow_data_validation as tfdv

    from components.data_gate import gate

    def payment_findings(span):
        anomalies = tfdv.validate_statistics(span_statistics[span], curated_schema())
        return {(f.kind, f.blocking) for f in gate.findings(anomalies, "train", warn_only=())
                if f.feature == "payment_type"}

    assert payment_findings(3) == {("ENUM_TYPE_UNEXPECTED_STRING_VALUES", True)}
    assert payment_findings(2) == set()  # a drifting but good span has none


def test_a_span_broken_by_fares_x100_drifts_beyond_the_gate_while_the_rising_fares_do_not(span_statistics):
    from components.data_gate import gate, options
    from models import features

    def drifted(span, baseline):
        return {f.feature for f in gate.drift_findings(
            span_statistics[span], span_statistics[baseline], curated_schema(), options.DEFAULT_MAX_DRIFT, (),
            features.drift_keys(), options.MIN_DRIFT_EXAMPLES) if f.blocking}

    assert drifted(2, 1) == set()  # 3% a span: within the gate's limit
    assert "fare" in drifted(4, 2)  # against the last good span
