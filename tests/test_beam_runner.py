"""beam_runner.py: runner profiles as Beam options, the automatic running mode, a BeamDagRunner run."""

import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import (
    DirectOptions, FlinkRunnerOptions, GoogleCloudOptions, PipelineOptions, PortableOptions, StandardOptions,
    SparkRunnerOptions, WorkerOptions,
)

from data import taxi
from pipeline import beam
from pipeline.beam import DirectBeam
from tests.conftest import REPO, SMALL_RUN, latest_summary

Settings = beam.RunnerSettings


def options(profile, settings=Settings(), direct=None):
    return PipelineOptions(beam.profile_args(profile, settings, direct))


def test_direct_profiles_run_the_fnapi_runner_in_memory_or_on_n_processes():
    direct = options("direct")
    assert direct.view_as(StandardOptions).runner == "FnApiRunner"  # never Prism (a download)
    assert direct.view_as(DirectOptions).direct_running_mode == "in_memory"
    mp = options("direct-mp", direct=beam.DirectBeam("auto", 3)).view_as(DirectOptions)  # --beam-workers 3
    assert (mp.direct_running_mode, mp.direct_num_workers) == ("multi_processing", 3)
    assert options("direct-mp").view_as(DirectOptions).direct_num_workers >= 1  # 0: one per core


def test_cluster_profiles_give_complete_parseable_options():
    flink = options("flink", Settings(flink_master="flink:8081", image="reg/tfx-taxi:1", parallelism=4))
    assert flink.view_as(StandardOptions).runner == "FlinkRunner"
    assert flink.view_as(FlinkRunnerOptions).flink_master == "flink:8081"
    assert flink.view_as(PortableOptions).environment_config == "reg/tfx-taxi:1"
    spark = options("spark", Settings(spark_master="spark://spark:7077", image="reg/tfx-taxi:1"))
    assert spark.view_as(StandardOptions).runner == "SparkRunner"
    assert spark.view_as(SparkRunnerOptions).spark_master_url == "spark://spark:7077"
    assert spark.view_as(PortableOptions).environment_type == "DOCKER"
    dataflow = options("dataflow", Settings(project="my-project", region="europe-west1",
                                            temp_location="gs://bucket/tmp", image="reg/tfx-taxi:1"))
    cloud = dataflow.view_as(GoogleCloudOptions)
    assert (cloud.project, cloud.region, cloud.temp_location) == ("my-project", "europe-west1", "gs://bucket/tmp")
    assert dataflow.view_as(WorkerOptions).sdk_container_image == "reg/tfx-taxi:1"
    assert beam.runs_here("flink")  # on a Flink cluster it reaches (tests/test_flink_cluster.py)
    assert beam.runs_here("spark")  # the same (tests/test_spark_cluster.py)
    assert not beam.runs_here("dataflow")


@pytest.mark.parametrize(
    ("profile", "settings", "message"),
    [
        ("spark", Settings(image="i"), "needs --spark-master"),
        ("flink", Settings(), "needs --flink-master"),
        ("flink", Settings(flink_master="flink:8081"), "needs --image with --environment-type DOCKER"),
        ("dataflow", Settings(project="my-project", region="r", temp_location="/tmp/x", image="i"), "Invalid GCS path"),
        ("dataflow", Settings(project="123", region="r", temp_location="gs://bucket/t", image="i"), "Invalid Project ID"),
        ("direct", Settings(extra=("--no_such_option=1",)), "not Beam pipeline options: --no_such_option"),
        ("prism", Settings(), "unknown profile"),
    ],
)
def test_incomplete_or_unknown_options_are_refused(profile, settings, message):
    with pytest.raises(beam.ProfileError, match=message):
        beam.profile_args(profile, settings)


def test_extra_beam_flags_pass_through_checked():
    args = beam.profile_args("direct", Settings(extra=("--direct_embed_docker_python",)))
    assert args[-1] == "--direct_embed_docker_python"


def test_auto_mode_is_in_memory_for_small_input_and_multi_processing_for_large(tmp_path, monkeypatch):
    data = str(taxi.write_sample(tmp_path / "data", rows=50))
    assert DirectBeam().resolved_mode(None) == "in_memory"  # the bundled data
    assert DirectBeam().resolved_mode(data) == "in_memory"
    monkeypatch.setattr(beam, "AUTO_MULTI_PROCESSING_BYTES", 100)
    large = DirectBeam(workers=2)
    assert large.resolved_mode(data) == "multi_processing"
    assert "--direct_num_workers=2" in large.args(data)
    # An explicit mode wins over the size.
    assert DirectBeam("in_memory").args(data)[1:] == ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    assert beam.profile_args("auto", Settings(), large, data) == large.args(data)


def test_auto_mode_measures_the_newest_span_of_a_span_layout(tmp_path, monkeypatch):
    data = tmp_path / "spans"
    taxi.write_sample(data / "span-1", rows=400)
    taxi.write_sample(data / "span-2", rows=20)
    newest = sum(p.stat().st_size for p in (data / "span-2").glob("*.csv"))
    assert beam.input_bytes(str(data)) == newest > 0
    monkeypatch.setattr(beam, "AUTO_MULTI_PROCESSING_BYTES", newest)
    assert DirectBeam().resolved_mode(str(data)) == "multi_processing"


def test_the_profile_reaches_the_pipeline(tmp_path):
    import beam_runner
    from pipeline.config import PipelineConfig
    from pipeline.locations import OutputDir
    from pipeline.pipeline import create_pipeline

    args = beam.profile_args("direct-mp", Settings(), beam.DirectBeam("auto", 2))
    where = beam_runner.locations(OutputDir(tmp_path), str(tmp_path), args, None)
    assert create_pipeline(PipelineConfig(), where).beam_pipeline_args == args
    remote = beam_runner.locations(OutputDir(tmp_path), "gs://b/data", args, "gs://b/root")
    assert create_pipeline(PipelineConfig(), remote).pipeline_info.pipeline_root == "gs://b/root"


def test_print_options_runs_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "beam_runner.py", "--profile", "spark", "--spark-master", "spark://js:7077", "--image", "img:1",
         "--output-dir", str(tmp_path / "out"), "--print-options"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["--runner=SparkRunner", "--spark_version=3",
                                     f"--spark_job_server_jar={beam.spark_job_server_jar()}",
                                     "--spark_master_url=spark://js:7077", "--environment_type=DOCKER",
                                     "--environment_config=img:1"]
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_beam_dag_runner_runs_the_pipeline_on_a_small_sample(tmp_path):
    data = taxi.write_sample(tmp_path / "data", rows=400)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "beam_runner.py", "--profile", "direct", "--output-dir", str(out), "--data-dir", str(data),
         *SMALL_RUN], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    # The same product as `make run`: progress lines, the summary, the report.
    assert "] CsvExampleGen" in result.stdout and "] TFLiteExport" in result.stdout, result.stdout
    assert "Model blessed:" in result.stdout and "Report:" in result.stdout, result.stdout
    assert list((out / "reports").glob("run-*/report.html")), "no report written"
    run = latest_summary(out)
    assert run.state == "COMPLETE"
    states = run.states()
    for node in ("CsvExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert states.get(node) == "COMPLETE", states
    assert run.output("Trainer", "model") is not None
