"""Shapes of /v1/runs: scan runs of server-side folders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from hashguard.domain.scans import Outcome, RunStatus, ScanRun
from hashguard.web.schemas.fields import NO_NUL, Flag


class RunIn(BaseModel):
    paths: list[Annotated[str, Field(min_length=1, max_length=4096, pattern=NO_NUL)]] = Field(
        min_length=1, max_length=100
    )
    dihedral: Flag = False
    rescan: Flag = False


class RunOut(BaseModel):
    id: int
    status: RunStatus
    active: bool
    roots: list[str]
    started_at: datetime
    finished_at: datetime | None
    total: int
    counts: dict[str, int]

    @classmethod
    def of(cls, run: ScanRun, *, active: bool) -> RunOut:
        return cls(
            id=run.id,
            status=run.status,
            active=active,
            roots=list(run.roots),
            started_at=run.started_at,
            finished_at=run.finished_at,
            total=run.total,
            counts={str(o): run.counts.get(o, 0) for o in Outcome},
        )
