"""Beam on this machine: work TFX does for remote Beam workers that direct runners do not need.

Every Beam-powered TFX executor (ExampleGen, StatisticsGen, Transform, Evaluator) builds an sdist
of the installed `tfx` package and adds it as `--extra_package`, so that remote workers can import
TFX. That costs about 1 s per component (4 s of a 45 s run here). Beam's direct runners
(FnApiRunner in_memory or multi_processing) run in this process or its children, which already
import this environment's TFX, and stage nothing. Remote profiles (Flink, Spark, Dataflow) keep
TFX's behaviour unchanged.
"""

import contextlib
from collections.abc import Iterator, Sequence

from tfx.utils import dependency_utils

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

    Yields whether it skips. `make_beam_dependency_flags` is looked up on its module at each
    executor's construction, so replacing it there covers every component of the run.
    """
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
