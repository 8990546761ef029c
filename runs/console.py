"""A quiet console for in-process TFX runs: everything to the log file, one line per component.

LocalDagRunner and BeamDagRunner (direct profiles) run every component in this process (Beam's in_memory runner too; its
multi_processing workers are child processes), so "quiet" has to work below Python's logging:
TensorFlow's C++ logging, Keras's fit() output, Beam and absl all write to file descriptors 1
and 2. `captured_run` points both descriptors at the run's log file and keeps a private
duplicate of the original stdout for the console, so what any code or child process writes
lands in the file, and only this module writes to the terminal.

Progress comes from two sources, each used for what it is reliable at:
- *when* a component starts and ends: the orchestrator's own log records (LocalDagRunner's
  'Component %s is running.', BeamDagRunner's 'node %s is running.': upstream.workarounds'
  COMPONENT_RECORDS), matched on the message template, not the formatted text. They are emitted synchronously, in the runner's thread, right before
  and after each component, so timings are exact and nothing polls.
- *what* happened (ran, or reused from the cache): the node's latest execution in MLMD, read at
  the 'finished' record. The runner is between components then, so this read never races its
  writes (a polling thread on the same SQLite file could, and would lag behind short components).
"""

import datetime
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

from absl import logging as absl_logging

from upstream.workarounds import FINISHED, SKIPPED, STARTED

LOG_NAME_FORMAT = "%Y%m%dT%H%M%S"  # run-<local time>.log

# MLMD execution state -> the word shown on the console.
STATE_WORDS = {"COMPLETE": "done", "CACHED": "cached", "FAILED": "failed", "CANCELED": "canceled"}


@dataclass
class ComponentLine:
    index: int
    node_id: str
    started: float
    state: str = "running"
    seconds: float = 0.0


class Progress(logging.Handler):
    """Turns LocalDagRunner's component records into console lines.

    state_of(node_id) returns the MLMD state of the node's latest execution (e.g. "CACHED"), or
    None when it cannot be read. On a terminal the running component's line ticks in place;
    elsewhere (a pipe, a CI log) each component gets one line, when it ends.
    """

    def __init__(self, console: TextIO, total: int, state_of: Callable[[str], str | None], live: bool):
        super().__init__(level=logging.INFO)
        self.console = console
        self.total = total
        self.width = 0  # of the node id column: expect() sets it from the pipeline's node ids
        self.state_of = state_of
        self.live = live
        self.done: list[ComponentLine] = []
        self.current: ComponentLine | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def expect(self, node_ids: list[str]) -> None:
        """The pipeline's nodes, once it is built: how many lines there will be, and how wide."""
        self.total = len(node_ids)
        self.width = max(map(len, node_ids), default=0)

    # --- logging.Handler --------------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if not record.args or not isinstance(record.msg, str):
            return
        if record.msg not in STARTED and record.msg not in FINISHED and record.msg not in SKIPPED:
            return
        node_id = str(record.args[0])
        try:
            if record.msg in STARTED:
                self.start(node_id)
            elif record.msg in FINISHED:
                self.finish(node_id)
            else:
                self._print(ComponentLine(len(self.done) + 1, node_id, time.monotonic(), "skipped"))
        except Exception:  # the console must never break the run
            self.handleError(record)

    # --- events -------------------------------------------------------------------------------------

    def start(self, node_id: str) -> None:
        with self._lock:
            self.current = ComponentLine(len(self.done) + 1, node_id, time.monotonic())
            if self.live:
                self._write("\r" + self.format_line(self.current) + "\033[K")
        if self.live and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="progress-ticker", daemon=True)
            self._ticker.start()

    def finish(self, node_id: str) -> None:
        line = self.current if self.current and self.current.node_id == node_id else ComponentLine(
            len(self.done) + 1, node_id, time.monotonic())
        line.seconds = time.monotonic() - line.started
        try:
            state = self.state_of(node_id)
        except Exception:
            state = None
        line.state = STATE_WORDS.get(state or "", "done")
        self._print(line)

    def fail(self) -> ComponentLine | None:
        """Marks the running component failed (the runner raised); returns it, if one was running."""
        line = self.current
        if line is not None:
            line.seconds = time.monotonic() - line.started
            line.state = "failed"
            self._print(line)
        return line

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        super().close()

    # --- output -------------------------------------------------------------------------------------

    def format_line(self, line: ComponentLine) -> str:
        width = len(str(self.total))
        seconds = line.seconds if line.state != "running" else time.monotonic() - line.started
        return f"[{line.index:>{width}}/{self.total}] {line.node_id:<{self.width}} {line.state:<7} {seconds:6.1f}s"

    def _print(self, line: ComponentLine) -> None:
        with self._lock:
            self.done.append(line)
            if self.current is line:
                self.current = None
            self._write(("\r" if self.live else "") + self.format_line(line) + ("\033[K" if self.live else "") + "\n")

    def _write(self, text: str) -> None:
        self.console.write(text)
        self.console.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self.current is not None:
                    self._write("\r" + self.format_line(self.current) + "\033[K")


