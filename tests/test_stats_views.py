"""The views of the numbers (issue 21, parts 3 and 4): aggregation, transparency report
files, the suppressed and signed aggregate feed, read from an in-memory ``StatsReader``
holding a seeded workload (the recording is tested with the store).

Golden files are in tests/golden/stats/; ``HG_UPDATE_GOLDEN=1`` rewrites them."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashguard.domain.stats import (
    LABELS,
    TIMING_BOUNDS,
    CountRow,
    Metric,
    Period,
    Timing,
    TimingRow,
    timing_bucket,
)
from hashguard.keys import MasterKey
from hashguard.stats.aggregate import BadGrouping, aggregate, table_json, table_records
from hashguard.stats.feed import TABLES, build_feed, envelope_schema, schema
from hashguard.stats.figures import proportion, quantile_bound
from hashguard.stats.memory import MemoryStatsReader
from hashguard.stats.signing import BadSignature, SigningKey, verify
from hashguard.stats.summary import summary_html
from hashguard.stats.suppress import suppress
from hashguard.stats.transparency import build_report, report_files
from tests.stats_workload import workload

GOLDEN = Path(__file__).parent / "golden" / "stats"
AT = datetime(2026, 7, 2, 8, 0, tzinfo=UTC)
MASTER = MasterKey(bytes(range(32)))
H1 = Period.parse("2026-H1")
#: what ``hashguard stats transparency`` says of the default retention settings
RETENTION = (
    "matched content kept encrypted in the evidence vault for 365 days unless under legal "
    "hold; content that did not match is never stored"
)


@pytest.fixture(scope="module")
def reader() -> MemoryStatsReader:
    return workload()


def golden(name: str, content: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("HG_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    assert content == path.read_bytes(), f"{name} differs from its golden file"


# -- aggregation --------------------------------------------------------------


def test_months_add_up_to_the_half_year_and_empty_months_show(reader: MemoryStatsReader) -> None:
    whole = aggregate(reader, H1.since, H1.until)
    months = aggregate(reader, H1.since, date(2026, 12, 31), by=["month"])
    assert [r.key for r in months.rows] == [(f"2026-{m:02d}",) for m in range(1, 13)]
    (total,) = whole.rows
    for name in whole.counts:
        assert sum(r.counts[name] for r in months.rows) == total.counts[name], name
    assert all(v == 0 for r in months.rows[6:] for v in r.counts.values())
    raw = sum(row.value for row in reader.counts(H1.since, H1.until, [Metric.FILES_CHECKED]))
    assert total.counts["checked"] == raw


def test_grouping_by_a_label_shows_only_the_metrics_that_carry_it(
    reader: MemoryStatsReader,
) -> None:
    table = aggregate(reader, H1.since, H1.until, by=["bank", "band"])
    assert set(table.counts) == {
        "matches",
        "cases_opened",
        "confirmed",
        "false_positive",
        "escalated",
    }
    assert table.shares == ("accuracy",)
    assert table.times == ()
    assert {r.key[0] for r in table.rows} == {"eokm", "iwf-list", "ncmec-ngo"}
    for row in table.rows:
        share = row.shares["accuracy"]
        assert share.total == row.counts["confirmed"] + row.counts["false_positive"]
        assert share.low is not None
        assert share.high is not None
        assert share.value is not None
        assert share.low < share.value < share.high


def test_not_checked_share_is_undecodable_error_and_not_answered_over_checked(
    reader: MemoryStatsReader,
) -> None:
    (row,) = aggregate(reader, H1.since, H1.until).rows
    hidden = row.counts["undecodable"] + row.counts["error"] + row.counts["not_answered"]
    assert row.shares["not_checked_share"].hits == hidden
    assert row.shares["not_checked_share"].total == row.counts["checked"]


def test_wilson_interval_known_values() -> None:
    nine = proportion(9, 10)
    assert nine.low == pytest.approx(0.5958, abs=1e-4)
    assert nine.high == pytest.approx(0.9821, abs=1e-4)
    none = proportion(0, 20)
    assert none.low == 0.0
    assert none.high == pytest.approx(0.1611, abs=1e-4)
    assert proportion(0, 0).value is None


def test_quantiles_are_bucket_upper_bounds() -> None:
    histogram = {timing_bucket(0.3): 5, timing_bucket(40): 4, timing_bucket(1e9): 1}
    assert quantile_bound(histogram, 0.5) == 0.5
    assert quantile_bound(histogram, 0.9) == 60
    assert quantile_bound(histogram, 1.0) == float("inf")
    assert quantile_bound({}, 0.5) is None
    assert TIMING_BOUNDS[timing_bucket(3600)] == 3600


def test_times_follow_the_grains_and_csv_records_are_flat(reader: MemoryStatsReader) -> None:
    table = aggregate(reader, H1.since, H1.until, by=["quarter"], figures=["notice_to_decision"])
    assert table.counts == ()
    assert table.times == (Timing.NOTICE_TO_DECISION,)
    counted = sum(
        r.count for r in reader.timings(H1.since, H1.until) if r.timing is Timing.NOTICE_TO_DECISION
    )
    assert sum(r.times[Timing.NOTICE_TO_DECISION].count for r in table.rows) == counted
    (first, _) = table_records(table)
    assert set(first) == {
        "quarter",
        "notice_to_decision_count",
        "notice_to_decision_median_s",
        "notice_to_decision_p90_s",
    }


@pytest.mark.parametrize(
    ("by", "figures"),
    [(["fortnight"], None), (["person"], None), ([], ["nonsense"])],
)
def test_bad_groupings_are_refused(
    reader: MemoryStatsReader, by: list[str], figures: list[str] | None
) -> None:
    with pytest.raises(BadGrouping):
        aggregate(reader, H1.since, H1.until, by=by, figures=figures)


def test_odd_spans_answer_rather_than_fail(reader: MemoryStatsReader) -> None:
    assert aggregate(reader, H1.until, H1.since, by=["month"]).rows == ()
    every = aggregate(reader, date.min, date.max, by=["year", "year"])
    assert every.by == ("year",)
    assert [r.key for r in every.rows] == [("2026",)]  # beyond a decade: periods with data


def test_table_json_golden(reader: MemoryStatsReader) -> None:
    table = aggregate(reader, H1.since, H1.until, by=["month"])
    golden("table-by-month.json", json.dumps(table_json(table), indent=1).encode() + b"\n")


# -- transparency reports ----------------------------------------------------


def test_transparency_files_golden(reader: MemoryStatsReader) -> None:
    report = build_report(
        reader,
        H1,
        provider="Example Hosting B.V.",
        service="example.invalid",
        retention=RETENTION,
        at=AT,
    )
    files = report_files(report, summary_html(report))
    assert sorted(files) == [
        "dsa-1.1-report-identification.csv",
        "dsa-1.3-notices.csv",
        "dsa-1.4-own-initiative.csv",
        "dsa-1.5-complaints.csv",
        "dsa-1.6-automated-means.csv",
        "eu-2021-1232-art3-annual.csv",
        "summary.html",
    ]
    for name, content in files.items():
        golden(f"transparency-2026-H1/{name}", content)
    # the report and the table agree
    (row,) = aggregate(reader, H1.since, H1.until).rows
    notices = files["dsa-1.3-notices.csv"].decode().splitlines()
    assert notices[-1].startswith(f"ALL,,{row.counts['notices']},{row.counts['notices_trusted']}")
    html = files["summary.html"].decode()
    assert "<script" not in html
    assert "http" not in html.split("</style>")[1]


# -- the feed: suppression ---------------------------------------------------


def _check_suppressed(cells: dict[Any, int], k: int, with_total: bool = True) -> None:
    """Every published cell is its true value and 0 or at least k; no suppressed cell
    can be recomputed or pinned under k from the published total."""
    shown = suppress(cells, k=k, total=with_total)
    hidden = [key for key, value in shown.cells.items() if value is None]
    for key, value in shown.cells.items():
        if value is not None:
            assert value == cells[key]
            assert value == 0 or value >= k
        else:
            assert cells[key] > 0  # a zero is never hidden
    if shown.total is not None:
        assert with_total
        assert shown.total == sum(cells.values())
        assert shown.total == 0 or shown.total >= k
        if hidden:
            residual = shown.total - sum(v for v in shown.cells.values() if v is not None)
            assert len(hidden) >= 2
            # each hidden cell could be anything from 1 to residual - (m - 1) >= k
            assert residual - (len(hidden) - 1) >= k


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=st.dictionaries(
        st.text("abcdef", min_size=1, max_size=2),
        st.one_of(st.integers(0, 12), st.integers(0, 500)),
        max_size=12,
    ),
    k=st.integers(1, 25),
    with_total=st.booleans(),
)
def test_suppression_holds_for_every_cell(cells: dict[str, int], k: int, with_total: bool) -> None:
    _check_suppressed(cells, k, with_total)


_LABEL_VALUES = st.sampled_from(["", "a", "b", "c"])


@st.composite
def _workloads(draw: st.DrawFn) -> MemoryStatsReader:
    rows = []
    for _ in range(draw(st.integers(0, 40))):
        metric = draw(st.sampled_from(list(Metric)))
        labels = {key: draw(_LABEL_VALUES) for key in LABELS[metric]}
        rows.append(
            CountRow(
                day=date(2026, 4, draw(st.integers(1, 30))),
                metric=metric,
                labels=labels,
                value=draw(st.one_of(st.integers(1, 12), st.integers(1, 300))),
            )
        )
    timings = [
        TimingRow(
            day=date(2026, 4, 1),
            timing=t,
            bucket=draw(st.integers(0, 23)),
            count=draw(st.integers(1, 15)),
        )
        for t in draw(st.lists(st.sampled_from(list(Timing)), max_size=6))
    ]
    return MemoryStatsReader(rows, timings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reader=_workloads(), k=st.integers(2, 20))
def test_every_cell_of_a_random_feed_is_suppressed_under_k(
    reader: MemoryStatsReader, k: int
) -> None:
    period = Period.parse("2026-04")
    feed = build_feed(reader, period, k=k, at=AT)
    for spec in TABLES:
        table = feed["tables"][spec.name]
        truth: dict[tuple[str, ...], int] = {}
        for row in reader.counts(period.since, period.until, [spec.metric]):
            key = tuple(row.labels.get(d, "") for d in spec.dimensions)
            truth[key] = truth.get(key, 0) + row.value
        published = {tuple(c["key"].get(d, "") for d in spec.dimensions): c for c in table["cells"]}
        for key, value in truth.items():
            cell = published[key]
            assert cell["suppressed"] == (cell["count"] is None)
            assert cell["count"] in (None, value)
            assert cell["count"] is None or cell["count"] == 0 or cell["count"] >= k
        _check_suppressed(truth, k, spec.total)
        if spec.total and table["total"] is not None:
            assert table["total"] == 0 or table["total"] >= k
    for times in feed["times"].values():
        assert times["suppressed"] == (times["count"] is None)
        assert times["count"] is None or times["count"] == 0 or times["count"] >= k


# -- the feed: schema, golden, signature ------------------------------------


def test_feed_golden_validates_and_verifies(reader: MemoryStatsReader) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    key = SigningKey.from_master(MASTER)
    envelope = key.sign(build_feed(reader, Period.parse("2026-Q2"), publisher="Example", at=AT))
    golden("feed-2026-Q2.json", json.dumps(envelope, indent=1).encode() + b"\n")
    feed_schema = schema()
    jsonschema_rs.validator_for(feed_schema).validate(envelope["payload"])
    jsonschema_rs.validator_for(envelope_schema()).validate(envelope)
    broken = copy.deepcopy(envelope)
    broken["payload"]["tables"]["notices"]["cells"][0]["count"] = 3  # suppressed, yet shown
    assert not jsonschema_rs.validator_for(envelope_schema()).is_valid(broken)
    assert verify(envelope, key.public) == envelope["payload"]
    # small cells of the seeded quarter are suppressed (appeals and referrals are rare)
    cells = [c for t in envelope["payload"]["tables"].values() for c in t["cells"]]
    assert any(c["suppressed"] for c in cells)


def test_a_tampered_feed_fails_verification(reader: MemoryStatsReader) -> None:
    key = SigningKey.from_master(MASTER)
    envelope = key.sign(build_feed(reader, Period.parse("2026-Q2"), at=AT))
    tampered = copy.deepcopy(envelope)
    tampered["payload"]["tables"]["matches"]["total"] += 1
    with pytest.raises(BadSignature, match="does not match"):
        verify(tampered, key.public)
    other = SigningKey.from_master(MasterKey(bytes(32)))
    with pytest.raises(BadSignature, match="signed by"):
        verify(envelope, other.public)
    forged = other.sign(envelope["payload"])
    forged["signature"]["key_id"] = key.id  # claims the host's key
    with pytest.raises(BadSignature):
        verify(forged, key.public)
    with pytest.raises(BadSignature, match="not a signed envelope"):
        verify({"payload": {}}, key.public)


def test_the_signing_key_is_stable_and_apart_from_the_master_key() -> None:
    first, again = SigningKey.from_master(MASTER), SigningKey.from_master(MASTER)
    assert first.public == again.public
    assert first.id.startswith("ed25519:")
    assert MASTER.derive("hashguard stats feed signing key v1") != bytes(range(32))
    assert MASTER.derive("another purpose") != MASTER.derive("hashguard stats feed signing key v1")
