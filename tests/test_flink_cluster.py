"""`--profile flink` on a real Flink session cluster that the tests start (tools/cluster.sh) on
127.0.0.1 with their own ports and run directory, and stop afterwards.

The cluster is Flink 1.19.3 from PyPI's distribution, two TaskManagers of one slot each; Beam's job
server is the one .ci/run fetches with Maven (`tools/cluster.sh flink fetch`). Nothing is mocked.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline import beam
from tests.cluster_runs import (BEAM_STAGES, assert_same_as_direct, beam_runner, direct_sample_run,  # noqa: F401
                                free_port)
from tests.conftest import REPO, SMALL_RUN, latest_summary


def test_flink_profile_on_this_machine_uses_loopback_both_slots_and_the_cached_job_server():
    args = beam.profile_args("flink", beam.RunnerSettings(flink_master="localhost:8081"))
    assert "--environment_type=LOOPBACK" in args and "--parallelism=2" in args
    assert "--flink_version=1.19" in args  # the job server's Flink, one Beam 2.77 accepts
    assert f"--flink_job_server_jar={beam.flink_job_server_jar()}" in args  # never a download
    with pytest.raises(beam.ProfileError, match="needs --image with --environment-type DOCKER"):
        beam.profile_args("flink", beam.RunnerSettings(flink_master="flink.example:8081"))


def test_an_unreachable_master_fails_before_any_component_runs_naming_the_address(tmp_path):
    port = free_port()  # nothing listens there
    out = tmp_path / "out"
    result = beam_runner("--profile", "flink", "--flink-master", f"127.0.0.1:{port}", "--output-dir", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"http://127.0.0.1:{port} does not answer" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (out / "metadata.sqlite").exists()  # nothing ran, no store was made

    check = beam_runner("--profile", "flink", "--flink-master", f"127.0.0.1:{port}", "--check")
    assert check.returncode == 1
    assert f"NO  Flink master http://127.0.0.1:{port} does not answer" in check.stdout, check.stdout
    assert len(check.stdout.strip().splitlines()) == 3, check.stdout  # master, jar, Java: no version to judge


def test_check_names_an_sdk_worker_pool_that_does_not_answer():
    pool = f"127.0.0.1:{free_port()}"  # nothing listens there
    check = beam_runner("--profile", "flink", "--flink-master", f"127.0.0.1:{free_port()}",
                        "--environment-type", "EXTERNAL", "--image", pool, "--check")
    assert check.returncode == 1
    assert f"NO  SDK worker pool {pool} does not answer" in check.stdout, check.stdout
    assert len(check.stdout.strip().splitlines()) == 4, check.stdout  # master, jar, pool, Java


# --- on a real cluster (slow) ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    """A JobManager, two TaskManagers and the SDK worker pool on free ports; yields tools/cluster.sh's
    environment for them (ports, run directory); always stopped."""
    run_dir = tmp_path_factory.mktemp("flink-run")
    env = dict(os.environ, FLINK_REST_PORT=str(free_port()), FLINK_RPC_PORT=str(free_port()),
               FLINK_WORKER_POOL_PORT=str(free_port()), FLINK_RUN_DIR=str(run_dir))
    try:
        up = subprocess.run(["bash", "tools/cluster.sh", "flink", "up"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        yield env
    finally:
        subprocess.run(["bash", "tools/cluster.sh", "flink", "down"], cwd=REPO, env=env, capture_output=True,
                       timeout=300)


@pytest.fixture(scope="module")
def flink_cluster(cluster_env):
    """The cluster's REST address."""
    return f"127.0.0.1:{cluster_env['FLINK_REST_PORT']}"


def rest(master: str, path: str):
    with urllib.request.urlopen(f"http://{master}{path}", timeout=10) as answer:
        return json.load(answer)


@pytest.mark.slow
def test_check_says_the_cluster_can_take_a_run(cluster_env, flink_cluster):
    check = beam_runner("--profile", "flink", "--flink-master", flink_cluster, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("ok ") for line in lines), check.stdout
    assert "Flink 1.19." in lines[0]
    pool = f"127.0.0.1:{cluster_env['FLINK_WORKER_POOL_PORT']}"  # the pool `flink up` started
    with_pool = beam_runner("--profile", "flink", "--flink-master", flink_cluster, "--environment-type", "EXTERNAL",
                            "--image", pool, "--check")
    assert with_pool.returncode == 0 and f"ok  SDK worker pool {pool} answers" in with_pool.stdout, with_pool.stdout


