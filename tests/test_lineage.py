"""The lineage command on real MLMD stores written by real pipeline runs.

Two stores of pipeline runs: the end-to-end test's (conftest's `two_runs` and `retrained_run`;
other test files read it too, so runs there are named by id, never counted), and this file's own
(`own_runs`: two runs that differ in a training parameter and in their data), where the tests
that count runs, diff runs and draw a run's graph look. Expected values come from MLMD's own
API, TFMA's files and the examples, not from the lineage code. A second, differently shaped
pipeline (with a component this tool knows nothing of) shows that nothing is specific to this
project's pipeline.
"""

import hashlib
import json
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pydot
import pytest
from click.testing import CliRunner
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component

import cli
from data import taxi
from components import code_fingerprint
from pipeline.pipeline import MODELS_DIR
from tests.conftest import latest_summary, run_cli
from tests.test_report import examples_of, tfma_file_metrics

pytestmark = pytest.mark.e2e

PIPELINE = "chicago_taxi"
Event = mlmd.Event
INPUTS = {Event.INPUT, Event.DECLARED_INPUT, Event.INTERNAL_INPUT}
OUTPUTS = {Event.OUTPUT, Event.DECLARED_OUTPUT, Event.INTERNAL_OUTPUT, Event.PENDING_OUTPUT}


def lineage(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["lineage", *args])
    # Failures must be the command's own exit with a message, never an escaped exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def lineage_json(*args: str):
    code, output = lineage(*args, "--json")
    assert code == 0, output
    return json.loads(output)


class Mlmd:
    """A store read with ml_metadata's own API: what the lineage command's answers are checked against."""

    def __init__(self, path: str):
        config = mlmd.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READONLY
        self.store = metadata_store.MetadataStore(config)
        self.artifact_types = {t.id: t.name for t in self.store.get_artifact_types()}

    def executions(self, run_id: str) -> list[mlmd.Execution]:
        context = self.store.get_context_by_type_and_name("pipeline_run", run_id)
        return self.store.get_executions_by_context(context.id)

    def node_id(self, execution: mlmd.Execution) -> str:
        (node,) = [c for c in self.store.get_contexts_by_execution(execution.id) if c.type == "node"]
        return node.name.removeprefix(PIPELINE + ".")

    def execution(self, run_id: str, node_id: str) -> mlmd.Execution:
        (found,) = [e for e in self.executions(run_id) if self.node_id(e) == node_id]
        return found

    def artifacts(self, execution: mlmd.Execution, key: str, types=OUTPUTS) -> list[mlmd.Artifact]:
        ids = [ev.artifact_id for ev in self.store.get_events_by_execution_ids([execution.id])
               if ev.type in types and key in [step.key for step in ev.path.steps]]
        return self.store.get_artifacts_by_id(ids) if ids else []

    def output(self, run_id: str, node_id: str, key: str) -> mlmd.Artifact:
        (artifact,) = self.artifacts(self.execution(run_id, node_id), key)
        return artifact


# --- the end-to-end test's store (shared: runs named by id) ----------------------------------------


@pytest.fixture(scope="module")
def store(two_runs, retrained_run) -> str:
    return str(two_runs[0] / "metadata.sqlite")


def test_runs_lists_each_run_with_node_states(store, two_runs, retrained_run):
    _, _, (_, first), (_, second) = two_runs
    _, third = retrained_run
    runs = {r["run_id"]: r for r in lineage_json("runs", "--mlmd-sqlite", store)}
    states = {run.run_id: {n["node_id"]: n["state"] for n in runs[run.run_id]["nodes"]} for run in (first, second, third)}
    assert all(runs[run_id]["state"] == "COMPLETE" for run_id in states)
    assert set(states[first.run_id].values()) == {"COMPLETE"} and len(states[first.run_id]) == 13
    assert states[second.run_id]["CsvExampleGen"] == states[second.run_id]["Trainer"] == states[second.run_id]["Pusher"] == "CACHED"
    code, text = lineage("runs", "--mlmd-sqlite", store)
    assert code == 0
    line = {run_id: next(row.rstrip() for row in text.splitlines() if row.startswith(run_id)) for run_id in states}
    assert line[first.run_id].endswith("COMPLETE 13") and line[second.run_id].endswith("CACHED 11, COMPLETE 2")


