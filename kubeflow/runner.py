"""Compiles the pipeline to Kubeflow Pipelines v2 IR (YAML) with TFX's KubeflowV2DagRunner.

This runner only decides where things live on the cluster (image, pipeline root, data, serving
directory), what a run may change (runtime parameters) and which orchestrator's rules the graph
follows (kubeflow or vertex); the pipeline itself is pipeline.create_pipeline, the one the local
runner runs. `python -m cli kfp compile` (make kfp) calls compile_pipeline().
"""

import dataclasses
import re
from pathlib import Path, PurePosixPath
from typing import Any

import models  # noqa: F401  (the project's Keras choice, before TensorFlow is imported)
import tensorflow as tf
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.version import __version__ as TFX_VERSION

from kubeflow import DATA_ROOT_PARAM, RANGE_CONFIG_PARAM, TRAIN_ARGS_PARAM, range_config_value, train_args_value
from pipeline.beam import DirectBeam
from pipeline.config import ConfigError, PipelineConfig
from pipeline.locations import Locations
from pipeline.pipeline import Topology, create_pipeline
from pipeline.schemas import CURATED_SCHEMA

REPO = Path(__file__).resolve().parent.parent
# Where the Dockerfile copies the project in the image (a test holds the two together): steps
# read the curated schema from there, so the spec names no path of the compiling machine.
IMAGE_PROJECT_DIR = PurePosixPath("/opt/tfx-taxi")
IMAGE_SCHEMA_FILE = IMAGE_PROJECT_DIR / CURATED_SCHEMA.relative_to(REPO).as_posix()

# kubeflow: open-source KFP 2.x, whose backend refuses `resolver` executors ("resolver executors
# not implemented", backend/src/v2/compiler/argocompiler/dag.go), so the latest-blessed-model
# baseline is left out. vertex: Vertex AI Pipelines, which runs TFX's resolver queries.
TARGETS = {"kubeflow": Topology.KUBEFLOW, "vertex": Topology.VERTEX}
_KFP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")  # what KubeflowV2DagRunner accepts
_LOCAL_SCHEMES = ("", "file", "ram")


def writable_schemes() -> list[str]:
    """Remote URI schemes TFX executors can read and write in the image.

    Executors do their file I/O through tf.io.gfile, and the image installs the same lock as
    this environment, so the schemes registered here are the image's: gs only with the locked
    TensorFlow (s3 lives in tensorflow-io, which the lock does not have; minio has none).
    """
    return sorted(s for s in tf.io.gfile.get_registered_schemes() if s not in _LOCAL_SCHEMES)


def check_uri(field: str, uri: str) -> str:
    """`uri` unless the pipeline's pods could not use it; ConfigError names the option otherwise."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme or not rest.strip("/"):
        raise ConfigError(field, f"needs a URI the cluster's pods can reach (such as gs://bucket/path), got {uri!r}")
    schemes = writable_schemes()
    if scheme not in schemes:
        raise ConfigError(
            field,
            f"{scheme}:// is not usable by TFX steps: they read and write with tf.io.gfile, which in this "
            f"image (same lock) knows {', '.join(s + '://' for s in schemes)} only "
            "(see README, 'Kubeflow Pipelines', known limits)",
        )
    return uri.rstrip("/")


@dataclasses.dataclass(frozen=True)
class KubeflowSettings:
    """Where the compiled pipeline lives on the cluster; every value comes from the command line."""

    image: str
    pipeline_root: str
    data: str | None = None  # default: <pipeline_root>/data
    serving_dir: str | None = None  # default: <pipeline_root>/serving
    target: str = "kubeflow"
    # vertex with --workers > 1: the CustomJob the Trainer step launches (project and region of
    # the user's Vertex AI, given on the command line; never defaults).
    vertex_project: str | None = None
    vertex_region: str | None = None
    training_machine_type: str = "n1-standard-4"
    # The data root holds span-1/, span-2/, ... folders: CsvExampleGen reads one span, chosen by
    # the range_config runtime parameter (default: the newest).
    spans: bool = False

    def __post_init__(self) -> None:
        if not self.image or any(c.isspace() for c in self.image):
            raise ConfigError("image", f"needs a container image reference (registry/name:tag), got {self.image!r}")
        if self.target not in TARGETS:
            raise ConfigError("target", f"must be one of {', '.join(TARGETS)}, got {self.target!r}")
        root = check_uri("pipeline_root", self.pipeline_root)
        object.__setattr__(self, "pipeline_root", root)
        object.__setattr__(self, "data", check_uri("data_dir", self.data or f"{root}/data"))
        object.__setattr__(self, "serving_dir", check_uri("serving_dir", self.serving_dir or f"{root}/serving"))

    @property
    def topology(self) -> Topology:
        return TARGETS[self.target]


def kfp_pipeline_name(config: PipelineConfig) -> str:
    """The pipeline name in KFP's alphabet (lower case, '-' for '_'): chicago_taxi -> chicago-taxi."""
    name = config.pipeline_name.lower().replace("_", "-")
    if not _KFP_NAME.fullmatch(name):
        raise ConfigError("pipeline_name", f"must start with a letter or digit for Kubeflow, got {config.pipeline_name!r}")
    return name


