"""Shapes of /v1/lookup: hashes looked up in the banks, matches without list contents."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hashguard.domain.banks import Bank
from hashguard.domain.matches import Match
from hashguard.domain.signals import Algorithm
from hashguard.web.schemas.fields import NO_NUL
from hashguard.web.schemas.results import MatchOut


class LookupItem(BaseModel):
    algorithm: Algorithm
    hash: str = Field(min_length=1, max_length=64, pattern=NO_NUL)


class LookupIn(BaseModel):
    hashes: list[LookupItem] = Field(min_length=1, max_length=100_000)


class LookupMatchOut(MatchOut):
    """A match of a looked-up hash. A PDQ match's ``distance`` is null unless the server
    trusts the token with distances (``HASHGUARD_LOOKUP_DISTANCE_TOKENS``): distances
    to small changes of a hash would spell out the listed hash bit by bit."""

    distance: int | None = Field(  # type: ignore[assignment]
        description="0 for exact hashes; for PDQ, null unless the token is trusted with it"
    )

    source: str | None = Field(
        default=None, description="where the bank's list comes from (the bank's source)"
    )
    list_version: str | None = Field(
        default=None, description="the version of the bank's list that matched, if it has one"
    )

    @classmethod
    def hiding(cls, match: Match, *, distances: bool, bank: Bank | None = None) -> LookupMatchOut:
        shown = match.distance if distances or match.algorithm is not Algorithm.PDQ else None
        listed = {"source": bank.source, "list_version": bank.version} if bank else {}
        return cls.model_validate(MatchOut.of(match).model_dump() | {"distance": shown} | listed)


class LookupResult(BaseModel):
    algorithm: Algorithm
    hash: str
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
