"""The pipeline definition: one create_pipeline() that every runner (local, Beam, Kubeflow) uses."""

import hashlib
from pathlib import Path

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2  # not re-exported by tfma 0.52
from tfx import v1 as tfx

from components.data_gate import component as data_gate_component
from components.data_gate.component import DataGate, LatestAccepted
from components.tflite_export import options as tflite_options
from components.tflite_export.component import TFLiteExport
from models import features
from models.trainer import HYPERPARAMETERS_KEY
from pipeline import baseline
from pipeline.config import PipelineConfig

# The curated schema: reviewed and checked in, so a change in the data shows as an anomaly
# instead of silently becoming the new normal. `make schema` drafts a new one from data.
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

# User code is named by module path (no module_file copies). Its fingerprint goes into the
# components' custom_config so that a code change invalidates the cache and is recorded in MLMD.
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DATA_GATE_ID = "DataGate"
TFLITE_EXPORT_DIR = Path(__file__).resolve().parent.parent / "components" / "tflite_export"


def code_fingerprint(package_dir: Path = MODELS_DIR) -> str:
    """sha256 over the package's Python sources, in path order."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA: metrics overall and per slice; the gates a model must pass to be blessed."""
    # Gates apply to the whole eval split; per-slice values are reported, not gated (an hour
    # with 50 trips is too noisy to block a release on).
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


CURATED_SCHEMA = SCHEMA_DIR / "schema.pbtxt"


def schema_columns(schema_file: Path = CURATED_SCHEMA) -> list[str]:
    """The CSV columns the schema describes (every feature is a column)."""
    return [f.name for f in tfdv.load_schema_text(str(schema_file)).feature]


def schema_fingerprint(schema_file: Path = CURATED_SCHEMA) -> str:
    return hashlib.sha256(Path(schema_file).read_bytes()).hexdigest()


def schema_pipeline_name(config: PipelineConfig) -> str:
    return f"{config.pipeline_name}_schema_draft"


RuntimeParameter = tfx.dsl.experimental.RuntimeParameter