def test_a_pushed_model_traces_back_to_the_raw_examples_schema_and_code(store, two_runs, retrained_run):
    _, _, (_, first), _ = two_runs
    _, third = retrained_run
    store_api = Mlmd(store)
    pushed = store_api.output(third.run_id, "Pusher", "pushed_model")
    trace = lineage_json("trace", str(pushed.id), "--mlmd-sqlite", store)
    artifact_ids = {a["id"] for a in trace["artifacts"]}
    examples = store_api.output(first.run_id, "CsvExampleGen", "examples")
    assert examples.id in artifact_ids
    assert store_api.output(first.run_id, "ImportSchemaGen", "schema").id in artifact_ids
    nodes = [e["node_id"] for e in trace["executions"]]
    assert sorted(nodes) == sorted(set(nodes)), nodes  # one producer each: no baseline history
    by_node = {e["node_id"]: e for e in trace["executions"]}
    assert {"CsvExampleGen", "ImportSchemaGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(by_node)
    assert all(e["state"] == "COMPLETE" for e in trace["executions"])  # the real producers, not cache hits
    # The third run's model, trained on what the first run made, which later runs reused from cache.
    assert by_node["Trainer"]["id"] == store_api.execution(third.run_id, "Trainer").id
    assert by_node["CsvExampleGen"]["id"] == store_api.execution(first.run_id, "CsvExampleGen").id
    for node, artifact in (("CsvExampleGen", examples), ("Transform", store_api.output(first.run_id, "Transform", "transform_graph"))):
        # Every CACHED execution in the store that re-recorded this output, counted here from MLMD.
        events = store_api.store.get_events_by_artifact_ids([artifact.id])
        reusers = store_api.store.get_executions_by_id([ev.execution_id for ev in events if ev.type in OUTPUTS])
        cached = [e for e in reusers if e.last_known_state == mlmd.Execution.CACHED]
        assert len(cached) >= 2  # runs 2 and 3 at least
        assert by_node[node]["reused_by_cached_executions"] == len(cached), node
    assert by_node["Trainer"]["reused_by_cached_executions"] == 0
    assert by_node["Trainer"]["code"] == {"run_fn": "models.trainer.run_fn", "code_fingerprint": code_fingerprint(MODELS_DIR)}
    assert by_node["Transform"]["code"]["preprocessing_fn"] == "models.preprocessing.preprocessing_fn"
    assert by_node["Trainer"]["properties"]["train_args"] == {"num_steps": 61}


def test_downstream_of_the_examples_reaches_every_model_and_push(store, two_runs):
    _, _, (_, first), _ = two_runs
    examples = Mlmd(store).output(first.run_id, "CsvExampleGen", "examples")
    trace = lineage_json("trace", str(examples.id), "--downstream", "--mlmd-sqlite", store)
    types = {a["type"] for a in trace["artifacts"]}
    assert {"Model", "PushedModel", "ModelEvaluation", "TransformGraph"} <= types
    code, text = lineage("trace", examples.uri, "--downstream", "--mlmd-sqlite", store)
    assert code == 0 and "Pusher" in text  # a URI works as well as an id


def test_show_gives_each_nodes_inputs_outputs_and_parameters(store, retrained_run):
    _, third = retrained_run
    run = lineage_json("show", third.run_id, "--mlmd-sqlite", store)
    nodes = {n["node_id"]: n for n in run["nodes"]}
    assert nodes["Evaluator"]["state"] == "COMPLETE"  # a new model in the third run
    assert set(nodes["Evaluator"]["inputs"]) >= {"examples", "model", "baseline_model"}
    assert "blessing" in nodes["Evaluator"]["outputs"]


def test_diff_of_a_run_and_its_cached_rerun_finds_no_parameter_change(store, two_runs):
    _, _, (_, first), (_, second) = two_runs
    diff = lineage_json("diff", first.run_id, second.run_id, "--no-metrics", "--mlmd-sqlite", store)
    assert diff["parameters"] == []  # cached executions record less; that is not a change
    assert {s["node"]: (s["a"], s["b"]) for s in diff["states"]}["Trainer"] == ("COMPLETE", "CACHED")
    assert diff["metrics"] is None  # not read, which is not "no difference"
    # Read, the rerun's metrics are those of the evaluation it reused: nothing moved.
    assert lineage_json("diff", first.run_id, second.run_id, "--mlmd-sqlite", store)["metrics"] == []


def test_run_metrics_reads_the_evaluators_overall_metrics(store, two_runs):
    from lineage import metrics
    from lineage.query import Lineage
    from lineage.store import StoreAddress, open_store

    _, _, (_, first), _ = two_runs
    values = metrics.run_metrics(Lineage(open_store(StoreAddress(sqlite=Path(store)))).run(first.run_id))
    store_api = Mlmd(store)
    stored = tfma_file_metrics(store_api.output(first.run_id, "Evaluator", "evaluation").uri)["Overall"]["candidate"]
    assert values == {f"Evaluator.{name}": value for name, value in stored.items()}
    eval_split = examples_of(store_api.output(first.run_id, "CsvExampleGen", "examples").uri, "eval")
    assert values["Evaluator.example_count"] == len(eval_split)


def test_stores_are_opened_read_only(store, tmp_path):
    from ml_metadata import errors
    from lineage.store import LineageError, StoreAddress, open_store

    opened = open_store(StoreAddress(sqlite=Path(store)))
    with pytest.raises(errors.StatusError):
        opened.put_artifact_type(mlmd.ArtifactType(name="WrittenByLineage"))
    # A file that is SQLite but not MLMD: refused, and left exactly as it was.
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    with pytest.raises(LineageError, match="not an ML Metadata store"):
        open_store(StoreAddress(sqlite=other))
    assert other.read_bytes() == before


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


# --- this file's own store: two runs, another training step and other data --------------------------


@pytest.fixture(scope="module")
def own_runs(tmp_path_factory):
    """Two runs into a store no other test writes to: a 600-row sample; then the same data
    directory with its first 30 rows gone, and one more training step. The second run's Evaluator
    judges its model against the first run's, the blessed model before it.

    Returns (store path, first run id, second run id).
    """
    root = tmp_path_factory.mktemp("lineage_own")
    data_dir = taxi.write_sample(root / "data", rows=600)
    output_dir = root / "out"
    run_cli(output_dir, data_dir, "--no-report")
    first = latest_summary(output_dir).run_id
    csv_file = data_dir / "data.csv"
    lines = csv_file.read_text().splitlines(keepends=True)
    csv_file.write_text(lines[0] + "".join(lines[31:]))
    run_cli(output_dir, data_dir, "--train-steps", "61", "--no-report")
    second = latest_summary(output_dir).run_id
    assert first != second
    return str(output_dir / "metadata.sqlite"), first, second


def test_runs_counts_the_runs_of_the_store(own_runs):
    own, first, second = own_runs
    runs = lineage_json("runs", "--mlmd-sqlite", own)
    assert [r["run_id"] for r in runs] == [first, second]  # oldest first
    assert [r["state"] for r in runs] == ["COMPLETE", "COMPLETE"]
    assert lineage_json("show", "latest", "--mlmd-sqlite", own)["run_id"] == second
    assert lineage_json("show", "latest~1", "--mlmd-sqlite", own)["run_id"] == first


def test_diff_names_the_changed_parameter_input_and_metrics(own_runs):
    own, first, second = own_runs
    store_api = Mlmd(own)
    diff = lineage_json("diff", first, second, "--mlmd-sqlite", own)
    assert (diff["run_a"], diff["run_b"]) == (first, second)
    changed = {(p["node"], p["parameter"]): (p["a"], p["b"]) for p in diff["parameters"]}
    assert changed[("Trainer", "train_args.num_steps")] == (60, 61), changed
    assert not [k for k in changed if k[0] in ("Evaluator", "Transform")], changed
    # The data changed: StatisticsGen read other examples, each run's own.
    inputs = {(i["node"], i["input"]): (i["a"], i["b"]) for i in diff["inputs"]}
    examples = [store_api.output(run_id, "CsvExampleGen", "examples") for run_id in (first, second)]
    assert inputs[("StatisticsGen", "examples")] == ([examples[0].uri], [examples[1].uri])
    # Metrics: exactly those TFMA stored differently for the two models, with both values.
    stored = [tfma_file_metrics(store_api.output(run_id, "Evaluator", "evaluation").uri)["Overall"]["candidate"]
              for run_id in (first, second)]
    expected = {f"Evaluator.{k}": (stored[0].get(k), stored[1].get(k))
                for k in stored[0].keys() | stored[1].keys() if stored[0].get(k) != stored[1].get(k)}
    moved = {m["metric"]: (m["a"], m["b"]) for m in diff["metrics"]}
    assert moved == expected
    eval_sizes = tuple(len(examples_of(e.uri, "eval")) for e in examples)
    assert moved["Evaluator.example_count"] == eval_sizes and eval_sizes[0] != eval_sizes[1]

    code, text = lineage("diff", "latest~1", "latest", "--no-metrics", "--mlmd-sqlite", own)
    assert code == 0 and "Evaluation metrics: not compared" in text
    assert re.search(r"^Trainer\s+train_args\.num_steps\s+60\s+61\s*$", text, re.M), text
    assert re.search(r"^StatisticsGen\s+examples\s", text, re.M), text


def test_with_baselines_the_trace_follows_the_model_the_evaluator_compared_against(own_runs):
    own, first, second = own_runs
    store_api = Mlmd(own)
    evaluator = store_api.execution(second, "Evaluator")
    (baseline,) = store_api.artifacts(evaluator, "baseline_model", INPUTS)
    first_model = store_api.output(first, "Trainer", "model")
    assert baseline.id == first_model.id  # what the option is about: the first run's model
    evaluation = store_api.output(second, "Evaluator", "evaluation")
    first_trainer = store_api.execution(first, "Trainer").id

    plain = lineage_json("trace", str(evaluation.id), "--mlmd-sqlite", own)
    assert store_api.output(second, "Trainer", "model").id in {a["id"] for a in plain["artifacts"]}
    assert first_model.id not in {a["id"] for a in plain["artifacts"]}
    assert first_trainer not in {e["id"] for e in plain["executions"]}

    followed = lineage_json("trace", str(evaluation.id), "--with-baselines", "--mlmd-sqlite", own)
    assert first_model.id in {a["id"] for a in followed["artifacts"]}
    assert first_trainer in {e["id"] for e in followed["executions"]}
    assert [e["node_id"] for e in followed["executions"]].count("Trainer") == 2
    assert [f"a:{first_model.id}", f"e:{evaluator.id}"] in followed["edges"]


def _run_graph(store_api: Mlmd, run_id: str) -> tuple[dict[str, tuple[str, str]], set[tuple[str, str]]]:
    """A run's nodes ({"e:<id>"/"a:<id>": (kind, label)}) and edges, from MLMD's events."""
    executions = store_api.executions(run_id)
    nodes, edges = {}, set()
    for e in executions:
        nodes[f"e:{e.id}"] = ("execution", f"{store_api.node_id(e)}\n{mlmd.Execution.State.Name(e.last_known_state)}")
    events = store_api.store.get_events_by_execution_ids([e.id for e in executions])
    for artifact in store_api.store.get_artifacts_by_id(list({ev.artifact_id for ev in events})):
        nodes[f"a:{artifact.id}"] = ("artifact", f"{store_api.artifact_types[artifact.type_id]}\n#{artifact.id}")
    for ev in events:
        if ev.type in INPUTS:
            edges.add((f"a:{ev.artifact_id}", f"e:{ev.execution_id}"))
        elif ev.type in OUTPUTS:
            edges.add((f"e:{ev.execution_id}", f"a:{ev.artifact_id}"))
    return nodes, edges


def test_graph_prints_the_runs_nodes_and_edges_as_mermaid_and_dot(own_runs, tmp_path):
    own, _, second = own_runs
    nodes, edges = _run_graph(Mlmd(own), second)
    assert sum(1 for n in nodes if n.startswith("e:")) == 13

    code, text = lineage("graph", "latest", "--format", "mermaid", "--mlmd-sqlite", own)
    assert code == 0, text
    lines = text.rstrip("\n").splitlines()
    assert lines[0] == "flowchart LR"
    shown_nodes, shown_edges = {}, set()
    for line in lines[1:]:
        if edge := re.fullmatch(r"  ([ae])_(\d+) --> ([ae])_(\d+)", line):
            shown_edges.add((f"{edge[1]}:{edge[2]}", f"{edge[3]}:{edge[4]}"))
        elif box := re.fullmatch(r'  e_(\d+)\["([^"]*)"\]', line):  # executions: boxes
            shown_nodes[f"e:{box[1]}"] = ("execution", box[2].replace("<br/>", "\n"))
        elif stadium := re.fullmatch(r'  a_(\d+)\(\["([^"]*)"\]\)', line):  # artifacts: rounded
            shown_nodes[f"a:{stadium[1]}"] = ("artifact", stadium[2].replace("<br/>", "\n"))
        else:
            pytest.fail(f"not a Mermaid node or edge: {line!r}")
    assert shown_nodes == nodes
    assert shown_edges == edges

    data = lineage_json("graph", "--mlmd-sqlite", own, "--picture", str(tmp_path / "run.png"))
    assert data["mermaid"] == text.rstrip("\n") + "\n"
    (dot,) = pydot.graph_from_dot_data(data["dot"])
    names = {n.get_name().strip('"') for n in dot.get_nodes()}
    assert {n for n in names if re.fullmatch(r"[ae]:\d+", n)} == set(nodes), names
    assert {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in dot.get_edges()} == edges
    png = (tmp_path / "run.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    code, _ = lineage("graph", "latest-model", "--artifact", "--mlmd-sqlite", own, "--picture", str(tmp_path / "t.svg"))
    assert code == 0
    assert ET.parse(tmp_path / "t.svg").getroot().tag.endswith("svg")


def test_latest_pushed_model_is_the_newest_model_really_pushed(own_runs):
    own, _, _ = own_runs
    store_api = Mlmd(own)
    pushed = [a for a in store_api.store.get_artifacts_by_type("PushedModel")
              if a.custom_properties["pushed"].int_value == 1]
    newest = max(pushed, key=lambda a: (a.create_time_since_epoch, a.id))
    assert lineage_json("trace", "latest-pushed-model", "--mlmd-sqlite", own)["root"]["id"] == newest.id


def test_the_store_is_never_modified(own_runs):
    own, first, second = own_runs
    before = hashlib.sha256(Path(own).read_bytes()).hexdigest()
    for args in (["runs"], ["show"], ["trace", "latest-model"], ["graph"], ["diff", first, second]):
        code, output = lineage(*args, "--mlmd-sqlite", own)
        assert code == 0, output
    assert hashlib.sha256(Path(own).read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "1999-01-01"], "no run '1999-01-01'"),
        (["show", "latest~2"], "latest~2: the store holds only 2 runs"),
        (["trace", "999999"], "no artifact with id 999999"),
        (["trace", "/no/such/uri"], "no artifact '/no/such/uri'"),
        (["trace", "latest:NoSuchType"], "the store holds no NoSuchType artifact"),
        (["graph", "--picture", "x.gif"], "give a .png or .svg file name"),
        (["show", "latest~-1"], "write latest, or latest~N"),
        (["show", "latest~x"], "write latest, or latest~N"),
        (["show", "--pipeline", "nope"], "the store holds no pipeline run of 'nope'"),
    ],
)
def test_unknown_ids_are_clear_errors(own_runs, args, message):
    code, output = lineage(*args, "--mlmd-sqlite", own_runs[0])
    assert code == 1 and message in output


def test_an_ambiguous_run_prefix_is_refused(own_runs):
    import os.path

    own, first, second = own_runs
    prefix = os.path.commonprefix([first, second])
    assert prefix  # TFX run ids are timestamps
    code, output = lineage("show", prefix, "--mlmd-sqlite", own)
    assert code == 1 and "matches 2 runs; give more of the run id" in output


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
