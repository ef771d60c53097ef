"""Statistics are counted once, in the transaction of what they count: after a randomized
workload (and after kill -9 in the middle of one) the rollups equal a recount from the
audit log and the scan results (``hashguard stats verify``)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankKind
from hashguard.domain.matches import Match
from hashguard.domain.policy import Action, Decision
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.scans import FileResult, Outcome, ScanOptions
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.domain.stats import Metric, Timing
from hashguard.settings import Settings
from hashguard.stats.verify import verify
from hashguard.store import Store
from hashguard.store.database import open_store
from tests.conftest import _copied_sqlite, _fresh_postgres_database

FIRST_DAY = date(2026, 3, 1)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """One store per engine for the whole module: each example works on a day of its own."""
    if request.param == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="hashguard-stats-"))
        url = _copied_sqlite(request.getfixturevalue("_migrated_sqlite"), folder)
    else:
        server = str(request.getfixturevalue("postgres_server"))
        url = _fresh_postgres_database(server, request.getfixturevalue("_migrated_postgres"))
    opened = open_store(url, migrate=True)
    opened.banks.create("known", source="ncmec")
    yield opened
    opened.close()


def _signals(n: int) -> FileSignals:
    digest = f"{n:064x}"
    return FileSignals(size=n, md5=digest[:32], sha1=digest[:40], sha256=digest, image_format="PNG")


def _result(n: int, outcome: Outcome, band: Action) -> FileResult:
    if outcome is not Outcome.MATCHED:
        remote = (
            (RemoteResult(service="photodna", status=RemoteStatus.NOT_ANSWERED, method="hash"),)
            if outcome is Outcome.NOT_ANSWERED
            else ()
        )
        return FileResult(
            path=f"/srv/{n}.png",
            outcome=outcome,
            reason=None if outcome is Outcome.NO_MATCH else "test",
            signals=None if outcome is Outcome.ERROR else _signals(n),
            remote=remote,
        )
    match = Match(
        bank="known",
        bank_kind=BankKind.KNOWN,
        algorithm=Algorithm.MD5,
        distance=0,
        entry_id=f"e-{n}",
        category=None,
    )
    return FileResult(
        path=f"/srv/{n}.png",
        outcome=outcome,
        signals=_signals(n),
        matches=(match,),
        decision=Decision(action=band, rule=f"{band}: bank known", bank="known"),
    )


OUTCOMES = st.sampled_from(
    [Outcome.NO_MATCH, Outcome.MATCHED, Outcome.UNDECODABLE, Outcome.ERROR, Outcome.NOT_ANSWERED]
)
FILE = st.tuples(OUTCOMES, st.sampled_from([Action.ACT, Action.REVIEW, Action.IGNORE]))
STEP = st.one_of(
    st.tuples(st.just("scan"), st.lists(FILE, min_size=1, max_size=6)),
    st.tuples(st.just("upload"), FILE),
    st.tuples(
        st.just("decide"),
        st.sampled_from(["confirmed_once", "confirmed", "false_positive", "escalated"]),
    ),
    st.tuples(st.just("notice"), st.sampled_from(["user", "hotline", "trusted_flagger"])),
    st.tuples(st.just("report"), st.sampled_from(["submitted", "finished", "failed"])),
    st.tuples(st.just("statement"), st.sampled_from(["automated", "manual"])),
    st.tuples(st.just("filed"), st.integers(min_value=1, max_value=3)),
    st.tuples(st.just("referral"), st.just("")),
    st.tuples(st.just("removal"), st.just("")),
    st.tuples(st.just("appeal"), st.sampled_from(["received", "upheld", "reversed"])),
)


class Workload:
    """Applies workload steps to a store on one day, through the store's own writers."""

    def __init__(self, store: Store, day: date) -> None:
        self.store = store
        self.start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=1)
        self.n = 0
        self.run = store.scans.create_run(
            roots=["/srv"],
            resume_key=f"k-{day}",
            options=ScanOptions(max_pixels=1000),
            pid=1,
            host="test",
        ).id

    def at(self) -> datetime:
        self.n += 1
        return self.start + timedelta(seconds=self.n)

    def _file(self, writes: Any, way: str, outcome: Outcome, band: Action, at: datetime) -> None:
        self.n += 1
        result = _result(self.n + 10_000 * self.start.toordinal(), outcome, band)
        if way == "scan":
            writes.add_results(self.run, [result], at=at)
        else:
            writes.count_file(way, result, at=at)
        if outcome is Outcome.MATCHED:
            writes.audit(
                "system:test",
                AuditAction.SCAN_DECISION,
                None,
                {
                    "source": {"kind": way, "ref": "1", "path": None},
                    "decided": str(band),
                    "shadow": False,
                },
            )

    def step(self, kind: str, arg: Any) -> None:
        audit = self.store.audit
        at = self.at()
        if kind == "scan":
            with self.store.transaction() as writes:
                for outcome, band in arg:
                    self._file(writes, "scan", outcome, band, at)
        elif kind == "upload":
            with self.store.transaction() as writes:
                self._file(writes, "upload", arg[0], arg[1], at)
        elif kind == "decide":
            action = {
                "confirmed_once": AuditAction.CASE_CONFIRMED,
                "confirmed": AuditAction.CASE_CONFIRMED,
                "false_positive": AuditAction.CASE_FALSE_POSITIVE,
                "escalated": AuditAction.CASE_ESCALATED,
            }[arg]
            audit.append(
                "user:rev",
                action,
                "case:999999",
                {"to_state": arg, "bank": "known", "band": "b"},
                at=at,
            )
        elif kind == "notice":
            audit.append(
                "system:test",
                AuditAction.NOTICE_RECEIVED,
                "notice:999999",
                {"notifier_kind": arg, "category": "child_sexual_abuse", "channel": "api"},
                at=at,
            )
        elif kind == "report":
            action = {
                "submitted": AuditAction.REPORT_SUBMITTED,
                "finished": AuditAction.REPORT_FINISHED,
                "failed": AuditAction.REPORT_FAILED,
            }[arg]
            audit.append("system:test", action, "report:999999", {}, at=at)
        elif kind == "statement":
            audit.append(
                "system:test",
                AuditAction.STATEMENT_ISSUED,
                "case:999999",
                {
                    "kind": arg,
                    "source_type": "SOURCE_VOLUNTARY",
                    "automated_decision": "AUTOMATED_DECISION_FULLY",
                },
                at=at,
            )
        elif kind == "filed":
            audit.append(
                "system:test",
                AuditAction.STATEMENTS_FILED,
                "statements:tdb",
                {"puids": [f"p{i}" for i in range(arg)]},
                at=at,
            )
        elif kind == "referral":
            audit.append(
                "user:rev", AuditAction.REFERRAL_DONE, "referral:999999", {"reference": "r"}, at=at
            )
        elif kind == "appeal":
            action = (
                AuditAction.APPEAL_RECEIVED if arg == "received" else AuditAction.APPEAL_DECIDED
            )
            audit.append("user:rev", action, "appeal:999999", {"state": arg}, at=at)
        else:
            audit.append("system:test", AuditAction.CONTENT_QUARANTINED, "action:1", {}, at=at)


