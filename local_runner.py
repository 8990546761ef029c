"""Runs the pipeline on this machine: LocalDagRunner, an SQLite MLMD store, Beam in-process.

This runner only decides where things live (everything under one output directory) and which
orchestrator runs the graph; the pipeline is pipeline.create_pipeline, the checks, console,
summary and report are runs.execute, as for every runner.
"""

from pathlib import Path

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
from tfx import v1 as tfx

from lineage.query import RunInfo
from pipeline.beam import DirectBeam
from pipeline.config import PipelineConfig
from pipeline.locations import Locations, OutputDir
from pipeline.metadata import MetadataStore
from pipeline.schemas import CURATED_SCHEMA
from runs import execute
from upstream import workarounds


def locations(output: OutputDir, data: str | None, beam: DirectBeam, metadata: MetadataStore | None = None) -> Locations:
    """Everything under the output directory but a shared MLMD store if given; Beam's DirectRunner
    in this process (or its children)."""
    return Locations.under(output, data, CURATED_SCHEMA, beam.args(data), metadata)


def orchestrate(pipeline: tfx.dsl.Pipeline) -> None:
    with workarounds.without_tfx_sdist(pipeline.beam_pipeline_args):
        tfx.orchestration.LocalDagRunner().run(pipeline)


def run(config: PipelineConfig, output: OutputDir, data: str | None = None, beam: DirectBeam = DirectBeam(),
        metadata: MetadataStore | None = None, verbose: bool = False, report: bool = True,
        log_file: Path | None = None, pushgateway: str | None = None) -> RunInfo:
    """The whole pipeline on this machine; see runs.execute.run."""
    return execute.run(config, output, locations(output, data, beam, metadata), orchestrate, verbose, report, log_file,
                       pushgateway)


def draft_schema(config: PipelineConfig, data: str | None, beam: DirectBeam, destination: Path) -> Path:
    """SchemaGen's draft of a schema for the data, written to `destination`."""
    return execute.draft_schema(config, data, beam.args(data), orchestrate, destination)
