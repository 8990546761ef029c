"""Runs the pipeline with TFX's BeamDagRunner; the Beam-powered components run where a profile says.

The pipeline is pipeline.create_pipeline, as for every runner; this file only picks the Beam
runner for ExampleGen, StatisticsGen, Transform and Evaluator (their `beam_pipeline_args`):

    direct      DirectRunner's FnApiRunner, in_memory, one worker (small data)
    direct-mp   the same, multi_processing with --workers N (0: one per core)
    auto        direct or direct-mp chosen by input size (PipelineConfig --beam-mode auto)
    flink       FlinkRunner on a Flink cluster (--flink-master), workers in --image
    spark       PortableRunner on a Spark job server (--job-endpoint), workers in --image
    dataflow    Google Cloud Dataflow (--project, --region, --temp-location gs://...), workers in --image

Only the direct profiles (and auto) can run on this machine (no cluster, no network); the others
produce complete option lists, checked by Beam's own PipelineOptions parsing (and, for Dataflow,
Beam's PipelineOptionsValidator), which `--print-options` shows without running anything. On a
cluster the pipeline root and data must be where the workers can read them (`--pipeline-root
gs://...`, `--data-dir gs://...`), and the workers need the project's code: its image (built
from ./Dockerfile) is the worker environment.

    python beam_runner.py --profile direct-mp --workers 2 --output-dir /tmp/taxi [any `cli run` option]
    python beam_runner.py --profile dataflow --project p --region europe-west1 \\
        --temp-location gs://b/tmp --image REGISTRY/tfx-taxi:TAG --print-options
"""

import dataclasses
import sys
from pathlib import Path
from typing import Any

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
import click

from pipeline.config import ConfigError, PipelineConfig


class ProfileError(ValueError):
    """A profile's options are incomplete or not Beam options."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """A Beam runner as data: its fixed flags, the settings it needs, and whether it runs here."""

    name: str
    description: str
    flags: tuple[str, ...]  # fixed Beam flags
    settings: tuple[str, ...] = ()  # RunnerSettings fields that become flags, e.g. "job_endpoint"
    required: tuple[str, ...] = ()  # of those, the ones without which the profile cannot run
    runs_here: bool = False
    # The direct profiles: Beam flags from PipelineConfig.beam_args, as `run --beam-mode` gives them.
    beam_mode: str | None = None


# RunnerSettings field -> Beam flag.
SETTING_FLAGS = {
    "flink_master": "--flink_master",
    "job_endpoint": "--job_endpoint",
    "environment_type": "--environment_type",
    "image": "--environment_config",
    "parallelism": "--parallelism",
    "project": "--project",
    "region": "--region",
    "temp_location": "--temp_location",
}

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("auto", "direct or direct-mp by input size (--beam-mode auto)", (), runs_here=True,
                beam_mode="auto"),
        Profile("direct", "in-process FnApiRunner, one worker", (), runs_here=True, beam_mode="in_memory"),
        Profile("direct-mp", "FnApiRunner with N worker processes on this machine", (),
                runs_here=True, beam_mode="multi_processing"),
        Profile("flink", "a Flink cluster; SDK workers run the project's image",
                ("--runner=FlinkRunner",), ("flink_master", "environment_type", "image", "parallelism"),
                ("flink_master", "image")),
        Profile("spark", "a Spark cluster through its portable job server; SDK workers run the project's image",
                ("--runner=PortableRunner",), ("job_endpoint", "environment_type", "image"),
                ("job_endpoint", "image")),
        Profile("dataflow", "Google Cloud Dataflow; workers run the project's image",
                ("--runner=DataflowRunner",), ("project", "region", "temp_location", "image"),
                ("project", "region", "temp_location", "image")),
    )
}


@dataclasses.dataclass(frozen=True)
class RunnerSettings:
    """The values a profile's settings are filled from (command-line flags)."""

    workers: int = 0
    flink_master: str | None = None
    job_endpoint: str | None = None
    environment_type: str = "DOCKER"
    image: str | None = None
    parallelism: int | None = None
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    extra: tuple[str, ...] = ()  # any further Beam flags, passed through


