"""TFX's, TFMA's and TFDV's formats, as this project reads them: where a component puts its
files inside an artifact, what they hold, how TFMA names a metric, how an exec property reaches
an executor.

Plain functions on paths and protos. Paths go through tf.io.gfile, so artifact URIs on remote
filesystems (gs://) read as local ones do; TensorFlow and the TFDV protos are imported when a
function needs them, so the modules that only name metrics stay light.
"""

import json
import os
import re
from typing import Any

# --- splits: <artifact uri>/Split-<name>/ ---------------------------------------------------------

SPLIT_PREFIX = "Split-"  # TFX's folder for one split of a multi-split artifact
STATISTICS_FILE = "FeatureStats.pb"  # StatisticsGen, per split: a DatasetFeatureStatisticsList
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator, per split: an Anomalies proto
EXAMPLES_FILES = "*.gz"  # ExampleGen, per split: gzipped TFRecords of tf.Examples


def _gfile():
    import tensorflow as tf  # heavy: imported when a file is read

    return tf.io.gfile


def split_uri(artifact_uri: str, split: str) -> str:
    """The folder of one split of an artifact (what tfx's artifact_utils.get_split_uri returns)."""
    return os.path.join(artifact_uri, SPLIT_PREFIX + split)


def splits(artifact_uri: str, file_name: str | None = None) -> list[str]:
    """The names of an artifact's splits, sorted: its Split-<name> folders; with `file_name`, only
    those that hold a file of that name."""
    pattern = os.path.join(artifact_uri, SPLIT_PREFIX + "*", *([file_name] if file_name else []))
    found = _gfile().glob(pattern)
    folders = [os.path.dirname(p) if file_name else p for p in found]
    return sorted(os.path.basename(f.rstrip("/")).removeprefix(SPLIT_PREFIX) for f in folders)


def examples_pattern(artifact_uri: str, split: str) -> str:
    """A glob pattern of the files of one split of an Examples artifact."""
    return os.path.join(split_uri(artifact_uri, split), EXAMPLES_FILES)


def read_examples(file_pattern: str, limit: int) -> list[bytes]:
    """Up to `limit` serialized tf.Examples from gzipped TFRecords (ExampleGen's format)."""
    import tensorflow as tf  # here: this module is read by code that must not load TensorFlow

    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"no examples match {file_pattern}")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
    return [record.numpy() for record in dataset]


def _read(path: str) -> bytes:
    with _gfile().GFile(path, "rb") as f:
        return f.read()


def statistics(artifact_uri: str, split: str):
    """One split's DatasetFeatureStatisticsList from an ExampleStatistics artifact."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    path = os.path.join(split_uri(artifact_uri, split), STATISTICS_FILE)
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(_read(path))


def anomalies(artifact_uri: str, split: str):
    """One split's Anomalies proto from an ExampleAnomalies artifact."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    return anomalies_pb2.Anomalies.FromString(_read(os.path.join(split_uri(artifact_uri, split), ANOMALIES_FILE)))


# --- anomalies: TFDV's Anomalies proto -------------------------------------------------------------

DATASET = "(dataset)"  # stands for the feature of an anomaly of the whole dataset


def anomaly_infos(anomalies_proto) -> list[tuple[str, Any]]:
    """(feature, AnomalyInfo) for each feature with anomalies, by feature name, then
    (DATASET, AnomalyInfo) when the dataset as a whole has one (e.g. too few examples)."""
    out = sorted(anomalies_proto.anomaly_info.items())
    if anomalies_proto.HasField("dataset_anomaly_info"):
        out.append((DATASET, anomalies_proto.dataset_anomaly_info))
    return out


def anomaly_reasons(info) -> list[tuple[str, str]]:
    """(kind, description) for each reason of an AnomalyInfo. The kind is TFDV's
    AnomalyInfo.Type name (e.g. SCHEMA_NEW_COLUMN); a reason without a description takes the
    AnomalyInfo's; an AnomalyInfo without reasons is one UNKNOWN_TYPE."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    if not info.reason:
        return [(anomalies_pb2.AnomalyInfo.Type.Name(anomalies_pb2.AnomalyInfo.UNKNOWN_TYPE), info.description)]
    return [(anomalies_pb2.AnomalyInfo.Type.Name(r.type), r.description or info.description) for r in info.reason]


# --- TFMA metrics -----------------------------------------------------------------------------------

# With a baseline, TFMA names the Evaluator's models "candidate" and "baseline" (tfma.CANDIDATE_KEY,
# tfma.BASELINE_KEY) and stores the candidate's difference from the
# baseline as metric keys with is_diff set; with one model, the model name is empty.
CANDIDATE, BASELINE, DIFF = "candidate", "baseline", "diff"


def metric_name(key) -> str:
    """A TFMA MetricKey as text: 'auc', '<name>/<output name>', '<name>@<sub key>' (e.g. top_k)."""
    name = key.name + (f"/{key.output_name}" if key.output_name else "")
    if key.HasField("sub_key"):
        name += "@" + str(key.sub_key).replace("\n", " ").strip()
    return name


def model_of(key) -> str:
    """CANDIDATE or BASELINE: whose metric or plot a TFMA MetricKey or PlotKey is."""
    return BASELINE if key.model_name == BASELINE else CANDIDATE


def metric_values(metrics_for_slice) -> dict[str, dict[str, float]]:
    """One slice's scalar metrics from a TFMA MetricsForSlice proto, by metric_name:
    {CANDIDATE: ..., BASELINE: ..., DIFF: candidate - baseline}; the last two are empty without
    a baseline. Values that are not a single number (matrices, arrays) are left out."""
    out: dict[str, dict[str, float]] = {CANDIDATE: {}, BASELINE: {}, DIFF: {}}
    for kv in metrics_for_slice.metric_keys_and_values:
        if kv.value.HasField("double_value"):
            whose = DIFF if kv.key.is_diff else model_of(kv.key)
            out[whose][metric_name(kv.key)] = kv.value.double_value.value
    return out


def is_overall(slice_key) -> bool:
    """Whether a TFMA SliceKey is the whole dataset (no feature sliced on)."""
    return not slice_key.single_slice_keys


def metric_name_of_class(class_name: str) -> str:
    """The name TFMA gives a metric configured by its Keras or TFMA class name: AUC -> auc,
    BinaryAccuracy -> binary_accuracy (a MetricConfig's class_name, a MetricKey's name)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()


# --- exec properties ------------------------------------------------------------------------------


def list_property(value: Any) -> list:
    """A list exec property as the executor got it: a list where TFX's launcher parsed it by its
    recorded type (local and Beam runners), its JSON text where the Kubeflow V2 compiler made it
    a string parameter (KFP steps)."""
    return list(json.loads(value) if isinstance(value, str) else value)


# --- pipeline run ids ------------------------------------------------------------------------------

# How TFX's orchestrators name a run (the pipeline_run context): the local time it started.
RUN_ID_FORMATS = (
    "%Y-%m-%dT%H:%M:%S.%f",  # LocalDagRunner: datetime.isoformat()
    "%Y-%m-%dT%H:%M:%S",  # ... which leaves out a zero microsecond
    "%Y%m%d-%H%M%S.%f",  # BeamDagRunner
)


def run_started(run_id: str):
    """The local time a run started, read from its run id; None for a run id in no known format."""
    import datetime

    for fmt in RUN_ID_FORMATS:
        try:
            return datetime.datetime.strptime(run_id, fmt)
        except ValueError:
            continue
    return None
