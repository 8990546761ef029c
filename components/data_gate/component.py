"""The DataGate component: ExampleValidator's anomalies and drift, turned into a stop."""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.v1.dsl.experimental import ResolverStrategy
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data_gate import executor
from components.data_gate.options import DEFAULT_MAX_DRIFT, MIN_DRIFT_EXAMPLES

ACCEPTED_KEY = "accepted_statistics"


class LatestAccepted(ResolverStrategy):
    """The most recent accepted statistics, or none on a first run (LatestArtifactStrategy
    fails its resolver node when there is nothing to resolve)."""

    def resolve_artifacts(self, store, input_dict):  # noqa: ANN001  (TFX's signature)
        return {key: sorted(artifacts, key=lambda a: a.id)[-1:] for key, artifacts in input_dict.items()}


class DataGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "max_drift": ExecutionParameter(type=float),
        "drift_features": ExecutionParameter(type=str),  # comma-separated; empty: all
        "min_drift_examples": ExecutionParameter(type=int),
        # TFDV anomaly kinds (AnomalyInfo.Type names) that are reported but do not stop the run.
        "warn_only": ExecutionParameter(type=str),  # comma-separated
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
        drift_features: str = "",
        min_drift_examples: int = MIN_DRIFT_EXAMPLES,
        warn_only: str = "",
    ):
        super().__init__(
            spec=DataGateSpec(
                statistics=statistics,
                schema=schema,
                anomalies=anomalies,
                baseline_statistics=baseline_statistics,
                max_drift=max_drift,
                drift_features=drift_features,
                min_drift_examples=min_drift_examples,
                warn_only=warn_only,
                accepted_statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
            )
        )
