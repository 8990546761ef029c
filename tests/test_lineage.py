"""The lineage command on real MLMD stores written by real pipeline runs.

The main store is the end-to-end test's (two identical runs, then a third that trains one
step more); a second, differently shaped pipeline (with a component this tool knows nothing of)
shows that nothing is specific to this project's pipeline.
"""

import hashlib
import json
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pydot
import pytest
from click.testing import CliRunner
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component

import cli
from data import taxi
from components import code_fingerprint
from pipeline.pipeline import MODELS_DIR

pytestmark = pytest.mark.e2e


def lineage(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["lineage", *args])
    # Failures must be the command's own exit with a message, never an escaped exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def lineage_json(*args: str):
    code, output = lineage(*args, "--json")
    assert code == 0, output
    return json.loads(output)


@pytest.fixture(scope="module")
def store(two_runs, retrained_run) -> str:
    return str(two_runs[0] / "metadata.sqlite")


def test_runs_lists_each_run_with_node_states(store):
    runs = lineage_json("runs", "--mlmd-sqlite", store)
    assert len(runs) == 3 and all(r["state"] == "COMPLETE" for r in runs)
    first, second, _ = ({n["node_id"]: n["state"] for n in r["nodes"]} for r in runs)
    assert set(first.values()) == {"COMPLETE"}
    assert second["CsvExampleGen"] == second["Trainer"] == second["Pusher"] == "CACHED"
    code, text = lineage("runs", "--mlmd-sqlite", store)
    assert code == 0 and runs[0]["run_id"] in text
    assert "COMPLETE 12" in text and "CACHED 10, COMPLETE 2" in text  # first run; second run


