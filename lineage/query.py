"""Runs, executions and artifacts read from MLMD, and the lineage between them.

TFX records each pipeline run as a `pipeline_run` context, each component as a `node` context
named `<pipeline>.<node id>`, its exec properties as the execution's custom properties, and its
inputs and outputs as INPUT/OUTPUT events. Everything here is built from those alone.
"""

import dataclasses
import datetime
import json
import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from lineage.store import LineageError

Event = mlmd.Event
State = mlmd.Execution.State
INPUT_EVENTS = (Event.INPUT, Event.DECLARED_INPUT, Event.INTERNAL_INPUT)
OUTPUT_EVENTS = (Event.OUTPUT, Event.DECLARED_OUTPUT, Event.INTERNAL_OUTPUT, Event.PENDING_OUTPUT)
# What really produced an artifact; a resolver's INTERNAL_OUTPUT only re-emits an existing one.
PRODUCING_EVENTS = (Event.OUTPUT, Event.DECLARED_OUTPUT)
# Inputs that are an earlier run's result, not an ingredient: an upstream trace leaves them out
# (else every model's trace would run back through all the models blessed before it).
BASELINE_INPUTS = ("baseline_model",)

# Exec properties that name user code, whatever the component (module files or function paths).
CODE_PROPERTIES = (
    "module_file", "module_path", "run_fn", "trainer_fn", "tuner_fn", "preprocessing_fn",
    "stats_options_updater_fn", "analyzer_cache_fn",
)
NAMED_ARTIFACTS = {"latest-pushed-model": "PushedModel", "latest-model": "Model"}
# CsvExampleGen's Examples carry this custom property (Transform's outputs are Examples too).
INGESTED_PROPERTY = "input_fingerprint"


def value_of(value: mlmd.Value) -> Any:
    """A property value as plain Python; strings holding JSON are decoded."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    if kind == "proto_value":
        return str(value.proto_value)
    raw = getattr(value, kind)
    if kind == "string_value" and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def _properties(message) -> dict[str, Any]:
    props = {k: value_of(v) for k, v in message.properties.items()}
    props.update({k: value_of(v) for k, v in message.custom_properties.items()})
    return props


def _event_keys(event: mlmd.Event) -> list[str]:
    """The input/output keys an event belongs to (one artifact can be, e.g., model and baseline)."""
    return [step.key for step in event.path.steps if step.HasField("key")] or [""]


def _time(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


@dataclasses.dataclass
class ArtifactInfo:
    id: int
    type: str
    uri: str
    created: datetime.datetime
    properties: dict[str, Any]

    def label(self) -> str:
        return f"{self.type} #{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "created": self.created.isoformat()}


@dataclasses.dataclass
class ExecutionInfo:
    id: int
    node_id: str
    pipeline: str
    component_type: str
    state: str
    start: datetime.datetime
    end: datetime.datetime
    properties: dict[str, Any]
    inputs: dict[str, list[ArtifactInfo]] = dataclasses.field(default_factory=dict)
    outputs: dict[str, list[ArtifactInfo]] = dataclasses.field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def label(self) -> str:
        return f"{self.node_id} #{self.id}"

    def code(self) -> dict[str, Any]:
        """The user code this execution ran, and its fingerprint where one was recorded."""
        code = {k: self.properties[k] for k in CODE_PROPERTIES if self.properties.get(k)}
        config = self.properties.get("custom_config")
        if isinstance(config, dict) and config.get("code_fingerprint"):
            code["code_fingerprint"] = config["code_fingerprint"]
        return code

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "node_id": self.node_id, "pipeline": self.pipeline,
            "component_type": self.component_type, "state": self.state,
            "start": self.start.isoformat(), "end": self.end.isoformat(), "seconds": self.seconds,
            "code": self.code(), "properties": self.properties,
            "inputs": {k: [a.to_json() for a in v] for k, v in self.inputs.items()},
            "outputs": {k: [a.to_json() for a in v] for k, v in self.outputs.items()},
        }


@dataclasses.dataclass
class RunInfo:
    run_id: str
    pipeline: str
    context_id: int
    executions: list[ExecutionInfo]

    @property
    def start(self) -> datetime.datetime | None:
        return min((e.start for e in self.executions), default=None)

    @property
    def end(self) -> datetime.datetime | None:
        return max((e.end for e in self.executions), default=None)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() if self.executions else 0.0

    @property
    def state(self) -> str:
        states = {e.state for e in self.executions}
        if "FAILED" in states:
            return "FAILED"
        if states & {"RUNNING", "NEW", "UNKNOWN"}:
            return "RUNNING"  # or killed: nothing will ever finish it
        if "CANCELED" in states:
            return "CANCELED"
        return "COMPLETE" if states else "EMPTY"

    def execution(self, node_id: str) -> ExecutionInfo | None:
        return next((e for e in self.executions if e.node_id == node_id), None)

    def states(self) -> dict[str, str]:
        return {e.node_id: e.state for e in self.executions}

    def output(self, node_id: str, key: str) -> ArtifactInfo | None:
        """The (last) artifact a node's execution output under `key`, if any."""
        execution = self.execution(node_id)
        artifacts = execution.outputs.get(key, []) if execution else []
        return artifacts[-1] if artifacts else None

    def to_json(self, with_io: bool = False) -> dict[str, Any]:
        out = {
            "run_id": self.run_id, "pipeline": self.pipeline, "state": self.state,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None, "seconds": self.seconds,
        }
        out["nodes"] = [
            e.to_json() if with_io else {"node_id": e.node_id, "id": e.id, "state": e.state, "seconds": e.seconds}
            for e in self.executions
        ]
        return out


