"""Runs the pipeline with TFX's BeamDagRunner; the Beam-powered components run where a profile says.

This runner only decides where things live and which orchestrator runs the graph; the profiles
(direct, direct-mp, auto, flink, spark, dataflow) are pipeline/beam.py, the pipeline is
pipeline.create_pipeline, and the checks, console, summary and report are runs.execute, as for
`make run`. The direct profiles (and auto) run on this machine, and so do flink on a Flink
session cluster and spark on a Spark standalone master (`make flink-up`/`make spark-up` start one
here; `--check` asks it, before anything runs, whether it can take the run); the others produce complete option lists, checked by Beam's own parsing,
which `--print-options` shows without running anything. On a cluster the pipeline root and data must be where the workers can read them
(`--pipeline-root gs://...`, `--data-dir gs://...`), and the workers need the project's code: its
image (built from ./Dockerfile) is the worker environment.

    python beam_runner.py --profile direct-mp --beam-workers 2 --output-dir /tmp/taxi [any `cli run` option]
    python beam_runner.py --profile flink --flink-master localhost:8081 --check
    python beam_runner.py --profile spark --spark-master spark://127.0.0.1:7077 --check
    python beam_runner.py --profile dataflow --project p --region europe-west1 \\
        --temp-location gs://b/tmp --image REGISTRY/tfx-taxi:TAG --print-options
"""

import dataclasses
from typing import Any

import models  # noqa: F401  (sets the Keras choice before TensorFlow is imported)
import click

from pipeline.beam import (PROFILES, ProfileError, RunnerSettings, flink_preflight, profile_args, runs_here,
                           spark_preflight)
from runs import options as run_options


def locations(output, data: str | None, beam_args: list[str], pipeline_root: str | None, metadata=None):
    """Under the output directory, but for the pipeline root a cluster's workers can read and a
    shared MLMD store if given."""
    from pipeline.locations import Locations
    from pipeline.schemas import CURATED_SCHEMA

    where = Locations.under(output, data, CURATED_SCHEMA, beam_args, metadata)
    return where.replace(pipeline_root=pipeline_root) if pipeline_root else where


def orchestrate(pipeline) -> None:
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    from upstream import workarounds

    args = pipeline.beam_pipeline_args
    with workarounds.without_tfx_sdist(args), workarounds.loopback_worker_ids_shared(args):
        BeamDagRunner().run(pipeline)


def _settings_options(command):
    return run_options.apply_options(command, [
        click.option("--profile", type=click.Choice(list(PROFILES)), default="auto", show_default=True,
                     help="Where the Beam-powered components run."),
        click.option("--flink-master", default=None, help="flink: host:port of the Flink REST endpoint."),
        click.option("--spark-master", default=None, help="spark: the standalone master, spark://host:port."),
        click.option("--spark-web-ui", default=None,
                     help="spark: the master's web UI, for --check [default: port 8080 on the master's host]."),
        click.option("--environment-type", type=click.Choice(["DOCKER", "EXTERNAL", "PROCESS", "LOOPBACK"]),
                     default=None, help="flink/spark: how SDK workers start [default: LOOPBACK for a master "
                                        "on this machine, else DOCKER]."),
        click.option("--image", default=None,
                     help="flink/spark/dataflow: the worker image (built from ./Dockerfile; "
                          "or the worker pool address with --environment-type EXTERNAL)."),
        click.option("--parallelism", type=int, default=None,
                     help="flink: default parallelism [default: 2 on a local cluster, else the cluster's]."),
        click.option("--project", default=None, help="dataflow: Google Cloud project id."),
        click.option("--region", default=None, help="dataflow: region, e.g. europe-west1."),
        click.option("--temp-location", default=None, help="dataflow: gs:// path for temporary files."),
        click.option("--beam-arg", "extra", multiple=True, help="Any further Beam flag; repeatable."),
        click.option("--pipeline-root", default=None,
                     help="Where artifacts go when the workers cannot see --output-dir (e.g. gs://...)."),
        click.option("--print-options", is_flag=True, default=False,
                     help="Print the profile's Beam options and exit."),
        click.option("--check", is_flag=True, default=False,
                     help="flink/spark: say whether the master answers with a version the job server takes, "
                          "the job server jar and Java are present; run nothing."),
    ])


@click.command(context_settings=run_options.CONTEXT)
@click.option("--verbose", "-v", is_flag=True, default=False, help="Show every log line on the console too.")
@click.option("--report/--no-report", "write_report", default=True, show_default=True,
              help="Write the run report (HTML and Markdown) under <output dir>/reports/ at the end.")
@_settings_options
@run_options.pushgateway_option
@run_options.run_options
def main(verbose: bool, write_report: bool, profile: str, pipeline_root: str | None, print_options: bool,
         check: bool, spark_web_ui: str | None, **options: Any) -> None:
    """Run the pipeline with TFX's BeamDagRunner, the Beam-powered components on a runner profile."""
    names = {f.name for f in dataclasses.fields(RunnerSettings)}
    settings = RunnerSettings(**{k: (tuple(v) if k == "extra" else v) for k, v in options.items() if k in names})
    config, output, data, beam = run_options.or_usage_error(lambda: (
        run_options.build_config(options), run_options.build_output(options), run_options.build_data(options),
        run_options.build_beam(options)))
    store = run_options.or_usage_error(lambda: run_options.build_metadata(options, output))
    pushgateway = run_options.or_usage_error(lambda: run_options.build_pushgateway(options))
    try:
        args = profile_args(profile, settings, beam, data)
    except ProfileError as error:
        raise click.UsageError(str(error))
    if print_options:
        click.echo(" ".join(args))
        return
    if check or profile in ("flink", "spark"):
        if profile not in ("flink", "spark"):
            raise click.UsageError(f"--check: profile {profile} has no cluster to check (flink and spark have)")
        pool = settings.image if settings.environment_type == "EXTERNAL" else None
        checks = (flink_preflight(settings.flink_master, pool) if profile == "flink"
                  else spark_preflight(settings.spark_master, spark_web_ui))
        if check:
            for each in checks:
                click.echo(f"{'ok ' if each.ok else 'NO '} {each.line}")
            raise SystemExit(0 if all(c.ok for c in checks) else 1)
        failed = [c.line for c in checks if not c.ok]
        if failed:  # before any component runs, naming the address
            click.echo(f"error: profile {profile} cannot run: {failed[0]}", err=True)
            raise SystemExit(1)
    if not runs_here(profile):
        raise click.UsageError(f"profile {profile} needs a cluster this machine does not have; "
                               "--print-options shows its options")
    from runs.console import heavy_imports
    from runs.errors import failures_told

    with failures_told():
        store.check(write=True)
    with heavy_imports(output.log_dir, verbose) as log_file:
        from runs import execute
    with failures_told():
        execute.run(config, output, locations(output, data, args, pipeline_root, store), orchestrate, verbose,
                    write_report, log_file, pushgateway)


if __name__ == "__main__":
    from upstream.workarounds import exit_without_teardown

    try:
        main()
    except SystemExit as done:  # click ends every command, success included, with SystemExit
        exit_without_teardown(done.code)