def test_pushed_model_traces_back_to_the_raw_examples_schema_and_code(store, two_runs, retrained_run):
    _, _, (_, first), _ = two_runs
    _, third = retrained_run
    trace = lineage_json("trace", "latest-pushed-model", "--mlmd-sqlite", store)
    artifact_ids = {a["id"] for a in trace["artifacts"]}
    assert first.output("CsvExampleGen", "examples").id in artifact_ids
    assert first.output("ImportSchemaGen", "schema").id in artifact_ids
    nodes = [e["node_id"] for e in trace["executions"]]
    assert sorted(nodes) == sorted(set(nodes)), nodes  # one producer each: no baseline history
    by_node = {e["node_id"]: e for e in trace["executions"]}
    assert {"CsvExampleGen", "ImportSchemaGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(by_node)
    assert all(e["state"] == "COMPLETE" for e in trace["executions"])  # the real producers, not cache hits
    # The third run's model, trained on what the first run made: runs 2 and 3 reused ExampleGen's
    # and Transform's outputs from cache.
    assert by_node["Trainer"]["id"] == third.execution("Trainer").id
    assert by_node["CsvExampleGen"]["reused_by_cached_executions"] == 2
    assert by_node["Transform"]["reused_by_cached_executions"] == 2
    assert by_node["Trainer"]["reused_by_cached_executions"] == 0
    assert by_node["Trainer"]["code"] == {"run_fn": "models.trainer.run_fn", "code_fingerprint": code_fingerprint(MODELS_DIR)}
    assert by_node["Transform"]["code"]["preprocessing_fn"] == "models.preprocessing.preprocessing_fn"
    assert by_node["Trainer"]["properties"]["train_args"] == {"num_steps": 61}


def test_downstream_of_the_examples_reaches_every_model_and_push(store, two_runs):
    _, _, (_, first), _ = two_runs
    examples = first.output("CsvExampleGen", "examples")
    trace = lineage_json("trace", str(examples.id), "--downstream", "--mlmd-sqlite", store)
    types = {a["type"] for a in trace["artifacts"]}
    assert {"Model", "PushedModel", "ModelEvaluation", "TransformGraph"} <= types
    code, text = lineage("trace", examples.uri, "--downstream", "--mlmd-sqlite", store)
    assert code == 0 and "Pusher" in text  # a URI works as well as an id


def test_show_gives_each_nodes_inputs_outputs_and_parameters(store):
    run = lineage_json("show", "latest", "--mlmd-sqlite", store)
    nodes = {n["node_id"]: n for n in run["nodes"]}
    assert nodes["Evaluator"]["state"] == "COMPLETE"  # a new model in the third run
    assert set(nodes["Evaluator"]["inputs"]) >= {"examples", "model", "baseline_model"}
    assert "blessing" in nodes["Evaluator"]["outputs"]


def test_diff_reports_the_parameter_changed_between_runs(store):
    diff = lineage_json("diff", "latest~2", "latest", "--mlmd-sqlite", store)
    changed = {(p["node"], p["parameter"]): (p["a"], p["b"]) for p in diff["parameters"]}
    steps = [k for k in changed if k[0] == "Trainer" and k[1].startswith("train_args")]
    assert steps, changed
    assert {changed[k] for k in steps} == {(60, 61)}
    assert not [k for k in changed if k[0] in ("Evaluator", "Transform")], changed
    assert isinstance(diff["metrics"], list)
    code, text = lineage("diff", "latest~2", "latest", "--no-metrics", "--mlmd-sqlite", store)
    assert code == 0 and "train_args" in text and "61" in text and "Evaluation metrics: not compared" in text


def test_diff_of_a_run_and_its_cached_rerun_finds_no_parameter_change(store):
    diff = lineage_json("diff", "latest~2", "latest~1", "--no-metrics", "--mlmd-sqlite", store)
    assert diff["parameters"] == []  # cached executions record less; that is not a change
    assert {s["node"]: (s["a"], s["b"]) for s in diff["states"]}["Trainer"] == ("COMPLETE", "CACHED")


def test_run_metrics_reads_the_evaluators_overall_metrics(store):
    from lineage import metrics
    from lineage.query import Lineage
    from lineage.store import StoreAddress, open_store

    run = Lineage(open_store(StoreAddress(sqlite=Path(store)))).run("latest~2")
    values = metrics.run_metrics(run)
    assert 0.6 <= values["Evaluator.auc"] <= 1 and values["Evaluator.example_count"] > 100


def test_graph_is_valid_dot_and_mermaid_and_a_real_picture(store, tmp_path):
    data = lineage_json("graph", "--mlmd-sqlite", store, "--picture", str(tmp_path / "run.png"))
    (dot,) = pydot.graph_from_dot_data(data["dot"])
    names = {n.get_name().strip('"') for n in dot.get_nodes()}
    assert sum(1 for n in names if n.startswith("e:")) == 12
    assert len(dot.get_edges()) > 9
    assert data["mermaid"].startswith("flowchart LR")
    png = (tmp_path / "run.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    code, _ = lineage("graph", "latest-model", "--artifact", "--mlmd-sqlite", store, "--picture", str(tmp_path / "t.svg"))
    assert code == 0
    assert ET.parse(tmp_path / "t.svg").getroot().tag.endswith("svg")


def test_stores_are_opened_read_only(store, tmp_path):
    from ml_metadata import errors
    from ml_metadata.proto import metadata_store_pb2
    from lineage.store import LineageError, StoreAddress, open_store

    opened = open_store(StoreAddress(sqlite=Path(store)))
    with pytest.raises(errors.StatusError):
        opened.put_artifact_type(metadata_store_pb2.ArtifactType(name="WrittenByLineage"))
    # A file that is SQLite but not MLMD: refused, and left exactly as it was.
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    with pytest.raises(LineageError, match="not an ML Metadata store"):
        open_store(StoreAddress(sqlite=other))
    assert other.read_bytes() == before


def test_the_store_is_never_modified(store, tmp_path):
    before = hashlib.sha256(Path(store).read_bytes()).hexdigest()
    for args in (["runs"], ["show"], ["trace", "latest-model"], ["graph"], ["diff", "latest~2", "latest", "--no-metrics"]):
        code, output = lineage(*args, "--mlmd-sqlite", store)
        assert code == 0, output
    assert hashlib.sha256(Path(store).read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "1999-01-01"], "no run '1999-01-01'"),
        (["show", "latest~7"], "latest~7: the store holds only 3 runs"),
        (["trace", "999999"], "no artifact with id 999999"),
        (["trace", "/no/such/uri"], "no artifact '/no/such/uri'"),
        (["trace", "latest:NoSuchType"], "the store holds no NoSuchType artifact"),
        (["graph", "--picture", "x.gif"], "give a .png or .svg file name"),
        (["show", "latest~-1"], "write latest, or latest~N"),
        (["show", "latest~x"], "write latest, or latest~N"),
        (["show", "--pipeline", "nope"], "the store holds no pipeline run of 'nope'"),
    ],
)
def test_unknown_ids_are_clear_errors(store, args, message):
    code, output = lineage(*args, "--mlmd-sqlite", store)
    assert code == 1 and message in output


