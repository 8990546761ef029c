"""What a run says at its end: the console summary, and the run report written beside it."""

import datetime
from pathlib import Path

from lineage.query import RunInfo
from pipeline.config import PipelineConfig
from pipeline.locations import Locations, OutputDir
from pipeline.metadata import MetadataStore
from report import build as report_build
from runs.console import LOG_NAME_FORMAT
from upstream import formats

STATE_WORDS = {"COMPLETE": "ran", "CACHED": "cached"}


def format_summary(config: PipelineConfig, output: OutputDir, locations: Locations, run: RunInfo,
                   log_file: Path, report_paths: tuple[Path, Path] | str | None = None) -> str:
    """The end-of-run summary: the verdict and why, metrics vs the baseline, where everything is."""
    counts: dict[str, int] = {}
    for state in run.states().values():
        word = STATE_WORDS.get(state, state.lower())
        counts[word] = counts.get(word, 0) + 1
    states = ", ".join(f"{n} {word}" for word, n in sorted(counts.items(), key=lambda kv: kv[0] != "ran"))
    lines = [f"Run {run.run_id}: {run.state.lower()} in {run.seconds:.0f}s ({states})"]
    spans = report_build.spans_line(run)
    if spans:
        lines.append(f"Data:          {spans}")
    evaluation = report_build.collect_evaluation(run)
    if evaluation is not None and evaluation.overall is not None:
        lines.append("Eval metrics: " + report_build.metric_line(evaluation.overall.candidate))
        baseline = report_build.baseline_line(evaluation)
        lines.append(f"Baseline:      {baseline or 'none (no blessed model before this one)'}")
    if evaluation is not None:
        head, reasons = report_build.verdict(evaluation)
        lines.append(f"Model blessed: {head}")
        lines += [f"                 {reason}" for reason in reasons]
    training = report_build.training_line(run)
    if training:
        lines.append(f"Trained by:    {training}")
    trained = run.output("Trainer", "model")
    if trained is not None and trained.properties.get("warm_start"):  # set under --warm-start only
        lines.append(f"Warm start:    {trained.properties['warm_start'].removeprefix('warm_start: ')}")
    serving_check = run.output("ServingCheck", "blessing")
    if serving_check is not None:
        lines.append(f"Serving check: {report_build.serving_check_line(serving_check.properties)}")
    pushed_model = run.output("Pusher", "pushed_model")
    pushed = report_build.pushed_destination(pushed_model)
    earlier = " (pushed by an earlier run: the same model and verdict)" if run.states().get("Pusher") == "CACHED" else ""
    serving = locations.serving_model_dir(config.model_name)
    if pushed:
        lines.append(f"Pushed model:  {pushed}{earlier}")
    else:
        why = report_build.not_pushed_reason(pushed_model) or "the run did not reach the Pusher"
        lines.append(f"Pushed model:  none this run ({why}; serving directory: {serving})")
    tflite = run.output("TFLiteExport", "tflite_model")
    if tflite is not None:
        lines.append(f"TFLite model:  {describe_tflite(tflite.properties, report_build.pushed_tflite(pushed_model))}")
    if isinstance(report_paths, tuple):
        lines.append(f"Report:        {report_paths[0]}  (Markdown: {report_paths[1].name} beside it)")
    elif report_paths:
        lines.append(f"Report:        not written ({report_paths}; see the log)")
    lines += [
        f"MLMD store:    {locations.metadata.describe() if locations.metadata else output.metadata_path}",
        f"TensorBoard:   tensorboard --logdir {output.tensorboard_dir}  (or: make tensorboard OUTPUT_DIR={output.path})",
        f"Logs:          {log_file}",
    ]
    return "\n".join(lines)


def describe_tflite(props: dict, pushed_to: str | None) -> str:
    """One line on a TFLiteModel artifact: where the Pusher put it, and what its export measured."""
    if props.get("exported") != 1:
        return f"not exported ({props.get('skip_reason', 'see the log')})"
    where = pushed_to or "not pushed (the Pusher pushed nothing)"
    return (
        f"{where} ({props['quantization']}, {props['tflite_bytes'] / 1024:.0f} KiB, "
        f"{props['size_ratio']:.1f}x smaller than the SavedModel's weights, "
        f"agrees on {props['agreement']:.2%} of {props['parity_examples']} eval examples)"
    )


def write_report(output: OutputDir, metadata: MetadataStore, run: RunInfo, log_file: Path | None = None,
                 directory: Path | None = None) -> tuple[Path, Path]:
    """Writes the run's report (report.html, self-contained, and report.md) and returns their paths."""
    where = {"MLMD store": metadata.describe(), "TensorBoard logs": str(output.tensorboard_dir)}
    if log_file is not None:
        where["Log file"] = str(log_file)
    report = report_build.collect(run, where)
    return report_build.write(report, directory or report_build.report_dir(output.reports_dir, run))


def log_file_of(output: OutputDir, run: RunInfo) -> Path | None:
    """The log file a run wrote: the last one opened at or before the run started.

    Log files are named by the local time they were opened at (runs.console.log_file_path), run
    ids by the local time the run started (upstream.formats.run_started).
    """
    started = formats.run_started(run.run_id)
    if started is None:  # not a run of TFX's local or Beam orchestrator
        return None
    opened = []
    for path in output.log_dir.glob("run-*.log"):
        try:
            when = datetime.datetime.strptime(path.stem.removeprefix("run-").split("-")[0], LOG_NAME_FORMAT)
        except ValueError:
            continue  # not a log file of ours
        if when <= started:
            opened.append((when, path.name, path))
    return max(opened)[2] if opened else None
