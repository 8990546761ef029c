"""Evaluation metrics recorded by TFMA, read from a run's ModelEvaluation artifacts."""

from typing import Any

from lineage.query import RunInfo
from upstream import formats

EVALUATION_TYPE = "ModelEvaluation"


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The candidate model's metrics on the whole eval split (the unsliced slice)."""
    import tensorflow_model_analysis as tfma  # heavy: only the commands that show metrics pay for it

    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if formats.is_overall(metrics_for_slice.slice_key):
            return formats.metric_values(metrics_for_slice)[formats.CANDIDATE]
    return {}


def run_metrics(run: RunInfo) -> dict[str, Any]:
    """Overall metrics of every evaluation a run produced, as '<node>.<metric>'."""
    out = {}
    for execution in run.executions:
        for artifacts in execution.outputs.values():
            for artifact in artifacts:
                if artifact.type == EVALUATION_TYPE:
                    for name, value in overall_metrics(artifact.uri).items():
                        out[f"{execution.node_id}.{name}"] = value
    return out