def test_an_ambiguous_run_prefix_is_refused(store):
    import os.path

    runs = lineage_json("runs", "--mlmd-sqlite", store)
    prefix = os.path.commonprefix([r["run_id"] for r in runs])
    assert prefix  # TFX run ids are timestamps
    code, output = lineage("show", prefix, "--mlmd-sqlite", store)
    assert code == 1 and "matches 3 runs; give more of the run id" in output


def test_missing_empty_and_incompatible_stores_are_clear_errors(store, tmp_path):
    code, output = lineage("runs", "--mlmd-sqlite", str(tmp_path / "nothing.sqlite"))
    assert code == 1 and "no ML Metadata store at" in output
    code, output = lineage("runs", "--output-dir", str(tmp_path / "never_ran"))
    assert code == 1 and "never_ran/metadata.sqlite" in output
    (tmp_path / "empty.sqlite").touch()
    code, output = lineage("runs", "--mlmd-sqlite", str(tmp_path / "empty.sqlite"))
    assert code == 1 and "is empty" in output
    # A store written by a newer ml-metadata: its schema version is ahead of this library's.
    newer = tmp_path / "newer.sqlite"
    shutil.copyfile(store, newer)
    with sqlite3.connect(newer) as db:  # test setup only; the tool itself never touches SQL
        db.execute("UPDATE MLMDEnv SET schema_version = schema_version + 100")
    code, output = lineage("runs", "--mlmd-sqlite", str(newer))
    assert code == 1 and "schema" in output.lower()


# --- a differently shaped pipeline ------------------------------------------------------------------


@component
def CountFeatures(schema: InputArtifact[tfx.types.standard_artifacts.Schema],
                  report: OutputArtifact[tfx.types.standard_artifacts.String]):
    """A component the lineage tool has never heard of."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from google.protobuf import text_format

    parsed = text_format.Parse((Path(schema.uri) / "schema.pbtxt").read_text(), schema_pb2.Schema())
    report.value = str(len(parsed.feature))


@pytest.fixture(scope="module")
def other_store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("other")
    example_gen = tfx.components.CsvExampleGen(input_base=str(taxi.write_sample(root / "data", rows=200)))
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"])
    counter = CountFeatures(schema=schema.outputs["schema"])
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="other_shape",
        pipeline_root=str(root / "root"),
        components=[example_gen, statistics, schema, counter],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "mlmd.sqlite")
        ),
        beam_pipeline_args=["--runner=FnApiRunner", "--direct_running_mode=in_memory"],
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return str(root / "mlmd.sqlite")


def test_any_pipeline_shape_and_unknown_components(other_store):
    (run,) = lineage_json("runs", "--mlmd-sqlite", other_store)
    assert run["pipeline"] == "other_shape"
    assert {n["node_id"]: n["state"] for n in run["nodes"]} == {
        "CsvExampleGen": "COMPLETE", "StatisticsGen": "COMPLETE", "SchemaGen": "COMPLETE", "CountFeatures": "COMPLETE"
    }
    trace = lineage_json("trace", "latest:String", "--mlmd-sqlite", other_store)
    assert [e["node_id"] for e in sorted(trace["executions"], key=lambda e: e["id"])] == [
        "CsvExampleGen", "StatisticsGen", "SchemaGen", "CountFeatures"
    ]
    code, text = lineage("show", "--mlmd-sqlite", other_store)
    assert code == 0 and "CountFeatures" in text and "String #" in text
