"""The model registry: each version in the serving directory, with what MLMD knows of it.

TF Serving's layout is the truth of what is published: <serving>/<model>/<version>/ (the
SavedModel, what TF Serving serves: the newest complete version by default) and its TFLite twin
under <serving>/<model>_tflite/<version>/. MLMD says where each came from: the Pusher's PushedModel
(pushed_version, pushed_destination) leads to the run, the Model, the data, the code, the
Evaluator's metrics and blessing and the serving check. Without a store the layout alone is
listed, and what only MLMD knows is shown as n/a.

A rollback republishes an earlier version's files as a new, newest version (publish.py: staged
aside, renamed into place, the SavedModel last) and records it in MLMD as a `Rollback` execution:
the original Model and PushedModel in, a new PushedModel out, so `lineage trace
latest-pushed-model` reaches the data of the model now served.
"""

import contextlib
import dataclasses
import datetime
import getpass
from pathlib import Path
from typing import Any

from components.pusher import options as pusher_options
from lineage.query import ArtifactInfo, Lineage, RunInfo
from lineage.store import StoreAddress, open_store
from pipeline.locations import Locations, OutputDir
from pipeline.metadata import MetadataStore
from report import build as report_build

PUSHED_MODEL_TYPE = "PushedModel"
ROLLBACK_TYPE = "Rollback"  # the execution type (and node id) a rollback is recorded as
ROLLBACK_OF, REASON = "rollback_of", "reason"  # custom properties of a rollback's PushedModel and execution
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
TFLITE_FILE = "model.tflite"
SERVING_CHECK_TYPE = "InfraBlessing"
SERVING_CHECK_KEYS = ("blessed", "load_seconds", "latency_p50_ms", "latency_p99_ms", "peak_rss_mb", "requests", "reason")


class RegistryError(Exception):
    """A request that cannot be carried out (unknown version, missing twin): nothing was changed."""


class RollbackFailed(Exception):
    """A rollback that failed on the way (MLMD could not record it) and was undone."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one model's versions are published."""

    base: str  # <serving>/<model>
    tflite_base: str  # <serving>/<model>_tflite

    @classmethod
    def of(cls, serving_dir: str | Path, model_name: str) -> "Layout":
        # Locations holds the one definition of both directories' names.
        where = Locations(data=None, schema_file="", pipeline_root="", serving_dir=str(serving_dir).rstrip("/"), metadata=None)
        return cls(where.serving_model_dir(model_name), where.tflite_serving_dir(model_name))


@dataclasses.dataclass
class Version:
    version: int
    directory: str
    twin: str | None  # the TFLite twin's directory; None when it is missing
    served: bool = False  # the newest complete version: what TF Serving serves by default
    pushed: ArtifactInfo | None = None  # MLMD's record of the push (None: no record, or no store)
    run_id: str | None = None  # the pipeline run that pushed the model (a rollback: the original's)
    model: ArtifactInfo | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    code_fingerprint: str | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    blessed: bool | None = None
    serving_check: dict[str, Any] | None = None
    rollback_of: str | None = None
    reason: str | None = None

    @property
    def when(self) -> datetime.datetime:
        """When it was pushed: MLMD's record, else the version itself (TFX's versions are Unix times)."""
        if self.pushed is not None:
            return self.pushed.created
        return datetime.datetime.fromtimestamp(self.version, tz=datetime.timezone.utc)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(when=self.when.isoformat(), pushed=self.pushed.to_json() if self.pushed else None,
                   model=self.model.to_json() if self.model else None)
        return out


@dataclasses.dataclass
class Listing:
    layout: Layout
    versions: list[Version]  # oldest first
    incomplete: list[str]  # one line per directory a reader must ignore, and why
    store_note: str | None  # what cannot be shown, and why (no store)

    def version(self, ref: str) -> Version:
        found = next((v for v in self.versions if str(v.version) == ref.strip()), None)
        half = next((line for line in self.incomplete if line.startswith(f"{self.layout.base}/{ref.strip()}:")), None)
        if found is None and half is not None:
            raise RegistryError(f"version {half}")
        if found is None:
            known = ", ".join(str(v.version) for v in self.versions[-5:]) or "none"
            raise RegistryError(f"no version {ref} under {self.layout.base} (newest versions: {known})")
        return found


