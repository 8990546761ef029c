"""The pipeline's configuration: one typed, frozen object handed to create_pipeline.

Every field is also a command-line option (`--train-steps`, ...); the CLI builds its options from
these fields, so a new setting is added here once. Invalid values raise ConfigError naming the
option, before any component runs.
"""

import dataclasses
import os
from pathlib import Path
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.data_gate import options as data_gate
from components.tflite_export import options as tflite
from models.hyperparameters import STRATEGIES, Hyperparameters

BEAM_MODES = ("auto", "in_memory", "multi_processing")
# --beam-mode auto: multi_processing from this much CSV input on, in_memory below (the bundled
# data is 1.9 MB). Measured on a 2-core machine: see README "Benchmark" (crossover).
AUTO_MULTI_PROCESSING_BYTES = 64 * 1024 * 1024
BUNDLED_DATA_BYTES = 2 * 1024 * 1024  # data_dir None: the bundled 15k rows


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
    """Where the pipeline reads and writes, how long it trains, and what it takes to ship a model."""

    output_dir: Path = dataclasses.field(
        default=Path("outputs"),
        metadata=_help("All state of the run: pipeline root, MLMD store, serving models, logs."),
    )
    data_dir: Path | None = dataclasses.field(
        default=None,
        metadata=_help("Directory of CSV files with the taxi columns (default: the bundled data)."),
    )
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
    beam_mode: str = dataclasses.field(
        default="auto",
        metadata=_help(
            "Beam DirectRunner running mode for the Beam-powered components; auto: in_memory for "
            "small input, multi_processing from AUTO_MULTI_PROCESSING_BYTES of CSV on.",
            choices=BEAM_MODES,
        ),
    )
    beam_workers: int = dataclasses.field(
        default=0, metadata=_help("Beam DirectRunner workers when multi_processing (0: one per CPU core).")
    )
    max_drift: float = dataclasses.field(
        default=data_gate.DEFAULT_MAX_DRIFT,
        metadata=_help("Data gate: largest drift (Jensen-Shannon / L-infinity) from the last accepted data's statistics."),
    )
    warn_only_anomalies: str = dataclasses.field(
        default="",
        metadata=_help("Data gate: comma-separated TFDV anomaly kinds that only warn (e.g. ENUM_TYPE_UNEXPECTED_STRING_VALUES)."),
    )
    tflite_quantization: str = dataclasses.field(
        default=tflite.DEFAULT_QUANTIZATION,
        metadata=_help("Quantization of the exported TFLite model.", choices=tflite.QUANTIZATION_MODES),
    )
    tflite_min_agreement: float = dataclasses.field(
        default=tflite.DEFAULT_MIN_AGREEMENT,
        metadata=_help("TFLite export fails unless it takes the SavedModel's decision on this share of eval examples."),
    )
    enable_cache: bool = dataclasses.field(
        default=True, metadata=_help("Reuse the outputs of components whose inputs did not change.")
    )
    hyperparameters: Hyperparameters = dataclasses.field(default_factory=Hyperparameters)

    def __post_init__(self) -> None:
        if str(self.output_dir) in ("", "."):
            # Most likely an empty OUTPUT_DIR=: state would land among the sources.
            raise ConfigError("output_dir", "give a directory for the run's state (default: outputs)")
        # Paths are made absolute once, so every component and runner sees the same ones.
        object.__setattr__(self, "output_dir", Path(self.output_dir).expanduser().absolute())
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
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
        if self.tflite_quantization not in tflite.QUANTIZATION_MODES:
            raise ConfigError("tflite_quantization", f"must be one of {', '.join(tflite.QUANTIZATION_MODES)}")
        unknown = set(self.warn_only_kinds) - set(anomalies_pb2.AnomalyInfo.Type.keys())
        if unknown:
            raise ConfigError("warn_only_anomalies", f"unknown TFDV anomaly kinds: {', '.join(sorted(unknown))}")
        for name in ("min_auc", "min_binary_accuracy", "max_auc_drop", "tflite_min_agreement", "max_drift"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(name, f"must be between 0 and 1, got {value}")
        if self.beam_mode not in BEAM_MODES:
            raise ConfigError("beam_mode", f"must be one of {', '.join(BEAM_MODES)}")
        if self.beam_workers < 0:
            raise ConfigError("beam_workers", f"must be 0 (one per core) or more, got {self.beam_workers}")
        if self.beam_mode == "in_memory" and self.beam_workers > 1:
            raise ConfigError("beam_workers", "in_memory runs one worker; use --beam-mode multi_processing for more")
        for name in ("pipeline_name", "model_name"):
            value = getattr(self, name)
            if not value or not value.replace("_", "").replace("-", "").isalnum():
                raise ConfigError(name, f"must be letters, digits, '_' or '-', got {value!r}")
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ConfigError("output_dir", f"{self.output_dir} exists and is not a directory")
        if self.data_dir is not None:
            if not self.data_dir.is_dir():
                raise ConfigError("data_dir", f"{self.data_dir} is not a directory")
            if not any(self.data_dir.glob("*.csv")):
                raise ConfigError("data_dir", f"{self.data_dir} holds no *.csv file")

    # Where things live under output_dir; the README's "Outputs" section describes the same.
    @property
    def pipeline_root(self) -> Path:
        return self.output_dir / "pipeline_root"

    @property
    def metadata_path(self) -> Path:
        return self.output_dir / "metadata.sqlite"

    @property
    def serving_dir(self) -> Path:
        return self.output_dir / "serving"

    @property
    def serving_model_dir(self) -> Path:
        return self.serving_dir / self.model_name

    @property
    def warn_only_kinds(self) -> list[str]:
        return data_gate.names(self.warn_only_anomalies)

    @property
    def tflite_serving_dir(self) -> Path:
        return self.serving_dir / f"{self.model_name}{tflite.SERVING_SUFFIX}"

    @property
    def log_dir(self) -> Path:
        return self.output_dir / "logs"

    @property
    def tensorboard_dir(self) -> Path:
        return self.pipeline_root / "Trainer" / "model_run"

    @property
    def beam_args(self) -> list[str]:
        # FnApiRunner, named: Beam 2.77's DirectRunner first tries Prism, a binary it downloads
        # at run time (nothing here can), and only then falls back to this same runner.
        mode = self.resolved_beam_mode
        workers = 1 if mode == "in_memory" else self.beam_workers or os.cpu_count() or 1
        return [
            "--runner=FnApiRunner",
            f"--direct_running_mode={mode}",
            f"--direct_num_workers={workers}",
        ]

    @property
    def input_bytes(self) -> int:
        """Size of the CSV input: what --beam-mode auto decides by."""
        if self.data_dir is None:
            return BUNDLED_DATA_BYTES
        return sum(p.stat().st_size for p in self.data_dir.glob("*.csv"))

    @property
    def resolved_beam_mode(self) -> str:
        """in_memory or multi_processing: beam_mode, with auto decided by input_bytes."""
        if self.beam_mode != "auto":
            return self.beam_mode
        return "multi_processing" if self.input_bytes >= AUTO_MULTI_PROCESSING_BYTES else "in_memory"

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)
