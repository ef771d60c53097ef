"""The review queue's priority: which case a reviewer should see first, and why.

Cases sort by, in this order (each a tie-breaker for the one before):

1. an exact match (MD5/SHA-*, or a remote service's exact match) before any other, and
   among exact matches the most severe category first. Categories sort as list labels
   do, most severe first: ``A`` before ``B`` before ``C`` (IWF), ``A1`` before ``B2``
   (NCMEC); a match without a category comes after those with one;
2. the smallest PDQ distance of a list match (a near match at 0 before one at 30); a
   remote service's near match ranks by the distance it gave;
3. the highest classifier score (``classify.signals``: a classifier-only case comes
   after every list match, but ordered by its score);
4. age: the oldest case first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hashguard.classify.signals import signals_of
from hashguard.domain.cases import Case
from hashguard.domain.remote import RemoteStatus

#: sorts after every real category and PDQ distance (PDQ distances are 0..256)
_NONE = "~"
_FAR = 1000


@dataclass(frozen=True, kw_only=True, slots=True, order=True)
class Priority:
    """A case's place (smaller first) and the reason shown beside it."""

    exact: int
    category: str
    distance: int
    score: float
    created_at: datetime
    case_id: int
    reason: str = field(default="", compare=False)


def priority_of(case: Case) -> Priority:
    effective = [m for m in case.matches if m.effective]
    exact = [m for m in effective if m.algorithm.is_exact]
    remote_exact = [
        r for r in case.remote if r.status is RemoteStatus.MATCHED and r.match_type == "exact"
    ]
    pdq = [m.distance for m in effective if not m.algorithm.is_exact]
    # a remote near match's distance is on its service's own scale: ranked among the PDQ
    # distances, but its reason names the service
    remote_near = [
        (r.distance, r.service)
        for r in case.remote
        if r.status is RemoteStatus.MATCHED and r.match_type != "exact" and r.distance is not None
    ]
    near = pdq + [d for d, _ in remote_near]
    signals = signals_of(case.remote)
    scores = [s.score for s in signals]
    category = min((m.category or _NONE for m in exact), default=_NONE)
    distance = min(near, default=_FAR)
    score = max(scores, default=0.0)
    if exact or remote_exact:
        label = f", category {category}" if category != _NONE else ""
        where = exact[0].bank if exact else remote_exact[0].service
        reason = f"exact match ({where}{label})"
    elif distance in pdq:
        reason = f"PDQ distance {distance}"
    elif remote_near:
        reason = f"near match, distance {distance} ({min(remote_near)[1]})"
    elif scores:
        top = max(signals, key=lambda s: s.score)
        said = f"{top.source} said {top.level}" if top.level else f"score {score:.2f}"
        reason = f"classifier {said}, no list match"
    else:
        reason = "age"
    return Priority(
        exact=0 if exact or remote_exact else 1,
        category=category,
        distance=distance,
        score=-score,
        created_at=case.created_at,
        case_id=case.id,
        reason=reason,
    )


def by_priority(cases: list[Case]) -> list[tuple[Case, Priority]]:
    """``cases`` in priority order, each with its priority (and reason)."""
    ranked = [(case, priority_of(case)) for case in cases]
    ranked.sort(key=lambda pair: pair[1])
    return ranked
