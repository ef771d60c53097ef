"""Hotline referrals: the rules for opening a referral task for a case, and for closing it.

IWF, EOKM and BEE SECURE Stopline take reports through a web form only: hashguard sends
nothing. A task holds the facts a person pastes into the hotline's form and the form's
address; the person then marks it done with the hotline's reference, or cancels it.

Only a **confirmed** case (``Case.reportable``: two people confirmed it under the
two-person rule) may be referred, as only confirmed content is ever reported anywhere.
A case has at most one open task per configured hotline (opening again returns it) and
is referred to a hotline at most once (a done task stays; a cancelled one may be
followed by a new one). Every change is recorded in the audit log with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from hashguard.domain.cases import Case, CaseState
from hashguard.domain.referrals import (
    MAX_REASON,
    MAX_REFERENCE,
    Hotline,
    MatchedList,
    ReferralFacts,
    ReferralState,
    ReferralTask,
    clean_reference,
)
from hashguard.domain.remote import RemoteStatus
from hashguard.domain.text import unstorable
from hashguard.settings import Settings
from hashguard.store import Store
from hashguard.store.cases import UnknownCase
from hashguard.store.referrals import ReferralClosed, UnknownReferral

__all__ = [
    "REFERABLE",
    "AlreadyReferred",
    "InvalidReference",
    "NotReferable",
    "ReasonRequired",
    "ReferralClosed",
    "ReferralError",
    "UnknownCase",
    "UnknownHotline",
    "UnknownReferral",
    "cancel",
    "facts_of",
    "hotlines_of",
    "mark_done",
    "open_referral",
]

#: The one case state that may be referred: what may be reported (``Case.reportable``).
REFERABLE = CaseState.CONFIRMED


class ReferralError(ValueError):
    """A referral step that the rules refuse."""


class NotReferable(ReferralError):
    def __init__(self, case: Case) -> None:
        super().__init__(
            f"case #{case.id} is {case.state}: only a {REFERABLE} case is referred to a hotline"
        )
        self.case = case


class UnknownHotline(ReferralError):
    def __init__(self, key: str, configured: Mapping[str, Hotline]) -> None:
        names = ", ".join(configured) or "none: set referral_hotlines"
        super().__init__(f"{key!r} is not a hotline this host refers to (configured: {names})")


class AlreadyReferred(ReferralError):
    def __init__(self, task: ReferralTask) -> None:
        super().__init__(
            f"case #{task.case_id} was already referred to {task.hotline} "
            f"(task #{task.id}, reference {task.reference})"
        )
        self.task = task


class InvalidReference(ReferralError):
    def __init__(self) -> None:
        super().__init__(
            "the hotline's reference is required: one line of up to "
            f"{MAX_REFERENCE} characters, as the hotline gave it"
        )


class ReasonRequired(ReferralError):
    def __init__(self) -> None:
        super().__init__(f"a reason is required (one to {MAX_REASON} characters)")


def hotlines_of(settings: Settings) -> dict[str, Hotline]:
    """The hotlines this host refers to (``referral_hotlines``), by key, in order."""
    return {
        key: Hotline(
            key=key,
            name=given.name,
            form_url=given.form_url,
            country=given.country,
            notes=given.notes,
        )
        for key, given in settings.referral_hotlines.items()
    }


def facts_of(case: Case) -> ReferralFacts:
    """What a hotline's form asks, from the case: the URL, when the content was first
    seen, the lists it matched (names and categories, never their hashes or entry ids)
    and the content's own SHA-256 and MD5. Never the content."""
    banks: dict[str, tuple[set[str], set[str]]] = {}
    for match in case.matches:
        if not match.effective:
            continue
        categories, algorithms = banks.setdefault(match.bank, (set(), set()))
        if match.category:
            categories.add(match.category)
        algorithms.add(str(match.algorithm))
    lists = [
        MatchedList(name=name, categories=tuple(sorted(c)), algorithms=tuple(sorted(a)))
        for name, (c, a) in sorted(banks.items())
    ]
    for result in case.remote:
        if result.status is RemoteStatus.MATCHED:
            lists.append(
                MatchedList(
                    name=result.service + (f" ({result.source})" if result.source else ""),
                    categories=(result.classification,) if result.classification else (),
                )
            )
    return ReferralFacts(
        case_id=case.id,
        url=case.content.url,
        first_seen=case.created_at,
        lists=tuple(lists),
        sha256=case.content_key,
        md5=case.signals.md5 if case.signals is not None else None,
        confirmations=len(case.confirmers),
    )


def open_referral(
    store: Store,
    case_id: int,
    hotline: str,
    *,
    hotlines: Mapping[str, Hotline],
    actor: str,
    at: datetime,
) -> tuple[ReferralTask, bool]:
    """The case's open task for ``hotline`` (one of ``hotlines``, the configured ones),
    opened now if it has none; and whether it was opened now. Refused for a case that
    is not confirmed and for one already referred to that hotline."""
    chosen = hotlines.get(hotline)
    if chosen is None:
        raise UnknownHotline(hotline, hotlines)
    case = store.cases.get(case_id)
    if case.state is not REFERABLE:
        raise NotReferable(case)
    task, created = store.referrals.open(
        case_id=case.id,
        hotline=chosen.key,
        form_url=chosen.form_url,
        facts=facts_of(case),
        actor=actor,
        at=at,
    )
    if task.state is ReferralState.DONE:
        raise AlreadyReferred(task)
    return task, created


def mark_done(
    store: Store, task_id: int, reference: str, *, actor: str, at: datetime
) -> ReferralTask:
    """The person filed the report on the hotline's form: record the hotline's own
    reference for it (required: one line, as the hotline gave it)."""
    cleaned = clean_reference(reference)
    if cleaned is None:
        raise InvalidReference
    return store.referrals.close(
        task_id, state=ReferralState.DONE, actor=actor, at=at, reference=cleaned
    )


def cancel(store: Store, task_id: int, reason: str, *, actor: str, at: datetime) -> ReferralTask:
    """Cancel an open task (no report will be filed through it), saying why."""
    text = reason.strip()
    if not text or len(text) > MAX_REASON or unstorable(text) is not None:
        raise ReasonRequired
    return store.referrals.close(
        task_id, state=ReferralState.CANCELLED, actor=actor, at=at, reason=text
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseReferrals:
    """A case's referrals as a page shows them: its tasks, newest first, and the
    configured hotlines it could still be referred to (none when it is not confirmed)."""

    tasks: tuple[ReferralTask, ...]
    hotlines: Mapping[str, Hotline]
    openable: tuple[Hotline, ...]
    referable: bool


def of_case(store: Store, case: Case, hotlines: Mapping[str, Hotline]) -> CaseReferrals:
    tasks = store.referrals.list(case_id=case.id)
    taken = {t.hotline for t in tasks if t.state is not ReferralState.CANCELLED}
    referable = case.state is REFERABLE
    return CaseReferrals(
        tasks=tuple(reversed(tasks)),
        hotlines=hotlines,
        openable=tuple(h for k, h in hotlines.items() if k not in taken) if referable else (),
        referable=referable,
    )