# --- the serving layout ------------------------------------------------------------------------------


def _gfile():
    import tensorflow as tf  # heavy: gfile reads remote serving directories (gs://...) as well

    return tf.io.gfile


def _is_complete(directory: str, files: tuple[str, ...]) -> bool:
    gfile = _gfile()
    return any(gfile.exists(f"{directory}/{name}") for name in files)


def read_layout(layout: Layout) -> tuple[list[Version], list[str]]:
    """The complete versions (oldest first) and the directories a reader must ignore, with why.

    Incomplete: a staging directory an interrupted push left, or a numbered directory without a
    SavedModel (an older Pusher copied into place, and a run killed mid-copy left it half-written).
    """
    from components.pusher import publish

    incomplete = [f"{base}/{name}: staging directory of an interrupted push (never served; safe to delete)"
                  for base in (layout.base, layout.tflite_base) for name in publish.leftovers(base)]
    versions = []
    for number in publish.versions(layout.base):
        directory = f"{layout.base}/{number}"
        if not _is_complete(directory, SAVED_MODEL_FILES):
            incomplete.append(f"{directory}: no saved_model.pb, a half-written version (ignored here; TF Serving "
                              "would try to load it if it were the newest: delete it)")
            continue
        twin = f"{layout.tflite_base}/{number}"
        versions.append(Version(number, directory, twin if _is_complete(twin, (TFLITE_FILE,)) else None))
    numbers = {v.version for v in versions}
    for number in publish.versions(layout.tflite_base):
        if number not in numbers and not any(line.startswith(f"{layout.base}/{number}:") for line in incomplete):
            incomplete.append(f"{layout.tflite_base}/{number}: a TFLite twin without its SavedModel (ignored)")
    if versions:
        versions[-1].served = True
    return versions, incomplete


# --- what MLMD knows ---------------------------------------------------------------------------------


def _pushes(lineage: Lineage, layout: Layout) -> dict[int, ArtifactInfo]:
    """version -> its PushedModel: the one whose destination is the version's directory, or (an
    output directory moved or copied elsewhere) whose destination ends in <model>/<version>."""
    model_dir = layout.base.rstrip("/").rsplit("/", 1)[-1]
    exact: dict[int, ArtifactInfo] = {}
    moved: dict[int, ArtifactInfo] = {}
    for artifact in lineage.artifacts_of_type(PUSHED_MODEL_TYPE):
        props = artifact.properties
        version, destination = str(props.get("pushed_version", "")), str(props.get("pushed_destination", ""))
        if props.get("pushed") != 1 or not version.isdigit():
            continue
        if destination.rstrip("/") == f"{layout.base}/{version}":
            exact[int(version)] = artifact
        elif destination.rstrip("/").endswith(f"/{model_dir}/{version}"):
            moved[int(version)] = artifact
    return {**moved, **exact}


def _describe(lineage: Lineage, version: Version, pushed: ArtifactInfo, metrics: bool, seen: frozenset = frozenset()) -> None:
    """Fills in what MLMD knows of a version from its PushedModel (a rollback: from the original's)."""
    version.pushed = version.pushed or pushed
    if pushed.properties.get(ROLLBACK_OF) and version.rollback_of is None:
        version.rollback_of, version.reason = str(pushed.properties[ROLLBACK_OF]), pushed.properties.get(REASON)
    produced = lineage.producer(pushed.id)
    if produced is None:
        return
    execution, run_id = produced
    version.model = version.model or _first(execution.inputs, "model")
    if run_id is None:  # a rollback: the rest is the rolled-back-to push's
        earlier = _first(execution.inputs, "pushed_model")
        if earlier is not None and earlier.id not in seen:
            _describe(lineage, version, earlier, metrics, seen | {pushed.id})
        return
    version.run_id = run_id
    _from_run(lineage, lineage.run(run_id), execution.inputs, version, metrics)


