"""upstream/formats.py against TFX's, TFMA's and TFDV's own code: the layout of split artifacts,
the anomaly walk, TFMA's metric keys, and list exec properties as each orchestrator delivers them."""

import json

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from upstream import formats


def _write(path, message) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(message.SerializeToString())


def test_split_folders_are_tfxs_own():
    from tfx.types import artifact_utils, standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = "gs://bucket/root/CsvExampleGen/examples/7"
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        assert formats.split_uri(examples.uri, split) == artifact_utils.get_split_uri([examples], split)
    assert formats.examples_pattern(examples.uri, "eval") == "gs://bucket/root/CsvExampleGen/examples/7/Split-eval/*.gz"


def test_statistics_and_anomalies_are_read_per_split(tmp_path):
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    stats.datasets.add(num_examples=12)
    _write(tmp_path / "Split-train" / formats.STATISTICS_FILE, stats)
    _write(tmp_path / "Split-eval" / formats.STATISTICS_FILE, statistics_pb2.DatasetFeatureStatisticsList())
    (tmp_path / "Split-extra").mkdir()  # a split folder without the file
    uri = str(tmp_path)
    assert formats.splits(uri) == ["eval", "extra", "train"]
    assert formats.splits(uri, formats.STATISTICS_FILE) == ["eval", "train"]
    assert formats.splits(uri, formats.ANOMALIES_FILE) == []
    assert formats.statistics(uri, "train") == stats
    with pytest.raises(Exception, match="Split-extra"):  # tf.errors.NotFoundError, naming the file
        formats.statistics(uri, "extra")

    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["fare"].description = "fare is wrong"
    _write(tmp_path / "Split-eval" / formats.ANOMALIES_FILE, anomalies)
    assert formats.anomalies(uri, "eval") == anomalies


def test_the_anomaly_walk_names_each_feature_then_the_dataset_and_each_reason():
    anomalies = anomalies_pb2.Anomalies()
    fare = anomalies.anomaly_info["fare"]
    fare.description = "fare: two problems"
    fare.reason.add(type=anomalies_pb2.AnomalyInfo.FLOAT_TYPE_SMALL_FLOAT, description="too small")
    fare.reason.add(type=anomalies_pb2.AnomalyInfo.SCHEMA_NEW_COLUMN)  # no description of its own
    anomalies.anomaly_info["company"].description = "no reason given"
    anomalies.dataset_anomaly_info.description = "10 examples"
    anomalies.dataset_anomaly_info.reason.add(type=anomalies_pb2.AnomalyInfo.DATASET_LOW_NUM_EXAMPLES,
                                              description="10 examples")

    walked = formats.anomaly_infos(anomalies)
    assert [feature for feature, _ in walked] == ["company", "fare", formats.DATASET]
    reasons = {feature: formats.anomaly_reasons(info) for feature, info in walked}
    assert reasons == {
        "company": [("UNKNOWN_TYPE", "no reason given")],
        "fare": [("FLOAT_TYPE_SMALL_FLOAT", "too small"), ("SCHEMA_NEW_COLUMN", "fare: two problems")],
        formats.DATASET: [("DATASET_LOW_NUM_EXAMPLES", "10 examples")],
    }
    assert formats.anomaly_infos(anomalies_pb2.Anomalies()) == []


