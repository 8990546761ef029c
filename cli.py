"""The project's command line: `python -m cli run | report | schema | tensorboard | lineage ...` (make calls these).

Options are generated from PipelineConfig's fields (and the model's Hyperparameters), so every
setting has one definition and one flag.
"""

import atexit
import dataclasses
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
import click

from lineage.cli import lineage
from models.hyperparameters import Hyperparameters
from pipeline.config import ConfigError, PipelineConfig, option_name

_NESTED = "hyperparameters"


def _config_fields() -> list[dataclasses.Field]:
    top = [f for f in dataclasses.fields(PipelineConfig) if f.name != _NESTED]
    return top + list(dataclasses.fields(Hyperparameters))


def _click_option(field: dataclasses.Field) -> Callable:
    kind = field.type
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # Optional[X] -> X
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    name = option_name(field.name)
    help_text = field.metadata.get("help", "")
    default = field.default if field.default is not dataclasses.MISSING else None
    if kind is bool:
        flag = f"{name}/--no-{name[2:]}"
        return click.option(flag, field.name, default=None, help=f"{help_text} [default: {default}]")
    if "choices" in field.metadata:
        param_type: Any = click.Choice(field.metadata["choices"])
    elif kind is Path:
        param_type = click.Path(path_type=Path)
    elif kind in (int, float, str):
        param_type = kind
    elif typing.get_origin(kind) is tuple:
        param_type = str  # "64,32"
    else:
        raise TypeError(f"no command-line type for {field.name}: {kind}")
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return click.option(name, field.name, type=param_type, default=None, help=f"{help_text} [default: {shown}]")


def config_options(command: Callable) -> Callable:
    """Adds one option per configuration field to a click command."""
    for field in reversed(_config_fields()):
        command = _click_option(field)(command)
    return command


def build_config(options: dict[str, Any]) -> PipelineConfig:
    """A PipelineConfig from the options the user gave; unset options keep their defaults."""
    given = {k: v for k, v in options.items() if v is not None}
    hp_names = {f.name for f in dataclasses.fields(Hyperparameters)}
    hp = {k: given.pop(k) for k in list(given) if k in hp_names}
    if "hidden_units" in hp:
        try:
            hp["hidden_units"] = tuple(int(u) for u in str(hp["hidden_units"]).split(","))
        except ValueError:
            raise ConfigError("hidden_units", f"expects comma-separated integers, got {hp['hidden_units']!r}")
    return PipelineConfig(**given, hyperparameters=Hyperparameters(**hp))


def _config_or_exit(options: dict[str, Any]) -> PipelineConfig:
    try:
        return build_config(options)
    except ConfigError as error:
        raise click.UsageError(str(error))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """The Chicago taxi TFX pipeline."""


main.add_command(lineage)


@main.command()
@click.option("--verbose", "-v", is_flag=True, default=False,
              help="Show every log line on the console too (they always go to <output dir>/logs/run-<time>.log).")
@click.option("--report/--no-report", "write_report", default=True, show_default=True,
              help="Write the run report (HTML and Markdown) under <output dir>/reports/ at the end.")
@config_options
def run(verbose: bool, write_report: bool, **options: Any) -> None:
    """Run the pipeline end to end on this machine (LocalDagRunner).

    The console shows one line per component and a summary; the full logs go to a file.
    """
    config = _config_or_exit(options)
    os.umask(0o077)  # the store, models and logs this run writes are the user's only
    log_file = None
    if verbose:
        import local_runner  # heavy (TFX, TensorFlow): imported once the options are known to be valid
    else:  # quiet: even the import's TensorFlow log lines go to the run's log file
        from report.progress import descriptors_to, log_file_path

        log_file = log_file_path(config.log_dir)
        with descriptors_to(log_file):
            import local_runner
    from data.validate import DataError
    from pipeline.run_state import RunLocked

    try:
        local_runner.run(config, verbose=verbose, report=write_report, log_file=log_file)
    except (local_runner.RunFailed, DataError, RunLocked) as failure:
        click.echo(f"Error: {failure}" if not isinstance(failure, local_runner.RunFailed) else str(failure), err=True)
        sys.exit(1)


@main.command("report")
@click.argument("run_ref", metavar="[RUN]", default="latest")
@click.option("--output-dir", type=click.Path(path_type=Path), default=PipelineConfig.__dataclass_fields__["output_dir"].default,
              show_default=True, help="The output directory the run wrote to (its MLMD store is read).")
