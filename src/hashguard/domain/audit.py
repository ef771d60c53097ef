"""Audit events and what verifying their hash chain found. Entries never change."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

#: The ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64

#: Persisted action names: dotted, lowercase, never renamed.
ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
#: Who acted: ``kind:name`` (``cli:root``, ``token:3``, ``user:alice``, ``system:sync``).
ACTOR_PATTERN = r"^[a-z][a-z0-9_]*:\S{1,190}$"


class AuditAction(StrEnum):
    """Every action name hashguard records: the only way code names an event (the audit
    functions take this type, and ``tests/test_audit.py`` checks that no call in
    ``src/`` passes a string). Values are persisted: never rename one."""

    BANK_CREATED = "bank.created"
    BANK_CONFIGURED = "bank.configured"
    BANK_IMPORTED = "bank.imported"
    BANK_DELETED = "bank.deleted"
    BANK_ENTRIES_ADDED = "bank.entries_added"
    BANK_ENTRIES_REMOVED = "bank.entries_removed"
    #: the flood guard paused an entry that matched too many distinct items
    BANK_ENTRY_FLOODED = "bank.entry_flooded"
    #: a lead let a paused entry act again (its counter restarts)
    BANK_ENTRY_RELEASED = "bank.entry_released"
    #: a lead removed a paused entry from its bank
    BANK_ENTRY_TOMBSTONED = "bank.entry_tombstoned"
    BANK_FLOOD_CONFIGURED = "bank.flood_configured"
    TOKEN_CREATED = "token.created"  # noqa: S105 (an action name)
    TOKEN_REVOKED = "token.revoked"  # noqa: S105 (an action name)
    EXCHANGE_ADDED = "exchange.added"
    EXCHANGE_ENABLED = "exchange.enabled"
    EXCHANGE_DISABLED = "exchange.disabled"
    EXCHANGE_REMOVED = "exchange.removed"
    EXCHANGE_SYNCED = "exchange.synced"
    #: automatic feedback to an exchange on final review decisions switched on / off
    EXCHANGE_FEEDBACK_ON = "exchange.feedback_on"
    EXCHANGE_FEEDBACK_OFF = "exchange.feedback_off"
    #: feedback on one of an exchange's entries put in the outbox (a decision or by hand)
    EXCHANGE_FEEDBACK_QUEUED = "exchange.feedback_queued"
    EXCHANGE_FEEDBACK_SENT = "exchange.feedback_sent"
    #: feedback that could not be queued, or that the exchange can never take
    EXCHANGE_FEEDBACK_FAILED = "exchange.feedback_failed"
    SCAN_DECISION = "scan.decision"
    CONTENT_REVEALED = "content.revealed"
    EVIDENCE_KEPT = "evidence.kept"
    EVIDENCE_REVEALED = "evidence.revealed"
    EVIDENCE_HELD = "evidence.held"
    EVIDENCE_RELEASED = "evidence.released"
    EVIDENCE_DESTROYED = "evidence.destroyed"
    EVIDENCE_NOT_KEPT = "evidence.not_kept"
    EVIDENCE_RETENTION_RUN = "evidence.retention_run"
    CASE_OPENED = "case.opened"
    CASE_SEEN_AGAIN = "case.seen_again"
    CASE_ASSIGNED = "case.assigned"
    CASE_CONFIRMED = "case.confirmed"
    CASE_FALSE_POSITIVE = "case.false_positive"
    CASE_ESCALATED = "case.escalated"
    #: a reviewer set a case's file annotations / industry classification (for reports)
    CASE_ANNOTATED = "case.annotated"
    CASE_CLASSIFIED = "case.classified"
    ACTION_RETRIED = "action.retried"
    CONTENT_QUARANTINED = "content.quarantined"
    CONTENT_RESTORED = "content.restored"
    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED = "login.locked"
    SESSION_ENDED = "session.ended"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    REVIEW_BREAK_REMINDED = "review.break_reminded"
    REVIEW_REVEAL_REFUSED = "review.reveal_refused"
    REVIEW_REVEALS_GRANTED = "review.reveals_granted"
    REMOTE_SECRET_SET = "remote.secret_set"  # noqa: S105 (an action name)
    REMOTE_SECRET_REMOVED = "remote.secret_removed"  # noqa: S105 (an action name)
    #: reports to a national channel (NCMEC CyberTipline): each step of the state machine
    REPORT_DRAFTED = "report.drafted"
    REPORT_SUBMITTED = "report.submitted"
    REPORT_FILE_UPLOADED = "report.file_uploaded"
    REPORT_FILE_DESCRIBED = "report.file_described"
    REPORT_FINISHED = "report.finished"
    REPORT_RETRACTED = "report.retracted"
    REPORT_RETRY_SCHEDULED = "report.retry_scheduled"
    REPORT_RESTARTED = "report.restarted"
    REPORT_FAILED = "report.failed"
    #: a person sent a failed report again (``reports retry``): the previous error kept
    REPORT_REOPENED = "report.reopened"
    REPORT_SETTINGS_CHANGED = "report.settings_changed"
    #: hotline referrals (filed by hand on a hotline's web form): a task opened for a
    #: case, marked done with the hotline's reference, or cancelled with a reason
    REFERRAL_OPENED = "referral.opened"
    REFERRAL_DONE = "referral.done"
    REFERRAL_CANCELLED = "referral.cancelled"
    #: the platform was asked for a case's uploader details (the outcome, never a value)
    REPORT_UPLOADER_REQUESTED = "report.uploader_requested"
    #: auto_report could not draft or submit a confirmed case's report (once per error)
    REPORT_AUTO_REFUSED = "report.auto_refused"
    #: a finished report put the reported evidence on a hold for a year from the
    #: receipt (REPORT Act) and queued ``report.filed`` webhooks
    EVIDENCE_PRESERVED = "evidence.preserved"
    #: DSA Art. 16 notices: received (API or public form), each state change of its
    #: resolution through the platform's callback (``notices/resolve.py``)
    NOTICE_RECEIVED = "notice.received"
    NOTICE_RESOLVING = "notice.resolving"
    NOTICE_RESOLVED = "notice.resolved"
    NOTICE_NOT_FOUND = "notice.not_found"
    NOTICE_UNDECODABLE = "notice.undecodable"
    NOTICE_FAILED = "notice.failed"
    #: a token looked up many PDQ hashes close to its own matched ones (reading a list)
    LOOKUP_PROBING = "lookup.probing"
    #: a statement of reasons (DSA Art. 17) was issued for a restriction
    STATEMENT_ISSUED = "statement.issued"
    #: a kept signal matched a bank entry added after it was checked (retro-matching)
    RETRO_MATCHED = "retro.matched"
    #: a retro-match run: the new entries matched against every kept signal
    RETRO_RUN = "retro.run"
    #: kept signals past their retention limit were forgotten
    RETRO_FORGOTTEN = "retro.forgotten"
    #: a batch of statements was filed in the Transparency Database (puids named)
    STATEMENTS_FILED = "statement.filed"
    #: the Transparency Database refused a statement as invalid (the dead letter)
    STATEMENT_REFUSED = "statement.refused"
    #: a batch could not be filed now (the Database down, the token refused): retried
    STATEMENT_RETRY_SCHEDULED = "statement.retry_scheduled"
    STATEMENT_SETTINGS_CHANGED = "statement.settings_changed"
    #: a notifier was told the decision on their notice (DSA Art. 16(5))
    NOTICE_DECIDED = "notice.decided"
    #: tenants of the hash check service (``hashguard tenants``)
    TENANT_ADDED = "tenant.added"
    TENANT_SUSPENDED = "tenant.suspended"
    TENANT_RESUMED = "tenant.resumed"
    #: a tenant's lookup call matched listed hashes (counts per bank, never a hash), so
    #: the hotline can follow up with the host
    LOOKUP_MATCHED = "lookup.matched"
    #: a tenant went over its daily quota (once per tenant and day)
    TENANT_QUOTA_REACHED = "tenant.quota_reached"
    #: an appeal (DSA Art. 20) received from the platform (``state`` "received") and
    #: decided by a person who did not take the first decision (``state`` "upheld" or
    #: "reversed"): what ``Metric.APPEALS`` counts
    APPEAL_RECEIVED = "appeal.received"
    APPEAL_DECIDED = "appeal.decided"
    #: what a reversal did to the quarantined files (``restoration``: restored/failed/none)
    APPEAL_RESTORED = "appeal.restored"
    #: the signed aggregate feed of a period was put in the outbox for its subscribers
    STATS_FEED_PUSHED = "stats.feed_pushed"


def valid_action(action: str) -> bool:
    return action == AuditAction.LOGIN or re.fullmatch(ACTION_PATTERN, action) is not None


def valid_actor(actor: str) -> bool:
    return re.fullmatch(ACTOR_PATTERN, actor) is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEvent:
    """One entry of the log. ``hash`` is SHA-256 over ``prev_hash`` and the entry's
    canonical JSON (every field but ``hash``); see ``hashguard.audit``. ``details`` is a
    JSON object that never holds a hash list's contents or a secret."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditHead:
    """The last entry's sequence number and hash (``0`` and ``GENESIS_HASH`` when empty).
    Kept somewhere the database's writers cannot reach, it proves later that nothing up
    to it was truncated or rewritten."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


class Problem(StrEnum):
    """What is wrong with the first broken entry (persisted in JSON output)."""

    #: its contents no longer match its own hash
    EDITED = "edited"
    #: its sequence number is missing from the log
    MISSING = "missing"
    #: it does not follow the entry before it (deleted, reordered or rewritten before it)
    BROKEN_LINK = "broken_link"
    #: its sequence number is not above the one before it
    OUT_OF_ORDER = "out_of_order"
    #: the log ends before an anchor's entry
    TRUNCATED = "truncated"
    #: the entry at an anchor's sequence number has another hash (rewritten)
    ANCHOR_MISMATCH = "anchor_mismatch"
    #: entries after the recorded head that hashguard did not append
    UNANCHORED = "unanchored"


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyReport:
    """``checked`` entries were verified up to ``head``; when broken, ``broken_seq`` is
    the first broken entry's sequence number and ``problem``/``message`` say why."""

    checked: int
    head: AuditHead
    problem: Problem | None = None
    broken_seq: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None
