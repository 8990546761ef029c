"""How a failed run is told: in which component, the line that says why, where the full log is."""

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from components import ReadableError


class RunFailed(Exception):
    """The run stopped: in which component (None: before any started), why, and where the full log is."""

    def __init__(self, component: str | None, error_line: str, log_file: Path):
        self.component, self.error_line, self.log_file = component, error_line, log_file
        where = f"in {component}" if component else "before any component started"
        super().__init__(f"Run failed {where}: {error_line}\nFull log: {log_file}")


@contextlib.contextmanager
def failures_told() -> Iterator[None]:
    """Around a run (any runner): a failure a user can act on is told in one line on stderr (a
    failed component: that line and where the full log is) and the process exits with status 1."""
    from data.validate import DataError
    from pipeline.metadata import StoreError
    from runs.state import RunLocked

    try:
        yield
    except RunFailed as failure:
        print(failure, file=sys.stderr)
        raise SystemExit(1) from None
    except (DataError, RunLocked, StoreError) as error:
        print(f"Error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


MAX_LINE = 500  # characters: Beam's CSV errors quote whole rows, a long line would fill the console


def _shortened(line: str) -> str:
    return line if len(line) <= MAX_LINE else f"{line[:MAX_LINE]}... ({len(line):,} characters; the log has all)"


def first_error_line(error: BaseException) -> str:
    """The line that says what went wrong: the innermost explicit cause's first message line.

    Framework wrappers (Beam re-raises with the whole inner traceback in its message) are
    looked through; traceback lines are skipped. An error written for people to act on (a
    components.ReadableError, e.g. the data gate's summary) is given whole.
    """
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ReadableError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 20:
        chain.append(chain[-1].__cause__)
    for exc in reversed(chain):
        for text in str(exc).splitlines():
            text = text.strip()
            if text and not text.startswith(("Traceback (most recent call last)", 'File "')):
                return _shortened(f"{type(exc).__name__}: {text}")
    return type(error).__name__
