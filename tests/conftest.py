"""Shared fixtures: a handful of raw taxi rows, and TFT's real Beam implementation run over them."""

import models  # noqa: F401  (the project's Keras choice, before TensorFlow is imported)

import csv
import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from data import taxi
from models import preprocessing
from pipeline.beam import DirectBeam
from pipeline.locations import Locations, OutputDir
from pipeline.schemas import CURATED_SCHEMA, SCHEMA_DIR

REPO = Path(__file__).resolve().parent.parent

# In CI a test whose real dependency is missing fails: a skip there would pass the suite without
# the check. On a developer's machine (CI unset) it stays a skip, with its reason.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every real dependency must be present: {reason}"

NAN = math.nan

# Six trips; None is a missing value. Frequencies are all different so vocabulary ids are exact:
# payment_type: Cash x3 -> 0, Credit Card x2 -> 1, missing x1 -> 2.
RAW_ROWS = [
    dict(trip_miles=1.0, fare=10.0, tips=0.0, trip_seconds=100, payment_type="Cash", company="A", trip_start_hour=1, pickup_latitude=41.80),
    dict(trip_miles=2.0, fare=20.0, tips=5.0, trip_seconds=200, payment_type="Credit Card", company="A", trip_start_hour=1, pickup_latitude=41.85),
    dict(trip_miles=3.0, fare=30.0, tips=1.0, trip_seconds=None, payment_type="Cash", company="B", trip_start_hour=2, pickup_latitude=41.90),
    dict(trip_miles=None, fare=40.0, tips=10.0, trip_seconds=300, payment_type="Credit Card", company=None, trip_start_hour=1, pickup_latitude=None),
    dict(trip_miles=2.0, fare=50.0, tips=0.0, trip_seconds=400, payment_type="Cash", company="A", trip_start_hour=3, pickup_latitude=41.95),
    dict(trip_miles=4.0, fare=60.0, tips=20.0, trip_seconds=500, payment_type=None, company="B", trip_start_hour=2, pickup_latitude=42.00),
]


def load_schema():
    return tfdv.load_schema_text(str(SCHEMA_DIR / "schema.pbtxt"))


def raw_feature_spec() -> dict:
    return schema_utils.schema_as_feature_spec(load_schema()).feature_spec


def _value(spec, value):
    return [] if value is None else [value.encode() if spec.dtype == tf.string else value]


def raw_instances(rows=RAW_ROWS) -> list[dict]:
    """Rows as TFT instance dicts: every schema feature present, a missing value as []."""
    spec = raw_feature_spec()
    return [{k: _value(s, row.get(k)) for k, s in spec.items()} for row in rows]


def serialized_examples(rows=RAW_ROWS, drop=()) -> list[bytes]:
    """Rows as serialized tf.Examples of raw features, the way clients send them to serving."""
    spec = raw_feature_spec()
    out = []
    for row in rows:
        example = tf.train.Example()
        for key, s in spec.items():
            value = row.get(key)
            if key in drop or value is None:
                continue
            f = example.features.feature[key]
            if s.dtype == tf.string:
                f.bytes_list.value.append(value.encode())
            elif s.dtype == tf.int64:
                f.int64_list.value.append(int(value))
            else:
                f.float_list.value.append(float(value))
        out.append(example.SerializeToString())
    return out


@pytest.fixture(scope="session")
def transformed(tmp_path_factory):
    """Analyzes RAW_ROWS with TFT on Beam, then applies the saved transform graph to them.

    Returns (transformed values as numpy, by feature; the TFTransformOutput; a glob of gzipped
    TFRecords of the transformed rows, as the Transform component writes them).
    """
    root = tmp_path_factory.mktemp("tft")
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(raw_feature_spec())
    with beam.Pipeline(argv=DirectBeam("in_memory").args()) as p:
        with tft_beam.Context(temp_dir=str(root / "tmp")):
            raw = p | "Rows" >> beam.Create(raw_instances())
            transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(preprocessing.preprocessing_fn)
            _ = transform_fn | tft_beam.WriteTransformFn(str(root / "transform_output"))

    # The raw schema goes beside the transform graph, as the Transform component writes it.
    metadata_io.write_metadata(metadata, str(root / "transform_output" / tft.TFTransformOutput.RAW_METADATA_DIR))
    tft_output = tft.TFTransformOutput(str(root / "transform_output"))
    raw_batch = tf.io.parse_example(serialized_examples(), raw_feature_spec())
    values = {k: v.numpy() for k, v in tft_output.transform_raw_features(raw_batch).items()}

    path = root / "transformed_examples" / "part-0.gz"
    path.parent.mkdir()
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for i in range(len(RAW_ROWS)):
            example = tf.train.Example()
            for key, column in values.items():
                feature = example.features.feature[key]
                if column.dtype.kind == "f":
                    feature.float_list.value.append(float(column[i]))
                else:
                    feature.int64_list.value.append(int(column[i]))
            writer.write(example.SerializeToString())
    return values, tft_output, str(path.parent / "*.gz")


