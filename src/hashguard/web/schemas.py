"""The JSON shapes of the API (pydantic models, which also make the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field
from typing_extensions import TypeAliasType

from hashguard.domain.banks import (
    BANK_NAME_PATTERN,
    MAX_PDQ_THRESHOLD,
    Bank,
    BankKind,
    BankStats,
    ImportReport,
)
from hashguard.domain.cases import Case, CaseEvent, CaseEventKind, CaseState, SourceKind
from hashguard.domain.matches import Match
from hashguard.domain.policy import DEFAULT_AUTO_MAX_DISTANCE, Action
from hashguard.domain.policy import Decision as PolicyDecision
from hashguard.domain.remote import RemoteResult, RemoteStatus, remote_to_json
from hashguard.domain.scans import Outcome, RunStatus, ScanRun
from hashguard.domain.signals import DIHEDRAL_NAMES, Algorithm, FileSignals, PdqHash, PdqMode
from hashguard.review.cases import NAME_PATTERN, case_json, event_json
from hashguard.review.decide import Verdict


class PdqOut(BaseModel):
    hash: str
    quality: int
    low_quality: bool
    frame: int
    mode: PdqMode = Field(
        description="how the pixels reached PDQ: only a reference hash is the one HMA and "
        "list holders compute"
    )

    @classmethod
    def of(cls, pdq: PdqHash) -> PdqOut:
        return cls(
            hash=pdq.value,
            quality=pdq.quality,
            low_quality=pdq.low_quality,
            frame=pdq.frame,
            mode=pdq.mode,
        )


class SignalsOut(BaseModel):
    """The upload's own hashes (never a bank's)."""

    size: int
    md5: str
    sha1: str
    sha256: str
    format: str | None
    width: int | None
    height: int | None
    pdq: list[PdqOut]
    pdq_reference: list[PdqOut] = Field(
        default_factory=list,
        description="reference-mode hashes of the same frames, when ``pdq`` was made in "
        "fast mode and they were computed",
    )

    @classmethod
    def of(cls, signals: FileSignals) -> SignalsOut:
        return cls(
            size=signals.size,
            md5=signals.md5,
            sha1=signals.sha1,
            sha256=signals.sha256,
            format=signals.image_format,
            width=signals.width,
            height=signals.height,
            pdq=[PdqOut.of(p) for p in signals.pdq],
            pdq_reference=[PdqOut.of(p) for p in signals.pdq_reference],
        )


class MatchOut(BaseModel):
    bank: str
    bank_kind: BankKind
    algorithm: Algorithm
    distance: int
    entry_id: str | None
    category: str | None
    frame: int
    transform: str = Field(description=f"one of {', '.join(DIHEDRAL_NAMES)}")
    suppressed_by: str | None

    @classmethod
    def of(cls, match: Match) -> MatchOut:
        return cls(
            bank=match.bank,
            bank_kind=match.bank_kind,
            algorithm=match.algorithm,
            distance=match.distance,
            entry_id=match.entry_id,
            category=match.category,
            frame=match.frame,
            transform=match.transform,
            suppressed_by=match.suppressed_by,
        )


class RemoteOut(BaseModel):
    """A remote matcher's answer; ``raw`` (the service's response) only for a match."""

    service: str
    status: RemoteStatus
    method: str
    classification: str | None
    match_type: str | None
    distance: int | None
    source: str | None
    tracking_id: str | None
    reason: str | None
    raw: str | None
    seconds: float

    @classmethod
    def of(cls, result: RemoteResult) -> RemoteOut:
        return cls.model_validate(
            remote_to_json(result, keep_raw=result.status is RemoteStatus.MATCHED)
        )


class ShadowDecisionOut(BaseModel):
    """What a bank in shadow mode would have decided: recorded, never acted on."""

    action: Action
    rule: str
    bank: str | None


class Decision(BaseModel):
    """What the policy decided and the rule (bank and band) that decided it.

    ``action``: ``act`` (automatically), ``review`` (by a person) or ``ignore``.
    ``shadow``: only banks in shadow mode matched (the action is then ``ignore``).
    ``matched`` is kept for older clients: the outcome is ``matched`` (a match beyond
    a bank's review band, or of a shadow bank, is matched but ignored: key on
    ``action``)."""

    action: Action
    rule: str
    bank: str | None = None
    shadow: bool = False
    shadow_decisions: list[ShadowDecisionOut] = Field(default_factory=list)
    matched: bool

    @classmethod
    def of(cls, decision: PolicyDecision, *, matched: bool) -> Decision:
        return cls(
            action=decision.action,
            rule=decision.rule,
            bank=decision.bank,
            shadow=decision.shadow,
            shadow_decisions=[
                ShadowDecisionOut(action=d.action, rule=d.rule, bank=d.bank)
                for d in decision.shadow_decisions
            ],
            matched=matched,
        )


#: Text that is stored: PostgreSQL cannot keep a NUL character. Every text a request
#: carries has a pattern (this one, or a stricter one such as a name's), and a pattern
#: also refuses a lone surrogate (``"\ud800"``): pydantic matches patterns on UTF-8,
#: which cannot hold one. Both are 422 (tests/test_api_text.py checks every route), and
#: the OpenAPI document shows the pattern. Multipart fields: uploads.py (domain.text).
NO_NUL = r"^[^\x00]*$"


def Text(max_length: int) -> Any:
    return Field(default=None, max_length=max_length, pattern=NO_NUL)


StoredText = Annotated[str, Field(pattern=NO_NUL)]
#: Free metadata, any JSON a store can keep (JSON itself has no NaN; Python's parser does).
MetaValue = TypeAliasType(
    "MetaValue",
    "StoredText | int | Annotated[float, Field(allow_inf_nan=False)] | bool"
    " | list[MetaValue] | dict[StoredText, MetaValue] | None",
)
Metadata = dict[StoredText, MetaValue]


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")  # noqa: TRY004 - pydantic wants ValueError
    return value


#: JSON booleans are not integers here (pydantic would otherwise read true as 1).
Threshold = Annotated[int, Field(ge=0, le=MAX_PDQ_THRESHOLD), BeforeValidator(_not_a_boolean)]
Flag = Annotated[bool, Field(strict=True)]
#: A policy distance; ``null`` means "none" (see BankIn).
Distance = Threshold | None
#: What an exact-hash match leads to.
ExactAction = Literal["act", "review"]
_HEX = "^[0-9A-Fa-f]*$"


class ContentMeta(BaseModel):
    content_id: str | None = None
    uploader_id: str | None = None
    url: str | None = None
    uploader_ip: str | None = None


class ScanOut(BaseModel):
    request_id: str | None
    #: the encrypted copy kept when the policy acts on or reviews the upload
    evidence_id: str | None = None
    #: the review case of this content, opened or updated when the policy acts or reviews
    case_id: int | None = None
    outcome: Outcome
    reason: str | None
    decision: Decision
    content: ContentMeta
    signals: SignalsOut | None
    matches: list[MatchOut]
    remote: list[RemoteOut] = Field(default_factory=list)


class LookupItem(BaseModel):
    algorithm: Algorithm
    hash: str = Field(min_length=1, max_length=64, pattern=NO_NUL)


class LookupIn(BaseModel):
    hashes: list[LookupItem] = Field(min_length=1, max_length=100_000)


class LookupMatchOut(MatchOut):
    """A match of a looked-up hash. A PDQ match's ``distance`` is null unless the server
    trusts the token with distances (``HASHGUARD_LOOKUP_DISTANCE_TOKENS``): distances
    to small changes of a hash would spell out the listed hash bit by bit."""

    distance: int | None = Field(  # type: ignore[assignment]
        description="0 for exact hashes; for PDQ, null unless the token is trusted with it"
    )

    @classmethod
    def hiding(cls, match: Match, *, distances: bool) -> LookupMatchOut:
        shown = match.distance if distances or match.algorithm is not Algorithm.PDQ else None
        return cls.model_validate(MatchOut.of(match).model_dump() | {"distance": shown})


class LookupResult(BaseModel):
    algorithm: Algorithm
    hash: str
    valid: bool
    reason: str | None = None
    matches: list[LookupMatchOut]


class LookupOut(BaseModel):
    results: list[LookupResult]


class BankIn(BaseModel):
    """A new bank. Policy: exact matches take ``exact_action``; PDQ matches act at
    distance <= ``auto_max_distance`` (null: never automatically), go to review at
    distance <= ``review_max_distance`` (null: up to ``pdq_threshold``) and are ignored
    beyond; ``shadow`` records and counts the bank's decisions without acting on them."""

    name: str = Field(pattern=BANK_NAME_PATTERN)
    kind: BankKind = BankKind.KNOWN
    enabled: Flag = True
    pdq_threshold: Threshold = 31
    source: str | None = Text(1000)
    licence: str | None = Text(1000)
    auto_max_distance: Distance = DEFAULT_AUTO_MAX_DISTANCE
    review_max_distance: Distance = None
    exact_action: ExactAction = "act"
    shadow: Flag = False


