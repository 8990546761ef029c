"""The state of runs in one output directory: who is running, and what an earlier run left behind.

One run at a time per output directory (its SQLite MLMD store and serving directory are not
built for two writers): a second run refuses at once, naming the holder. A run that was killed
leaves its executions RUNNING in MLMD; the next run reports them and marks them CANCELED, and
their unpublished outputs (where MLMD recorded any) ABANDONED, so nobody mistakes them for live work.
"""

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline.metadata import MetadataStore

LOCK_FILE = ".run.lock"


class RunLocked(RuntimeError):
    """Another run holds the output directory."""


@contextlib.contextmanager
def exclusive_run(output_dir: Path) -> Iterator[None]:
    """Holds <output_dir>/.run.lock for the run; raises RunLocked at once if another run has it.

    flock: the kernel drops the lock when its holder dies, even by SIGKILL, so a killed run
    never blocks the next one.
    """
    output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = output_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(
                f"another run is using {output_dir} ({holder}); wait for it, or give another --output-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files and directories the run creates are the user's only (MLMD store, models, logs)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@contextlib.contextmanager
def guarded(output_dir: Path, metadata: MetadataStore, pipeline_root: str) -> Iterator[None]:
    """What every run on this machine holds: user-only files, the output directory's lock, and
    the executions an interrupted earlier run left behind reported (and cancelled)."""
    with private_files(), exclusive_run(output_dir):
        for line in abandon_interrupted(metadata, pipeline_root):
            print(f"Note: {line}")
        yield


def abandon_interrupted(metadata: MetadataStore, pipeline_root: str) -> list[str]:
    """Marks executions left RUNNING or NEW by a killed run as CANCELED, and their pending outputs
    ABANDONED; returns one line per execution. Call only while holding the run lock.

    An SQLite store belongs to its output directory, whose lock this run holds: every unfinished
    execution in it is a killed run's. A database store is shared: another user's run may be
    live, so only executions of runs that wrote under this run's pipeline root are touched.
    """
    if metadata.sqlite is not None and not metadata.sqlite.is_file():
        return []
    store = metadata.open()
    stale = [e for e in store.get_executions() if e.last_known_state in (mlmd.Execution.RUNNING, mlmd.Execution.NEW)]
    if not stale:
        return []
    events = store.get_events_by_execution_ids([e.id for e in stale])
    outputs = {a.id: a for a in store.get_artifacts_by_id(
        {e.artifact_id for e in events if e.type in (mlmd.Event.OUTPUT, mlmd.Event.PENDING_OUTPUT)})}
    if metadata.is_server:
        stale = [e for e in stale if _of_this_output_dir(store, e, pipeline_root.rstrip("/") + "/")]
        if not stale:
            return []
    types = {t.id: t.name for t in store.get_execution_types()}
    lines = []
    for execution in stale:
        execution.last_known_state = mlmd.Execution.CANCELED
        component = types.get(execution.type_id, "?").rsplit(".", 1)[-1]
        lines.append(f"execution {execution.id} ({component}) of an interrupted run: marked CANCELED")
    store.put_executions(stale)
    stale_ids = {e.id for e in stale}
    pending = [outputs[e.artifact_id] for e in events if e.execution_id in stale_ids and e.artifact_id in outputs
               and outputs[e.artifact_id].state in (mlmd.Artifact.PENDING, mlmd.Artifact.UNKNOWN)]
    pending = list({a.id: a for a in pending}.values())
    for artifact in pending:
        artifact.state = mlmd.Artifact.ABANDONED
    if pending:
        store.put_artifacts(pending)
    return lines


def _of_this_output_dir(store, execution, root: str) -> bool:
    """Whether an execution belongs to a run whose artifacts lie under `root` (its own outputs, or
    those of the run's other executions: a killed execution may have recorded none yet)."""
    for context in store.get_contexts_by_execution(execution.id):
        if context.type == "pipeline_run" and any(a.uri.startswith(root) for a in store.get_artifacts_by_context(context.id)):
            return True
    return False


FAILURE_PROPERTY = "failure"  # on a failed execution and its pipeline_run context: why, in one line


def record_failure(metadata: MetadataStore, run_context_id: int, execution_ids: list[int], message: str) -> None:
    """Writes why a run failed onto its failed executions and its pipeline_run context, so MLMD
    says why the run published nothing (TFX records no message for an executor's exception)."""
    store = metadata.open()
    executions = store.get_executions_by_id(execution_ids)
    for execution in executions:
        execution.custom_properties[FAILURE_PROPERTY].string_value = message
    if executions:
        store.put_executions(executions)
    [context] = store.get_contexts_by_id([run_context_id])
    context.custom_properties[FAILURE_PROPERTY].string_value = f"{message}; nothing was published"
    store.put_contexts([context])
