"""A run's figures as Prometheus metrics, after every run (failed runs too).

    metrics.export(config, output, run, succeeded, seconds, pushgateway)

Written with prometheus_client: a textfile for node_exporter's textfile collector at
<output dir>/metrics/<pipeline>.prom, and, with a Pushgateway URL, pushed there as the group
job=tfx_pipeline, pipeline=<name>, model=<name> (each push replaces the group: it always holds the
latest run). Every figure comes from the run's MLMD records, read by the code the summary and the
report read them with. The names and labels are an interface (README, "Prometheus metrics"):
rename nothing.
"""

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from components.serving_check import options as serving_options
from lineage.query import Lineage, RunInfo
from pipeline.config import PipelineConfig
from pipeline.locations import OutputDir
from report import build as report_build
from runs.summary import STATE_WORDS

JOB = "tfx_pipeline"
BASE_LABELS = ("pipeline", "model")
TEXTFILE_DIR = "metrics"  # under the output directory
PUSH_TIMEOUT_S = 10


def textfile_path(output: OutputDir, pipeline_name: str) -> Path:
    return output.path / TEXTFILE_DIR / f"{pipeline_name}.prom"


class _Metrics:
    """Gauges, each with the base labels plus its own, registered once on first use."""

    def __init__(self, config: PipelineConfig):
        self.registry = CollectorRegistry()
        self.base = {"pipeline": config.pipeline_name, "model": config.model_name}
        self._gauges: dict[str, Gauge] = {}

    def set(self, name: str, help_text: str, value: float, **labels: str) -> None:
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = self._gauges[name] = Gauge(name, help_text, [*BASE_LABELS, *labels], registry=self.registry)
        gauge.labels(**self.base, **labels).set(value)


def collect(config: PipelineConfig, run: RunInfo | None, succeeded: bool, seconds: float,
            history: Callable[[], list[RunInfo]] | None = None) -> CollectorRegistry:
    """The run's metrics. `run`: None when the run failed before any component was recorded.
    `history`: the pipeline's runs, oldest first, with their artifacts (for runs since blessed)."""
    m = _Metrics(config)
    m.set("tfx_pipeline_run_succeeded", "1 if the run succeeded, 0 if it failed.", int(succeeded))
    m.set("tfx_pipeline_run_duration_seconds", "The run's duration (MLMD's execution timestamps; "
          "the wall clock when no component was recorded).", run.seconds if run and run.executions else seconds)
    m.set("tfx_pipeline_run_end_timestamp_seconds", "When the run ended (Unix time).", time.time())
    if run is None:
        return m.registry
    _, examples = report_build.find_output(run, "Examples", key="examples")
    span = examples.properties.get("span") if examples is not None else None
    span_label = {"span": str(span)} if span is not None else {}
    m.set("tfx_pipeline_run_info", "The run these metrics describe (always 1).", 1, run_id=run.run_id, **span_label)
    for e in run.executions:
        m.set("tfx_pipeline_component_duration_seconds", "Each component's duration in the run (MLMD).",
              e.seconds, component=e.node_id)
        m.set("tfx_pipeline_component_state", "Each component's state (ran, cached, failed, ...): always 1.",
              1, component=e.node_id, state=STATE_WORDS.get(e.state, e.state.lower()))
    _data(m, run, span_label)
    _model(m, run, history)
    return m.registry


def _data(m: _Metrics, run: RunInfo, span_label: dict[str, str]) -> None:
    _, statistics = report_build.find_output(run, "ExampleStatistics", key="statistics")
    if statistics is not None:
        from report.statistics import load_statistics

        for split in load_statistics(statistics.uri):
            m.set("tfx_data_examples", "Rows per split (StatisticsGen).", split.examples, split=split.split, **span_label)
    verdict = report_build.gate_verdict(run)
    if verdict is None:
        return  # not run, or cached without its inputs recorded
    m.set("tfx_data_gate_passed", "1 if the data gate let the data through, 0 if it stopped the run.",
          int(verdict.passed))
    counts: dict[tuple[str, str, str], int] = {}
    for f in verdict.findings:
        key = (f.split, f.kind, "true" if f.blocking else "false")
        counts[key] = counts.get(key, 0) + 1
    for (split, kind, blocking), n in sorted(counts.items()):
        m.set("tfx_data_anomalies", "Anomalies the data gate found, by TFDV kind (blocking: it stops the run).",
              n, split=split, kind=kind, blocking=blocking)
    for d in verdict.drift:
        m.set("tfx_data_drift_score", "Drift of each compared feature from the last accepted data (TFDV).",
              d.score, feature=d.feature, comparator=d.comparator)
        m.set("tfx_data_drift_threshold", "The drift score above which the data gate stops the run.",
              d.threshold, feature=d.feature, comparator=d.comparator)


