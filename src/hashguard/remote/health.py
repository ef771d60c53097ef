"""Where matches come from, at a glance: each configured remote service and classifier
with its mode, its last answer and its recent silence (``hashguard doctor``,
``hashguard plugins list``).

Read from what is recorded, never from a call: the remote answers kept with scan
results (the newest ``RECENT`` results that have any: a service's last answer, and its
``not_answered`` share over the hour before ``now``), and the daily rollup of
``remote_calls`` (every way in, uploads too: today's share). ``now`` is given by the
caller (tests set it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.stats import Metric, StatsReader
from hashguard.plugins import Registry
from hashguard.remote.service import adapter_of

#: recorded results read for the last answers and the last hour
RECENT = 5000
HOUR = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceHealth:
    """One configured service (``remote.<name>``) as the records show it."""

    name: str
    adapter: str
    #: ``remote_matcher`` or ``classifier`` (empty when its adapter is not installed)
    kind: str
    #: ``test`` or ``live``
    mode: str
    last_at: datetime | None
    last_status: RemoteStatus | None
    hour_calls: int
    hour_not_answered: int
    today_calls: int
    today_not_answered: int

    @property
    def hour_share(self) -> float | None:
        """The share of ``not_answered`` in the last hour (None: no call recorded)."""
        return self.hour_not_answered / self.hour_calls if self.hour_calls else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "adapter": self.adapter,
            "kind": self.kind,
            "mode": self.mode,
            "last_answer_at": self.last_at.isoformat() if self.last_at else None,
            "last_answer": str(self.last_status) if self.last_status else None,
            "calls_last_hour": self.hour_calls,
            "not_answered_last_hour": self.hour_not_answered,
            "not_answered_share_last_hour": self.hour_share,
            "calls_today": self.today_calls,
            "not_answered_today": self.today_not_answered,
        }

    def describe(self) -> str:
        """One line: its last answer and its silence in the last hour and today."""
        last = (
            f"last answer {self.last_status} at {self.last_at:%Y-%m-%d %H:%M:%S} UTC"
            if self.last_at is not None
            else "no answer recorded"
        )
        hour = (
            f"not_answered {self.hour_not_answered} of {self.hour_calls} "
            f"({self.hour_share:.0%}) in the last hour"
            if self.hour_share is not None
            else "no call in the last hour"
        )
        today = f"today {self.today_not_answered} of {self.today_calls} not_answered"
        return f"{last}; {hour}; {today}"


def service_health(
    configs: Mapping[str, Mapping[str, Any]],
    registry: Registry,
    recent: Sequence[tuple[datetime, tuple[RemoteResult, ...]]],
    stats: StatsReader | None,
    *,
    now: datetime,
) -> list[ServiceHealth]:
    """Each service of ``configs`` (``Settings.remote``) by name, as ``recent``
    (``ScanStore.recent_remote``) and today's ``remote_calls`` rollup (``stats``; None:
    no store to read) show it."""
    last: dict[str, tuple[datetime, RemoteStatus]] = {}
    calls: dict[str, int] = {}
    silent: dict[str, int] = {}
    since = now - HOUR
    for at, answers in recent:
        for answer in answers:
            if answer.service not in last or at > last[answer.service][0]:
                last[answer.service] = (at, answer.status)
            if since <= at <= now:
                calls[answer.service] = calls.get(answer.service, 0) + 1
                if answer.status is RemoteStatus.NOT_ANSWERED:
                    silent[answer.service] = silent.get(answer.service, 0) + 1
    today_calls: dict[str, int] = {}
    today_silent: dict[str, int] = {}
    rows = stats.counts(now.date(), now.date(), {Metric.REMOTE_CALLS}) if stats else ()
    for row in rows:
        service = row.labels.get("service", "")
        today_calls[service] = today_calls.get(service, 0) + row.value
        if row.labels.get("answer") == "not_answered":
            today_silent[service] = today_silent.get(service, 0) + row.value
    kinds = {a.name: str(a.kind) for a in registry.installed()}
    found = []
    for name, options in sorted(configs.items()):
        adapter = adapter_of(name, options)
        kind = kinds.get(adapter, "")
        seen = last.get(name)
        found.append(
            ServiceHealth(
                name=name,
                adapter=adapter,
                kind=kind,
                mode="test" if options.get("test_mode", True) else "live",
                last_at=seen[0] if seen else None,
                last_status=seen[1] if seen else None,
                hour_calls=calls.get(name, 0),
                hour_not_answered=silent.get(name, 0),
                today_calls=today_calls.get(name, 0),
                today_not_answered=today_silent.get(name, 0),
            )
        )
    return found
