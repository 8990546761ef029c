"""Checks on the input CSV files before any component runs: structure only, with clear errors.

What the values mean (types, ranges, NaN and infinities, missing labels, drift) is TFDV's job,
in the pipeline's data gate; this catches what would otherwise surface inside CsvExampleGen as
a Beam stack trace, an error naming no file, or silently wrong columns. The rule follows what
CsvExampleGen (TFX 1.21) itself reads:

- every entry of the data directory is read as a CSV file, whatever its name (hidden files
  too): each must be a readable, plain-text, UTF-8 CSV file, a directory is refused;
- accepted as CsvExampleGen reads them correctly: CRLF line endings, quoted fields with commas
  or newlines, blank lines, a last line without a newline, columns in any order in the first
  file, a symbolic link to a good file;
- refused: compressed files (its header check reads the raw bytes), a byte-order mark or
  quoted or space-padded column names (they would become part of the names), UTF-16 or other
  non-UTF-8 text, NUL bytes, lone-CR line endings (read as one line), a header unlike the
  schema's columns, files whose columns are in a different order from the first file's, a row
  with another number of fields, an unclosed quote, a field over Python's CSV limit, a file
  with no rows.

Every line of every file is read (the whole file, not a sample: a bad line far into a large
file is found here, with its number, before a component runs).
"""

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

FIELD_LIMIT = csv.field_size_limit()  # tfx_bsl's CSV reader has Python's default limit too

# What a file starts with when it is not plain text (CsvExampleGen reads its header raw).
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed",
    b"BZh": "bzip2-compressed",
    b"PK\x03\x04": "a zip archive",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
}
_BOMS = {
    b"\xef\xbb\xbf": "starts with a UTF-8 byte-order mark, which CsvExampleGen reads as part of the "
    "first column's name: save it as UTF-8 without a byte-order mark",
    b"\xff\xfe": "is UTF-16 text (byte-order mark FF FE); CsvExampleGen reads UTF-8 only: save it as UTF-8",
    b"\xfe\xff": "is UTF-16 text (byte-order mark FE FF); CsvExampleGen reads UTF-8 only: save it as UTF-8",
}


class DataError(ValueError):
    """The input files cannot be read as the pipeline's CSV data; the message names the file."""


