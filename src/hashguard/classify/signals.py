"""Classifier signals: a score from a classifier, which may only order or open review.

A classifier (Thorn's, through Safer; Google's Content Safety API) predicts; it
does not match a vetted list. Its score is therefore **never** a match: it never makes
an outcome ``matched``, never acts (no webhook, no quarantine) and never reports. It may
(a) raise a case's place in the review queue and (b), only when the host sets a
threshold for that adapter, open a review case marked "classifier, no list match".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hashguard.domain.policy import Action, Decision
from hashguard.domain.remote import RemoteResult, RemoteStatus

#: the prefix of the ``bank`` of a decision a classifier made (``classifier:<source>``)
CLASSIFIER_BANK = "classifier:"
#: the ``band`` label such cases are counted under (stats' CASES_OPENED / CASES_DECIDED)
CLASSIFIER_BAND = "classifier"
NO_LIST_MATCH = "classifier, no list match"


@dataclass(frozen=True, kw_only=True, slots=True)
class ClassifierSignal:
    """One classifier's score for one file: ``source`` is the adapter's configured name."""

    source: str
    score: float
    #: the classifier's own level, when it answers with levels (Content Safety)
    level: str | None = None


def signals_of(remote: tuple[RemoteResult, ...]) -> tuple[ClassifierSignal, ...]:
    """The classifier signals that came with remote answers (only with a ``no_match``:
    Safer's classifier runs only when no hash matched; a classifier adapter's answer is
    never anything else)."""
    return tuple(
        ClassifierSignal(source=r.service, score=r.classifier_score, level=r.classifier_level)
        for r in remote
        if r.status is RemoteStatus.NO_MATCH and r.classifier_score is not None
    )


def review_decision(
    signals: tuple[ClassifierSignal, ...], thresholds: Mapping[str, float]
) -> Decision | None:
    """A decision to send the file to review when a signal reached the threshold the host
    set for its source (none set: never); the strongest such signal names the rule. The
    action is ``review``, never ``act``."""
    reached = [s for s in signals if s.source in thresholds and s.score >= thresholds[s.source]]
    if not reached:
        return None
    top = max(reached, key=lambda s: s.score)
    said = f"said {top.level}" if top.level else f"scored {top.score:.2f}"
    return Decision(
        action=Action.REVIEW,
        rule=(
            f"review: {NO_LIST_MATCH} ({top.source} {said}, threshold {thresholds[top.source]:.2f})"
        ),
        bank=CLASSIFIER_BANK + top.source,
    )


def is_classifier_decision(decision: Decision) -> bool:
    return (decision.bank or "").startswith(CLASSIFIER_BANK)
