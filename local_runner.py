"""Runs the pipeline on this machine: LocalDagRunner, an SQLite MLMD store, Beam in-process.

This runner only decides where things live; the pipeline itself is pipeline.create_pipeline.
"""

import datetime
import logging
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
from absl import logging as absl_logging
from tfx import v1 as tfx

from data import taxi
from lineage.metrics import overall_metrics
from lineage.query import Lineage, RunInfo
from lineage.store import StoreAddress, open_store
from pipeline.config import PipelineConfig
from pipeline.pipeline import (
    CURATED_SCHEMA,
    create_pipeline,
    create_schema_pipeline,
    schema_fingerprint,
    schema_pipeline_name,
)


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


def run(config: PipelineConfig) -> RunInfo:
    """Runs the pipeline end to end and returns what its run did, read back from MLMD."""
    data_dir = _prepare(config)
    with _log_to_file(config.log_dir) as log_file:
        logging.info("Run configuration: %s", config)
        try:
            tfx.orchestration.LocalDagRunner().run(create_pipeline(config, data_dir, stage_schema(config)))
        except Exception:
            print(f"The run failed; full log: {log_file}", file=sys.stderr)
            raise
    summary = latest_run(config)
    print(format_summary(config, summary, log_file))
    return summary


def format_summary(config: PipelineConfig, summary: RunInfo, log_file: Path) -> str:
    states = ", ".join(f"{node} {state}" for node, state in summary.states().items())
    lines = [f"Run {summary.run_id}: {states}"]
    blessing = summary.output("Evaluator", "blessing")
    evaluation = summary.output("Evaluator", "evaluation")
    if evaluation is not None:
        metrics = overall_metrics(evaluation.uri)
        shown = {k: metrics[k] for k in ("auc", "binary_accuracy", "example_count") if k in metrics}
        lines.append("Eval metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
    if blessing is not None:
        blessed = blessing.properties.get("blessed") == 1
        lines.append(f"Model blessed: {'yes' if blessed else 'no (see the Evaluator thresholds)'}")
    pushed = summary.output("Pusher", "pushed_model")
    if pushed is not None and pushed.properties.get("pushed") == 1:
        lines.append(f"Pushed model:  {pushed.properties['pushed_destination']}")
    else:
        lines.append(f"Pushed model:  none this run (serving directory: {config.serving_model_dir})")
    tflite = summary.output("TFLiteExport", "tflite_model")
    if tflite is not None:
        lines.append(f"TFLite model:  {describe_tflite(tflite.properties)}")
    lines += [
        f"MLMD store:    {config.metadata_path}",
        f"Logs:          {log_file}",
        f"TensorBoard:   tensorboard --logdir {config.tensorboard_dir}",
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
        tfx.orchestration.LocalDagRunner().run(create_schema_pipeline(scratch_config, data_dir))
        summary = latest_run(scratch_config, schema_pipeline_name(config))
        schema = summary.output("SchemaGen", "schema")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(schema.uri) / "schema.pbtxt", destination)
    return destination
