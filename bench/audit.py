"""The audit log's cost per event: what every matched file's decision adds to a scan.

Each event is one transaction that locks the chain's head row, hashes the previous
entry and appends (``hashguard.audit.record``). The baseline, in the same run on the
same database, is the bare minimum of a durable event: one row inserted into a table of
the same shape in its own transaction, without the chain.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, insert

from bench.config import REPEATS, postgres_url
from bench.report import Row
from bench.timing import median, round_robin
from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.store import open_store

EVENTS = 500
DETAILS = {"verdict": "review", "rule": "review: bank x pdq distance 12 <= 24", "run": 1}


def _per_event(append: Callable[[int], object]) -> float:
    """Median seconds of ``EVENTS`` appends."""
    times = []
    for index in range(EVENTS):
        start = time.perf_counter()
        append(index)
        times.append(time.perf_counter() - start)
    return median(times)


def _rows(backend: str, url: str) -> list[Row]:
    bare = MetaData()
    plain = Table(
        "bench_plain_events",
        bare,
        Column("id", Integer, primary_key=True),
        Column("actor", String(200)),
        Column("action", String(100)),
        Column("subject", String(300)),
        Column("details", JSON),
    )
    engine = create_engine(url)
    bare.create_all(engine)

    def plain_insert(index: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                insert(plain).values(
                    actor="system:bench",
                    action="scan.decision",
                    subject=f"file:{index}",
                    details=DETAILS,
                )
            )

    with closing(open_store(url, migrate=True)) as store:
        samples = round_robin(
            {
                "chain": lambda: _per_event(
                    lambda i: record(
                        store, "system:bench", AuditAction.SCAN_DECISION, f"file:{i}", **DETAILS
                    )
                ),
                "plain": lambda: _per_event(plain_insert),
            },
            REPEATS,
        )
    engine.dispose()
    chain, baseline = median(samples["chain"]), median(samples["plain"])
    return [
        Row(
            figure=f"audit event (hash chain, head-row lock), {backend}: p50 per event",
            value=chain * 1e3,
            unit="ms",
            baseline=baseline * 1e3,
            ratio=chain / baseline,
            samples=samples["chain"],
        )
    ]


def audit_rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as scratch:
        rows = _rows("SQLite", f"sqlite:///{Path(scratch) / 'audit.db'}")
    url = postgres_url()
    if url is not None:
        rows += _rows("PostgreSQL", url)
    return rows