class BankPatch(BaseModel):
    """Settings to change; a field left out is unchanged (for the two distances, an
    explicit null is a value: see BankIn)."""

    kind: BankKind | None = None
    enabled: Flag | None = None
    pdq_threshold: Threshold | None = None
    source: str | None = Text(1000)
    licence: str | None = Text(1000)
    auto_max_distance: Distance = None
    review_max_distance: Distance = None
    exact_action: ExactAction | None = None
    shadow: Flag | None = None


class BankOut(BaseModel):
    """Counts, provenance and settings: never the bank's hashes."""

    name: str
    kind: BankKind
    enabled: bool
    pdq_threshold: int
    source: str | None
    licence: str | None
    version: str | None
    created_at: datetime
    imported_at: datetime | None
    entries: dict[str, int]
    removed_entries: int
    imports: int
    auto_max_distance: int | None
    review_max_distance: int | None
    exact_action: Action
    shadow: bool

    @classmethod
    def of(cls, stats: BankStats) -> BankOut:
        bank: Bank = stats.bank
        return cls(
            name=bank.name,
            kind=bank.kind,
            enabled=bank.enabled,
            pdq_threshold=bank.pdq_threshold,
            source=bank.source,
            licence=bank.licence,
            version=bank.version,
            created_at=bank.created_at,
            imported_at=bank.imported_at,
            entries={str(a): n for a, n in sorted(stats.active.items())},
            removed_entries=stats.removed,
            imports=stats.imports,
            auto_max_distance=bank.policy.auto_max_distance,
            review_max_distance=bank.policy.review_max_distance,
            exact_action=bank.policy.exact_action,
            shadow=bank.policy.shadow,
        )


