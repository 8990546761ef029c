"""The model registry (`models list | show | rollback`) on real serving directories and real MLMD stores.

The serving-layout tests publish small directories with publish.py and need no pipeline run.
The MLMD tests read a copy of the end-to-end store (conftest's `two_runs` and `retrained_run`,
shared with other test files: copied, so that a rollback here changes nothing they read), with
one more version published beside it that MLMD has no record of. Expected values come from
ml_metadata's own API and TFMA's files, not from the registry.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

import cli
from components.pusher import publish
from tests.conftest import tree_hashes
from tests.test_report import tfma_file_metrics

Event = mlmd.Event
# Versions ahead of the clock, as after pushes from a machine whose clock runs fast: a new version
# must then go past the newest numbered directory, not take the time.
BASE = int(time.time()) + 100_000


def v(n: int) -> str:
    return str(BASE + n)


def models(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["models", *args])
    # Failures must be the command's own exit with a message, never an escaped exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def models_json(*args: str):
    code, output = models(*args, "--json")
    assert code == 0, output
    return json.loads(output)


def _files(directory: Path, **files: str) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def publish_version(serving: Path, version: int, tag: str, twin: bool = True) -> None:
    """A version as the Pusher publishes it (the twin first, the SavedModel last), with files naming `tag`."""
    source = _files(serving.parent / f"src-{version}", **{"saved_model.pb": f"graph {tag}", "variables/variables.index": tag})
    writers = [(str(serving / "taxi"), publish.copy_tree(str(source)))]
    if twin:
        source_twin = _files(serving.parent / f"twin-{version}", **{"model.tflite": f"flatbuffer {tag}"})
        writers.insert(0, (str(serving / "taxi_tflite"), publish.copy_tree(str(source_twin))))
    publish.publish(str(version), writers)


@pytest.fixture
def layout_only(tmp_path):
    """An output directory with a serving directory and no MLMD store: versions 100 and 200, a
    half-written 300 (an older Pusher copied into place and was killed: no saved_model.pb), and the
    staging directory of an interrupted push."""
    serving = tmp_path / "out" / "serving"
    publish_version(serving, BASE + 100, "a")
    publish_version(serving, BASE + 200, "b")
    _files(serving / "taxi" / v(300), **{"variables/variables.index": "half"})
    _files(serving / "taxi" / f".{v(400)}.0123.partial", **{"saved_model.pb": "staged"})
    return tmp_path / "out"


def test_the_serving_layout_alone_is_listed_and_says_what_it_cannot_show(layout_only):
    listed = models_json("list", "--output-dir", str(layout_only))
    assert [x["version"] for x in listed["versions"]] == [BASE + 100, BASE + 200]
    assert [x["served"] for x in listed["versions"]] == [False, True]
    assert all(x["twin"] for x in listed["versions"])
    assert all(x["run_id"] is None and x["pushed"] is None and x["metrics"] == {} for x in listed["versions"])
    assert any(f"/taxi/{v(300)}:" in line and "half-written" in line for line in listed["ignored"]), listed["ignored"]
    assert any(f".{v(400)}.0123.partial" in line for line in listed["ignored"]), listed["ignored"]
    assert "no MLMD store" in listed["note"]
    code, text = models("list", "--output-dir", str(layout_only))
    assert code == 0, text
    rows = {line.split()[0]: line for line in text.splitlines() if line[:3].isdigit()}
    assert set(rows) == {v(100), v(200)}  # the half-written one is no version
    assert rows[v(100)].count("n/a") >= 7 and "served" in rows[v(200)]
    assert "Ignored:" in text and "Note: no MLMD store" in text


def test_a_half_written_version_is_never_shown_nor_rolled_back(layout_only):
    code, output = models("show", v(300), "--output-dir", str(layout_only))
    assert code == 2 and len(output.strip().splitlines()) == 1 and "half-written" in output, output
    before = tree_hashes(layout_only)
    code, output = models("rollback", v(300), "--reason", "x", "--output-dir", str(layout_only))
    assert code == 2 and "half-written" in output, output
    assert tree_hashes(layout_only) == before


def test_without_a_store_a_rollback_republishes_both_forms_as_the_newest_version(layout_only):
    serving = layout_only / "serving"
    code, output = models("rollback", v(100), "--reason", "the newest answers slowly", "--output-dir", str(layout_only))
    assert code == 0, output
    assert "not recorded: no MLMD store" in output
    # Past every numbered directory, the half-written one too, so no version is ever reused.
    assert tree_hashes(serving / "taxi" / v(301)) == tree_hashes(serving / "taxi" / v(100))
    assert tree_hashes(serving / "taxi_tflite" / v(301)) == tree_hashes(serving / "taxi_tflite" / v(100))
    assert (serving / "taxi" / v(301) / "saved_model.pb").read_text() == "graph a"
    assert not [p for p in (serving / "taxi").iterdir() if p.name.startswith(".") and v(400) not in p.name]
    listed = models_json("list", "--output-dir", str(layout_only))
    assert [(x["version"], x["served"]) for x in listed["versions"]] == [
        (BASE + 100, False), (BASE + 200, False), (BASE + 301, True)]
    assert not (layout_only / "metadata.sqlite").exists()  # a missing store is not created


@pytest.mark.parametrize("args, message", [
    (["42", "--reason", "r"], "no version 42"),
    (["latest", "--reason", "r"], "no version latest"),
    ([v(200), "--reason", "r"], "already the newest version"),
    ([v(150), "--reason", "r"], "no TFLite twin"),
    ([v(100), "--reason", "  "], "--reason"),
], ids=["unknown", "not-a-number", "already-served", "no-twin", "empty-reason"])
def test_a_refused_rollback_says_why_in_one_line_and_changes_nothing(layout_only, args, message):
    serving = layout_only / "serving"
    publish_version(serving, BASE + 150, "no twin", twin=False)
    before = tree_hashes(layout_only)
    code, output = models("rollback", *args, "--output-dir", str(layout_only))
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1 and message in output, output
    assert tree_hashes(layout_only) == before


# --- on a store of real runs ------------------------------------------------------------------------


class Mlmd:
    """The store read (or, for the checks, opened) with ml_metadata's own API."""

    def __init__(self, path: Path):
        config = mlmd.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READONLY
        self.store = metadata_store.MetadataStore(config)

    def pushes(self) -> list[mlmd.Artifact]:
        return [a for a in self.store.get_artifacts_by_type("PushedModel") if a.custom_properties["pushed"].int_value == 1]

    def producer(self, artifact: mlmd.Artifact) -> mlmd.Execution:
        ids = [ev.execution_id for ev in self.store.get_events_by_artifact_ids([artifact.id]) if ev.type == Event.OUTPUT]
        return min((e for e in self.store.get_executions_by_id(ids) if e.last_known_state != mlmd.Execution.CACHED),
                   key=lambda e: e.id)

    def io(self, execution: mlmd.Execution, kind, key: str) -> list[mlmd.Artifact]:
        ids = [ev.artifact_id for ev in self.store.get_events_by_execution_ids([execution.id])
               if ev.type == kind and key in [s.key for s in ev.path.steps]]
        return self.store.get_artifacts_by_id(ids) if ids else []

    def run_of(self, execution: mlmd.Execution) -> str:
        (run,) = [c.name for c in self.store.get_contexts_by_execution(execution.id) if c.type == "pipeline_run"]
        return run

    def run_node(self, run_id: str, node: str) -> mlmd.Execution:
        context = self.store.get_context_by_type_and_name("pipeline_run", run_id)
        found = [e for e in self.store.get_executions_by_context(context.id)
                 if any(c.name == f"chicago_taxi.{node}" for c in self.store.get_contexts_by_execution(e.id))]
        return found[0]


