"""The project's command line: `python -m cli run | report | history | schema | tensorboard | lineage | models | kfp`
(make calls these; the `tfx-taxi` console script is the same `main`).

Options are generated from PipelineConfig's fields (and the model's Hyperparameters) in
runs/options.py, so every setting has one definition and one flag, the same on every runner.
"""

import functools
from pathlib import Path
from typing import Any

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
import click

from lineage.cli import lineage
from pipeline.config import PipelineConfig
from pipeline.locations import DEFAULT_OUTPUT_DIR, OutputDir
from runs import options as run_options
from upstream.workarounds import exit_without_teardown

DEFAULT_PIPELINE_NAME = PipelineConfig.__dataclass_fields__["pipeline_name"].default


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """The Chicago taxi TFX pipeline."""


main.add_command(lineage)


@main.command()
@click.option("--verbose", "-v", is_flag=True, default=False,
              help="Show every log line on the console too (they always go to <output dir>/logs/run-<time>.log).")
@click.option("--report/--no-report", "write_report", default=True, show_default=True,
              help="Write the run report (HTML and Markdown) under <output dir>/reports/ at the end.")
@run_options.pushgateway_option
@run_options.run_options
def run(verbose: bool, write_report: bool, **options: Any) -> None:
    """Run the pipeline end to end on this machine (LocalDagRunner).

    The console shows one line per component and a summary; the full logs go to a file.
    """
    config, output, data, beam = _run_values(options)
    store = run_options.or_usage_error(lambda: run_options.build_metadata(options, output))
    pushgateway = run_options.or_usage_error(lambda: run_options.build_pushgateway(options))
    from runs.console import heavy_imports
    from runs.errors import failures_told

    from runs.spans import check_window, unchanged

    with failures_told():
        store.check(write=True)
        nothing_new = unchanged(config, data, store)  # before TensorFlow: nothing heavy when there is no new span
        if not nothing_new:
            check_window(config, data, store)
    if nothing_new:
        click.echo(nothing_new)
        return
    with heavy_imports(output.log_dir, verbose) as log_file:  # after the options were found valid
        import local_runner
    with failures_told():
        local_runner.run(config, output, data, beam, store, verbose=verbose, report=write_report, log_file=log_file,
                         pushgateway=pushgateway)


def _run_values(options: dict[str, Any]):
    return run_options.or_usage_error(lambda: (
        run_options.build_config(options), run_options.build_output(options), run_options.build_data(options),
        run_options.build_beam(options)))


@main.command("report")
@click.argument("run_ref", metavar="[RUN]", default="latest")
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="The output directory the run wrote to (its MLMD store is read).")
@click.option("--pipeline-name", default=DEFAULT_PIPELINE_NAME, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Directory to write report.html, report.md and images/ to. [default: <output dir>/reports/run-<id>/]")
@run_options.metadata_options
def report(run_ref: str, output_dir: Path, pipeline_name: str, out: Path | None, **options: Any) -> None:
    """Write a run's report: self-contained HTML (pictures inline) and Markdown.

    RUN is a run id, a unique prefix of one, latest (the default) or latest~N. A read-only
    database user is enough.
    """
    import os

    output = run_options.or_usage_error(lambda: OutputDir(output_dir))
    store = run_options.or_usage_error(lambda: run_options.build_metadata(options, output))
    from runs.console import descriptors_to

    # TensorFlow's and TFMA's log lines are of no use here: they go nowhere (errors still raise).
    with descriptors_to(Path(os.devnull)):
        from lineage.query import Lineage
        from lineage.store import LineageError, open_store
        from runs import summary
        from runs.execute import store_address

        try:
            found = Lineage(open_store(store_address(store))).run(run_ref, pipeline=pipeline_name)
        except LineageError as error:
            raise click.ClickException(str(error))
        html_path, md_path = summary.write_report(
            output, store, found, summary.log_file_of(output, found), out.absolute() if out else None)
    click.echo(f"Report of run {found.run_id}: {html_path}\nMarkdown: {md_path}")


@main.command("history")
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="The output directory the runs wrote to (its MLMD store is read).")
@click.option("--pipeline-name", default=DEFAULT_PIPELINE_NAME, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@run_options.metadata_options
def history(output_dir: Path, pipeline_name: str, as_json: bool, **options: Any) -> None:
    """Every run, one row each: span, rows, spans trained on, data gate and drift, eval metrics,
    blessed, pushed version; also written to <output dir>/reports/history.html (with a chart) and .md."""
    import json
    import os

    output = run_options.or_usage_error(lambda: OutputDir(output_dir))
    store = run_options.or_usage_error(lambda: run_options.build_metadata(options, output))
    from runs.console import descriptors_to

    with descriptors_to(Path(os.devnull)):  # TensorFlow's and TFMA's log lines are of no use here
        from lineage.query import Lineage
        from lineage.store import LineageError, open_store
        from runs import history as runs_history
        from runs.execute import store_address

        try:
            raw = open_store(store_address(store))
            found = runs_history.collect(Lineage(raw), raw, pipeline_name)
        except LineageError as error:
            raise click.ClickException(str(error))
        if not found:
            raise click.ClickException(f"the store holds no run of pipeline {pipeline_name!r}")
        html_path, _ = runs_history.write(found, output.reports_dir)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in found], indent=2))
    else:
        click.echo(runs_history.text(found) + f"\nHistory report: {html_path} (Markdown beside it)")


