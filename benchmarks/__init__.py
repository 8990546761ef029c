"""Benchmarks: scripts that print measured figures (never timed tests). See the README's make targets."""

from pathlib import Path


def latest_outputs(output_dir: Path, *wanted: tuple[str, str]) -> list:
    """[the latest run under a `make run` OUTPUT_DIR, then its artifact for each (node, output key)],
    for the benchmarks that measure a run's outputs; a click error says what to run first."""
    import click

    from pipeline.config import PipelineConfig
    from pipeline.locations import OutputDir
    from runs.execute import latest_run

    output = OutputDir(output_dir)
    if not output.metadata_path.is_file():
        raise click.ClickException(f"no MLMD store at {output.metadata_path}: run `make run OUTPUT_DIR={output_dir}` first")
    run = latest_run(output, PipelineConfig().pipeline_name)
    found = [run.output(node, key) for node, key in wanted]
    if None in found:
        missing = ", ".join(f"{node}'s {key}" for (node, key), a in zip(wanted, found) if a is None)
        raise click.ClickException(f"run {run.run_id} has no {missing}; run `make run` to completion first")
    return [run, *found]