def test_tfma_names_models_and_metrics_as_formats_reads_them():
    import tensorflow_model_analysis as tfma
    import tf_keras
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2 as pb

    assert (formats.CANDIDATE, formats.BASELINE) == (tfma.CANDIDATE_KEY, tfma.BASELINE_KEY)
    # The names TFMA's metrics carry, from their classes (the eval_config names them by class).
    for metric in (tf_keras.metrics.AUC(), tf_keras.metrics.BinaryAccuracy(), tfma.metrics.ExampleCount(),
                   tfma.metrics.MeanLabel(), tfma.metrics.CalibrationPlot()):
        assert formats.metric_name_of_class(type(metric).__name__) == metric.name

    record = pb.MetricsForSlice()

    def add(value=None, **key):
        kv = record.metric_keys_and_values.add(key=pb.MetricKey(**key))
        if value is not None:
            kv.value.double_value.value = value

    add(0.9, name="auc", model_name="candidate")
    add(0.8, name="auc", model_name="baseline")
    add(0.1, name="auc", model_name="candidate", is_diff=True)
    add(0.7, name="precision", output_name="tips", sub_key=pb.SubKey(top_k={"value": 3}))
    add(name="confusion_matrix_at_thresholds")  # not a single number: left out
    values = formats.metric_values(record)
    assert values[formats.CANDIDATE] == {"auc": 0.9, 'precision/tips@top_k {   value: 3 }': 0.7}
    assert values[formats.BASELINE] == {"auc": 0.8}
    assert values[formats.DIFF] == {"auc": 0.1}
    assert formats.is_overall(record.slice_key)
    record.slice_key.single_slice_keys.add(column="trip_start_hour", int64_value=7)
    assert not formats.is_overall(record.slice_key)


def test_a_list_exec_property_reads_the_same_from_every_orchestrator():
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import data_types_utils
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
    from tfx.proto.orchestration import pipeline_pb2

    names = ["trip_miles", "fare"]
    # Local and Beam runners: recorded with its type, parsed back by the launcher.
    recorded = data_types_utils.set_parameter_value(pipeline_pb2.Value(), names)
    local = data_types_utils.get_parsed_value(
        metadata_store_pb2.Value(string_value=recorded.field_value.string_value), recorded.schema)
    # Kubeflow V2 (pipeline spec 2.1): compiled to a string parameter, handed over as that string.
    constant = compiler_utils.value_converter(names).constant
    inputs = compiler_utils.pipeline_pb2.ComponentInputsSpec()
    inputs.parameters["drift_features"].CopyFrom(compiler_utils.build_parameter_type_spec(names))
    kubeflow = kubeflow_v2_entrypoint_utils.parse_execution_properties(
        {"drift_features": constant}, {}, inputs_spec=inputs)["drift_features"]
    assert local == names and kubeflow == json.dumps(names)
    assert formats.list_property(local) == formats.list_property(kubeflow) == names
    assert formats.list_property(json.dumps([])) == []


# --- run ids and the log file of a run --------------------------------------------------------------


@pytest.mark.parametrize("run_id, started", [
    ("2026-12-01T09:53:59.056553", (2026, 12, 1, 9, 53, 59)),  # LocalDagRunner
    ("2026-12-01T09:53:59", (2026, 12, 1, 9, 53, 59)),  # isoformat() of a zero microsecond
    ("20261201-095557.570292", (2026, 12, 1, 9, 55, 57)),  # BeamDagRunner
])
def test_run_ids_of_both_orchestrators_read_as_their_start_time(run_id, started):
    assert formats.run_started(run_id).timetuple()[:6] == started


def test_a_run_gets_the_log_file_opened_last_before_it_started(tmp_path):
    from types import SimpleNamespace

    from pipeline.locations import OutputDir
    from runs.summary import log_file_of

    output = OutputDir(tmp_path)
    output.log_dir.mkdir()
    for name in ("run-20261201T095300.log", "run-20261201T095550.log", "run-20261201T095600.log", "notes.log"):
        (output.log_dir / name).write_text("")
    assert log_file_of(output, SimpleNamespace(run_id="20261201-095557.570292")).name == "run-20261201T095550.log"
    assert log_file_of(output, SimpleNamespace(run_id="2026-12-01T09:53:10.1")).name == "run-20261201T095300.log"
    assert log_file_of(output, SimpleNamespace(run_id="2026-12-01T09:52:00.1")) is None
    assert log_file_of(output, SimpleNamespace(run_id="not-a-time")) is None
