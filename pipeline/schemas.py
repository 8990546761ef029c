"""The curated schema: reviewed and checked in, so a change in the data shows as an anomaly
instead of silently becoming the new normal. `make schema` drafts a new one from data."""

import hashlib
import shutil
from pathlib import Path

import tensorflow_data_validation as tfdv

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
CURATED_SCHEMA = SCHEMA_DIR / "schema.pbtxt"


def schema_columns(schema_file: Path = CURATED_SCHEMA) -> list[str]:
    """The CSV columns the schema describes (every feature is a column)."""
    return [f.name for f in tfdv.load_schema_text(str(schema_file)).feature]


def schema_fingerprint(schema_file: Path = CURATED_SCHEMA) -> str:
    return hashlib.sha256(Path(schema_file).read_bytes()).hexdigest()


def stage_schema(pipeline_root: Path, schema_file: Path = CURATED_SCHEMA) -> Path:
    """A copy of the schema at a path named by its content, under the pipeline root.

    ImportSchemaGen's cache key is the schema file's path, not its content: with the path
    following the content, an edited schema is used instead of a cached import of the old one.
    """
    staged = Path(pipeline_root) / "_schemas" / schema_fingerprint(schema_file)[:16] / "schema.pbtxt"
    if not staged.is_file():
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(schema_file, staged)
    return staged
