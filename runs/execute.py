"""A run, whatever orchestrator runs the graph: the same checks, console, summary and report.

    execute.run(config, output, locations, orchestrate)

`orchestrate(pipeline)` is the runner's one line (LocalDagRunner().run, BeamDagRunner().run); the
rest is here, so `make run` and `beam_runner.py` give the same product.
"""

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
from tfx import v1 as tfx

from data import spans, taxi
from data.validate import DataError, check_csv_dir
from lineage.query import Lineage, RunInfo
from lineage.store import LineageError, StoreAddress, open_store
from pipeline.config import PipelineConfig
from pipeline.locations import Locations, OutputDir, is_uri
from pipeline.metadata import MetadataStore
from pipeline.pipeline import create_pipeline, create_schema_pipeline, schema_pipeline_name
from pipeline.schemas import CURATED_SCHEMA, schema_columns, stage_schema
from runs import metrics, spans as run_spans, state, summary as summaries
from runs.console import captured_run, mlmd_node_state
from runs.errors import RunFailed, first_error_line

Orchestrate = Callable[[tfx.dsl.Pipeline], None]


def prepare(output: OutputDir, locations: Locations, span: int = 0) -> Locations:
    """The locations with the data resolved and checked and the schema staged.

    The output directory is created user-only; no data given means the bundled taxi data; local
    CSV files are checked (DataError names the file and line), on span folders (data.spans) the
    layout and the CSV files of the span the run reads (`span`, 0: the newest); the schema is
    staged at a path that follows its content (pipeline.schemas.stage_schema), under a local
    pipeline root.
    """
    output.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if locations.metadata is not None and locations.metadata.sqlite is not None:
        locations.metadata.sqlite.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = locations.data or str(taxi.materialize())
    spanned = False
    if not is_uri(data):
        found = spans.layout(Path(data))
        check_csv_dir(found.folder(spans.select(found, span)), schema_columns(Path(locations.schema_file)))
        spanned = not found.flat
    schema = locations.schema_file
    if not is_uri(locations.pipeline_root):
        schema = str(stage_schema(Path(locations.pipeline_root), Path(schema)))
    return locations.replace(data=data, schema_file=schema, spans=spanned)


def run(config: PipelineConfig, output: OutputDir, locations: Locations, orchestrate: Orchestrate,
        verbose: bool = False, report: bool = True, log_file: Path | None = None,
        pushgateway: str | None = None) -> RunInfo:
    """Runs the pipeline end to end, prints progress and a summary, and returns the run (from MLMD).

    Quiet unless `verbose`: every log line (Python, TensorFlow's C++ logging, Beam workers) goes
    to <output>/logs/run-<time>.log, the console gets one line per component. `report`: also
    write the run report (HTML and Markdown) under <output>/reports/. `log_file`: one already
    started (the CLI logs its imports there). `pushgateway`: also push the run's Prometheus
    metrics there (runs.metrics; they are written under <output>/metrics/ after every run, failed
    ones too). Raises RunFailed, DataError, RunLocked.
    """
    started = time.time()
    warnings: list[str] = []
    try:
        return _run(config, output, locations, orchestrate, verbose, report, log_file, pushgateway, started, warnings)
    finally:
        for line in warnings:  # after the run's console output, before a failure's own message
            print(line, file=sys.stderr, flush=True)


def _run(config: PipelineConfig, output: OutputDir, locations: Locations, orchestrate: Orchestrate, verbose: bool,
         report: bool, log_file: Path | None, pushgateway: str | None, started: float, warnings: list[str]) -> RunInfo:
    with state.guarded(output.path, locations.metadata, locations.pipeline_root):
        nothing_new = run_spans.unchanged(config, locations.data, locations.metadata)
        if nothing_new:  # before any component: no silent re-processing of a span read before
            print(nothing_new)
            return latest_run(locations.metadata, config.pipeline_name, locations.pipeline_root)
        try:
            locations = prepare(output, locations, config.span)
            run_spans.check_window(config, locations.data, locations.metadata)
        except DataError:  # refused before any component started: a failed run all the same
            warnings += metrics.export(config, output, None, False, time.time() - started, pushgateway)
            raise
        state_of = mlmd_node_state(store_address(locations.metadata), config.pipeline_name)
        report_paths = None
        secrets = (locations.metadata.password,) if locations.metadata and locations.metadata.password else ()
        with captured_run(output.log_dir, 0, state_of, verbose, log_file, secrets) as captured:
            log_file = captured.log_file
            logging.info("Run configuration: %s; locations: %s", config, locations)
            try:
                pipeline = create_pipeline(config, locations)
                captured.progress.expect([node.id for node in pipeline.components])
                captured.console.write(
                    f"Running {config.pipeline_name}: {len(pipeline.components)} components; full log: {log_file}\n")
                captured.console.flush()
                orchestrate(pipeline)
            except Exception as error:
                logging.exception("The run failed")
                failed = captured.progress.fail()
                node, message = (failed.node_id if failed else None), first_error_line(error)
                run = _this_run(config, locations, started)
                _record_failure(locations, run, node, message)
                warnings += _export_metrics(config, output, locations, run, started, pushgateway)
                raise RunFailed(node, message, log_file) from error
            finished = latest_run(locations.metadata, config.pipeline_name, locations.pipeline_root)
            failed = [e.node_id for e in finished.executions if e.state == "FAILED"]
            warnings += _export_metrics(config, output, locations, finished, started, pushgateway)
            if failed:
                # TFX's LocalDagRunner logs a node whose inputs could not be resolved (an MLMD error
                # included), records it FAILED and goes on with the nodes that do not read its
                # outputs: the run must not end as if it had succeeded.
                logging.error("Executions recorded FAILED: %s", ", ".join(failed))
                message = f"its execution is recorded FAILED in MLMD (see the log; failed: {', '.join(failed)})"
                _record_failure(locations, finished, failed[0], message)
                raise RunFailed(failed[0], message, log_file)
            if report:
                try:
                    report_paths = summaries.write_report(output, locations.metadata, finished, log_file)
                except Exception as error:  # the run itself succeeded: say so, and why the report is missing
                    logging.exception("Writing the run report failed")
                    report_paths = first_error_line(error)
    print(summaries.format_summary(config, output, locations, finished, log_file, report_paths))
    return finished


