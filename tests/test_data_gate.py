"""The data gate's checks, the CSV pre-checks and the run lock, without running a pipeline."""

import os
from pathlib import Path

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.data_gate import gate
from data import taxi
from data.validate import DataError, check_csv_dir
from pipeline.metadata import MetadataStore
from pipeline.schemas import CURATED_SCHEMA, schema_columns
from runs import state as run_state


def _anomalies(**kinds: str) -> anomalies_pb2.Anomalies:
    anomalies = anomalies_pb2.Anomalies()
    for feature, kind in kinds.items():
        info = anomalies.anomaly_info[feature]
        reason = info.reason.add()
        reason.type = anomalies_pb2.AnomalyInfo.Type.Value(kind)
        reason.description = f"{feature} is wrong"
    return anomalies


def test_findings_name_feature_kind_and_description_and_honour_warn_only():
    found = gate.findings(
        _anomalies(fare="FLOAT_TYPE_SMALL_FLOAT", company="ENUM_TYPE_UNEXPECTED_STRING_VALUES"),
        "train",
        warn_only=["ENUM_TYPE_UNEXPECTED_STRING_VALUES"],
    )
    by_feature = {f.feature: f for f in found}
    assert by_feature["fare"].blocking and by_feature["fare"].kind == "FLOAT_TYPE_SMALL_FLOAT"
    assert not by_feature["company"].blocking
    text = gate.summary(found, "/reports/x")
    assert "1 blocking anomaly (1 more only warn)" in text
    assert "BLOCK train fare" in text and "fare is wrong" in text and text.endswith("full report: /reports/x")


def _artifact(kind: str, uri):
    from tfx.types import standard_artifacts

    artifact = getattr(standard_artifacts, kind)()
    artifact.uri = str(uri)
    return artifact


@pytest.mark.parametrize("kubeflow", [False, True], ids=["local", "kubeflow"])
def test_the_executor_writes_its_report_and_stops_on_blocking_anomalies(tmp_path, kubeflow):
    import json

    from tfx.dsl.components.base import base_executor
    from tfx.types import artifact_utils

    from components import ReadableError
    from components.data_gate.executor import Executor
    from upstream import formats

    anomalies = tmp_path / "anomalies"
    for split, found in {"train": _anomalies(fare="FLOAT_TYPE_SMALL_FLOAT", company="ENUM_TYPE_UNEXPECTED_STRING_VALUES"),
                         "eval": anomalies_pb2.Anomalies()}.items():
        (anomalies / f"Split-{split}").mkdir(parents=True)
        (anomalies / f"Split-{split}" / formats.ANOMALIES_FILE).write_bytes(found.SerializeToString())
    statistics = _artifact("ExampleStatistics", tmp_path / "statistics")
    statistics.split_names = artifact_utils.encode_split_names(["train", "eval"])
    (tmp_path / "statistics" / "Split-train").mkdir(parents=True)
    accepted = _artifact("ExampleStatistics", tmp_path / "DataGate" / "accepted_statistics" / "7")
    inputs = {"statistics": [statistics], "anomalies": [_artifact("ExampleAnomalies", anomalies)],
              "schema": [_artifact("Schema", tmp_path / "schema")]}

    def run(warn_only: list[str]) -> None:
        # KFP steps get list parameters as their JSON text; TFX's launcher parses them into lists.
        properties = {"max_drift": 0.5, "drift_features": [], "warn_only": warn_only, "min_drift_examples": 1000}
        if kubeflow:
            properties = {k: json.dumps(v) if isinstance(v, list) else v for k, v in properties.items()}
        Executor(base_executor.BaseExecutor.Context()).Do(inputs, {"accepted_statistics": [accepted]}, properties)

    with pytest.raises(gate.DataGateError) as stopped:
        run(["ENUM_TYPE_UNEXPECTED_STRING_VALUES"])
    assert isinstance(stopped.value, ReadableError)
    report = tmp_path / "DataGate" / "accepted_statistics" / "7.txt"  # beside the output, not in it
    assert report.read_text() == str(stopped.value) + "\n"
    assert "1 blocking anomaly (1 more only warn)" in report.read_text() and f"full report: {report} " in report.read_text()
    assert accepted.get_int_custom_property("blocking_anomalies") == 1

    run(["ENUM_TYPE_UNEXPECTED_STRING_VALUES", "FLOAT_TYPE_SMALL_FLOAT"])  # everything only warns: passes
    assert accepted.get_int_custom_property("warnings") == 2 and (Path(accepted.uri) / "Split-train").is_dir()
    assert accepted.split_names == statistics.split_names


