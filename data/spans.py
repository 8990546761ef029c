"""Data as spans: a data directory of `span-1/`, `span-2/`, ... folders, each holding the CSV files
of one period (TFX's `{SPAN}` pattern `span-{SPAN}/*`), or a flat directory of CSV files (one span).

The layout is checked here, before any component runs, because CsvExampleGen's own span
resolution silently ignores what its pattern does not match (CSV files beside the span folders,
`span-x/`) and reports the rest deep inside a Beam stack trace. Light: no TensorFlow.
"""

import dataclasses
import re
from pathlib import Path

from data.validate import DataError

SPAN_PREFIX = "span-"
SPAN_PATTERN = SPAN_PREFIX + "{SPAN}/*"  # CsvExampleGen's input pattern, relative to the data directory
FLAT_PATTERN = "*"  # CsvExampleGen's default pattern: every file of the directory
SPLIT_NAME = "single_split"  # CsvExampleGen's name for the one input split
_SPAN_DIR = re.compile(r"span-([1-9][0-9]*)")


@dataclasses.dataclass(frozen=True)
class Layout:
    """A checked data directory: its span folders by number (none: a flat directory, one span)."""

    root: Path
    spans: dict[int, Path]

    @property
    def flat(self) -> bool:
        return not self.spans

    @property
    def newest(self) -> int:
        """The newest span's number (0 for a flat directory, as CsvExampleGen records it)."""
        return max(self.spans, default=0)

    def folder(self, span: int) -> Path:
        return self.root if self.flat else self.spans[span]

    def describe(self) -> str:
        numbers = sorted(self.spans)
        return "no span folders" if not numbers else f"span{'s' if len(numbers) > 1 else ''} {ranges(numbers)}"


def layout(root: Path | str) -> Layout:
    """The data directory's layout, or DataError naming the folder that breaks it."""
    root = Path(root)
    try:
        entries = sorted(root.iterdir())
    except OSError as error:
        raise DataError(f"{root}: cannot be listed ({error.strerror or error})") from None
    named = [e for e in entries if e.name.startswith(SPAN_PREFIX)]
    if not named:
        return Layout(root, {})
    spans: dict[int, Path] = {}
    for entry in named:
        match = _SPAN_DIR.fullmatch(entry.name)
        if not match or not entry.is_dir():
            what = "not a folder" if match else "not a span folder name"
            raise DataError(f"{entry}: {what}; span folders are named span-1, span-2, ... (a number from 1, "
                            "no leading zeros), each holding that span's CSV files")
        if not any(entry.iterdir()):
            raise DataError(f"{entry}: an empty span folder; put the span's CSV files in it or remove it")
        spans[int(match.group(1))] = entry
    others = [e.name for e in entries if e not in named]
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise DataError(f"{root}: holds span folders and other entries ({shown}), which the span pattern "
                        f"{SPAN_PATTERN} would silently ignore: move them into a span folder or out")
    return Layout(root, spans)


def select(found: Layout, span: int, option: str = "--span") -> int:
    """The span a run reads: `span`, or the newest when 0; DataError when there is no such span."""
    if span == 0:
        return found.newest
    if found.flat:
        raise DataError(f"{option} {span}: {found.root} is a flat directory of CSV files (one span, no span-N "
                        "folders); lay it out as span-1/, span-2/, ... to choose a span")
    if span not in found.spans:
        raise DataError(f"{option} {span}: no folder {found.root / f'{SPAN_PREFIX}{span}'} ({found.root} holds "
                        f"{found.describe()})")
    return span


def pattern(found: Layout) -> str:
    return FLAT_PATTERN if found.flat else SPAN_PATTERN


def fingerprint(found: Layout, span: int) -> str:
    """What CsvExampleGen records as the Examples artifact's `input_fingerprint` for this span.

    TFX's io_utils.generate_fingerprint over the span's files (count, bytes, second-granularity
    mtimes, xor'ed and summed), computed without TensorFlow so that an unchanged newest span is
    told before anything heavy starts. A test holds it equal to TFX's own.
    """
    folder = found.folder(span)
    files = sorted(p for p in folder.iterdir())
    total = xor = summed = 0
    for path in files:
        stat = path.stat()
        total += stat.st_size
        mtime = stat.st_mtime_ns // 1_000_000_000
        xor ^= mtime
        summed += mtime
    return f"split:{SPLIT_NAME},num_files:{len(files)},total_bytes:{total},xor_checksum:{xor},sum_checksum:{summed}"


def span_dir(root: Path | str, span: int) -> Path:
    """Where span `span` of a data directory lives (what a generator of spans writes to)."""
    return Path(root) / f"{SPAN_PREFIX}{span}"


def ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    numbers = sorted(numbers)
    out, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out)

