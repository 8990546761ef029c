"""What the data gate accepted, read from MLMD by its events alone: light (ml_metadata only), so
that the run's checks read it before TensorFlow is imported, and the resolvers read it the same way.

    Examples --StatisticsGen--> statistics --DataGate--> accepted statistics (a copy, when it passed)
"""

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

EXAMPLES_KEY = "examples"  # StatisticsGen's input, and the resolvers' Examples key
SPAN_PROPERTY = "span"  # the Examples artifact's custom properties CsvExampleGen sets
VERSION_PROPERTY = "version"
FINGERPRINT_PROPERTY = "input_fingerprint"


def accepted_from(store: mlmd.MetadataStore, accepted_ids: list[int]) -> dict[int, int]:
    """Accepted statistics id -> id of the statistics the DataGate execution that output it read."""
    producers = {e.artifact_id: e.execution_id for e in store.get_events_by_artifact_ids(accepted_ids)
                 if e.type == metadata_store_pb2.Event.OUTPUT}
    read = {e.execution_id: e.artifact_id for e in store.get_events_by_execution_ids(set(producers.values()))
            if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == "statistics"}
    return {artifact: read[execution] for artifact, execution in producers.items() if execution in read}


def _producers(store: mlmd.MetadataStore, artifact_ids) -> dict[int, int]:
    """Artifact id -> id of an execution that output it."""
    ids = list(artifact_ids)
    events = store.get_events_by_artifact_ids(ids) if ids else []
    return {e.artifact_id: e.execution_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT}


def _inputs(store: mlmd.MetadataStore, execution_ids, key: str) -> dict[int, int]:
    """Execution id -> id of the artifact it read under `key`."""
    ids = list(set(execution_ids))
    events = store.get_events_by_execution_ids(ids) if ids else []
    return {e.execution_id: e.artifact_id for e in events
            if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == key}


def statistics_examples(store: mlmd.MetadataStore, statistics_ids) -> dict[int, int]:
    """Statistics id -> id of the Examples StatisticsGen computed them from."""
    producers = _producers(store, statistics_ids)
    read = _inputs(store, producers.values(), EXAMPLES_KEY)
    return {s: read[x] for s, x in producers.items() if x in read}


def statistics_spans(store: mlmd.MetadataStore, statistics_ids) -> dict[int, int]:
    """Statistics id -> the span of the Examples they describe (0: a flat directory)."""
    examples = statistics_examples(store, statistics_ids)
    found = {a.id: a for a in store.get_artifacts_by_id(list(set(examples.values())))} if examples else {}
    out = {}
    for statistics, example_id in examples.items():
        props = found[example_id].custom_properties if example_id in found else {}
        out[statistics] = props[SPAN_PROPERTY].int_value if SPAN_PROPERTY in props else 0
    return out


def accepted_examples(store: mlmd.MetadataStore, accepted_ids) -> dict[int, int]:
    """Examples id -> id of the statistics the data gate accepted for them."""
    statistics = accepted_from(store, list(accepted_ids))
    examples = statistics_examples(store, statistics.values())
    return {examples[s]: a for a, s in statistics.items() if s in examples}


def ingested(store: mlmd.MetadataStore) -> list[dict]:
    """Every Examples artifact CsvExampleGen wrote (those with its input fingerprint), oldest first:
    id, span, version, fingerprint, uri, and whether the data gate accepted it."""
    examples = [a for a in store.get_artifacts_by_type("Examples") if FINGERPRINT_PROPERTY in a.custom_properties]
    statistics = [a.id for a in store.get_artifacts_by_type("ExampleStatistics")]
    accepted = accepted_examples(store, statistics) if statistics and examples else {}

    def custom(a, key: str, kind: str):
        return getattr(a.custom_properties[key], kind) if key in a.custom_properties else None

    finished = _finished(store, [a.id for a in examples])
    return [
        {"id": a.id, "span": custom(a, SPAN_PROPERTY, "int_value") or 0, "version": custom(a, VERSION_PROPERTY, "int_value"),
         "fingerprint": custom(a, FINGERPRINT_PROPERTY, "string_value"), "uri": a.uri, "accepted": a.id in accepted,
         "finished": a.id in finished}
        for a in sorted(examples, key=lambda a: a.id)
    ]


def _finished(store: mlmd.MetadataStore, example_ids: list[int]) -> set[int]:
    """The Examples a run finished with: an Evaluator completed on them (or reused its result), or
    the data gate refused them. A run that failed elsewhere (a crash, a full disk) finished nothing."""
    done = {metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED}
    events = store.get_events_by_artifact_ids(example_ids) if example_ids else []
    readers = {e.execution_id: e.artifact_id for e in events if e.type == metadata_store_pb2.Event.INPUT}
    executions = store.get_executions_by_id(list(readers)) if readers else []
    types = {t.id: t.name for t in store.get_execution_types()}
    out = {readers[x.id] for x in executions
           if types.get(x.type_id, "").endswith("Evaluator") and x.last_known_state in done}
    stats_of = statistics_examples(store, [a.id for a in store.get_artifacts_by_type("ExampleStatistics")])
    gate_reads = _inputs_by_artifact(store, list(stats_of), "statistics")
    gates = store.get_executions_by_id(list({x for xs in gate_reads.values() for x in xs})) if gate_reads else []
    refused = {x.id for x in gates if types.get(x.type_id, "").endswith("DataGate")
               and x.last_known_state == metadata_store_pb2.Execution.FAILED}
    out |= {stats_of[s] for s, xs in gate_reads.items() if refused & set(xs)}
    return out


def _inputs_by_artifact(store: mlmd.MetadataStore, artifact_ids: list[int], key: str) -> dict[int, list[int]]:
    """Artifact id -> the executions that read it under `key`."""
    out: dict[int, list[int]] = {}
    for e in store.get_events_by_artifact_ids(artifact_ids) if artifact_ids else []:
        if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == key:
            out.setdefault(e.artifact_id, []).append(e.execution_id)
    return out