def test_the_component_takes_lists_of_names_and_refuses_a_joined_string():
    from tfx.types import Channel, standard_artifacts

    from components.data_gate.component import DataGate

    channels = {"statistics": Channel(type=standard_artifacts.ExampleStatistics),
                "schema": Channel(type=standard_artifacts.Schema),
                "anomalies": Channel(type=standard_artifacts.ExampleAnomalies)}
    node = DataGate(**channels, drift_features=("fare", "company"), warn_only=["SCHEMA_NEW_COLUMN"])
    properties = node.exec_properties
    assert properties["drift_features"] == ["fare", "company"] and properties["warn_only"] == ["SCHEMA_NEW_COLUMN"]
    assert DataGate(**channels).exec_properties["warn_only"] == []
    assert DataGate(**channels, allow_non_finite=["fare"]).exec_properties["allow_non_finite"] == ["fare"]
    with pytest.raises(TypeError, match="allow_non_finite: a list of names, not the string 'fare'"):
        DataGate(**channels, allow_non_finite="fare")
    with pytest.raises(TypeError, match="warn_only: a list of names, not the string 'A,B'"):
        DataGate(**channels, warn_only="A,B")


def _stats(frame: pd.DataFrame):
    return tfdv.generate_statistics_from_dataframe(frame)