@main.command()
@click.option("--output", "output", type=click.Path(path_type=Path), default=Path("schema_draft.pbtxt"),
              show_default=True, help="Where to write the drafted schema.")
@run_options.run_options
def schema(output: Path, **options: Any) -> None:
    """Draft a schema from the data with SchemaGen, to review against pipeline/schema/schema.pbtxt."""
    config, _, data, beam = _run_values(options)
    import local_runner

    path = local_runner.draft_schema(config, data, beam, output.absolute())
    click.echo(f"Draft schema written to {path}; diff it against pipeline/schema/schema.pbtxt and curate.")


@main.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="The run's output directory.")
@click.option("--port", type=int, default=6006, show_default=True)
@click.option("--host", default="localhost", show_default=True, help="Interface to serve on (0.0.0.0: all).")
def tensorboard(output_dir: Path, port: int, host: str) -> None:
    """Serve TensorBoard on the Trainer's logs (every training run under OUTPUT_DIR)."""
    import os

    logdir = run_options.or_usage_error(lambda: OutputDir(output_dir)).tensorboard_dir
    if not logdir.is_dir():
        raise click.ClickException(f"no training logs under {logdir}: run the pipeline first")
    os.execvp("tensorboard", ["tensorboard", "--logdir", str(logdir), "--port", str(port), "--host", host])


@main.group()
def metadata() -> None:
    """ML Metadata stores: move a local store's history into a team's database."""


@metadata.command("copy")
@click.option("--from", "source", required=True, help="The store to copy: an SQLite file (or mysql://...).")
@click.option("--to", "target", required=True,
              help="The store to copy into, e.g. mysql://USER@HOST[:PORT]/DATABASE (empty: a new database).")
@click.option("--metadata-password-file", "password_file", type=click.Path(path_type=Path), default=None,
              help="A file only you can read holding the database password. [env: MLMD_MYSQL_PASSWORD_FILE; "
                   "or MLMD_MYSQL_PASSWORD]")
def metadata_copy(source: str, target: str, password_file: Path | None) -> None:
    """Copy every type, artifact, execution, context and event of one store into another."""
    from pipeline import metadata as stores

    src, dst = run_options.or_usage_error(lambda: (
        stores.parse(source, Path(source), password_file), stores.parse(target, Path(target), password_file)))
    if src.sqlite is not None and not src.sqlite.is_file():
        raise click.UsageError(f"--from: no store at {src.sqlite}")
    try:
        dst.check(write=True)
        counts = stores.copy_store(src, dst)
    except stores.StoreError as error:
        raise click.ClickException(str(error))
    click.echo(f"Copied {src} into {dst}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))


@main.group("models")
def models_group() -> None:  # not `models`: that name is the package imported above
    """The model registry: each version in the serving directory, where it came from, and rollback."""


DEFAULT_MODEL_NAME = PipelineConfig.__dataclass_fields__["model_name"].default


def _registry_options(command):
    return run_options.apply_options(command, [
        click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
                     help="The output directory of local runs (its serving/ directory and MLMD store)."),
        click.option("--serving-dir", default=None,
                     help="The serving directory the Pusher pushed under (a path or URI). [default: <output dir>/serving]"),
        click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True,
                     help="The model's directory under the serving directory."),
        click.option("--pipeline-name", default=DEFAULT_PIPELINE_NAME, show_default=True,
                     help="The pipeline whose MLMD context a rollback is recorded in."),
        run_options.metadata_options,
    ])


