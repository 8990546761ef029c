"""What TFMA computed for a run, read back from the Evaluator's outputs (never recomputed).

- metrics per slice, for the candidate, the baseline and their difference (TFMA stores all three
  when the Evaluator had a baseline);
- the gates: thresholds from the eval_config the Evaluator recorded in MLMD, pass/fail from
  TFMA's validation result (the same result that decided the blessing);
- curves: the calibration histogram TFMA stores for CalibrationPlot, and a ConfusionMatrixPlot
  when the eval_config asks for one.
"""

import dataclasses
import json
from typing import Any

from google.protobuf import json_format

from upstream import formats
from upstream.formats import BASELINE, CANDIDATE, DIFF

OVERALL = "Overall"


def _tfma():
    import tensorflow_model_analysis as tfma  # heavy: imported when an evaluation is read

    return tfma


def slice_name(slice_key) -> str:
    """'Overall', or 'trip_start_hour=7' (several features joined by ', ')."""
    parts = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        value = getattr(single, kind) if kind else ""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(f"{single.column}={value}")
    return ", ".join(parts) or OVERALL


@dataclasses.dataclass
class SliceMetrics:
    slice: str
    candidate: dict[str, float]
    baseline: dict[str, float]
    diff: dict[str, float]  # candidate - baseline, as TFMA computed it

    @property
    def sort_key(self) -> tuple:
        if self.slice == OVERALL:
            return (0, 0, "")
        value = self.slice.rpartition("=")[2]
        try:
            return (1, float(value), self.slice)
        except ValueError:
            return (2, 0, self.slice)


def slice_metrics(evaluation_uri: str) -> list[SliceMetrics]:
    """Every slice's metrics, Overall first, then slices in their values' order."""
    out = []
    for record in _tfma().load_metrics(evaluation_uri):
        values = formats.metric_values(record)
        out.append(SliceMetrics(slice_name(record.slice_key), values[CANDIDATE], values[BASELINE], values[DIFF]))
    return sorted(out, key=lambda s: s.sort_key)


# --- gates --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Gate:
    metric: str
    kind: str  # "value" or "change"
    bound: str  # ">= 0.85", "<= 1", "change >= -0.01"
    value: float | None  # the candidate's value, or its change vs the baseline
    status: str  # "passed", "failed", "not checked (no baseline)"
    slice: str = OVERALL
    side: str = ""  # "lower" or "upper": which bound `limit` is
    limit: float | None = None  # the bound's number (relative bounds: the ratio)

    def describe(self) -> str:
        shown = "n/a" if self.value is None else (f"{self.value:+.4f}" if self.kind == "change" else f"{self.value:.4f}")
        what = f"{self.metric} change vs baseline" if self.kind == "change" else self.metric
        where = "" if self.slice == OVERALL else f" on {self.slice}"
        bound = self.bound.replace("change ", "")
        return f"{what}{where} {shown} (needs {bound}): {self.status}"


def _bounds(threshold, kind: str) -> list[tuple[str, str, float]]:
    """A MetricThreshold's bounds of one kind: (text, "lower" or "upper", the number); text as
    ">= 0.85", "change >= -0.01"."""
    out = []
    if kind == "value" and threshold.HasField("value_threshold"):
        spec = threshold.value_threshold
        if spec.HasField("lower_bound"):
            out.append((f">= {spec.lower_bound.value:g}", "lower", spec.lower_bound.value))
        if spec.HasField("upper_bound"):
            out.append((f"<= {spec.upper_bound.value:g}", "upper", spec.upper_bound.value))
    if kind == "change" and threshold.HasField("change_threshold"):
        spec = threshold.change_threshold
        from tensorflow_model_analysis.proto import config_pb2

        higher = spec.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
        sign, side = (">=", "lower") if higher else ("<=", "upper")
        if spec.HasField("absolute"):
            out.append((f"change {sign} {spec.absolute.value:g}", side, spec.absolute.value))
        if spec.HasField("relative"):
            out.append((f"change {sign} {spec.relative.value:g} (relative)", side, spec.relative.value))
    return out