def _first(inputs: dict[str, list[ArtifactInfo]], key: str) -> ArtifactInfo | None:
    return next(iter(inputs.get(key, [])), None)


def _from_run(lineage: Lineage, run: RunInfo, pusher_inputs: dict[str, list[ArtifactInfo]], version: Version,
              metrics: bool) -> None:
    """What the Pusher took in (the Model, its blessings), and the run's data and evaluation. Not
    found by output key alone: the baseline resolver outputs a `model` too."""
    examples_at, examples = report_build.find_output(run, "Examples", key="examples")
    if examples is not None:
        version.data = {"examples": examples.id, "input_base": examples_at.properties.get("input_base"),
                        "span": examples.properties.get("span"),
                        "input_fingerprint": examples.properties.get("input_fingerprint")}
    trained = lineage.producer(version.model.id) if version.model is not None else None
    if trained is not None:  # the Trainer that really computed it, even if this run's was cached
        version.code_fingerprint = trained[0].code().get("code_fingerprint")
    blessing = _first(pusher_inputs, "model_blessing")
    if blessing is not None:
        version.blessed = blessing.properties.get("blessed") == 1
    check = _first(pusher_inputs, "infra_blessing") or report_build.find_output(run, SERVING_CHECK_TYPE)[1]
    if check is not None:
        version.serving_check = {k: check.properties.get(k) for k in SERVING_CHECK_KEYS if k in check.properties}
    if metrics:
        evaluation = report_build.collect_evaluation(run)
        if evaluation is not None and evaluation.overall is not None:
            version.metrics = dict(evaluation.overall.candidate)


def _store_present(metadata: MetadataStore | None) -> bool:
    return metadata is not None and (metadata.is_server or (metadata.sqlite is not None and metadata.sqlite.is_file()))


def listing(layout: Layout, metadata: MetadataStore | None, metrics: bool = True) -> Listing:
    """Every version, oldest first, with what the store (read-only) knows of each."""
    versions, incomplete = read_layout(layout)
    if not _store_present(metadata):
        where = metadata.describe() if metadata is not None else "none given"
        note = (f"no MLMD store ({where}): run, data, code, metrics, blessing and serving check are n/a; "
                "the serving directory alone is listed")
        return Listing(layout, versions, incomplete, note)
    lineage = Lineage(open_store(StoreAddress.of(metadata)))
    pushes = _pushes(lineage, layout)
    for version in versions:
        if version.version in pushes:
            _describe(lineage, version, pushes[version.version], metrics)
    missing = [str(v.version) for v in versions if v.pushed is None]
    note = f"no MLMD record of version(s) {', '.join(missing)} in {metadata.describe()}" if missing else None
    return Listing(layout, versions, incomplete, note)


# --- rollback ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Rollback:
    version: str  # the new version
    published: list[str]
    rollback_of: Version
    recorded: str  # what MLMD holds of it, in words


def rollback(layout: Layout, ref: str, reason: str, metadata: MetadataStore | None, pipeline_name: str,
             output: OutputDir | None = None) -> Rollback:
    """Republishes version `ref` as the newest version and records it in MLMD.

    Refused (RegistryError, nothing changed) for an unknown or incomplete version, one without its
    TFLite twin, the version already served, or an empty reason. Holds the output directory's run
    lock, so no local run pushes meanwhile. If MLMD cannot record it, the new version is removed
    again: nothing is served that the store does not know of.
    """
    from components.pusher import publish
    from runs import state

    if not reason.strip():
        raise RegistryError("--reason: say why the version is rolled back (it is recorded in MLMD)")
    original = _checked(listing(layout, metadata, metrics=False), ref)
    with state.private_files(), (state.exclusive_run(output.path) if output is not None else contextlib.nullcontext()):
        original = _checked(listing(layout, metadata, metrics=False), ref)  # again, under the lock
        new = publish.next_version([layout.base, layout.tflite_base])
        published = publish.publish(new, [(layout.tflite_base, publish.copy_tree(original.twin)),
                                          (layout.base, publish.copy_tree(original.directory))])
        try:
            recorded = _record(metadata, pipeline_name, original, new, published, reason.strip())
        except Exception as error:  # nothing may be served that the store does not know of
            gfile = _gfile()
            for directory in reversed(published):
                gfile.rmtree(directory)
            first = (str(error).strip().splitlines() or [""])[0]
            raise RollbackFailed(f"nothing rolled back: recording the rollback in {metadata.describe()} failed "
                                f"({type(error).__name__}: {first})") from None
    return Rollback(new, published, original, recorded)


