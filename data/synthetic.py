"""Synthetic Chicago taxi trips at any size, shaped like the bundled data.

The shape comes from the real data (data/taxi.py's bundled CSV), measured once into a Profile:
the columns and their kinds, missing-value rates, categorical frequencies, numeric ranges and the
label rate. Each synthetic row starts from a real row drawn at random (so the joint structure that
makes the label learnable, e.g. tips by payment type, survives), then:

- fare, tips, trip_miles and trip_seconds are scaled by one random factor per row (log-normal,
  sigma 0.1), rounded as in the real data and clamped to the real column's range. Tips and fare
  move together, so "tips > 20% of the fare" (the label) keeps its rate;
- each categorical column (strings and integer codes, missing included) is, with probability
  RESAMPLE_RATE, replaced by a draw from that column's own frequencies: new combinations appear,
  every marginal frequency stays that of the real data;
- trip_start_timestamp moves by whole weeks (-4..4), keeping weekday and hour.

Rows are written as sharded CSV files (data-00000-of-00004.csv, each with the header), chunk by
chunk: memory does not grow with the number of rows. Output is a function of (rows, seed,
shard_rows) only: each shard draws from its own generator seeded by (seed, shard index).

    python -m data.synthetic --rows 1000000 --output-dir /tmp/taxi_1m [--seed 0]

Spans (data arriving period by period, laid out span-1/, span-2/, ... as the pipeline reads them):
span i's fares (and tips, so the label's rate holds) are the generated ones times
(1 + fare_drift) ** (i - 1); a broken span has a sudden change the data gate stops (BROKEN_KINDS).

    python -m data.synthetic --spans 5 --rows 3000 --output-dir /tmp/spans --fare-drift 0.03 --broken-span 3
"""

import csv
import dataclasses
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from data import taxi
from data.spans import SPAN_PREFIX
from models import features

RESAMPLE_RATE = 0.05
SCALE_SIGMA = 0.1
# Columns scaled together (one factor per row), and how each is rounded.
SCALED = {"fare": 2, "tips": 2, "trip_miles": 2, "trip_seconds": 0}
TIMESTAMP = "trip_start_timestamp"
WEEK_SECONDS = 7 * 24 * 3600
# Kept from the drawn row: coordinates, census tracts and areas move together.
KEPT_TOGETHER = (
    "pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude",
    "pickup_census_tract", "dropoff_census_tract", "pickup_community_area", "dropoff_community_area",
)
DEFAULT_SHARD_ROWS = 250_000
CHUNK_ROWS = 20_000
# A broken span's sudden change, and which check of the data gate stops it:
# - "payment": a payment type the curated schema's domain lacks, on BROKEN_SHARE of the rows
#   (ExampleValidator's ENUM_TYPE_UNEXPECTED_STRING_VALUES: stopped even without a baseline);
# - "fare": fares x100 (L-infinity/Jensen-Shannon drift ~0.9 against the last accepted span, far
#   beyond the 0.5 limit: needs an accepted span before it and 1,000+ training rows each).
BROKEN_KINDS = ("payment", "fare")
BROKEN_PAYMENT_TYPE = "Crypto"
BROKEN_SHARE = 0.3
BROKEN_FARE_FACTOR = 100.0


def _kind(values: Sequence[str]) -> str:
    present = [v for v in values if v != ""]
    for kind, parse in (("int", int), ("float", float)):
        try:
            for v in present:
                parse(v)
            return kind
        except ValueError:
            continue
    return "string"


def big_tipper(fare: str, tips: str) -> bool:
    """The label as Transform computes it: tips > 20% of the fare; a missing fare gives 0."""
    return fare != "" and float(tips or 0) > features.BIG_TIP_FRACTION * float(fare)


@dataclasses.dataclass(frozen=True)
class Profile:
    """What the synthetic data keeps from the real data."""

    columns: tuple[str, ...]
    kinds: dict[str, str]  # "int", "float" or "string"
    missing_rates: dict[str, float]
    frequencies: dict[str, dict[str, float]]  # categorical columns: value ("" = missing) -> share
    ranges: dict[str, tuple[float, float]]  # numeric columns: (min, max) of the present values
    label_rate: float
    rows: int

    @classmethod
    def measure(cls, rows: Sequence[dict[str, str]], columns: Sequence[str]) -> "Profile":
        n = len(rows)
        kinds, missing, freqs, ranges = {}, {}, {}, {}
        for col in columns:
            values = [r[col] for r in rows]
            kinds[col] = _kind(values)
            missing[col] = sum(v == "" for v in values) / n
            if col not in SCALED and col != TIMESTAMP:
                freqs[col] = {v: c / n for v, c in Counter(values).items()}
            present = [float(v) for v in values if v != ""] if kinds[col] != "string" else []
            if present:
                ranges[col] = (min(present), max(present))
        label = sum(big_tipper(r["fare"], r["tips"]) for r in rows) / n
        return cls(tuple(columns), kinds, missing, freqs, ranges, label, n)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def real_profile() -> Profile:
    """The profile of the bundled Chicago taxi data."""
    columns, rows = read_csv(taxi.bundled_csv())
    return Profile.measure(rows, columns)


