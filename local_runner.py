"""Runs the pipeline on this machine: LocalDagRunner, an SQLite MLMD store, Beam in-process.

This runner only decides where things live; the pipeline itself is pipeline.create_pipeline.
"""

import logging
import shutil
import tempfile
from pathlib import Path

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
from tfx import v1 as tfx

from data import taxi
from data.validate import check_csv_dir
from pipeline import local_beam, run_state
from lineage.query import Lineage, RunInfo
from lineage.store import StoreAddress, open_store
from pipeline.config import PipelineConfig
from report import build as report_build
from report.progress import captured_run, first_error_line, mlmd_node_state
from pipeline.pipeline import (
    CURATED_SCHEMA,
    schema_columns,
    create_pipeline,
    create_schema_pipeline,
    schema_fingerprint,
    schema_pipeline_name,
)


class RunFailed(Exception):
    """The run stopped: in which component (None: before any started), why, and where the full log is."""

    def __init__(self, component: str | None, error_line: str, log_file: Path):
        self.component, self.error_line, self.log_file = component, error_line, log_file
        where = f"in {component}" if component else "before any component started"
        super().__init__(f"Run failed {where}: {error_line}\nFull log: {log_file}")


def _prepare(config: PipelineConfig) -> Path:
    """Creates the output directory (user-only) and returns the data directory, checked."""
    config.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir = config.data_dir or taxi.materialize()
    check_csv_dir(data_dir, schema_columns(CURATED_SCHEMA))
    return data_dir


def latest_run(config: PipelineConfig, pipeline_name: str | None = None) -> RunInfo:
    """The pipeline's most recent run, read back from its MLMD store."""
    store = open_store(StoreAddress(sqlite=config.metadata_path))
    return Lineage(store).latest_run(pipeline_name or config.pipeline_name)


def stage_schema(config: PipelineConfig, schema_file: Path = CURATED_SCHEMA) -> Path:
    """A copy of the schema at a path named by its content, so that editing it invalidates the cache."""
    staged = config.pipeline_root / "_schemas" / schema_fingerprint(schema_file)[:16] / "schema.pbtxt"
    if not staged.is_file():
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(schema_file, staged)
    return staged


def run(config: PipelineConfig, verbose: bool = False, report: bool = True, log_file: Path | None = None) -> RunInfo:
    """Runs the pipeline end to end, prints progress and a summary, and returns the run (from MLMD).

    Quiet unless `verbose`: every log line (Python, TensorFlow's C++ logging, Beam workers) goes
    to <output>/logs/run-<time>.log, the console gets one line per component. `report`: also
    write the run report (HTML and Markdown) under <output>/reports/. `log_file`: one already
    started (the CLI logs its imports there). Raises RunFailed.
    """
    with run_state.guarded(config.output_dir, config.metadata_path):
        return _run(config, verbose, report, log_file)


def run_local(pipeline: tfx.dsl.Pipeline) -> None:
    """LocalDagRunner, minus what only remote Beam workers need (see pipeline/local_beam.py)."""
    with local_beam.without_tfx_sdist(pipeline.beam_pipeline_args):
        tfx.orchestration.LocalDagRunner().run(pipeline)


def _run(config: PipelineConfig, verbose: bool, report: bool, log_file: Path | None) -> RunInfo:
    data_dir = _prepare(config)
    state_of = mlmd_node_state(config.metadata_path, config.pipeline_name)
    report_paths = None
    with captured_run(config.log_dir, 0, state_of, verbose, log_file) as captured:
        log_file = captured.log_file
        logging.info("Run configuration: %s", config)
        try:
            pipeline = create_pipeline(config, data_dir, stage_schema(config))
            captured.progress.total = len(pipeline.components)
            captured.console.write(
                f"Running {config.pipeline_name}: {len(pipeline.components)} components; full log: {log_file}\n")
            captured.console.flush()
            run_local(pipeline)
        except Exception as error:
            logging.exception("The run failed")
            failed = captured.progress.fail()
            raise RunFailed(failed.node_id if failed else None, first_error_line(error), log_file) from error
        summary = latest_run(config)
        if report:
            try:
                report_paths = write_report(config, summary, log_file)
            except Exception as error:  # the run itself succeeded: say so, and why the report is missing
                logging.exception("Writing the run report failed")
                report_paths = first_error_line(error)
    print(format_summary(config, summary, log_file, report_paths))
    return summary


