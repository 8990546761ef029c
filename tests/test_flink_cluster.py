"""`--profile flink` on a real Flink session cluster that the tests start (tools/cluster.sh) on
127.0.0.1 with their own ports and run directory, and stop afterwards.

The cluster is Flink 1.19.3 from PyPI's distribution, two TaskManagers of one slot each; Beam's job
server is the one .ci/run fetches with Maven (`tools/cluster.sh flink fetch`). Nothing is mocked.
"""

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from data import taxi
from pipeline import beam
from tests.conftest import REPO, SMALL_RUN, latest_summary

BEAM_STAGES = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def beam_runner(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "beam_runner.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


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


# --- on a real cluster (slow) ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory):
    """A JobManager and two TaskManagers on free ports; yields the REST address; always stopped."""
    run_dir = tmp_path_factory.mktemp("flink-run")
    env = dict(os.environ, FLINK_REST_PORT=str(free_port()), FLINK_RPC_PORT=str(free_port()),
               FLINK_RUN_DIR=str(run_dir))
    try:
        up = subprocess.run(["bash", "tools/cluster.sh", "flink", "up"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        yield f"127.0.0.1:{env['FLINK_REST_PORT']}"
    finally:
        subprocess.run(["bash", "tools/cluster.sh", "flink", "down"], cwd=REPO, env=env, capture_output=True,
                       timeout=300)


def rest(master: str, path: str):
    with urllib.request.urlopen(f"http://{master}{path}", timeout=10) as answer:
        return json.load(answer)


@pytest.mark.slow
def test_check_says_the_cluster_can_take_a_run(flink_cluster):
    check = beam_runner("--profile", "flink", "--flink-master", flink_cluster, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("ok ") for line in lines), check.stdout
    assert "Flink 1.19." in lines[0]


def split_counts(artifact) -> dict[str, int]:
    import tensorflow as tf

    uri = artifact.uri
    return {split.name: sum(1 for _ in tf.data.TFRecordDataset(sorted(map(str, split.glob("*.gz"))),
                                                             compression_type="GZIP"))
            for split in sorted(Path(uri).glob("Split-*"))}


def feature_stats(artifact) -> dict:
    import tensorflow_data_validation as tfdv

    uri = artifact.uri
    stats = {}
    for split in sorted(Path(uri).glob("Split-*")):
        data = tfdv.load_stats_binary(str(split / "FeatureStats.pb")).datasets[0]
        for f in data.features:
            common = f.num_stats.common_stats if f.HasField("num_stats") else f.string_stats.common_stats
            mean = f.num_stats.mean if f.HasField("num_stats") else None
            stats[(split.name, f.path.step[0])] = (data.num_examples, common.num_non_missing, mean)
    return stats


def records(artifact, split: str) -> list:
    """Every tf.Example of a split, deterministically serialized (map order varies by process)."""
    import tensorflow as tf

    files = sorted(map(str, (Path(artifact.uri) / split).glob("*.gz")))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def values_by_feature(examples: list) -> dict[str, list]:
    values: dict[str, list] = {}
    for example in examples:
        for name, feature in example.features.feature.items():
            values.setdefault(name, []).extend(getattr(feature, feature.WhichOneof("kind")).value)
    return {name: sorted(v) for name, v in values.items()}


@pytest.mark.slow
@pytest.mark.e2e
def test_the_pipeline_runs_on_the_cluster_as_on_the_direct_runner(flink_cluster, tmp_path):
    data = taxi.write_sample(tmp_path / "data", rows=600)
    flink_out, direct_out = tmp_path / "flink", tmp_path / "direct"
    ran = beam_runner("--profile", "flink", "--flink-master", flink_cluster, "--output-dir", str(flink_out),
                      "--data-dir", str(data), *SMALL_RUN, timeout=2400)
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

    direct = beam_runner("--profile", "direct", "--output-dir", str(direct_out), "--data-dir", str(data),
                         *SMALL_RUN, timeout=1200)
    assert direct.returncode == 0, direct.stdout[-3000:] + direct.stderr[-3000:]
    on_flink, on_direct = latest_summary(flink_out), latest_summary(direct_out)
    for node in BEAM_STAGES:
        assert on_flink.states().get(node) == "COMPLETE", on_flink.states()
    assert on_flink.states() == on_direct.states()  # the same nodes in MLMD, in the same states
    # Same data in, same examples and statistics out; transformed examples as many per split.
    assert split_counts(on_flink.output("CsvExampleGen", "examples")) == \
        split_counts(on_direct.output("CsvExampleGen", "examples"))
    flink_stats = feature_stats(on_flink.output("StatisticsGen", "statistics"))
    direct_stats = feature_stats(on_direct.output("StatisticsGen", "statistics"))
    assert flink_stats.keys() == direct_stats.keys() and flink_stats
    for key, (examples, present, mean) in flink_stats.items():
        d_examples, d_present, d_mean = direct_stats[key]
        assert (examples, present) == (d_examples, d_present), key
        assert mean == pytest.approx(d_mean, rel=1e-9), key  # float sums in another order
    for split in ("Split-train", "Split-eval"):
        assert sorted(e.SerializeToString(deterministic=True) for e in records(on_flink.output(
            "CsvExampleGen", "examples"), split)) == sorted(e.SerializeToString(deterministic=True) for e in records(
                on_direct.output("CsvExampleGen", "examples"), split)), split
        # Transformed: buckets and vocabulary ids exact; z-scores within float32 rounding (the
        # mean and variance are summed in another order over two workers: seen 2e-6 at most).
        flink_values = values_by_feature(records(on_flink.output("Transform", "transformed_examples"), split))
        direct_values = values_by_feature(records(on_direct.output("Transform", "transformed_examples"), split))
        assert flink_values.keys() == direct_values.keys() and flink_values
        for name, values in flink_values.items():
            if values and isinstance(values[0], float):
                assert values == pytest.approx(direct_values[name], abs=1e-5), (split, name)
            else:
                assert values == direct_values[name], (split, name)
