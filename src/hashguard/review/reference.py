"""Reference PDQ hashes of a case's content, from its evidence, when a person decides it.

A case opened from a fast-mode scan may hold only fast PDQ hashes. Marking it a false
positive adds its hashes to an allow bank, and a list entry must be a reference hash;
the CLI and the UI have no hashing pool, so the hashes are computed from the evidence
vault's copy, under the scan's decode limits (``hashing.reference.with_reference``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hashguard.domain.cases import Case
from hashguard.domain.signals import PdqHash
from hashguard.evidence import open_vault
from hashguard.evidence.vault import EvidenceError, Vault
from hashguard.hashing.kernel import HashOptions
from hashguard.hashing.reference import with_reference
from hashguard.keys import MasterKeyError, master_key_for
from hashguard.settings import Settings
from hashguard.store import Store

log = logging.getLogger(__name__)

REASON = "reference PDQ hashes for an allow bank"


def from_evidence(
    vault_of: Callable[[], Vault], limits: HashOptions, *, actor: str
) -> Callable[[Case], tuple[PdqHash, ...]]:
    """What ``review.cases.mark_false_positive`` takes as ``reference``: the case's
    evidence decrypted (recorded as ``evidence.revealed`` by ``actor``, with the reason)
    and hashed in reference mode in this process (these bytes were decoded in an
    isolated worker when they were scanned). The vault is opened only when called,
    which is only when the case lacks reference hashes. A case without evidence, or
    whose evidence cannot be read (destroyed, no master key), gets none: its allow-bank
    entries are then its exact hashes, and the case's history says so."""

    def compute(case: Case) -> tuple[PdqHash, ...]:
        if case.signals is None or case.evidence_id is None:
            return ()
        try:
            data, _context = vault_of().get(case.evidence_id, actor=actor, reason=REASON)
        except (EvidenceError, MasterKeyError) as exc:
            log.warning("case %s: no reference PDQ hashes from its evidence: %s", case.id, exc)
            return ()
        return with_reference(case.signals, limits=limits, data=data).reference_pdq

    return compute


def from_settings(
    settings: Settings, store: Store, *, actor: str
) -> Callable[[Case], tuple[PdqHash, ...]]:
    """``from_evidence`` with this installation's vault and decode limits: one line for
    the CLI, the UI and the API (``review.decide.apply_verdict(..., reference=...)``)."""
    limits = HashOptions(max_pixels=settings.max_pixels, max_frames=settings.max_frames)
    return from_evidence(
        lambda: open_vault(settings, store, master_key_for(settings)[0]), limits, actor=actor
    )
