"""A case's statements of reasons (DSA Art. 17) on its page: each as the uploader reads
it, with where it stands with the Transparency Database (``_case_statements.html``)."""

from __future__ import annotations

from dataclasses import dataclass

from hashguard.domain.statements import Statement
from hashguard.statements.service import STATEMENTS, sink_configured
from hashguard.store import Store


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseStatements:
    statements: tuple[Statement, ...]
    #: the host issues statements (``hashguard statements settings --issue``)
    issuing: bool
    #: the Transparency Database sink is on with its token (online platforms file)
    filing: bool


def case_statements(store: Store, case_id: int) -> CaseStatements:
    """The case's statements, oldest first (called in the thread pool)."""
    stored, _ = store.statements.settings(STATEMENTS)
    return CaseStatements(
        statements=tuple(store.statements.for_case(case_id)),
        issuing=bool(stored.get("issue")),
        filing=sink_configured(store),
    )
