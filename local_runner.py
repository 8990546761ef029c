"""Runs the pipeline on this machine: LocalDagRunner, an SQLite MLMD store, Beam in-process.

This runner only decides where things live; the pipeline itself is pipeline.create_pipeline.
"""

import datetime
import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
from absl import logging as absl_logging
from tfx import v1 as tfx

from data import taxi
from pipeline import run_summary
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline, create_schema_pipeline


@contextmanager
def _log_to_file(log_dir: Path) -> Iterator[Path]:
    """Copies every log record of the run to a file under log_dir."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"run-{datetime.datetime.now().strftime('%Y%m%dT%H%M%S')}.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


def _prepare(config: PipelineConfig) -> Path:
    """Creates the output directory (user-only) and returns the data directory to read."""
    config.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return config.data_dir or taxi.materialize()


def run(config: PipelineConfig) -> run_summary.RunSummary:
    """Runs the pipeline end to end and returns what its run did, read back from MLMD."""
    data_dir = _prepare(config)
    with _log_to_file(config.log_dir) as log_file:
        logging.info("Run configuration: %s", config)
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, data_dir))
    summary = run_summary.latest_run(run_summary.open_store(config.metadata_path), config.pipeline_name)
    print(format_summary(config, summary, log_file))
    return summary


def format_summary(config: PipelineConfig, summary: run_summary.RunSummary, log_file: Path) -> str:
    states = ", ".join(f"{node} {node_run.state}" for node, node_run in summary.nodes.items())
    lines = [f"Run {summary.run_id}: {states}"]
    blessing = summary.output("Evaluator", "blessing")
    evaluation = summary.output("Evaluator", "evaluation")
    if evaluation is not None:
        metrics = run_summary.overall_metrics(evaluation.uri)
        shown = {k: metrics[k] for k in ("auc", "binary_accuracy", "example_count") if k in metrics}
        lines.append("Eval metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
    if blessing is not None:
        blessed = run_summary.custom_property(blessing, "blessed") == 1
        lines.append(f"Model blessed: {'yes' if blessed else 'no (see the Evaluator thresholds)'}")
    pushed = summary.output("Pusher", "pushed_model")
    if pushed is not None and run_summary.custom_property(pushed, "pushed") == 1:
        lines.append(f"Pushed model:  {run_summary.custom_property(pushed, 'pushed_destination')}")
    else:
        lines.append(f"Pushed model:  none this run (serving directory: {config.serving_model_dir})")
    lines += [
        f"MLMD store:    {config.metadata_path}",
        f"Logs:          {log_file}",
        f"TensorBoard:   tensorboard --logdir {config.tensorboard_dir}",
    ]
    return "\n".join(lines)


def draft_schema(config: PipelineConfig, destination: Path) -> Path:
    """Runs SchemaGen over the data and writes its inferred schema to `destination`."""
    data_dir = _prepare(config)
    with tempfile.TemporaryDirectory(prefix="schema-draft-") as scratch:
        scratch_config = config.replace(output_dir=Path(scratch))
        tfx.orchestration.LocalDagRunner().run(create_schema_pipeline(scratch_config, data_dir))
        summary = run_summary.latest_run(
            run_summary.open_store(scratch_config.metadata_path), f"{config.pipeline_name}_schema_draft"
        )
        schema = summary.output("SchemaGen", "schema")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(schema.uri) / "schema.pbtxt", destination)
    return destination
