"""Every place this project works around TFX, Beam or CPython, with the versions it was checked on.

Each workaround leans on something upstream does not promise (a module attribute, a log
message's template, import order). `check()` verifies those assumptions against the installed
versions, and tests/test_workarounds.py runs it: after an upgrade, a changed assumption fails
there with a message that names the workaround, instead of silently doing nothing.
"""

import atexit
import contextlib
import importlib
import os
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

# The versions every workaround below was checked on (tests/test_workarounds.py compares the
# locked packages; exit_without_teardown was checked on CPython 3.13).
CHECKED_ON = {"tfx": "1.21.0", "apache-beam": "2.77.0"}


# --- 1. tfx.v1's Google Cloud extensions, loaded on first use ---------------------------------

EXTENSIONS_MODULE = "tfx.v1.extensions"


def defer_tfx_cloud_extensions() -> None:
    """`tfx.v1` imports its Google Cloud extensions eagerly (the Vertex AI client), a second and
    more of every process's start-up, for components this project does not use. A stand-in module
    imports them on first use instead. importlib's LazyLoader would not do: the import system
    reads the module's attributes as soon as `tfx.v1` imports it.

    Call before `tfx.v1` is imported (models/__init__.py does, so every entry point and every
    Trainer or Kubeflow pod gets it).
    """
    if EXTENSIONS_MODULE in sys.modules:
        return

    def load(attribute: str) -> Any:
        if sys.modules.get(EXTENSIONS_MODULE) is stand_in:
            del sys.modules[EXTENSIONS_MODULE]
        real = importlib.import_module(EXTENSIONS_MODULE)
        setattr(importlib.import_module("tfx.v1"), "extensions", real)
        return getattr(real, attribute)

    stand_in = types.ModuleType(EXTENSIONS_MODULE, "Loaded on first use (see upstream/workarounds.py).")
    stand_in.__getattr__ = load  # module-level __getattr__: called for attributes it lacks
    sys.modules[EXTENSIONS_MODULE] = stand_in


# --- 2. no TFX sdist for Beam runners that run on this machine --------------------------------

# Beam's runners that execute in this process or its children, which import this environment's TFX.
DIRECT_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")


def runner_of(beam_args: Sequence[str]) -> str | None:
    """The --runner a list of Beam flags names (the last one wins, as in Beam's parser)."""
    runner = None
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(beam_args):
            runner = beam_args[i + 1]
    return runner


def is_direct(beam_args: Sequence[str]) -> bool:
    """Whether the flags run Beam on this machine (no --runner means Beam's DirectRunner)."""
    runner = runner_of(beam_args)
    return runner is None or runner.rsplit(".", 1)[-1] in DIRECT_RUNNERS


@contextlib.contextmanager
def without_tfx_sdist(beam_args: Sequence[str]) -> Iterator[bool]:
    """While held, Beam executors skip building TFX's sdist when `beam_args` name a direct runner.

    Every Beam-powered TFX executor calls `dependency_utils.make_beam_dependency_flags` when it is
    constructed, which builds an sdist of the installed `tfx` and adds it as --extra_package for
    remote workers. Direct runners stage nothing, so that build is pure cost. TFX's own way out
    (the function returns early when --extra_packages, --setup_file, --requirements_file,
    --worker_harness_container_image or --sdk_container_image is set) works, and the direct
    runner ignores those flags (benchmarks/README.md, "TFX's sdist"), but each would record in
    every run's Beam arguments a dependency or an image that does not exist. The function is
    looked up on its module at each executor's construction, so replacing it there covers every
    component of the run. Yields whether it skips.
    """
    from tfx.utils import dependency_utils

    if not is_direct(beam_args):
        yield False
        return
    original = dependency_utils.make_beam_dependency_flags
    dependency_utils.make_beam_dependency_flags = _unchanged
    try:
        yield True
    finally:
        dependency_utils.make_beam_dependency_flags = original


def _unchanged(beam_pipeline_args: list[str]) -> list[str]:
    return beam_pipeline_args


# --- 3. the orchestrators' component start/end log records -------------------------------------

# The records each orchestrator logs around every component, as (message template of "started",
# of "finished", of "skipped" or None). The console's progress lines are driven by them
# (runs/console.py), matched on the template, not the formatted text.
COMPONENT_RECORDS = {
    "tfx.orchestration.local.local_dag_runner": (
        "Component %s is running.", "Component %s is finished.", "Skipping component %s."),
    "tfx.orchestration.beam.beam_dag_runner": ("node %s is running.", "node %s is finished.", None),
}
STARTED = {started for started, _, _ in COMPONENT_RECORDS.values()}
FINISHED = {finished for _, finished, _ in COMPONENT_RECORDS.values()}
SKIPPED = {skipped for _, _, skipped in COMPONENT_RECORDS.values() if skipped}


# --- 4. no interpreter teardown at exit ----------------------------------------------------------

