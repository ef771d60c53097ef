"""A file's one outcome and the policy's decision about it (the pipeline's policy step)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from hashguard.classify.signals import review_decision, signals_of
from hashguard.domain.banks import Bank
from hashguard.domain.matches import Match
from hashguard.domain.policy import Action, BankPolicy, Decision
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.scans import FileResult, Outcome
from hashguard.domain.signals import PDQ_MIN_QUALITY
from hashguard.hashing.kernel import HashOutput
from hashguard.policy import decide


def policies_of(banks: Sequence[Bank]) -> dict[str, BankPolicy]:
    """The policy of each bank, by name, as ``policy.decide`` takes them."""
    return {bank.name: bank.policy for bank in banks}


def classify(
    path: str,
    output: HashOutput,
    matches: tuple[Match, ...],
    remote: tuple[RemoteResult, ...] = (),
    policies: Mapping[str, BankPolicy] | None = None,
    paused: Collection[int] = frozenset(),
    review_thresholds: Mapping[str, float] | None = None,
) -> FileResult:
    """The one outcome of a file: a match (local or remote) wins, then the hashing
    problem (but an ``unsupported`` file whose exact hashes a remote matcher did not
    answer is ``not_answered``), then a remote matcher that did not answer, then
    no_match. The policy's
    decision (``policies`` by bank name; default policies when not given; ``paused``:
    the list entries the flood guard paused) goes with it: the outcome says what
    matched, the decision what is to be done about it. A classifier's score never makes
    a match: a file that matched nothing goes to review only when a score reached the
    threshold the host set for its adapter (``review_thresholds``; ``classify.signals``)."""
    if output.signals is None:
        return FileResult(
            path=path,
            outcome=Outcome.ERROR,
            reason=output.reason,
            decision=Decision(
                action=Action.IGNORE, rule="ignore: the file could not be read, nothing matched"
            ),
        )
    # a classifier checks a file against no list: its silence is recorded, not an outcome
    silent = [r for r in remote if r.status is RemoteStatus.NOT_ANSWERED and not r.signal_only]
    if any(match.effective for match in matches) or any(
        r.status is RemoteStatus.MATCHED for r in remote
    ):
        outcome, reason = Outcome.MATCHED, output.reason
    elif output.problem is not None and not _unchecked_hashes(output, silent):
        outcome, reason = output.problem, output.reason
    elif silent:
        outcome = Outcome.NOT_ANSWERED
        reason = "; ".join(f"{r.service}: {r.reason}" for r in silent)
        if output.problem is not None:  # a file no hasher decodes: its exact hashes
            reason = f"{output.problem} ({output.reason}); {reason}"
    else:
        outcome, reason = Outcome.NO_MATCH, _no_match_note(output, matches)
    decision = decide(matches, remote, policies or {}, paused=paused)
    if outcome is Outcome.NO_MATCH and review_thresholds:
        decision = review_decision(signals_of(remote), review_thresholds) or decision
    return FileResult(
        path=path,
        outcome=outcome,
        reason=reason,
        signals=output.signals,
        matches=matches,
        remote=remote,
        decision=decision,
    )


#: how a remote matcher asked when it was sent hashes (``unknown``: still in flight)
_BY_HASH = frozenset({"hash", "unknown"})


def _unchecked_hashes(output: HashOutput, silent: Sequence[RemoteResult]) -> bool:
    """An ``unsupported`` file (no hasher decodes it: a text, an unknown format) still
    has exact hashes that a remote matcher taking hashes looks up (lists carry exact
    hashes of any file); when such a matcher did not answer, the file was not checked
    and is ``not_answered``, never left as ``unsupported`` (which reads as complete).
    A matcher that sends media (PhotoDNA) refuses such a file outright: not counted."""
    return output.problem is Outcome.UNSUPPORTED and any(r.method in _BY_HASH for r in silent)


def _no_match_note(output: HashOutput, matches: tuple[Match, ...]) -> str | None:
    suppressed = sorted({m.suppressed_by for m in matches if m.suppressed_by})
    if suppressed:
        return "matches suppressed by allow bank " + ", ".join(suppressed)
    assert output.signals is not None
    low = [pdq.quality for pdq in output.signals.pdq if pdq.low_quality]
    if low and len(low) == len(output.signals.pdq):
        return (
            f"PDQ quality {min(low)} is below {PDQ_MIN_QUALITY}: "
            "checked against exact-hash lists only"
        )
    return None
