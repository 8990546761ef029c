"""`--profile spark` on a real Spark standalone cluster that the tests start (tools/cluster.sh) on
127.0.0.1 with their own ports and run directory, and stop afterwards.

The cluster is Spark 3.5.7 from PyPI's pyspark distribution, a master and two one-core workers;
Beam's Spark job server is the one `make test` fetches (`tools/cluster.sh spark fetch`: Beam's
modules from Maven on that same Spark's jars). Nothing is mocked.

Cost: the default tier about 20 s; the slow tier 19 min on a 2-core machine at load 10-13 (the
cluster's start, the direct run shared with tests/test_flink_cluster.py, the Spark run).
"""

import json
import os
from collections import Counter
import subprocess
import urllib.request

import pytest

from pipeline import beam
from tests.cluster_runs import (BEAM_STAGES, assert_same_as_direct, beam_runner, direct_sample_run,  # noqa: F401
                                free_port)
from tests.conftest import REPO, SMALL_RUN


def test_spark_profile_on_this_machine_uses_loopback_and_the_cached_job_server():
    args = beam.profile_args("spark", beam.RunnerSettings(spark_master="spark://127.0.0.1:7077"))
    assert "--runner=SparkRunner" in args and "--environment_type=LOOPBACK" in args
    assert "--spark_master_url=spark://127.0.0.1:7077" in args
    assert f"--spark_job_server_jar={beam.spark_job_server_jar()}" in args  # never a download
    assert "--job_server_jvm_property=-Dspark.driver.host=127.0.0.1" in args
    with pytest.raises(beam.ProfileError, match="needs --image with --environment-type DOCKER"):
        beam.profile_args("spark", beam.RunnerSettings(spark_master="spark://spark.example:7077"))


def test_an_unreachable_master_fails_before_any_component_runs_naming_the_address(tmp_path):
    port = free_port()  # nothing listens there
    out = tmp_path / "out"
    result = beam_runner("--profile", "spark", "--spark-master", f"spark://127.0.0.1:{port}", "--output-dir", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Spark master spark://127.0.0.1:{port} does not answer" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (out / "metadata.sqlite").exists()  # nothing ran, no store was made

    check = beam_runner("--profile", "spark", "--spark-master", f"spark://127.0.0.1:{port}", "--check")
    assert check.returncode == 1
    lines = check.stdout.strip().splitlines()
    assert lines[0].startswith(f"NO  Spark master spark://127.0.0.1:{port} does not answer"), check.stdout
    assert len(lines) == 3, check.stdout  # master, jar, Java: no version to judge
    assert lines[1].startswith("ok  Beam job server jar") and lines[2].startswith("ok  Java:"), check.stdout

    wrong = beam_runner("--profile", "spark", "--spark-master", "127.0.0.1:7077", "--check")
    assert wrong.returncode == 1 and "is not spark://host:port" in wrong.stdout, wrong.stdout


# --- on a real cluster (slow) ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A master and two workers on free ports; yields (master URL, web UI); always stopped."""
    run_dir = tmp_path_factory.mktemp("spark-run")
    env = dict(os.environ, SPARK_MASTER_PORT=str(free_port()), SPARK_MASTER_WEBUI_PORT=str(free_port()),
               SPARK_RUN_DIR=str(run_dir))
    try:
        up = subprocess.run(["bash", "tools/cluster.sh", "spark", "up"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        yield f"spark://127.0.0.1:{env['SPARK_MASTER_PORT']}", f"http://127.0.0.1:{env['SPARK_MASTER_WEBUI_PORT']}"
    finally:
        subprocess.run(["bash", "tools/cluster.sh", "spark", "down"], cwd=REPO, env=env, capture_output=True,
                       timeout=300)


WANTED = tuple(f'{{"Event":"{name}"' for name in ("SparkListenerApplicationStart", "SparkListenerTaskEnd"))


def tasks_by_executor(events) -> dict[str, tuple[Counter, Counter]]:
    """Application id -> (successful tasks, other task ends) per executor id, from Spark's event logs."""
    found = {}
    for log in events.iterdir():
        app, done, failed = None, Counter(), Counter()
        with log.open() as lines:  # line by line: Transform's log alone is about 240 MB
            found_events = [json.loads(line) for line in lines if line.startswith(WANTED)]
        for event in found_events:
            if event["Event"] == "SparkListenerApplicationStart":
                app = event["App ID"]
            elif event["Event"] == "SparkListenerTaskEnd":
                ok = event["Task End Reason"]["Reason"] == "Success"
                (done if ok else failed)[event["Task Info"]["Executor ID"]] += 1
        found[app] = (done, failed)
    return found


def web_json(url: str):
    with urllib.request.urlopen(f"{url}/json/", timeout=10) as answer:
        return json.load(answer)


@pytest.mark.slow
def test_check_says_the_cluster_can_take_a_run(spark_cluster):
    master, ui = spark_cluster
    check = beam_runner("--profile", "spark", "--spark-master", master, "--spark-web-ui", ui, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("ok ") for line in lines), check.stdout
    assert f"Spark {beam.spark_version()}" in lines[0]


@pytest.mark.slow
@pytest.mark.e2e
def test_the_pipeline_runs_on_the_cluster_as_on_the_direct_runner(spark_cluster, direct_sample_run, tmp_path):
    master, ui = spark_cluster
    data, direct_out = direct_sample_run
    spark_out, events = tmp_path / "spark", tmp_path / "spark-events"
    events.mkdir()
    # Spark's own event logs, written by the job server (the driver), say which executor ran each task.
    event_log = [f"--beam-arg=--job_server_jvm_property={p}"
                 for p in ("-Dspark.eventLog.enabled=true", f"-Dspark.eventLog.dir=file://{events}")]
    ran = beam_runner("--profile", "spark", "--spark-master", master, "--spark-web-ui", ui, *event_log,
                      "--output-dir", str(spark_out), "--data-dir", str(data), *SMALL_RUN, timeout=2400)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    # The same product as `make run`: progress lines, summary, report.
    assert "] CsvExampleGen" in ran.stdout and "Model blessed:" in ran.stdout and "Report:" in ran.stdout

    # The master's own account: one finished Beam application per Beam stage, each using both
    # workers' cores, and each worker ran an executor of every one of them.
    state = web_json(ui)
    apps = state["completedapps"]
    assert len(apps) >= len(BEAM_STAGES), apps
    assert all(app["state"] == "FINISHED" and app["name"].startswith("BeamApp") for app in apps), apps
    assert all(app["cores"] == 2 for app in apps), apps
    assert len(state["workers"]) == 2
    for worker in state["workers"]:
        ran_for = {e["appid"] for e in web_json(worker["webuiaddress"])["finishedexecutors"]}
        assert ran_for == {app["id"] for app in apps}, (worker["id"], ran_for)
    # ... and both executors of every application (one per worker) ran tasks of it, all successful.
    tasks = tasks_by_executor(events)
    assert set(tasks) == {app["id"] for app in apps}, (sorted(tasks), apps)
    for app, (done, failed) in tasks.items():
        assert len(done) == 2 and all(n > 0 for n in done.values()) and not failed, (app, done, failed)
    assert_same_as_direct(spark_out, direct_out)
