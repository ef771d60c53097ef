"""Statements of reasons (DSA Art. 17): what a decision restricting content tells the
uploader, and where each stands on its way to the Transparency Database (Art. 24(5)).

A statement holds no personal data by construction: its facts and texts are built from
templates, the case's decision and the host's configured legal ground, never from an
uploader id, a URL, a path, an e-mail or an address. The enum values are the
Transparency Database's own names (``reference/dsa/tdb_schema.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from hashguard.domain.cases import Case

#: what the puid may hold (the Database's rule): it is also our idempotency key
PUID_PATTERN = r"^[a-zA-Z0-9_-]{1,500}$"
#: a batch to the Database holds 1 to 100 statements
MAX_BATCH = 100
#: every EU and EEA country code the Database takes (Greece is GR)
EU_EEA = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip
CATEGORY = "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
KEYWORD = "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"
GROUND = "DECISION_GROUND_ILLEGAL_CONTENT"
DEFAULT_LEGAL_GROUND = "Article 5 of Directive 2011/93/EU as transposed in national criminal law"
DEFAULT_REDRESS = (
    "You may contest this decision through our internal complaint-handling system "
    "(Article 20 DSA) within six months, by replying through the service where you "
    "received this statement. You may also refer it to a certified out-of-court dispute "
    "settlement body (Article 21 DSA), and you may seek redress before a court."
)


class StatementKind(StrEnum):
    """Which decision the statement explains. Persisted names."""

    #: the pipeline's automatic ``act`` decision (automated detection and decision)
    AUTOMATED = "automated"
    #: the confirmation by people that made the case ``confirmed``
    CONFIRMED = "confirmed"
    #: an appeal (Art. 20) decided by a person: the restriction stands
    APPEAL_UPHELD = "appeal_upheld"
    #: an appeal (Art. 20) decided by a person: the restriction is lifted. Never filed in
    #: the Transparency Database, whose statements each describe a restriction
    APPEAL_REVERSED = "appeal_reversed"

    @property
    def filed(self) -> bool:
        """Whether statements of this kind go to the Transparency Database."""
        return self is not StatementKind.APPEAL_REVERSED


class Visibility(StrEnum):
    REMOVED = "DECISION_VISIBILITY_CONTENT_REMOVED"
    DISABLED = "DECISION_VISIBILITY_CONTENT_DISABLED"


class ContentType(StrEnum):
    IMAGE = "CONTENT_TYPE_IMAGE"
    VIDEO = "CONTENT_TYPE_VIDEO"
    OTHER = "CONTENT_TYPE_OTHER"


class SourceType(StrEnum):
    """How the content came to the host's attention (the Database's ``source_type``)."""

    ARTICLE_16 = "SOURCE_ARTICLE_16"
    TRUSTED_FLAGGER = "SOURCE_TRUSTED_FLAGGER"
    OTHER_NOTIFICATION = "SOURCE_TYPE_OTHER_NOTIFICATION"
    VOLUNTARY = "SOURCE_VOLUNTARY"


class AutomatedDecision(StrEnum):
    FULLY = "AUTOMATED_DECISION_FULLY"
    PARTIALLY = "AUTOMATED_DECISION_PARTIALLY"
    NOT_AUTOMATED = "AUTOMATED_DECISION_NOT_AUTOMATED"


class FilingState(StrEnum):
    """Where a statement stands with the Transparency Database. Persisted names.

    ``sending``: in a batch whose answer was not recorded yet (a process killed there
    leaves it so; it is sent again once its lease ends and a puid the Database already
    holds is reconciled as filed). ``failed``: the Database refused it as invalid (the
    dead letter, shown by ``hashguard statements list``). ``not_filed``: a kind the
    Database has no statement for (``StatementKind.filed``)."""

    PENDING = "pending"
    SENDING = "sending"
    FILED = "filed"
    FAILED = "failed"
    #: a statement the Database takes none of (an appeal's reversal): kept, never sent
    NOT_FILED = "not_filed"


#: who sent the notice behind a case (the notices' ``NotifierKind`` value:
#: ``user``, ``trusted_flagger``, ``hotline``, ``authority``), or None (no notice known)
NotifierOf = Callable[[Case], str | None]
TRUSTED_FLAGGER = "trusted_flagger"


@dataclass(frozen=True, kw_only=True, slots=True)
class StatementConfig:
    """What the host configured (``hashguard statements settings``). ``issue``: whether
    decisions produce statements at all (hosting services in the EU); ``prefix`` makes
    puids unique to this installation (generated once)."""

    issue: bool = False
    prefix: str = "hg"
    legal_ground: str = DEFAULT_LEGAL_GROUND
    territorial_scope: tuple[str, ...] = EU_EEA
    redress: str = DEFAULT_REDRESS
    reference_url: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StatementOfReasons:
    """One restriction explained: everything the uploader's text and the Database's
    statement are built from (and nothing personal)."""

    puid: str
    case_id: int
    kind: StatementKind
    visibility: Visibility
    content_type: ContentType
    source_type: SourceType
    automated_detection: bool
    automated_decision: AutomatedDecision
    legal_ground: str
    explanation: str
    facts: str
    territorial_scope: tuple[str, ...]
    content_date: date
    decided_at: datetime
    redress: str
    reference_url: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Statement:
    """A stored statement: its reasons, the uploader's text and its filing state."""

    id: int
    reasons: StatementOfReasons
    text: str
    state: FilingState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    tdb_uuid: str | None = None
    filed_at: datetime | None = None

    @property
    def puid(self) -> str:
        return self.reasons.puid

    @property
    def case_id(self) -> int:
        return self.reasons.case_id


def reasons_to_json(sor: StatementOfReasons) -> dict[str, Any]:
    return {
        "puid": sor.puid,
        "case_id": sor.case_id,
        "kind": str(sor.kind),
        "visibility": str(sor.visibility),
        "content_type": str(sor.content_type),
        "source_type": str(sor.source_type),
        "automated_detection": sor.automated_detection,
        "automated_decision": str(sor.automated_decision),
        "legal_ground": sor.legal_ground,
        "explanation": sor.explanation,
        "facts": sor.facts,
        "territorial_scope": list(sor.territorial_scope),
        "content_date": sor.content_date.isoformat(),
        "decided_at": sor.decided_at.isoformat(),
        "redress": sor.redress,
        "reference_url": sor.reference_url,
    }


def reasons_from_json(data: Mapping[str, Any]) -> StatementOfReasons:
    return StatementOfReasons(
        puid=data["puid"],
        case_id=int(data["case_id"]),
        kind=StatementKind(data["kind"]),
        visibility=Visibility(data["visibility"]),
        content_type=ContentType(data["content_type"]),
        source_type=SourceType(data["source_type"]),
        automated_detection=bool(data["automated_detection"]),
        automated_decision=AutomatedDecision(data["automated_decision"]),
        legal_ground=data["legal_ground"],
        explanation=data["explanation"],
        facts=data["facts"],
        territorial_scope=tuple(data["territorial_scope"]),
        content_date=date.fromisoformat(data["content_date"]),
        decided_at=datetime.fromisoformat(data["decided_at"]),
        redress=data["redress"],
        reference_url=data.get("reference_url"),
    )
