"""What a remote matcher (PhotoDNA Cloud, Arachnid Shield) answered about one file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class RemoteStatus(StrEnum):
    """A timeout or a refusal is ``not_answered``, never ``no_match``."""

    MATCHED = "matched"
    NO_MATCH = "no_match"
    NOT_ANSWERED = "not_answered"


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteResult:
    """One service's answer. ``raw`` is the service's response body, kept with a match
    as evidence; ``classification`` is the service's own label (``test`` in test mode),
    ``tracking_id`` its id for the call, ``match_type`` exact or near."""

    service: str
    status: RemoteStatus
    #: "media" or "hash": whether user content left the platform ("unknown" when the
    #: call was still in flight at the end of the time budget, or the adapter failed)
    method: str
    classification: str | None = None
    match_type: str | None = None
    distance: int | None = None
    source: str | None = None
    tracking_id: str | None = None
    #: the version of the service's lists the answer came from, when it says
    list_version: str | None = None
    reason: str | None = None
    raw: str | None = None
    seconds: float = 0.0
    #: a classifier's prediction given with a ``no_match`` (Safer, Content Safety): a
    #: signal for review priority only, never a match (``hashguard.classify``)
    classifier_score: float | None = None
    #: the classifier's own level for it, when it answers with levels (Content Safety's
    #: review priority, e.g. ``VERY_HIGH``); ``classifier_score`` then ranks the level
    classifier_level: str | None = None
    #: the answer of a classifier adapter (kind ``classifier``): never a match, and its
    #: silence (``not_answered``) leaves the file's outcome to the matchers: a classifier
    #: does not check a file against any list
    signal_only: bool = False


def remote_to_json(result: RemoteResult, *, keep_raw: bool | None = None) -> dict[str, Any]:
    """The one JSON shape of a remote answer, stored and shown. ``raw`` is kept only where
    it is evidence: by default only a match's (``keep_raw`` decides otherwise)."""
    shown = asdict(result)
    shown["status"] = str(result.status)
    if not (result.status is RemoteStatus.MATCHED if keep_raw is None else keep_raw):
        shown["raw"] = None
    return shown


def remote_from_json(data: Mapping[str, Any]) -> RemoteResult:
    """Read ``remote_to_json``'s shape (and answers stored before classifier levels)."""
    return RemoteResult(**{**data, "status": RemoteStatus(data["status"])})