# A bank's entries are described exactly, per algorithm, so that a client (and the
# OpenAPI document) knows a valid hash before sending it.


class Md5In(BaseModel):
    algorithm: Literal["md5"]
    hash: str = Field(min_length=32, max_length=32, pattern=_HEX)


class Sha1In(BaseModel):
    algorithm: Literal["sha1"]
    hash: str = Field(min_length=40, max_length=40, pattern=_HEX)


class Sha256In(BaseModel):
    algorithm: Literal["sha256"]
    hash: str = Field(min_length=64, max_length=64, pattern=_HEX)


class PdqIn(BaseModel):
    algorithm: Literal["pdq"]
    hash: str = Field(
        min_length=64,
        max_length=64,
        pattern="^[0-9A-Fa-f]*[1-9A-Fa-f][0-9A-Fa-f]*$",
        description="not all zeros (the hash of a blank image would match noise)",
    )


SignalIn = Annotated[Md5In | Sha1In | Sha256In | PdqIn, Field(discriminator="algorithm")]


class EntryFields(BaseModel):
    entry_id: str | None = Text(200)
    category: str | None = Text(200)
    metadata: Metadata = Field(default_factory=dict)


class Md5EntryIn(Md5In, EntryFields):
    pass


class Sha1EntryIn(Sha1In, EntryFields):
    pass


class Sha256EntryIn(Sha256In, EntryFields):
    pass


class PdqEntryIn(PdqIn, EntryFields):
    pass


EntryIn = Annotated[
    Md5EntryIn | Sha1EntryIn | Sha256EntryIn | PdqEntryIn, Field(discriminator="algorithm")
]


class EntriesIn(BaseModel):
    entries: list[EntryIn] = Field(min_length=1, max_length=100_000)


class RemoveIn(BaseModel):
    entries: list[SignalIn] = Field(min_length=1, max_length=100_000)


class EntriesOut(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    restored: int = 0
    removed: int = 0


class RowErrorOut(BaseModel):
    file: str
    line: int
    reason: str


class ImportOut(BaseModel):
    bank: str
    version: str | None
    applied: bool
    rows: int
    added: int
    updated: int
    unchanged: int
    removed: int
    restored: int
    duplicates: int
    errors: list[RowErrorOut]

    @classmethod
    def of(cls, report: ImportReport) -> ImportOut:
        return cls(
            bank=report.bank,
            version=report.version,
            applied=report.applied,
            rows=report.rows,
            added=report.added,
            updated=report.updated,
            unchanged=report.unchanged,
            removed=report.removed,
            restored=report.restored,
            duplicates=report.duplicates,
            errors=[RowErrorOut(file=e.file, line=e.line, reason=e.reason) for e in report.errors],
        )


class RunIn(BaseModel):
    paths: list[Annotated[str, Field(min_length=1, max_length=4096, pattern=NO_NUL)]] = Field(
        min_length=1, max_length=100
    )
    dihedral: Flag = False
    rescan: Flag = False


class RunOut(BaseModel):
    id: int
    status: RunStatus
    active: bool
    roots: list[str]
    started_at: datetime
    finished_at: datetime | None
    total: int
    counts: dict[str, int]

    @classmethod
    def of(cls, run: ScanRun, *, active: bool) -> RunOut:
        return cls(
            id=run.id,
            status=run.status,
            active=active,
            roots=list(run.roots),
            started_at=run.started_at,
            finished_at=run.finished_at,
            total=run.total,
            counts={str(o): run.counts.get(o, 0) for o in Outcome},
        )


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)