@click.option("--pipeline-name", default=PipelineConfig.__dataclass_fields__["pipeline_name"].default, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Directory to write report.html, report.md and images/ to. [default: <output dir>/reports/run-<id>/]")
def report(run_ref: str, output_dir: Path, pipeline_name: str, out: Path | None) -> None:
    """Write a run's report: self-contained HTML (pictures inline) and Markdown.

    RUN is a run id, a unique prefix of one, latest (the default) or latest~N.
    """
    config = _config_or_exit({"output_dir": output_dir, "pipeline_name": pipeline_name})
    from report.progress import descriptors_to

    # TensorFlow's and TFMA's log lines are of no use here: they go nowhere (errors still raise).
    with descriptors_to(Path(os.devnull)):
        import local_runner
        from lineage.query import Lineage
        from lineage.store import LineageError, StoreAddress, open_store

        try:
            found = Lineage(open_store(StoreAddress(sqlite=config.metadata_path))).run(run_ref, pipeline=pipeline_name)
        except LineageError as error:
            raise click.ClickException(str(error))
        html_path, md_path = local_runner.write_report(
            config, found, local_runner.log_file_of(config, found), out.absolute() if out else None)
    click.echo(f"Report of run {found.run_id}: {html_path}\nMarkdown: {md_path}")


@main.command()
@click.option("--output", "output", type=click.Path(path_type=Path), default=Path("schema_draft.pbtxt"),
              show_default=True, help="Where to write the drafted schema.")
@config_options
def schema(output: Path, **options: Any) -> None:
    """Draft a schema from the data with SchemaGen, to review against pipeline/schema/schema.pbtxt."""
    config = _config_or_exit(options)
    import local_runner

    path = local_runner.draft_schema(config, output.absolute())
    click.echo(f"Draft schema written to {path}; diff it against pipeline/schema/schema.pbtxt and curate.")


DEFAULT_OUTPUT_DIR = PipelineConfig.__dataclass_fields__["output_dir"].default


@main.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="The run's output directory.")
@click.option("--port", type=int, default=6006, show_default=True)
@click.option("--host", default="localhost", show_default=True, help="Interface to serve on (0.0.0.0: all).")
def tensorboard(output_dir: Path, port: int, host: str) -> None:
    """Serve TensorBoard on the Trainer's logs (every training run under OUTPUT_DIR)."""
    import os

    logdir = PipelineConfig(output_dir=output_dir).tensorboard_dir
    if not logdir.is_dir():
        raise click.ClickException(f"no training logs under {logdir}: run the pipeline first")
    os.execvp("tensorboard", ["tensorboard", "--logdir", str(logdir), "--port", str(port), "--host", host])


@main.group()
def kfp() -> None:
    """Kubeflow Pipelines v2: compile the pipeline to a spec, submit the spec to an endpoint."""


@kfp.command("compile")
@click.option("--image", envvar="KFP_IMAGE", required=True,
              help="Container image every step runs in (built from ./Dockerfile). [env: KFP_IMAGE]")
@click.option("--pipeline-root", envvar="KFP_PIPELINE_ROOT", required=True,
              help="URI under which KFP puts the run's artifacts, e.g. gs://bucket/tfx. [env: KFP_PIPELINE_ROOT]")
@click.option("--data-root", envvar="KFP_DATA_ROOT", default=None,
              help="Default of the data_root runtime parameter: a URI of CSV files. "
                   "[default: <pipeline root>/data; env: KFP_DATA_ROOT]")
@click.option("--serving-dir", envvar="KFP_SERVING_DIR", default=None,
              help="URI the Pusher pushes blessed models under. [default: <pipeline root>/serving; env: KFP_SERVING_DIR]")
@click.option("--target", type=click.Choice(["kubeflow", "vertex"]), default="kubeflow", show_default=True,
              help="kubeflow: open-source KFP (no latest-blessed-model baseline); vertex: Vertex AI Pipelines.")
@click.option("--output", "output", type=click.Path(path_type=Path), default=None,
              help="Where to write the spec. [default: <output dir>/kubeflow/<pipeline name>.yaml]")
