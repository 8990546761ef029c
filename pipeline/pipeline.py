"""The pipeline definition: one create_pipeline() that every runner (local, Beam, Kubeflow) uses.

    CsvExampleGen -> StatisticsGen -> ExampleValidator (curated schema) -> DataGate
                  -> Transform -> Trainer -> Evaluator (baseline: the latest blessed model)
                  -> ServingCheck (a model server's view) and TFLiteExport (convert, parity check)
                  -> Pusher (SavedModel with warm-up requests + TFLite, one version)

`config` says what the pipeline does, `locations` where it reads and writes, `topology` which
orchestrator's rules apply to the graph (which resolvers it can run).
"""

import enum
from pathlib import Path

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2  # not re-exported by tfma 0.52
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components import code_fingerprint
from components.data_gate.component import DataGate
from components.example_gen.component import CsvExampleGen
from components.pusher.component import Pusher
from components.serving_check.component import ServingCheck
from components.tflite_export.component import TFLiteExport
from components.trainer.executor import Executor as WarmStartTrainerExecutor
from data import spans
from models import features
from models.trainer import HYPERPARAMETERS_KEY, WARM_START_KEY
from pipeline import resolvers
from pipeline.config import ConfigError, PipelineConfig
from pipeline.locations import Locations

# User code is named by module path (no module_file copies). Its fingerprint goes into the
# components' custom_config so that a code change invalidates the cache and is recorded in MLMD.
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DATA_GATE_ID = "DataGate"

RuntimeParameter = tfx.dsl.experimental.RuntimeParameter


class Topology(enum.Enum):
    """Which orchestrator the graph is built for: what decides its resolvers."""

    LOCAL = "local"  # LocalDagRunner, BeamDagRunner: this project's resolver strategies
    VERTEX = "vertex"  # Vertex AI Pipelines: TFX's stock strategies (KFP v2 compiles only those)
    KUBEFLOW = "kubeflow"  # open-source KFP 2.x: no resolvers (its backend cannot run them)

    @property
    def resolvers(self) -> bool:
        return self is not Topology.KUBEFLOW

    @property
    def stock_resolvers(self) -> bool:
        return self is Topology.VERTEX


def create_pipeline(
    config: PipelineConfig,
    locations: Locations,
    topology: Topology = Topology.LOCAL,
    train_args: tfx.proto.TrainArgs | RuntimeParameter | None = None,
    vertex_training: dict | None = None,
    range_config: RuntimeParameter | None = None,
) -> tfx.dsl.Pipeline:
    """The whole pipeline, from the CSV files at `locations.data` to a pushed model.

    `train_args`: a runtime parameter where the orchestrator takes one (Kubeflow); by default
    `config.train_steps`. `vertex_training`: the Trainer's custom_config for TFX's Vertex AI
    Trainer extension (a CustomJob with worker pools: kubeflow/runner.py). `range_config`: on span
    folders, CsvExampleGen's RangeConfig (JSON) as a runtime parameter (Kubeflow; empty: the newest).
    """
    data = _data_stages(config, locations, topology, range_config)
    model = _model_stages(config, locations, topology, data, train_args, vertex_training)
    shipping = _shipping_stages(config, locations, topology, data, model)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=locations.pipeline_root,
        components=[*data.values(), *model.values(), *shipping],
        enable_cache=config.enable_cache,
        metadata_connection_config=_metadata(locations),
        beam_pipeline_args=list(locations.beam_args),
    )


