"""The review queue's priority under a seeded mix of cases: an exact match of the most
severe category first, then PDQ distance, then classifier score, then age; each with
its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hashguard.domain.banks import BankKind
from hashguard.domain.cases import Case, CaseState, ContentRef
from hashguard.domain.matches import Match
from hashguard.domain.policy import Action, Decision
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import Algorithm
from hashguard.review.priority import by_priority, priority_of

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def case(
    case_id: int,
    *,
    matches: tuple[Match, ...] = (),
    remote: tuple[RemoteResult, ...] = (),
    age_hours: int = 0,
) -> Case:
    at = T0 - timedelta(hours=age_hours)
    return Case(
        id=case_id,
        content_key=f"{case_id:064x}",
        content=ContentRef(),
        sources=(),
        signals=None,
        matches=matches,
        remote=remote,
        decision=Decision(action=Action.REVIEW, rule="review"),
        state=CaseState.OPEN,
        assignee=None,
        confirmers=(),
        created_at=at,
        updated_at=at,
        version=1,
    )


def match(algorithm: Algorithm, *, distance: int = 0, category: str | None = None) -> Match:
    return Match(
        bank="known",
        bank_kind=BankKind.KNOWN,
        algorithm=algorithm,
        distance=distance,
        entry_id=None,
        category=category,
    )


def scored(score: float) -> RemoteResult:
    return RemoteResult(
        service="safer", status=RemoteStatus.NO_MATCH, method="media", classifier_score=score
    )


def test_a_seeded_mix_sorts_in_the_documented_order() -> None:
    mixed = [
        case(1, age_hours=50),  # nothing but age
        case(2, remote=(scored(0.6),)),
        case(3, remote=(scored(0.95),)),
        case(4, matches=(match(Algorithm.PDQ, distance=30),)),
        case(5, matches=(match(Algorithm.PDQ, distance=4),)),
        case(6, matches=(match(Algorithm.MD5, category="B"),)),
        case(7, matches=(match(Algorithm.SHA1, category="A"),)),
        case(8, matches=(match(Algorithm.MD5),), age_hours=2),
        case(9, matches=(match(Algorithm.MD5),), age_hours=5),
        case(10, age_hours=100),
    ]
    ranked = by_priority(mixed)
    assert [c.id for c, _ in ranked] == [7, 6, 9, 8, 5, 4, 3, 2, 10, 1]
    reasons = {c.id: p.reason for c, p in ranked}
    assert reasons[7] == "exact match (known, category A)"
    assert reasons[5] == "PDQ distance 4"
    assert reasons[3] == "classifier score 0.95, no list match"
    assert reasons[1] == "age"


def test_a_remote_exact_match_counts_as_exact_and_a_near_one_by_distance() -> None:
    exact = RemoteResult(
        service="safer", status=RemoteStatus.MATCHED, method="media", match_type="exact"
    )
    near = RemoteResult(
        service="safer", status=RemoteStatus.MATCHED, method="media", match_type="near", distance=9
    )
    assert priority_of(case(1, remote=(exact,))).exact == 0
    assert priority_of(case(2, remote=(near,))).reason == "near match, distance 9 (safer)"
