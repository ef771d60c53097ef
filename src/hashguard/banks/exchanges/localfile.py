"""A local-file exchange: a JSON Lines feed of upserts and deletions, read incrementally.

For testing a sync end to end, and for operators whose partner delivers deltas as
files. Each line: ``{"op": "upsert"|"delete", "algorithm": "md5", "hash": "...",
"id": "...", "category": "...", "metadata": {...}}`` (``op`` defaults to upsert); a
``vpdq`` hash is one video's signal in python-threatexchange's serialisation (see
``banks.formats``), and a deletion may name it by its digest.
The checkpoint is the number of lines consumed, with the file's identity: a replaced
or truncated file is read again from its start.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hashguard.banks.exchanges.base import ExchangeError, ListSource
from hashguard.banks.formats import (
    InvalidRow,
    check_depth,
    check_storable,
    normalise_hash,
    parse_algorithm,
    parse_json,
    parse_signal,
)
from hashguard.domain.banks import BankEntry
from hashguard.domain.exchanges import SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.domain.video import VpdqFrame


class LocalFileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    batch_size: int = Field(default=1000, ge=1, le=100_000)


class LocalFileExchange(ListSource):
    name = "local_file"
    description = "a JSON Lines file of upserts and deletions, read incrementally"
    terms = "your own file"
    Settings: ClassVar[type[BaseModel]] = LocalFileSettings
    algorithms = frozenset(Algorithm)
    audience = "any"

    def fetch(self, checkpoint: str | None) -> Iterator[SyncBatch]:
        assert isinstance(self.settings, LocalFileSettings)
        path, size = self.settings.path, self.settings.batch_size
        try:
            stat = path.stat()
            handle = path.open("rb")
        except OSError as exc:
            raise ExchangeError(f"cannot read {path}: {exc.strerror}") from None
        identity = f"{stat.st_dev}:{stat.st_ino}"
        start = _resume_line(checkpoint, identity, stat.st_size)
        with handle:
            consumed, offset = start, 0
            batch: list[tuple[int, bytes]] = []
            for line, raw in enumerate(handle, start=1):
                if line <= start:
                    offset += len(raw)
                    continue
                if not raw.endswith(b"\n"):
                    break  # a line still being written: the next sync reads it whole
                batch.append((line, raw))
                consumed, offset = line, offset + len(raw)
                if len(batch) == size:
                    yield _batch(batch, identity, consumed, offset)
                    batch = []
            if batch:
                yield _batch(batch, identity, consumed, offset)


def _resume_line(checkpoint: str | None, identity: str, size: int) -> int:
    if checkpoint is None:
        return 0
    saved = json.loads(checkpoint)
    if saved.get("file") != identity or saved.get("offset", 0) > size:
        return 0  # another file, or the same one truncated: read it again
    return int(saved.get("line", 0))


def _batch(lines: list[tuple[int, bytes]], identity: str, last: int, offset: int) -> SyncBatch:
    upserts: list[BankEntry] = []
    removals: list[tuple[Algorithm, str]] = []
    skipped: list[str] = []
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            op, entry = _record(raw)
        except InvalidRow as exc:
            skipped.append(f"line {number}: {exc}")
            continue
        if op == "delete":
            removals.append((entry.algorithm, entry.value))
        else:
            upserts.append(entry)
    checkpoint = json.dumps({"file": identity, "line": last, "offset": offset})
    return SyncBatch(
        upserts=tuple(upserts),
        removals=tuple(removals),
        skipped=tuple(skipped),
        checkpoint=checkpoint,
    )


def _record(raw: bytes) -> tuple[str, BankEntry]:
    try:
        record: Any = parse_json(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRow(f"not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise InvalidRow("not a JSON object")
    check_depth(record)
    op = record.get("op", "upsert")
    if op not in ("upsert", "delete"):
        raise InvalidRow(f"unknown op {op!r}")
    algorithm, value = record.get("algorithm"), record.get("hash")
    if not isinstance(algorithm, str) or not isinstance(value, str | list):
        raise InvalidRow("algorithm and hash must be strings (a vpdq hash: a list too)")
    chosen = parse_algorithm(algorithm)
    if chosen is Algorithm.VPDQ and op == "delete" and isinstance(value, str):
        frames: tuple[VpdqFrame, ...] = ()
        try:  # a deletion may name the video by its digest, as matches and stats do
            normalised = normalise_hash(chosen, value)
        except InvalidRow:
            normalised, frames = parse_signal(chosen, value)
    else:
        normalised, frames = parse_signal(chosen, value)
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidRow("metadata must be an object")
    entry_id, category = record.get("id"), record.get("category")
    check_storable(entry_id, "id")
    check_storable(category, "category")
    check_storable(metadata)
    entry = BankEntry(
        algorithm=chosen,
        value=normalised,
        entry_id=_text(entry_id),
        category=_text(category),
        metadata=metadata,
        frames=frames,
    )
    return op, entry


def _text(value: object) -> str | None:
    return None if value is None else str(value)
