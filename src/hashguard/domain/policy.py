"""Policy: per-bank distance bands and shadow mode, and the decision made about one file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: PDQ distances up to this act automatically unless a bank says otherwise. Meta's own
#: guidance treats distances of this order as the same image re-encoded or resized.
DEFAULT_AUTO_MAX_DISTANCE = 10
#: A PDQ hash has 256 bits: no distance is larger.
MAX_DISTANCE = 256


class Action(StrEnum):
    """What happens to a file. Persisted names; ordered by strength: act > review > ignore."""

    ACT = "act"
    REVIEW = "review"
    IGNORE = "ignore"

    @property
    def strength(self) -> int:
        return _STRENGTH[self]


_STRENGTH = {Action.IGNORE: 0, Action.REVIEW: 1, Action.ACT: 2}


class InvalidPolicy(ValueError):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class BankPolicy:
    """What a bank's matches lead to.

    Band A (``act``): exact-hash matches (unless ``exact_action`` is ``review``) and PDQ
    matches at distance <= ``auto_max_distance`` (``None``: PDQ never acts on its own).
    Band B (``review``): PDQ matches at distance <= ``review_max_distance`` (``None``:
    the bank's match threshold, i.e. every PDQ match not in band A). Beyond: ``ignore``.
    Band A is applied first: with ``review_max_distance`` below ``auto_max_distance``
    band B is empty (nothing goes to review). A PDQ match is only found within the
    bank's ``pdq_threshold``, so a review limit above it has no effect. ``shadow``: the
    bank's decisions are recorded and counted, never acted on.
    """

    auto_max_distance: int | None = DEFAULT_AUTO_MAX_DISTANCE
    review_max_distance: int | None = None
    exact_action: Action = Action.ACT
    shadow: bool = False

    def __post_init__(self) -> None:
        for name in ("auto_max_distance", "review_max_distance"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_DISTANCE:
                raise InvalidPolicy(f"{name} must be between 0 and {MAX_DISTANCE}")
        if self.exact_action is Action.IGNORE:
            raise InvalidPolicy("exact matches either act or go to review")

    def describe(self) -> str:
        """One line for people: ``exact: act; pdq: act <= 10, review <= threshold``."""
        auto = "never" if self.auto_max_distance is None else f"<= {self.auto_max_distance}"
        review = (
            "<= threshold" if self.review_max_distance is None else f"<= {self.review_max_distance}"
        )
        mode = "; shadow" if self.shadow else ""
        return f"exact: {self.exact_action}; pdq: act {auto}, review {review}{mode}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """The policy's decision about one file and the rule (naming bank and band) that made it.

    ``bank`` is the bank (or ``remote:<service>``) whose rule decided, if any. On a
    file's decision, ``shadow`` is true when only shadow banks would have done
    something (the action is then ``ignore``); ``shadow_decisions`` are what each
    shadow bank would have decided (each with ``shadow`` true), recorded and counted
    but never acted on.
    """

    action: Action
    rule: str
    bank: str | None = None
    shadow: bool = False
    shadow_decisions: tuple[Decision, ...] = ()

    @property
    def acts(self) -> bool:
        """Whether actions follow (webhooks, quarantine): a decision to act, not made
        in shadow mode."""
        return self.action is Action.ACT and not self.shadow

    @property
    def needs_person(self) -> bool:
        """Whether the content goes to a person: acted on or sent to review, not in
        shadow mode. Such content opens (or adds to) a case and is kept as evidence;
        an ignored match or a shadow bank's would-be decision does neither."""
        return self.action in (Action.ACT, Action.REVIEW) and not self.shadow

    @property
    def opens_case(self) -> bool:
        return self.needs_person

    @property
    def keeps_evidence(self) -> bool:
        return self.needs_person

    @property
    def shadow_action(self) -> Action:
        """The strongest action a shadow bank would have taken."""
        return max(
            (d.action for d in self.shadow_decisions),
            key=lambda a: a.strength,
            default=Action.IGNORE,
        )


#: The decision about a file nothing matched.
NO_MATCH = Decision(action=Action.IGNORE, rule="ignore: no match")


def decision_to_json(decision: Decision) -> dict[str, Any]:
    return {
        "action": str(decision.action),
        "rule": decision.rule,
        "bank": decision.bank,
        "shadow": decision.shadow,
        "shadow_decisions": [decision_to_json(d) for d in decision.shadow_decisions],
    }


def decision_from_json(data: Mapping[str, Any]) -> Decision:
    return Decision(
        action=Action(data["action"]),
        rule=data["rule"],
        bank=data.get("bank"),
        shadow=bool(data.get("shadow", False)),
        shadow_decisions=tuple(decision_from_json(d) for d in data.get("shadow_decisions", ())),
    )
