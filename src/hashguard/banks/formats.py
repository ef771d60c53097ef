"""Reading hash lists: CSV/TSV with a header, JSON Lines, and plain one-hash-per-line files.

Every row is validated; every bad row is reported with its file and line. Parsing
never stops at the first bad row, so an operator sees all problems at once.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from hashguard.domain.banks import BankEntry, RowError
from hashguard.domain.signals import Algorithm


class ListFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    PLAIN = "plain"


_EXTENSIONS = {
    ".csv": ListFormat.CSV,
    ".tsv": ListFormat.TSV,
    ".tab": ListFormat.TSV,
    ".jsonl": ListFormat.JSONL,
    ".ndjson": ListFormat.JSONL,
    ".txt": ListFormat.PLAIN,
    ".lst": ListFormat.PLAIN,
}

_ALGORITHM_ALIASES = {
    "md5": Algorithm.MD5,
    "sha1": Algorithm.SHA1,
    "sha-1": Algorithm.SHA1,
    "sha256": Algorithm.SHA256,
    "sha-256": Algorithm.SHA256,
    "pdq": Algorithm.PDQ,
}

#: Header names we understand, by the field they fill. Other columns become metadata.
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "algorithm": ("algorithm", "algo", "hash_type", "signal_type", "type"),
    "hash": ("hash", "value", "signal", "signal_value", "hash_value"),
    "entry_id": ("entry_id", "id", "entry", "external_id"),
    "category": ("category", "classification", "label"),
    "metadata": ("metadata", "meta"),
}

_HEX = re.compile(r"[0-9a-f]+")
_BY_LENGTH = {32: Algorithm.MD5, 40: Algorithm.SHA1}


class InvalidRow(ValueError):
    """One row is unusable; the message says why."""


def detect_format(path: Path) -> ListFormat:
    try:
        return _EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"cannot tell the list format of {path.name} from its extension; pass --format"
        ) from None


def parse_algorithm(text: str) -> Algorithm:
    try:
        return _ALGORITHM_ALIASES[text.strip().lower()]
    except KeyError:
        raise InvalidRow(f"unknown algorithm {text.strip()!r}") from None


def normalise_hash(algorithm: Algorithm, text: str) -> str:
    """The canonical lowercase hex form of a hash, or ``InvalidRow`` saying what is wrong."""
    value = text.strip().lower()
    if not value:
        raise InvalidRow("empty hash")
    if not _HEX.fullmatch(value):
        raise InvalidRow(f"{algorithm} hash is not hexadecimal")
    if len(value) != algorithm.hex_length:
        raise InvalidRow(
            f"{algorithm} hash has {len(value)} hex digits, expected {algorithm.hex_length}"
        )
    if algorithm is Algorithm.PDQ and value.count("0") == len(value):
        raise InvalidRow("all-zero PDQ hash (the hash of a blank image) would match noise")
    return value


def check_storable(value: Any, what: str = "metadata") -> None:
    """Refuse what no store can keep: NUL characters (PostgreSQL text cannot hold them)
    and non-finite numbers (JSON has none), anywhere in a value, its keys included."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRow(f"{what} contains a NUL character")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRow(f"{what} contains a non-finite number ({value})")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_storable(key, what)
            check_storable(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, what)


def _infer_algorithm(value: str) -> Algorithm:
    found = _BY_LENGTH.get(len(value.strip()))
    if found is None:
        raise InvalidRow(
            "cannot infer the algorithm from a hash of "
            f"{len(value.strip())} characters; give an algorithm column or --algorithm"
        )
    return found


@dataclass(kw_only=True, slots=True)
class ParsedList:
    """Valid entries keyed by signal (first occurrence wins), and every rejected row."""

    entries: dict[tuple[Algorithm, str], BankEntry] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    duplicates: int = 0

    def add(self, entry: BankEntry) -> None:
        key = (entry.algorithm, entry.value)
        if key in self.entries:
            self.duplicates += 1
        else:
            self.entries[key] = entry


