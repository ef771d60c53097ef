"""The figures every view shows: which counted metric (and which label values) each
column sums, which proportions are derived from them, and the measured times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hashguard.domain.scans import Outcome
from hashguard.domain.stats import LABELS, Metric, Timing


@dataclass(frozen=True, kw_only=True, slots=True)
class Count:
    """A column: the sum of ``metric`` over rows whose labels match ``where``."""

    name: str
    metric: Metric
    where: Mapping[str, frozenset[str]] = field(default_factory=dict)
    help: str

    def matches(self, metric: Metric, labels: Mapping[str, str]) -> bool:
        return metric is self.metric and all(
            labels.get(key, "") in values for key, values in self.where.items()
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Share:
    """A derived proportion ``hits / total`` of two counts, with a 95% interval."""

    name: str
    hits: str
    total: str
    help: str


def _c(name: str, metric: Metric, help_: str, **where: str | frozenset[str]) -> Count:
    return Count(
        name=name,
        metric=metric,
        where={k: v if isinstance(v, frozenset) else frozenset({v}) for k, v in where.items()},
        help=help_,
    )


_INCOMPLETE = frozenset(str(o) for o in Outcome if o.incomplete)

COUNTS: tuple[Count, ...] = (
    _c("checked", Metric.FILES_CHECKED, "files (uploads, objects, notice items) checked"),
    *(
        _c(str(o), Metric.FILES_CHECKED, f"files whose outcome was {o}", outcome=str(o))
        for o in Outcome
    ),
    _c(
        "not_checked",
        Metric.FILES_CHECKED,
        "files not checked as fully as they should be: undecodable, error, not_answered",
        outcome=_INCOMPLETE,
    ),
    _c("matches", Metric.MATCHES, "matches of a file against a bank (a file can match several)"),
    *(
        _c(f"decided_{d}", Metric.DECISIONS, f"files the policy decided to {d}", decision=d)
        for d in ("act", "review", "ignore", "shadow")
    ),
    _c("remote_calls", Metric.REMOTE_CALLS, "remote matching services asked"),
    _c(
        "remote_not_answered",
        Metric.REMOTE_CALLS,
        "remote matching services that did not answer",
        answer="not_answered",
    ),
    _c("cases_opened", Metric.CASES_OPENED, "review cases opened"),
    _c("confirmed", Metric.CASES_DECIDED, "cases confirmed by review", outcome="confirmed"),
    _c(
        "false_positive",
        Metric.CASES_DECIDED,
        "cases found not to be what the list said",
        outcome="false_positive",
    ),
    _c("escalated", Metric.CASES_DECIDED, "cases escalated to a lead", outcome="escalated"),
    _c("reports_filed", Metric.REPORTS, "CyberTipline reports filed", state="filed"),
    _c(
        "reports_acknowledged",
        Metric.REPORTS,
        "CyberTipline reports acknowledged",
        state="acknowledged",
    ),
    _c("reports_failed", Metric.REPORTS, "CyberTipline reports that failed", state="failed"),
    _c("statements", Metric.STATEMENTS, "statements of reasons issued (DSA Art. 17)"),
    _c(
        "statements_automated",
        Metric.STATEMENTS,
        "statements of decisions taken by automated means",
        automated="yes",
    ),
    _c(
        "statements_filed",
        Metric.STATEMENTS_FILED,
        "statements filed in the Transparency Database",
        state="filed",
    ),
    _c(
        "statements_failed",
        Metric.STATEMENTS_FILED,
        "statements the Transparency Database refused",
        state="failed",
    ),
    _c("notices", Metric.NOTICES, "DSA Art. 16 notices received"),
    _c(
        "notices_trusted",
        Metric.NOTICES,
        "notices from configured trusted flaggers",
        notifier_kind="trusted_flagger",
    ),
    _c("notices_decided", Metric.NOTICES_DECIDED, "notices decided"),
    _c("appeals", Metric.APPEALS, "Art. 20 appeals received", state="received"),
    _c("appeals_upheld", Metric.APPEALS, "appeals where the decision stood", state="upheld"),
    _c("appeals_reversed", Metric.APPEALS, "appeals that reversed the decision", state="reversed"),
    _c("referrals", Metric.REFERRALS, "referrals to hotlines"),
    _c("removals", Metric.REMOVALS, "content removed or disabled"),
    _c(
        "lookups",
        Metric.LOOKUPS,
        "hashes the hash check service's tenants looked up (answered calls)",
    ),
    _c(
        "lookup_matches",
        Metric.LOOKUP_MATCHES,
        "looked-up hashes that matched, per list source and category",
    ),
)

SHARES: tuple[Share, ...] = (
    Share(
        name="not_checked_share",
        hits="not_checked",
        total="checked",
        help="(undecodable + not_answered + error) / checked",
    ),
    Share(
        name="accuracy",
        hits="confirmed",
        total="decided",
        help="confirmed / (confirmed + false_positive): cases decided by review",
    ),
)

#: the denominators shares use that are not columns of their own
HIDDEN_TOTALS: Mapping[str, tuple[str, ...]] = {"decided": ("confirmed", "false_positive")}

TIMINGS: tuple[Timing, ...] = tuple(Timing)

COUNT_BY_NAME: Mapping[str, Count] = {c.name: c for c in COUNTS}

#: every label key a table can be grouped by
LABEL_KEYS: frozenset[str] = frozenset(key for keys in LABELS.values() for key in keys)


def share_inputs(share: Share) -> tuple[str, ...]:
    return (share.hits, *HIDDEN_TOTALS.get(share.total, (share.total,)))
