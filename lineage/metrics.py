"""Evaluation metrics recorded by TFMA, read from a run's ModelEvaluation artifacts."""

from typing import Any

from lineage.query import RunInfo

EVALUATION_TYPE = "ModelEvaluation"


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The candidate model's metrics on the whole eval split (the unsliced slice)."""
    import tensorflow_model_analysis as tfma  # heavy: only the commands that show metrics pay for it

    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if metrics_for_slice.slice_key.single_slice_keys:
            continue
        values = {}
        for kv in metrics_for_slice.metric_keys_and_values:
            key = kv.key
            # With a baseline, TFMA also reports the baseline's values and the differences.
            if key.is_diff or key.model_name == tfma.BASELINE_KEY:
                continue
            if kv.value.HasField("double_value"):
                name = key.name + (f"/{key.output_name}" if key.output_name else "")
                if key.HasField("sub_key"):
                    name += "@" + str(key.sub_key).replace("\n", " ").strip()
                values[name] = kv.value.double_value.value
        return values
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