def _entry(
    *,
    algorithm: str | None,
    value: str | None,
    default_algorithm: Algorithm | None,
    entry_id: Any = None,
    category: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> BankEntry:
    if value is None:
        raise InvalidRow("no hash")
    if algorithm is not None and algorithm.strip():
        chosen = parse_algorithm(algorithm)
    elif default_algorithm is not None:
        chosen = default_algorithm
    else:
        chosen = _infer_algorithm(value)
    entry = BankEntry(
        algorithm=chosen,
        value=normalise_hash(chosen, value),
        entry_id=_optional_text(entry_id),
        category=_optional_text(category),
        metadata=dict(metadata or {}),
    )
    check_storable(entry.entry_id, "entry id")
    check_storable(entry.category, "category")
    check_storable(entry.metadata)
    return entry


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_list(
    path: Path,
    list_format: ListFormat,
    *,
    algorithm: Algorithm | None = None,
) -> ParsedList:
    """Read and validate every row of ``path``. ``algorithm`` applies where a row names none."""
    with path.open("rb") as raw:
        return parse_stream(raw, path.name, list_format, algorithm=algorithm)


def parse_stream(
    raw: BinaryIO, name: str, list_format: ListFormat, *, algorithm: Algorithm | None = None
) -> ParsedList:
    """``parse_list`` for an open binary stream (an uploaded list); ``name`` labels errors."""
    parsed = ParsedList()
    # utf-8-sig: spreadsheet exports often start with a byte-order mark. Undecodable
    # bytes become U+FFFD and fail validation on their own line, not the whole file.
    with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as stream:
        reader = {
            ListFormat.CSV: _read_delimited,
            ListFormat.TSV: _read_delimited,
            ListFormat.JSONL: _read_jsonl,
            ListFormat.PLAIN: _read_plain,
        }[list_format]
        delimiter = "\t" if list_format is ListFormat.TSV else ","
        for line, outcome in reader(stream, algorithm, delimiter):
            parsed.rows += 1
            if isinstance(outcome, InvalidRow):
                parsed.errors.append(RowError(file=name, line=line, reason=str(outcome)))
            else:
                parsed.add(outcome)
    return parsed


_RowOutcome = Iterator[tuple[int, "BankEntry | InvalidRow"]]


def _read_plain(stream: TextIO, algorithm: Algorithm | None, _delimiter: str) -> _RowOutcome:
    for number, raw in enumerate(stream, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield number, _entry(algorithm=None, value=text, default_algorithm=algorithm)
        except InvalidRow as exc:
            yield number, exc


def _header_map(header: list[str]) -> tuple[dict[str, int], dict[int, str]]:
    known: dict[str, int] = {}
    extra: dict[int, str] = {}
    lowered = [name.strip().lower() for name in header]
    for index, name in enumerate(lowered):
        for target, aliases in _COLUMN_ALIASES.items():
            if name in aliases and target not in known:
                known[target] = index
                break
        else:
            if name:
                extra[index] = header[index].strip()
    return known, extra


def _read_delimited(stream: TextIO, algorithm: Algorithm | None, delimiter: str) -> _RowOutcome:
    reader = csv.reader(stream, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    known, extra = _header_map(header)
    if "hash" not in known:
        yield (
            reader.line_num,
            InvalidRow(
                "the header names no hash column (hash, value or signal); "
                "a file of bare hashes should be imported with --format plain"
            ),
        )
        return
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            yield line, InvalidRow(f"{len(row)} fields, but the header has {len(header)}")
            continue

        def cell(target: str, row: list[str] = row) -> str | None:
            index = known.get(target)
            return row[index] if index is not None and index < len(row) else None

        try:
            metadata = _metadata(cell("metadata"))
            for index, name in extra.items():
                if index < len(row) and row[index].strip():
                    metadata.setdefault(name, row[index].strip())
            yield (
                line,
                _entry(
                    algorithm=cell("algorithm"),
                    value=cell("hash"),
                    default_algorithm=algorithm,
                    entry_id=cell("entry_id"),
                    category=cell("category"),
                    metadata=metadata,
                ),
            )
        except InvalidRow as exc:
            yield line, exc


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRow(f"{what} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidRow(f"{what} must be a JSON object")
    return value


def _metadata(text: str | None) -> dict[str, Any]:
    return _json_object(text, "metadata") if text is not None and text.strip() else {}


def _read_jsonl(stream: TextIO, algorithm: Algorithm | None, _delimiter: str) -> _RowOutcome:
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            try:
                yield number, _jsonl_entry(raw, algorithm)
            except InvalidRow as exc:
                yield number, exc


def _jsonl_entry(raw: str, algorithm: Algorithm | None) -> BankEntry:
    obj = _json_object(raw, "the line")
    fields = dict.fromkeys(_COLUMN_ALIASES)
    metadata: dict[str, Any] = {}
    for key, value in obj.items():
        target = next(
            (name for name, aliases in _COLUMN_ALIASES.items() if key.lower() in aliases), None
        )
        if target is not None and fields[target] is None:
            fields[target] = value
        else:
            metadata[key] = value
    nested = fields["metadata"]
    if nested is not None and not isinstance(nested, dict):
        raise InvalidRow("metadata must be a JSON object")
    for name in ("algorithm", "hash"):
        if fields[name] is not None and not isinstance(fields[name], str):
            raise InvalidRow(f"{name} must be a string")
    return _entry(
        algorithm=fields["algorithm"],
        value=fields["hash"],
        default_algorithm=algorithm,
        entry_id=fields["entry_id"],
        category=fields["category"],
        metadata={**metadata, **(nested or {})},
    )