def parse_eval_config(recorded: Any):
    """The EvalConfig proto from the Evaluator's recorded exec property (JSON text or its dict)."""
    from tensorflow_model_analysis.proto import config_pb2

    if isinstance(recorded, str):
        recorded = json.loads(recorded)
    return json_format.ParseDict(recorded or {}, config_pb2.EvalConfig(), ignore_unknown_fields=True)


def gates(eval_config: Any, metrics: list[SliceMetrics], validation, has_baseline: bool) -> list[Gate]:
    """Each threshold the eval_config sets, with the candidate's value and TFMA's verdict.

    eval_config: the Evaluator's recorded exec property (JSON text or its dict).
    validation: TFMA's ValidationResult proto (None when it could not be read).
    Values are shown for gates on the whole eval split; a gate on feature slices is listed with
    TFMA's verdict over all of its slices.
    """
    config = parse_eval_config(eval_config)
    failed: set[tuple[str, str, bool]] = set()  # (metric, kind, on the overall slice)
    if validation is not None:
        for per_slice in validation.metric_validations_per_slice:
            for failure in per_slice.failures:
                kind = "change" if failure.metric_threshold.HasField("change_threshold") else "value"
                failed.add((failure.metric_key.name, kind, slice_name(per_slice.slice_key) == OVERALL))
    overall = next((m for m in metrics if m.slice == OVERALL), None)
    out = []
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            name = formats.metric_name_of_class(metric.class_name)
            thresholds = [([], metric.threshold)] if metric.HasField("threshold") else []
            thresholds += [(list(t.slicing_specs), t.threshold) for t in metric.per_slice_thresholds]
            for slicing_specs, threshold in thresholds:
                keys = [k for s in slicing_specs for k in [*s.feature_keys, *s.feature_values]]
                is_overall = not keys
                where = OVERALL if is_overall else "slices by " + ", ".join(keys)
                for kind in ("value", "change"):
                    for bound, side, limit in _bounds(threshold, kind):
                        value = None
                        if overall is not None and is_overall:
                            value = (overall.candidate if kind == "value" else overall.diff).get(name)
                        if kind == "change" and not has_baseline:
                            status = "not checked (no baseline yet)"
                        elif validation is None:
                            status = "unknown"
                        elif (name, kind, is_overall) in failed:
                            status = "failed"
                        else:
                            status = "passed"
                        out.append(Gate(name, kind, bound, value, status, where, side, limit))
    return out


def validation_result(evaluation_uri: str):
    """TFMA's ValidationResult for the evaluation, or None if it wrote none."""
    try:
        return _tfma().load_validation_result(evaluation_uri)
    except Exception:  # an evaluation without thresholds writes no validation file
        return None


def failure_lines(validation) -> list[str]:
    """TFMA's own failure records, for failures no configured gate accounts for."""
    lines = []
    if validation is None:
        return lines
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            lines.append(f"{slice_name(per_slice.slice_key)}: {failure.metric_key.name} = "
                         f"{failure.metric_value.double_value.value:.4f}: {failure.message}".strip())
    for missing in validation.missing_slices:
        lines.append(f"slice missing from the evaluation: {json_format.MessageToJson(missing, indent=None)}")
    return lines


# --- curves ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Bucket:
    lower: float
    upper: float
    examples: float
    label_sum: float
    prediction_sum: float


@dataclasses.dataclass
class Confusion:
    threshold: float
    tp: float
    fp: float
    tn: float
    fn: float

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.tn + self.fn
        return (self.tp + self.tn) / total if total else float("nan")


@dataclasses.dataclass
class Curves:
    """One model's curves on one slice. `source` says where the ROC points came from."""

    buckets: list[Bucket]
    roc: list[tuple[float, float]]  # (false positive rate, true positive rate), by falling threshold
    confusion: Confusion | None
    source: str


def _plots(evaluation_uri: str, slice_wanted: str = OVERALL) -> dict[str, Any]:
    """{model name: PlotData} for one slice."""
    found = {}
    for record in _tfma().load_plots(evaluation_uri):
        if slice_name(record.slice_key) != slice_wanted:
            continue
        for kv in record.plot_keys_and_values:
            model = formats.model_of(kv.key)
            found.setdefault(model, []).append(kv.value)
    return found