@pytest.fixture(scope="module")
def registry_store(two_runs, retrained_run, tmp_path_factory):
    """A copy of the end-to-end output directory's store and serving directory, plus a newer version
    (published as the Pusher does) that MLMD has no record of. Returns the copy's output dir."""
    source = two_runs[0]
    out = tmp_path_factory.mktemp("registry") / "out"
    out.mkdir()
    shutil.copy(source / "metadata.sqlite", out / "metadata.sqlite")
    shutil.copytree(source / "serving", out / "serving")
    newest = max(publish.versions(str(out / "serving" / "taxi")))
    publish_version(out / "serving", newest + 1000, "unrecorded")
    return out


@pytest.mark.e2e
def test_models_list_shows_each_pushed_version_with_its_run_data_code_and_metrics(registry_store, two_runs):
    store_path = registry_store / "metadata.sqlite"
    before = hashlib.sha256(store_path.read_bytes()).hexdigest()
    listed = models_json("list", "--output-dir", str(registry_store))
    api = Mlmd(store_path)
    pushes = {int(a.custom_properties["pushed_version"].string_value): a for a in api.pushes()}
    by_version = {v["version"]: v for v in listed["versions"]}
    assert set(pushes) < set(by_version), (set(pushes), set(by_version))
    (first_push,) = [v for v, a in pushes.items() if api.run_of(api.producer(a)) == two_runs[2][1].run_id]
    for version, pushed in pushes.items():
        row = by_version[version]
        pusher = api.producer(pushed)
        run_id = api.run_of(pusher)
        (model,) = api.io(pusher, Event.INPUT, "model")
        (examples,) = api.io(api.run_node(run_id, "CsvExampleGen"), Event.OUTPUT, "examples")
        (evaluation,) = api.io(api.run_node(run_id, "Evaluator"), Event.OUTPUT, "evaluation")
        (blessing,) = api.io(api.run_node(run_id, "Evaluator"), Event.OUTPUT, "blessing")
        trainer = api.run_node(run_id, "Trainer")
        config = json.loads(trainer.custom_properties["custom_config"].string_value)
        assert row["pushed"]["id"] == pushed.id
        assert (row["run_id"], row["model"]["id"], row["data"]["examples"]) == (run_id, model.id, examples.id)
        assert row["code_fingerprint"] == config["code_fingerprint"]
        assert row["metrics"]["auc"] == pytest.approx(tfma_file_metrics(evaluation.uri)["Overall"]["candidate"]["auc"])
        assert row["blessed"] == (blessing.custom_properties["blessed"].int_value == 1)
        assert row["twin"] == str(registry_store / "serving" / "taxi_tflite" / str(version))
        checks = [a for a in api.store.get_artifacts_by_type("InfraBlessing")
                  if api.run_of(api.producer(a)) == run_id] if _has_type(api, "InfraBlessing") else []
        assert (row["serving_check"] is None) == (not checks)  # n/a for runs without a serving check
    unrecorded = max(by_version)
    assert by_version[unrecorded]["served"] and by_version[unrecorded]["pushed"] is None
    assert str(unrecorded) in listed["note"]
    assert first_push in by_version
    code, text = models("show", str(first_push), "--output-dir", str(registry_store))
    assert code == 0 and two_runs[2][1].run_id in text and "Eval metrics:   auc=" in text, text
    assert hashlib.sha256(store_path.read_bytes()).hexdigest() == before  # list and show only read


