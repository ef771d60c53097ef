"""The policy as a pure function: a file's matches and the banks' policies -> one Decision.

How one match is judged (``judge``): a match from an allow bank decides nothing (it
only suppresses, which the matcher has already marked); a suppressed known match is
ignored; an exact-hash match takes the bank's ``exact_action`` (act by default); a
PDQ match acts within ``auto_max_distance``, goes to review within
``review_max_distance`` (by default, every PDQ match the bank's threshold lets
through) and is ignored beyond.

How a file's decision is made (``decide``): the strongest action of a non-shadow bank
wins (act > review > ignore; on a tie, an exact match before a PDQ match, then the
smaller distance, then the bank name, so the same matches always give the same rule).
Shadow banks' would-be decisions are kept in ``shadow_decisions``, one per bank, and
never change the action. An allow bank in shadow mode suppresses nothing: the match it
would have suppressed is judged as usual and the allow bank's would-be "ignore" is
recorded among the shadow decisions. A remote service's match goes to review (``REMOTE_ACTION``):
its list and its threshold are the service's, not a bank we have vetted and banded.
A bank missing from ``policies`` gets the default ``BankPolicy()``.

The flood guard (``paused``: entry references, see ``policy.flood``): a match of a
paused entry that would act goes to review instead, and its rule says the flood guard
paused the entry; the file's other matches are judged as usual.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from hashguard.domain.banks import BankKind
from hashguard.domain.matches import Match
from hashguard.domain.policy import NO_MATCH, Action, BankPolicy, Decision
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.policy.flood import entry_label

#: What a remote service's match leads to (see the module docstring).
REMOTE_ACTION = Action.REVIEW
_DEFAULT = BankPolicy()


@dataclass(frozen=True, kw_only=True, slots=True)
class _Judged:
    decision: Decision
    exact: bool
    distance: int

    def key(self) -> tuple[int, int, int, str]:
        """Sort key: strongest first, then exact, then nearest, then by bank name."""
        return (
            -self.decision.action.strength,
            0 if self.exact else 1,
            self.distance,
            self.decision.bank or "",
        )


def judge(match: Match, policy: BankPolicy) -> Action:
    """The action one unsuppressed known match leads to under its bank's policy."""
    if match.algorithm.is_exact:
        return policy.exact_action
    if policy.auto_max_distance is not None and match.distance <= policy.auto_max_distance:
        return Action.ACT
    if policy.review_max_distance is None or match.distance <= policy.review_max_distance:
        return Action.REVIEW
    return Action.IGNORE


def _band(match: Match, policy: BankPolicy, action: Action) -> str:
    """The band that produced ``action``, in words."""
    if match.algorithm.is_exact:
        return f"exact {match.algorithm} match (exact matches: {policy.exact_action})"
    distance = f"{match.algorithm} distance {match.distance}"
    review = (
        "the bank's threshold"
        if policy.review_max_distance is None
        else str(policy.review_max_distance)
    )
    if action is Action.ACT:
        return f"{distance} <= {policy.auto_max_distance} (band A: act automatically)"
    if action is Action.REVIEW:
        auto = (
            "PDQ never acts automatically"
            if policy.auto_max_distance is None
            else f"above {policy.auto_max_distance}"
        )
        return f"{distance} <= {review}, {auto} (band B: human review)"
    return f"{distance} beyond the review band (<= {review})"


def _judged(match: Match, policy: BankPolicy, paused: Collection[int] = ()) -> _Judged:
    action = judge(match, policy)
    shadow = " (shadow bank: recorded, not acted on)" if policy.shadow else ""
    rule = f"{action}: bank {match.bank} {_band(match, policy, action)}{shadow}"
    if action is Action.ACT and not policy.shadow and match.entry_ref in paused:
        action = Action.REVIEW
        rule = (
            f"review: bank {match.bank} {entry_label(match)} is paused by the flood guard "
            f"(it matched too many distinct items; would act: {_band(match, policy, Action.ACT)})"
        )
    return _Judged(
        decision=Decision(
            action=action,
            rule=rule,
            bank=match.bank,
            shadow=policy.shadow,
        ),
        exact=match.algorithm.is_exact,
        distance=match.distance,
    )


def _would_suppress(match: Match) -> _Judged:
    return _Judged(
        decision=Decision(
            action=Action.IGNORE,
            rule=(
                f"ignore: bank {match.bank}'s match would be suppressed by allow bank "
                f"{match.suppressed_by} (shadow bank: recorded, not acted on)"
            ),
            bank=match.suppressed_by,
            shadow=True,
        ),
        exact=match.algorithm.is_exact,
        distance=match.distance,
    )


def _remote(result: RemoteResult) -> _Judged:
    return _Judged(
        decision=Decision(
            action=REMOTE_ACTION,
            rule=(
                f"{REMOTE_ACTION}: remote service {result.service} matched "
                "(remote matches go to human review)"
            ),
            bank=f"remote:{result.service}",
        ),
        exact=False,
        distance=result.distance if result.distance is not None else 0,
    )


def _strongest(judged: Iterable[_Judged]) -> _Judged | None:
    return min(judged, key=_Judged.key, default=None)


def decide(
    matches: Iterable[Match],
    remote: Iterable[RemoteResult],
    policies: Mapping[str, BankPolicy],
    paused: Collection[int] = frozenset(),
) -> Decision:
    """The decision about one file; see the module docstring. ``paused``: the entries
    (``Match.entry_ref``) the flood guard paused. Pure: no I/O."""
    live: list[_Judged] = []
    shadow: dict[str, list[_Judged]] = {}
    suppressed: dict[str, set[str]] = {}
    for match in matches:
        if match.bank_kind is not BankKind.KNOWN:
            continue
        policy = policies.get(match.bank, _DEFAULT)
        if match.suppressed_by is not None:
            if not policies.get(match.suppressed_by, _DEFAULT).shadow:
                suppressed.setdefault(match.suppressed_by, set()).add(match.bank)
                continue
            # an allow bank on trial: it records what it would suppress, and the
            # match is judged as if it were not there
            shadow.setdefault(match.suppressed_by, []).append(_would_suppress(match))
        judged = _judged(match, policy, paused)
        if policy.shadow:
            shadow.setdefault(match.bank, []).append(judged)
        else:
            live.append(judged)
    live.extend(_remote(r) for r in remote if r.status is RemoteStatus.MATCHED)
    shadow_decisions = tuple(
        best.decision
        for _, judged in sorted(shadow.items())
        if (best := _strongest(judged)) is not None
    )
    best = _strongest(live)
    if best is not None:
        decision = best.decision
    elif shadow_decisions:
        would = max(shadow_decisions, key=lambda d: d.action.strength)
        return Decision(
            action=Action.IGNORE,
            rule=f"ignore: only shadow banks matched; {would.rule}",
            bank=would.bank,
            shadow=True,
            shadow_decisions=shadow_decisions,
        )
    elif suppressed:
        decision = Decision(
            action=Action.IGNORE,
            rule="ignore: "
            + "; ".join(
                f"matches of {', '.join(sorted(banks))} suppressed by allow bank {allow}"
                for allow, banks in sorted(suppressed.items())
            ),
        )
    else:
        decision = NO_MATCH
    return Decision(
        action=decision.action,
        rule=decision.rule,
        bank=decision.bank,
        shadow=False,
        shadow_decisions=shadow_decisions,
    )