def _registry(fn):
    """Builds the layout and store from the options; a refused request is one line and exit 2,
    an unreadable store or a locked output directory one line and exit 1."""

    @_registry_options
    @functools.wraps(fn)
    def wrapper(output_dir: Path, serving_dir: str | None, model_name: str, pipeline_name: str, **options: Any):
        import os
        import sys

        output = run_options.or_usage_error(lambda: OutputDir(output_dir))
        store = run_options.or_usage_error(lambda: run_options.build_metadata(options, output))
        rest = {k: v for k, v in options.items() if k not in ("metadata_store", "metadata_password_file")}
        from runs.console import descriptors_to

        with descriptors_to(Path(os.devnull)):  # TensorFlow's and TFMA's log lines are of no use here
            from lineage.store import LineageError
            from pipeline.metadata import StoreError
            from runs import registry
            from runs.state import RunLocked

            try:
                layout = registry.Layout.of(serving_dir or output.serving_dir, model_name)
                text, code = fn(registry, layout, store, output if serving_dir is None else None, pipeline_name, **rest), 0
            except registry.RegistryError as error:
                text, code = f"Error: {error}", 2
            except (registry.RollbackFailed, LineageError, StoreError, RunLocked, OSError) as error:
                text, code = f"Error: {error}", 1
        click.echo(text, err=code != 0)
        sys.exit(code)

    return wrapper


JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@models_group.command("list")
@JSON
@_registry
def models_list(registry, layout, store, output, pipeline_name: str, as_json: bool) -> str:
    """Each version: when, from which run, data, code, eval metrics, blessing, TFLite twin, serving check.

    Read-only; without an MLMD store the serving directory alone is listed.
    """
    import json

    found = registry.listing(layout, store)
    if as_json:
        return json.dumps({"versions": [v.to_json() for v in found.versions], "ignored": found.incomplete,
                           "note": found.store_note}, indent=2, default=str)
    return registry.list_text(found)


@models_group.command("show")
@click.argument("version")
@JSON
@_registry
def models_show(registry, layout, store, output, pipeline_name: str, version: str, as_json: bool) -> str:
    """One version in full."""
    import json

    found = registry.listing(layout, store)
    chosen = found.version(version)
    return json.dumps(chosen.to_json(), indent=2, default=str) if as_json else registry.show_text(found, chosen)


@models_group.command("rollback")
@click.argument("version")
@click.option("--reason", required=True, help="Why: recorded in MLMD with the rollback.")
@_registry
def models_rollback(registry, layout, store, output, pipeline_name: str, version: str, reason: str) -> str:
    """Republish VERSION's SavedModel and TFLite twin as the newest version (what TF Serving serves),
    all or nothing, and record it in MLMD as a push with lineage to the original model."""
    done = registry.rollback(layout, version, reason, store, pipeline_name, output)
    return (f"Rolled back to version {version}: published as version {done.version}\n"
            + "\n".join(f"  {path}" for path in done.published) + f"\n  {done.recorded}")


@main.group()
def kfp() -> None:
    """Kubeflow Pipelines v2: compile the pipeline to a spec, submit the spec to an endpoint."""


@kfp.command("compile")
@click.option("--image", envvar="KFP_IMAGE", required=True,
              help="Container image every step runs in (built from ./Dockerfile). [env: KFP_IMAGE]")
@click.option("--pipeline-root", envvar="KFP_PIPELINE_ROOT", required=True,
              help="URI under which KFP puts the run's artifacts, e.g. gs://bucket/tfx. [env: KFP_PIPELINE_ROOT]")
@click.option("--serving-dir", envvar="KFP_SERVING_DIR", default=None,
              help="URI the Pusher pushes blessed models under. [default: <pipeline root>/serving; env: KFP_SERVING_DIR]")
@click.option("--target", type=click.Choice(["kubeflow", "vertex"]), default="kubeflow", show_default=True,
              help="kubeflow: open-source KFP (no latest-blessed-model baseline); vertex: Vertex AI Pipelines.")
@click.option("--output", "output", type=click.Path(path_type=Path), default=None,
              help="Where to write the spec. [default: <output dir>/kubeflow/<pipeline name>.yaml]")
@click.option("--vertex-project", envvar="VERTEX_PROJECT", default=None,
              help="--target vertex with --workers > 1: project of the Trainer's Vertex AI CustomJob. [env: VERTEX_PROJECT]")
@click.option("--vertex-region", envvar="VERTEX_REGION", default=None,
              help="...and its region, e.g. us-central1. [env: VERTEX_REGION]")
@click.option("--training-machine-type", default="n1-standard-4", show_default=True,
              help="...and the machine type of each training replica.")
@click.option("--spans", "spans", is_flag=True, default=False,
              help="The data root holds span-1/, span-2/, ... folders: each run reads one span, the newest unless "
                   "its range_config runtime parameter names one (kfp submit --span N).")
@run_options.output_dir_option
@functools.partial(run_options.data_option, envvar="KFP_DATA_DIR",
                   help_text="Default of the data_root runtime parameter: a URI of CSV files the pods can reach. "
                             "[default: <pipeline root>/data; env: KFP_DATA_DIR]")
