"""The slow tier: what the README promises of the defaults, checked on the real thing.

- the default run (the bundled data, default training, default gates) passes its gates and is
  pushed, with the figures read from the run's MLMD records and TFMA's outputs;
- `--beam-mode multi_processing --beam-workers 2` really runs the Beam-powered components on two
  worker processes each;
- `--max-auc-drop` stops a model that passes the absolute gates but is worse than the one serving.

Each runs the pipeline through the command line; the default run trains 1,000 steps on the full
data, so this tier is left out of `make test` (run it with `make test ARGS="-m slow"`).
"""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data import taxi
from report.build import collect_evaluation
from tests.conftest import REPO, latest_summary, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


def cli(output_dir: Path, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "cli", "run", "--output-dir", str(output_dir), *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-6000:]}"


def serving_state(output_dir: Path) -> dict[str, str]:
    """Every file under serving/, with a hash of its bytes."""
    root = output_dir / "serving"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def gate_statuses(evaluation) -> dict[tuple[str, str], str]:
    """(metric, bound) -> status, for the gates on the whole eval split."""
    return {(g.metric, g.bound): g.status for g in evaluation.gates if g.slice == "Overall"}


def tfma_failures(evaluation_uri: str) -> list[tuple[str, str]]:
    """TFMA's own validation failures: (metric, "value" or "change"), on every slice."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    return [(f.metric_key.name, "change" if f.metric_threshold.HasField("change_threshold") else "value")
            for per_slice in result.metric_validations_per_slice for f in per_slice.failures]


# --- the default run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """`python -m cli run` with nothing but an output directory: the bundled data, every default."""
    output_dir = tmp_path_factory.mktemp("defaults") / "out"
    result = cli(output_dir)
    assert result.returncode == 0, output_of(result)
    run = latest_summary(output_dir)
    return output_dir, result, run, collect_evaluation(run)


def test_the_default_run_on_the_bundled_data_passes_the_default_gates_and_is_pushed(default_run):
    output_dir, result, run, evaluation = default_run
    assert run.state == "COMPLETE", run.states()
    # The full bundled data and the default training, as recorded in MLMD.
    assert Path(run.execution("CsvExampleGen").properties["input_base"]) == taxi.DEFAULT_DATA_DIR
    assert run.execution("Trainer").properties["train_args"]["num_steps"] == 1000
    overall = evaluation.overall.candidate
    assert 4500 <= overall["example_count"] <= 5500  # a third of the bundled ~15,000 rows

    # The README's figures: AUC >= 0.85 and binary accuracy >= 0.80, at the default gates.
    assert overall["auc"] >= 0.85, overall
    assert overall["binary_accuracy"] >= 0.80, overall
    gates = gate_statuses(evaluation)
    assert gates[("auc", ">= 0.85")] == "passed", gates
    assert gates[("binary_accuracy", ">= 0.8")] == "passed", gates
    assert gates[("auc", "change >= -0.01")].startswith("not checked"), gates  # no model before it
    assert tfma_failures(evaluation.uri) == []

    assert evaluation.blessed is True
    assert run.output("Evaluator", "blessing").properties["blessed"] == 1
    pushed = run.output("Pusher", "pushed_model")
    assert pushed.properties["pushed"] == 1
    version = Path(pushed.properties["pushed_destination"])
    assert version.parent == output_dir / "serving" / "taxi" and version.name.isdigit()
    assert (version / "saved_model.pb").is_file()
    assert "Model blessed: yes" in result.stdout, result.stdout[-3000:]


def test_max_auc_drop_blocks_a_worse_model_that_passes_the_absolute_gates(default_run):
    output_dir, _, first, first_evaluation = default_run
    serving_before = serving_state(output_dir)
    assert serving_before, "the default run pushed nothing"
    # 20 training steps instead of 1,000: a clearly worse model, judged at absolute gates it passes.
    result = cli(output_dir, "--train-steps", "20", "--min-auc", "0.6", "--min-binary-accuracy", "0.6",
                 "--max-auc-drop", "0.02", "--no-report")
    assert result.returncode == 0, output_of(result)
    second = latest_summary(output_dir)
    assert second.run_id != first.run_id
    evaluation = collect_evaluation(second)

    # Judged against the default run's model, and really worse than it.
    [baseline] = second.execution("Evaluator").inputs["baseline_model"]
    assert baseline.id == first.output("Trainer", "model").id != second.output("Trainer", "model").id
    first_auc, second_auc = first_evaluation.overall.candidate["auc"], evaluation.overall.candidate["auc"]
    assert second_auc < first_auc - 0.02, (first_auc, second_auc)
    assert evaluation.overall.diff["auc"] < -0.02, evaluation.overall.diff

    # The absolute gates pass; the change gate alone fails, in TFMA's own validation result too.
    gates = gate_statuses(evaluation)
    assert gates == {("auc", ">= 0.6"): "passed", ("binary_accuracy", ">= 0.6"): "passed",
                     ("auc", "change >= -0.02"): "failed"}, gates
    assert set(tfma_failures(evaluation.uri)) == {("auc", "change")}

    # Not blessed, nothing pushed: the serving directory is byte for byte what it was.
    assert evaluation.blessed is False
    assert second.output("Evaluator", "blessing").properties["blessed"] == 0
    pushed = second.output("Pusher", "pushed_model").properties
    assert pushed["pushed"] == 0 and pushed["not_pushed_reason"] == "the Evaluator did not bless the model"
    assert serving_state(output_dir) == serving_before
    assert re.search(r"Model blessed: no\b.*auc change", result.stdout), result.stdout[-3000:]
    assert re.search(r"auc change vs baseline -0\.\d{4} \(needs >= -0\.02\): failed", result.stdout), result.stdout[-3000:]
    assert "Pushed model:  none this run" in result.stdout


# --- Beam multi_processing ------------------------------------------------------------------------

def harness_starts(log: str) -> dict[str, int]:
    """Per component, how many Beam SDK worker processes started while it ran.

    "Python sdk harness starting." is logged by each worker process Beam's FnApiRunner starts in
    multi_processing mode (in_memory runs its one worker in the caller's process: no such line).
    """
    counts: dict[str, int] = {}
    current = None
    for line in log.splitlines():
        if m := re.search(r"Component (\S+) is running\.", line):
            current = m.group(1)
            counts.setdefault(current, 0)
        elif re.search(r"Component (\S+) is finished\.", line):
            current = None
        elif "Python sdk harness starting." in line:
            counts[current or "(outside a component)"] = counts.get(current or "(outside a component)", 0) + 1
    return counts


def test_multi_processing_runs_each_beam_component_on_two_worker_processes(tmp_path):
    data_dir = taxi.write_sample(tmp_path / "data", rows=600)
    output_dir = tmp_path / "out"
    result = run_cli(output_dir, data_dir, "--beam-mode", "multi_processing", "--beam-workers", "2", "--no-report")
    run = latest_summary(output_dir)
    assert run.state == "COMPLETE" and set(run.states().values()) == {"COMPLETE"}, run.states()
    assert run.output("Pusher", "pushed_model").properties["pushed"] == 1
    [log] = sorted((output_dir / "logs").glob("run-*.log"))
    assert f"Logs:          {log}" in result.stdout
    starts = harness_starts(log.read_text())
    # Two worker processes for each Beam-powered component, none for the others (nor outside one).
    assert {c: n for c, n in starts.items() if n} == {c: 2 for c in BEAM_COMPONENTS}, starts