def _checked(found: Listing, ref: str) -> Version:
    version = found.version(ref)
    if version.twin is None:
        raise RegistryError(f"version {ref} has no TFLite twin at {found.layout.tflite_base}/{ref}: "
                            "a rollback republishes both forms or nothing")
    if version.served:
        raise RegistryError(f"version {ref} is already the newest version, the one TF Serving serves")
    return version


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return "unknown"


def _record(metadata: MetadataStore | None, pipeline_name: str, original: Version, new: str, published: list[str],
            reason: str) -> str:
    """One MLMD transaction: a Rollback execution, its inputs (the original Model and PushedModel)
    and its output (a new PushedModel, pushed=1), in the pipeline's context and a Rollback node's."""
    if not _store_present(metadata):
        return "not recorded: no MLMD store"
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    store = metadata.open()
    def type_id(put, message) -> int:  # get-or-create by name, whatever properties TFX registered it with
        return put(message, can_add_fields=True, can_omit_fields=True)

    pushed_type = type_id(store.put_artifact_type, mlmd.ArtifactType(name=PUSHED_MODEL_TYPE))
    execution_type = type_id(store.put_execution_type, mlmd.ExecutionType(name=ROLLBACK_TYPE))
    pipeline_type = type_id(store.put_context_type, mlmd.ContextType(name="pipeline"))
    node_type = type_id(store.put_context_type, mlmd.ContextType(name="node"))

    artifact = mlmd.Artifact(type_id=pushed_type, uri=published[-1], state=mlmd.Artifact.LIVE)
    properties = {"pushed": 1, "pushed_destination": published[-1], "pushed_version": new,
                  pusher_options.TFLITE_DESTINATION: published[0], ROLLBACK_OF: str(original.version), REASON: reason}
    for key, value in properties.items():
        if isinstance(value, int):
            artifact.custom_properties[key].int_value = value
        else:
            artifact.custom_properties[key].string_value = value
    execution = mlmd.Execution(type_id=execution_type, last_known_state=mlmd.Execution.COMPLETE)
    for key, value in {ROLLBACK_OF: str(original.version), REASON: reason, "pushed_version": new,
                       "user": _user()}.items():
        execution.custom_properties[key].string_value = value

    def event(kind, key: str) -> mlmd.Event:
        ev = mlmd.Event(type=kind)
        ev.path.steps.add().key = key
        ev.path.steps.add().index = 0
        return ev

    inputs = [(x, key) for x, key in ((original.model, "model"), (original.pushed, "pushed_model")) if x is not None]
    existing = {a.id: a for a in store.get_artifacts_by_id([x.id for x, _ in inputs])} if inputs else {}
    artifacts_and_events = [(existing[x.id], event(mlmd.Event.INPUT, key)) for x, key in inputs]
    artifacts_and_events.append((artifact, event(mlmd.Event.OUTPUT, "pushed_model")))
    contexts = [mlmd.Context(type_id=pipeline_type, name=pipeline_name),
                mlmd.Context(type_id=node_type, name=f"{pipeline_name}.{ROLLBACK_TYPE}")]
    execution_id, (*_, artifact_id), _ = store.put_execution(
        execution, artifacts_and_events, contexts, reuse_context_if_already_exist=True)
    lineage = (f"with lineage to Model #{original.model.id}" if original.model
               else f"without lineage: no MLMD record of version {original.version}")
    return f"recorded in {metadata.describe()}: Rollback execution #{execution_id}, PushedModel #{artifact_id} ({lineage})"


