"""`python -m cli lineage ...`: ask an MLMD store about runs, traces, graphs and diffs."""

import functools
import json
import sys
from pathlib import Path
from typing import Callable

import click
from ml_metadata import errors

from lineage import query, render
from lineage.store import LineageError, StoreAddress, open_store
from pipeline import metadata
from pipeline.config import ConfigError
from pipeline.metadata import PASSWORD_ENV, PASSWORD_FILE_ENV


def _store_options(command: Callable) -> Callable:
    options = [
        click.option("--output-dir", type=click.Path(path_type=Path), default=None,
                     help="Output directory of a local run: its metadata.sqlite is the default store."),
        # --mlmd-sqlite: the older spelling of an SQLite --metadata-store, kept for scripts.
        click.option("--metadata-store", "--mlmd-sqlite", "metadata_store", default=None, envvar="MLMD_STORE",
                     help="The MLMD store: an SQLite file, or mysql://USER@HOST[:PORT]/DATABASE (a SELECT-only user "
                          f"is enough; password from ${PASSWORD_ENV} or --metadata-password-file). "
                          "[default: <output dir>/metadata.sqlite; env: MLMD_STORE]"),
        click.option("--metadata-password-file", type=click.Path(path_type=Path), default=None,
                     help=f"A file only you can read holding the database password. [env: {PASSWORD_FILE_ENV}]"),
        click.option("--grpc-host", help="An MLMD gRPC server (e.g. KFP's metadata-grpc-service)."),
        click.option("--grpc-port", type=int, default=8080, show_default=True),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _address(output_dir: Path | None, metadata_store: str | None, password_file: Path | None,
             grpc_host: str | None, grpc_port: int) -> StoreAddress:
    if grpc_host:
        return StoreAddress(grpc_host=grpc_host, grpc_port=grpc_port)
    from pipeline.locations import OutputDir  # the local runners' layout, defined once

    default = (OutputDir(output_dir) if output_dir else OutputDir()).metadata_path
    try:
        return StoreAddress.of(metadata.parse(metadata_store, default, password_file))
    except ConfigError as error:
        raise click.UsageError(str(error))


def _command(fn: Callable) -> Callable:
    """Opens the store from the options, turns LineageErrors into a message and exit code 1."""

    @_store_options
    @functools.wraps(fn)
    def wrapper(output_dir, metadata_store, metadata_password_file, grpc_host, grpc_port, as_json, **kwargs):
        address = _address(output_dir, metadata_store, metadata_password_file, grpc_host, grpc_port)
        try:
            result = fn(query.Lineage(open_store(address)), **kwargs)
        except LineageError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(1)
        except (errors.StatusError, OSError) as error:  # e.g. "database is locked", an unwritable picture
            click.echo(f"Error: {address.describe()}: {type(error).__name__}: {error}", err=True)
            sys.exit(1)
        text, data = result
        click.echo(json.dumps(data, indent=2, default=str) if as_json else text)

    return wrapper


@click.group()
def lineage() -> None:
    """Lineage in the ML Metadata store: runs, traces, graphs and diffs."""


@lineage.command()
@click.option("--pipeline", help="Only this pipeline's runs.")
@_command
def runs(lin: query.Lineage, pipeline: str | None):
    """Pipeline runs: start, duration, final state, and each node's state."""
    found = lin.runs(pipeline)
    if not found:
        raise LineageError("the store holds no pipeline run" + (f" of {pipeline!r}" if pipeline else ""))
    return render.runs_table(found), [r.to_json() for r in found]


PIPELINE = click.option("--pipeline", help="The pipeline, when the store holds runs of several.")


@lineage.command()
@click.argument("run_ref", default="latest")
@PIPELINE
@_command
def show(lin: query.Lineage, run_ref: str, pipeline: str | None):
    """One run (id, unique prefix, 'latest' or 'latest~N'): each node's code, parameters, inputs, outputs."""
    run = lin.run(run_ref, pipeline=pipeline)
    return render.show_text(run), run.to_json(with_io=True)


@lineage.command()
@click.argument("artifact_ref")
@click.option("--downstream", is_flag=True, help="Follow the artifact forward instead of back.")
@click.option("--with-baselines", is_flag=True,
              help="Upstream: also follow the baseline models an Evaluator compared against.")
@_command
def trace(lin: query.Lineage, artifact_ref: str, downstream: bool, with_baselines: bool):
    """Where an artifact came from (or what it fed).

    ARTIFACT_REF: an id, a URI, latest-pushed-model, latest-model, or latest:<ArtifactType>.
    """
    found = lin.trace(artifact_ref, downstream=downstream, with_baselines=with_baselines)
    return render.trace_text(found), found.to_json()


@lineage.command()
@click.argument("target", default="latest")
@click.option("--artifact", is_flag=True, help="TARGET is an artifact: draw its trace, not a run.")
@click.option("--downstream", is_flag=True, help="With --artifact: the downstream trace.")
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot", show_default=True,
              help="Text printed to the console.")