def profile_of_dir(data_dir: Path) -> Profile:
    """The profile of every *.csv under data_dir together (for checking generated data)."""
    columns, rows = None, []
    for path in sorted(Path(data_dir).glob("*.csv")):
        columns, more = read_csv(path)
        rows += more
    return Profile.measure(rows, columns or [])


class Generator:
    """Draws synthetic rows (lists of CSV strings, in the real column order) from the real data."""

    def __init__(self, source: Path | None = None):
        columns, rows = read_csv(source or taxi.bundled_csv())
        self.profile = Profile.measure(rows, columns)
        self.columns = columns
        # The real rows as one string array [rows, columns]: the rows drawn from.
        self.table = np.array([[r[c] for c in columns] for r in rows], dtype=object)
        self._index = {c: i for i, c in enumerate(columns)}
        self._categorical = [c for c in self.profile.frequencies if c not in KEPT_TOGETHER]
        self._scaled = {}
        for col, digits in SCALED.items():
            column = self.table[:, self._index[col]]
            present = column != ""
            values = np.zeros(len(column))
            values[present] = column[present].astype(float)
            self._scaled[col] = (values, present, digits)
        ts = self.table[:, self._index[TIMESTAMP]]
        self._timestamps = np.array([int(v) if v else 0 for v in ts], dtype=np.int64)
        self._timestamp_present = ts != ""

    def chunk(self, rng: np.random.Generator, n: int) -> list[list[str]]:
        """n synthetic rows."""
        picked = rng.integers(0, len(self.table), size=n)
        out = self.table[picked].copy()
        factor = np.exp(rng.normal(0.0, SCALE_SIGMA, size=n))
        for col, (values, present, digits) in self._scaled.items():
            low, high = self.profile.ranges[col]
            scaled = np.clip(np.round(values[picked] * factor, digits), low, high)
            keep = present[picked]
            text = [str(int(v)) for v in scaled] if digits == 0 else [f"{v:.{digits}f}" for v in scaled]
            column = np.array(text, dtype=object)
            out[keep, self._index[col]] = column[keep]
        weeks = rng.integers(-4, 5, size=n)
        stamps = self._timestamps[picked] + weeks * WEEK_SECONDS
        keep = self._timestamp_present[picked]
        out[keep, self._index[TIMESTAMP]] = np.array([str(v) for v in stamps], dtype=object)[keep]
        for col in self._categorical:
            resample = rng.random(n) < RESAMPLE_RATE
            k = int(resample.sum())
            if k:
                freq = self.profile.frequencies[col]
                values = np.array(list(freq), dtype=object)
                p = np.array(list(freq.values()))
                out[resample, self._index[col]] = rng.choice(values, size=k, p=p / p.sum())
        return out.tolist()

    def rows(self, rng: np.random.Generator, n: int, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[str]]:
        """n synthetic rows, made chunk_rows at a time."""
        done = 0
        while done < n:
            size = min(chunk_rows, n - done)
            yield from self.chunk(rng, size)
            done += size


def shard_names(rows: int, shard_rows: int = DEFAULT_SHARD_ROWS) -> list[str]:
    shards = max(1, math.ceil(rows / shard_rows))
    return [f"data-{i:05d}-of-{shards:05d}.csv" for i in range(shards)]


def write(
    output_dir: Path,
    rows: int,
    seed: int | Sequence[int] = 0,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    generator: Generator | None = None,
    adjust: Callable[[np.random.Generator, list[list[str]]], None] | None = None,
) -> list[Path]:
    """Writes `rows` synthetic rows as sharded CSV under output_dir; returns the shard paths.

    Each shard is written to a hidden temporary name and renamed when complete, so a directory
    holding every shard name holds complete data (see is_complete). `adjust(rng, chunk)`, if given,
    changes each chunk of rows in place before it is written (the spans' drift).
    """
    if rows < 1 or shard_rows < 1:
        raise ValueError(f"rows and shard_rows must be at least 1, got {rows} and {shard_rows}")
    generator = generator or Generator()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, name in enumerate(shard_names(rows, shard_rows)):
        count = min(shard_rows, rows - index * shard_rows)
        rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), index])
        target, partial = output_dir / name, output_dir / f".{name}.partial"
        with partial.open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(generator.columns)
            done = 0
            while done < count:
                chunk = generator.chunk(rng, min(CHUNK_ROWS, count - done))
                if adjust is not None:
                    adjust(rng, chunk)
                writer.writerows(chunk)
                done += len(chunk)
                del chunk  # before the next one is made: one chunk in memory at a time
        os.replace(partial, target)
        paths.append(target)
    return paths