def _data_stages(config: PipelineConfig, locations: Locations, topology: Topology,
                 range_config: RuntimeParameter | None = None) -> dict:
    """Reads the CSV files (one span), computes statistics, and stops the run on anomalies or drift."""
    example_gen = _example_gen(config, locations, range_config)  # train:eval 2:1 by hash
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema = tfx.components.ImportSchemaGen(schema_file=locations.schema_file)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema.outputs["schema"]
    )
    accepted = (
        resolvers.accepted_statistics(topology.stock_resolvers, statistics_gen.outputs["statistics"], DATA_GATE_ID)
        if topology.resolvers else None
    )
    data_gate = DataGate(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema.outputs["schema"],
        anomalies=example_validator.outputs["anomalies"],
        baseline_statistics=accepted.outputs[resolvers.ACCEPTED_INPUT_KEY] if accepted else None,
        max_drift=config.max_drift,
        drift_features=features.drift_keys(),
        warn_only=config.warn_only_anomalies,
        allow_non_finite=config.allow_non_finite,
    ).with_id(DATA_GATE_ID)
    window = None
    if config.train_spans > 1:
        if topology is not Topology.LOCAL:
            # KFP v2's compiler (TFX 1.21) compiles LatestArtifactStrategy and LatestBlessedModelStrategy
            # only (not SpanRangeStrategy, nor this project's), and open-source KFP runs no resolvers.
            raise ConfigError("train_spans", "a window of spans is resolved from MLMD, and Kubeflow/Vertex compile no "
                                             "span resolver (KFP v2 takes TFX's latest-artifact and latest-blessed-model "
                                             "resolvers only): train on one span there")
        window = resolvers.span_window(example_gen.outputs["examples"], config.train_spans, DATA_GATE_ID)
    stages = {
        "example_gen": example_gen,
        "statistics_gen": statistics_gen,
        "schema": schema,
        "example_validator": example_validator,
        "accepted_statistics": accepted,
        "data_gate": data_gate,
        "span_window": window,  # what Transform and the Trainer read; the Evaluator: example_gen's span only
    }
    return {name: node for name, node in stages.items() if node is not None}


def _example_gen(config: PipelineConfig, locations: Locations,
                 range_config: RuntimeParameter | None = None) -> CsvExampleGen:
    """CsvExampleGen on the data directory; on span folders one span: `config.span`, else the newest
    (TFX's latest-span resolution); `range_config`: a runtime parameter in its place (Kubeflow)."""
    if not locations.spans:
        return CsvExampleGen(input_base=_input_base(locations.data))
    if range_config is None and config.span:
        range_config = tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=config.span, end_span_number=config.span))
    return CsvExampleGen(
        input_base=_input_base(locations.data),
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=spans.SPLIT_NAME, pattern=spans.SPAN_PATTERN)]),
        range_config=range_config,
    )


def _model_stages(config: PipelineConfig, locations: Locations, topology: Topology, data: dict,
                  train_args: tfx.proto.TrainArgs | RuntimeParameter | None, vertex_training: dict | None = None) -> dict:
    """Transform and Trainer, on data the gate accepted; warm-starting, the latest blessed model
    (the resolver the Evaluator's baseline comes from, then) feeds the Trainer's base_model."""
    fingerprint = code_fingerprint(MODELS_DIR)
    training = data["span_window"].outputs[resolvers.EXAMPLES_KEY] if "span_window" in data else None
    transform = tfx.components.Transform(
        examples=training if training is not None else data["example_gen"].outputs["examples"],
        schema=data["schema"].outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"code_fingerprint": fingerprint},
        # StatisticsGen already computed the pre-transform statistics (the ones validated and
        # reported) and nothing reads post-transform ones: each would be a full TFDV pass.
        disable_statistics=True,
        # Nothing feeds the analyzer cache back (each run analyzes its whole input).
        disable_analyzer_cache=True,
    )
    transform.add_upstream_node(data["data_gate"])  # nothing trains on data the gate refused
    trainer_class = tfx.extensions.google_cloud_ai_platform.Trainer if vertex_training else tfx.components.Trainer
    base = None
    if config.warm_start:
        if not topology.resolvers:
            raise ConfigError("warm_start", f"needs a resolver for the latest blessed model, which the "
                                            f"{topology.value} topology cannot run")
        base = resolvers.baseline_model(topology.stock_resolvers, None)
    warm = {"base_model": base.outputs[resolvers.MODEL_KEY],
            "custom_executor_spec": executor_spec.ExecutorClassSpec(WarmStartTrainerExecutor)} if base else {}
    if base and vertex_training:
        del warm["custom_executor_spec"]  # Vertex's own executor: the decision is logged, not recorded in MLMD
    trainer = trainer_class(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=data["schema"].outputs["schema"],
        train_args=train_args if train_args is not None else tfx.proto.TrainArgs(num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps),
        custom_config={"code_fingerprint": fingerprint, HYPERPARAMETERS_KEY: config.hyperparameters.to_dict(),
                       **({WARM_START_KEY: True} if base else {}), **(vertex_training or {})},
        **warm,
    )
    return {**({"base_model": base} if base else {}), "transform": transform, "trainer": trainer}


