"""A deterministic workload of daily rollups (what the recording would have written),
for the views of the numbers: an in-memory ``StatsReader`` seeded from a fixed seed."""

from __future__ import annotations

import random
from datetime import date, timedelta

from hashguard.domain.stats import LABELS, CountRow, Metric, Timing, TimingRow
from hashguard.stats.memory import MemoryStatsReader

BANKS = {"ncmec-ngo": ("ncmec", "exact"), "iwf-list": ("iwf", "band-a"), "eokm": ("eokm", "")}
CATEGORIES = ("A1", "A2", "B1")

#: label values per metric (the others are drawn from these)
VALUES: dict[Metric, dict[str, tuple[str, ...]]] = {
    Metric.FILES_CHECKED: {
        "way": ("upload", "scan", "notice"),
        "kind": ("image", "video"),
        "outcome": ("no_match", "matched", "undecodable", "unsupported", "error", "not_answered"),
    },
    Metric.DECISIONS: {
        "way": ("upload", "scan"),
        "decision": ("act", "review", "ignore", "shadow"),
    },
    Metric.REMOTE_CALLS: {"service": ("photodna",), "answer": ("answered", "not_answered")},
    Metric.CASES_OPENED: {"way": ("upload", "scan", "notice")},
    Metric.CASES_DECIDED: {"outcome": ("confirmed", "false_positive", "escalated")},
    Metric.REPORTS: {"state": ("filed", "acknowledged", "failed")},
    Metric.STATEMENTS: {
        "source_type": ("SOURCE_VOLUNTARY", "SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER"),
        "automated": ("yes", "no"),
        "kind": ("automated", "confirmed"),
    },
    Metric.STATEMENTS_FILED: {"state": ("filed", "failed")},
    Metric.NOTICES: {
        "notifier_kind": ("user", "trusted_flagger", "hotline", "authority"),
        "category": ("child_sexual_abuse", "protection_of_minors"),
        "channel": ("api", "form"),
    },
    Metric.NOTICES_DECIDED: {
        "notifier_kind": ("user", "trusted_flagger", "hotline", "authority"),
        "outcome": ("restricted", "not_restricted"),
        "category": ("child_sexual_abuse", "protection_of_minors"),
        "automated": ("yes", "no"),
    },
    Metric.APPEALS: {"state": ("received", "upheld", "reversed")},
    Metric.REFERRALS: {"hotline": ("iwf", "inhope")},
    Metric.REMOVALS: {"way": ("upload", "scan"), "how": ("quarantine", "webhook")},
}

#: how often each value comes (the rest are equally likely)
WEIGHTS: dict[tuple[Metric, str], tuple[float, ...]] = {
    (Metric.FILES_CHECKED, "outcome"): (90, 2, 2, 3, 1, 2),
    (Metric.CASES_DECIDED, "outcome"): (85, 10, 5),
    (Metric.DECISIONS, "decision"): (50, 30, 5, 15),
    (Metric.REMOTE_CALLS, "answer"): (95, 5),
    (Metric.REPORTS, "state"): (55, 43, 2),
    (Metric.STATEMENTS_FILED, "state"): (97, 3),
    (Metric.NOTICES, "notifier_kind"): (60, 20, 15, 5),
    (Metric.APPEALS, "state"): (50, 40, 10),
    (Metric.NOTICES_DECIDED, "outcome"): (80, 20),
    (Metric.NOTICES_DECIDED, "category"): (85, 15),
    (Metric.NOTICES, "category"): (85, 15),
}


def _pick(rng: random.Random, metric: Metric, key: str) -> str:
    if key not in VALUES[metric]:  # a label the seeded workload leaves empty
        return ""
    values = VALUES[metric][key]
    weights = WEIGHTS.get((metric, key))
    return rng.choices(values, weights=weights)[0] if weights else rng.choice(values)


#: average events per day and metric
RATES: dict[Metric, float] = {
    Metric.FILES_CHECKED: 400,
    Metric.MATCHES: 6,
    Metric.DECISIONS: 8,
    Metric.REMOTE_CALLS: 30,
    Metric.CASES_OPENED: 4,
    Metric.CASES_DECIDED: 3.5,
    Metric.REPORTS: 2,
    Metric.STATEMENTS: 3,
    Metric.STATEMENTS_FILED: 2.5,
    Metric.NOTICES: 1.5,
    Metric.NOTICES_DECIDED: 1.2,
    Metric.APPEALS: 1.5,
    Metric.REFERRALS: 1.5,
    Metric.REMOVALS: 3,
}


def _labels(rng: random.Random, metric: Metric) -> dict[str, str]:
    if metric in (Metric.MATCHES, Metric.CASES_DECIDED, Metric.CASES_OPENED):
        bank = rng.choice(sorted(BANKS))
        source, band = BANKS[bank]
        chosen = {"bank": bank, "band": band, "source": source}
        if metric is Metric.MATCHES:
            chosen |= {
                "way": rng.choice(("upload", "scan")),
                "algorithm": rng.choice(("md5", "pdq")),
                "category": rng.choice(CATEGORIES),
            }
        chosen |= {k: _pick(rng, metric, k) for k in VALUES.get(metric, {})}
        return {k: chosen.get(k, "") for k in LABELS[metric]}
    return {k: _pick(rng, metric, k) for k in LABELS[metric]}


def workload(
    seed: int = 21, since: date = date(2026, 1, 1), until: date = date(2026, 6, 30)
) -> MemoryStatsReader:
    """Rollup rows of every day ``since``..``until``: the same rows for the same seed."""
    rng = random.Random(seed)
    counts: dict[tuple[date, Metric, tuple[tuple[str, str], ...]], int] = {}
    timings: dict[tuple[date, Timing, int], int] = {}
    day = since
    while day <= until:
        for metric in Metric:
            if metric not in RATES:  # a metric added later: the seeded rows stay the same
                continue
            for _ in range(int(rng.expovariate(1 / RATES[metric])) if RATES[metric] < 50 else 0):
                key = (day, metric, tuple(sorted(_labels(rng, metric).items())))
                counts[key] = counts.get(key, 0) + 1
            if RATES[metric] >= 50:  # bulk: a handful of label cells with large counts
                for _ in range(6):
                    key = (day, metric, tuple(sorted(_labels(rng, metric).items())))
                    counts[key] = counts.get(key, 0) + rng.randint(1, int(RATES[metric] / 3))
        for timing, centre in (
            (Timing.UPLOAD_TO_DECISION, 2),
            (Timing.MATCH_TO_REVIEW, 14),
            (Timing.CONFIRMATION_TO_REPORT, 15),
            (Timing.NOTICE_TO_DECISION, 13),
        ):
            for _ in range(rng.randint(0, 4)):
                bucket = max(0, min(23, int(rng.gauss(centre, 2))))
                timings[(day, timing, bucket)] = timings.get((day, timing, bucket), 0) + 1
        day += timedelta(days=1)
    return MemoryStatsReader(
        [
            CountRow(day=d, metric=m, labels=dict(labels), value=v)
            for (d, m, labels), v in sorted(counts.items())
        ],
        [TimingRow(day=d, timing=t, bucket=b, count=c) for (d, t, b), c in sorted(timings.items())],
    )