def span_dir(data_dir: Path, span: int) -> Path:
    return Path(data_dir) / f"{SPAN_PREFIX}{span}"  # the layout data.spans reads


def span_adjuster(columns: Sequence[str], span: int, fare_drift: float = 0.0,
                  broken: str | None = None) -> Callable[[np.random.Generator, list[list[str]]], None]:
    """The change span `span` (1-based) makes to generated rows: its drift, and its break if any."""
    if broken is not None and broken not in BROKEN_KINDS:
        raise ValueError(f"broken kind must be one of {', '.join(BROKEN_KINDS)}, not {broken!r}")
    index = {c: i for i, c in enumerate(columns)}
    factor = (1.0 + fare_drift) ** (span - 1) * (BROKEN_FARE_FACTOR if broken == "fare" else 1.0)
    money = [index[features.FARE_KEY], index[features.RAW_LABEL_KEY]]

    def adjust(rng: np.random.Generator, chunk: list[list[str]]) -> None:
        for row in chunk:
            if factor != 1.0:
                for i in money:
                    if row[i] != "":
                        row[i] = f"{float(row[i]) * factor:.2f}"
        if broken == "payment":
            payment = index["payment_type"]
            for row, hit in zip(chunk, rng.random(len(chunk)) < BROKEN_SHARE):
                if hit:
                    row[payment] = BROKEN_PAYMENT_TYPE

    return adjust


def write_span(data_dir: Path, span: int, rows: int, seed: int = 0, fare_drift: float = 0.0,
               broken: str | None = None, generator: Generator | None = None) -> Path:
    """Writes span `span` as data_dir/span-<span>/ (deterministic by seed and span); returns it.

    Written under a hidden name and renamed when complete: a reader listing span-* never sees
    half a span.
    """
    if span < 1:
        raise ValueError(f"spans are numbered from 1, got {span}")
    generator = generator or Generator()
    target = span_dir(data_dir, span)
    partial = target.with_name(f".{target.name}.partial")
    for path in (partial, target):
        if path.exists():
            shutil.rmtree(path)
    write(partial, rows, seed=[seed, span], generator=generator,
          adjust=span_adjuster(generator.columns, span, fare_drift, broken))
    os.replace(partial, target)
    return target


def write_spans(data_dir: Path, spans: int, rows: int, seed: int = 0, fare_drift: float = 0.0,
                broken_span: int | None = None, broken: str = "payment") -> list[Path]:
    """Writes spans 1..spans under data_dir, span `broken_span` (if any) broken the `broken` way."""
    if broken_span is not None and not 1 <= broken_span <= spans:
        raise ValueError(f"--broken-span must be between 1 and {spans}, got {broken_span}")
    generator = Generator()
    return [write_span(data_dir, i, rows, seed, fare_drift, broken if i == broken_span else None, generator)
            for i in range(1, spans + 1)]


def is_complete(output_dir: Path, rows: int, shard_rows: int = DEFAULT_SHARD_ROWS) -> bool:
    """Whether output_dir holds exactly the shards write(output_dir, rows, ...) writes."""
    present = {p.name for p in Path(output_dir).glob("*.csv")}
    return present == set(shard_names(rows, shard_rows))


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-rows", type=int, default=DEFAULT_SHARD_ROWS)
    parser.add_argument("--spans", type=int, help="write this many spans, span-1/ ... (--rows each)")
    parser.add_argument("--fare-drift", type=float, default=0.0, help="spans: fares rise this much per span (0.03: 3%%)")
    parser.add_argument("--broken-span", type=int, help="spans: this span has a sudden change the data gate stops")
    parser.add_argument("--broken-kind", choices=BROKEN_KINDS, default="payment")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.spans is not None:
        try:
            paths = write_spans(args.output_dir, args.spans, args.rows, args.seed, args.fare_drift,
                                args.broken_span, args.broken_kind)
        except ValueError as error:
            parser.error(str(error))
        print(f"{args.spans} spans of {args.rows} rows under {args.output_dir} in {time.perf_counter() - started:.1f}s")
        return
    paths = write(args.output_dir, args.rows, args.seed, args.shard_rows)
    seconds = time.perf_counter() - started
    print(f"{args.rows} rows in {len(paths)} shards under {args.output_dir} in {seconds:.1f}s")


if __name__ == "__main__":
    main()