_days = iter(range(10_000))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_the_rollups_equal_a_recount_after_any_workload(
    shared_store: Store, steps: list[tuple[str, Any]]
) -> None:
    day = FIRST_DAY + timedelta(days=next(_days))
    work = Workload(shared_store, day)
    for kind, arg in steps:
        work.step(kind, arg)
    found = verify(shared_store, day, day)
    assert found.ok, found.differences
    # every file checked is counted, recomputable or not
    counted = sum(row.value for row in shared_store.stats.counts(day, day, [Metric.FILES_CHECKED]))
    files = sum(len(a) if k == "scan" else 1 for k, a in steps if k in ("scan", "upload"))
    assert counted == files


def test_a_count_without_its_record_is_a_difference(shared_store: Store) -> None:
    day = date(2025, 1, 1)
    shared_store.stats.add({(day, Metric.REPORTS, '["filed"]'): 1})
    found = verify(shared_store, day, day)
    assert not found.ok
    (difference,) = found.differences
    assert (difference.name, difference.labels, difference.recorded, difference.recounted) == (
        "reports",
        {"state": "filed"},
        1,
        0,
    )


def test_the_year_reads_by_month_from_the_rollups(shared_store: Store) -> None:
    day = date(2024, 5, 2)
    shared_store.stats.add(
        {(day, Metric.NOTICES, '["user","x","api"]'): 3}, {(day, Timing.NOTICE_TO_DECISION, 4): 2}
    )
    rows = shared_store.stats.counts(date(2024, 1, 1), date(2024, 12, 31), [Metric.NOTICES])
    assert [(r.day, dict(r.labels), r.value) for r in rows] == [
        (day, {"notifier_kind": "user", "category": "x", "channel": "api"}, 3)
    ]
    (timing,) = shared_store.stats.timings(date(2024, 1, 1), date(2024, 12, 31))
    assert (timing.timing, timing.bucket, timing.count) == (Timing.NOTICE_TO_DECISION, 4, 2)
    shared_store.stats.add({(date(2024, 6, 30), Metric.NOTICES, '["user","x","api"]'): 4})
    shared_store.stats.add({(date(2024, 7, 1), Metric.NOTICES, '["user","x","api"]'): 5})
    # whole months from the monthly rollups, cut months from the daily rows: the same sums
    for since, until in [
        (date(2024, 1, 1), date(2024, 12, 31)),
        (date(2024, 5, 2), date(2024, 7, 1)),
        (date(2024, 6, 30), date(2024, 6, 30)),
        (date(2024, 5, 3), date(2024, 6, 29)),
    ]:
        monthly, _ = shared_store.stats.monthly(since, until, [Metric.NOTICES])
        daily = shared_store.stats.counts(since, until, [Metric.NOTICES])
        by_month: dict[date, int] = {}
        for row in daily:
            month = row.day.replace(day=1)
            by_month[month] = by_month.get(month, 0) + row.value
        assert {r.day: r.value for r in monthly} == by_month
    assert shared_store.stats.month_mismatches(date(2024, 1, 1), date(2024, 12, 31)) == []


