"""The context kept with evidence, and a scanned file's bytes read for it.

Content is kept when the policy acts on it or sends it to review
(``Decision.keeps_evidence``: not for a shadow bank's would-be decision, and never for
a file that did not match): the bytes a report or a case needs later, and that a
platform must preserve after a report.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from hashguard.domain.matches import match_to_json
from hashguard.domain.remote import RemoteStatus, remote_to_json
from hashguard.domain.scans import FileResult, printable_path

log = logging.getLogger("hashguard.evidence")


def evidence_context(result: FileResult, **given: str | None) -> dict[str, Any]:
    """Hashes, matches, the decision and the caller's ids (content, uploader, URL, IP:
    whatever is given), stamped now. Encrypted whole by the vault."""
    signals = result.signals
    assert signals is not None
    return {
        "source": result.path,
        "seen_at": datetime.now(UTC).isoformat(),
        "hashes": {
            "md5": signals.md5,
            "sha1": signals.sha1,
            "sha256": signals.sha256,
            "pdq": [pdq.value for pdq in signals.pdq],
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


def read_file(path: str) -> bytes | None:
    """A scanned file's bytes, to keep as evidence; ``None`` (logged) when it vanished
    or became unreadable since it was hashed: the scan goes on and its result still says
    matched."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        log.warning("evidence of %s not kept: %s", printable_path(path), exc.strerror)
        return None
