"""Bank import figures: a generated list of made-up hashes imported new, then again unchanged."""

from __future__ import annotations

import random
import re
import sys
import tempfile
from pathlib import Path

from bench.cli import BenchError, Finished, run_hashguard
from bench.config import CACHE_DIR
from bench.report import FAIL, PASS, Row

BANK = "bench-1m"
_REPORT = re.compile(r"(\d+) rows, (\d+) added, (\d+) updated, (\d+) unchanged, (\d+) removed")


def _pdq(rng: random.Random) -> str:
    """A random 256-bit hash; never all zero (the importer rightly refuses those)."""
    value = 0
    while value == 0:
        value = rng.getrandbits(256)
    return f"{value:064x}"


def list_csv(rows: int) -> Path:
    """A CSV list of ``rows`` made-up entries, half MD5 and half PDQ, cached by size."""
    path = CACHE_DIR / f"bank-{rows}.csv"
    if path.exists():
        return path
    rng = random.Random(rows)
    partial = path.with_suffix(".part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("w", encoding="ascii", newline="") as out:
        out.write("algorithm,hash,entry_id,category\n")
        for n in range(rows):
            if n % 2 == 0:
                out.write(f"md5,{rng.getrandbits(128):032x},e{n},bench\n")
            else:
                out.write(f"pdq,{_pdq(rng)},e{n},bench\n")
    partial.replace(path)
    return path


def _import(csv_file: Path, home: Path, database_url: str | None) -> Finished:
    args = ["banks", "import", BANK, str(csv_file), "--format", "csv"]
    args += ["--source", "bench", "--licence", "test only"]
    return run_hashguard(args, home=home, database_url=database_url)


def _counts(done: Finished) -> tuple[int, ...] | None:
    found = _REPORT.search(" ".join(done.stderr.split()))
    return tuple(int(n) for n in found.groups()) if found else None


def _row(figure: str, done: Finished, rows: int, expected: tuple[int, ...]) -> Row:
    """``expected``: (rows, added, updated, unchanged, removed) the import must report."""
    counts = _counts(done)
    completed = done.returncode == 0 and counts == expected
    if not completed:
        sys.stderr.write(
            f"{figure}: exit {done.returncode}, reported {counts}, expected {expected}\n"
            f"{done.tail()}\n"
        )
    return Row(
        figure=figure,
        value=done.seconds,
        unit="s",
        extra={"rows/s": rows / done.seconds},
        target="completes",
        verdict=PASS if completed else FAIL,
        samples=[done.seconds],
    )


def _prepare_postgres(home: Path, url: str) -> None:
    upgraded = run_hashguard(["db", "upgrade"], home=home, database_url=url)
    if upgraded.returncode != 0:
        raise BenchError(f"hashguard db upgrade failed on BENCH_POSTGRES_URL\n{upgraded.tail()}")
    # The database may be shared: start from no bench bank, whether one existed or not.
    run_hashguard(["banks", "delete", BANK, "--yes"], home=home, database_url=url)


def import_rows(
    rows: int, *, backend: str = "SQLite", database_url: str | None = None
) -> list[Row]:
    """Time importing the list into a new bank, then importing the same file again."""
    csv_file = list_csv(rows)
    with tempfile.TemporaryDirectory(prefix="hashguard-bench-home-") as tmp:
        home = Path(tmp)
        if database_url is not None:
            _prepare_postgres(home, database_url)
        first = _import(csv_file, home, database_url)
        again = _import(csv_file, home, database_url) if first.returncode == 0 else None
    result = [
        _row(
            f"bank import, {rows:,} rows CSV, {backend}, new bank",
            first,
            rows,
            (rows, rows, 0, 0, 0),
        )
    ]
    if again is not None:
        figure = f"bank re-import, same {rows:,} rows (all unchanged), {backend}"
        result.append(_row(figure, again, rows, (rows, 0, 0, rows, 0)))
    return result
