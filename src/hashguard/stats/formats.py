"""Text forms of the figures shared by the CLI and the UI: durations as people read
them, and a table as CSV."""

from __future__ import annotations

import csv
import io

from hashguard.stats.aggregate import StatsTable, table_columns, table_records


def duration(seconds: float | None) -> str:
    """A bucket's upper bound as people read it: ``≤ 2.5 s``, ``≤ 6 h``, ``> 180 d``."""
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return "> 180 d"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"≤ {seconds / size:g} {unit}"
    return f"≤ {seconds:g} s"


def table_csv(table: StatsTable) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table_columns(table), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_records(table))
    return buffer.getvalue()