def test_drift_uses_tfdv_comparators_and_skips_small_samples():
    schema = tfdv.infer_schema(_stats(pd.DataFrame({"fare": [10.0, 12.0] * 600, "company": ["A", "B"] * 600})))
    base = _stats(pd.DataFrame({"fare": [10.0, 12.0, 14.0] * 400, "company": ["A", "B", "C"] * 400}))
    same = _stats(pd.DataFrame({"fare": [12.0, 10.0, 14.0] * 400, "company": ["C", "B", "A"] * 400}))
    moved = _stats(pd.DataFrame({"fare": [1000.0, 1200.0, 1400.0] * 400, "company": ["A", "A", "A"] * 400}))
    assert gate.drift_findings(same, base, schema, 0.5, []) == []
    kinds = {(f.feature, f.kind) for f in gate.drift_findings(moved, base, schema, 0.5, [])}
    assert kinds == {("fare", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"), ("company", "COMPARATOR_L_INFTY_HIGH")}
    # Only the features asked for, and nothing at all below the minimum sample size.
    assert {f.feature for f in gate.drift_findings(moved, base, schema, 0.5, [], features=["company"])} == {"company"}
    assert gate.drift_findings(moved, base, schema, 0.5, [], min_examples=5000) == []


def test_the_bundled_data_passes_the_csv_checks(tmp_path):
    files = check_csv_dir(taxi.write_sample(tmp_path, 50), schema_columns(CURATED_SCHEMA))
    assert [f.name for f in files] == ["data.csv"]


def test_csv_checks_name_the_file_and_line(tmp_path):
    columns = schema_columns(CURATED_SCHEMA)
    (tmp_path / "a.csv").write_text(",".join(columns) + "\n" + ",".join(["1"] * len(columns)) + "\n1,2\n")
    with pytest.raises(DataError, match=r"a\.csv: line 3: 2 fields where the header has 18"):
        check_csv_dir(tmp_path, columns)


def test_a_second_run_is_refused_while_the_lock_is_held_and_free_after(tmp_path):
    with run_state.exclusive_run(tmp_path):
        with pytest.raises(run_state.RunLocked, match=f"another run is using {tmp_path} \\(pid {os.getpid()} on "):
            with run_state.exclusive_run(tmp_path):
                pass
    with run_state.exclusive_run(tmp_path):  # released: a new run gets it
        pass


def test_interrupted_executions_are_cancelled_and_their_outputs_abandoned(tmp_path):
    path = tmp_path / "metadata.sqlite"
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    store = metadata_store.MetadataStore(config)
    execution_type = store.put_execution_type(mlmd.ExecutionType(name="tfx.components.trainer.component.Trainer"))
    artifact_type = store.put_artifact_type(mlmd.ArtifactType(name="Model"))
    [done, running] = store.put_executions([
        mlmd.Execution(type_id=execution_type, last_known_state=mlmd.Execution.COMPLETE),
        mlmd.Execution(type_id=execution_type, last_known_state=mlmd.Execution.RUNNING),
    ])
    [partial] = store.put_artifacts([mlmd.Artifact(type_id=artifact_type, uri="/x", state=mlmd.Artifact.PENDING)])
    store.put_events([mlmd.Event(execution_id=running, artifact_id=partial, type=mlmd.Event.PENDING_OUTPUT)])
    del store

    lines = run_state.abandon_interrupted(MetadataStore(sqlite=path), str(tmp_path))
    assert lines == [f"execution {running} (Trainer) of an interrupted run: marked CANCELED"]
    store = metadata_store.MetadataStore(config)
    states = {e.id: e.last_known_state for e in store.get_executions()}
    assert states == {done: mlmd.Execution.COMPLETE, running: mlmd.Execution.CANCELED}
    assert store.get_artifacts_by_id([partial])[0].state == mlmd.Artifact.ABANDONED
    assert run_state.abandon_interrupted(MetadataStore(sqlite=path), str(tmp_path)) == []  # nothing left to report


def _gate_history(store, runs: list[int], count: int) -> tuple[list[int], dict[int, int]]:
    """`count` statistics artifacts and, per DataGate execution, the statistics it read and the copy
    it accepted, as a real run records them (INPUT 'statistics', OUTPUT 'accepted_statistics')."""
    stats_type = store.put_artifact_type(mlmd.ArtifactType(name="ExampleStatistics"))
    gate_type = store.put_execution_type(mlmd.ExecutionType(name="components.data_gate.component.DataGate"))
    statistics = store.put_artifacts([mlmd.Artifact(type_id=stats_type, uri=f"/s{i}") for i in range(count)])
    accepted_from = {}
    for read in runs:  # each run reads statistics artifact number `read` (1-based)
        [execution] = store.put_executions([mlmd.Execution(type_id=gate_type, last_known_state=mlmd.Execution.COMPLETE)])
        [copy] = store.put_artifacts([mlmd.Artifact(type_id=stats_type, uri=f"/accepted{execution}")])
        step = mlmd.Event.Path.Step
        store.put_events([
            mlmd.Event(execution_id=execution, artifact_id=statistics[read - 1], type=mlmd.Event.INPUT,
                       path=mlmd.Event.Path(steps=[step(key="statistics"), step(index=0)])),
            mlmd.Event(execution_id=execution, artifact_id=copy, type=mlmd.Event.OUTPUT,
                       path=mlmd.Event.Path(steps=[step(key="accepted_statistics"), step(index=0)])),
        ])
        accepted_from[copy] = statistics[read - 1]
    return statistics, accepted_from


@pytest.mark.parametrize("runs, current, expected", [
    ([], 1, None),  # first run: nothing accepted yet
    ([1], 1, None),  # the same data again: not compared with itself, as on its first run
    ([1], 2, 1),  # new data: compared with the last accepted
    ([1, 2], 1, 2),  # back to the first data: compared with the last other accepted
    ([1, 2, 1], 1, 2),  # ... and again: the same inputs as the previous run, so it is cached
])
def test_latest_accepted_leaves_out_what_this_runs_statistics_became(runs, current, expected):
    from tfx.types import standard_artifacts

    from pipeline.resolvers import ACCEPTED_INPUT_KEY, CURRENT_INPUT_KEY, LatestAccepted

    config = mlmd.ConnectionConfig()
    config.fake_database.SetInParent()
    store = metadata_store.MetadataStore(config)
    statistics, accepted_from = _gate_history(store, runs, count=max(runs + [current]))

    def artifact(artifact_id: int):
        a = standard_artifacts.ExampleStatistics()
        a.id = artifact_id
        return a

    current_artifact = artifact(statistics[current - 1])
    result = LatestAccepted().resolve_artifacts(store, {
        CURRENT_INPUT_KEY: [current_artifact],
        ACCEPTED_INPUT_KEY: [artifact(i) for i in accepted_from],
    })
    assert result[CURRENT_INPUT_KEY] == [current_artifact]
    [resolved] = result[ACCEPTED_INPUT_KEY] or [None]
    source = accepted_from[resolved.id] if resolved else None
    assert source == (statistics[expected - 1] if expected else None)
    if resolved:  # the latest of those: accepted copies are numbered in run order
        assert resolved.id == max(a for a, s in accepted_from.items() if s == source)


# --- non-finite numbers: TFDV finds them through the curated schema, the gate stops them ----------

def test_the_curated_schema_disallows_nan_and_infinities_in_every_float_feature():
    from tensorflow_metadata.proto.v0 import schema_pb2

    from models import features

    schema = tfdv.load_schema_text(str(CURATED_SCHEMA))
    floats = [f for f in schema.feature if f.type == schema_pb2.FLOAT]
    assert sorted(f.name for f in floats) == sorted(features.float_keys())
    assert all(f.float_domain.disallow_nan and f.float_domain.disallow_inf for f in floats)


def _statistics_of_examples(tmp_path, fares: list[float]):
    import tensorflow as tf

    path = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for fare in fares:
            example = tf.train.Example()
            example.features.feature["fare"].float_list.value.append(fare)
            writer.write(example.SerializeToString())
    return tfdv.generate_statistics_from_tfrecord(path)


def test_nan_and_infinite_fares_stop_the_gate_unless_the_feature_allows_them(tmp_path):
    """As StatisticsGen and ExampleValidator see them: float values in tf.Examples (CsvExampleGen
    parses the text inf, -inf, NaN, nan and 1e400 to those), checked against the curated schema."""
    nan, inf = float("nan"), float("inf")
    statistics = _statistics_of_examples(tmp_path, [10.0, nan, 12.5, inf, 8.0, float("1e400"), nan] * 5)
    schema = tfdv.load_schema_text(str(CURATED_SCHEMA))
    anomalies = tfdv.validate_statistics(statistics, schema)
    fare = [f for f in gate.findings(anomalies, "train", warn_only=[]) if f.feature == "fare"]
    assert {(f.kind, f.blocking) for f in fare} == {("FLOAT_TYPE_HAS_NAN", True), ("FLOAT_TYPE_HAS_INF", True)}
    text = gate.summary(fare, "/r")
    assert text.splitlines()[-2] == (
        "NaN and infinite values in fare (text such as inf, NaN or 1e400 in the CSV): fix the export, or let them "
        "through for a feature with --allow-non-finite (Transform then imputes them like missing values)")

    allowed = gate.findings(anomalies, "train", warn_only=[], allow_non_finite=["fare"])
    assert {(f.kind, f.blocking) for f in allowed if f.feature == "fare"} == {
        ("FLOAT_TYPE_HAS_NAN", False), ("FLOAT_TYPE_HAS_INF", False)}
    # Only those kinds, only for that feature: -inf is still below fare's minimum of 0.
    below = tfdv.validate_statistics(_statistics_of_examples(tmp_path, [10.0, -inf] * 5), schema)
    kinds = {(f.kind, f.blocking) for f in gate.findings(below, "train", [], ["fare"]) if f.feature == "fare"}
    assert kinds == {("FLOAT_TYPE_HAS_INF", False), ("FLOAT_TYPE_SMALL_FLOAT", True)}
    assert {f.blocking for f in gate.findings(anomalies, "train", [], ["tips"]) if f.feature == "fare"} == {True}


def test_allow_non_finite_takes_float_features_only():
    from pipeline.config import ConfigError, PipelineConfig

    assert PipelineConfig(allow_non_finite=("fare", "tips")).allow_non_finite == ("fare", "tips")
    with pytest.raises(ConfigError, match=r"^--allow-non-finite: not float features: company, trip_seconds \(the "
                                          r"float features: trip_miles, fare, tips, pickup_latitude"):
        PipelineConfig(allow_non_finite=("fare", "company", "trip_seconds"))