def _has_type(api: Mlmd, name: str) -> bool:
    return any(t.name == name for t in api.store.get_artifact_types())


@pytest.mark.e2e
def test_a_rollback_is_a_push_whose_lineage_reaches_the_original_models_data(registry_store, two_runs):
    api = Mlmd(registry_store / "metadata.sqlite")
    first_run = two_runs[2][1].run_id
    (original,) = [a for a in api.pushes() if api.run_of(api.producer(a)) == first_run]
    version = original.custom_properties["pushed_version"].string_value
    (model,) = api.io(api.producer(original), Event.INPUT, "model")
    (examples,) = api.io(api.run_node(first_run, "CsvExampleGen"), Event.OUTPUT, "examples")
    serving = registry_store / "serving"

    code, output = models("rollback", version, "--reason", "the newer model mispredicts", "--output-dir", str(registry_store))
    assert code == 0, output
    newest = str(max(publish.versions(str(serving / "taxi"))))
    assert tree_hashes(serving / "taxi" / newest) == tree_hashes(serving / "taxi" / version)
    assert tree_hashes(serving / "taxi_tflite" / newest) == tree_hashes(serving / "taxi_tflite" / version)

    api = Mlmd(registry_store / "metadata.sqlite")  # what was written, read afresh
    (pushed,) = [a for a in api.pushes() if a.custom_properties["pushed_version"].string_value == newest]
    props = {k: v.string_value or v.int_value for k, v in pushed.custom_properties.items()}
    assert props["rollback_of"] == version and props["reason"] == "the newer model mispredicts"
    assert props["pushed_destination"] == str(serving / "taxi" / newest)
    execution = api.producer(pushed)
    assert api.store.get_execution_types_by_id([execution.type_id])[0].name == "Rollback"
    assert execution.last_known_state == mlmd.Execution.COMPLETE
    assert [a.id for a in api.io(execution, Event.INPUT, "model")] == [model.id]
    assert [a.id for a in api.io(execution, Event.INPUT, "pushed_model")] == [original.id]

    result = CliRunner().invoke(cli.main, ["lineage", "trace", "latest-pushed-model", "--output-dir", str(registry_store), "--json"])
    assert result.exit_code == 0, result.output
    trace = json.loads(result.output)
    assert trace["root"]["id"] == pushed.id
    assert {model.id, examples.id} <= {a["id"] for a in trace["artifacts"]}

    listed = models_json("list", "--output-dir", str(registry_store))
    row = listed["versions"][-1]
    assert (row["version"], row["served"], row["rollback_of"]) == (int(newest), True, version)
    assert (row["run_id"], row["model"]["id"], row["data"]["examples"]) == (first_run, model.id, examples.id)
    code, text = models("show", newest, "--output-dir", str(registry_store))
    assert code == 0 and f"Rollback of:    version {version}: the newer model mispredicts" in text, text


def test_a_rollback_the_store_cannot_record_is_undone(layout_only):
    """Another writer holds the (real, empty) MLMD store: the rollback fails in one line and the
    version it published is removed again, so nothing is served that MLMD does not know of."""
    store_path = layout_only / "metadata.sqlite"
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = str(store_path)
    metadata_store.MetadataStore(config)  # creates MLMD's schema
    before = tree_hashes(layout_only / "serving")
    holder = subprocess.Popen(  # another process: SQLite's locks do not conflict within one
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()", str(store_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, output = models("rollback", v(100), "--reason", "r", "--output-dir", str(layout_only))
    finally:
        holder.communicate("", timeout=30)
    assert code == 1, output
    assert len(output.strip().splitlines()) == 1 and "nothing rolled back" in output, output
    assert tree_hashes(layout_only / "serving") == before
