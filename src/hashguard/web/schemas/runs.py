"""Shapes of /v1/runs: scan runs of server-side folders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hashguard.domain.scans import Outcome, RunStatus, ScanRun
from hashguard.web.schemas.fields import NO_NUL, Flag


class RunIn(BaseModel):
    """Absolute folders under the scan roots, or s3://bucket/prefix addresses inside the
    server's ``scan_buckets`` (with the object options ``hashguard scan`` takes)."""

    paths: list[Annotated[str, Field(min_length=1, max_length=4096, pattern=NO_NUL)]] = Field(
        min_length=1, max_length=100
    )
    dihedral: Flag = False
    rescan: Flag = False
    #: object storage only: an S3 Inventory manifest (s3://…/manifest.json) to list from
    inventory: str | None = Field(default=None, max_length=4096, pattern=r"^s3://[^\x00]+$")
    #: object storage only: every version of each key, or the current ones
    versions: Literal["latest", "all"] = "latest"
    #: object storage only: key extensions (jpg, png), Content-Type patterns (image/*)
    extensions: list[Annotated[str, Field(min_length=1, max_length=20)]] | None = Field(
        default=None, max_length=50
    )
    content_types: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=50
    )
    #: object storage only: objects larger than this are not read (unsupported)
    max_size: int | None = Field(default=None, ge=1, le=2**53)
    #: object storage only: at most this many requests per second
    rate: float | None = Field(default=None, gt=0, le=100000)


class RunOut(BaseModel):
    id: int
    status: RunStatus
    active: bool
    roots: list[str]
    started_at: datetime
    finished_at: datetime | None
    total: int
    counts: dict[str, int]
    #: objects an incremental rescan left out: checked against these bank versions
    skipped: int = 0

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
            skipped=run.skipped,
        )