# -- kill -9 in the middle of a workload ----------------------------------------------------

WORKER = """
import sys
from datetime import date
from hashguard.store.database import open_store
from tests.test_stats_recording import Workload, STEPS_FOR_KILL
store = open_store(sys.argv[1])
work = Workload(store, date(2026, 9, 1))
i = 0
while True:
    kind, arg = STEPS_FOR_KILL[i % len(STEPS_FOR_KILL)]
    work.step(kind, arg)
    i += 1
    print(i, flush=True)
"""

STEPS_FOR_KILL: list[tuple[str, Any]] = [
    ("scan", [(Outcome.NO_MATCH, Action.ACT)] * 20 + [(Outcome.MATCHED, Action.ACT)]),
    ("upload", (Outcome.MATCHED, Action.REVIEW)),
    ("decide", "confirmed"),
    ("report", "submitted"),
    ("notice", "user"),
]


def test_kill_9_mid_workload_leaves_the_rollups_equal_to_the_recount(db_url: str) -> None:
    url = db_url
    store = open_store(url)
    store.banks.create("known", source="ncmec")
    root = Path(__file__).resolve().parent.parent
    env_path = f"{root / 'src'}:{root}"
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, url],
        stdout=subprocess.PIPE,
        cwd=root,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 15:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    day = date(2026, 9, 1)
    found = verify(store, day, day)
    assert found.ok, found.differences
    assert found.events > 0
    assert found.results > 0
    store.close()


def test_stats_verify_command_exits_non_zero_on_a_difference(settings: Settings) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["stats", "verify", "--since", "2026-01-01", "--until", "2026-01-31"])
    assert ok.exit_code == 0, ok.output
    assert "OK: 0 cells compared" in ok.output
    store = open_store(settings.resolved_database_url)
    store.stats.add({(date(2026, 1, 5), Metric.REPORTS, '["failed"]'): 2})
    store.close()
    bad = runner.invoke(app, ["stats", "verify", "--since", "2026-01-01", "--until", "2026-01-31"])
    assert bad.exit_code == 1
    assert "2026-01-05 reports state=failed: recorded 2, recounted 0" in bad.output


def test_the_count_hook_counts_in_the_callers_transaction(shared_store: Store) -> None:
    at = datetime(2023, 2, 3, 12, tzinfo=UTC)
    day = at.date()

    def fails() -> None:
        with shared_store.atomic() as unit:
            unit.stats.count(Metric.APPEALS, at=at, state="received")
            raise RuntimeError("the appeal was not recorded")

    with pytest.raises(RuntimeError):
        fails()
    assert shared_store.stats.counts(day, day, [Metric.APPEALS]) == []
    with shared_store.atomic() as unit:
        unit.stats.count(Metric.APPEALS, at=at, state="received")
    (row,) = shared_store.stats.counts(day, day, [Metric.APPEALS])
    assert (dict(row.labels), row.value) == ({"state": "received"}, 1)
    # appeals are counted from their audit events: a count without one is a difference
    (difference,) = verify(shared_store, day, day).differences
    assert (difference.name, difference.recorded, difference.recounted) == ("appeals", 1, 0)
    shared_store.audit.append(
        "system:test", AuditAction.APPEAL_DECIDED, "appeal:1", {"state": "reversed"}, at=at
    )
    (row,) = shared_store.stats.counts(day, day, [Metric.APPEALS])[1:]
    assert (dict(row.labels), row.value) == ({"state": "reversed"}, 1)