@click.option("--picture", type=click.Path(path_type=Path), help="Also draw it to this .png or .svg file.")
@PIPELINE
@_command
def graph(lin: query.Lineage, target: str, artifact: bool, downstream: bool, fmt: str, picture: Path | None,
          pipeline: str | None):
    """A run (default: the latest) or an artifact's trace as DOT or Mermaid, and as a picture."""
    g = (render.graph_of_trace(lin.trace(target, downstream)) if artifact
         else render.graph_of_run(lin.run(target, pipeline=pipeline)))
    if picture is not None:
        if picture.suffix.lower() not in (".png", ".svg"):
            raise LineageError(f"--picture {picture}: give a .png or .svg file name")
        render.draw(g, picture)
    text = render.to_dot(g) if fmt == "dot" else render.to_mermaid(g)
    return text, {"dot": render.to_dot(g), "mermaid": render.to_mermaid(g), "picture": str(picture) if picture else None}


@lineage.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--no-metrics", is_flag=True, help="Skip the evaluation metrics (faster: no TFMA import).")
@PIPELINE
@_command
def diff(lin: query.Lineage, run_a: str, run_b: str, no_metrics: bool, pipeline: str | None):
    """Parameters, input artifacts and evaluation metrics that differ between two runs."""
    from lineage import metrics

    found = query.diff_runs(lin.run(run_a, pipeline=pipeline), lin.run(run_b, pipeline=pipeline),
                            None if no_metrics else metrics.run_metrics)
    return render.diff_text(found), found


@lineage.command()
@click.argument("artifact_ref", default="latest-pushed-model")
@click.option("--span", "span", type=int, default=None, help="Instead: the models span N fed.")
@_command
def spans(lin: query.Lineage, artifact_ref: str, span: int | None):
    """Which spans fed ARTIFACT_REF (default: the serving model, latest-pushed-model), or, with
    --span N, which models span N fed and where they were pushed."""
    if span is not None:
        found = lin.models_fed_by(span)
        lines = [f"Span {span} fed {len(found)} model{'s' if len(found) != 1 else ''}:"] + [
            f"  {m.label()} {m.uri}" + (f"  pushed: {', '.join(p)}" if p else "  not pushed") for m, p in found]
        return "\n".join(lines), {"span": span, "models": [{**m.to_json(), "pushed": p} for m, p in found]}
    root, fed = lin.spans_fed(artifact_ref)
    lines = [f"{root.label()} ({root.uri}) was fed by span{'s' if len(fed) != 1 else ''} "
             f"{', '.join(map(str, fed)) or 'none recorded'}:"] + [
        f"  span {s}: " + ", ".join(f"{a.label()} {a.uri}" for a in arts) for s, arts in fed.items()]
    return "\n".join(lines), {"artifact": root.to_json(), "spans": {s: [a.to_json() for a in arts] for s, arts in fed.items()}}
