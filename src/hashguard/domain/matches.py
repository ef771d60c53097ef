"""A match between a file's signal and a bank entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hashguard.domain.banks import BankKind
from hashguard.domain.signals import Algorithm


@dataclass(frozen=True, kw_only=True, slots=True)
class Match:
    """One bank entry that a signal of the file matched.

    ``distance`` is 0 for exact hashes, the Hamming distance for PDQ.
    ``frame`` and ``transform`` say which frame and which dihedral variant of the
    file matched (``original`` unless dihedral matching found a rotated/mirrored copy).
    ``suppressed_by`` names the allow bank that suppressed this match, if one did.
    ``entry_ref`` is the store's reference to the matched entry (the flood guard counts
    per entry): set by the matcher, never in JSON or any output, and not compared (a
    match read back from JSON equals the one the matcher made).
    """

    bank: str
    bank_kind: BankKind
    algorithm: Algorithm
    distance: int
    entry_id: str | None
    category: str | None
    frame: int = 0
    transform: str = "original"
    suppressed_by: str | None = None
    #: for a video's frame matched against a PDQ (image) bank: the frame's time in
    #: seconds (``frame`` is then the video's frame number); None otherwise
    timestamp: float | None = None
    #: for a vPDQ match (a video against a listed video): the shares of the video's
    #: usable frames and of the listed video's that matched, in percent, and the times
    #: of the video's frames that matched (``timestamp`` is the first of them)
    query_percent: float | None = None
    compared_percent: float | None = None
    timestamps: tuple[float, ...] = ()
    entry_ref: int | None = field(default=None, compare=False, repr=False)

    @property
    def effective(self) -> bool:
        """A match that counts: from a known bank and not suppressed by an allow bank."""
        return self.bank_kind is BankKind.KNOWN and self.suppressed_by is None


def match_to_json(match: Match) -> dict[str, Any]:
    """The JSON shape of a match, used by every output and by the store."""
    return {
        "bank": match.bank,
        "bank_kind": str(match.bank_kind),
        "algorithm": str(match.algorithm),
        "distance": match.distance,
        "entry_id": match.entry_id,
        "category": match.category,
        "frame": match.frame,
        "transform": match.transform,
        "suppressed_by": match.suppressed_by,
        # present only for a video frame's match (other matches' stored shape unchanged)
        **({} if match.timestamp is None else {"timestamp": match.timestamp}),
        # present only for a vPDQ match
        **(
            {}
            if match.query_percent is None
            else {
                "query_percent": match.query_percent,
                "compared_percent": match.compared_percent,
                "timestamps": list(match.timestamps),
            }
        ),
    }


def match_from_json(data: dict[str, Any]) -> Match:
    return Match(
        bank=data["bank"],
        bank_kind=BankKind(data["bank_kind"]),
        algorithm=Algorithm(data["algorithm"]),
        distance=data["distance"],
        entry_id=data["entry_id"],
        category=data["category"],
        frame=data["frame"],
        transform=data["transform"],
        suppressed_by=data["suppressed_by"],
        timestamp=data.get("timestamp"),
        query_percent=data.get("query_percent"),
        compared_percent=data.get("compared_percent"),
        timestamps=tuple(data.get("timestamps") or ()),
    )
