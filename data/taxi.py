"""The Chicago taxi trips that ship inside the `tfx` package.

TFX's own taxi example and template read the same file (15,002 rows, 18 columns), so results
here compare with theirs. Nothing is downloaded: the file is copied out of the installed package
into DEFAULT_DATA_DIR the first time a run needs it.
"""

import csv
import os
import shutil
import tempfile
from pathlib import Path

import tfx

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "chicago_taxi"
_BUNDLED = ("examples", "chicago_taxi_pipeline", "data", "simple", "data.csv")


def bundled_csv() -> Path:
    """The CSV inside the installed tfx package."""
    path = Path(tfx.__file__).resolve().parent.joinpath(*_BUNDLED)
    if not path.is_file():
        raise FileNotFoundError(f"the tfx package no longer ships the taxi data at {path}")
    return path


def materialize(data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    """Copies the bundled CSV into `data_dir` unless a same-size copy is there; returns data_dir.

    copy2 keeps the file's modification time, and an unchanged file is left alone: ExampleGen
    fingerprints its input by size and mtime, so rewriting it would defeat the pipeline cache.
    """
    source, target = bundled_csv(), Path(data_dir) / "data.csv"
    if not (target.is_file() and target.stat().st_size == source.stat().st_size):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".data.csv.")  # one per caller
        os.close(fd)
        shutil.copy2(source, partial)
        os.replace(partial, target)  # atomic: a reader never sees half a file
    return Path(data_dir)


def write_sample(data_dir: Path, rows: int) -> Path:
    """Writes every k-th row of the bundled data (about `rows` rows) to data_dir/data.csv."""
    with bundled_csv().open(newline="") as f:
        reader = csv.reader(f)
        header, body = next(reader), list(reader)
    stride = max(1, len(body) // rows)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    target = Path(data_dir) / "data.csv"
    with target.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(body[::stride][:rows])
    return Path(data_dir)