def bundled_rows(count: int) -> list[dict]:
    """Every k-th row of the bundled taxi CSV (about `count`), typed as the schema says."""
    spec = raw_feature_spec()
    with taxi.bundled_csv().open(newline="") as f:
        body = list(csv.DictReader(f))
    rows = []
    for raw in body[:: max(1, len(body) // count)][:count]:
        row = {}
        for key, s in spec.items():
            text = raw.get(key, "")
            row[key] = None if text == "" else text if s.dtype == tf.string else int(float(text)) if s.dtype == tf.int64 else float(text)
        rows.append(row)
    return rows


@pytest.fixture(scope="session")
def taxi_model(tmp_path_factory):
    """A small real model: TFT on Beam over 1,500 bundled rows, 150 steps, exported as the Trainer does.

    Returns (export dir, TFTransformOutput, serialized raw train examples, serialized raw eval
    examples: 600 other rows).
    """
    from models import model

    rows = bundled_rows(2100)
    train_rows, eval_rows = rows[:1500], rows[1500:]
    root = tmp_path_factory.mktemp("taxi_model")
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(raw_feature_spec())
    with beam.Pipeline(argv=DirectBeam("in_memory").args()) as p:
        with tft_beam.Context(temp_dir=str(root / "tmp")):
            raw = p | "Rows" >> beam.Create(raw_instances(train_rows))
            (data, transformed_metadata), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
                preprocessing.preprocessing_fn
            )
            coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
            _ = data | beam.Map(coder.encode) | beam.io.WriteToTFRecord(
                str(root / "transformed" / "part"), file_name_suffix=".gz"
            )
            _ = transform_fn | tft_beam.WriteTransformFn(str(root / "transform_output"))
    metadata_io.write_metadata(metadata, str(root / "transform_output" / tft.TFTransformOutput.RAW_METADATA_DIR))
    tft_output = tft.TFTransformOutput(str(root / "transform_output"))
    files = [str(root / "transformed" / "part*.gz")]
    hp = model.Hyperparameters(train_batch_size=64, eval_batch_size=64)
    trained = model.train(files, files, tft_output, hp, train_steps=150, eval_steps=1)
    export_dir = str(root / "serving_model")
    model.export_serving_model(trained, tft_output, export_dir)
    return export_dir, tft_output, serialized_examples(train_rows), serialized_examples(eval_rows)


# --- real pipeline runs, shared by the end-to-end and lineage tests (they cost minutes) ----------

SMALL_RUN = [
    "--train-steps", "60", "--eval-steps", "1", "--train-batch-size", "64",
    # 600 rows are not the full data: the gates are lowered, not removed. A model this small puts
    # many eval examples within 0.01 of the 0.5 threshold, where quantized weights flip from 2% to
    # 10% of ~200 decisions from one run to the next (seen: 98.0%, 90.5%), so its TFLite parity
    # gate is lowered too; the default gate is checked on the full model (tests/test_defaults.py).
    "--min-auc", "0.6", "--min-binary-accuracy", "0.6", "--tflite-min-agreement", "0.8",
]


def run_cli(output_dir: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(output_dir), "--data-dir", str(data_dir)]
    result = subprocess.run(argv + SMALL_RUN + list(extra), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def tree_hashes(directory: Path) -> dict[str, str]:
    """Every path under `directory` (hidden ones too) with its sha256 ("dir" for a directory): what
    'left exactly as it was' is compared by."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}


def latest_summary(output_dir: Path, pipeline_name: str = "chicago_taxi"):
    from runs.execute import latest_run

    return latest_run(OutputDir(output_dir), pipeline_name)


def local_locations(output_dir: Path, data: Path | str | None = None) -> Locations:
    """A local run's locations under `output_dir` (data: the output dir itself unless given)."""
    output = OutputDir(output_dir)
    return Locations.under(output, str(data or output_dir), CURATED_SCHEMA, DirectBeam("in_memory").args())


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """The pipeline run twice on a 600-row sample, the same command both times.

    Returns (output_dir, data_dir, (first stdout result, its summary), (second ..., ...)).
    """
    root = tmp_path_factory.mktemp("e2e")
    data_dir = taxi.write_sample(root / "data", rows=600)
    output_dir = root / "out"
    first = run_cli(output_dir, data_dir)
    first_summary = latest_summary(output_dir)
    second = run_cli(output_dir, data_dir)
    return output_dir, data_dir, (first, first_summary), (second, latest_summary(output_dir))


@pytest.fixture(scope="session")
def retrained_run(two_runs):
    """A third run on the same store with one more training step: a new model, which the
    Evaluator judges against the first run's blessed one. Returns (stdout result, its summary)."""
    output_dir, data_dir, _, _ = two_runs
    result = run_cli(output_dir, data_dir, "--train-steps", "61")
    return result, latest_summary(output_dir)
