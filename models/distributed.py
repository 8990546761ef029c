"""Training in worker processes: several logical replicas, or several MultiWorkerMirroredStrategy workers.

Why processes: logical CPU devices can only be configured before TensorFlow initialises its
devices, and the Trainer's executor runs inside a process whose TensorFlow is long initialised
(LocalDagRunner runs every component in-process). A fresh `python -m models.distributed SPEC`
per worker is the one place where that is always possible, so both modes use it:

- mirrored, replicas=N: one worker process, its CPU split into N logical devices.
- multi_worker, workers=N: N processes on 127.0.0.1 (free ports), each with its TF_CONFIG;
  worker 0 is the chief, and only its export becomes the Model artifact.

`train` (called by the Trainer's run_fn) starts and watches them: the first worker to exit with a
non-zero status has the others killed at once (a survivor would wait forever in its next
all-reduce), and the training fails naming that worker and its exit status. Each epoch ends
with a BackupAndRestore backup in a directory named after what is trained, so the Trainer rerun
on the same inputs resumes from the last completed epoch instead of step 0.
"""

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.hyperparameters import Hyperparameters

FACTS_FILE = "distribution.json"  # what the chief measured, beside TensorBoard's logs
POLL_SECONDS = 0.2
# After one worker died, how long the others get to exit on SIGTERM before SIGKILL.
KILL_GRACE_SECONDS = 5.0
# How long the chief waits for the other workers to finish after its own export.
RELEASE_TIMEOUT_SECONDS = 600.0
# How long a worker may run on after another one finished cleanly (a mismatched collective hangs).
STRAGGLER_SECONDS = 300.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class WorkerFailed(RuntimeError):
    """A training worker exited with a non-zero status; the message names it and its log."""


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """Everything one worker process needs, as JSON."""

    index: int
    train_files: list[str]
    eval_files: list[str]
    transform_output: str
    hyperparameters: dict[str, Any]
    train_steps: int
    eval_steps: int
    export_dir: str
    log_dir: str | None
    backup_dir: str | None
    facts_file: str | None
    release_file: str | None  # the chief exits once this exists: every other worker is done
    parent_pid: int
    base_model_dir: str | None = None  # warm start: the SavedModel every worker starts from


