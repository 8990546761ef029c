"""The whole pipeline on a small sample of the taxi data, through the real command line.

Real parts throughout: CsvExampleGen, TFDV, TFT and TFMA on Beam, Keras training, an SQLite MLMD
store. A few hundred rows and a few training steps keep it to a couple of minutes.
"""

import re
import subprocess
import sys
from pathlib import Path

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_serving.apis import prediction_log_pb2

from lineage.metrics import overall_metrics
from lineage.query import RunInfo
from tests.conftest import REPO, SMALL_RUN

pytestmark = pytest.mark.e2e

ALL_NODES = {
    "CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Transform",
    "Trainer", "latest_blessed_model_resolver", "Evaluator", "ServingCheck", "Pusher", "TFLiteExport",
    "accepted_statistics_resolver", "DataGate",
}
UPSTREAM = {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Transform", "Trainer"}

def _eval_records(summary: RunInfo) -> list[bytes]:
    """The whole eval split CsvExampleGen wrote: serialized tf.Examples of raw features."""
    examples_uri = summary.output("CsvExampleGen", "examples").uri
    files = sorted(tf.io.gfile.glob(f"{examples_uri}/Split-eval/*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _labels(records: list[bytes]) -> np.ndarray:
    """The README's label from the raw values: tip > 20% of the fare (0 where the fare is missing)."""
    labels = []
    for record in records:
        feature = tf.train.Example.FromString(record).features.feature
        fare, tips = feature["fare"].float_list.value, feature["tips"].float_list.value
        labels.append(int(bool(fare) and (tips[0] if tips else 0.0) > 0.2 * fare[0]))
    return np.array(labels)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney): the chance a positive scores above a negative, ties half."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    above = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return float(above / (len(positives) * len(negatives)))


def _directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _pushed_version(summary: RunInfo) -> Path:
    pushed = summary.output("Pusher", "pushed_model")
    assert pushed.properties["pushed"] == 1
    return Path(pushed.properties["pushed_destination"])


def test_every_component_completed_on_the_first_run(two_runs):
    _, _, (_, summary), _ = two_runs
    assert summary.states() == {n: "COMPLETE" for n in ALL_NODES}


def test_the_blessed_model_was_pushed_in_serving_layout(two_runs):
    output_dir, _, (first, summary), _ = two_runs
    blessing = summary.output("Evaluator", "blessing")
    assert blessing.properties["blessed"] == 1
    version = _pushed_version(summary)
    assert version.parent == output_dir / "serving" / "taxi" and version.name.isdigit()
    assert (version / "saved_model.pb").is_file()
    assert f"Pushed model:  {version}" in first.stdout
    for line in ("MLMD store:", "Logs:", "TensorBoard:", "Eval metrics: auc="):
        assert line in first.stdout


def test_the_pushed_model_passed_the_serving_check_and_carries_its_warm_up_requests(two_runs):
    _, _, (first, summary), _ = two_runs
    check = summary.output("ServingCheck", "blessing").properties
    assert check["blessed"] == 1 and check["requests"] == 100, check
    assert re.search(r"^Serving check: passed: 100 TF Serving requests .*p99 [\d.]+ ms", first.stdout, re.M), first.stdout[-3000:]
    # TF Serving's warm-up file, parsed with its own protos and replayed against the pushed model.
    warmup = _pushed_version(summary) / "assets.extra" / "tf_serving_warmup_requests"
    logs = [prediction_log_pb2.PredictionLog.FromString(r)
            for r in tf.data.TFRecordDataset(str(warmup)).as_numpy_iterator()]
    assert len(logs) == 100
    serve = tf.saved_model.load(str(_pushed_version(summary))).signatures["serving_default"]
    for log in logs[:5]:
        request = log.predict_log.request
        answer = serve(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})["probabilities"]
        assert answer.shape == (1, 1) and 0 <= float(answer[0, 0]) <= 1
    assert summary.output("Pusher", "pushed_model").properties["pushed"] == 1


def test_saved_model_cli_shows_the_signatures_the_readme_documents(two_runs):
    _, _, (_, summary), _ = two_runs
    cli = Path(sys.executable).with_name("saved_model_cli")  # TensorFlow's own tool, from the wheel
    shown = subprocess.run([str(cli), "show", "--dir", str(_pushed_version(summary)), "--tag_set", "serve"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    # TensorFlow lists its own initializer (__saved_model_init_op) among them; it is no signature to serve.
    signatures = set(re.findall(r'SignatureDef key: "(\w+)"', shown.stdout)) - {"__saved_model_init_op"}
    assert signatures == {"serving_default", "transform_features", "device", "device_inputs"}, shown.stdout
    readme = (REPO / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in signatures)


def test_pushed_model_answers_serialized_eval_examples_with_probabilities(two_runs):
    _, _, (_, summary), _ = two_runs
    version = _pushed_version(summary)
    examples_uri = summary.output("CsvExampleGen", "examples").uri
    files = tf.io.gfile.glob(f"{examples_uri}/Split-eval/*.gz")
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(32)]
    assert len(records) == 32
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    probabilities = serve(examples=tf.constant(records))["probabilities"].numpy()
    assert probabilities.shape == (32, 1)
    assert probabilities.std() > 0  # the model looks at its inputs


def test_the_evaluation_holds_the_gated_metrics_of_the_pushed_model_on_the_eval_split(two_runs):
    _, _, (_, summary), _ = two_runs
    metrics = overall_metrics(summary.output("Evaluator", "evaluation").uri)
    assert {"auc", "binary_accuracy", "example_count", "calibration"} <= set(metrics)
    # Recomputed here from the pushed model's answers on every eval example and the README's label.
    records = _eval_records(summary)
    labels = _labels(records)
    serve = tf.saved_model.load(str(_pushed_version(summary))).signatures["serving_default"]
    scores = serve(examples=tf.constant(records))["probabilities"].numpy().reshape(-1)
    assert metrics["example_count"] == len(records)
    assert metrics["binary_accuracy"] == pytest.approx(((scores > 0.5) == labels).mean(), abs=1.5 / len(records))
    assert metrics["auc"] == pytest.approx(_auc(scores, labels), abs=0.01)  # TFMA: 10,000 thresholds


def test_the_tflite_model_is_in_mlmd_as_made_from_the_trained_model(two_runs):
    output_dir, _, (_, summary), _ = two_runs

    tflite = summary.output("TFLiteExport", "tflite_model")
    model = summary.output("Trainer", "model")
    props = tflite.properties
    assert props["exported"] == 1 and props["quantization"] == "dynamic"
    # The sizes recorded are those of the files: the TFLite model, and the SavedModel's weights.
    pushed = Path(summary.output("Pusher", "pushed_model").properties["tflite_destination"])
    assert props["tflite_bytes"] == (pushed / "model.tflite").stat().st_size
    weights = _directory_bytes(_pushed_version(summary) / "variables")
    assert props["saved_model_weights_bytes"] == weights
    assert props["size_ratio"] == pytest.approx(weights / props["tflite_bytes"]) and props["size_ratio"] > 1

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(output_dir / "metadata.sqlite")
    store = mlmd.MetadataStore(config)
    [artifact] = store.get_artifacts_by_id([tflite.id])
    assert store.get_artifact_types_by_id([artifact.type_id])[0].name == "components.TFLiteModel"
    # Its producer, and the second run's cached execution that reused it, both read the model.
    producers = [e.execution_id for e in store.get_events_by_artifact_ids([tflite.id]) if e.type == e.OUTPUT]
    assert producers
    for execution_id in producers:
        inputs = store.get_events_by_execution_ids([execution_id])
        assert any(e.artifact_id == model.id and e.type == e.INPUT for e in inputs)


def test_the_tflite_file_is_pushed_beside_the_serving_model_with_its_version(two_runs):
    output_dir, _, (first, summary), _ = two_runs

    version = _pushed_version(summary)
    pushed = Path(summary.output("Pusher", "pushed_model").properties["tflite_destination"])
    assert pushed == output_dir / "serving" / "taxi_tflite" / version.name
    assert sorted(p.name for p in pushed.iterdir()) == ["device_contract.json", "metadata.json", "model.tflite"]
    runner = Interpreter(model_path=str(pushed / "model.tflite")).get_signature_runner("device")
    assert f"TFLite model:  {pushed} (dynamic" in first.stdout
    # It takes the SavedModel's decision on the eval split as often as recorded, and at least as
    # often as the run's parity gate asked (SMALL_RUN's --tflite-min-agreement).
    records = _eval_records(summary)
    saved_model = tf.saved_model.load(str(version))
    expected = saved_model.signatures["serving_default"](examples=tf.constant(records))["probabilities"].numpy()
    inputs = saved_model.signatures["device_inputs"](examples=tf.constant(records))
    actual = runner(**{k: v.numpy() for k, v in inputs.items()})["probabilities"]
    agreement = ((actual.reshape(-1) >= 0.5) == (expected.reshape(-1) >= 0.5)).mean()
    props = summary.output("TFLiteExport", "tflite_model").properties
    assert props["parity_examples"] == len(records)
    gate = float(SMALL_RUN[SMALL_RUN.index("--tflite-min-agreement") + 1])
    assert props["agreement"] == pytest.approx(agreement, abs=0.5 / len(records)) and agreement >= gate  # the same count


def test_an_unchanged_rerun_is_served_from_cache_through_the_push(two_runs):
    _, _, (_, first), (second_result, second) = two_runs
    assert second.run_id != first.run_id
    states = second.states()
    # Only the resolvers run: the data gate is not asked to compare the data with itself.
    ran = {"accepted_statistics_resolver", "latest_blessed_model_resolver"}
    assert states == {n: "COMPLETE" if n in ran else "CACHED" for n in ALL_NODES}
    # Cached means the same artifacts, not new copies: the model is not evaluated against itself
    # (its baseline is what the first run resolved: none), not pushed again, not exported again.
    for node, key in [("Trainer", "model"), ("Evaluator", "blessing"), ("Pusher", "pushed_model"),
                      ("TFLiteExport", "tflite_model")]:
        assert second.output(node, key).id == first.output(node, key).id, node
    assert second.execution("Evaluator").inputs.get("baseline_model", []) == []
    assert second.output("DataGate", "accepted_statistics").id == first.output("DataGate", "accepted_statistics").id
    assert f"Pushed model:  {_pushed_version(first)} (pushed by an earlier run" in second_result.stdout


def test_a_new_model_is_judged_against_the_last_blessed_one(two_runs, retrained_run):
    output_dir, _, (_, first), _ = two_runs
    _, third = retrained_run
    states = third.states()
    assert all(states[n] == "CACHED" for n in UPSTREAM - {"Trainer"}), states
    assert states["Trainer"] == states["Evaluator"] == states["Pusher"] == "COMPLETE"
    [baseline] = third.execution("Evaluator").inputs["baseline_model"]
    assert baseline.id == first.output("Trainer", "model").id != third.output("Trainer", "model").id


def test_logs_go_to_a_file_under_the_output_dir(two_runs):
    output_dir, _, _, _ = two_runs
    logs = sorted((output_dir / "logs").glob("run-*.log"))
    assert logs and "Component Trainer is finished" in logs[0].read_text()


def test_no_tfx_package_is_built_for_the_in_process_beam_runner(two_runs):
    output_dir, _, _, _ = two_runs
    log = sorted((output_dir / "logs").glob("run-*.log"))[0].read_text()
    assert "Component Transform is finished" in log and "Component Evaluator is finished" in log
    # TFX's log line before it builds its sdist for remote Beam workers (pipeline/local_beam.py).
    assert "Attempting to infer TFX Python dependency" not in log


def test_the_sample_has_no_anomalies_against_the_curated_schema(two_runs):
    _, _, (_, summary), _ = two_runs
    uri = Path(summary.output("ExampleValidator", "anomalies").uri)
    diffs = sorted(uri.glob("Split-*/SchemaDiff.pb"))
    assert {d.parent.name for d in diffs} == {"Split-train", "Split-eval"}
    for path in diffs:
        anomalies = anomalies_pb2.Anomalies.FromString(path.read_bytes())
        assert not anomalies.anomaly_info, {k: v.short_description for k, v in anomalies.anomaly_info.items()}


def test_training_wrote_tensorboard_logs_where_the_readme_says(two_runs):
    output_dir, _, _, _ = two_runs
    events = list((output_dir / "pipeline_root" / "Trainer" / "model_run").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
