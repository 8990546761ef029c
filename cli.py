"""The project's command line: `python -m cli run | schema | tensorboard | lineage ...` (make calls these).

Options are generated from PipelineConfig's fields (and the model's Hyperparameters), so every
setting has one definition and one flag.
"""

import dataclasses
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
@config_options
def run(**options: Any) -> None:
    """Run the pipeline end to end on this machine (LocalDagRunner)."""
    config = _config_or_exit(options)
    import local_runner  # heavy (TFX, TensorFlow): imported once the options are known to be valid

    local_runner.run(config)


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


if __name__ == "__main__":
    sys.exit(main())
