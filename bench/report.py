"""Result rows and their two outputs: the rich table and bench/out/results.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

PASS, FAIL, INFO = "pass", "fail", "info"


@dataclass(frozen=True, kw_only=True, slots=True)
class Row:
    """One figure. ``baseline`` is in the same unit as ``value``; ``ratio`` is value/baseline.

    ``value`` is text for a figure made of several numbers (then ``unit`` is empty and
    the numbers go in ``details``).
    """

    figure: str
    value: float | str | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = "info"
    verdict: str = INFO
    #: Further numbers shown after the value, by unit, e.g. the rate that goes with a duration.
    extra: dict[str, float] = field(default_factory=dict)
    #: Raw result of every repeat, for the JSON only, in ``samples_unit``.
    samples: list[float] = field(default_factory=list)
    samples_unit: str = "s"
    #: Named numbers behind a text ``value``, for the JSON only.
    details: dict[str, float] = field(default_factory=dict)


def at_least(ratio: float, target: float) -> str:
    return PASS if ratio >= target else FAIL


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


_STYLES = {PASS: "green", FAIL: "bold red", INFO: "dim"}


def table(rows: list[Row], title: str) -> Table:
    result = Table("figure", "value", "baseline", "ratio", "target", "verdict", title=title)
    for row in rows:
        value = row.value if isinstance(row.value, str) else f"{number(row.value)} {row.unit}"
        if row.extra:
            value += " (" + ", ".join(f"{number(v)} {unit}" for unit, v in row.extra.items()) + ")"
        baseline = f"{number(row.baseline)} {row.unit}" if row.baseline is not None else "—"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "—"
        style = _STYLES.get(row.verdict, "")
        verdict = f"[{style}]{row.verdict}[/{style}]"
        result.add_row(row.figure, value, baseline, ratio, row.target, verdict)
    return result


def write_json(path: Path, rows: list[Row], machine: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine, "rows": [asdict(row) for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