def mlmd_node_state(address, pipeline_name: str) -> Callable[[str], str | None]:
    """state_of(node_id): the MLMD state of the node's latest execution ("COMPLETE", "CACHED", ...)."""

    def state_of(node_id: str) -> str | None:
        # Imported here: the CLI imports this module before TensorFlow, to capture that import's logs.
        from ml_metadata.proto import metadata_store_pb2

        from lineage.store import open_store

        store = open_store(address)  # a lineage.store.StoreAddress
        context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
        executions = store.get_executions_by_context(context.id) if context else []
        if not executions:
            return None
        latest = max(executions, key=lambda e: e.id)
        return metadata_store_pb2.Execution.State.Name(latest.last_known_state)

    return state_of


def log_file_path(log_dir: Path) -> Path:
    """A new log file's path: <log_dir>/run-<local time>.log (the output directory is user-only)."""
    log_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_dir.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime(LOG_NAME_FORMAT)
    path = log_dir / f"run-{stamp}.log"
    n = 1
    while path.exists():  # two runs in the same second keep their own files
        n += 1
        path = log_dir / f"run-{stamp}-{n}.log"
    return path


@dataclass
class CapturedRun:
    log_file: Path
    console: TextIO
    progress: Progress


@contextmanager
def descriptors_to(path: Path) -> Iterator[TextIO]:
    """Points fds 1 and 2 at `path` (appending); yields a stream on the original stdout.

    The CLI also wraps its import of TensorFlow in this, so that the import's own C++ log lines
    land at the top of the run's log file instead of on the console.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    console = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield console
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (target, *saved):
            os.close(fd)
        console.close()


class Redact(logging.Filter):
    """Replaces secrets in log records before any handler writes them.

    TFX's LocalDagRunner logs the whole deployment config ("Using deployment config",
    "Using connection config"), a database store's password included.
    """

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(secret in text for secret in self.secrets):
                for secret in self.secrets:
                    text = text.replace(secret, "********")
                record.msg, record.args = text, None
        return True


@contextmanager
def captured_run(log_dir: Path, total: int, state_of: Callable[[str], str | None],
                 verbose: bool = False, log_file: Path | None = None,
                 secrets: tuple[str, ...] = ()) -> Iterator[CapturedRun]:
    """The run's log file and console: quiet (everything to the file) unless `verbose`.

    Every log record goes to the file in both modes. Quiet, the root logger's other handlers
    (absl's, which writes to stderr) are set aside for the run, so records are not written twice
    into the file; verbose, they stay and the console shows everything, progress lines included.
    `secrets` never reach a handler (Redact).
    """
    log_file = log_file or log_file_path(log_dir)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level, previous_handlers = root.level, list(root.handlers)
    previous_verbosity = absl_logging.get_verbosity()
    with (descriptors_to(log_file) if not verbose else _no_capture()) as console:
        live = not verbose and console.isatty()
        progress = Progress(console, total, state_of, live)
        if not verbose:
            root.handlers = []
        root.addHandler(handler)
        root.addHandler(progress)
        redact = Redact(secrets)
        for each in root.handlers:
            each.addFilter(redact)
        root.setLevel(logging.INFO)
        absl_logging.set_verbosity(absl_logging.INFO)
        try:
            yield CapturedRun(log_file, console, progress)
        finally:
            for each in root.handlers:
                each.removeFilter(redact)
            progress.close()
            root.handlers = previous_handlers
            root.setLevel(previous_level)
            absl_logging.set_verbosity(previous_verbosity)
            handler.close()


@contextmanager
def _no_capture() -> Iterator[TextIO]:
    yield sys.stdout


@contextmanager
def heavy_imports(log_dir: Path, verbose: bool) -> Iterator[Path | None]:
    """Where a run starts, around its import of TensorFlow, TFX and Beam.

    From here on the files the run writes are the user's only (the store, models, logs). Quiet,
    the imports' own log lines go to the top of a new run log file (yielded, for the run to go on
    writing); verbose, they stay on the console.
    """
    os.umask(0o077)
    if verbose:
        yield None
        return
    log_file = log_file_path(log_dir)
    with descriptors_to(log_file):
        yield log_file
