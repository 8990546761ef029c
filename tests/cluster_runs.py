"""What the Flink and Spark cluster tests share: starting beam_runner.py, one direct run to compare
with, and the comparison of a cluster run's artifacts with that direct run's."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from data import taxi
from tests.conftest import REPO, SMALL_RUN, latest_summary

BEAM_STAGES = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")
SAMPLE_ROWS = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def beam_runner(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "beam_runner.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def direct_sample_run(tmp_path_factory):
    """The small sample and its direct run, made once for every cluster test: (data dir, output dir)."""
    root = tmp_path_factory.mktemp("direct-sample")
    data = taxi.write_sample(root / "data", rows=SAMPLE_ROWS)
    out = root / "direct"
    direct = beam_runner("--profile", "direct", "--output-dir", str(out), "--data-dir", str(data), *SMALL_RUN,
                         timeout=1200)
    assert direct.returncode == 0, direct.stdout[-3000:] + direct.stderr[-3000:]
    return data, out


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


def assert_same_as_direct(cluster_out: Path, direct_out: Path) -> None:
    """A cluster run's MLMD nodes, examples, statistics and transformed examples against the direct run's."""
    on_cluster, on_direct = latest_summary(cluster_out), latest_summary(direct_out)
    for node in BEAM_STAGES:
        assert on_cluster.states().get(node) == "COMPLETE", on_cluster.states()
    assert on_cluster.states() == on_direct.states()  # the same nodes in MLMD, in the same states
    # Same data in, same examples and statistics out; transformed examples as many per split.
    assert split_counts(on_cluster.output("CsvExampleGen", "examples")) == \
        split_counts(on_direct.output("CsvExampleGen", "examples"))
    cluster_stats = feature_stats(on_cluster.output("StatisticsGen", "statistics"))
    direct_stats = feature_stats(on_direct.output("StatisticsGen", "statistics"))
    assert cluster_stats.keys() == direct_stats.keys() and cluster_stats
    for key, (examples, present, mean) in cluster_stats.items():
        d_examples, d_present, d_mean = direct_stats[key]
        assert (examples, present) == (d_examples, d_present), key
        assert mean == pytest.approx(d_mean, rel=1e-9), key  # float sums in another order
    for split in ("Split-train", "Split-eval"):
        assert sorted(e.SerializeToString(deterministic=True) for e in records(on_cluster.output(
            "CsvExampleGen", "examples"), split)) == sorted(e.SerializeToString(deterministic=True) for e in records(
                on_direct.output("CsvExampleGen", "examples"), split)), split
        # Transformed: buckets and vocabulary ids exact; z-scores within float32 rounding (the
        # mean and variance are summed in another order over two workers: seen 2e-6 at most).
        cluster_values = values_by_feature(records(on_cluster.output("Transform", "transformed_examples"), split))
        direct_values = values_by_feature(records(on_direct.output("Transform", "transformed_examples"), split))
        assert cluster_values.keys() == direct_values.keys() and cluster_values
        for name, values in cluster_values.items():
            if values and isinstance(values[0], float):
                assert values == pytest.approx(direct_values[name], abs=1e-5), (split, name)
            else:
                assert values == direct_values[name], (split, name)