@dataclasses.dataclass
class Trace:
    """A lineage graph: executions and artifacts, edges artifact->execution (input) and back."""

    root: ArtifactInfo
    downstream: bool
    executions: dict[int, ExecutionInfo]
    artifacts: dict[int, ArtifactInfo]
    edges: list[tuple[str, str]]  # ("a:<id>", "e:<id>") or ("e:<id>", "a:<id>")
    cached_reuses: dict[int, int]  # execution id -> how many cached executions reused its outputs

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root.to_json(), "direction": "downstream" if self.downstream else "upstream",
            "executions": [
                {**e.to_json(), "reused_by_cached_executions": self.cached_reuses.get(e.id, 0)}
                for e in self.executions.values()
            ],
            "artifacts": [a.to_json() for a in self.artifacts.values()],
            "edges": self.edges,
        }


class Lineage:
    """Read-only queries over one MLMD store."""

    def __init__(self, store: metadata_store.MetadataStore):
        self._store = store
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._execution_types = {t.id: t.name for t in store.get_execution_types()}
        self._node_of: dict[int, tuple[str, str]] = {}  # execution id -> (pipeline, node id)
        pipelines = [c.name for c in store.get_contexts_by_type("pipeline")]
        for node in store.get_contexts_by_type("node"):
            # Node contexts are "<pipeline>.<node id>", and a pipeline name may itself hold dots.
            pipeline = max((p for p in pipelines if node.name.startswith(p + ".")), key=len, default="?")
            node_id = node.name[len(pipeline) + 1:] if pipeline != "?" else node.name
            for execution in store.get_executions_by_context(node.id):
                self._node_of[execution.id] = (pipeline, node_id)

    # --- runs ------------------------------------------------------------------------------------

    def runs(self, pipeline: str | None = None) -> list[RunInfo]:
        """Every pipeline run, oldest first."""
        runs = []
        for context in self._store.get_contexts_by_type("pipeline_run"):
            executions = self._executions(self._store.get_executions_by_context(context.id), with_io=False)
            name = self._pipeline_of(context)
            if name == "?":
                name = next((e.pipeline for e in executions if e.pipeline != "?"), "?")
            if pipeline is None or name == pipeline:
                runs.append(RunInfo(context.name, name, context.id, executions))
        return sorted(runs, key=lambda r: (r.start or _time(0), r.context_id))

    def run(self, ref: str, with_io: bool = True, pipeline: str | None = None) -> RunInfo:
        """A run by its id, a unique prefix of it, 'latest', or 'latest~N' (N runs before)."""
        runs = self.runs(pipeline)
        if not runs:
            raise LineageError("the store holds no pipeline run" + (f" of {pipeline!r}" if pipeline else ""))
        if ref == "latest" or ref.startswith("latest~"):
            match = re.fullmatch(r"latest(?:~(\d+))?", ref)
            if not match:
                raise LineageError(f"{ref!r}: write latest, or latest~N with N a number of runs back")
            names = sorted({r.pipeline for r in runs})
            if len(names) > 1:
                raise LineageError(f"the store holds runs of {', '.join(names)}: say which with --pipeline")
            back = int(match.group(1) or 0)
            if back >= len(runs):
                raise LineageError(f"{ref}: the store holds only {len(runs)} runs")
            found = runs[-1 - back]
        else:
            matches = [r for r in runs if r.run_id == ref] or [r for r in runs if r.run_id.startswith(ref)]
            if not matches:
                raise LineageError(f"no run {ref!r} in the store (see the 'runs' command)")
            if len(matches) > 1:
                raise LineageError(f"{ref!r} matches {len(matches)} runs; give more of the run id")
            found = matches[0]
        return self.with_io(found) if with_io else found

    def with_io(self, run: RunInfo) -> RunInfo:
        """The run with its executions' input and output artifacts (runs() lists it without them)."""
        executions = self._store.get_executions_by_context(run.context_id)
        return dataclasses.replace(run, executions=self._executions(executions, with_io=True))

    def latest_run(self, pipeline: str) -> RunInfo:
        runs = self.runs(pipeline)
        if not runs:
            raise LineageError(f"the store holds no run of pipeline {pipeline!r}")
        return self.run(runs[-1].run_id)

    def _pipeline_of(self, run_context: mlmd.Context) -> str:
        parents = self._store.get_parent_contexts_by_context(run_context.id)
        return next((p.name for p in parents if p.type == "pipeline"), "?")

    def _executions(self, executions: Iterable[mlmd.Execution], with_io: bool) -> list[ExecutionInfo]:
        executions = sorted(executions, key=lambda e: (e.create_time_since_epoch, e.id))
        infos = [self._execution_info(e) for e in executions]
        if with_io:
            self._fill_io({e.id: e for e in infos})
        return infos

    def _execution_info(self, execution: mlmd.Execution) -> ExecutionInfo:
        pipeline, node_id = self._node_of.get(execution.id, ("?", execution.name or f"execution-{execution.id}"))
        return ExecutionInfo(
            id=execution.id,
            node_id=node_id,
            pipeline=pipeline,
            component_type=self._execution_types.get(execution.type_id, execution.type),
            state=State.Name(execution.last_known_state),
            start=_time(execution.create_time_since_epoch),
            end=_time(execution.last_update_time_since_epoch),
            properties=_properties(execution),
        )

    def _artifact_infos(self, ids: Iterable[int]) -> dict[int, ArtifactInfo]:
        ids = list(ids)
        return {a.id: self._artifact_info(a) for a in self._store.get_artifacts_by_id(ids)} if ids else {}

    def _artifact_info(self, artifact: mlmd.Artifact) -> ArtifactInfo:
        return ArtifactInfo(
            id=artifact.id,
            type=self._artifact_types.get(artifact.type_id, artifact.type),
            uri=artifact.uri,
            created=_time(artifact.create_time_since_epoch),
            properties=_properties(artifact),
        )

    # --- artifacts and traces --------------------------------------------------------------------

    def artifact(self, ref: str) -> ArtifactInfo:
        """An artifact by id, URI, 'latest-pushed-model', 'latest-model' or 'latest:<Type>'."""
        if ref.isdigit():
            found = self._store.get_artifacts_by_id([int(ref)])
            if not found:
                raise LineageError(f"no artifact with id {ref}")
            return self._artifact_info(found[0])
        type_name = NAMED_ARTIFACTS.get(ref) or (ref.partition(":")[2] if ref.startswith("latest:") else None)
        if type_name:
            candidates = self._store.get_artifacts_by_type(type_name)
            if ref == "latest-pushed-model":  # a PushedModel artifact also records pushes that did not happen
                candidates = [
                    a for a in candidates
                    if "pushed" in a.custom_properties and value_of(a.custom_properties["pushed"]) == 1
                ]
            if not candidates:
                raise LineageError(f"{ref}: the store holds no {type_name} artifact" + (" that was pushed" if ref == "latest-pushed-model" else ""))
            return self._artifact_info(max(candidates, key=lambda a: (a.create_time_since_epoch, a.id)))
        found = self._store.get_artifacts_by_uri(ref.rstrip("/"))
        if not found:
            raise LineageError(
                f"no artifact {ref!r}: give an id, a URI, {', '.join(NAMED_ARTIFACTS)} or latest:<ArtifactType>"
            )
        return self._artifact_info(max(found, key=lambda a: a.id))

    def artifacts_of_type(self, type_name: str) -> list[ArtifactInfo]:
        """Every artifact of a type, oldest first."""
        found = self._store.get_artifacts_by_type(type_name)
        return [self._artifact_info(a) for a in sorted(found, key=lambda a: (a.create_time_since_epoch, a.id))]

    def producer(self, artifact_id: int) -> tuple[ExecutionInfo, str | None] | None:
        """The execution that really produced an artifact (the first one not CACHED that output it),
        with its inputs and outputs, and the id of the pipeline run it ran in (None: outside any run)."""
        ids = [ev.execution_id for ev in self._store.get_events_by_artifact_ids([artifact_id])
               if ev.type in PRODUCING_EVENTS]
        real = [e for e in self._store.get_executions_by_id(ids) if e.last_known_state != State.CACHED] if ids else []
        if not real:
            return None
        first = min(real, key=lambda e: (e.create_time_since_epoch, e.id))
        info = self._execution_info(first)
        self._fill_io({info.id: info})
        runs = [c.name for c in self._store.get_contexts_by_execution(first.id) if c.type == "pipeline_run"]
        return info, (runs[0] if runs else None)

    def trace(self, ref: str, downstream: bool = False, with_baselines: bool = False) -> Trace:
        """Upstream: what produced the artifact, back to the raw data. Downstream: everything it fed.

        Cached executions re-record the outputs of the execution they reuse; the trace follows
        the execution that really computed each artifact and counts the cached reuses.
        """
        root = self.artifact(ref)
        artifacts = {root.id: root}
        executions: dict[int, ExecutionInfo] = {}
        edges: set[tuple[str, str]] = set()
        reusers: dict[int, set[int]] = {}  # producer -> the cached executions that reused its outputs
        frontier = {root.id}
        while frontier:
            events = self._store.get_events_by_artifact_ids(list(frontier))
            wanted = INPUT_EVENTS if downstream else PRODUCING_EVENTS
            by_artifact: dict[int, list[int]] = {}
            for ev in events:
                if ev.type in wanted:
                    by_artifact.setdefault(ev.artifact_id, []).append(ev.execution_id)
            candidate_ids = {x for ids in by_artifact.values() for x in ids}
            raw = {e.id: e for e in self._store.get_executions_by_id(list(candidate_ids))} if candidate_ids else {}
            next_executions = set()
            for artifact_id, execution_ids in by_artifact.items():
                real = [raw[x] for x in execution_ids if raw[x].last_known_state != State.CACHED]
                cached = {x for x in execution_ids if raw[x].last_known_state == State.CACHED}
                if not downstream:  # the producer: the first real execution that output it
                    real = sorted(real, key=lambda e: (e.create_time_since_epoch, e.id))[:1]
                for execution in real:
                    if cached and not downstream:
                        reusers.setdefault(execution.id, set()).update(cached)
                    key = ("e:%d" % execution.id, "a:%d" % artifact_id)
                    edges.add(key if not downstream else (key[1], key[0]))
                    if execution.id not in executions:
                        executions[execution.id] = self._execution_info(execution)
                        next_executions.add(execution.id)
            frontier = set()
            if next_executions:
                exec_events = self._store.get_events_by_execution_ids(list(next_executions))
                follow = OUTPUT_EVENTS if downstream else INPUT_EVENTS

                def followed(ev: mlmd.Event) -> bool:
                    if ev.type not in follow:
                        return False
                    skip = () if downstream or with_baselines else BASELINE_INPUTS
                    return not all(key in skip for key in _event_keys(ev))

                new_ids = {ev.artifact_id for ev in exec_events if followed(ev)}
                for ev in exec_events:
                    if followed(ev):
                        edge = ("e:%d" % ev.execution_id, "a:%d" % ev.artifact_id) if downstream else (
                            "a:%d" % ev.artifact_id, "e:%d" % ev.execution_id)
                        edges.add(edge)
                fresh = new_ids - artifacts.keys()
                artifacts.update(self._artifact_infos(fresh))
                frontier = fresh
        self._fill_io(executions, artifacts)
        reuses = {producer: len(cached) for producer, cached in reusers.items()}
        return Trace(root, downstream, executions, artifacts, sorted(edges), reuses)

    # --- spans ------------------------------------------------------------------------------------

    def spans_fed(self, ref: str) -> tuple[ArtifactInfo, dict[int, list[ArtifactInfo]]]:
        """The spans that fed an artifact (by default a model): span -> the Examples CsvExampleGen
        wrote for it, found in the artifact's upstream trace."""
        found = self.trace(ref)
        out: dict[int, list[ArtifactInfo]] = {}
        for a in found.artifacts.values():
            if a.type == "Examples" and INGESTED_PROPERTY in a.properties:
                out.setdefault(int(a.properties.get("span") or 0), []).append(a)
        return found.root, dict(sorted(out.items()))

    def models_fed_by(self, span: int) -> list[tuple[ArtifactInfo, list[str]]]:
        """Every model span N fed (in its downstream trace), oldest first, with the serving
        directories a Pusher published it to."""
        ingested = [a for a in self.artifacts_of_type("Examples")
                    if INGESTED_PROPERTY in a.properties and int(a.properties.get("span") or 0) == span]
        if not ingested:
            raise LineageError(f"span {span}: no CsvExampleGen Examples of that span in the store")
        models: dict[int, ArtifactInfo] = {}
        pushes: dict[int, list[str]] = {}
        for examples in ingested:
            found = self.trace(str(examples.id), downstream=True)
            for a in found.artifacts.values():
                if a.type == "Model":
                    models[a.id] = a
            for execution in found.executions.values():
                for model in execution.inputs.get("model", []):
                    for pushed in execution.outputs.get("pushed_model", []):
                        if pushed.properties.get("pushed") == 1:
                            pushes.setdefault(model.id, []).append(str(pushed.properties.get("pushed_destination")))
        return [(m, sorted(set(pushes.get(i, [])))) for i, m in sorted(models.items())]

    def _fill_io(self, executions: dict[int, ExecutionInfo], artifacts: dict[int, ArtifactInfo] | None = None) -> None:
        """Attaches each execution's input and output artifacts (only those in `artifacts`, if given)."""
        if not executions:
            return
        events = self._store.get_events_by_execution_ids(list(executions))
        if artifacts is None:
            artifacts = self._artifact_infos({ev.artifact_id for ev in events})
        for ev in events:
            if ev.artifact_id not in artifacts:
                continue
            info = executions[ev.execution_id]
            target = info.inputs if ev.type in INPUT_EVENTS else info.outputs
            for key in _event_keys(ev):
                target.setdefault(key, []).append(artifacts[ev.artifact_id])