@pytest.mark.slow
@pytest.mark.e2e
def test_the_pipeline_runs_on_the_cluster_as_on_the_direct_runner(cluster_env, flink_cluster, direct_sample_run,
                                                                  tmp_path):
    """With the SDK workers in the cluster's worker pool (one process per TaskManager); the killed
    TaskManager's test below runs them LOOPBACK, the profile's default."""
    data, direct_out = direct_sample_run
    flink_out = tmp_path / "flink"
    pool = f"127.0.0.1:{cluster_env['FLINK_WORKER_POOL_PORT']}"
    pool_log = Path(cluster_env["FLINK_RUN_DIR"]) / "log" / "worker-pool.log"
    ran = beam_runner("--profile", "flink", "--flink-master", flink_cluster, "--environment-type", "EXTERNAL",
                      "--image", pool, "--output-dir", str(flink_out), "--data-dir", str(data), *SMALL_RUN,
                      timeout=2400)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    # The same product as `make run`: progress lines, summary, report.
    assert "] CsvExampleGen" in ran.stdout and "Model blessed:" in ran.stdout and "Report:" in ran.stdout

    # The cluster's own account: finished jobs, every one spread over both TaskManagers.
    jobs = rest(flink_cluster, "/jobs/overview")["jobs"]
    assert len(jobs) >= len(BEAM_STAGES), jobs
    assert all(job["state"] == "FINISHED" for job in jobs), jobs
    for job in jobs:
        used = set()
        for vertex in rest(flink_cluster, f"/jobs/{job['jid']}")["vertices"]:
            assert vertex["parallelism"] == 2, vertex
            tms = rest(flink_cluster, f"/jobs/{job['jid']}/vertices/{vertex['id']}/taskmanagers")["taskmanagers"]
            used |= {tm["taskmanager-id"] for tm in tms}
        assert len(used) == 2, (job["name"], used)
    # The pool's own log: a worker process started for each TaskManager's environment.
    assert pool_log.read_text().count("Starting worker with command") >= 2 * len(BEAM_STAGES), pool_log.read_text()
    assert_same_as_direct(flink_out, direct_out)


@pytest.mark.slow
@pytest.mark.e2e
def test_a_killed_taskmanager_fails_the_run_in_one_line_and_the_rerun_resumes_from_the_cache(
        cluster_env, flink_cluster, direct_sample_run, tmp_path):
    """SIGKILL of a TaskManager while the second Beam job (StatisticsGen's) runs on the cluster."""
    data, _ = direct_sample_run
    out = tmp_path / "killed"
    argv = [sys.executable, "beam_runner.py", "--profile", "flink", "--flink-master", flink_cluster,
            "--output-dir", str(out), "--data-dir", str(data), *SMALL_RUN]
    before = {job["jid"] for job in rest(flink_cluster, "/jobs/overview")["jobs"]}
    run = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 900
    while run.poll() is None and killed is None and time.monotonic() < deadline:
        jobs = [j for j in rest(flink_cluster, "/jobs/overview")["jobs"] if j["jid"] not in before]
        # RUNNING with running tasks: a job is RUNNING as soon as it waits for slots, and with one
        # TaskManager gone before its tasks are placed it would only wait (5 min) for the slot.
        if len(jobs) >= 2 and any(j["state"] == "RUNNING" and j["tasks"].get("running", 0) > 0 for j in jobs):
            killed = int((Path(cluster_env["FLINK_RUN_DIR"]) / "flink-tfx-taxi-taskexecutor.pid").read_text().split()[0])
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    stdout, stderr = run.communicate(timeout=900)
    assert killed, "the run ended before its second Beam job ran: nothing was killed\n" + stdout[-2000:]
    assert run.returncode == 1, stdout[-3000:] + stderr[-3000:]
    # One line that names the component, no traceback.
    assert "Traceback" not in stderr, stderr[-3000:]
    failed = [line for line in stderr.splitlines() if line.startswith("Run failed in ")]
    assert len(failed) == 1, stderr[-3000:]
    assert any(node in failed[0] for node in BEAM_STAGES[1:]), failed
    # The store is intact: it opens, and ExampleGen's examples, made before the kill, are complete.
    after_kill = latest_summary(out)
    assert after_kill.states().get("CsvExampleGen") == "COMPLETE", after_kill.states()
    assert "FAILED" in after_kill.states().values(), after_kill.states()

    # `up` brings back the lost TaskManager; the re-run takes ExampleGen from the cache and completes.
    up = subprocess.run(["bash", "tools/cluster.sh", "flink", "up"], cwd=REPO, env=cluster_env, capture_output=True,
                        text=True, timeout=300)
    assert up.returncode == 0 and "starting 1" in up.stderr, up.stderr
    assert len(rest(flink_cluster, "/taskmanagers")["taskmanagers"]) == 2
    rerun = beam_runner("--profile", "flink", "--flink-master", flink_cluster, "--output-dir", str(out),
                        "--data-dir", str(data), *SMALL_RUN, timeout=2400)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    states = latest_summary(out).states()
    assert states["CsvExampleGen"] == "CACHED" and states["Evaluator"] == "COMPLETE", states
