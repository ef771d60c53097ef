"""Transparency report files: the quantitative parts of the DSA templates (Commission
Implementing Regulation (EU) 2024/2835, Annex I, Part II, 1.x) that hashguard's records
answer, one CSV per template section, and the annual figures of Regulation (EU)
2021/1232 Art. 3(1)(g)(vii). Aggregates only: never a person, a content id or a hash.

The CSVs follow the sections and the breakdowns the Annex asks for (type of illegal
content, trusted flaggers, basis of the action, automated means, median time); the
operator copies them into the Commission's spreadsheet and writes the qualitative
template. Everything hashguard does concerns child sexual abuse material, so its rows
use the Transparency Database category the statements of reasons use
(``STATEMENT_CATEGORY_PROTECTION_OF_MINORS`` with ``KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL``)
and statements and reports add up. Sections 1.2 (Member State orders), 1.7 (human
resources) and 1.8 (recipients) are not recorded by hashguard and not produced.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hashguard import __version__
from hashguard.domain.stats import Metric, Period, StatsReader, Timing
from hashguard.stats.figures import Proportion, Times, proportion, times_of
from hashguard.stats.source import by_month

CSAM = ("STATEMENT_CATEGORY_PROTECTION_OF_MINORS", "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL")
OWN_INITIATIVE = "SOURCE_VOLUNTARY"
NOT_RECORDED = "not recorded by hashguard"

Cell = str | int


@dataclass(frozen=True, kw_only=True, slots=True)
class Sheet:
    """One template section as a table: ``name`` is its file name (without ``.csv``)."""

    name: str
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class TransparencyReport:
    period: Period
    provider: str
    service: str
    generated_at: datetime
    sheets: tuple[Sheet, ...]


class _Sums:
    """The period's rollups summed per metric and label values."""

    def __init__(self, reader: StatsReader, period: Period) -> None:
        self._cells: dict[Metric, dict[tuple[tuple[str, str], ...], int]] = defaultdict(
            lambda: defaultdict(int)
        )
        for row in reader.counts(period.since, period.until):
            self._cells[row.metric][tuple(sorted(row.labels.items()))] += row.value
        histograms: dict[Timing, dict[int, int]] = {t: defaultdict(int) for t in Timing}
        for timing in reader.timings(period.since, period.until):
            histograms[timing.timing][timing.bucket] += timing.count
        self.times: Mapping[Timing, Times] = {t: times_of(h) for t, h in histograms.items()}

    def label_values(self, metric: Metric, keys: Sequence[str]) -> set[tuple[str, ...]]:
        return {tuple(dict(labels).get(k, "") for k in keys) for labels in self._cells[metric]}

    def total(self, metric: Metric, **where: str | tuple[str, ...]) -> int:
        return sum(self.by(metric, None, **where).values())

    def by(self, metric: Metric, key: str | None, **where: str | tuple[str, ...]) -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        for labels, value in self._cells[metric].items():
            shown = dict(labels)
            if all(
                shown.get(k, "") in ((v,) if isinstance(v, str) else v) for k, v in where.items()
            ):
                found["" if key is None else shown.get(key, "")] += value
        return dict(found)


def _category(notice_category: str) -> tuple[str, str]:
    if notice_category == "child_sexual_abuse":
        return CSAM
    return (f"STATEMENT_CATEGORY_{notice_category.upper()}", "")


def _seconds(times: Times) -> Cell:
    if times.median is None:
        return ""
    return ">15552000" if times.median == float("inf") else _number(times.median)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _share(share: Proportion) -> tuple[Cell, Cell, Cell]:
    if share.value is None or share.low is None or share.high is None:
        return ("", "", "")
    return (f"{share.value:.4f}", f"{share.low:.4f}", f"{share.high:.4f}")


