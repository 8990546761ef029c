"""Custom TFX components of this project (each in its own package), and ReadableError, the
error they raise for people to read."""

import hashlib
from pathlib import Path
from typing import Any


class ReadableError(Exception):
    """An error written for people to act on (e.g. the data gate's summary): runners show its
    whole message, not only its first line."""


def code_fingerprint(package_dir: Path) -> str:
    """sha256 over a package's Python sources, in path order. A component records its own as an
    execution parameter, so a change in its code invalidates its cache and shows in MLMD."""
    digest = hashlib.sha256()
    for path in sorted(Path(package_dir).rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def __getattr__(name: str) -> Any:
    # KFP v2 steps find a custom artifact type by its name, "<module>.<Class>" with one dot
    # (see TFLiteModel.TYPE_NAME), so the class must be reachable from here. Imported lazily:
    # the CLI reads components.*.options without loading TFX.
    if name == "TFLiteModel":
        from components.tflite_export.component import TFLiteModel

        return TFLiteModel
    raise AttributeError(f"module 'components' has no attribute {name!r}")