# --- diffs ------------------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "", lists: bool = True) -> dict[str, Any]:
    """{"a": {"b": [1]}} -> {"a.b[0]": 1}, so a diff names the exact setting that changed.

    lists=False keeps lists whole (for display).
    """
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k), lists))
        return out
    if lists and isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]", lists))
        return out
    return {prefix: value}


def diff_runs(a: RunInfo, b: RunInfo, metrics_of=None) -> dict[str, Any]:
    """What differs between two runs: node states, parameters, input artifacts, metrics.

    metrics_of(run) -> {metric: value} supplies evaluation metrics (see lineage.metrics).
    """
    nodes = sorted({e.node_id for e in a.executions} | {e.node_id for e in b.executions})
    out: dict[str, Any] = {"run_a": a.run_id, "run_b": b.run_id, "states": [], "parameters": [], "inputs": [], "metrics": []}
    for node in nodes:
        ea, eb = a.execution(node), b.execution(node)
        if (ea and ea.state) != (eb and eb.state):
            out["states"].append({"node": node, "a": ea.state if ea else None, "b": eb.state if eb else None})
        pa = flatten(ea.properties) if ea else {}
        pb = flatten(eb.properties) if eb else {}
        # A CACHED execution does not record what its driver computes at run time (e.g.
        # ExampleGen's input_fingerprint): compare only what both record.
        cached = "CACHED" in (ea and ea.state, eb and eb.state)
        for key in sorted(set(pa) & set(pb) if cached else set(pa) | set(pb)):
            if pa.get(key) != pb.get(key):
                out["parameters"].append({"node": node, "parameter": key, "a": pa.get(key), "b": pb.get(key)})
        ia = {k: sorted(x.id for x in v) for k, v in (ea.inputs if ea else {}).items()}
        ib = {k: sorted(x.id for x in v) for k, v in (eb.inputs if eb else {}).items()}
        for key in sorted(set(ia) | set(ib)):
            if ia.get(key) != ib.get(key):
                uris_a = [x.uri for x in (ea.inputs.get(key, []) if ea else [])]
                uris_b = [x.uri for x in (eb.inputs.get(key, []) if eb else [])]
                out["inputs"].append({"node": node, "input": key, "a": uris_a, "b": uris_b})
    if metrics_of is None:
        out["metrics"] = None  # not read, which is not the same as "no difference"
    else:
        ma, mb = metrics_of(a), metrics_of(b)
        for key in sorted(set(ma) | set(mb)):
            if ma.get(key) != mb.get(key):
                out["metrics"].append({"metric": key, "a": ma.get(key), "b": mb.get(key)})
    return out