def _identification(period: Period, provider: str, service: str, at: datetime) -> Sheet:
    return Sheet(
        name="dsa-1.1-report-identification",
        title="1.1 Report identification",
        header=("field", "value"),
        rows=(
            ("provider", provider),
            ("service", service),
            ("reporting_period_start", period.since.isoformat()),
            ("reporting_period_end", period.until.isoformat()),
            ("period", period.name),
            ("generated_at", at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("generated_by", f"hashguard {__version__}"),
        ),
    )


def _notices(sums: _Sums) -> Sheet:
    received = sums.by(Metric.NOTICES, "category")
    trusted = sums.by(Metric.NOTICES, "category", notifier_kind="trusted_flagger")
    restricted = sums.by(Metric.NOTICES_DECIDED, "category", outcome="restricted")
    automated = sums.by(Metric.NOTICES_DECIDED, "category", automated="yes")
    decided = sums.by(Metric.NOTICES_DECIDED, "category")
    rows: list[tuple[Cell, ...]] = []
    for category in sorted(set(received) | set(decided)):
        name, keyword = _category(category)
        rows.append(
            (
                name,
                keyword,
                received.get(category, 0),
                trusted.get(category, 0),
                decided.get(category, 0),
                restricted.get(category, 0),
                0,
                automated.get(category, 0),
                "",
            )
        )
    rows.append(
        (
            "ALL",
            "",
            sum(received.values()),
            sum(trusted.values()),
            sum(decided.values()),
            sum(restricted.values()),
            0,
            sum(automated.values()),
            _seconds(sums.times[Timing.NOTICE_TO_DECISION]),
        )
    )
    return Sheet(
        name="dsa-1.3-notices",
        title="1.3 Art. 15(1)(b): notices submitted in accordance with Art. 16",
        header=(
            "type_of_alleged_illegal_content",
            "keyword",
            "notices_received",
            "notices_by_trusted_flaggers",
            "notices_decided",
            "actions_on_basis_of_law",
            "actions_on_basis_of_terms_and_conditions",
            "notices_processed_by_automated_means",
            "median_time_to_action_le_seconds",
        ),
        rows=tuple(rows),
    )


def _own_initiative(sums: _Sums) -> Sheet:
    rows: list[tuple[Cell, ...]] = []
    statements = sums.by(Metric.STATEMENTS, "automated", source_type=OWN_INITIATIVE)
    for automated, label in (("yes", "fully_automated"), ("no", "after_human_review")):
        rows.append(
            (
                *CSAM,
                "hash matching against lists of known material",
                label,
                "removal or disabling of access",
                statements.get(automated, 0),
            )
        )
    removals = sums.by(Metric.REMOVALS, "how", way=("upload", "scan", "bulk", "lookup"))
    for how, number in sorted(removals.items()):
        rows.append(
            (
                *CSAM,
                "hash matching against lists of known material",
                "",
                f"measure carried out: {how or 'unspecified'}",
                number,
            )
        )
    return Sheet(
        name="dsa-1.4-own-initiative",
        title="1.4 Art. 15(1)(c): own-initiative content moderation",
        header=(
            "type_of_illegal_content",
            "keyword",
            "detection_method",
            "decision",
            "type_of_restriction",
            "number_of_items",
        ),
        rows=tuple(rows),
    )


def _complaints(sums: _Sums) -> Sheet:
    appeals = sums.by(Metric.APPEALS, "state")
    return Sheet(
        name="dsa-1.5-complaints",
        title="1.5 Art. 15(1)(d), 24(1)(a)(b): complaints, out-of-court disputes, suspensions",
        header=("indicator", "type_of_illegal_content", "value", "note"),
        rows=tuple(
            (indicator, CSAM[0], value, note)
            for indicator, value, note in (
                ("complaints_received", appeals.get("received", 0), "Art. 20 appeals"),
                ("decisions_upheld", appeals.get("upheld", 0), ""),
                ("decisions_reversed", appeals.get("reversed", 0), ""),
                ("median_time_to_decide_complaint", "", NOT_RECORDED),
                ("out_of_court_disputes", "", NOT_RECORDED),
                ("suspensions_for_misuse", "", NOT_RECORDED),
            )
        ),
    )


def _accuracy_rows(sums: _Sums) -> list[tuple[Cell, ...]]:
    confirmed = sums.by(Metric.CASES_DECIDED, "bank", outcome="confirmed")
    wrong = sums.by(Metric.CASES_DECIDED, "bank", outcome="false_positive")
    bands = sums.label_values(Metric.CASES_DECIDED, ("bank", "band"))
    rows: list[tuple[Cell, ...]] = []
    for bank, band in sorted(bands):
        hits = sums.total(Metric.CASES_DECIDED, bank=bank, band=band, outcome="confirmed")
        errors = sums.total(Metric.CASES_DECIDED, bank=bank, band=band, outcome="false_positive")
        share = proportion(hits, hits + errors)
        rows.append(("accuracy", f"list={bank} band={band}", *_share(share), hits + errors))
    every = proportion(sum(confirmed.values()), sum(confirmed.values()) + sum(wrong.values()))
    rows.append(("accuracy", "all lists", *_share(every), every.total))
    errors_all = proportion(sum(wrong.values()), every.total)
    rows.append(("error_rate", "all lists", *_share(errors_all), every.total))
    return rows


def _automated(sums: _Sums) -> Sheet:
    checked = sums.total(Metric.FILES_CHECKED)
    incomplete = sums.total(Metric.FILES_CHECKED, outcome=("undecodable", "error", "not_answered"))
    rows: list[tuple[Cell, ...]] = [
        ("files_checked", "all", checked, "", "", ""),
        *(
            ("files_checked", f"outcome={o}", n, "", "", "")
            for o, n in sorted(sums.by(Metric.FILES_CHECKED, "outcome").items())
        ),
        (
            "not_checked_share",
            "undecodable+error+not_answered",
            *_share(proportion(incomplete, checked)),
            checked,
        ),
        *(
            ("matches", f"algorithm={a}", n, "", "", "")
            for a, n in sorted(sums.by(Metric.MATCHES, "algorithm").items())
        ),
        *(
            ("decisions", f"decision={d}", n, "", "", "")
            for d, n in sorted(sums.by(Metric.DECISIONS, "decision").items())
        ),
        *_accuracy_rows(sums),
    ]
    return Sheet(
        name="dsa-1.6-automated-means",
        title="1.6 Art. 15(1)(b)(c)(e), 42(2)(c): automated means and indicators of accuracy",
        header=("indicator", "breakdown", "value", "ci95_low", "ci95_high", "n"),
        rows=tuple(rows),
    )


def _interim_regulation(sums: _Sums, retention: str) -> Sheet:
    kinds = sums.by(Metric.FILES_CHECKED, "kind")
    algorithms = sorted(a for a in sums.by(Metric.MATCHES, "algorithm") if a)
    confirmed = sums.total(Metric.CASES_DECIDED, outcome="confirmed")
    wrong = sums.total(Metric.CASES_DECIDED, outcome="false_positive")
    error = proportion(wrong, confirmed + wrong)
    appeals = sums.by(Metric.APPEALS, "state")
    rows: list[tuple[Cell, ...]] = [
        ("type_of_data_processed", "hashes of images and videos: " + ", ".join(algorithms)),
        *((f"volume_processed_{k or 'unspecified'}", n) for k, n in sorted(kinds.items())),
        ("volume_processed_total", sum(kinds.values())),
        ("cases_identified", sums.total(Metric.CASES_OPENED)),
        ("cases_confirmed", confirmed),
        ("cases_reported", sums.total(Metric.REPORTS, state="filed")),
        ("complaints_received", appeals.get("received", 0)),
        ("complaints_upheld", appeals.get("upheld", 0)),
        ("complaints_reversed", appeals.get("reversed", 0)),
        ("error_rate_false_positives", _share(error)[0]),
        ("error_rate_ci95", "{}-{}".format(*_share(error)[1:]) if error.value is not None else ""),
        ("error_rate_n", error.total),
        ("retention_policy", retention),
    ]
    return Sheet(
        name="eu-2021-1232-art3-annual",
        title="Regulation (EU) 2021/1232 Art. 3(1)(g)(vii): annual report",
        header=("indicator", "value"),
        rows=tuple(rows),
    )


def build_report(
    reader: StatsReader,
    period: Period,
    *,
    provider: str,
    service: str,
    retention: str,
    at: datetime,
) -> TransparencyReport:
    sums = _Sums(by_month(reader), period)
    return TransparencyReport(
        period=period,
        provider=provider,
        service=service,
        generated_at=at,
        sheets=(
            _identification(period, provider, service, at),
            _notices(sums),
            _own_initiative(sums),
            _complaints(sums),
            _automated(sums),
            _interim_regulation(sums, retention),
        ),
    )


def sheet_csv(sheet: Sheet) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(sheet.header)
    writer.writerows(sheet.rows)
    return buffer.getvalue()


def report_files(report: TransparencyReport, html: str) -> dict[str, bytes]:
    """File name → content: a CSV per sheet and ``summary.html``."""
    files = {f"{sheet.name}.csv": sheet_csv(sheet).encode() for sheet in report.sheets}
    files["summary.html"] = html.encode()
    return files


def sheets_json(report: TransparencyReport) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "title": s.title,
            "rows": [dict(zip(s.header, r, strict=True)) for r in s.rows],
        }
        for s in report.sheets
    ]


def rows_of(sheet: Sheet) -> Sequence[Mapping[str, Cell]]:
    return [dict(zip(sheet.header, row, strict=True)) for row in sheet.rows]