def create_pipeline(
    config: PipelineConfig,
    data_dir: Path | str | RuntimeParameter,
    schema_file: Path | str = CURATED_SCHEMA,
    *,
    train_args: tfx.proto.TrainArgs | RuntimeParameter | None = None,
    serving_model_dir: str | None = None,
    pipeline_root: str | None = None,
    with_baseline: bool = True,
    beam_pipeline_args: list[str] | None = None,
    stock_resolvers: bool = False,
) -> tfx.dsl.Pipeline:
    """The whole pipeline, from CSV files in `data_dir` to a pushed model.

    ImportSchemaGen's cache key is the schema file's path, not its content: runners pass a path
    that changes with the content (see local_runner.stage_schema), so an edited schema is used.

    The keyword arguments are for runners whose pipeline runs elsewhere (kubeflow/runner.py):
    remote URIs, runtime parameters, and no baseline resolver where the orchestrator cannot run
    one; `beam_pipeline_args` for beam_runner.py's runner profiles (Flink, Spark, Dataflow). Left
    out, everything comes from `config`, as local runs use it.
    """
    input_base = data_dir if isinstance(data_dir, RuntimeParameter) else str(data_dir)
    example_gen = tfx.components.CsvExampleGen(input_base=input_base)  # train:eval 2:1 by hash
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_importer = tfx.components.ImportSchemaGen(schema_file=str(schema_file))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_importer.outputs["schema"]
    )
    # Stops the run here when the data breaks the schema or drifted from the last accepted data.
    accepted_so_far = {
        data_gate_component.ACCEPTED_INPUT_KEY: tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ExampleStatistics,
            producer_component_id=DATA_GATE_ID,
            output_key=data_gate_component.ACCEPTED_KEY,
        )
    }
    accepted_statistics = (
        (
            # KFP v2 compiles only TFX's stock strategies.
            tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestArtifactStrategy, **accepted_so_far)
            if stock_resolvers
            # Also resolves "none yet" on a first run, and never this run's own statistics.
            else tfx.dsl.Resolver(
                strategy_class=LatestAccepted,
                **{data_gate_component.CURRENT_INPUT_KEY: statistics_gen.outputs["statistics"]},
                **accepted_so_far,
            )
        ).with_id("accepted_statistics_resolver")
        if with_baseline
        else None
    )
    data_gate = DataGate(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"],
        anomalies=example_validator.outputs["anomalies"],
        baseline_statistics=(
            accepted_statistics.outputs[data_gate_component.ACCEPTED_INPUT_KEY] if accepted_statistics else None
        ),
        max_drift=config.max_drift,
        drift_features=",".join(features.drift_keys()),
        warn_only=",".join(config.warn_only_kinds),
    ).with_id(DATA_GATE_ID)
    fingerprint = code_fingerprint()
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_importer.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"code_fingerprint": fingerprint},
        # No pre/post-transform statistics: StatisticsGen already computed the pre-transform ones
        # (the ones validated and reported) and nothing reads the post-transform ones; each was a
        # full TFDV pass inside Transform.
        disable_statistics=True,
        # Nothing feeds the analyzer cache back (each run analyzes its whole input), so writing
        # it was pure cost: one cache entry per analyzer, each a Beam write.
        disable_analyzer_cache=True,
    )
    transform.add_upstream_node(data_gate)  # nothing trains on data the gate refused
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_importer.outputs["schema"],
        train_args=train_args if train_args is not None else tfx.proto.TrainArgs(num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps),
        custom_config={
            "code_fingerprint": fingerprint,
            HYPERPARAMETERS_KEY: config.hyperparameters.to_dict(),
        },
    )
    blessed_models = {
        baseline.MODEL_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        baseline.BLESSING_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    }
    baseline_resolver = (
        (
            # KFP v2 compiles only TFX's stock strategies.
            tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy, **blessed_models)
            if stock_resolvers
            # Never the candidate itself: an unchanged re-run is then served from the cache.
            else tfx.dsl.Resolver(
                strategy_class=baseline.LatestBlessedOtherModel,
                **{baseline.CANDIDATE_KEY: trainer.outputs["model"]},
                **blessed_models,
            )
        ).with_id("latest_blessed_model_resolver")
        if with_baseline
        else None
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs[baseline.MODEL_KEY] if baseline_resolver else None,
        eval_config=eval_config(config),
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=serving_model_dir or str(config.serving_model_dir)
            )
        ),
    )
    # After the Pusher: the TFLite file takes the pushed SavedModel's version.
    tflite_export = TFLiteExport(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        pushed_model=pusher.outputs["pushed_model"],
        push_destination=(
            serving_model_dir + tflite_options.SERVING_SUFFIX if serving_model_dir else str(config.tflite_serving_dir)
        ),
        quantization=config.tflite_quantization,
        min_agreement=config.tflite_min_agreement,
        code_fingerprint=code_fingerprint(TFLITE_EXPORT_DIR),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root or str(config.pipeline_root),
        components=[
            example_gen,
            statistics_gen,
            schema_importer,
            example_validator,
            *([accepted_statistics] if accepted_statistics else []),
            data_gate,
            transform,
            trainer,
            *([baseline_resolver] if baseline_resolver else []),
            evaluator,
            pusher,
            tflite_export,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(config.metadata_path)
        ),
        beam_pipeline_args=config.beam_args if beam_pipeline_args is None else beam_pipeline_args,
    )


def create_schema_pipeline(config: PipelineConfig, data_dir: Path) -> tfx.dsl.Pipeline:
    """ExampleGen -> StatisticsGen -> SchemaGen: drafts a schema from data for a person to curate."""
    example_gen = tfx.components.CsvExampleGen(input_base=str(data_dir))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
    )
    return tfx.dsl.Pipeline(
        pipeline_name=schema_pipeline_name(config),
        pipeline_root=str(config.pipeline_root),
        components=[example_gen, statistics_gen, schema_gen],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(config.metadata_path)
        ),
        beam_pipeline_args=config.beam_args,
    )
