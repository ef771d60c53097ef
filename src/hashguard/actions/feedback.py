"""Feedback to the lists: what a final review decision tells each exchange whose entry
matched, planned into the outbox, and the deliverer that sends it.

An outbox entry names the exchange, its bank, the entry (its id, or for a list that
names entries by hash alone, the case and the frame the match was made with), the
algorithm, the verdict, the reason and the case; never the list's own hash value. The
deliverer looks that value up in the bank when it sends (StopNCII wants its own hash
back), so it is never in the outbox, a log line, an error or the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hashguard.actions.delivery import Delivered, DeliveryResult, Permanent, Retry
from hashguard.actions.outbox import derived_key
from hashguard.audit import record
from hashguard.banks.exchanges.base import ExchangeError, FeedbackUnsupported
from hashguard.banks.exchanges.sync import send_feedback
from hashguard.domain.actions import ActionKind, NewAction, OutboxAction
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import Case
from hashguard.domain.exchanges import Exchange, Feedback, FeedbackVerdict
from hashguard.domain.matches import Match
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.keys import MasterKey, MasterKeyError
from hashguard.plugins import PluginError, Registry
from hashguard.store import Store
from hashguard.store.cases import UnknownCase
from hashguard.store.exchanges import UnknownExchange

log = logging.getLogger("hashguard.feedback")

#: the actor of the audit events the deliverer records
ACTOR = "system:dispatcher"

#: loads the master key when an exchange's sealed credentials need it (``None``: there
#: is none here)
KeyLoader = Callable[[], MasterKey | None]

#: entry metadata an adapter reads from ``Feedback.metadata`` (ThreatExchange's
#: descriptors, as synced); nothing else of an entry goes with its feedback
_METADATA_PASSED = ("descriptor_ids",)


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedbackRequest:
    """One outbox entry's payload. ``entry_id`` ``None``: the list names the entry by
    its hash alone; it is found from ``case``'s content (the exact hash, or the PDQ
    hash of ``frame`` within ``distance``)."""

    exchange: str
    bank: str
    algorithm: Algorithm
    verdict: FeedbackVerdict
    entry_id: str | None = None
    reason: str | None = None
    case: int | None = None
    frame: int = 0
    distance: int = 0
    manual: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "bank": self.bank,
            "algorithm": str(self.algorithm),
            "verdict": str(self.verdict),
            "entry_id": self.entry_id,
            "reason": self.reason,
            "case": self.case,
            "frame": self.frame,
            "distance": self.distance,
            "manual": self.manual,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeedbackRequest:
        return cls(
            exchange=str(data["exchange"]),
            bank=str(data["bank"]),
            algorithm=Algorithm(data["algorithm"]),
            verdict=FeedbackVerdict(data["verdict"]),
            entry_id=None if data.get("entry_id") is None else str(data["entry_id"]),
            reason=data.get("reason"),
            case=None if data.get("case") is None else int(data["case"]),
            frame=int(data.get("frame", 0)),
            distance=int(data.get("distance", 0)),
            manual=bool(data.get("manual", False)),
        )

    def audit_details(self) -> dict[str, Any]:
        """What the audit log says of it: everything but a hash (there is none in it)."""
        return {
            "bank": self.bank,
            "entry_id": self.entry_id,
            "algorithm": str(self.algorithm),
            "verdict": str(self.verdict),
            "reason": self.reason,
            "case": self.case,
            "manual": self.manual,
        }

    def describe(self) -> str:
        entry = (
            self.entry_id if self.entry_id is not None else f"case {self.case} frame {self.frame}"
        )
        return f"{self.exchange}: {self.verdict} on {self.algorithm} entry {entry}"


def feedback_action(request: FeedbackRequest) -> NewAction:
    """The outbox entry of ``request``. Its key is derived from the case (or, without
    one, the request itself), the exchange, the entry and the verdict: a decision
    queued twice, or the same feedback asked for by hand, adds nothing."""
    about = f"case:{request.case}" if request.case is not None else "manual"
    entry = request.entry_id if request.entry_id is not None else f"frame:{request.frame}"
    parts = [about, request.exchange, entry, str(request.algorithm), str(request.verdict)]
    if request.manual:
        parts += ["manual", request.reason or ""]
    return NewAction(
        kind=ActionKind.FEEDBACK,
        idempotency_key=derived_key("feedback", *parts),
        payload=request.as_json(),
        target=request.exchange,
        subject=f"case:{request.case}" if request.case is not None else None,
    )


def _fed_banks(exchanges: Iterable[Exchange]) -> dict[str, list[Exchange]]:
    fed: dict[str, list[Exchange]] = {}
    for exchange in exchanges:
        fed.setdefault(exchange.bank, []).append(exchange)
    return fed


def plan_feedback(
    case: Case,
    exchanges: Sequence[Exchange],
    verdict: FeedbackVerdict,
    *,
    reason: str | None,
    only: str | None = None,
    manual: bool = False,
) -> list[FeedbackRequest]:
    """One request per (exchange, entry, algorithm) among ``case``'s effective matches
    whose bank an exchange with feedback on syncs into (``only``: that exchange alone,
    on or off: asked for by hand). A bank that several exchanges share gets none: which
    of them an entry came from is not recorded. Pure."""
    fed = _fed_banks(exchanges)
    planned: dict[tuple[str, str, Algorithm], FeedbackRequest] = {}
    for match in case.matches:
        feeding = fed.get(match.bank, [])
        if not match.effective or len(feeding) != 1:
            continue
        exchange = feeding[0]
        if (only is not None and exchange.name != only) or (only is None and not exchange.feedback):
            continue
        request = _request(case, match, exchange, verdict, reason=reason, manual=manual)
        entry = match.entry_id if match.entry_id is not None else f"\x00frame:{match.frame}"
        key = (exchange.name, entry, match.algorithm)
        known = planned.get(key)
        if known is None or request.distance < known.distance:
            planned[key] = request
    return list(planned.values())


def _request(
    case: Case,
    match: Match,
    exchange: Exchange,
    verdict: FeedbackVerdict,
    *,
    reason: str | None,
    manual: bool,
) -> FeedbackRequest:
    given = (reason or "").strip() or None
    # an affirmative needs no reason (the reviewer's stays with us); a false positive
    # goes with the exchange's own reason name when one is set (NCMEC takes only its
    # names), unless a person sending it by hand gave one
    said = (
        (given or exchange.feedback_reason if manual else exchange.feedback_reason or given)
        if verdict is FeedbackVerdict.FALSE_POSITIVE
        else None
    )
    return FeedbackRequest(
        exchange=exchange.name,
        bank=exchange.bank,
        algorithm=match.algorithm,
        verdict=verdict,
        entry_id=match.entry_id,
        reason=said,
        case=case.id,
        frame=match.frame,
        distance=match.distance,
        manual=manual,
    )


# -- delivery ---------------------------------------------------------------------------


class EntryGone(LookupError):
    """The list no longer holds the entry (or the case it was found through is gone)."""


def _pdq_candidates(signals: FileSignals, frame: int) -> list[int]:
    """Every PDQ hash of ``frame`` the match may have been made with: each mode, each
    rotation or mirror."""
    found: list[int] = []
    for pdq in (*signals.pdq, *signals.pdq_reference):
        if pdq.frame == frame:
            found += [int(value, 16) for value in (pdq.value, *pdq.dihedral)]
    return found


class FeedbackDeliverer:
    """Sends one feedback entry: looks the entry's value up in its bank, builds the
    exchange's adapter with its credentials and tells it. A refused or unreachable
    exchange (``ExchangeError``), a missing master key or a disabled adapter is
    retried; an unknown exchange, an entry the list dropped or feedback the exchange
    cannot take (``FeedbackUnsupported``) is a dead letter at once. Each outcome that
    ends the entry is audited (``exchange.feedback_sent`` / ``exchange.feedback_failed``),
    never with the entry's value."""

    def __init__(
        self, store: Store, registry: Registry, key: KeyLoader, *, actor: str = ACTOR
    ) -> None:
        self._store = store
        self._registry = registry
        self._key = key
        self._actor = actor

    def deliver(self, action: OutboxAction) -> DeliveryResult:
        try:
            request = FeedbackRequest.from_json(action.payload)
        except (KeyError, ValueError, TypeError):
            return Permanent("not a feedback request")
        try:
            exchange = self._store.exchanges.get(request.exchange)
        except UnknownExchange:
            return self._dead(action, request, f"no exchange named {request.exchange!r} any more")
        if exchange.bank != request.bank:
            return self._dead(action, request, f"{exchange.name} now syncs into another bank")
        try:
            value, metadata = self._entry(request)
        except EntryGone as exc:
            return self._dead(action, request, str(exc))
        feedback = Feedback(
            entry_id=request.entry_id or "",
            algorithm=request.algorithm,
            value=value,
            verdict=request.verdict,
            reason=request.reason,
            metadata={k: metadata[k] for k in _METADATA_PASSED if k in metadata},
        )
        try:
            key = self._key() if exchange.credential_names else None
            send_feedback(self._registry, self._store, key, exchange, feedback)
        except FeedbackUnsupported as exc:
            return self._dead(action, request, str(exc))
        except (ExchangeError, MasterKeyError, PluginError) as exc:
            return Retry(str(exc))
        record(
            self._store,
            self._actor,
            AuditAction.EXCHANGE_FEEDBACK_SENT,
            f"exchange:{exchange.name}",
            outbox_action=action.id,
            **request.audit_details(),
        )
        return Delivered()

    def _dead(self, action: OutboxAction, request: FeedbackRequest, why: str) -> Permanent:
        record(
            self._store,
            self._actor,
            AuditAction.EXCHANGE_FEEDBACK_FAILED,
            f"exchange:{request.exchange}",
            outbox_action=action.id,
            error=why,
            **request.audit_details(),
        )
        return Permanent(why)

    def _entry(self, request: FeedbackRequest) -> tuple[str, Mapping[str, Any]]:
        """The entry's own value (never shown) and metadata; ``EntryGone`` if none."""
        exchanges = self._store.exchanges
        if request.entry_id is not None:
            found = exchanges.entry_value(request.bank, request.algorithm, request.entry_id)
            if found is None:
                raise EntryGone(
                    f"bank {request.bank} no longer holds {request.algorithm} entry "
                    f"{request.entry_id}"
                )
            return found
        signals = self._signals(request)
        if request.algorithm.is_exact:
            value = signals.exact(request.algorithm)
            if exchanges.holds(request.bank, request.algorithm, value):
                return value, {}
        else:
            nearest = self._nearest_pdq(request, _pdq_candidates(signals, request.frame))
            if nearest is not None:
                return nearest, {}
        raise EntryGone(
            f"bank {request.bank} no longer holds the {request.algorithm} entry case "
            f"{request.case} matched"
        )

    def _signals(self, request: FeedbackRequest) -> FileSignals:
        if request.case is None:
            raise EntryGone("the entry has no id and no case to find it through")
        try:
            case = self._store.cases.get(request.case)
        except UnknownCase:
            raise EntryGone(f"case {request.case} is gone") from None
        if case.signals is None:
            raise EntryGone(f"case {request.case} holds no hashes")
        return case.signals

    def _nearest_pdq(self, request: FeedbackRequest, candidates: Sequence[int]) -> str | None:
        """The bank's live PDQ value nearest to the content's hashes of that frame,
        within the distance the match was made at."""
        if not candidates:
            return None
        best: tuple[int, str] | None = None
        for values in self._store.exchanges.live_values(request.bank, Algorithm.PDQ):
            for value in values:
                try:
                    number = int(value, 16)
                except ValueError:  # never raised with the value in it (it is the list's)
                    continue
                distance = min((number ^ c).bit_count() for c in candidates)
                if distance <= request.distance and (best is None or distance < best[0]):
                    best = (distance, value)
        return None if best is None else best[1]
