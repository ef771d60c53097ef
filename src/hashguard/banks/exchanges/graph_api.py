"""Meta Graph API versions: which one the ThreatExchange adapter asks for by default, and
when each configured version stops working.

Meta keeps a Graph API version available for at least two years and names its end
date once a later version ships ("Available until" in
developers.facebook.com/docs/graph-api/changelog/versions, read 2026-12). A call to an
ended version fails, so a sync on it would fail: the operator is warned from
``WARN_DAYS`` before the end (``hashguard exchanges sync``, ``hashguard doctor``).
Update ``END_OF_LIFE`` when Meta names the next end dates; nothing else needs to change.
"""

from __future__ import annotations

import re
from datetime import date

#: the version the ThreatExchange adapter uses when the exchange names none. Checked on
#: this version: ``/{privacy_group}/threat_updates`` with the fields and ``paging.next``
#: the adapter reads, ``{indicator}?fields=descriptors`` and ``POST /{descriptor}
#: ?reactions=`` are what python-threatexchange 1.2.17 calls on v26.0, and the
#: ThreatExchange changelog lists no change to them since 2023
DEFAULT_VERSION = "v26.0"

#: warn this many days (and fewer) before a version's end
WARN_DAYS = 60

#: version -> the last day Meta lists it as available. A version newer than every one
#: here has no end date yet; one older than every one here has ended.
END_OF_LIFE: dict[str, date] = {
    "v16.0": date(2025, 5, 14),
    "v17.0": date(2025, 9, 12),
    "v18.0": date(2026, 1, 26),
    "v19.0": date(2026, 5, 21),
    "v20.0": date(2026, 9, 24),
    "v21.0": date(2027, 1, 21),
    "v22.0": date(2027, 5, 20),
    "v23.0": date(2027, 10, 8),
    "v24.0": date(2028, 2, 18),
    "v25.0": date(2028, 7, 29),
    # v26.0 (2026-07-29): end not yet named
}

_VERSION = re.compile(r"^v(\d+)\.(\d+)$")


def _number(version: str) -> tuple[int, int] | None:
    found = _VERSION.fullmatch(version)
    return None if found is None else (int(found.group(1)), int(found.group(2)))


def end_of_life(version: str) -> date | None:
    """The last day ``version`` is available; ``None`` when no end is named yet.
    A version older than the oldest in the table has ended (``date.min``)."""
    if version in END_OF_LIFE:
        return END_OF_LIFE[version]
    number = _number(version)
    oldest = min(n for n in map(_number, END_OF_LIFE) if n is not None)
    if number is not None and number < oldest:
        return date.min
    return None


def graph_api_warning(version: str, today: date) -> str | None:
    """What to tell the operator about Graph API ``version`` on ``today``: ``None`` while
    it has more than ``WARN_DAYS`` days left (or no end date), else a one-line warning
    naming the end date and the version to move to."""
    if _number(version) is None:
        return f"{version!r} is not a Graph API version (vMAJOR.MINOR); use {DEFAULT_VERSION}"
    end = end_of_life(version)
    if end is None:
        return None
    move = f"set the exchange's api_version to {DEFAULT_VERSION} (or leave it unset)"
    if end == date.min:
        return f"Graph API {version} is no longer available: {move}"
    left = (end - today).days
    if left < 0:
        return f"Graph API {version} ended on {end.isoformat()}; syncs fail: {move}"
    if left <= WARN_DAYS:
        days = "today is its last day" if left == 0 else f"{left} day{'s' * (left != 1)} left"
        return f"Graph API {version} is available only until {end.isoformat()} ({days}): {move}"
    return None
