"""Statistics: what hashguard counts, per day, and the periods it reports on.

The catalogue below is the contract between what records the numbers (``store/`` keeps
one rollup row per day, metric and labels, written in the transaction of the event it
counts) and what shows them (``hashguard stats``, ``/v1/stats``, ``/ui/stats``, the
transparency report files, the aggregate feed, Prometheus). Metric names and label keys
are persisted: never rename one; add new ones.

Labels are bounded: bank names, list sources, algorithms, remote service names, outcome
and decision names, notifier kinds, tenant names (admin-created, few; never in the
aggregate feed) — never a person, a content id, a URL or a hash.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Protocol


class Metric(StrEnum):
    """A counted event. Persisted names; never rename a value."""

    #: a file (or upload, notice item, object) checked: labels way, kind, outcome
    FILES_CHECKED = "files_checked"
    #: a match of a file against a bank: labels way, bank, source, algorithm, band and
    #: category (the list's category of the entry, e.g. an industry classification)
    MATCHES = "matches"
    #: the policy's decision about a file: labels way, decision (act/review/ignore/shadow)
    DECISIONS = "decisions"
    #: a remote matcher asked: labels service, answer (answered/not_answered), way
    REMOTE_CALLS = "remote_calls"
    #: a case opened: labels way, bank, band (empty for notice-only cases; ``classifier``
    #: for a case a classifier score opened, with no list match)
    CASES_OPENED = "cases_opened"
    #: a case decided by review: labels outcome (confirmed/false_positive/escalated), bank, band
    CASES_DECIDED = "cases_decided"
    #: a CyberTipline report: labels state (filed/acknowledged/failed)
    REPORTS = "reports"
    #: a statement of reasons: labels source_type, automated (yes/no), kind
    STATEMENTS = "statements"
    #: a statement sent to the Transparency Database: labels state (filed/failed)
    STATEMENTS_FILED = "statements_filed"
    #: a DSA notice received: labels notifier_kind, category, channel
    NOTICES = "notices"
    #: a notice decided (its last item resolved and decided): labels notifier_kind, outcome
    #: (restricted/not_restricted), category (the notice's) and automated (yes/no: the
    #: decision was taken by automated means)
    NOTICES_DECIDED = "notices_decided"
    #: an Art. 20 appeal: labels state (received/upheld/reversed)
    APPEALS = "appeals"
    #: a referral to a hotline: labels hotline
    REFERRALS = "referrals"
    #: content removed or disabled (quarantine, platform webhook acted): labels way, how
    REMOVALS = "removals"
    #: hashes a tenant of the hash check service looked up (distinct valid hashes of
    #: answered calls, the quota's unit): label tenant. Tenants are a bounded set an
    #: admin creates; views for anyone but the service's admins drop the label
    LOOKUPS = "lookups"
    #: a tenant's looked-up hashes that matched, per list source and category of the
    #: matched entries (a hash matching two sources counts once for each): labels
    #: tenant, source, category
    LOOKUP_MATCHES = "lookup_matches"


#: label keys each metric carries, in this order (a missing label is stored as "")
LABELS: Mapping[Metric, tuple[str, ...]] = {
    Metric.FILES_CHECKED: ("way", "kind", "outcome"),
    Metric.MATCHES: ("way", "bank", "source", "algorithm", "band", "category"),
    Metric.DECISIONS: ("way", "decision"),
    Metric.REMOTE_CALLS: ("service", "answer", "way"),
    Metric.CASES_OPENED: ("way", "bank", "band"),
    Metric.CASES_DECIDED: ("outcome", "bank", "band"),
    Metric.REPORTS: ("state",),
    Metric.STATEMENTS: ("source_type", "automated", "kind"),
    Metric.STATEMENTS_FILED: ("state",),
    Metric.NOTICES: ("notifier_kind", "category", "channel"),
    Metric.NOTICES_DECIDED: ("notifier_kind", "outcome", "category", "automated"),
    Metric.APPEALS: ("state",),
    Metric.REFERRALS: ("hotline",),
    Metric.REMOVALS: ("way", "how"),
    Metric.LOOKUPS: ("tenant",),
    Metric.LOOKUP_MATCHES: ("tenant", "source", "category"),
}


class Way(StrEnum):
    """How content came in. Persisted names."""

    UPLOAD = "upload"
    SCAN = "scan"
    NOTICE = "notice"
    BULK = "bulk"
    LOOKUP = "lookup"


def band_of(action: str) -> str:
    """The ``band`` label of a bank's decision (``domain.policy``): ``a`` (band A, acted
    on automatically), ``b`` (band B, human review), ``beyond`` (ignored), or empty."""
    return {"act": "a", "review": "b", "ignore": "beyond"}.get(str(action), "")


class Timing(StrEnum):
    """A measured time between two recorded events. Persisted names."""

    #: an upload received → the policy's decision
    UPLOAD_TO_DECISION = "upload_to_decision"
    #: a case opened → its final review decision
    MATCH_TO_REVIEW = "match_to_review"
    #: a case confirmed → its report filed
    CONFIRMATION_TO_REPORT = "confirmation_to_report"
    #: a notice received → its decision
    NOTICE_TO_DECISION = "notice_to_decision"
    #: an appeal received → its outcome (upheld or reversed)
    APPEAL_TO_DECISION = "appeal_to_decision"


@dataclass(frozen=True, kw_only=True, slots=True)
class CountRow:
    """One rollup cell: how many ``metric`` events with these labels happened on ``day``."""

    day: date
    metric: Metric
    labels: Mapping[str, str] = field(default_factory=dict)
    value: int


#: upper bounds (seconds) of the buckets a measured time is counted in; the last is open.
#: Times are kept as daily histograms, so a median or p90 over any period comes from
#: rollups and is reported as the upper bound of the bucket it falls in.
TIMING_BOUNDS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    3 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
    90 * 86400,
    180 * 86400,
    float("inf"),
)


def timing_bucket(seconds: float) -> int:
    """The index in ``TIMING_BOUNDS`` of the bucket ``seconds`` is counted in."""
    for index, bound in enumerate(TIMING_BOUNDS):
        if seconds <= bound:
            return index
    return len(TIMING_BOUNDS) - 1


@dataclass(frozen=True, kw_only=True, slots=True)
class TimingRow:
    """How many measured times of ``timing`` that ended on ``day`` fell in ``bucket``."""

    day: date
    timing: Timing
    bucket: int
    count: int


class StatsReader(Protocol):
    """What every view of the numbers reads: rollup rows of the days ``since``..``until``."""

    def counts(
        self, since: date, until: date, metrics: Collection[Metric] | None = None
    ) -> Sequence[CountRow]: ...

    def timings(self, since: date, until: date) -> Sequence[TimingRow]: ...


_PERIOD = re.compile(r"^(\d{4})(?:-(H[12]|Q[1-4]|\d{2}))?$")


@dataclass(frozen=True, slots=True)
class Period:
    """Days ``since`` to ``until``, both included, with the name it was asked by."""

    since: date
    until: date
    name: str

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026`` (year), ``2026-H1`` (half), ``2026-Q2`` (quarter), ``2026-05`` (month)."""
        found = _PERIOD.match(text.strip())
        if found is None:
            raise ValueError(f"not a period: {text!r} (2026, 2026-H1, 2026-Q2 or 2026-05)")
        year = int(found.group(1))
        part = found.group(2)
        if part is None:
            first, months = 1, 12
        elif part[0] == "H":
            first, months = 1 + 6 * (int(part[1]) - 1), 6
        elif part[0] == "Q":
            first, months = 1 + 3 * (int(part[1]) - 1), 3
        else:
            first, months = int(part), 1
            if not 1 <= first <= 12:
                raise ValueError(f"not a month: {text!r}")
        since = date(year, first, 1)
        end_month = first + months
        after = date(year + 1, 1, 1) if end_month > 12 else date(year, end_month, 1)
        return cls(since, after - timedelta(days=1), text.strip())
