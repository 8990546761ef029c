"""What the pipeline does: one typed, frozen object handed to create_pipeline.

Training, the gates a model must pass, the data gate's drift limit and the TFLite export: every
field is also a command-line option (`--train-steps`, ...) of every runner, generated from these
fields (runs/options.py), so a new setting is added here once. Where things live (data, pipeline
root, serving directory, metadata store, Beam arguments) is not here: each runner builds that as
a pipeline.locations.Locations. Invalid values raise ConfigError naming the option, before any
component runs.
"""

import dataclasses
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.data_gate import options as data_gate
from components.serving_check import options as serving_check
from components.tflite_export import options as tflite
from models import features
from models.hyperparameters import STRATEGIES, Hyperparameters


# Replicas or worker processes on one machine: beyond this they only contend for its cores.
MAX_PROCESS_REPLICAS = 16


class ConfigError(ValueError):
    """A configuration value is invalid; `option` is the command-line flag it came from."""

    def __init__(self, field: str, message: str):
        self.option = option_name(field)
        super().__init__(f"{self.option}: {message}")


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How long the pipeline trains, and what it takes to ship data and a model."""

    pipeline_name: str = dataclasses.field(default="chicago_taxi", metadata=_help("TFX pipeline name."))
    model_name: str = dataclasses.field(
        default="taxi", metadata=_help("Serving name: models land in <serving dir>/<model name>/<version>/.")
    )
    train_steps: int = dataclasses.field(default=1000, metadata=_help("Training steps."))
    eval_steps: int = dataclasses.field(
        default=5, metadata=_help("Validation steps run by the Trainer after training.")
    )
    min_auc: float = dataclasses.field(
        default=0.85, metadata=_help("Evaluator blesses only models with at least this eval AUC.")
    )
    min_binary_accuracy: float = dataclasses.field(
        default=0.80,
        # Always answering "no big tipper" scores 0.775 on this data: the gate must be above that.
        metadata=_help("...and at least this eval binary accuracy."),
    )
    max_auc_drop: float = dataclasses.field(
        default=0.01,
        metadata=_help("...and an AUC at most this far below the latest blessed model's."),
    )
    max_drift: float = dataclasses.field(
        default=data_gate.DEFAULT_MAX_DRIFT,
        metadata=_help("Data gate: largest drift (Jensen-Shannon / L-infinity) from the last accepted data's statistics."),
    )
    warn_only_anomalies: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=_help("Data gate: comma-separated TFDV anomaly kinds that only warn (e.g. ENUM_TYPE_UNEXPECTED_STRING_VALUES)."),
    )
    allow_non_finite: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=_help("Data gate: comma-separated float features whose NaN and infinite values only warn "
                       "(Transform imputes them like missing values); by default they stop the run."),
    )
    tflite_quantization: str = dataclasses.field(
        default=tflite.DEFAULT_QUANTIZATION,
        metadata=_help("Quantization of the exported TFLite model.", choices=tflite.QUANTIZATION_MODES),
    )
    tflite_min_agreement: float = dataclasses.field(
        default=tflite.DEFAULT_MIN_AGREEMENT,
        metadata=_help("TFLite export fails unless it takes the SavedModel's decision on this share of eval examples."),
    )
    serving_load_timeout: float = dataclasses.field(
        default=serving_check.DEFAULT_LOAD_TIMEOUT,
        metadata=_help("Serving check: seconds a fresh process without this project's code may take to load the model."),
    )
    span: int = dataclasses.field(
        default=0, metadata=_help("With a data directory of span-1/, span-2/, ... folders: run on span N "
                                  "(a backfill); 0: the newest span.")
    )
    train_spans: int = dataclasses.field(
        default=1, metadata=_help("Train on a rolling window of this many spans: the run's span and the newest "
                                  "spans the data gate accepted before it; evaluate on the run's span alone.")
    )
    warm_start: bool = dataclasses.field(
        default=False,
        metadata=_help("Start training from the latest blessed model's weights (also the Evaluator's baseline); "
                       "cold, with the reason, when its vocabularies or feature set differ."),
    )
    enable_cache: bool = dataclasses.field(
        default=True, metadata=_help("Reuse the outputs of components whose inputs did not change.")
    )
    hyperparameters: Hyperparameters = dataclasses.field(default_factory=Hyperparameters)

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        hp = self.hyperparameters
        positive = {
            "train_steps": self.train_steps,
            "eval_steps": self.eval_steps,
            "train_batch_size": hp.train_batch_size,
            "eval_batch_size": hp.eval_batch_size,
            "embedding_dim": hp.embedding_dim,
        }
        if self.span < 0:
            raise ConfigError("span", f"must be a span number (1, 2, ...) or 0 for the newest, got {self.span}")
        if self.train_spans < 1:
            raise ConfigError("train_spans", f"must be at least 1, got {self.train_spans}")
        if hp.seed < 0:
            raise ConfigError("seed", f"must be 0 or more, got {hp.seed}")
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(name, f"must be at least 1, got {value}")
        if not 0 < hp.learning_rate <= 1:
            raise ConfigError("learning_rate", f"must be in (0, 1], got {hp.learning_rate}")
        if not hp.hidden_units or min(hp.hidden_units) < 1:
            raise ConfigError("hidden_units", f"needs one or more positive layer sizes, got {hp.hidden_units}")
        if hp.distribution_strategy not in STRATEGIES:
            raise ConfigError("distribution_strategy", f"must be one of {', '.join(STRATEGIES)}")
        for name in ("replicas", "workers"):
            if not 1 <= getattr(hp, name) <= MAX_PROCESS_REPLICAS:
                raise ConfigError(name, f"must be between 1 and {MAX_PROCESS_REPLICAS}, got {getattr(hp, name)}")
        if hp.replicas > 1 and hp.distribution_strategy != "mirrored":
            raise ConfigError("replicas", "splits one process's CPU for --distribution-strategy mirrored; "
                                          "multi_worker trains one replica per worker (use --workers)")
        if hp.workers > 1 and hp.distribution_strategy != "multi_worker":
            raise ConfigError("workers", "needs --distribution-strategy multi_worker")
        if self.tflite_quantization not in tflite.QUANTIZATION_MODES:
            raise ConfigError("tflite_quantization", f"must be one of {', '.join(tflite.QUANTIZATION_MODES)}")
        unknown = set(self.warn_only_anomalies) - set(anomalies_pb2.AnomalyInfo.Type.keys())
        if unknown:
            raise ConfigError("warn_only_anomalies", f"unknown TFDV anomaly kinds: {', '.join(sorted(unknown))}")
        unknown = set(self.allow_non_finite) - set(features.float_keys())
        if unknown:
            raise ConfigError("allow_non_finite", f"not float features: {', '.join(sorted(unknown))} "
                              f"(the float features: {', '.join(features.float_keys())})")
        for name in ("min_auc", "min_binary_accuracy", "max_auc_drop", "tflite_min_agreement", "max_drift"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(name, f"must be between 0 and 1, got {value}")
        if not self.serving_load_timeout > 0:
            raise ConfigError("serving_load_timeout", f"must be more than 0 seconds, got {self.serving_load_timeout}")
        for name in ("pipeline_name", "model_name"):
            value = getattr(self, name)
            if not value or not value.replace("_", "").replace("-", "").isalnum():
                raise ConfigError(name, f"must be letters, digits, '_' or '-', got {value!r}")

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)
