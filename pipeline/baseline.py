"""The model a candidate is judged against: the latest blessed model that is not the candidate."""

from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.v1.dsl.experimental import ResolverStrategy

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"


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
