"""What the latest pipeline run did, read back from its ML Metadata store (read-only)."""

import dataclasses
from pathlib import Path

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

State = metadata_store_pb2.Execution.State


@dataclasses.dataclass(frozen=True)
class NodeRun:
    node_id: str
    state: str  # COMPLETE, CACHED, FAILED, RUNNING, ...
    outputs: dict[str, list[metadata_store_pb2.Artifact]]


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run_id: str
    nodes: dict[str, NodeRun]

    def output(self, node_id: str, key: str) -> metadata_store_pb2.Artifact | None:
        node = self.nodes.get(node_id)
        artifacts = node.outputs.get(key, []) if node else []
        return artifacts[-1] if artifacts else None


def open_store(metadata_path: Path, read_only: bool = True) -> metadata_store.MetadataStore:
    if not Path(metadata_path).is_file():
        raise FileNotFoundError(f"no ML Metadata store at {metadata_path}")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        if read_only
        else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return metadata_store.MetadataStore(config)


def custom_property(artifact: metadata_store_pb2.Artifact, name: str):
    """A custom property's value, whatever its type; None when absent."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    return getattr(value, value.WhichOneof("value"))


def latest_run(store: metadata_store.MetadataStore, pipeline_name: str) -> RunSummary:
    """Each node's execution in the pipeline's most recent run, with its output artifacts."""
    runs = [
        c
        for c in store.get_contexts_by_type("pipeline_run")
        if any(p.name == pipeline_name for p in store.get_parent_contexts_by_context(c.id))
    ]
    if not runs:
        raise LookupError(f"the store holds no run of pipeline {pipeline_name!r}")
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    executions = store.get_executions_by_context(run.id)
    node_of = {}
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(f"{pipeline_name}."):
            continue
        for execution in store.get_executions_by_context(node.id):
            node_of[execution.id] = node.name.split(".", 1)[1]

    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id({e.artifact_id for e in events})}
    nodes = {}
    for execution in sorted(executions, key=lambda e: e.id):
        outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
        for event in events:
            if event.execution_id == execution.id and event.type == metadata_store_pb2.Event.OUTPUT:
                key = event.path.steps[0].key if event.path.steps else ""
                outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        node_id = node_of.get(execution.id, execution.name or str(execution.id))
        nodes[node_id] = NodeRun(node_id, State.Name(execution.last_known_state), outputs)
    return RunSummary(run.name, nodes)


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The Evaluator's metrics on the whole eval split (the unsliced slice)."""
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if metrics_for_slice.slice_key.single_slice_keys:
            continue
        values = {}
        for kv in metrics_for_slice.metric_keys_and_values:
            key = kv.key
            # With a baseline, TFMA also reports the baseline's values and the differences.
            if key.is_diff or (key.model_name and key.model_name != tfma.CANDIDATE_KEY):
                continue
            if kv.value.HasField("double_value"):
                values[key.name] = kv.value.double_value.value
        return values
    return {}
