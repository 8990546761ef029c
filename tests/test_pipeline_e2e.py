"""The whole pipeline on a small sample of the taxi data, through the real command line.

Real parts throughout: CsvExampleGen, TFDV, TFT and TFMA on Beam, Keras training, an SQLite MLMD
store. A few hundred rows and a few training steps keep it to a couple of minutes.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from data import taxi
from pipeline import run_summary
from pipeline.config import PipelineConfig

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
ALL_NODES = {
    "CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Transform",
    "Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher",
}
UPSTREAM = {"CsvExampleGen", "StatisticsGen", "ExampleValidator", "Transform", "Trainer"}


def run_cli(output_dir: Path, data_dir: Path) -> subprocess.CompletedProcess:
    argv = [
        sys.executable, "-m", "cli", "run",
        "--output-dir", str(output_dir), "--data-dir", str(data_dir),
        "--train-steps", "60", "--eval-steps", "1", "--train-batch-size", "64",
        # 600 rows are not the full data: the gates are lowered, not removed.
        "--min-auc", "0.6", "--min-binary-accuracy", "0.6",
    ]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data_dir = taxi.write_sample(root / "data", rows=600)
    output_dir = root / "out"
    first = run_cli(output_dir, data_dir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    first_summary = _latest(output_dir)
    second = run_cli(output_dir, data_dir)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    return output_dir, (first, first_summary), (second, _latest(output_dir))


def _latest(output_dir: Path) -> run_summary.RunSummary:
    config = PipelineConfig(output_dir=output_dir)
    return run_summary.latest_run(run_summary.open_store(config.metadata_path), config.pipeline_name)


def _pushed_version(summary: run_summary.RunSummary) -> Path:
    pushed = summary.output("Pusher", "pushed_model")
    assert run_summary.custom_property(pushed, "pushed") == 1
    return Path(run_summary.custom_property(pushed, "pushed_destination"))


def test_every_component_completed_on_the_first_run(two_runs):
    _, (_, summary), _ = two_runs
    assert set(summary.nodes) == ALL_NODES
    assert {n: r.state for n, r in summary.nodes.items()} == {n: "COMPLETE" for n in ALL_NODES}


def test_the_blessed_model_was_pushed_in_serving_layout(two_runs):
    output_dir, (first, summary), _ = two_runs
    blessing = summary.output("Evaluator", "blessing")
    assert run_summary.custom_property(blessing, "blessed") == 1
    version = _pushed_version(summary)
    assert version.parent == output_dir / "serving" / "taxi" and version.name.isdigit()
    assert (version / "saved_model.pb").is_file()
    assert f"Pushed model:  {version}" in first.stdout
    for line in ("MLMD store:", "Logs:", "TensorBoard:", "Eval metrics: auc="):
        assert line in first.stdout


def test_pushed_model_answers_serialized_eval_examples_with_probabilities(two_runs):
    _, (_, summary), _ = two_runs
    version = _pushed_version(summary)
    examples_uri = summary.output("CsvExampleGen", "examples").uri
    files = tf.io.gfile.glob(f"{examples_uri}/Split-eval/*.gz")
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(32)]
    assert len(records) == 32
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    probabilities = serve(examples=tf.constant(records))["probabilities"].numpy()
    assert probabilities.shape == (32, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert probabilities.std() > 0  # the model looks at its inputs


def test_the_evaluation_holds_the_gated_metrics(two_runs):
    _, (_, summary), _ = two_runs
    metrics = run_summary.overall_metrics(summary.output("Evaluator", "evaluation").uri)
    assert {"auc", "binary_accuracy", "example_count", "calibration"} <= set(metrics)
    assert metrics["example_count"] > 100
    assert 0.6 <= metrics["auc"] <= 1


def test_second_run_is_served_from_cache(two_runs):
    output_dir, (_, first), (second_out, second) = two_runs
    assert second.run_id != first.run_id
    states = {n: r.state for n, r in second.nodes.items()}
    assert all(states[n] == "CACHED" for n in UPSTREAM), states
    # Cached means the same artifacts, not new copies.
    assert second.output("Trainer", "model").id == first.output("Trainer", "model").id
    # The Evaluator reruns once, now with a baseline (the first run's blessed model): the gate
    # compares the candidate against it, and the candidate is the same model, so it passes again.
    assert states["latest_blessed_model_resolver"] == "COMPLETE"
    blessing = second.output("Evaluator", "blessing")
    assert run_summary.custom_property(blessing, "blessed") == 1


def test_logs_go_to_a_file_under_the_output_dir(two_runs):
    output_dir, _, _ = two_runs
    logs = sorted((output_dir / "logs").glob("run-*.log"))
    assert logs and "Component Trainer is finished" in logs[-1].read_text()
