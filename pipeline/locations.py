"""Where a run reads and writes: the one value each runner builds and create_pipeline takes.

`Locations` is what the pipeline needs to know of the place it runs in (data, schema, pipeline
root, serving directory, metadata store, Beam arguments); `OutputDir` is the layout of one local
output directory, which the local and Beam runners build their Locations from (the README's
"Outputs" section describes the same). Light to import: the CLI reads it before TensorFlow.
"""

import dataclasses
from pathlib import Path
from typing import Any

from components.tflite_export.options import SERVING_SUFFIX as TFLITE_SUFFIX
from data.spans import SPAN_PREFIX
from pipeline.config import ConfigError
from pipeline.metadata import MetadataStore

DEFAULT_OUTPUT_DIR = Path("outputs")


def is_uri(location: str | Path) -> bool:
    """Whether a data or artifact location is a remote URI (gs://...) rather than a local path."""
    return "://" in str(location)


def check_data(data: str | Path | None, option: str = "data_dir") -> str | None:
    """A data location as runners take it: a local directory of CSV files or of span folders
    (data.spans; made absolute), a remote URI passed through for the runners whose workers read
    it, or None (the bundled data)."""
    if data is None or is_uri(data):
        return None if data is None else str(data).rstrip("/")
    path = Path(data).expanduser().absolute()
    if not path.is_dir():
        raise ConfigError(option, f"{path} is not a directory")
    if not any(path.glob("*.csv")) and not any(path.glob(SPAN_PREFIX + "*")):
        try:
            found = sorted(p.name for p in path.iterdir())
        except OSError as error:
            raise ConfigError(option, f"{path} cannot be listed ({error.strerror or error})") from None
        listing = f" (it holds {', '.join(found[:3])}{', ...' if len(found) > 3 else ''})" if found else ""
        raise ConfigError(option, f"{path} holds no *.csv file and no {SPAN_PREFIX}N folder{listing}")
    return str(path)


@dataclasses.dataclass(frozen=True)
class OutputDir:
    """All state of local runs, under one directory: artifacts, MLMD store, serving models, logs."""

    path: Path = DEFAULT_OUTPUT_DIR

    def __post_init__(self) -> None:
        if str(self.path) in ("", "."):
            # Most likely an empty OUTPUT_DIR=: state would land among the sources.
            raise ConfigError("output_dir", "give a directory for the run's state (default: outputs)")
        # Made absolute once, so every component and runner sees the same paths.
        path = Path(self.path).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise ConfigError("output_dir", f"{path} exists and is not a directory")
        object.__setattr__(self, "path", path)

    @property
    def pipeline_root(self) -> Path:
        return self.path / "pipeline_root"

    @property
    def metadata_path(self) -> Path:
        return self.path / "metadata.sqlite"

    @property
    def serving_dir(self) -> Path:
        return self.path / "serving"

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def tensorboard_dir(self) -> Path:
        return self.pipeline_root / "Trainer" / "model_run"


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where one pipeline reads and writes. Strings, so that remote URIs and Kubeflow's runtime
    parameters fit where local paths do.

    data: a directory (or URI) of CSV files; None until the run machinery resolves the bundled data.
    metadata: the MLMD store (pipeline.metadata); None where the orchestrator brings its own (Kubeflow).
    spans: the data directory holds span-1/, span-2/, ... folders (data.spans), not CSV files.
    """

    data: Any  # str, or a tfx RuntimeParameter (Kubeflow)
    schema_file: str
    pipeline_root: str
    serving_dir: str
    metadata: MetadataStore | None
    beam_args: tuple[str, ...] = ()
    spans: bool = False

    @classmethod
    def under(cls, output: OutputDir, data: str | None, schema_file: str | Path,
              beam_args: tuple[str, ...] | list[str], metadata: MetadataStore | None = None) -> "Locations":
        """The locations of a run whose state is in one local output directory; its MLMD store
        there too unless `metadata` names another (a team's database)."""
        return cls(
            data=data,
            schema_file=str(schema_file),
            pipeline_root=str(output.pipeline_root),
            serving_dir=str(output.serving_dir),
            metadata=metadata or MetadataStore(sqlite=output.metadata_path),
            beam_args=tuple(beam_args),
        )

    def serving_model_dir(self, model_name: str) -> str:
        """Where the Pusher pushes: TF Serving's <base>/<model name>/<version>/ layout."""
        return f"{self.serving_dir}/{model_name}"

    def tflite_serving_dir(self, model_name: str) -> str:
        return f"{self.serving_dir}/{model_name}{TFLITE_SUFFIX}"

    def replace(self, **changes: Any) -> "Locations":
        return dataclasses.replace(self, **changes)
