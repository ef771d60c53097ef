"""Hotline referrals: tasks to report a confirmed case by hand to a hotline that takes
reports through a web form only (IWF, EOKM, BEE SECURE Stopline), with the facts a
person pastes into that form. Nothing here is ever sent anywhere by hashguard."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

#: A hotline's name in settings, the CLI and the store: persisted, never renamed.
HOTLINE_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
#: The longest hotline reference kept (reference numbers are short; this is generous).
MAX_REFERENCE = 200
#: The longest reason for cancelling a task.
MAX_REASON = 4000


class ReferralState(StrEnum):
    """Where a referral task stands. Persisted names; never rename a value.

    ``open`` → ``done`` (a person filed it on the hotline's form and recorded the
    hotline's reference) or ``cancelled`` (with a reason). ``done`` and ``cancelled``
    are final; after a cancellation the case may get a new task for that hotline.
    """

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self is not ReferralState.OPEN


@dataclass(frozen=True, kw_only=True, slots=True)
class Hotline:
    """A hotline a host refers cases to: ``key`` is its persisted name, ``form_url`` the
    public page where its report form is, ``country`` an ISO 3166-1 alpha-2 code."""

    key: str
    name: str
    form_url: str
    country: str
    notes: str = ""

    def as_settings(self) -> dict[str, str]:
        """The settings shape (``HotlineSettings``) of this hotline, without its key."""
        return {
            "name": self.name,
            "form_url": self.form_url,
            "country": self.country,
            "notes": self.notes,
        }


#: Built-in hotlines a host switches on by name (``referral_hotlines = ["iwf"]``). Their
#: report pages, as public on 2026-12-04; a host may override any field in settings.
KNOWN_HOTLINES: Mapping[str, Hotline] = {
    "iwf": Hotline(
        key="iwf",
        name="Internet Watch Foundation (IWF)",
        form_url="https://report.iwf.org.uk/",
        country="GB",
        notes=(
            "Report the URL where the content is. Reports may be anonymous; give a "
            "contact e-mail to receive IWF's reference number."
        ),
    ),
    "eokm": Hotline(
        key="eokm",
        name="Meldpunt Kinderporno (EOKM)",
        form_url="https://www.meldpunt-kinderporno.nl/",
        country="NL",
        notes=(
            "Takes content at a public URL only (not cloud storage or files). The form "
            "shows a receipt on screen; ask for feedback on the form to hear back."
        ),
    ),
    "bee-secure": Hotline(
        key="bee-secure",
        name="BEE SECURE Stopline",
        form_url="https://stopline.bee-secure.lu/",
        country="LU",
        notes=(
            "Choose the child sexual abuse material category. The Stopline gives a "
            "tracking number after the report is registered."
        ),
    ),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class MatchedList:
    """A list (a bank, or a remote service's source) the content matched: its name, the
    categories its matching entries carry and the algorithms that matched. Never a
    list's hash values or entry ids."""

    name: str
    categories: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ReferralFacts:
    """What a person pastes into a hotline's form: where the content was, when it was
    first seen, what it matched and the content's own hashes. Never the content itself,
    never a list's hashes beyond the content's own."""

    case_id: int
    url: str | None
    first_seen: datetime
    lists: tuple[MatchedList, ...]
    sha256: str
    md5: str | None
    #: how many people confirmed the case before it was referred
    confirmations: int

    def as_text(self) -> str:
        """The facts as lines to paste into a web form."""
        lists = "; ".join(
            item.name + (f" (categories: {', '.join(item.categories)})" if item.categories else "")
            for item in self.lists
        )
        lines = [
            f"URL: {self.url}" if self.url else "URL: not known",
            f"First seen: {self.first_seen.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
            f"Matched: {lists or 'no list'}",
            f"SHA-256: {self.sha256}",
        ]
        if self.md5:
            lines.append(f"MD5: {self.md5}")
        lines.append(
            "Found by hash matching against vetted lists of known material and confirmed "
            f"by {self.confirmations} trained reviewer{'s' if self.confirmations != 1 else ''}."
        )
        return "\n".join(lines)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReferralTask:
    """One case's referral to one hotline. ``facts`` and ``form_url`` are as they were
    when the task was opened. ``reference`` is the hotline's own reference for the
    report (set when done); ``cancel_reason`` why it was cancelled. ``closed_at`` and
    ``closed_by`` say when and by whom it was marked done or cancelled."""

    id: int
    case_id: int
    hotline: str
    form_url: str
    state: ReferralState
    facts: ReferralFacts
    created_at: datetime
    created_by: str
    reference: str | None = None
    cancel_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None


# -- checking what people type ----------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_reference(text: str) -> str | None:
    """``text`` as a hotline reference (trimmed), or None when it is not one: empty,
    longer than ``MAX_REFERENCE``, or holding control characters or line breaks."""
    value = text.strip()
    if not value or len(value) > MAX_REFERENCE or _CONTROL.search(value):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return None
    return value


# -- JSON ------------------------------------------------------------------------------


def facts_to_json(facts: ReferralFacts) -> dict[str, Any]:
    """The one JSON shape of referral facts (stored, shown by the CLI)."""
    return {
        "case_id": facts.case_id,
        "url": facts.url,
        "first_seen": facts.first_seen.isoformat(),
        "lists": [
            {
                "name": item.name,
                "categories": list(item.categories),
                "algorithms": list(item.algorithms),
            }
            for item in facts.lists
        ],
        "sha256": facts.sha256,
        "md5": facts.md5,
        "confirmations": facts.confirmations,
    }


def facts_from_json(data: Mapping[str, Any]) -> ReferralFacts:
    return ReferralFacts(
        case_id=int(data["case_id"]),
        url=data.get("url"),
        first_seen=datetime.fromisoformat(data["first_seen"]),
        lists=tuple(
            MatchedList(
                name=item["name"],
                categories=tuple(item.get("categories", ())),
                algorithms=tuple(item.get("algorithms", ())),
            )
            for item in data.get("lists", ())
        ),
        sha256=data["sha256"],
        md5=data.get("md5"),
        confirmations=int(data.get("confirmations", 0)),
    )


def task_to_json(task: ReferralTask) -> dict[str, Any]:
    """The JSON shape of a referral task (CLI output)."""
    return {
        "id": task.id,
        "case_id": task.case_id,
        "hotline": task.hotline,
        "form_url": task.form_url,
        "state": str(task.state),
        "facts": facts_to_json(task.facts),
        "facts_text": task.facts.as_text(),
        "reference": task.reference,
        "cancel_reason": task.cancel_reason,
        "created_at": task.created_at.isoformat(),
        "created_by": task.created_by,
        "closed_at": task.closed_at.isoformat() if task.closed_at else None,
        "closed_by": task.closed_by,
    }