def _shipping_stages(config: PipelineConfig, locations: Locations, topology: Topology, data: dict,
                     model: dict) -> list:
    """Judges the model against the gates and the latest blessed model; publishes it, last, when
    every gate passed."""
    examples, candidate = data["example_gen"].outputs["examples"], model["trainer"].outputs["model"]
    # Warm-starting, the model judged against is the one training started from.
    baseline = model.get("base_model") or (
        resolvers.baseline_model(topology.stock_resolvers, candidate) if topology.resolvers else None)
    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=candidate,
        baseline_model=baseline.outputs[resolvers.MODEL_KEY] if baseline else None,
        eval_config=eval_config(config),
    )
    # Everything that can stop the run comes before the Pusher; it publishes both forms as one
    # version, so a run that fails publishes nothing.
    tflite_export = TFLiteExport(
        model=candidate,
        model_blessing=evaluator.outputs["blessing"],
        examples=examples,
        quantization=config.tflite_quantization,
        min_agreement=config.tflite_min_agreement,
    )
    serving_check = ServingCheck(
        model=candidate,
        examples=examples,
        model_blessing=evaluator.outputs["blessing"],
        model_name=config.model_name,
        load_timeout=config.serving_load_timeout,
    )
    pusher = Pusher(
        model=candidate,
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        tflite_model=tflite_export.outputs["tflite_model"],
        tflite_destination=locations.tflite_serving_dir(config.model_name),
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=locations.serving_model_dir(config.model_name))
        ),
    )
    own_baseline = None if "base_model" in model else baseline  # else already among the model stages
    return [node for node in (own_baseline, evaluator, serving_check, tflite_export, pusher) if node is not None]


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA: metrics overall and per slice; the gates a model must pass to be blessed."""
    # Gates apply to the whole eval split; per-slice values are reported, not gated (an hour
    # with few trips is too noisy to block a release on).
    overall = [tfma.SlicingSpec()]
    auc_gate = config_pb2.PerSliceMetricThreshold(
        slicing_specs=overall,
        threshold=tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_auc}),
            # Ignored on the first run (no baseline yet); then: no worse than the blessed model.
            change_threshold=tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                absolute={"value": -config.max_auc_drop},
            ),
        ),
    )
    accuracy_gate = config_pb2.PerSliceMetricThreshold(
        slicing_specs=overall,
        threshold=tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_binary_accuracy})
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=features.LABEL_KEY,
                # The label is made by Transform; TFMA gets it from the model's own signature.
                preprocessing_function_names=["transform_features"],
            )
        ],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="AUC", per_slice_thresholds=[auc_gate]),
                    tfma.MetricConfig(class_name="BinaryAccuracy", per_slice_thresholds=[accuracy_gate]),
                    tfma.MetricConfig(class_name="Calibration"),
                    tfma.MetricConfig(class_name="MeanLabel"),
                    tfma.MetricConfig(class_name="MeanPrediction"),
                    tfma.MetricConfig(class_name="CalibrationPlot"),
                ]
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_FEATURE_KEYS],
    )


def schema_pipeline_name(config: PipelineConfig) -> str:
    return f"{config.pipeline_name}_schema_draft"


def create_schema_pipeline(config: PipelineConfig, locations: Locations) -> tfx.dsl.Pipeline:
    """ExampleGen -> StatisticsGen -> SchemaGen: drafts a schema from data for a person to curate."""
    example_gen = CsvExampleGen(input_base=_input_base(locations.data))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    return tfx.dsl.Pipeline(
        pipeline_name=schema_pipeline_name(config),
        pipeline_root=locations.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen],
        enable_cache=False,
        metadata_connection_config=_metadata(locations),
        beam_pipeline_args=list(locations.beam_args),
    )


def _input_base(data) -> str | RuntimeParameter:
    return data if isinstance(data, RuntimeParameter) else str(data)


def _metadata(locations: Locations):
    return locations.metadata.connection_config() if locations.metadata is not None else None