def exit_without_teardown(status: Any) -> NoReturn:
    """Exits as `sys.exit(status)` would, without the interpreter's object-by-object teardown of
    TensorFlow, Beam and TFX, which costs seconds at the end of every command that loaded them.

    Exit handlers still run (log files, temporary directories) and output is flushed; only
    module teardown is skipped, and nothing this project or TFX writes depends on it.
    """
    if status is None:
        status = 0
    elif not isinstance(status, int):  # sys.exit("message"): printed, status 1
        print(status, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


# --- 5. LOOPBACK workers shared by several TaskManagers ------------------------------------------

WORKER_POOL = "apache_beam.runners.worker.worker_pool_main"


def _loopback(beam_args: Sequence[str]) -> bool:
    return any(a in ("--environment_type=LOOPBACK", "--environment_type=loopback") for a in beam_args)


@contextlib.contextmanager
def loopback_worker_ids_shared(beam_args: Sequence[str]) -> Iterator[bool]:
    """While held, a LOOPBACK worker pool stops a thread worker only when one TaskManager owns its id.

    With LOOPBACK the SDK workers are threads of this process, started and stopped by Beam's worker
    pool (BeamFnExternalWorkerPoolServicer) at each TaskManager's request, by worker id. Every
    TaskManager JVM numbers its workers alike ("1-1", ...), so with two TaskManagers the first to
    finish its tasks stops the other's worker mid-bundle, and the job fails with "SDK harness closed
    connection" (seen with Flink 1.19, Beam 2.77 SDK, job server 2.62). A thread worker also ends by
    itself when its TaskManager closes the control stream (Beam's own comment in StopWorker), so a
    stop for an id that more than one TaskManager started is left to that. Yields whether it applies.
    """
    if not _loopback(beam_args):
        yield False
        return
    import collections

    pool = importlib.import_module(WORKER_POOL).BeamFnExternalWorkerPoolServicer
    start, stop = pool.StartWorker, pool.StopWorker
    started: collections.Counter = collections.Counter()

    def start_worker(self, request, context):
        started[request.worker_id] += 1
        return start(self, request, context)

    def stop_worker(self, request, context):
        if started[request.worker_id] > 1:
            started[request.worker_id] -= 1
            from apache_beam.portability.api import beam_fn_api_pb2

            return beam_fn_api_pb2.StopWorkerResponse()
        started.pop(request.worker_id, None)
        return stop(self, request, context)

    pool.StartWorker, pool.StopWorker = start_worker, stop_worker
    try:
        yield True
    finally:
        pool.StartWorker, pool.StopWorker = start, stop


# --- 6. CsvExampleGen's Beam pipeline, rearranged ------------------------------------------------

# components/example_gen/executor.py builds its pipeline from these pieces of TFX's CSV executor
# (private names), and leaves the writing of the splits to no one but itself on the in-process
# runner, by handing BaseExampleGenExecutor.Do no splits to write.
CSV_EXECUTOR = "tfx.components.example_gen.csv_example_gen.executor"
CSV_EXECUTOR_PIECES = ("_ReadCsvRecordsFromTextFile", "_ParsedCsvToTfExample")


# --- the assumptions, checked ----------------------------------------------------------------------

def check() -> list[str]:
    """One line per workaround whose upstream assumption no longer holds (empty: all hold)."""
    import inspect

    problems = []
    tfx_v1 = inspect.getsource(importlib.import_module("tfx.v1"))
    if "from tfx.v1 import extensions" not in tfx_v1:
        problems.append("defer_tfx_cloud_extensions: tfx.v1 no longer imports `extensions` eagerly; "
                        "the stand-in may be unneeded or wrong")
    from tfx.dsl.components.base import base_beam_executor
    from tfx.utils import dependency_utils

    if not callable(getattr(dependency_utils, "make_beam_dependency_flags", None)):
        problems.append("without_tfx_sdist: tfx.utils.dependency_utils.make_beam_dependency_flags is gone")
    if "dependency_utils.make_beam_dependency_flags(" not in inspect.getsource(base_beam_executor):
        problems.append("without_tfx_sdist: BaseBeamExecutor no longer calls "
                        "dependency_utils.make_beam_dependency_flags through its module")
    for module, templates in COMPONENT_RECORDS.items():
        source = inspect.getsource(importlib.import_module(module))
        for template in filter(None, templates):
            if f"'{template}'" not in source and f'"{template}"' not in source:
                problems.append(f"COMPONENT_RECORDS: {module} no longer logs {template!r}; "
                                "the console's progress lines would stay empty")
    pool = importlib.import_module(WORKER_POOL).BeamFnExternalWorkerPoolServicer
    if "self._worker_threads.pop(\n        stop_worker_request.worker_id" not in inspect.getsource(pool.StopWorker):
        problems.append("loopback_worker_ids_shared: Beam's worker pool no longer stops thread workers by "
                        "worker id alone; the guard may be unneeded or wrong")
    csv_executor = importlib.import_module(CSV_EXECUTOR)
    for piece in CSV_EXECUTOR_PIECES:
        if not callable(getattr(csv_executor, piece, None)):
            problems.append(f"example_gen executor: {CSV_EXECUTOR}.{piece} is gone")
    from tfx.components.example_gen import base_example_gen_executor, write_split

    do = inspect.getsource(base_example_gen_executor.BaseExampleGenExecutor.Do)
    if "for split_name, example_split in example_splits.items():" not in do or do.index(
            "split_names = artifact_utils.encode_split_names") > do.index("self.GenerateExamplesByBeam("):
        problems.append("example_gen executor: BaseExampleGenExecutor.Do no longer names the splits first and "
                        "then writes those GenerateExamplesByBeam returns")
    if not hasattr(write_split, "MaybeSerialize") or not hasattr(write_split, "DEFAULT_TF_RECORD_FILE_NAME"):
        problems.append("example_gen executor: write_split.MaybeSerialize or DEFAULT_TF_RECORD_FILE_NAME is gone")
    if not callable(getattr(atexit, "_run_exitfuncs", None)):
        problems.append("exit_without_teardown: atexit._run_exitfuncs is gone")
    return problems