def check_csv_dir(data_dir: Path, columns: Iterable[str]) -> list[Path]:
    """Returns the files CsvExampleGen will read, or raises DataError naming the first problem
    and where it is (file, and line where there is one)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such directory")
    files = sorted(data_dir.iterdir())
    if not any(f.name.endswith(".csv") for f in files):
        raise DataError(f"{data_dir}: no *.csv file in it")
    expected = list(columns)
    first: tuple[Path, list[str]] | None = None
    for path in files:
        header = _check_entry(path, expected)
        if first is None:
            first = (path, header)
        elif header != first[1]:
            # Same columns (checked above), another order: CsvExampleGen compares headers as text.
            raise DataError(
                f"{path}: its columns are in another order than in {first[0].name}; CsvExampleGen "
                "needs the same header in every file: write them in one order"
            )
    return files


def _check_entry(path: Path, expected: list[str]) -> list[str]:
    hint = "" if path.name.endswith(".csv") and not path.name.startswith(".") else (
        " (CsvExampleGen reads every file in the data directory, whatever its name: move it out)")
    if path.is_symlink() and not path.exists():
        raise DataError(f"{path}: a symbolic link to {path.readlink()}, which does not exist{hint}")
    if path.is_dir():
        raise DataError(f"{path}: a directory; CsvExampleGen reads every entry of the data directory "
                        "as a CSV file: move it out")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file{hint}")
    try:
        with path.open("rb") as f:
            return _check_file(path, f, expected, hint)
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None


def _check_file(path: Path, f: BinaryIO, expected: list[str], hint: str) -> list[str]:
    def fail(message: str, line: int | None = None):
        where = f"line {line}: " if line else ""
        raise DataError(f"{path}: {where}{message}{hint}")

    start = f.read(8)
    if not start:
        fail("the file is empty")
    for magic, kind in _MAGIC.items():
        if start.startswith(magic):
            fail(f"{kind}; CsvExampleGen reads plain-text CSV files only: decompress it")
    for bom, message in _BOMS.items():
        if start.startswith(bom):
            fail(message)
    f.seek(0)

    raw_header = f.readline()
    header_text = _decoded(raw_header, 1, fail)
    if "\r" in header_text.rstrip("\r\n"):
        fail("lines end in a lone CR (old Mac line endings), which CsvExampleGen reads as one line: "
             "convert them to LF or CRLF", 1)
    header = header_text.strip().split(",")  # as CsvExampleGen splits it (tfx.utils.io_utils)
    if '"' in header_text:
        fail("the header quotes column names, and CsvExampleGen keeps the quotes as part of the "
             "names: write them unquoted", 1)
    padded = [name for name in header if name != name.strip()]
    if padded:
        fail(f"column name {padded[0]!r} has spaces around it, and CsvExampleGen keeps them as part "
             "of the name: remove them", 1)
    missing, unexpected = set(expected) - set(header), set(header) - set(expected)
    if not set(header) & set(expected):
        fail(f"the first line is not a header naming the schema's columns ({', '.join(expected[:3])}, ...)", 1)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(sorted(missing))}")
        if unexpected:
            parts.append(f"unexpected column(s) {', '.join(sorted(n or '(empty)' for n in unexpected))}")
        fail(f"the header does not match the schema: {'; '.join(parts)}", 1)
    if len(set(header)) != len(header):
        fail("the header repeats a column name", 1)

    body = f.tell()
    if _plain_utf8_balanced(f):
        f.seek(body)
        reader = csv.reader(io.TextIOWrapper(f, encoding="utf-8", newline=""))  # fast: all C
    else:  # something is wrong: line by line, to say where
        f.seek(body)
        reader = csv.reader(_lines(f, fail))
    rows, record_start = 0, 2
    try:
        for row in reader:
            line = reader.line_num + 1  # the header was read before the reader started
            if row:  # CsvExampleGen skips blank lines
                if len(row) != len(header):
                    fail(f"{len(row)} fields where the header has {len(header)}", line)
                rows += 1
            record_start = line + 1
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            fail(f"a field longer than {FIELD_LIMIT:,} characters, more than CsvExampleGen's CSV "
                 "reader takes", record_start)
        if "new-line character" in str(error):
            fail("a lone CR (carriage return) inside a line, where CsvExampleGen does not end the line: "
                 "remove it or quote the field", reader.line_num + 1)
        fail(f"not readable as CSV ({error})", reader.line_num + 1)
    if rows == 0:
        fail("a header but no rows")
    return header


def _plain_utf8_balanced(f: BinaryIO) -> bool:
    """Whether the rest of the file is UTF-8 without NUL bytes, with balanced quotes (fast)."""
    decoder, quotes = codecs.getincrementaldecoder("utf-8")(), 0
    try:
        while chunk := f.read(1 << 20):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
            quotes += chunk.count(b'"')
            if chunk.count(b"\r") != chunk.count(b"\r\n"):
                return False  # a lone CR: the csv module would split there, CsvExampleGen does not
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return quotes % 2 == 0


def _lines(f: BinaryIO, fail) -> Iterator[str]:
    """The lines after the header, decoded, failing on the first that is not UTF-8 text."""
    # CsvExampleGen joins lines into one record while it has seen an odd number of quotes.
    quotes, open_since = 0, 0
    for number, raw in enumerate(f, start=2):
        quotes += raw.count(b'"')
        open_since = (open_since or number) if quotes % 2 else 0
        yield _decoded(raw, number, fail)
    if open_since:
        fail('a quoted field is not closed (an unbalanced ") before the end of the file', open_since)


def _decoded(raw: bytes, line: int, fail) -> str:
    if b"\x00" in raw:
        fail(f"binary data (a NUL byte at column {raw.index(b'\x00') + 1}), not CSV text", line)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        fail(f"not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1}): save the file "
             "as UTF-8", line)
