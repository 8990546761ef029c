"""What the data preflight (data/validate.py, run before every `make run`) costs.

    make exec CMD="python -m benchmarks.preflight [--rows 15002 1000000]"

Each size is the bundled taxi rows repeated up to N rows, written to a temporary directory;
the figure is the best of three passes over it.
"""

import argparse
import csv
import tempfile
import time
from pathlib import Path

from data import taxi
from data.validate import check_csv_dir
from pipeline.schemas import schema_columns


def write_rows(directory: Path, rows: int) -> Path:
    with taxi.bundled_csv().open(newline="") as f:
        header, *body = list(csv.reader(f))
    path = directory / "data.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for start in range(0, rows, len(body)):
            writer.writerows(body[: min(len(body), rows - start)])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[15_002, 1_000_000])
    args = parser.parse_args()
    columns = schema_columns()
    print("| rows | file size, MB | preflight, s | MB/s |\n|---:|---:|---:|---:|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_rows(Path(tmp), rows)
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                check_csv_dir(Path(tmp), columns)
                best = min(best, time.perf_counter() - start)
            size = path.stat().st_size / 1e6
            print(f"| {rows:,} | {size:.1f} | {best:.2f} | {size / best:.0f} |")


if __name__ == "__main__":
    main()
