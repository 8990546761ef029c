"""The DataGate component: ExampleValidator's anomalies and drift, turned into a stop."""

from collections.abc import Sequence
from pathlib import Path
from typing import List

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import code_fingerprint
from components.data_gate import executor
from components.data_gate.options import DEFAULT_MAX_DRIFT, MIN_DRIFT_EXAMPLES

ACCEPTED_KEY = "accepted_statistics"  # the output: the statistics, republished when the data passes


class DataGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "max_drift": ExecutionParameter(type=float),
        "drift_features": ExecutionParameter(type=List[str]),  # empty: all
        "min_drift_examples": ExecutionParameter(type=int),
        # TFDV anomaly kinds (AnomalyInfo.Type names) that are reported but do not stop the run.
        "warn_only": ExecutionParameter(type=List[str]),
        # Float features whose NaN / infinities (FLOAT_TYPE_HAS_NAN / _INF) only warn.
        "allow_non_finite": ExecutionParameter(type=List[str]),
        # This component's own code (components.code_fingerprint): recorded in MLMD, and a change
        # in the code invalidates the cache.
        "code_fingerprint": ExecutionParameter(type=str),
    }
    INPUTS = {
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "baseline_statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    # The statistics, republished only when the data passes: the next run's drift baseline.
    OUTPUTS = {ACCEPTED_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics)}


class DataGate(base_component.BaseComponent):
    """Fails, with a readable summary, when the data has blocking anomalies or drifted.

    Make Transform depend on it (`add_upstream_node`): nothing trains on data it refused.
    """

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        anomalies: types.BaseChannel,
        baseline_statistics: types.BaseChannel | None = None,
        max_drift: float = DEFAULT_MAX_DRIFT,
        drift_features: Sequence[str] = (),
        min_drift_examples: int = MIN_DRIFT_EXAMPLES,
        warn_only: Sequence[str] = (),
        allow_non_finite: Sequence[str] = (),
    ):
        super().__init__(
            spec=DataGateSpec(
                statistics=statistics,
                schema=schema,
                anomalies=anomalies,
                baseline_statistics=baseline_statistics,
                max_drift=max_drift,
                drift_features=_names(drift_features, "drift_features"),
                min_drift_examples=min_drift_examples,
                warn_only=_names(warn_only, "warn_only"),
                allow_non_finite=_names(allow_non_finite, "allow_non_finite"),
                code_fingerprint=code_fingerprint(Path(__file__).parent),
                accepted_statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
            )
        )


def _names(names: Sequence[str], parameter: str) -> list[str]:
    # A string is a sequence of names too, of one letter each: refused rather than split.
    if isinstance(names, str):
        raise TypeError(f"DataGate {parameter}: a list of names, not the string {names!r}")
    return list(names)