def beam_args(profile: str, settings: RunnerSettings, config: PipelineConfig | None = None) -> list[str]:
    """The Beam flags of a profile, checked by Beam's own option parsing; raises ProfileError."""
    if profile not in PROFILES:
        raise ProfileError(f"--profile: unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    chosen = PROFILES[profile]
    config = config or PipelineConfig()
    if chosen.beam_mode == "auto":
        args = list(config.beam_args)
    elif chosen.beam_mode:
        workers = settings.workers if chosen.beam_mode == "multi_processing" else 0
        args = list(config.replace(beam_mode=chosen.beam_mode, beam_workers=workers).beam_args)
    else:
        missing = [name for name in chosen.required if getattr(settings, name) in (None, "")]
        if missing:
            raise ProfileError(
                f"profile {profile} needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        args = list(chosen.flags)
        for name in chosen.settings:
            value = getattr(settings, name)
            if value is not None:
                args.append(f"{SETTING_FLAGS[name]}={value}")
        if chosen.name == "dataflow":
            # Dataflow takes the worker image as --sdk_container_image, not --environment_config.
            args = [a.replace("--environment_config=", "--sdk_container_image=") for a in args]
    args += list(settings.extra)
    validate(args)
    return args


def validate(args: list[str]) -> None:
    """Raises ProfileError unless Beam's PipelineOptions knows every flag and (Dataflow) accepts them."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(args)
    known = options.get_all_options()
    everything = options.get_all_options(retain_unknown_options=True)
    unknown = sorted(set(everything) - set(known))
    if unknown:
        raise ProfileError(f"not Beam pipeline options: {', '.join('--' + u for u in unknown)}")
    if options.view_as(StandardOptions).runner == "DataflowRunner":
        # Beam's own checks, the ones that need no network (its full validate() looks buckets up).
        from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions
        from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator

        validator = PipelineOptionsValidator(options, None)
        cloud = options.view_as(GoogleCloudOptions)
        errors = validator.validate_cloud_options(cloud) + validator.validate_gcs_path(cloud, "temp_location")
        errors += validator.validate_sdk_container_image_options(options.view_as(WorkerOptions))
        if errors:
            raise ProfileError("Dataflow options refused by Beam: " + "; ".join(e.strip() for e in errors))


def runs_here(profile: str) -> bool:
    return PROFILES[profile].runs_here


def run(config: PipelineConfig, profile: str, settings: RunnerSettings, pipeline_root: str | None = None,
        data_dir: str | None = None) -> None:
    """Runs the pipeline with BeamDagRunner; the Beam-powered components use the profile's runner."""
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    from data import taxi
    from data.validate import check_csv_dir
    from local_runner import stage_schema
    from pipeline import local_beam, run_state
    from pipeline.pipeline import create_pipeline, schema_columns

    args = beam_args(profile, settings, config)
    if not runs_here(profile):
        raise ProfileError(f"profile {profile} needs a cluster this machine does not have; "
                           "--print-options shows its options")
    data = data_dir or config.data_dir or taxi.materialize()
    if "://" not in str(data):  # local files: the same pre-checks as local runs
        check_csv_dir(Path(data), schema_columns())
    with run_state.guarded(config.output_dir, config.metadata_path):  # as local runs
        pipeline = create_pipeline(
            config,
            data,
            stage_schema(config),
            pipeline_root=pipeline_root,
            beam_pipeline_args=args,
        )
        with local_beam.without_tfx_sdist(args):
            BeamDagRunner().run(pipeline)


def _settings_options(command):
    options = [
        click.option("--profile", type=click.Choice(list(PROFILES)), default="auto", show_default=True,
                     help="Where the Beam-powered components run."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="direct-mp: worker processes (0: one per core)."),
        click.option("--flink-master", default=None, help="flink: host:port of the Flink REST endpoint."),
        click.option("--job-endpoint", default=None, help="spark: host:port of the Beam Spark job server."),
        click.option("--environment-type", type=click.Choice(["DOCKER", "EXTERNAL", "PROCESS", "LOOPBACK"]),
                     default="DOCKER", show_default=True, help="flink/spark: how SDK workers start."),
        click.option("--image", default=None,
                     help="flink/spark/dataflow: the worker image (built from ./Dockerfile; "
                          "or the worker pool address with --environment-type EXTERNAL)."),
        click.option("--parallelism", type=int, default=None, help="flink: default parallelism."),
        click.option("--project", default=None, help="dataflow: Google Cloud project id."),
        click.option("--region", default=None, help="dataflow: region, e.g. europe-west1."),
        click.option("--temp-location", default=None, help="dataflow: gs:// path for temporary files."),
        click.option("--beam-arg", "extra", multiple=True, help="Any further Beam flag; repeatable."),
        click.option("--pipeline-root", default=None,
                     help="Where artifacts go when the workers cannot see --output-dir (e.g. gs://...)."),
        click.option("--data-uri", default=None,
                     help="Where the CSV files are when the workers cannot see --data-dir (e.g. gs://...)."),
        click.option("--print-options", is_flag=True, default=False,
                     help="Print the profile's Beam options and exit."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _main_command():
    import cli  # the `run` options, generated from PipelineConfig

    @click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @_settings_options
    @cli.config_options
    def main(profile: str, pipeline_root: str | None, data_uri: str | None, print_options: bool,
             **options: Any) -> None:
        """Run the pipeline with TFX's BeamDagRunner, the Beam-powered components on a runner profile."""
        names = {f.name for f in dataclasses.fields(RunnerSettings)}
        settings = RunnerSettings(**{k: (tuple(v) if k == "extra" else v)
                                     for k, v in options.items() if k in names})
        config_options = {k: v for k, v in options.items() if k not in names}
        try:
            config = cli.build_config(config_options)
            args = beam_args(profile, settings, config)
        except (ConfigError, ProfileError) as error:
            raise click.UsageError(str(error))
        if print_options:
            click.echo(" ".join(args))
            return
        from data.validate import DataError
        from pipeline.run_state import RunLocked

        try:
            run(config, profile, settings, pipeline_root, data_uri)
        except ProfileError as error:
            raise click.UsageError(str(error))
        except (DataError, RunLocked) as error:
            raise click.ClickException(str(error))
        click.echo(f"Done: BeamDagRunner, profile {profile} ({' '.join(args)}); MLMD store {config.metadata_path}")

    return main


if __name__ == "__main__":
    sys.exit(_main_command()())
