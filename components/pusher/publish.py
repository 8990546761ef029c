"""Publishing a model version: written aside, renamed into place, nothing left half-done.

TF Serving watches <base>/<version>/ and loads the highest complete version; a directory that
appears by rename is complete the moment it is visible. Hidden staging directories (".<version>.
<id>.partial") are what an interrupted push leaves; readers ignore names that are not integers.
"""

import os
import time
import uuid
from collections.abc import Callable, Sequence

import tensorflow as tf

PARTIAL_SUFFIX = ".partial"


def versions(base: str) -> list[int]:
    """The complete versions under `base`, oldest first (staging directories are not versions)."""
    if not tf.io.gfile.isdir(base):
        return []
    return sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(base) if name.rstrip("/").isdigit())


def leftovers(base: str) -> list[str]:
    """Staging directories an interrupted push left under `base` (never served, safe to delete)."""
    if not tf.io.gfile.isdir(base):
        return []
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(base)
                  if name.rstrip("/").startswith(".") and name.rstrip("/").endswith(PARTIAL_SUFFIX))


def next_version(bases: Sequence[str], now: float | None = None) -> str:
    """TFX's version (the Unix time in seconds), moved past every version already in `bases`: two
    pushes within a second, or a clock behind the last push, never reuse or reorder a version."""
    latest = max((v for base in bases for v in versions(base)), default=0)
    return str(max(int(now if now is not None else time.time()), latest + 1))


Writer = Callable[[str], None]  # fills a staging directory


def publish(version: str, writers: Sequence[tuple[str, Writer]]) -> list[str]:
    """Writes each (base, writer) pair's files into a staging directory beside <base>/<version>, then
    renames them into place in the order given: put the one readers watch (the SavedModel) last.

    All or nothing: if a writer or a rename fails, every directory this call already renamed into
    place is removed again and the staging directories are deleted, so the bases are as they were.
    Returns the published directories.
    """
    staged: list[tuple[str, str]] = []
    published: list[str] = []
    try:
        for base, write in writers:
            final = f"{base.rstrip('/')}/{version}"
            if tf.io.gfile.exists(final):
                raise FileExistsError(f"{final} already exists; a pushed version is never overwritten")
            partial = f"{base.rstrip('/')}/.{version}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
            tf.io.gfile.makedirs(partial)
            staged.append((partial, final))
            write(partial)
        for partial, final in staged:
            tf.io.gfile.rename(partial, final)
            published.append(final)
    except BaseException:
        for final in published:
            tf.io.gfile.rmtree(final)
        for partial, _ in staged:
            if tf.io.gfile.exists(partial):
                tf.io.gfile.rmtree(partial)
        raise
    return published


def copy_tree(source: str) -> Writer:
    """A writer that copies the directory `source` (a SavedModel, a TFLite twin) file by file."""

    def write(target: str) -> None:
        for directory, _, files in tf.io.gfile.walk(source):
            relative = os.path.relpath(directory, source)
            into = target if relative == "." else os.path.join(target, relative)
            tf.io.gfile.makedirs(into)
            for name in files:
                tf.io.gfile.copy(os.path.join(directory, name), os.path.join(into, name), overwrite=True)

    return write


def with_warmup(write: Writer, warmup_file: str | None) -> Writer:
    """A SavedModel writer that also puts TF Serving's warm-up requests in the version's
    assets.extra/, which TF Serving replays before it serves the version."""
    if warmup_file is None:
        return write

    def write_with_warmup(target: str) -> None:
        write(target)
        tf.io.gfile.makedirs(os.path.join(target, "assets.extra"))
        tf.io.gfile.copy(warmup_file, os.path.join(target, "assets.extra", os.path.basename(warmup_file)), overwrite=True)

    return write_with_warmup