# --- text --------------------------------------------------------------------------------------------

NA = "n/a"


def _short(value: Any, width: int = 12) -> str:
    return NA if value in (None, "") else str(value)[:width]


def _check_line(check: dict[str, Any] | None) -> str:
    if check is None:
        return NA
    verdict = "passed" if check.get("blessed") == 1 else f"failed ({check.get('reason') or 'no reason recorded'})"
    figures = [f"{label} {check[key]:.4g}{unit}" for key, label, unit in (
        ("load_seconds", "load", " s"), ("latency_p50_ms", "p50", " ms"), ("latency_p99_ms", "p99", " ms"),
        ("peak_rss_mb", "peak RSS", " MB")) if isinstance(check.get(key), (int, float))]
    if check.get("requests") is not None:
        figures.append(f"{check['requests']} requests")
    return verdict + (": " + ", ".join(figures) if figures else "")


def _blessed(version: Version) -> str:
    return NA if version.blessed is None else "yes" if version.blessed else "no"


def list_text(found: Listing) -> str:
    head = ("VERSION", "PUSHED (UTC)", "RUN", "DATA", "CODE", "AUC", "ACCURACY", "BLESSED", "TFLITE", "SERVING CHECK", "")
    rows = []
    for v in reversed(found.versions):  # newest first: the one served on top
        rows.append((
            str(v.version), v.when.strftime("%Y-%m-%d %H:%M:%S"), _short(v.run_id, 26),
            f"#{v.data['examples']} span {v.data.get('span')}" if v.data else NA, _short(v.code_fingerprint),
            f"{v.metrics['auc']:.4f}" if "auc" in v.metrics else NA,
            f"{v.metrics['binary_accuracy']:.4f}" if "binary_accuracy" in v.metrics else NA,
            _blessed(v), "yes" if v.twin else "missing", _check_line(v.serving_check).split(":")[0],
            " ".join(filter(None, ["served" if v.served else "", f"rollback of {v.rollback_of}" if v.rollback_of else ""])),
        ))
    lines = [f"Versions of {found.layout.base} (TFLite twins: {found.layout.tflite_base}):"]
    if rows:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    else:
        lines.append("  none published yet")
    lines += [f"Ignored: {line}" for line in found.incomplete]
    if found.store_note:
        lines.append(f"Note: {found.store_note}")
    return "\n".join(lines)


def show_text(found: Listing, version: Version) -> str:
    data = version.data
    lines = [
        f"Version {version.version}{' (served: the newest version)' if version.served else ''}",
        f"  SavedModel:     {version.directory}",
        f"  TFLite twin:    {version.twin or f'missing ({found.layout.tflite_base}/{version.version})'}",
        f"  Pushed (UTC):   {version.when.strftime('%Y-%m-%d %H:%M:%S')}" + ("" if version.pushed else " (from the version number)"),
        f"  MLMD record:    {version.pushed.label() if version.pushed else NA}",
    ]
    if version.rollback_of:
        lines.append(f"  Rollback of:    version {version.rollback_of}: {version.reason or 'no reason recorded'}")
    lines += [
        f"  Run:            {version.run_id or NA}",
        f"  Model:          {f'{version.model.label()} {version.model.uri}' if version.model else NA}",
        f"  Data:           " + (f"Examples #{data['examples']} from {data.get('input_base')} (span {data.get('span')}; "
                                 f"{data.get('input_fingerprint')})" if data else NA),
        f"  Code:           {version.code_fingerprint or NA}",
        f"  Eval metrics:   {report_build.metric_line(version.metrics) if version.metrics else NA}",
        f"  Blessed:        {_blessed(version)}",
        f"  Serving check:  {_check_line(version.serving_check)}",
    ]
    if found.store_note:
        lines.append(f"Note: {found.store_note}")
    return "\n".join(lines)