def vertex_training(config: PipelineConfig, settings: KubeflowSettings) -> dict[str, Any] | None:
    """The Trainer's custom_config for TFX's Vertex AI Trainer extension, or None (train in the step's pod).

    --target vertex with multi_worker over several workers: a Vertex AI CustomJob of one chief
    pool and one pool of workers-1 replicas, all on the pipeline's image. Vertex AI sets TF_CONFIG
    in each replica, whose run_fn then trains in-process under MultiWorkerMirroredStrategy
    (models/trainer.py). Open-source KFP has no multi-replica step: there the Trainer's pod
    starts the workers as local processes, as on this machine (for a cluster of pods, the
    Kubeflow Training Operator's TFJob, which TFX does not compile to).
    """
    hp = config.hyperparameters
    if settings.target != "vertex" or hp.distribution_strategy != "multi_worker" or hp.workers < 2:
        return None
    for name in ("vertex_project", "vertex_region"):
        if not getattr(settings, name):
            raise ConfigError(name, f"is needed: --target vertex trains {hp.workers} workers as a Vertex AI CustomJob")
    from tfx.extensions.google_cloud_ai_platform import constants as vertex
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer

    def pool(replicas: int) -> dict[str, Any]:
        return {"machine_spec": {"machine_type": settings.training_machine_type}, "replica_count": replicas,
                "container_spec": {"image_uri": settings.image}}

    return {
        vertex.ENABLE_VERTEX_KEY: True,
        vertex.VERTEX_REGION_KEY: settings.vertex_region,
        vertex_trainer.TRAINING_ARGS_KEY: {"project": settings.vertex_project,
                                           "worker_pool_specs": [pool(1), pool(hp.workers - 1)]},
    }


def runtime_parameter_defaults(config: PipelineConfig, settings: KubeflowSettings) -> dict[str, str]:
    """The runtime parameters of the compiled pipeline and their values when a run sets none."""
    defaults = {DATA_ROOT_PARAM: settings.data, TRAIN_ARGS_PARAM: train_args_value(config.train_steps)}
    if settings.spans:
        defaults[RANGE_CONFIG_PARAM] = range_config_value(config.span)
    return defaults


def build_pipeline(config: PipelineConfig, settings: KubeflowSettings, beam: DirectBeam = DirectBeam()) -> tfx.dsl.Pipeline:
    """create_pipeline with the cluster's locations and the runtime parameters.

    The Beam-powered steps run Beam's DirectRunner inside their pods; KFP brings its own MLMD store.
    """
    params = {
        name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=default)
        for name, default in runtime_parameter_defaults(config, settings).items()
    }
    locations = Locations(
        data=params[DATA_ROOT_PARAM],
        schema_file=str(IMAGE_SCHEMA_FILE),
        pipeline_root=settings.pipeline_root,
        serving_dir=settings.serving_dir,
        metadata=None,
        beam_args=tuple(beam.args(settings.data)),
        spans=settings.spans,
    )
    return create_pipeline(config.replace(pipeline_name=kfp_pipeline_name(config)), locations, settings.topology,
                           train_args=params[TRAIN_ARGS_PARAM], vertex_training=vertex_training(config, settings),
                           range_config=params.get(RANGE_CONFIG_PARAM))


def compile_spec(config: PipelineConfig, settings: KubeflowSettings, beam: DirectBeam = DirectBeam()) -> dict[str, Any]:
    """The KFP PipelineSpec as a dict, checked by parsing it with KFP's own protos."""
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=settings.image,
            # Schema 2.1 (parameterType, parameter defaults) is what KFP 2.x backends read.
            use_pipeline_spec_2_1=True,
        )
    )
    job = runner.run(build_pipeline(config, settings, beam), write_out=False)
    spec = job["pipelineSpec"]
    # TFX puts the pipeline root and parameter values in the PipelineJob's runtimeConfig, which
    # a YAML package does not carry: KFP reads them from the spec itself, so they go there.
    spec["defaultPipelineRoot"] = settings.pipeline_root
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for name, default in runtime_parameter_defaults(config, settings).items():
        parameters[name].update(defaultValue=default, isOptional=True)
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # raises if KFP could not read it
    return spec


def compile_pipeline(config: PipelineConfig, settings: KubeflowSettings, beam: DirectBeam, output: Path) -> Path:
    """Writes the KFP v2 pipeline spec (YAML) to `output` and returns its path."""
    spec = compile_spec(config, settings, beam)
    output.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# KFP v2 pipeline spec of {spec['pipelineInfo']['name']}, compiled by kubeflow/runner.py "
        f"(tfx {TFX_VERSION}) for {settings.target}.\n"
        f"# Image: {settings.image}\n# Runtime parameters: {', '.join(sorted(runtime_parameter_defaults(config, settings)))}\n"
    )
    output.write_text(header + yaml.safe_dump(spec, sort_keys=True))
    return output
