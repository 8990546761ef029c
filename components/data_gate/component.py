"""The DataGate component: ExampleValidator's anomalies and drift, turned into a stop."""

from collections.abc import Sequence
from typing import List

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.v1.dsl.experimental import ResolverStrategy
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.data_gate import executor
from components.data_gate.options import DEFAULT_MAX_DRIFT, MIN_DRIFT_EXAMPLES

ACCEPTED_KEY = "accepted_statistics"
# LatestAccepted's inputs: the statistics the gate accepted so far, and this run's statistics.
ACCEPTED_INPUT_KEY = "statistics"
CURRENT_INPUT_KEY = "current"


class LatestAccepted(ResolverStrategy):
    """The statistics the gate accepted last from other data than this run's, or none.

    Statistics accepted from this run's own statistics (an unchanged re-run: StatisticsGen came
    from the cache) are left out, so the gate's inputs are the first run's and it is cached too,
    instead of comparing the data with itself and storing another copy. On a first run there is
    nothing to resolve; TFX's LatestArtifactStrategy would fail its resolver node then.
    """

    def resolve_artifacts(self, store, input_dict):  # noqa: ANN001  (TFX's signature)
        current = {a.id for a in input_dict.get(CURRENT_INPUT_KEY, [])}
        accepted = input_dict[ACCEPTED_INPUT_KEY]
        source = accepted_from(store, [a.id for a in accepted]) if current else {}
        others = [a for a in accepted if source.get(a.id) not in current]
        return {**input_dict, ACCEPTED_INPUT_KEY: sorted(others, key=lambda a: a.id)[-1:]}


def accepted_from(store: mlmd.MetadataStore, accepted_ids: list[int]) -> dict[int, int]:
    """Accepted statistics id -> id of the statistics the DataGate execution that output it read."""
    producers = {e.artifact_id: e.execution_id for e in store.get_events_by_artifact_ids(accepted_ids)
                 if e.type == metadata_store_pb2.Event.OUTPUT}
    read = {e.execution_id: e.artifact_id for e in store.get_events_by_execution_ids(set(producers.values()))
            if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == "statistics"}
    return {artifact: read[execution] for artifact, execution in producers.items() if execution in read}


class DataGateSpec(types.ComponentSpec):
    PARAMETERS = {
        "max_drift": ExecutionParameter(type=float),
        "drift_features": ExecutionParameter(type=List[str]),  # empty: all
        "min_drift_examples": ExecutionParameter(type=int),
        # TFDV anomaly kinds (AnomalyInfo.Type names) that are reported but do not stop the run.
        "warn_only": ExecutionParameter(type=List[str]),
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
                accepted_statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
            )
        )


def _names(names: Sequence[str], parameter: str) -> list[str]:
    # A string is a sequence of names too, of one letter each: refused rather than split.
    if isinstance(names, str):
        raise TypeError(f"DataGate {parameter}: a list of names, not the string {names!r}")
    return list(names)
