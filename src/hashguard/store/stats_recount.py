"""The numbers of a period recounted from what was recorded one by one: the audit log
(replayed through ``store.stats_events``), the scan results (``store.stats_files``)
and the tenants' day rows (``lookups``).

What is recounted is what the recording counted, by the same functions, so a
difference is an event committed without its count or a count without its event.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, select

from hashguard.domain.stats import Metric, Way
from hashguard.store._util import stamp
from hashguard.store.scans import _result
from hashguard.store.schema import audit_events, scan_results, tenant_usage, tenants
from hashguard.store.stats import Tally, bank_sources, day_of
from hashguard.store.stats_events import COUNTED, tally_event
from hashguard.store.stats_files import tally_file

#: rows read per query (keyset pagination, no long-lived cursor)
PAGE = 2000


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(since, time(), UTC),
        datetime.combine(until + timedelta(days=1), time(), UTC),
    )


def recount(engine: Engine, since: date, until: date) -> tuple[Tally, int, int]:
    """The counts of the days ``since``..``until`` recounted; with the number of audit
    events replayed and of scan results recounted."""
    start, end = _bounds(since, until)
    tally = Tally()
    events = results = 0
    counted = [str(a) for a in COUNTED]
    last = 0
    with engine.connect() as conn:
        while True:
            rows = conn.execute(
                select(audit_events)
                .where(
                    audit_events.c.seq > last,
                    audit_events.c.at >= start,
                    audit_events.c.at < end,
                    audit_events.c.action.in_(counted),
                )
                .order_by(audit_events.c.seq)
                .limit(PAGE)
            ).all()
            for row in rows:
                tally_event(conn, tally, row.action, row.subject, row.details, stamp(row.at))
            events += len(rows)
            if len(rows) < PAGE:
                break
            last = rows[-1].seq
        sources = bank_sources(conn)
        last = 0
        while True:
            rows = conn.execute(
                select(scan_results)
                .where(
                    scan_results.c.id > last,
                    scan_results.c.scanned_at >= start,
                    scan_results.c.scanned_at < end,
                )
                .order_by(scan_results.c.id)
                .limit(PAGE)
            ).all()
            for row in rows:
                tally_file(
                    tally, day_of(stamp(row.scanned_at)), str(Way.SCAN), _result(row), sources
                )
            results += len(rows)
            if len(rows) < PAGE:
                break
            last = rows[-1].id
        # a tenant's lookups are counted with its day row's ``hashes`` (charge, refund)
        for row in conn.execute(
            select(tenants.c.name, tenant_usage.c.day, tenant_usage.c.hashes)
            .join(tenants, tenants.c.id == tenant_usage.c.tenant_id)
            .where(tenant_usage.c.day >= since, tenant_usage.c.day <= until)
        ):
            if row.hashes:
                tally.count(row.day, Metric.LOOKUPS, int(row.hashes), tenant=row.name)
    return tally, events, results