def write_report(config: PipelineConfig, summary: RunInfo, log_file: Path | None = None,
                 directory: Path | None = None) -> tuple[Path, Path]:
    """Writes the run's report (report.html, self-contained, and report.md) and returns their paths."""
    where = {"MLMD store": str(config.metadata_path), "TensorBoard logs": str(config.tensorboard_dir)}
    if log_file is not None:
        where["Log file"] = str(log_file)
    report = report_build.collect(summary, where)
    return report_build.write(report, directory or report_build.report_dir(config.output_dir / "reports", summary))


def log_file_of(config: PipelineConfig, summary: RunInfo) -> Path | None:
    """The log file a run wrote: the last one opened before the run started (names are local times)."""
    started = summary.run_id.split(".")[0].replace("-", "").replace(":", "")  # run ids: local ISO times
    logs = sorted(p for p in config.log_dir.glob("run-*.log") if p.name[4:19] <= started)
    return logs[-1] if logs else None


def format_summary(config: PipelineConfig, summary: RunInfo, log_file: Path,
                   report_paths: tuple[Path, Path] | str | None = None) -> str:
    """The end-of-run summary: the verdict and why, metrics vs the baseline, where everything is."""
    counts: dict[str, int] = {}
    for state in summary.states().values():
        word = {"COMPLETE": "ran", "CACHED": "cached"}.get(state, state.lower())
        counts[word] = counts.get(word, 0) + 1
    states = ", ".join(f"{n} {word}" for word, n in sorted(counts.items(), key=lambda kv: kv[0] != "ran"))
    lines = [f"Run {summary.run_id}: {summary.state.lower()} in {summary.seconds:.0f}s ({states})"]
    evaluation = report_build.collect_evaluation(summary)
    if evaluation is not None and evaluation.overall is not None:
        lines.append("Eval metrics: " + report_build.metric_line(evaluation.overall.candidate))
        baseline = report_build.baseline_line(evaluation)
        lines.append(f"Baseline:      {baseline or 'none (no blessed model before this one)'}")
    if evaluation is not None:
        head, reasons = report_build.verdict(evaluation)
        lines.append(f"Model blessed: {head}")
        lines += [f"                 {reason}" for reason in reasons]
    pushed = report_build.pushed_destination(summary.output("Pusher", "pushed_model"))
    if pushed and summary.states().get("Pusher") == "CACHED":
        pushed += " (pushed by an earlier run: the same model and verdict)"
    lines.append(f"Pushed model:  {pushed or f'none this run (serving directory: {config.serving_model_dir})'}")
    tflite = summary.output("TFLiteExport", "tflite_model")
    if tflite is not None:
        lines.append(f"TFLite model:  {describe_tflite(tflite.properties)}")
    if isinstance(report_paths, tuple):
        lines.append(f"Report:        {report_paths[0]}  (Markdown: {report_paths[1].name} beside it)")
    elif report_paths:
        lines.append(f"Report:        not written ({report_paths}; see the log)")
    lines += [
        f"MLMD store:    {config.metadata_path}",
        f"TensorBoard:   tensorboard --logdir {config.tensorboard_dir}  (or: make tensorboard OUTPUT_DIR={config.output_dir})",
        f"Logs:          {log_file}",
    ]
    return "\n".join(lines)


def describe_tflite(props: dict) -> str:
    """One line on a TFLiteModel artifact: where it went and what its export measured."""
    if props.get("exported") != 1:
        return f"not exported ({props.get('skip_reason', 'see the log')})"
    where = props.get("pushed_destination", "not pushed (the Pusher pushed nothing)")
    return (
        f"{where} ({props['quantization']}, {props['tflite_bytes'] / 1024:.0f} KiB, "
        f"{props['size_ratio']:.1f}x smaller than the SavedModel's weights, "
        f"agrees on {props['agreement']:.2%} of {props['parity_examples']} eval examples)"
    )


def draft_schema(config: PipelineConfig, destination: Path) -> Path:
    """Runs SchemaGen over the data and writes its inferred schema to `destination`."""
    data_dir = _prepare(config)
    with tempfile.TemporaryDirectory(prefix="schema-draft-") as scratch:
        scratch_config = config.replace(output_dir=Path(scratch))
        run_local(create_schema_pipeline(scratch_config, data_dir))
        summary = latest_run(scratch_config, schema_pipeline_name(config))
        schema = summary.output("SchemaGen", "schema")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(schema.uri) / "schema.pbtxt", destination)
    return destination
