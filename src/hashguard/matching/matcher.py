"""The Matcher: one file's signals against every enabled bank, with allow-list suppression."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from hashguard.domain.banks import Bank, BankEntry, BankKind
from hashguard.domain.matches import Match
from hashguard.domain.signals import DIHEDRAL_NAMES, EXACT_ALGORITHMS, Algorithm, FileSignals
from hashguard.matching.exact import ExactIndex
from hashguard.matching.pdq import PdqIndex


@dataclass(frozen=True, kw_only=True, slots=True)
class _Ref:
    bank: Bank
    entry_id: str | None
    category: str | None


class Matcher:
    """Matches against a snapshot of the enabled banks taken when it was built.

    Suppression by allow banks: an exact-hash allow match means this very file was
    vetted as a false positive, so it suppresses every known match of the file. A PDQ
    allow match suppresses the PDQ known matches of the same frame only: a file whose
    exact bytes are on a known list is not excused by looking like an allowed image.
    Low-quality PDQ hashes (quality < 50) are not used for distance matching.
    """

    def __init__(self) -> None:
        self._refs: list[_Ref] = []
        self._exact = ExactIndex()
        self._pdq = PdqIndex()
        self.banks: tuple[Bank, ...] = ()

    @classmethod
    def build(
        cls, banks: Iterable[Bank], entries_of: Callable[[int], Iterable[BankEntry]]
    ) -> Matcher:
        matcher = cls()
        enabled = tuple(bank for bank in banks if bank.enabled)
        for bank in enabled:
            for entry in entries_of(bank.id):
                matcher._add(bank, entry)
        matcher.banks = enabled
        return matcher

    def __len__(self) -> int:
        return len(self._refs)

    def _add(self, bank: Bank, entry: BankEntry) -> None:
        ref = len(self._refs)
        self._refs.append(_Ref(bank=bank, entry_id=entry.entry_id, category=entry.category))
        if entry.algorithm is Algorithm.PDQ:
            self._pdq.add(entry.value, threshold=bank.pdq_threshold, ref=ref)
        else:
            self._exact.add(entry.algorithm, entry.value, ref)

    def _match(
        self, ref: int, algorithm: Algorithm, distance: int, frame: int, transform: str
    ) -> Match:
        target = self._refs[ref]
        return Match(
            bank=target.bank.name,
            bank_kind=target.bank.kind,
            algorithm=algorithm,
            distance=distance,
            entry_id=target.entry_id,
            category=target.category,
            frame=frame,
            transform=transform,
        )

    def match(self, signals: FileSignals) -> tuple[Match, ...]:
        exact = [
            self._match(ref, algorithm, 0, 0, "original")
            for algorithm in EXACT_ALGORITHMS
            for ref in self._exact.lookup(algorithm, signals.exact(algorithm))
        ]
        pdq: list[Match] = []
        for frame_hash in signals.pdq:
            if frame_hash.low_quality:
                continue
            best: dict[int, tuple[int, int]] = {}  # ref -> (distance, variant)
            variants = (frame_hash.value, *frame_hash.dihedral)
            for variant, value in enumerate(variants):
                for ref, distance in self._pdq.search(value):
                    if ref not in best or distance < best[ref][0]:
                        best[ref] = (distance, variant)
            pdq.extend(
                self._match(ref, Algorithm.PDQ, distance, frame_hash.frame, DIHEDRAL_NAMES[variant])
                for ref, (distance, variant) in sorted(best.items(), key=lambda item: item[1])
            )
        return _suppress([*exact, *pdq])


def _suppress(matches: list[Match]) -> tuple[Match, ...]:
    allow = [m for m in matches if m.bank_kind is BankKind.ALLOW]
    if not allow:
        return tuple(matches)
    exact_allow = next((m for m in allow if m.algorithm.is_exact), None)
    frame_allow = {m.frame: m for m in allow if m.algorithm is Algorithm.PDQ}
    result = []
    for match in matches:
        by = None
        if match.bank_kind is BankKind.KNOWN:
            by = exact_allow
            if by is None and match.algorithm is Algorithm.PDQ:
                by = frame_allow.get(match.frame)
        result.append(match if by is None else replace(match, suppressed_by=by.bank))
    return tuple(result)
