"""Which scanned content becomes evidence, and the context kept with it.

Content is kept when the policy acts on it or sends it to review (not for a shadow
bank's would-be decision, and never for a file that did not match): the bytes a
report or a case needs later, and that a platform must preserve after a report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hashguard.domain.matches import match_to_json
from hashguard.domain.policy import Action
from hashguard.domain.remote import RemoteStatus, remote_to_json
from hashguard.domain.scans import FileResult, Outcome, printable_path
from hashguard.domain.signals import leaving, pdq_to_json
from hashguard.evidence.vault import Vault

log = logging.getLogger("hashguard.evidence")


def keeps_evidence(result: FileResult) -> bool:
    decision = result.decision
    return (
        result.outcome is Outcome.MATCHED
        and decision.action in (Action.ACT, Action.REVIEW)
        and not decision.shadow
    )


def evidence_context(result: FileResult, **given: str | None) -> dict[str, Any]:
    """Hashes, matches, the decision and the caller's ids (content, uploader, URL, IP:
    whatever is given), stamped now. Encrypted whole by the vault.

    ``hashes.pdq`` holds reference-mode PDQ hashes only, each as ``{"value", "quality",
    "frame", "mode": "reference"}`` (an export hands them out; a fast hash never
    leaves). Compute them first (``hashing.reference.with_reference``); without them
    the list is empty."""
    signals = result.signals
    assert signals is not None
    return {
        "source": result.path,
        "seen_at": datetime.now(UTC).isoformat(),
        "hashes": {
            "md5": signals.md5,
            "sha1": signals.sha1,
            "sha256": signals.sha256,
            "pdq": [pdq_to_json(pdq) for pdq in leaving(signals.reference_pdq)],
        },
        "matches": [match_to_json(m) for m in result.matches if m.effective]
        + [
            remote_to_json(r, keep_raw=True)
            for r in result.remote
            if r.status is RemoteStatus.MATCHED
        ],
        "decision": {"action": str(result.decision.action), "rule": result.decision.rule},
        **{name: value for name, value in given.items() if value},
    }


def file_keeper(
    vault_of: Callable[[], Vault], *, jurisdiction: str, actor: str
) -> Callable[[FileResult], str | None]:
    """What a scan of local storage calls for each result: a matched file the policy acts
    on or reviews is read and kept, and its evidence id returned (the vault is opened at
    the first one: it needs the master key). A file that vanished since hashing is
    logged; the scan goes on (its result still says matched)."""
    opened: list[Vault] = []

    def keep(result: FileResult) -> str | None:
        if not keeps_evidence(result):
            return None
        try:
            with open(result.path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            log.warning("evidence of %s not kept: %s", printable_path(result.path), exc.strerror)
            return None
        if not opened:
            opened.append(vault_of())
        context = evidence_context(result)
        return opened[0].put(data, context, jurisdiction=jurisdiction, actor=actor).id

    return keep
