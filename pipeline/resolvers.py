"""The pipeline's resolvers: which earlier artifacts a run compares itself with.

- the data gate's drift baseline: the statistics it accepted last from other data than this run's;
- the Evaluator's baseline: the latest blessed model that is not the candidate;
- with `--train-spans K`, the training window: this run's span and the newest K-1 spans the gate
  accepted before it (SpanWindow).

On span folders (data.spans) the gate's baseline is per span: the accepted statistics of the
nearest span below this run's (a span the gate refused is never one), so each new span is
compared with the last accepted span and a backfill of span N with span N-1's.

Each is built per topology (pipeline.Topology): locally this project's strategies; on Vertex TFX's
stock ones (KFP v2 compiles only those); on open-source Kubeflow none (its backend cannot run
resolver executors).
"""

from typing import Any

from tfx import v1 as tfx
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.v1.dsl.experimental import ResolverStrategy

from components.data_gate.component import ACCEPTED_KEY
from pipeline.gate_records import EXAMPLES_KEY, SPAN_PROPERTY, VERSION_PROPERTY, accepted_examples, accepted_from, statistics_spans

# LatestAccepted's inputs: the statistics the gate accepted so far, and this run's statistics.
ACCEPTED_INPUT_KEY = "statistics"
CURRENT_INPUT_KEY = "current"
# LatestBlessedOtherModel's inputs.
CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"

ACCEPTED_STATISTICS_ID = "accepted_statistics_resolver"
BASELINE_MODEL_ID = "latest_blessed_model_resolver"
SPAN_WINDOW_ID = "span_window_resolver"


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
        others = sorted((a for a in accepted if source.get(a.id) not in current), key=lambda a: a.id)
        span_of = statistics_spans(store, [*current, *source.values()])
        span = max((span_of.get(i, 0) for i in current), default=0)
        if span > 0:  # span folders: the nearest accepted span below (a backfill of span 1: above)
            spanned = [(span_of.get(source.get(a.id), 0), a) for a in others]
            below = [(s, a) for s, a in spanned if 0 < s < span]
            above = [(s, a) for s, a in spanned if s > span]
            others = ([a for _, a in sorted(below, key=lambda p: (p[0], p[1].id))] or
                      [a for _, a in sorted(above, key=lambda p: (-p[0], p[1].id))])
        return {**input_dict, ACCEPTED_INPUT_KEY: others[-1:]}


class SpanWindow(ResolverStrategy):
    """The training window: this run's Examples and those of the newest `num_spans - 1` spans below
    its span that the data gate accepted (the latest version of each), oldest span first.

    TFX's SpanRangeStrategy takes the newest spans CsvExampleGen wrote, a span the gate refused
    included; this one never trains on such a span, and a backfill's window ends at its span. The
    earlier spans are found through the gate's accepted statistics (their lineage back to the
    Examples): a second channel on CsvExampleGen's output would be merged with this run's by
    TFX's compiler. Fewer accepted spans than asked for: the window is what there is.
    """

    def __init__(self, num_spans: int):
        self._num_spans = int(num_spans)

    def resolve_artifacts(self, store, input_dict):  # noqa: ANN001  (TFX's signature)
        from tfx.types import artifact_utils

        current = list(input_dict.get(EXAMPLES_KEY, []))[-1:]
        span = _span(current[0]) if current else 0
        ids = [i for i in accepted_examples(store, [a.id for a in input_dict.get(ACCEPTED_INPUT_KEY, [])])
               if not current or i != current[0].id]
        found = store.get_artifacts_by_id(ids) if ids else []
        types = {t.id: t for t in store.get_artifact_types_by_id(list({a.type_id for a in found}))} if found else {}
        earlier: dict[int, Any] = {}
        for artifact in (artifact_utils.deserialize_artifact(types[a.type_id], a) for a in found):
            s = _span(artifact)
            if 0 < s < span and (s not in earlier or _newer(artifact, earlier[s])):
                earlier[s] = artifact
        keep = sorted(earlier)[max(0, len(earlier) - (self._num_spans - 1)):] if self._num_spans > 1 else []
        return {**input_dict, EXAMPLES_KEY: [earlier[s] for s in keep] + current}


def _span(artifact) -> int:  # noqa: ANN001  (a tfx Artifact)
    return artifact.get_int_custom_property(SPAN_PROPERTY) if artifact.has_custom_property(SPAN_PROPERTY) else 0


def _newer(a, b) -> bool:  # noqa: ANN001
    def key(x):
        version = x.get_int_custom_property(VERSION_PROPERTY) if x.has_custom_property(VERSION_PROPERTY) else 0
        return version, x.id
    return key(a) > key(b)


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


def span_window(current: tfx.dsl.Channel, num_spans: int, gate_id: str) -> tfx.dsl.Resolver:
    """The Examples to train on: this run's (`current`) and those of the newest accepted spans
    before it. Local orchestrators only: KFP v2 compiles no span resolver (pipeline.pipeline)."""
    accepted = tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                               producer_component_id=gate_id, output_key=ACCEPTED_KEY)
    resolver = tfx.dsl.Resolver(strategy_class=SpanWindow, config={"num_spans": num_spans},
                                **{EXAMPLES_KEY: current, ACCEPTED_INPUT_KEY: accepted})
    return resolver.with_id(SPAN_WINDOW_ID)
