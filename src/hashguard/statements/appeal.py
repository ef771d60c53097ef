"""The statement of reasons of an appeal's outcome (DSA Art. 17, 20(4)): built from the
contested statement and the outcome. Pure: no I/O, time given; nothing personal (never
the uploader's explanation, which may name them, nor the platform's reference).

An upheld decision restates the restriction as a decision taken by a person on the
appeal's date: a statement the Transparency Database takes like any other. A reversed
decision lifts it: its text tells the uploader, and it is never filed (every statement
in the Database's schema describes a restriction; ``StatementKind.filed``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hashguard.domain.appeals import Outcome
from hashguard.domain.statements import (
    AutomatedDecision,
    StatementConfig,
    StatementKind,
    StatementOfReasons,
    Visibility,
)
from hashguard.statements.reasons import puid, uploader_text

_KIND = {
    Outcome.UPHOLD: StatementKind.APPEAL_UPHELD,
    Outcome.REVERSE: StatementKind.APPEAL_REVERSED,
}


def appeal_reasons(
    contested: StatementOfReasons,
    config: StatementConfig,
    *,
    outcome: Outcome,
    appeal_id: int,
    at: datetime,
) -> StatementOfReasons:
    """The statement of the decision on appeal ``appeal_id`` against ``contested``."""
    kind = _KIND[outcome]
    day = contested.decided_at.astimezone(UTC).date().isoformat()
    complaint = (
        f"The uploader contested the decision of {day} (reference {contested.puid}) "
        "through the host's internal complaint-handling system (Article 20 DSA). A person "
        "who did not take that decision reviewed the content and the complaint"
    )
    if outcome is Outcome.UPHOLD:
        facts = f"{complaint} and upheld the decision. {contested.facts}"
    else:
        facts = (
            f"{complaint} and reversed the decision: the content was found not to be illegal "
            "content on the ground given, and the restriction is lifted."
        )
    return replace(
        contested,
        puid=puid(config, contested.case_id, kind, f"appeal:{appeal_id}"),
        kind=kind,
        # a person decided the appeal; how the content was first detected stays as it was
        automated_decision=AutomatedDecision.NOT_AUTOMATED,
        facts=facts[:5000],
        decided_at=at.astimezone(UTC),
        legal_ground=config.legal_ground[:500],
        territorial_scope=config.territorial_scope,
        redress=config.redress,
        reference_url=config.reference_url,
    )


def appeal_text(sor: StatementOfReasons) -> str:
    """The decision on the appeal as the platform shows it to the uploader."""
    if sor.kind is StatementKind.APPEAL_UPHELD:
        return "Decision on your appeal: upheld.\n" + uploader_text(sor)
    lifted = "removed" if sor.visibility is Visibility.REMOVED else "to which access was disabled"
    return "\n".join(
        [
            "Decision on your appeal (Article 20 of Regulation (EU) 2022/2065, Digital "
            "Services Act): reversed.",
            f"Reference: {sor.puid}",
            f"Decision: the content {lifted} is restored on "
            f"{sor.decided_at.date().isoformat()}; the restriction is lifted.",
            f"Facts and circumstances: {sor.facts}",
            "Automated means: the decision on the appeal was taken by people.",
        ]
    )
