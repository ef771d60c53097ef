"""The context kept with evidence, and a scanned file's bytes read for it.

Content is kept when the policy acts on it or sends it to review
(``Decision.keeps_evidence``: not for a shadow bank's would-be decision, and never for
a file that did not match): the bytes a report or a case needs later, and that a
platform must preserve after a report.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from datetime import UTC, datetime
from typing import Any

from hashguard.domain.matches import match_to_json
from hashguard.domain.remote import RemoteStatus, remote_to_json
from hashguard.domain.scans import FileResult
from hashguard.domain.signals import leaving, pdq_to_json
from hashguard.domain.video import video_to_json, vpdq_to_json
from hashguard.safefs import open_resolved

log = logging.getLogger("hashguard.evidence")


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
            # a video's vPDQ frames (vpdq's own hashes: reference hashes by construction)
            **({"vpdq": [vpdq_to_json(f) for f in signals.vpdq]} if signals.vpdq else {}),
        },
        **({"video": video_to_json(signals.video)} if signals.video is not None else {}),
        "matches": [match_to_json(m) for m in result.matches if m.effective]
        + [
            remote_to_json(r, keep_raw=True)
            for r in result.remote
            if r.status is RemoteStatus.MATCHED
        ],
        "decision": {"action": str(result.decision.action), "rule": result.decision.rule},
        **{name: value for name, value in given.items() if value},
    }


class NotTheMatchedFile(Exception):
    """The file at the path is not (or no longer) the one that matched."""


def read_matched(path: str, sha256: str) -> bytes:
    """The bytes of the file at ``path`` if they are the ones that matched (``sha256``).

    The path's symlinks are resolved once and the real path opened with ``O_NOFOLLOW``
    at every component (a symlink swapped in since is not followed); the bytes are read
    from that descriptor and kept only if their SHA-256 is the matched one. Raises
    ``NotTheMatchedFile`` (the message says why) otherwise."""
    try:
        fd = open_resolved(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise NotTheMatchedFile(f"cannot open it: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise NotTheMatchedFile("it is no longer a regular file")
        try:
            data = stream.read()
        except OSError as exc:
            raise NotTheMatchedFile(f"cannot read it: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise NotTheMatchedFile("its bytes changed since they were hashed")
    return data
