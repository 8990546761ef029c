"""Which span a run reads, and whether it has anything to do, decided before anything heavy.

- the newest span read before, unchanged (CsvExampleGen's input fingerprint, recorded on its
  Examples artifact in MLMD, equals the folder's now), by a run that finished with it (evaluated,
  or refused by the data gate): one line, and nothing runs;
- `--train-spans K` whose window would skip span folders that never went through the pipeline:
  refused, naming them (run them first, oldest first: each is then checked against the span
  before it, and the window holds only spans the data gate accepted).

Light: ml_metadata and the standard library only (the CLI asks before importing TensorFlow).
"""

from pathlib import Path

from data import spans
from data.validate import DataError
from lineage.store import LineageError, StoreAddress, open_store
from pipeline.config import PipelineConfig
from pipeline.gate_records import ingested
from pipeline.locations import is_uri
from pipeline.metadata import MetadataStore


def layout_of(data: str | None) -> spans.Layout | None:
    """The local data directory's checked layout; None for the bundled data or a URI."""
    return None if data is None or is_uri(data) else spans.layout(Path(data))


def records(metadata: MetadataStore | None) -> list[dict]:
    """What CsvExampleGen ingested so far (pipeline.gate_records.ingested); none without a store."""
    if metadata is None or (metadata.sqlite is not None and not Path(metadata.sqlite).is_file()):
        return []
    try:
        return ingested(open_store(StoreAddress.of(metadata)))
    except LineageError:
        return []


def unchanged(config: PipelineConfig, data: str | None, metadata: MetadataStore | None) -> str | None:
    """The line to print when the newest span was read before and has not changed; else None.
    Raises DataError on a bad layout or a --span the data directory does not hold.

    Only on span folders and without --span: a flat directory re-runs (the cache makes it cheap),
    and --span N is a request to run span N whatever was run before.
    """
    found = layout_of(data)
    if found is None:
        return None
    span = spans.select(found, config.span)  # a bad layout or --span: refused here, before TensorFlow
    if config.span or found.flat:
        return None
    fingerprint = spans.fingerprint(found, span)
    seen = [r for r in records(metadata) if r["span"] == span and r["fingerprint"] == fingerprint and r["finished"]]
    if not seen:
        return None
    verdict = "the data gate accepted it" if any(r["accepted"] for r in seen) else "the data gate refused it"
    return (f"No new span in {found.root}: span {span} is the newest and was read before, unchanged ({verdict}); "
            f"nothing to run. Add span-{span + 1}/, or give --span {span} to run it again.")


def check_window(config: PipelineConfig, data: str | None, metadata: MetadataStore | None) -> None:
    """DataError when the window of --train-spans K would pass over span folders never run.

    Fewer earlier spans than K-1 in the data directory (a young history) is fine: the window is
    what there is. A span the data gate refused is passed over: it never trains a model.
    """
    found = layout_of(data)
    if config.train_spans < 2 or found is None or found.flat:
        return
    span = spans.select(found, config.span)
    seen = records(metadata)
    accepted = {r["span"] for r in seen if r["accepted"]}
    ran = {r["span"] for r in seen}
    needed, missing = config.train_spans - 1, []
    for earlier in sorted((s for s in found.spans if s < span), reverse=True):
        if needed == 0:
            break
        if earlier in accepted:
            needed -= 1
        elif earlier not in ran:
            missing.append(earlier)
            needed -= 1
    if missing:
        first = min(missing)
        raise DataError(
            f"--train-spans {config.train_spans}: span{'s' if len(missing) > 1 else ''} {spans.ranges(missing)} of "
            f"{found.root} never went through the pipeline, so the data gate has not checked "
            f"{'them' if len(missing) > 1 else 'it'}: run {'them' if len(missing) > 1 else 'it'} first, oldest first "
            f"(--span {first}), or train on fewer spans")