def _model(m: _Metrics, run: RunInfo, history: Callable[[], list[RunInfo]] | None) -> None:
    evaluation = report_build.collect_evaluation(run)
    if evaluation is not None:
        if evaluation.overall is not None:
            for name, value in sorted(evaluation.overall.candidate.items()):
                m.set("tfx_model_eval_metric", "The candidate model's metrics on the whole eval split (TFMA).",
                      value, metric=name)
        for g in evaluation.gates:
            if g.slice != report_build.OVERALL or g.limit is None:
                continue
            m.set("tfx_model_eval_gate_bound", "Each eval gate's bound (kind: value, or change vs the baseline).",
                  g.limit, metric=g.metric, kind=g.kind, bound=g.side)
            if g.status in ("passed", "failed"):
                m.set("tfx_model_eval_gate_passed", "1 if the candidate passed the gate, 0 if not (TFMA).",
                      int(g.status == "passed"), metric=g.metric, kind=g.kind, bound=g.side)
        if evaluation.blessed is not None:
            m.set("tfx_model_blessed", "1 if the Evaluator blessed the candidate model, 0 if not.", int(evaluation.blessed))
    if history is not None:
        m.set("tfx_model_runs_since_blessed", "Runs of the pipeline since the last one that blessed a model "
              "(0: this one did; failed runs count).", runs_since_blessed(history()))
    _, pushed = report_build.find_output(run, "PushedModel")
    if pushed is not None:
        m.set("tfx_model_pushed", "1 if the Pusher pushed a model this run.", int(pushed.properties.get("pushed") == 1))
        version = str(pushed.properties.get("pushed_version", ""))
        if version.isdigit():
            m.set("tfx_model_pushed_version", "The version (directory name) of the pushed model.", int(version))
    tflite_execution, tflite = report_build.find_output(run, "TFLiteModel")
    if tflite is not None and tflite.properties.get("exported") == 1:
        props = tflite.properties
        m.set("tfx_tflite_model_bytes", "Size of the exported TFLite model.", props["tflite_bytes"])
        m.set("tfx_tflite_agreement", "Share of eval examples on which the TFLite model and the SavedModel "
              "decide alike.", props["agreement"])
        if "min_agreement" in tflite_execution.properties:
            m.set("tfx_tflite_min_agreement", "The agreement below which the TFLite export fails.",
                  float(tflite_execution.properties["min_agreement"]))
        if "tflite_latency_us" in props:
            m.set("tfx_tflite_latency_seconds", "The TFLite model's mean single-example latency at export.",
                  props["tflite_latency_us"] / 1e6)


    _, serving = report_build.find_output(run, "InfraBlessing")
    if serving is not None and not serving.properties.get(serving_options.REASON, "").startswith(serving_options.NOT_CHECKED):
        props = serving.properties
        m.set("tfx_serving_check_passed", "1 if a fresh process without the project's code served the model "
              "as it answers in process (ServingCheck).", int(props.get("blessed") == 1))
        if "load_seconds" in props:
            m.set("tfx_serving_check_load_seconds", "Seconds the serving process took to load the model.",
                  props["load_seconds"])
            # `percentile`, not `quantile`: Prometheus reserves that label for summaries.
            for percentile, key in (("50", "latency_p50_ms"), ("99", "latency_p99_ms")):
                m.set("tfx_serving_check_latency_seconds", "Single-example request latency in the serving check.",
                      props[key] / 1000, percentile=percentile)


def runs_since_blessed(runs: list[RunInfo]) -> int:
    """How many of the latest runs (oldest first) came after the last one whose Evaluator blessed a model."""
    count = 0
    for run in reversed(runs):
        _, blessing = report_build.find_output(run, "ModelBlessing")
        if report_build.is_blessed(blessing):
            break
        count += 1
    return count


def history_of(lineage: Lineage, pipeline_name: str, latest: RunInfo | None) -> Callable[[], list[RunInfo]]:
    """The pipeline's runs up to `latest`, oldest first, read with their artifacts back to the last
    blessed one (the walk stops there: a long history costs nothing)."""
    def runs() -> list[RunInfo]:
        listed = lineage.runs(pipeline_name)
        if latest is not None:  # runs that started after it are not its history
            ids = [r.context_id for r in listed]
            listed = listed[: ids.index(latest.context_id) + 1] if latest.context_id in ids else listed
        out = []
        for run in reversed(listed):
            run = latest if latest is not None and run.context_id == latest.context_id else lineage.with_io(run)
            out.append(run)
            if report_build.is_blessed(report_build.find_output(run, "ModelBlessing")[1]):
                break
        return out[::-1]
    return runs


def export(config: PipelineConfig, output: OutputDir, run: RunInfo | None, succeeded: bool, seconds: float,
           pushgateway: str | None = None, lineage: Lineage | None = None) -> list[str]:
    """Writes the run's metrics to the textfile and pushes them. Never raises (the run's outcome is
    not the metrics' to change): returns the warning lines to tell, one per problem."""
    try:
        history = history_of(lineage, config.pipeline_name, run) if lineage is not None else None
        registry = collect(config, run, succeeded, seconds, history)
        path = textfile_path(output, config.pipeline_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)  # atomic: a temporary file renamed over the last one
    except Exception as error:
        return [f"Warning: the run's Prometheus metrics were not written ({_reason(error)})"]
    if pushgateway:
        try:
            push_to_gateway(pushgateway, job=JOB, registry=registry, timeout=PUSH_TIMEOUT_S,
                            grouping_key={"pipeline": config.pipeline_name, "model": config.model_name})
        except Exception as error:
            return [f"Warning: could not push the run's metrics to the Pushgateway at {pushgateway} "
                    f"({_reason(error)}); they are in {path}"]
    return []


def _reason(error: Exception) -> str:
    """One line: urllib's reason (e.g. [Errno 111] Connection refused), else the error's first line."""
    text = str(getattr(error, "reason", "") or error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