def backup_dir_for(root: str, train_files: Sequence[str], transform_output: str, hp: Hyperparameters,
                   train_steps: int, base_model_dir: str | None = None) -> str:
    """The BackupAndRestore directory of this training: the same inputs give the same directory."""
    key = json.dumps([sorted(train_files), transform_output, hp.to_dict(), train_steps]
                     + ([base_model_dir] if base_model_dir else []), sort_keys=True)
    return os.path.join(root, "backup", hashlib.sha256(key.encode()).hexdigest()[:16])


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held together so they differ, released for the workers)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def tf_config(ports: Sequence[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def cluster_position(tf_config_json: str) -> tuple[int, int]:
    """(workers, this worker's index) from a TF_CONFIG; a "chief" task (Vertex AI's first pool) is 0."""
    config = json.loads(tf_config_json)
    cluster, task = config.get("cluster", {}), config.get("task", {})
    chiefs = len(cluster.get("chief", []))
    workers = chiefs + len(cluster.get("worker", []))
    index = 0 if task.get("type") == "chief" else chiefs + int(task.get("index", 0))
    return workers, index


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _last_lines(path: Path, count: int = 3, separator: str = " | ") -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return separator.join(lines[-count:])


def train(train_files: Sequence[str], eval_files: Sequence[str], transform_output: str, hp: Hyperparameters,
          train_steps: int, eval_steps: int, serving_model_dir: str, log_dir: str, backup_dir: str | None,
          started: Any = None, base_model_dir: str | None = None) -> dict[str, Any]:
    """Trains and exports in hp.workers processes (one for mirrored); returns the chief's facts.

    `started(processes)`, if given, is called with the worker Popen objects once all started.
    """
    workers = hp.workers if hp.distribution_strategy == "multi_worker" else 1
    ports = free_ports(workers) if hp.distribution_strategy == "multi_worker" else []
    os.makedirs(log_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="taxi-workers-")
    processes: list[subprocess.Popen] = []
    logs = [Path(log_dir) / f"worker-{i}.log" for i in range(workers)]
    release = Path(scratch) / "release"
    try:
        for index in range(workers):
            chief = index == 0
            spec = WorkerSpec(
                index=index, train_files=list(train_files), eval_files=list(eval_files),
                transform_output=transform_output, hyperparameters=hp.to_dict(), train_steps=train_steps,
                eval_steps=eval_steps,
                # Every worker saves (saving runs collectives); only the chief's export is kept.
                export_dir=serving_model_dir if chief else os.path.join(scratch, f"export-{index}"),
                log_dir=log_dir if chief else None, backup_dir=backup_dir,
                facts_file=os.path.join(log_dir, FACTS_FILE) if chief else None,
                release_file=str(release) if chief else None, parent_pid=os.getpid(),
                base_model_dir=base_model_dir,
            )
            spec_path = Path(scratch) / f"worker-{index}.json"
            spec_path.write_text(json.dumps(dataclasses.asdict(spec)))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
            env.pop("TF_CONFIG", None)
            if ports:
                env["TF_CONFIG"] = tf_config(ports, index)
            with open(logs[index], "wb") as log:
                processes.append(subprocess.Popen([sys.executable, "-m", "models.distributed", str(spec_path)],
                                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=scratch))
        if started is not None:
            started(processes)
        _watch(processes, logs, release)
        return json.loads(Path(log_dir, FACTS_FILE).read_text())
    finally:
        _stop(processes)
        shutil.rmtree(scratch, ignore_errors=True)


def _watch(processes: list[subprocess.Popen], logs: list[Path], release: Path) -> None:
    """Waits for every worker; the first non-zero exit fails the training at once.

    The chief (task 0) hosts the cluster's coordination service: if it exited first, a worker
    still finishing would fail ("The tasks have crashed"), so it waits for `release`, written
    once every other worker exited cleanly.
    """
    running = set(range(len(processes)))
    first_done = None  # when the first worker exited cleanly: the others must follow, not hang
    while running:
        for index in sorted(running):
            status = processes[index].poll()
            if status is None:
                continue
            running.discard(index)
            if status == 0 and first_done is None:
                first_done = time.monotonic()
            if status != 0:
                # The Trainer deletes its outputs (these logs among them) when it fails: keep their ends.
                for i, log in enumerate(logs):
                    logging.error("training worker %d, end of %s:\n%s", i, log, _last_lines(log, 40, "\n"))
                role = "chief" if index == 0 else "worker"
                tail = _last_lines(logs[index])
                raise WorkerFailed(
                    f"training worker {index} ({role}, pid {processes[index].pid}) {describe_status(status)}; "
                    f"the other workers were stopped. Its log: {logs[index]}" + (f" (last lines: {tail})" if tail else ""))
        if first_done is not None and running and time.monotonic() - first_done > STRAGGLER_SECONDS:
            late = min(running)
            raise WorkerFailed(f"training worker {late} (pid {processes[late].pid}) still runs {STRAGGLER_SECONDS:.0f}s "
                               f"after another finished: stopped. Its log: {logs[late]}")
        if running == {0} and not release.exists():
            release.touch()
        time.sleep(POLL_SECONDS)


def _stop(processes: list[subprocess.Popen]) -> None:
    alive = [p for p in processes if p.poll() is None]
    for p in alive:
        p.terminate()
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    for p in alive:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _die_with_parent(parent_pid: int) -> None:
    """A worker never outlives the Trainer that started it (Linux; elsewhere best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        sys.exit("the Trainer that started this worker is gone")


def _timing_callback(keras: Any) -> Any:
    """A Keras callback timing the training steps, the first one (tracing, warm-up) apart."""

    class Timing(keras.callbacks.Callback):
        steps, begin, first_step_end, end = 0, 0.0, None, 0.0

        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.first_step_end is None:
                self.first_step_end = time.perf_counter()

        def on_train_end(self, logs=None):
            self.end = time.perf_counter()

    return Timing()


def worker_main(spec: WorkerSpec) -> None:
    """One worker: configure devices, train under the strategy, export, write the facts (chief)."""
    start = time.perf_counter()
    _die_with_parent(spec.parent_pid)
    import models  # noqa: F401  (tf_keras, before TensorFlow)
    import tensorflow_transform as tft
    import tf_keras as keras

    from models import model

    hp = Hyperparameters.from_dict(spec.hyperparameters)
    if hp.replicas > 1:
        model.split_cpu(hp.replicas)  # before anything initialises TensorFlow's devices
    tf_transform_output = tft.TFTransformOutput(spec.transform_output)
    imported = time.perf_counter()
    shard = (hp.workers, spec.index) if hp.distribution_strategy == "multi_worker" else None
    timing = _timing_callback(keras)
    trained = model.train(spec.train_files, spec.eval_files, tf_transform_output, hp, spec.train_steps,
                          spec.eval_steps, log_dir=spec.log_dir, backup_dir=spec.backup_dir, shard=shard,
                          callbacks=[timing], base_model_dir=spec.base_model_dir)
    trained_at = time.perf_counter()
    model.export_serving_model(trained, tf_transform_output, spec.export_dir, hp)
    exported = time.perf_counter()
    if spec.facts_file:
        steps = timing.steps
        steady = timing.end - timing.first_step_end if timing.first_step_end and steps > 1 else None
        facts = {
            "strategy": hp.distribution_strategy,
            "workers": hp.workers if hp.distribution_strategy == "multi_worker" else 1,
            "replicas_in_sync": trained.distribute_strategy.num_replicas_in_sync,
            "global_batch_size": hp.train_batch_size,
            "steps_run": steps,  # fewer than train_steps after resuming from a backup
            "startup_s": round(imported - start, 3),
            "first_step_s": round(timing.first_step_end - timing.begin, 3) if timing.first_step_end else None,
            "step_s": round(steady / (steps - 1), 5) if steady else None,
            "fit_s": round(trained_at - imported, 3),
            "export_s": round(exported - trained_at, 3),
            "train_examples_per_s": round(hp.train_batch_size * (steps - 1) / steady, 1) if steady else None,
        }
        Path(spec.facts_file).write_text(json.dumps(facts, indent=1))
    if spec.release_file:
        deadline = time.monotonic() + RELEASE_TIMEOUT_SECONDS
        while not os.path.exists(spec.release_file) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    worker_main(WorkerSpec(**json.loads(Path(sys.argv[1]).read_text())))
