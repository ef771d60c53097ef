"""A file no hasher decodes (``unsupported``) still has exact hashes a remote matcher
that takes hashes looks up: when that matcher did not answer, the file is
``not_answered`` (the scan is incomplete), never a quiet ``unsupported``."""

from __future__ import annotations

import pytest

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.scans import Outcome
from hashguard.hashing.exact import hash_bytes
from hashguard.hashing.kernel import HashOutput
from hashguard.scan.classify import classify

TEXT = HashOutput(
    signals=hash_bytes(b"benign minutes\n"), problem=Outcome.UNSUPPORTED, reason="not an image"
)


def _remote(status: RemoteStatus, method: str) -> RemoteResult:
    return RemoteResult(service="hotline", status=status, method=method, reason="refused")


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        ((), Outcome.UNSUPPORTED),
        ((_remote(RemoteStatus.NO_MATCH, "hash"),), Outcome.UNSUPPORTED),
        ((_remote(RemoteStatus.MATCHED, "hash"),), Outcome.MATCHED),
        ((_remote(RemoteStatus.NOT_ANSWERED, "hash"),), Outcome.NOT_ANSWERED),
        ((_remote(RemoteStatus.NOT_ANSWERED, "unknown"),), Outcome.NOT_ANSWERED),
        # a matcher that sends media refuses a text outright: the file stays unsupported
        ((_remote(RemoteStatus.NOT_ANSWERED, "media"),), Outcome.UNSUPPORTED),
    ],
)
def test_an_unsupported_files_exact_hashes_unanswered_is_not_answered(
    answers: tuple[RemoteResult, ...], outcome: Outcome
) -> None:
    result = classify("/srv/notes.txt", TEXT, (), answers)
    assert result.outcome is outcome
    if outcome is Outcome.NOT_ANSWERED:
        assert result.reason is not None
        assert result.reason.startswith("unsupported (not an image); hotline: ")
