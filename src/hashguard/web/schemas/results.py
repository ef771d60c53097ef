"""Result shapes every API area shares: a file's signals, matches, remote answers, decisions."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hashguard.domain.banks import BankKind
from hashguard.domain.matches import Match, match_to_json
from hashguard.domain.policy import Action, Decision, decision_to_json
from hashguard.domain.remote import RemoteResult, RemoteStatus, remote_to_json
from hashguard.domain.signals import DIHEDRAL_NAMES, Algorithm, FileSignals, PdqMode, signals_shown


class PdqOut(BaseModel):
    """One PDQ hash of the file (``domain.signals.pdq_shown``): ``value`` and ``hash`` are
    the same hash (``hash`` is the key scan results have always used)."""

    value: str
    hash: str
    quality: int
    low_quality: bool
    frame: int
    mode: PdqMode = Field(
        description="how the pixels reached PDQ: only a reference hash is the one HMA and "
        "list holders compute"
    )


class VideoOut(BaseModel):
    """A video's container as the probe read it (``domain.video.VideoInfo``)."""

    container: str
    codec: str
    duration: float
    frames: int
    fps: float


class SignalsOut(BaseModel):
    """The file's own hashes (never a bank's), as ``domain.signals.signals_shown``:
    ``image_format`` and ``format`` are the same value (``format`` is the key scan results
    have always used)."""

    size: int
    md5: str
    sha1: str
    sha256: str
    image_format: str | None
    format: str | None
    width: int | None
    height: int | None
    pdq: list[PdqOut]
    pdq_reference: list[PdqOut] = Field(
        default_factory=list,
        description="reference-mode hashes of the same frames, when ``pdq`` was made in "
        "fast mode and they were computed",
    )
    vpdq_frames: int | None = Field(
        default=None, description="a video: how many sampled frames were vPDQ-hashed"
    )
    video: VideoOut | None = Field(default=None, description="a video: what its probe read")

    @classmethod
    def of(cls, signals: FileSignals) -> SignalsOut:
        return cls.model_validate(signals_shown(signals))


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
    timestamp: float | None = Field(
        default=None,
        description="a video's match: the time in seconds of the (first) frame that matched",
    )
    query_percent: float | None = Field(
        default=None,
        description="a vPDQ match: the share of the video's usable frames that matched the "
        "listed video, in percent",
    )
    compared_percent: float | None = Field(
        default=None,
        description="a vPDQ match: the share of the listed video's frames that were matched",
    )
    timestamps: list[float] = Field(
        default_factory=list,
        description="a vPDQ match: the times in seconds of the video's frames that matched",
    )

    @classmethod
    def of(cls, match: Match) -> MatchOut:
        return cls.model_validate(match_to_json(match))


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
    list_version: str | None = None
    reason: str | None
    raw: str | None
    seconds: float
    #: a classifier's score given with a ``no_match`` (Safer, Content Safety): a signal,
    #: never a match
    classifier_score: float | None = None
    #: the classifier's own level for it (Content Safety's review priority)
    classifier_level: str | None = None
    #: the answer of a classifier adapter: never a match, its silence no outcome
    signal_only: bool = False

    @classmethod
    def of(cls, result: RemoteResult) -> RemoteOut:
        return cls.model_validate(remote_to_json(result))


class ShadowDecisionOut(BaseModel):
    """What a bank in shadow mode would have decided: recorded, never acted on."""

    action: Action
    rule: str
    bank: str | None


class DecisionOut(BaseModel):
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
    def of(cls, decision: Decision, *, matched: bool) -> DecisionOut:
        return cls.model_validate(decision_to_json(decision) | {"matched": matched})