@config_options
def kfp_compile(image: str, pipeline_root: str, data_root: str | None, serving_dir: str | None, target: str,
                output: Path | None, **options: Any) -> None:
    """Compile the pipeline to a KFP v2 spec (YAML); training settings and Beam options as for `run`."""
    if options.get("data_dir") is not None:
        raise click.UsageError("--data-dir: a Kubeflow run reads --data-root (a URI its pods can reach), "
                               "not a directory of this machine")
    config = _config_or_exit(options)
    from kubeflow import default_spec_path
    from kubeflow import runner  # heavy (TFX, TensorFlow): imported once the options are known to be valid

    try:
        settings = runner.KubeflowSettings(image, pipeline_root, data_root, serving_dir, target)
    except ConfigError as error:
        raise click.UsageError(str(error))
    path = runner.compile_pipeline(config, settings, output or default_spec_path(config.output_dir, config.pipeline_name))
    click.echo(f"Pipeline spec for {target} written to {path}\n  image: {settings.image}\n"
               f"  pipeline root: {settings.pipeline_root}\n  data_root (runtime parameter): {settings.data_root}\n"
               f"  serving dir: {settings.serving_dir}")


@kfp.command("submit")
@click.option("--package", type=click.Path(path_type=Path), default=None,
              help="The compiled spec. [default: <output dir>/kubeflow/<pipeline name>.yaml]")
@click.option("--output-dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
              help="The output directory `kfp compile` wrote to.")
@click.option("--pipeline-name", default=PipelineConfig.__dataclass_fields__["pipeline_name"].default,
              show_default=True, help="The pipeline name it was compiled with (names the default package).")
@click.option("--host", envvar="KFP_HOST", required=True, help="KFP API endpoint, e.g. http://localhost:8080. [env: KFP_HOST]")
@click.option("--token", envvar="KFP_TOKEN", default=None, help="Bearer token for the endpoint. [env: KFP_TOKEN]")
@click.option("--cookies", envvar="KFP_COOKIES", default=None,
              help="Cookie header for the endpoint (multi-user Kubeflow login). [env: KFP_COOKIES]")
@click.option("--namespace", envvar="KFP_NAMESPACE", default=None,
              help="Profile namespace (multi-user Kubeflow). [env: KFP_NAMESPACE]")
@click.option("--experiment", default=None, help="Experiment to run in. [default: the pipeline name]")
@click.option("--run-name", default=None, help="[default: <pipeline name>-<time>]")
@click.option("--data-root", default=None, help="This run's data_root runtime parameter (a URI of CSV files).")
@click.option("--train-steps", type=click.IntRange(min=1), default=None, help="This run's training steps.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Any runtime parameter; repeatable.")
@click.option("--cache/--no-cache", "enable_caching", default=None,
              help="Override the compiled caching setting of every step for this run.")
def kfp_submit(package: Path | None, output_dir: Path, pipeline_name: str, host: str, token: str | None,
               cookies: str | None, namespace: str | None, experiment: str | None, run_name: str | None,
               data_root: str | None, train_steps: int | None, params: tuple[str, ...],
               enable_caching: bool | None) -> None:
    """Upload the compiled spec to a KFP endpoint (a new version if it exists) and start a run."""
    from kubeflow import DATA_ROOT_PARAM, TRAIN_ARGS_PARAM, default_spec_path, train_args_value
    from kubeflow.submit import Endpoint, SubmitError, submit

    arguments: dict[str, Any] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--param: expects NAME=VALUE, got {param!r}")
        arguments[key] = value
    if data_root is not None:
        arguments[DATA_ROOT_PARAM] = data_root
    if train_steps is not None:
        arguments[TRAIN_ARGS_PARAM] = train_args_value(train_steps)
    package = package or default_spec_path(output_dir.absolute(), pipeline_name)
    try:
        done = submit(package, Endpoint(host, token, cookies, namespace), arguments=arguments,
                      experiment=experiment, run_name=run_name, enable_caching=enable_caching)
    except SubmitError as error:
        raise click.ClickException(str(error))
    click.echo(f"Submitted {package}: pipeline {done.pipeline_id}, version {done.version_id}, run {done.run_id}\n"
               f"  {done.run_url}")


def exit_without_teardown(status: Any) -> typing.NoReturn:
    """Exits as `sys.exit(status)` would, without the interpreter's object-by-object teardown of
    TensorFlow, Beam and TFX, which costs 1.5-3 s at the end of every command that loaded them.

    Exit handlers still run (log files, temporary directories) and output is flushed; only
    module teardown is skipped, and nothing this project or TFX writes depends on it.
    """
    if status is None:
        status = 0
    elif not isinstance(status, int):  # sys.exit("message"): printed, status 1
        print(status, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as done:  # click ends every command, success included, with SystemExit
        exit_without_teardown(done.code)
