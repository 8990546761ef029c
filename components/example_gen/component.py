"""TFX's CsvExampleGen, same name, inputs and outputs, with the streaming executor (executor.py)."""

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.example_gen.executor import Executor


class CsvExampleGen(tfx.components.CsvExampleGen):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
