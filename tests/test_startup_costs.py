"""What a local run no longer spends time on, and that skipping it changes nothing else.

- TFX's sdist of itself for Beam workers: skipped for direct runners only (upstream/workarounds.py);
- TFX's Google Cloud extensions: imported on first use, not with `tfx.v1` (upstream/workarounds.py);
- the interpreter's teardown of TensorFlow at exit: skipped by the CLI (upstream/workarounds.py);
- an analyzer cache no run reads, written by Transform: not written;
- a baseline that is the candidate itself (pipeline/resolvers.py): an unchanged re-run is cached
  through the Evaluator, the Pusher and the TFLite export (end to end: test_pipeline_e2e.py).
"""

import subprocess
import sys

import pytest
from tfx.types import standard_artifacts
from tfx.utils import dependency_utils

from pipeline import beam, resolvers as baseline
from pipeline.beam import DirectBeam
from pipeline.config import PipelineConfig
from tests.conftest import REPO, local_locations
from upstream import workarounds as local_beam

REMOTE = {
    "flink": beam.RunnerSettings(flink_master="flink:8081", image="img"),
    "spark": beam.RunnerSettings(spark_master="spark://spark:7077", image="img"),
    "dataflow": beam.RunnerSettings(project="my-project", region="europe-west1",
                                    temp_location="gs://bucket/tmp", image="reg/tfx-taxi:1"),
}


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_the_local_beam_modes_are_direct(mode):
    assert local_beam.is_direct(DirectBeam(mode).args())


@pytest.mark.parametrize("profile", sorted(REMOTE))
def test_the_cluster_profiles_are_not(profile):
    assert not local_beam.is_direct(beam.profile_args(profile, REMOTE[profile]))


def test_runner_is_read_as_beam_reads_it():
    assert local_beam.runner_of(["--runner", "DataflowRunner"]) == "DataflowRunner"
    assert local_beam.runner_of(["--runner=FlinkRunner", "--runner=FnApiRunner"]) == "FnApiRunner"
    assert local_beam.is_direct([])  # Beam's default: DirectRunner
    assert local_beam.is_direct(["--runner=apache_beam.runners.direct.DirectRunner"])


def test_direct_runs_build_no_tfx_package_and_the_original_is_restored():
    original = dependency_utils.make_beam_dependency_flags
    args = DirectBeam().args()
    with local_beam.without_tfx_sdist(args) as skipped:
        assert skipped
        # What every Beam executor calls at construction: no --extra_package, nothing built.
        assert dependency_utils.make_beam_dependency_flags(list(args)) == args
    assert dependency_utils.make_beam_dependency_flags is original


def test_cluster_runs_keep_tfxs_dependency_flags():
    original = dependency_utils.make_beam_dependency_flags
    with local_beam.without_tfx_sdist(beam.profile_args("flink", REMOTE["flink"])) as skipped:
        assert not skipped
        assert dependency_utils.make_beam_dependency_flags is original


def test_tfx_cloud_extensions_load_on_first_use_only():
    code = (
        "import sys, models\n"
        "from tfx import v1 as tfx\n"
        "assert 'google.cloud.aiplatform' not in sys.modules, 'imported eagerly'\n"
        "from tfx.v1.extensions.google_cloud_ai_platform import Pusher\n"
        "assert tfx.extensions.google_cloud_ai_platform.Pusher is Pusher\n"
        "assert 'google.cloud.aiplatform' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def _models(*ids: int, blessed: dict[int, int] | None = None):
    models, blessings = [], []
    for model_id in ids:
        model = standard_artifacts.Model()
        model.id = model_id
        models.append(model)
    for model_id, verdict in (blessed or {}).items():
        blessing = standard_artifacts.ModelBlessing()
        blessing.id = 100 + model_id
        blessing.set_int_custom_property("current_model_id", model_id)
        blessing.set_int_custom_property("blessed", verdict)
        blessings.append(blessing)
    return models, blessings


def _resolve(candidate_id: int, models, blessings):
    candidate = [m for m in models if m.id == candidate_id]
    result = baseline.LatestBlessedOtherModel().resolve_artifacts(
        None, {baseline.CANDIDATE_KEY: candidate, baseline.MODEL_KEY: models, baseline.BLESSING_KEY: blessings})
    assert result[baseline.CANDIDATE_KEY] == candidate
    return [m.id for m in result[baseline.MODEL_KEY]]


def test_the_baseline_is_the_latest_blessed_model():
    models, blessings = _models(1, 2, 3, blessed={1: 1, 2: 1})
    assert _resolve(3, models, blessings) == [2]


def test_the_baseline_is_never_the_candidate_itself():
    # Model 2 was blessed and comes back from the cache: it is judged against model 1 again.
    models, blessings = _models(1, 2, blessed={1: 1, 2: 1})
    assert _resolve(2, models, blessings) == [1]
    # The only blessed model is the candidate: no baseline, as on the run that made it.
    models, blessings = _models(1, blessed={1: 1})
    assert _resolve(1, models, blessings) == []


def test_unblessed_models_are_never_baselines():
    models, blessings = _models(1, 2, 3, blessed={1: 1, 2: 0})
    assert _resolve(3, models, blessings) == [1]
    models, blessings = _models(1, 2, blessed={1: 0})
    assert _resolve(2, models, blessings) == []


@pytest.mark.parametrize("status, code, stderr", [(3, 3, ""), (None, 0, ""), ("went wrong", 1, "went wrong")])
def test_the_cli_exits_with_its_status_output_flushed_and_exit_handlers_run(status, code, stderr):
    script = (
        "import atexit\n"
        "from upstream.workarounds import exit_without_teardown\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "print('buffered', end='')\n"
        f"exit_without_teardown({status!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == code
    assert result.stdout == "bufferedhandler ran\n"
    assert result.stderr.strip().endswith(stderr)


def pipeline_node(pipeline, node_id: str):
    [node] = [c for c in pipeline.components if c.id == node_id]
    return node


def test_transform_writes_no_analyzer_cache_and_the_baseline_resolver_sees_the_candidate(tmp_path):
    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(PipelineConfig(), local_locations(tmp_path))
    transform = pipeline_node(pipeline, "Transform")
    assert set(transform.outputs) == {"transform_graph", "transformed_examples"}
    resolver = pipeline_node(pipeline, "latest_blessed_model_resolver")
    assert resolver.exec_properties["resolver_class"] is baseline.LatestBlessedOtherModel
    assert "Trainer" in {node.id for node in resolver.upstream_nodes}  # it reads the candidate