def curves(evaluation_uri: str, slice_wanted: str = OVERALL, threshold: float = 0.5) -> dict[str, Curves]:
    """Curves per model ('candidate', and 'baseline' when there was one) on one slice."""
    out = {}
    for model, values in _plots(evaluation_uri, slice_wanted).items():
        buckets: list[Bucket] = []
        matrices = []
        for value in values:
            if value.HasField("calibration_histogram_buckets"):
                for b in value.calibration_histogram_buckets.buckets:
                    buckets.append(Bucket(b.lower_threshold_inclusive, b.upper_threshold_exclusive,
                                          b.num_weighted_examples.value, b.total_weighted_label.value,
                                          b.total_weighted_refined_prediction.value))
            if value.HasField("confusion_matrix_at_thresholds"):
                matrices = list(value.confusion_matrix_at_thresholds.matrices)
        buckets.sort(key=lambda b: b.lower)
        if matrices:  # TFMA's ConfusionMatrixPlot: use its points as they are
            points = sorted(matrices, key=lambda m: -m.threshold)
            roc = [(_rate(m.false_positives, m.false_positives + m.true_negatives),
                    _rate(m.true_positives, m.true_positives + m.false_negatives)) for m in points]
            nearest = min(matrices, key=lambda m: abs(m.threshold - threshold))
            confusion = Confusion(nearest.threshold, nearest.true_positives, nearest.false_positives,
                                  nearest.true_negatives, nearest.false_negatives)
            source = "TFMA ConfusionMatrixPlot"
        elif buckets:
            roc, confusion = _from_histogram(buckets, threshold)
            source = f"TFMA calibration histogram ({len(buckets)} prediction buckets)"
        else:
            continue
        out[model] = Curves(buckets, roc, confusion, source)
    return out


def _rate(num: float, den: float) -> float:
    return num / den if den else 0.0


def _from_histogram(buckets: list[Bucket], threshold: float) -> tuple[list[tuple[float, float]], Confusion]:
    """ROC points and the confusion matrix at `threshold`, read off TFMA's calibration histogram.

    The histogram holds, per prediction bucket, the example count and the sum of labels, which
    is all a binary ROC needs: TFMA's own confusion-matrix metrics are computed from such a
    histogram. Thresholds are the bucket boundaries.
    """
    positives = sum(b.label_sum for b in buckets)
    negatives = sum(b.examples - b.label_sum for b in buckets)
    roc = [(0.0, 0.0)]
    tp = fp = 0.0
    confusion = None
    for b in sorted(buckets, key=lambda b: -b.lower):
        if confusion is None and b.lower < threshold:
            # Everything above this bucket is predicted positive.
            confusion = Confusion(threshold, tp, fp, negatives - fp, positives - tp)
        tp += b.label_sum
        fp += b.examples - b.label_sum
        if b.examples:
            roc.append((_rate(fp, negatives), _rate(tp, positives)))
    if confusion is None:
        confusion = Confusion(threshold, tp, fp, negatives - fp, positives - tp)
    if roc[-1] != (1.0, 1.0):
        roc.append((1.0, 1.0))
    return roc, confusion


def auc_of(roc: list[tuple[float, float]]) -> float:
    """Area under the ROC points (trapezoids): a check on the curve drawn, not a reported metric."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(roc, roc[1:]):
        area += (x1 - x0) * (y0 + y1) / 2
    return area


def reliability(buckets: list[Bucket], bins: int = 10) -> list[tuple[float, float, float]]:
    """TFMA's calibration buckets merged into `bins` equal-width bins: (mean prediction, mean label, examples)."""
    merged: dict[int, list[float]] = {}
    for b in buckets:
        if not b.examples:
            continue
        i = min(max(int(max(b.lower, 0.0) * bins), 0), bins - 1)  # (-inf, 0) -> first, [1, inf) -> last
        total = merged.setdefault(i, [0.0, 0.0, 0.0])
        total[0] += b.prediction_sum
        total[1] += b.label_sum
        total[2] += b.examples
    return [(p / n, y / n, n) for _, (p, y, n) in sorted(merged.items())]
