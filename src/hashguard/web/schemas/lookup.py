"""Shapes of /v1/lookup: hashes looked up in the banks, matches without list contents."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from hashguard.banks.formats import MAX_VPDQ_FRAMES
from hashguard.domain.banks import Bank
from hashguard.domain.matches import Match
from hashguard.domain.signals import Algorithm
from hashguard.web.schemas.banks import VpdqFeature
from hashguard.web.schemas.fields import NO_NUL
from hashguard.web.schemas.results import MatchOut


class LookupItem(BaseModel):
    algorithm: Algorithm
    hash: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
        | Annotated[list[VpdqFeature], Field(min_length=1, max_length=MAX_VPDQ_FRAMES)]
    ) = Field(
        description="a hash in hex; for vpdq, one video: its 'pdq_hex,quality,timestamp' "
        "frames as python-threatexchange serialises them (matched against listed videos)"
    )


class LookupIn(BaseModel):
    hashes: list[LookupItem] = Field(min_length=1, max_length=100_000)


class LookupMatchOut(MatchOut):
    """A match of a looked-up hash. A PDQ match's ``distance`` is null unless the server
    trusts the token with distances (``HASHGUARD_LOOKUP_DISTANCE_TOKENS``): distances
    to small changes of a hash would spell out the listed hash bit by bit."""

    distance: int | None = Field(  # type: ignore[assignment]
        description="0 for exact hashes; for PDQ and vPDQ, null unless the token is trusted with it"
    )

    source: str | None = Field(
        default=None, description="where the bank's list comes from (the bank's source)"
    )
    list_version: str | None = Field(
        default=None, description="the version of the bank's list that matched, if it has one"
    )

    @classmethod
    def hiding(cls, match: Match, *, distances: bool, bank: Bank | None = None) -> LookupMatchOut:
        """A vPDQ match's distance, percentages and matched times are hidden as a PDQ
        distance is: together they say which frames lie near a listed video's."""
        out = MatchOut.of(match).model_dump()
        if not distances and match.algorithm is Algorithm.PDQ:
            out["distance"] = None
        if not distances and match.algorithm is Algorithm.VPDQ:
            out |= {
                "distance": None,
                "timestamp": None,
                "query_percent": None,
                "compared_percent": None,
                "timestamps": [],
            }
        listed = {"source": bank.source, "list_version": bank.version} if bank else {}
        return cls.model_validate(out | listed)


class LookupResult(BaseModel):
    algorithm: Algorithm
    hash: str = Field(
        description="the hash as matched (lowercase hex); for vpdq, the video's digest (the "
        "SHA-256 of its canonical vpdq signal, as a listed video's entry is named)"
    )
    valid: bool
    reason: str | None = None
    matches: list[LookupMatchOut]


class LookupOut(BaseModel):
    results: list[LookupResult]
    index_version: int | None = Field(
        default=None,
        description="the service's list version: the change number of the match index the "
        "answer came from (it grows with every change to a bank's entries or settings; a "
        "client keeps nothing from an answer beyond it)",
    )
