"""The command-line options every runner shares, and the values they build.

What the pipeline does: one option per PipelineConfig field (and the model's Hyperparameters),
generated from the fields, so every setting has one definition and one flag. Where it runs: the
same spelling on every runner (`--output-dir`, `--data-dir`, `--beam-mode`, `--beam-workers`).
Light to import: nothing here loads TensorFlow, so bad options are refused at once.
"""

import dataclasses
import types
import typing
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import click

from models.hyperparameters import Hyperparameters
from pipeline import metadata
from pipeline.beam import BEAM_MODES, DirectBeam
from pipeline.config import ConfigError, PipelineConfig, option_name
from pipeline.locations import DEFAULT_OUTPUT_DIR, OutputDir, check_data

_NESTED = "hyperparameters"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def config_fields() -> list[dataclasses.Field]:
    """The fields that become options: PipelineConfig's and the Hyperparameters'."""
    top = [f for f in dataclasses.fields(PipelineConfig) if f.name != _NESTED]
    return top + list(dataclasses.fields(Hyperparameters))


def _unoptional(kind: Any) -> Any:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # Optional[X] -> X
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def _click_option(field: dataclasses.Field) -> Callable:
    kind = _unoptional(field.type)
    name = option_name(field.name)
    help_text = field.metadata.get("help", "")
    default = field.default if field.default is not dataclasses.MISSING else None
    if kind is bool:
        flag = f"{name}/--no-{name[2:]}"
        return click.option(flag, field.name, default=None, help=f"{help_text} [default: {default}]")
    if "choices" in field.metadata:
        param_type: Any = click.Choice(field.metadata["choices"])
    elif kind in (int, float, str):
        param_type = kind
    elif typing.get_origin(kind) is tuple:
        param_type = str  # "64,32"
    else:
        raise TypeError(f"no command-line type for {field.name}: {kind}")
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return click.option(name, field.name, type=param_type, default=None, help=f"{help_text} [default: {shown}]")


def apply_options(command: Callable, options: list[Callable]) -> Callable:
    """Decorates `command` with click options, in the order listed (as stacked decorators would)."""
    for option in reversed(options):
        command = option(command)
    return command


def config_options(command: Callable) -> Callable:
    """Adds one option per configuration field to a click command."""
    return apply_options(command, [_click_option(f) for f in config_fields()])


def output_dir_option(command: Callable) -> Callable:
    return click.option(
        "--output-dir", "output_dir", type=click.Path(path_type=Path), default=DEFAULT_OUTPUT_DIR, show_default=True,
        help="All state of local runs: pipeline root, MLMD store, serving models, logs, reports.")(command)


def data_option(command: Callable, help_text: str | None = None, envvar: str | None = None) -> Callable:
    return click.option(
        "--data-dir", "data_dir", default=None, envvar=envvar,
        help=help_text or "Directory of CSV files with the taxi columns (default: the bundled data); a URI "
                          "(gs://...) where the runner's workers read it.")(command)


def beam_options(command: Callable) -> Callable:
    return apply_options(command, [
        click.option("--beam-mode", type=click.Choice(BEAM_MODES), default=None,
                     help="Beam DirectRunner running mode for the Beam-powered components; auto: in_memory for "
                          "small input, multi_processing for large (pipeline.beam.AUTO_MULTI_PROCESSING_BYTES "
                          "of CSV on). [default: auto]"),
        click.option("--beam-workers", type=int, default=None,
                     help="Beam DirectRunner workers when multi_processing (0: one per CPU core). [default: 0]"),
    ])


def metadata_options(command: Callable) -> Callable:
    return apply_options(command, [
        click.option("--metadata-store", "metadata_store", default=None, envvar="MLMD_STORE",
                     help="The MLMD store: an SQLite file, or mysql://USER@HOST[:PORT]/DATABASE (password from "
                          f"${metadata.PASSWORD_ENV} or --metadata-password-file). [default: <output dir>/metadata.sqlite; "
                          "env: MLMD_STORE]"),
        click.option("--metadata-password-file", "metadata_password_file", type=click.Path(path_type=Path),
                     default=None, help="A file only you can read holding the database password. "
                                        f"[env: {metadata.PASSWORD_FILE_ENV}]"),
    ])


PUSHGATEWAY_ENV = "PUSHGATEWAY_URL"


def pushgateway_option(command: Callable) -> Callable:
    return click.option(
        "--pushgateway", "pushgateway", default=None, envvar=PUSHGATEWAY_ENV,
        help="Also push the run's Prometheus metrics (always written to <output dir>/metrics/) to this "
             f"Pushgateway, e.g. http://HOST:9091; unreachable: a warning, the run goes on. [env: {PUSHGATEWAY_ENV}]")(command)


def run_options(command: Callable) -> Callable:
    """What a run on this machine takes: where its state, data and store are, Beam's mode, the config."""
    return output_dir_option(data_option(metadata_options(beam_options(config_options(command)))))


def _split_tuple(field: dataclasses.Field, value: Any) -> tuple:
    (item,) = set(typing.get_args(_unoptional(field.type))) - {Ellipsis}
    if isinstance(value, tuple):
        return value
    try:
        return tuple(item(part.strip()) for part in str(value).split(",") if part.strip())
    except ValueError:
        words = {int: "integers", float: "numbers"}.get(item, "values")
        raise ConfigError(field.name, f"expects comma-separated {words}, got {value!r}") from None


def build_config(options: dict[str, Any]) -> PipelineConfig:
    """A PipelineConfig from the options the user gave; unset options keep their defaults.

    Keys that are not configuration fields (locations, runner settings) are ignored.
    """
    fields = {f.name: f for f in config_fields()}
    given = {k: v for k, v in options.items() if v is not None and k in fields}
    for name, value in given.items():
        if typing.get_origin(_unoptional(fields[name].type)) is tuple:
            given[name] = _split_tuple(fields[name], value)
    hp_names = {f.name for f in dataclasses.fields(Hyperparameters)}
    hp = {k: given.pop(k) for k in list(given) if k in hp_names}
    return PipelineConfig(**given, hyperparameters=Hyperparameters(**hp))


def build_output(options: dict[str, Any]) -> OutputDir:
    return OutputDir(options.get("output_dir") or DEFAULT_OUTPUT_DIR)


def build_data(options: dict[str, Any]) -> str | None:
    """--data-dir checked: a local directory of CSV files, a URI, or None (the bundled data)."""
    return check_data(options.get("data_dir"))


def build_metadata(options: dict[str, Any], output: OutputDir) -> metadata.MetadataStore:
    """--metadata-store: a database store, or an SQLite file (by default the output directory's)."""
    return metadata.parse(options.get("metadata_store"), output.metadata_path, options.get("metadata_password_file"))


def build_pushgateway(options: dict[str, Any]) -> str | None:
    """--pushgateway checked: an http(s) URL with a host, or None."""
    url = options.get("pushgateway") or None
    if url:
        parsed = urllib.parse.urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError("pushgateway", f"expects a Pushgateway URL such as http://HOST:9091, got {url!r}")
    return url


def build_beam(options: dict[str, Any]) -> DirectBeam:
    given = {"mode": options.get("beam_mode"), "workers": options.get("beam_workers")}
    return DirectBeam(**{k: v for k, v in given.items() if v is not None})


def or_usage_error(build: Callable[[], Any]) -> Any:
    """`build()`, with a ConfigError turned into click's usage error (exit status 2, option named)."""
    try:
        return build()
    except ConfigError as error:
        raise click.UsageError(str(error))
