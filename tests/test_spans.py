"""Data as spans: the layout's checks, the per-span gate baseline and the training window (on a
real in-memory MLMD store recorded as runs record it), and, end to end, a sequence of real runs
over small span folders sharing one output directory (marked slow: several pipeline runs)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from data import spans, taxi
from data.validate import DataError
from pipeline.config import ConfigError, PipelineConfig
from tests.conftest import REPO, SMALL_RUN


def write_span(root: Path, span: int, rows: int = 300, fare_times: float = 1.0) -> Path:
    """span-<span>/data.csv: every k-th bundled row from offset `span` (spans differ, alike in
    distribution); `fare_times` scales the fares (a broken span: the gate's drift check stops it)."""
    with taxi.bundled_csv().open(newline="") as f:
        reader = csv.reader(f)
        header, body = next(reader), list(reader)
    stride = max(1, len(body) // rows)
    chosen = body[span % stride::stride][:rows]
    fare = header.index("fare")
    if fare_times != 1.0:
        chosen = [r[:fare] + [f"{float(r[fare] or 0) * fare_times + 100:.2f}"] + r[fare + 1:] for r in chosen]
    folder = spans.span_dir(root, span)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(chosen)
    return folder


# --- the layout --------------------------------------------------------------------------------

def test_a_flat_directory_is_one_span_and_span_folders_are_numbered(tmp_path):
    flat = taxi.write_sample(tmp_path / "flat", rows=20)
    assert spans.layout(flat).flat and spans.select(spans.layout(flat), 0) == 0
    for n in (1, 2, 10):
        write_span(tmp_path / "spanned", n, rows=20)
    found = spans.layout(tmp_path / "spanned")
    assert sorted(found.spans) == [1, 2, 10] and found.newest == 10
    assert spans.select(found, 0) == 10 and spans.select(found, 2) == 2
    assert found.describe() == "spans 1-2, 10"


@pytest.mark.parametrize("make, named", [
    (lambda root: (root / "span-x").mkdir(), "span-x"),
    (lambda root: (root / "span-0").mkdir(), "span-0"),
    (lambda root: (root / "span-01").mkdir(), "span-01"),
    (lambda root: (root / "span-3").mkdir(), "span-3: an empty span folder"),
    (lambda root: (root / "old.csv").write_text("a,b\n1,2\n"), "old.csv"),
    (lambda root: (root / "span-4.csv").write_text("a,b\n1,2\n"), "span-4.csv: not a span folder name"),
])
def test_a_bad_layout_is_refused_naming_the_folder(tmp_path, make, named):
    write_span(tmp_path, 1, rows=20)
    make(tmp_path)
    with pytest.raises(DataError, match=named.replace(".", r"\.")):
        spans.layout(tmp_path)


def test_a_span_the_directory_lacks_is_refused_naming_the_option(tmp_path):
    write_span(tmp_path, 1, rows=20)
    write_span(tmp_path, 2, rows=20)
    with pytest.raises(DataError, match=r"--span 9: no folder .*span-9 .*holds spans 1-2"):
        spans.select(spans.layout(tmp_path), 9)
    with pytest.raises(DataError, match="--span 2: .* is a flat directory"):
        spans.select(spans.layout(taxi.write_sample(tmp_path / "flat", rows=20)), 2)


@pytest.mark.parametrize("field, value", [("span", -1), ("train_spans", 0)])
def test_span_settings_are_checked(field, value):
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')}"):
        PipelineConfig(**{field: value})


def test_the_span_fingerprint_is_the_one_csv_example_gen_records(tmp_path):
    from tfx.utils import io_utils

    folder = write_span(tmp_path, 3, rows=20)
    (folder / "more.csv").write_text((folder / "data.csv").read_text())
    os.utime(folder / "more.csv", (1_700_000_000, 1_700_000_000))
    found = spans.layout(tmp_path)
    expected = io_utils.generate_fingerprint(spans.SPLIT_NAME, os.path.join(str(tmp_path), "span-3/*"))
    assert spans.fingerprint(found, 3) == expected
    (folder / "more.csv").write_text("changed")
    assert spans.fingerprint(found, 3) != expected


def test_a_bad_span_is_one_line_before_any_component(tmp_path):
    write_span(tmp_path / "data", 1, rows=20)
    (tmp_path / "data" / "span-x").mkdir()
    result = subprocess.run([sys.executable, "-m", "cli", "run", "--output-dir", str(tmp_path / "out"),
                             "--data-dir", str(tmp_path / "data")], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'data' / 'span-x'}: not a span folder name; span folders are named span-1, span-2, ... "
        "(a number from 1, no leading zeros), each holding that span's CSV files"]
    assert not (tmp_path / "out" / "pipeline_root").exists()


def test_a_window_over_spans_that_never_ran_is_refused_naming_them(tmp_path):
    for n in (1, 2, 3):
        write_span(tmp_path / "data", n, rows=20)
    result = subprocess.run([sys.executable, "-m", "cli", "run", "--output-dir", str(tmp_path / "out"),
                             "--data-dir", str(tmp_path / "data"), "--train-spans", "3"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: --train-spans 3: spans 1-2 of {tmp_path / 'data'} never went through the pipeline, so the data "
        "gate has not checked them: run them first, oldest first (--span 1), or train on fewer spans"]
    assert not (tmp_path / "out").exists()


# --- the resolvers, on MLMD records as a run writes them ------------------------------------------

class _History:
    """A fake-database MLMD store with CsvExampleGen's Examples (span property), StatisticsGen's
    statistics of them and DataGate's accepted copies, linked by INPUT/OUTPUT events."""

    def __init__(self):
        config = mlmd.ConnectionConfig()
        config.fake_database.SetInParent()
        self.store = metadata_store.MetadataStore(config)
        self.types = {name: self.store.put_artifact_type(mlmd.ArtifactType(name=name))
                      for name in ("Examples", "ExampleStatistics")}
        self.exec_type = self.store.put_execution_type(mlmd.ExecutionType(name="step"))
        self.examples: dict[int, int] = {}  # span -> examples id (the latest)
        self.statistics: dict[int, int] = {}  # span -> statistics id
        self.accepted: dict[int, int] = {}  # span -> accepted copy id

    def _step(self, inputs: dict[str, int], outputs: dict[str, int]) -> None:
        [execution] = self.store.put_executions([mlmd.Execution(type_id=self.exec_type)])
        step = mlmd.Event.Path.Step
        self.store.put_events([
            mlmd.Event(execution_id=execution, artifact_id=a, type=kind, path=mlmd.Event.Path(steps=[step(key=k)]))
            for kind, io in ((mlmd.Event.INPUT, inputs), (mlmd.Event.OUTPUT, outputs)) for k, a in io.items()])

    def ingest(self, span: int, accepted: bool) -> None:
        example = mlmd.Artifact(type_id=self.types["Examples"], uri=f"/examples/{span}")
        example.custom_properties["span"].int_value = span
        example.custom_properties["input_fingerprint"].string_value = f"fp{span}"
        [self.examples[span]] = self.store.put_artifacts([example])
        [self.statistics[span]] = self.store.put_artifacts([mlmd.Artifact(type_id=self.types["ExampleStatistics"])])
        self._step({"examples": self.examples[span]}, {"statistics": self.statistics[span]})
        if accepted:
            [self.accepted[span]] = self.store.put_artifacts([mlmd.Artifact(type_id=self.types["ExampleStatistics"])])
            self._step({"statistics": self.statistics[span]}, {"accepted_statistics": self.accepted[span]})

    def tfx_artifact(self, artifact_id: int, examples: bool):
        from tfx.types import standard_artifacts

        artifact = standard_artifacts.Examples() if examples else standard_artifacts.ExampleStatistics()
        artifact.id = artifact_id
        span = next((s for s, i in self.examples.items() if i == artifact_id), None)
        if span is not None:
            artifact.set_int_custom_property("span", span)
        return artifact


@pytest.mark.parametrize("history, current, baseline", [
    ([(1, True)], 2, 1),  # a new span: compared with the one before
    ([(1, True), (2, False)], 3, 1),  # after a refused span: with the last accepted one
    ([(1, True), (2, True), (3, True)], 2, 1),  # a backfill of span 2: with span 1, not the newest
    ([(2, True), (3, True)], 1, 2),  # a backfill below every accepted span: its nearest neighbour
    ([(1, True)], 1, None),  # span 1 again: not compared with itself
])
def test_the_gate_compares_a_span_with_the_nearest_accepted_span_below(history, current, baseline):
    from pipeline.resolvers import ACCEPTED_INPUT_KEY, CURRENT_INPUT_KEY, LatestAccepted

    h = _History()
    for span, accepted in history:
        h.ingest(span, accepted)
    if current not in dict(history):  # this run's statistics, not (yet) accepted
        h.ingest(current, accepted=False)
    result = LatestAccepted().resolve_artifacts(h.store, {
        CURRENT_INPUT_KEY: [h.tfx_artifact(h.statistics[current], examples=False)],
        ACCEPTED_INPUT_KEY: [h.tfx_artifact(i, examples=False) for i in h.accepted.values()],
    })
    resolved = [a.id for a in result[ACCEPTED_INPUT_KEY]]
    assert resolved == ([h.accepted[baseline]] if baseline else [])


@pytest.mark.parametrize("history, current, k, window", [
    ([(1, True), (2, True)], 3, 3, [1, 2, 3]),
    ([(1, True), (2, True), (3, True)], 4, 2, [3, 4]),
    ([(1, True), (2, False), (3, True)], 4, 3, [1, 3, 4]),  # the refused span never trains a model
    ([(1, True)], 2, 3, [1, 2]),  # a young history: what there is
    ([(1, True), (2, True), (3, True)], 2, 3, [1, 2]),  # a backfill's window ends at its span
])
def test_the_window_is_the_run_span_and_the_newest_accepted_spans_before_it(history, current, k, window):
    from pipeline.resolvers import ACCEPTED_INPUT_KEY, EXAMPLES_KEY, SpanWindow

    h = _History()
    for span, accepted in history:
        h.ingest(span, accepted)
    if current not in dict(history):
        h.ingest(current, accepted=True)
    result = SpanWindow(num_spans=k).resolve_artifacts(h.store, {
        EXAMPLES_KEY: [h.tfx_artifact(h.examples[current], examples=True)],
        ACCEPTED_INPUT_KEY: [h.tfx_artifact(i, examples=False) for i in h.accepted.values()],
    })
    assert [a.get_int_custom_property("span") for a in result[EXAMPLES_KEY]] == window


# --- end to end: one output directory, a sequence of real runs over growing span folders ----------

def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *argv], cwd=REPO, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def span_runs(tmp_path_factory):
    """--span 1 (backfill), the newest (span 2), the newest again (nothing new), a broken span 3,
    then span 4 with --train-spans 3: five invocations, four pipeline runs, one store.
    Returns (output dir, {name: CompletedProcess}, the runs in MLMD oldest first)."""
    from lineage.query import Lineage
    from lineage.store import StoreAddress, open_store

    root = tmp_path_factory.mktemp("spans")
    data, out = root / "data", root / "out"
    # 1,800 rows a span: the gate compares drift from 1,000 training examples on (MIN_DRIFT_EXAMPLES).
    rows = 1800
    write_span(data, 1, rows)
    write_span(data, 2, rows)
    run = ["run", "--output-dir", str(out), "--data-dir", str(data), *SMALL_RUN, "--train-steps", "20"]
    done = {"span1": _cli(*run, "--span", "1"), "span2": _cli(*run)}
    done["again"] = _cli(*run)
    write_span(data, 3, rows, fare_times=20.0)
    done["broken"] = _cli(*run)
    write_span(data, 4, rows)
    done["window"] = _cli(*run, "--train-spans", "3")
    done["history"] = _cli("history", "--output-dir", str(out), "--json")
    done["fed_serving"] = _cli("lineage", "spans", "--output-dir", str(out), "--json")
    done["fed_window_model"] = _cli("lineage", "spans", "latest-model", "--output-dir", str(out), "--json")
    done["span2_fed"] = _cli("lineage", "spans", "--output-dir", str(out), "--span", "2", "--json")
    lineage = Lineage(open_store(StoreAddress(sqlite=out / "metadata.sqlite")))
    return out, done, [lineage.with_io(r) for r in lineage.runs()]


def _span(run) -> int:
    return run.output("CsvExampleGen", "examples").properties["span"]


@pytest.mark.slow
@pytest.mark.e2e
def test_backfill_then_the_newest_span_then_nothing_new(span_runs):
    _, done, runs = span_runs
    for name in ("span1", "span2", "again"):
        assert done[name].returncode == 0, done[name].stderr[-3000:]
    assert [_span(r) for r in runs[:2]] == [1, 2]
    assert done["again"].stdout.startswith("No new span in ") and "span 2 is the newest" in done["again"].stdout
    assert "Running chicago_taxi" not in done["again"].stdout
    assert len(runs) == 4  # the "nothing new" invocation recorded no run


@pytest.mark.slow
@pytest.mark.e2e
def test_a_broken_span_is_stopped_and_the_next_is_compared_with_the_last_accepted(span_runs):
    _, done, runs = span_runs
    assert done["broken"].returncode == 1 and "Run failed in DataGate" in done["broken"].stderr
    assert "Traceback" not in done["broken"].stderr
    assert _span(runs[2]) == 3 and runs[2].states()["DataGate"] == "FAILED"
    assert done["window"].returncode == 0, done["window"].stderr[-3000:]
    import json

    history = {row["span"]: row for row in json.loads(done["history"].stdout)}
    assert history[3]["gate"] == "stopped" and history[3]["compared_with"] == 2
    assert history[4]["gate"] == "passed" and history[4]["compared_with"] == 2  # not the refused span 3


@pytest.mark.slow
@pytest.mark.e2e
def test_a_window_of_three_spans_feeds_one_model_skipping_the_refused_span(span_runs):
    _, done, runs = span_runs
    window = runs[3]
    assert window.states()["Trainer"] == "COMPLETE"
    transform = window.execution("Transform")
    assert sorted(a.properties["span"] for a in transform.inputs["examples"]) == [1, 2, 4]
    assert len(window.execution("Trainer").inputs["examples"]) == 3  # Transform's output, one per span
    assert window.execution("Evaluator").inputs["examples"][0].properties["span"] == 4
    assert "Data:          span 4 read; trained on spans 1, 2, 4; evaluated on span 4's eval split" in done["window"].stdout


@pytest.mark.slow
@pytest.mark.e2e
def test_the_history_lists_every_run(span_runs):
    import json

    out, done, runs = span_runs
    assert done["history"].returncode == 0, done["history"].stderr[-2000:]
    rows = json.loads(done["history"].stdout)
    assert [r["run_id"] for r in rows] == [r.run_id for r in runs]
    assert [r["span"] for r in rows] == [1, 2, 3, 4]
    assert [r["trained_on"] for r in rows] == [[1], [2], [], [1, 2, 4]]
    assert rows[1]["drift"] and rows[1]["pushed"] and rows[3]["blessed"] is not None
    assert (out / "reports" / "history.html").is_file()


def test_the_kubeflow_spec_takes_the_span_as_a_runtime_parameter(tmp_path):
    import json

    import yaml

    from kubeflow import RANGE_CONFIG_PARAM, default_spec_path, range_config_value

    result = _cli("kfp", "compile", "--image", "registry.example.org/tfx-taxi:test", "--pipeline-root",
                  "gs://tfx-taxi-test/root", "--output-dir", str(tmp_path), "--spans", "--span", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    spec = yaml.safe_load(default_spec_path(tmp_path, "chicago_taxi").read_text())
    parameter = spec["root"]["inputDefinitions"]["parameters"][RANGE_CONFIG_PARAM]
    assert json.loads(parameter["defaultValue"]) == {"static_range": {"start_span_number": 3, "end_span_number": 3}}
    task = spec["root"]["dag"]["tasks"]["CsvExampleGen"]
    assert task["inputs"]["parameters"]["range_config"]["componentInputParameter"] == RANGE_CONFIG_PARAM
    assert range_config_value(0) == ""
    for target in ("kubeflow", "vertex"):
        refused = _cli("kfp", "compile", "--image", "registry.example.org/tfx-taxi:test", "--pipeline-root",
                       "gs://tfx-taxi-test/root", "--output-dir", str(tmp_path), "--spans", "--train-spans", "3",
                       "--target", target)
        assert refused.returncode == 2 and "--train-spans: a window of spans is resolved from MLMD" in refused.stderr
        assert "Traceback" not in refused.stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_lineage_says_which_spans_fed_the_serving_model_and_which_models_a_span_fed(span_runs):
    import json

    _, done, runs = span_runs
    # The window run's model need not be blessed (20 steps: the baseline may do better on span 4).
    pushed = [r for r in runs if r.output("Pusher", "pushed_model") is not None
              and r.output("Pusher", "pushed_model").properties.get("pushed") == 1]
    served = json.loads(done["fed_serving"].stdout)
    assert sorted(int(s) for s in served["spans"]) == sorted(
        a.properties["span"] for a in pushed[-1].execution("Transform").inputs["examples"])
    window_model = json.loads(done["fed_window_model"].stdout)
    assert window_model["artifact"]["id"] == runs[3].output("Trainer", "model").id
    assert sorted(int(s) for s in window_model["spans"]) == [1, 2, 4]
    models = json.loads(done["span2_fed"].stdout)["models"]
    trained = [r.output("Trainer", "model").id for r in runs if r.output("Trainer", "model") is not None]
    assert [m["id"] for m in models] == trained[-2:]  # span 2's own run and the window run, not span 1's
