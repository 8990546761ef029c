"""The pipeline's resolvers: which earlier artifacts a run compares itself with.

- the data gate's drift baseline: the statistics it accepted last from other data than this run's;
- the Evaluator's baseline: the latest blessed model that is not the candidate.

Each is built per topology (pipeline.Topology): locally this project's strategies; on Vertex TFX's
stock ones (KFP v2 compiles only those); on open-source Kubeflow none (its backend cannot run
resolver executors).
"""

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.v1.dsl.experimental import ResolverStrategy

from components.data_gate.component import ACCEPTED_KEY

# LatestAccepted's inputs: the statistics the gate accepted so far, and this run's statistics.
ACCEPTED_INPUT_KEY = "statistics"
CURRENT_INPUT_KEY = "current"
# LatestBlessedOtherModel's inputs.
CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"

ACCEPTED_STATISTICS_ID = "accepted_statistics_resolver"
BASELINE_MODEL_ID = "latest_blessed_model_resolver"


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


class LatestBlessedOtherModel(ResolverStrategy):
    """TFX's LatestBlessedModelStrategy, leaving out the candidate (the Trainer's model of this run).

    When nothing changed upstream the Trainer comes from the cache, and its model is already the
    latest blessed one: TFX's strategy then makes it its own baseline, so the Evaluator compares the
    model with itself and the Pusher pushes it again as a new version. Leaving it out, an unchanged
    re-run resolves the baseline the first run resolved, and the Evaluator, the Pusher and the
    TFLite export all come from the cache.
    """

    def resolve_artifacts(self, store, input_dict):  # noqa: ANN001  (TFX's signature)
        candidates = input_dict.get(CANDIDATE_KEY, [])
        excluded = {a.id for a in candidates}
        others = [m for m in input_dict[MODEL_KEY] if m.id not in excluded]
        latest = LatestBlessedModelStrategy().resolve_artifacts(
            store, {MODEL_KEY: others, BLESSING_KEY: input_dict[BLESSING_KEY]})
        return {CANDIDATE_KEY: candidates, **latest}


def accepted_statistics(stock: bool, current: tfx.dsl.Channel, gate_id: str) -> tfx.dsl.Resolver:
    """The statistics the data gate (node `gate_id`) accepted last; `current`: this run's."""
    accepted_so_far = {
        ACCEPTED_INPUT_KEY: tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ExampleStatistics,
            producer_component_id=gate_id,
            output_key=ACCEPTED_KEY,
        )
    }
    if stock:
        resolver = tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestArtifactStrategy, **accepted_so_far)
    else:  # also resolves "none yet" on a first run, and never this run's own statistics
        resolver = tfx.dsl.Resolver(strategy_class=LatestAccepted, **{CURRENT_INPUT_KEY: current},
                                    **accepted_so_far)
    return resolver.with_id(ACCEPTED_STATISTICS_ID)


def baseline_model(stock: bool, candidate: tfx.dsl.Channel | None) -> tfx.dsl.Resolver:
    """The latest blessed model; `candidate`: the Trainer's model of this run, never its own baseline.

    candidate=None (warm start): the resolver runs before the Trainer, whose base_model it feeds
    (taking the Trainer's output as input would be a cycle); nothing of this run is blessed yet,
    so TFX's strategy already leaves this run's model out.
    """
    blessed_models = {
        MODEL_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        BLESSING_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    }
    if stock or candidate is None:
        resolver = tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy, **blessed_models)
    else:  # never the candidate itself: an unchanged re-run is then served from the cache
        resolver = tfx.dsl.Resolver(strategy_class=LatestBlessedOtherModel, **{CANDIDATE_KEY: candidate},
                                    **blessed_models)
    return resolver.with_id(BASELINE_MODEL_ID)
