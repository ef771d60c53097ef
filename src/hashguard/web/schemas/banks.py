"""Shapes of /v1/banks: bank settings, entries, imports. Never a bank's hashes out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from hashguard.banks.formats import MAX_VPDQ_FRAMES
from hashguard.domain.banks import (
    BANK_NAME_PATTERN,
    MAX_PDQ_THRESHOLD,
    BankKind,
    BankStats,
    ImportReport,
    bank_stats_to_json,
)
from hashguard.domain.policy import DEFAULT_AUTO_MAX_DISTANCE, Action
from hashguard.web.schemas.fields import Flag, Metadata, Text, not_a_boolean

#: JSON booleans are not integers here (pydantic would otherwise read true as 1).
Threshold = Annotated[int, Field(ge=0, le=MAX_PDQ_THRESHOLD), BeforeValidator(not_a_boolean)]
#: A policy distance; ``null`` means "none" (see BankIn).
Distance = Threshold | None
#: What an exact-hash match leads to.
ExactAction = Literal["act", "review"]
_HEX = "^[0-9A-Fa-f]*$"
#: a vPDQ threshold, in percent
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), BeforeValidator(not_a_boolean)]


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
    vpdq_query_percent: Percent | None = None
    vpdq_compared_percent: Percent | None = None


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
    vpdq_query_percent: float = Field(
        description="vPDQ: share of a video's usable frames that must match a listed video"
    )
    vpdq_compared_percent: float = Field(
        description="vPDQ: share of the listed video's frames that must be matched"
    )

    @classmethod
    def of(cls, stats: BankStats) -> BankOut:
        return cls.model_validate(bank_stats_to_json(stats))


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


class VpdqIn(BaseModel):
    algorithm: Literal["vpdq"]
    hash: str = Field(
        min_length=64,
        max_length=64,
        pattern=_HEX,
        description="a listed video's digest (the SHA-256 of its canonical vpdq signal)",
    )


SignalIn = Annotated[Md5In | Sha1In | Sha256In | PdqIn | VpdqIn, Field(discriminator="algorithm")]


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


#: one frame of a vPDQ entry, as python-threatexchange serialises it: its PDQ hash, its
#: quality (0-100) and its time in seconds
VpdqFeature = Annotated[
    str,
    Field(
        pattern=r"^[0-9A-Fa-f]{64},(100|[1-9]?[0-9]),[0-9]{1,9}(\.[0-9]{1,9})?(e[+-]?[0-9]{1,2})?$",
        max_length=200,
    ),
]


class VpdqEntryIn(EntryFields):
    """One video: its vPDQ features as python-threatexchange serialises them."""

    algorithm: Literal["vpdq"]
    hash: list[VpdqFeature] = Field(
        min_length=1,
        max_length=MAX_VPDQ_FRAMES,
        description="one 'pdq_hex,quality,timestamp' string per sampled frame",
    )


EntryIn = Annotated[
    Md5EntryIn | Sha1EntryIn | Sha256EntryIn | PdqEntryIn | VpdqEntryIn,
    Field(discriminator="algorithm"),
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
