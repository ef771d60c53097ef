"""Building a statement of reasons from a case's decision, and its texts: the uploader's
statement (Art. 17) and the notifier's answer (Art. 16(5)). Pure: no I/O, time given.

Nothing personal goes in: the facts are templates filled with the decision's kind, how
the content was found and the content type; never the uploader, a URL, a path or a
list's name.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hashguard.domain.cases import Case, CaseSource
from hashguard.domain.statements import (
    EU_EEA,
    TRUSTED_FLAGGER,
    AutomatedDecision,
    ContentType,
    SourceType,
    StatementConfig,
    StatementKind,
    StatementOfReasons,
    Visibility,
)

_FOUND = {
    SourceType.VOLUNTARY: "found by the host's own scanning of stored or uploaded files",
    SourceType.ARTICLE_16: "reported to the host in a notice (Article 16 DSA)",
    SourceType.TRUSTED_FLAGGER: "reported to the host by a trusted flagger (Article 22 DSA)",
    SourceType.OTHER_NOTIFICATION: "reported to the host in a notification",
}
_NOUN = {ContentType.IMAGE: "image", ContentType.VIDEO: "video", ContentType.OTHER: "file"}
_DONE = {Visibility.REMOVED: "removed", Visibility.DISABLED: "disabled access to"}
#: what ``content_type_other`` says when the file is neither a decoded image nor a video
OTHER_CONTENT = "file matched by its exact cryptographic hash"


def notice_sources(case: Case) -> tuple[CaseSource, ...]:
    return tuple(s for s in case.sources if str(s.kind) == "notice")


def source_type(case: Case, notifier: str | None, source: CaseSource | None = None) -> SourceType:
    """How the content was found: a notice (the given sighting's, else any of the
    case's) from a trusted flagger, any other notice, or the host's own initiative."""
    noticed = str(source.kind) == "notice" if source is not None else bool(notice_sources(case))
    if not noticed:
        return SourceType.VOLUNTARY
    return SourceType.TRUSTED_FLAGGER if notifier == TRUSTED_FLAGGER else SourceType.ARTICLE_16


def content_type(case: Case) -> ContentType:
    signals = case.signals
    if signals is None:
        return ContentType.OTHER
    if any(p.frame > 0 for p in signals.pdq):
        return ContentType.VIDEO
    if signals.image_format or signals.pdq:
        return ContentType.IMAGE
    return ContentType.OTHER


def puid(config: StatementConfig, case_id: int, kind: StatementKind, key: str = "") -> str:
    """Stable, unique to this installation (``config.prefix``), derived from the case
    and its decision; for an automated decision also from the sighting's action key,
    hashed (it may name a path or a request)."""
    base = f"{config.prefix}-c{case_id}-{kind}"
    if not key:
        return base
    return f"{base}-{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}"


def build(
    case: Case,
    config: StatementConfig,
    *,
    kind: StatementKind,
    at: datetime,
    notifier: str | None,
    source: CaseSource | None = None,
    key: str = "",
) -> StatementOfReasons:
    """The statement of ``case``'s restriction decided at ``at``: ``AUTOMATED`` for the
    pipeline's act (access disabled, detection and decision automated), ``CONFIRMED``
    for the people's confirmation (removed; detected automatically when a hash matched,
    decided by people)."""
    found = source_type(case, notifier, source)
    ctype = content_type(case)
    matched = bool(case.matches)
    automated = kind is StatementKind.AUTOMATED
    visibility = Visibility.DISABLED if automated else Visibility.REMOVED
    noun = _NOUN[ctype]
    how = (
        f"The {noun} matched a vetted list of hashes of previously verified child sexual "
        "abuse material"
        if matched
        else f"The {noun} was reviewed after it was reported"
    )
    decided = (
        "the match decided the restriction automatically, under the host's policy for "
        "exact and near-identical matches"
        if automated
        else "trained reviewers confirmed that it is child sexual abuse material"
    )
    facts = (
        f"The {noun} was {_FOUND[found]}. {how}; {decided}. The host "
        f"{_DONE[visibility]} the {noun}."
    )
    explanation = "Child sexual abuse material is illegal content. " + (
        "It was identified by matching against hashes of material verified as such."
        if matched
        else "It was identified by the host's reviewers."
    )
    return StatementOfReasons(
        puid=puid(config, case.id, kind, key),
        case_id=case.id,
        kind=kind,
        visibility=visibility,
        content_type=ctype,
        source_type=found,
        automated_detection=matched,
        automated_decision=AutomatedDecision.FULLY
        if automated
        else AutomatedDecision.NOT_AUTOMATED,
        legal_ground=config.legal_ground[:500],
        explanation=explanation[:2000],
        facts=facts[:5000],
        territorial_scope=config.territorial_scope,
        content_date=case.created_at.astimezone(UTC).date(),
        decided_at=at.astimezone(UTC),
        redress=config.redress,
        reference_url=config.reference_url,
    )


def _scope(codes: tuple[str, ...]) -> str:
    if set(codes) >= set(EU_EEA):
        return "the whole European Union and European Economic Area"
    return ", ".join(codes) if codes else "wherever the service is offered"


def uploader_text(sor: StatementOfReasons) -> str:
    """The statement as the platform shows it to the uploader (Art. 17(3))."""
    detected = (
        "The content was detected by automated means (hash matching)."
        if sor.automated_detection
        else "The content was not detected by automated means."
    )
    decided = (
        "The decision was taken by automated means."
        if sor.automated_decision is AutomatedDecision.FULLY
        else "The decision was taken by people."
    )
    restriction = (
        "the content was removed"
        if sor.visibility is Visibility.REMOVED
        else "access to the content was disabled"
    )
    lines = [
        "Statement of reasons (Article 17 of Regulation (EU) 2022/2065, Digital Services Act)",
        f"Reference: {sor.puid}",
        f"Decision: {restriction} on {sor.decided_at.date().isoformat()}, without end date.",
        f"Territorial scope: {_scope(sor.territorial_scope)}.",
        f"Facts and circumstances: {sor.facts}",
        f"Automated means: {detected} {decided}",
        f"Ground: illegal content. Legal ground: {sor.legal_ground}. {sor.explanation}",
    ]
    if sor.reference_url:
        lines.append(f"Reference to the legal ground: {sor.reference_url}")
    lines.append(f"Redress: {sor.redress}")
    return "\n".join(lines)


def notifier_text(case_id: int, sor: StatementOfReasons | None, *, at: datetime) -> str:
    """The notifier's answer (Art. 16(5)): the decision on their notice, whether
    automated means decided it, and redress."""
    if sor is None:
        outcome = (
            "After review, the host found that the reported content is not child sexual "
            "abuse material and took no action against it."
        )
        means = "The decision was taken by people."
    else:
        restriction = "removed" if sor.visibility is Visibility.REMOVED else "disabled access to"
        outcome = f"The host {restriction} the reported content as illegal content."
        means = (
            "The decision was taken by automated means (a match against a vetted hash list)."
            if sor.automated_decision is AutomatedDecision.FULLY
            else "The decision was taken by people."
        )
    return (
        f"Decision on your notice (case {case_id}, {at.astimezone(UTC).date().isoformat()}): "
        f"{outcome} {means} You may contest this decision through the host's internal "
        "complaint-handling system (Article 20 DSA), an out-of-court dispute settlement "
        "body (Article 21 DSA) or a court."
    )