# -- review cases ------------------------------------------------------------------------

#: What ``str.strip()`` removes: a reason made only of these is no reason.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Stored text with at least one character that is not whitespace.
REASON_PATTERN = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"
#: A case's version, as the client read it (a change against an older one is refused).
CaseVersion = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(_not_a_boolean)]


class CaseSourceOut(BaseModel):
    """Where the content was found: a scan run (``ref`` its id, ``path`` the file) or an
    upload (``ref`` the request id)."""

    kind: SourceKind
    ref: str
    path: str | None


class CaseRemoteOut(BaseModel):
    service: str
    status: RemoteStatus


class CaseSignalPdqOut(BaseModel):
    value: str
    quality: int
    frame: int
    mode: PdqMode


class CaseSignalsOut(BaseModel):
    """The content's own hashes, as the case holds them (never a bank's other entries)."""

    size: int
    md5: str
    sha1: str
    sha256: str
    pdq: list[CaseSignalPdqOut]
    #: reference-mode hashes of the same frames, when ``pdq`` was made in fast mode
    pdq_reference: list[CaseSignalPdqOut] = Field(default_factory=list)
    image_format: str | None
    width: int | None
    height: int | None


class CaseDecisionOut(BaseModel):
    """The strongest decision any sighting of the content got."""

    action: Action
    rule: str
    bank: str | None
    shadow: bool
    shadow_decisions: list[ShadowDecisionOut]


class CaseOut(BaseModel):
    """A review case (as ``hashguard cases show --json``): never the content's bytes.
    ``reportable``: only a confirmed case is. ``version`` goes with a decision or an
    assignment (a change made against an older version is refused with 409)."""

    id: int
    state: CaseState
    reportable: bool
    assignee: str | None
    confirmers: list[str]
    version: int
    content_key: str
    content_id: str | None
    uploader_id: str | None
    url: str | None
    sources: list[CaseSourceOut]
    banks: list[str]
    decision: CaseDecisionOut
    matches: list[MatchOut]
    remote: list[CaseRemoteOut]
    signals: CaseSignalsOut | None
    #: the evidence vault item holding the content (read it with ``hashguard evidence``)
    evidence_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, case: Case) -> CaseOut:
        return cls.model_validate(case_json(case))


class CaseEventOut(BaseModel):
    """One entry of a case's history (entries never change)."""

    at: datetime
    actor: str
    kind: CaseEventKind
    from_state: CaseState | None
    to_state: CaseState | None
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, event: CaseEvent) -> CaseEventOut:
        return cls.model_validate(event_json(event))


class CaseDetailOut(CaseOut):
    """A case and its history, oldest entry first."""

    history: list[CaseEventOut]

    @classmethod
    def with_history(cls, case: Case, history: Sequence[CaseEvent]) -> CaseDetailOut:
        return cls.model_validate(case_json(case) | {"history": [event_json(e) for e in history]})


class CasePage(BaseModel):
    """One page of cases; ``next`` is the ``after`` of the next page (null: the last)."""

    cases: list[CaseOut]
    next: int | None


class DecisionIn(BaseModel):
    """A reviewer's decision. ``confirm`` (the confirmation that makes a case confirmed,
    i.e. reportable, needs a lead), ``false_positive`` (the content's hashes go to the
    allow bank: ``allow_bank``, naming another than the server's needs a lead) or
    ``escalate``. ``version``: the case version reviewed (default: the current one)."""

    verdict: Verdict
    reason: str = Field(max_length=2000, pattern=REASON_PATTERN)
    version: CaseVersion | None = None
    allow_bank: str | None = Field(default=None, pattern=BANK_NAME_PATTERN)


class AssigneeIn(BaseModel):
    """Give the case to a person (by name), or ``null`` to unassign it."""

    assignee: str | None = Field(pattern=NAME_PATTERN)
    reason: str | None = Text(2000)
    version: CaseVersion | None = None