def _this_run(config: PipelineConfig, locations: Locations, started: float) -> RunInfo | None:
    """This invocation's run, read back from MLMD after it failed; None when it recorded nothing
    (the newest run is then an earlier one) or the store cannot be read."""
    try:
        found = latest_run(locations.metadata, config.pipeline_name, locations.pipeline_root)
    except Exception:  # no store, or no run of this pipeline in it yet
        logging.exception("Reading the failed run back from MLMD failed")
        return None
    return found if found.start is not None and found.start.timestamp() >= started - 1 else None


def _record_failure(locations: Locations, run: RunInfo | None, node: str | None, message: str) -> None:
    """Says in MLMD why this run failed (best effort: the run's own error is what the user gets)."""
    failed = [e.id for e in run.executions if e.state == "FAILED" and (node is None or e.node_id == node)] if run else []
    if not failed:
        return
    try:
        state.record_failure(locations.metadata, run.context_id, failed,
                             f"failed in {node}: {message}" if node else message)
    except Exception:
        logging.exception("Recording the failure in MLMD failed")


def _export_metrics(config: PipelineConfig, output: OutputDir, locations: Locations, finished: RunInfo | None,
                    started: float, pushgateway: str | None) -> list[str]:
    """runs.metrics.export for this run (`finished`: None when it recorded nothing); the warning
    lines, also logged."""
    lineage = None
    try:
        lineage = Lineage(open_store(store_address(locations.metadata)))
    except Exception:  # no store yet
        logging.exception("Opening the store for the run's metrics failed")
    succeeded = finished is not None and finished.state == "COMPLETE"
    warnings = metrics.export(config, output, finished, succeeded, time.time() - started, pushgateway, lineage)
    for line in warnings:
        logging.warning("%s", line)
    return warnings


def latest_run(metadata: MetadataStore | OutputDir, pipeline_name: str, pipeline_root: str | None = None) -> RunInfo:
    """The pipeline's most recent run, read back from its MLMD store (an output directory's own).

    `pipeline_root`: the most recent run that wrote there. A shared store holds colleagues' runs
    of the same pipeline too, and one may have started after this run.
    """
    if isinstance(metadata, OutputDir):
        metadata = MetadataStore(sqlite=metadata.metadata_path)
    lineage = Lineage(open_store(store_address(metadata)))
    if pipeline_root is None or not metadata.is_server:
        return lineage.latest_run(pipeline_name)
    root = pipeline_root.rstrip("/") + "/"
    for candidate in reversed(lineage.runs(pipeline_name)):
        run = lineage.run(candidate.run_id)
        # A resolver's outputs are earlier artifacts, possibly a colleague's; a component's are its own.
        components = [e for e in run.executions if "resolver" not in e.component_type.lower()]
        if any(a.uri.startswith(root) for e in components for arts in e.outputs.values() for a in arts):
            return run
    raise LineageError(f"the store holds no run of pipeline {pipeline_name!r} under {pipeline_root}")


def store_address(metadata: MetadataStore) -> StoreAddress:
    """The store as lineage opens it for reading."""
    return StoreAddress.of(metadata)


def draft_schema(config: PipelineConfig, data: str | None, beam_args: list[str], orchestrate: Orchestrate,
                 destination: Path) -> Path:
    """Runs SchemaGen over the data and writes its inferred schema to `destination`."""
    with tempfile.TemporaryDirectory(prefix="schema-draft-") as scratch:
        output = OutputDir(Path(scratch))
        locations = prepare(output, Locations.under(output, data, CURATED_SCHEMA, beam_args))
        orchestrate(create_schema_pipeline(config, locations))
        schema = latest_run(output, schema_pipeline_name(config)).output("SchemaGen", "schema")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes((Path(schema.uri) / "schema.pbtxt").read_bytes())
    return destination