@run_options.beam_options
@run_options.config_options
def kfp_compile(image: str, pipeline_root: str, serving_dir: str | None, target: str, output: Path | None,
                vertex_project: str | None, vertex_region: str | None, training_machine_type: str, spans: bool,
                **options: Any) -> None:
    """Compile the pipeline to a KFP v2 spec (YAML); training settings and Beam options as for `run`."""
    config, output_dir, beam = run_options.or_usage_error(lambda: (
        run_options.build_config(options), run_options.build_output(options), run_options.build_beam(options)))
    from kubeflow import default_spec_path
    from kubeflow import runner  # heavy (TFX, TensorFlow): imported once the options are known to be valid

    settings = run_options.or_usage_error(
        lambda: runner.KubeflowSettings(image, pipeline_root, options.get("data_dir"), serving_dir, target,
                                        vertex_project, vertex_region, training_machine_type, spans))
    run_options.or_usage_error(lambda: runner.vertex_training(config, settings))
    path = run_options.or_usage_error(lambda: runner.compile_pipeline(
        config, settings, beam, output or default_spec_path(output_dir.path, config.pipeline_name)))
    click.echo(f"Pipeline spec for {target} written to {path}\n  image: {settings.image}\n"
               f"  pipeline root: {settings.pipeline_root}\n  data_root (runtime parameter): {settings.data}\n"
               f"  serving dir: {settings.serving_dir}")


@kfp.command("submit")
@click.option("--package", type=click.Path(path_type=Path), default=None,
              help="The compiled spec. [default: <output dir>/kubeflow/<pipeline name>.yaml]")
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="The output directory `kfp compile` wrote to.")
@click.option("--pipeline-name", default=DEFAULT_PIPELINE_NAME,
              show_default=True, help="The pipeline name it was compiled with (names the default package).")
@click.option("--host", envvar="KFP_HOST", required=True, help="KFP API endpoint, e.g. http://localhost:8080. [env: KFP_HOST]")
@click.option("--token", envvar="KFP_TOKEN", default=None, help="Bearer token for the endpoint. [env: KFP_TOKEN]")
@click.option("--cookies", envvar="KFP_COOKIES", default=None,
              help="Cookie header for the endpoint (multi-user Kubeflow login). [env: KFP_COOKIES]")
@click.option("--namespace", envvar="KFP_NAMESPACE", default=None,
              help="Profile namespace (multi-user Kubeflow). [env: KFP_NAMESPACE]")
@click.option("--experiment", default=None, help="Experiment to run in. [default: the pipeline name]")
@click.option("--run-name", default=None, help="[default: <pipeline name>-<time>]")
@click.option("--data-dir", "data_dir", default=None,
              help="This run's data: the data_root runtime parameter (a URI of CSV files).")
@click.option("--train-steps", type=click.IntRange(min=1), default=None, help="This run's training steps.")
@click.option("--span", type=click.IntRange(min=0), default=None,
              help="A spec compiled with --spans: the span this run reads (0: the newest).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Any runtime parameter; repeatable.")
@click.option("--cache/--no-cache", "enable_caching", default=None,
              help="Override the compiled caching setting of every step for this run.")
def kfp_submit(package: Path | None, output_dir: Path, pipeline_name: str, host: str, token: str | None,
               cookies: str | None, namespace: str | None, experiment: str | None, run_name: str | None,
               data_dir: str | None, train_steps: int | None, span: int | None, params: tuple[str, ...],
               enable_caching: bool | None) -> None:
    """Upload the compiled spec to a KFP endpoint (a new version if it exists) and start a run."""
    from kubeflow import (DATA_ROOT_PARAM, RANGE_CONFIG_PARAM, TRAIN_ARGS_PARAM, default_spec_path,
                          range_config_value, train_args_value)
    from kubeflow.submit import Endpoint, SubmitError, submit

    arguments: dict[str, Any] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--param: expects NAME=VALUE, got {param!r}")
        arguments[key] = value
    if data_dir is not None:
        arguments[DATA_ROOT_PARAM] = data_dir
    if train_steps is not None:
        arguments[TRAIN_ARGS_PARAM] = train_args_value(train_steps)
    if span is not None:
        arguments[RANGE_CONFIG_PARAM] = range_config_value(span)
    package = package or default_spec_path(output_dir.absolute(), pipeline_name)
    try:
        done = submit(package, Endpoint(host, token, cookies, namespace), arguments=arguments,
                      experiment=experiment, run_name=run_name, enable_caching=enable_caching)
    except SubmitError as error:
        raise click.ClickException(str(error))
    click.echo(f"Submitted {package}: pipeline {done.pipeline_id}, version {done.version_id}, run {done.run_id}\n"
               f"  {done.run_url}")


def entry() -> None:
    """`python -m cli` and the `tfx-taxi` console script: main(), exiting without the teardown."""
    try:
        main()
    except SystemExit as done:  # click ends every command, success included, with SystemExit
        exit_without_teardown(done.code)


if __name__ == "__main__":
    entry()
