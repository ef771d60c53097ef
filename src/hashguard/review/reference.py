"""Reference PDQ hashes of a case's content, from its evidence, when a person decides it.

A case opened from a fast-mode scan may hold only fast PDQ hashes. Marking it a false
positive adds its hashes to an allow bank, and a list entry must be a reference hash;
the CLI and the UI have no hashing pool, so the hashes are computed from the evidence
vault's copy, under the scan's decode limits (``hashing.reference.with_reference``).
"""

from __future__ import annotations

from collections.abc import Callable

from hashguard.domain.cases import Case
from hashguard.domain.signals import PdqHash
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions
from hashguard.hashing.reference import with_reference

REASON = "reference PDQ hashes for an allow bank"


def from_evidence(
    vault_of: Callable[[], Vault], limits: HashOptions, *, actor: str
) -> Callable[[Case], tuple[PdqHash, ...]]:
    """What ``review.cases.mark_false_positive`` takes as ``reference``: the case's
    evidence decrypted (recorded as ``evidence.revealed`` by ``actor``, with the reason)
    and hashed in reference mode in this process. The vault is opened only when called,
    which is only when the case lacks reference hashes; a case without evidence gets
    none (its allow-bank entries are then its exact hashes)."""

    def compute(case: Case) -> tuple[PdqHash, ...]:
        if case.signals is None or case.evidence_id is None:
            return ()
        data, _context = vault_of().get(case.evidence_id, actor=actor, reason=REASON)
        return with_reference(case.signals, limits=limits, data=data).reference_pdq

    return compute
