"""Reading hash lists: CSV/TSV with a header (or by column position), JSON Lines, and
plain one-hash-per-line files.

Every row is validated; every bad row is reported with its file and line. Parsing
never stops at the first bad row, so an operator sees all problems at once. A column
mapping (columns.py) that cannot apply to a file is one ``ColumnMappingError`` for
the whole file, raised before the parse returns, so nothing can be imported.
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

from hashguard.banks.columns import (
    Column,
    ColumnMap,
    ColumnMappingError,
    describe,
    resolve,
    shown,
)
from hashguard.domain.banks import BankEntry, RowError
from hashguard.domain.signals import Algorithm
from hashguard.domain.text import unstorable
from hashguard.domain.video import VpdqFrame, parse_vpdq_features, vpdq_digest


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
    # one video's vPDQ features, as python-threatexchange's ``vpdq`` signal serialises
    # them: a JSON list of "hash,quality,timestamp" strings
    "vpdq": Algorithm.VPDQ,
    # python-threatexchange's signal types for a digest of a video file's bytes: the
    # same digest as ours of any file (its url_md5, a digest of a URL, is not).
    "video_md5": Algorithm.MD5,
    "video_sha256": Algorithm.SHA256,
}

#: Header names we understand, by the field they fill (columns.FIELDS, in that order).
#: Other columns become metadata.
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "algorithm": ("algorithm", "algo", "hash_type", "signal_type", "type"),
    "hash": ("hash", "value", "signal", "signal_value", "hash_value", "signal_str"),
    "entry_id": ("entry_id", "id", "entry", "external_id"),
    "category": ("category", "classification", "label"),
    "metadata": ("metadata", "meta"),
}

_HEX = re.compile(r"[0-9a-f]+")
_BY_LENGTH = {32: Algorithm.MD5, 40: Algorithm.SHA1}


class InvalidRow(ValueError):
    """One row is unusable; the message says why."""


class UnreadableList(ValueError):
    """The file cannot be read on from ``line`` (a CSV field over the parser's limit
    leaves the parser unable to tell where the next row starts): nothing is imported."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        super().__init__(f"{file}, line {line}: {reason}; nothing was imported")
        self.file, self.line, self.reason = file, line, reason


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
        raise InvalidRow(f"unknown algorithm {shown(text.strip())}") from None


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


#: Deepest nesting of objects and arrays a record's value may have (metadata is flat in
#: every list we know; a deeper value is a malformed or hostile record).
MAX_DEPTH = 32


def check_storable(value: Any, what: str = "metadata", *, depth: int = MAX_DEPTH) -> None:
    """Refuse what no store can keep: NUL characters (PostgreSQL text cannot hold them),
    lone surrogates (not Unicode), non-finite numbers (JSON has none) and nesting deeper
    than ``depth``, anywhere in a value, its keys included."""
    if isinstance(value, str):
        problem = unstorable(value)
        if problem is not None:
            raise InvalidRow(f"{what} {problem}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRow(f"{what} contains a non-finite number ({value})")
    elif isinstance(value, Mapping | list | tuple):
        if depth <= 0:
            raise InvalidRow(f"{what} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, Mapping):
            for key, item in value.items():
                check_storable(key, what, depth=depth - 1)
                check_storable(item, what, depth=depth - 1)
        else:
            for item in value:
                check_storable(item, what, depth=depth - 1)


def check_depth(value: Any, what: str = "the record", *, depth: int = MAX_DEPTH) -> None:
    """``InvalidRow`` when ``value`` nests objects or arrays deeper than ``depth``."""
    if isinstance(value, Mapping | list | tuple):
        if depth <= 0:
            raise InvalidRow(f"{what} is nested deeper than {MAX_DEPTH} levels")
        for item in value.values() if isinstance(value, Mapping) else value:
            check_depth(item, what, depth=depth - 1)


#: What ``parse_json`` puts in place of a value nested too deeply to parse.
TOO_DEEP = "(nested too deeply)"
#: Nesting kept by ``parse_json`` (well below Python's recursion limit)
_CUT_DEPTH = 2 * MAX_DEPTH + 8
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, except that a value nested too deeply for Python's parser does not
    fail the document: it is replaced by ``TOO_DEEP`` (at a depth ``check_depth`` and
    ``check_storable`` refuse), so one hostile record in a page costs that record only.
    ``json.JSONDecodeError`` for what is not JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return json.loads(_cut_deep(decoded, _CUT_DEPTH))


def _cut_deep(text: str, limit: int) -> str:
    """``text`` with every array or object that opens below ``limit`` levels replaced."""
    kept: list[str] = []
    depth, last, cutting = 0, 0, False
    for token in _JSON_TOKEN.finditer(text):
        mark = token.group()
        if mark[0] == '"':
            continue
        if mark in "[{":
            depth += 1
            if depth == limit + 1 and not cutting:
                kept.append(text[last : token.start()])
                cutting = True
        else:
            if depth == limit + 1 and cutting:
                kept.append(json.dumps(TOO_DEEP))
                last, cutting = token.end(), False
            depth -= 1
    kept.append(text[last:])
    return "".join(kept)


def _infer_algorithm(value: str) -> Algorithm:
    found = _BY_LENGTH.get(len(value.strip()))
    if found is None:
        raise InvalidRow(
            "cannot infer the algorithm from a hash of "
            f"{len(value.strip())} characters; give an algorithm column or --algorithm"
        )
    return found


# -- reading ---------------------------------------------------------------------------


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


#: most frames one vPDQ entry may hold (3 hours at the reference's one frame a second)
MAX_VPDQ_FRAMES = 3 * 3600


def _vpdq_frames(value: Any) -> tuple[VpdqFrame, ...]:
    """A ``vpdq`` cell: python-threatexchange's signal string (a JSON list of
    ``hash,quality,timestamp`` strings) or, in JSON Lines, that list itself."""
    if isinstance(value, str):
        try:
            value = parse_json(value)
        except json.JSONDecodeError as exc:
            raise InvalidRow(f"vpdq signal is not a JSON list: {exc.msg}") from None
    if not isinstance(value, list):
        raise InvalidRow("vpdq signal must be a JSON list of 'hash,quality,timestamp' strings")
    if not value:
        raise InvalidRow("vpdq signal has no frames")
    if len(value) > MAX_VPDQ_FRAMES:
        raise InvalidRow(f"vpdq signal has {len(value)} frames, over {MAX_VPDQ_FRAMES}")
    try:
        frames = parse_vpdq_features(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRow(str(exc)) from None
    if not any(not f.low_quality and f.value.count("0") != len(f.value) for f in frames):
        raise InvalidRow("vpdq signal has no frame of quality 50 or more (it could never match)")
    return frames


def parse_signal(algorithm: Algorithm, value: Any) -> tuple[str, tuple[VpdqFrame, ...]]:
    """A list cell's stored value, and a vPDQ entry's frames (for a ``vpdq`` cell: the
    frames' ``vpdq_digest``); ``InvalidRow`` saying what is wrong. Exchanges use it too."""
    if algorithm is Algorithm.VPDQ:
        frames = _vpdq_frames(value)
        return vpdq_digest(frames), frames
    if not isinstance(value, str):
        raise InvalidRow("a hash must be a string")
    return normalise_hash(algorithm, value), ()


def _common(
    entry_id: Any, category: Any, metadata: Mapping[str, Any] | None
) -> tuple[str | None, str | None, dict[str, Any]]:
    """A row's entry id, category and metadata, as stored, or ``InvalidRow``."""
    entry_id, category = _optional_text(entry_id), _optional_text(category)
    check_storable(entry_id, "entry id")
    check_storable(category, "category")
    kept = dict(metadata or {})
    check_storable(kept)
    return entry_id, category, kept


def _entry(
    *,
    algorithm: str | None,
    value: Any,
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
    elif isinstance(value, str):
        chosen = _infer_algorithm(value)
    else:
        raise InvalidRow("hash must be a string")
    normalised, frames = parse_signal(chosen, value)
    entry_id, category, kept = _common(entry_id, category, metadata)
    return BankEntry(
        algorithm=chosen,
        value=normalised,
        entry_id=entry_id,
        category=category,
        metadata=kept,
        frames=frames,
    )


def _entries_per_algorithm(
    cells: list[tuple[Algorithm, str, Any]],
    *,
    entry_id: Any,
    category: Any,
    metadata: Mapping[str, Any],
) -> list[BankEntry]:
    """One entry per non-empty (algorithm, label, value) cell of a row, or ``InvalidRow``
    naming every bad cell: a row is imported whole or not at all."""
    entry_id, category, kept = _common(entry_id, category, metadata)
    entries: list[BankEntry] = []
    problems: list[str] = []
    for algorithm, label, value in cells:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            normalised, frames = parse_signal(algorithm, value)
        except InvalidRow as exc:
            problems.append(f"{label}: {exc}")
            continue
        entries.append(
            BankEntry(
                algorithm=algorithm,
                value=normalised,
                entry_id=entry_id,
                category=category,
                metadata=dict(kept),
                frames=frames,
            )
        )
    if problems:
        raise InvalidRow("; ".join(problems))
    if not entries:
        raise InvalidRow(f"no hash in {', '.join(label for _, label, _ in cells)}")
    return entries


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Reading:
    """What every reader needs besides the text: the file's name for errors, options."""

    name: str
    algorithm: Algorithm | None
    delimiter: str
    columns: ColumnMap | None
    drop_unmapped: bool


def parse_list(
    path: Path,
    list_format: ListFormat,
    *,
    algorithm: Algorithm | None = None,
    columns: ColumnMap | None = None,
    drop_unmapped: bool = False,
) -> ParsedList:
    """Read and validate every row of ``path``. ``algorithm`` applies where a row names none."""
    with path.open("rb") as raw:
        return parse_stream(
            raw,
            path.name,
            list_format,
            algorithm=algorithm,
            columns=columns,
            drop_unmapped=drop_unmapped,
        )


def parse_stream(
    raw: BinaryIO,
    name: str,
    list_format: ListFormat,
    *,
    algorithm: Algorithm | None = None,
    columns: ColumnMap | None = None,
    drop_unmapped: bool = False,
) -> ParsedList:
    """``parse_list`` for an open binary stream (an uploaded list); ``name`` labels errors.

    ``columns`` replaces header-name (or key-name) detection; ``drop_unmapped`` keeps
    columns that fill no field out of the metadata. ``ColumnMappingError`` when the
    mapping cannot apply to this file.
    """
    if columns is not None:
        if list_format is ListFormat.PLAIN:
            raise ColumnMappingError(f"{name}: a plain list has no columns to map")
        if not columns.header and list_format is ListFormat.JSONL:
            raise ColumnMappingError(f"{name}: JSON Lines are mapped by key, not by position")
        if columns.hashes and algorithm is not None:
            raise ColumnMappingError(
                "a default algorithm does not apply: each hash column names its algorithm"
            )
    reading = _Reading(
        name=name,
        algorithm=algorithm,
        delimiter="\t" if list_format is ListFormat.TSV else ",",
        columns=columns,
        drop_unmapped=drop_unmapped,
    )
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
        for line, outcome in reader(stream, reading):
            parsed.rows += 1
            if isinstance(outcome, InvalidRow):
                parsed.errors.append(RowError(file=name, line=line, reason=str(outcome)))
            else:
                for entry in outcome:
                    parsed.add(entry)
    return parsed


_RowOutcome = Iterator[tuple[int, "list[BankEntry] | InvalidRow"]]


def _read_plain(stream: TextIO, reading: _Reading) -> _RowOutcome:
    for number, raw in enumerate(stream, start=1):
        text = raw.strip()
        if text and not text.startswith("#"):
            try:
                yield number, [_plain_entry(text, reading.algorithm)]
            except InvalidRow as exc:
                yield number, exc


def _plain_entry(text: str, algorithm: Algorithm | None) -> BankEntry:
    # python-threatexchange's signal files (its local-file exchange, `dataset -P
    # --print-signals-only`) put the signal type before the hash: "pdq 5e3a…".
    parts = text.split(maxsplit=1)
    if len(parts) == 1 or text.startswith("["):  # a bare vpdq signal (a JSON list)
        return _entry(algorithm=None, value=text, default_algorithm=algorithm)
    if _HEX.fullmatch(parts[0].lower()):
        raise InvalidRow("text after the hash (a plain list has one hash a line)")
    return _entry(algorithm=parts[0], value=parts[1], default_algorithm=algorithm)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Layout:
    """Where a delimited file's fields are: indexes of ``fields`` (FIELDS names), hash
    columns as (algorithm, index, label), metadata columns by index. ``extra=None``:
    every column not in ``mapped`` is metadata, named by its position."""

    fields: dict[str, int]
    hashes: tuple[tuple[Algorithm, int, str], ...] = ()
    extra: dict[int, str] | None = None
    mapped: frozenset[int] = frozenset()


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


def _mapped_layout(header: list[str] | None, columns: ColumnMap, reading: _Reading) -> _Layout:
    """Where ``columns`` are in a file with ``header`` (by name), or without one."""
    names = None if header is None else [name.strip() for name in header]

    def index(column: Column, target: str) -> int:
        if isinstance(column, int):
            return column
        assert names is not None  # parse_columns gives positions exactly without a header
        return resolve(names, column, target, reading.name)

    fields = {target: index(column, target) for target, column in columns.fields}
    hashes = tuple(
        (algorithm, index(column, str(algorithm)), describe(column))
        for algorithm, column in columns.hashes
    )
    mapped = [*fields.values(), *(position for _, position, _ in hashes)]
    if len(set(mapped)) < len(mapped):
        raise ColumnMappingError(f"{reading.name}: two fields are mapped to the same column")
    extra: dict[int, str] | None = None  # without a header: every other column, by position
    if reading.drop_unmapped:
        extra = {}
    elif names is not None:
        extra = {i: name for i, name in enumerate(names) if name and i not in mapped}
    return _Layout(fields=fields, hashes=hashes, extra=extra, mapped=frozenset(mapped))


def _csv_rows(reader: Any, name: str) -> Iterator[list[str]]:
    """The rows of a csv reader; ``UnreadableList`` where the parser gives up."""
    while True:
        try:
            row: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UnreadableList(name, reader.line_num, f"cannot be read as CSV ({exc})") from None
        yield row


def _read_delimited(stream: TextIO, reading: _Reading) -> _RowOutcome:
    reader = csv.reader(stream, delimiter=reading.delimiter)
    rows = _csv_rows(reader, reading.name)
    columns = reading.columns
    width: int | None = None  # rows longer than the header are refused
    if columns is not None and not columns.header:
        layout = _mapped_layout(None, columns, reading)
    else:
        header = next(rows, None)
        if header is None:
            return
        width = len(header)
        if columns is not None:
            layout = _mapped_layout(header, columns, reading)
        else:
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
            layout = _Layout(fields=known, extra={} if reading.drop_unmapped else extra)
    widest = 0
    for row in rows:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        widest = max(widest, len(row))
        if width is not None and len(row) > width:
            yield line, InvalidRow(f"{len(row)} fields, but the header has {width}")
            continue
        try:
            yield line, _row_entries(row, layout, reading)
        except InvalidRow as exc:
            yield line, exc
    beyond = sorted(index + 1 for index in layout.mapped if index >= widest)
    if width is None and widest and beyond:
        raise ColumnMappingError(
            f"{reading.name}: no row has a column {beyond[0]} (the widest has {widest})"
        )


def _row_entries(row: list[str], layout: _Layout, reading: _Reading) -> list[BankEntry]:
    def cell(target: str) -> str | None:
        index = layout.fields.get(target)
        return row[index] if index is not None and index < len(row) else None

    metadata = _metadata(cell("metadata"))
    if layout.extra is None:
        extra = {i: f"column_{i + 1}" for i in range(len(row)) if i not in layout.mapped}
    else:
        extra = layout.extra
    for index, name in extra.items():
        if index < len(row) and row[index].strip():
            metadata.setdefault(name, row[index].strip())
    if layout.hashes:
        cells = [
            (algorithm, label, row[index] if index < len(row) else None)
            for algorithm, index, label in layout.hashes
        ]
        return _entries_per_algorithm(
            cells, entry_id=cell("entry_id"), category=cell("category"), metadata=metadata
        )
    return [
        _entry(
            algorithm=cell("algorithm"),
            value=cell("hash"),
            default_algorithm=reading.algorithm,
            entry_id=cell("entry_id"),
            category=cell("category"),
            metadata=metadata,
        )
    ]


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = parse_json(text)
    except json.JSONDecodeError as exc:
        raise InvalidRow(f"{what} is not valid JSON: {exc.msg}") from None
    check_depth(value, what)
    if not isinstance(value, dict):
        raise InvalidRow(f"{what} must be a JSON object")
    return value


def _metadata(text: str | None) -> dict[str, Any]:
    return _json_object(text, "metadata") if text is not None and text.strip() else {}


def _read_jsonl(stream: TextIO, reading: _Reading) -> _RowOutcome:
    columns = reading.columns
    seen: set[Column] = set()  # mapped keys found on some line
    objects = 0
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            obj = _json_object(raw, "the line")
            objects += 1
            if columns is None:
                yield number, [_jsonl_entry(obj, reading)]
            else:
                yield number, _jsonl_mapped(obj, columns, reading, seen)
        except InvalidRow as exc:
            yield number, exc
    if columns is not None and objects:
        missing = [(target, key) for target, key in columns.targets if key not in seen]
        if missing:
            target, key = missing[0]
            raise ColumnMappingError(
                f"{reading.name}: no line has the key {key!r} (mapped to {target})"
            )


def _merged_metadata(nested: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """Keys that fill no field, with a nested metadata object (which wins) merged in."""
    if nested is not None and not isinstance(nested, dict):
        raise InvalidRow("metadata must be a JSON object")
    return {**metadata, **(nested or {})}


def _jsonl_entry(obj: dict[str, Any], reading: _Reading) -> BankEntry:
    fields = dict.fromkeys(_COLUMN_ALIASES)
    metadata: dict[str, Any] = {}
    for key, value in obj.items():
        target = next(
            (name for name, aliases in _COLUMN_ALIASES.items() if key.lower() in aliases), None
        )
        if target is not None and fields[target] is None:
            fields[target] = value
        elif not reading.drop_unmapped:
            metadata[key] = value
    return _jsonl_single(fields, _merged_metadata(fields["metadata"], metadata), reading)


def _jsonl_single(
    fields: Mapping[str, Any], metadata: dict[str, Any], reading: _Reading
) -> BankEntry:
    if fields.get("algorithm") is not None and not isinstance(fields["algorithm"], str):
        raise InvalidRow("algorithm must be a string")
    value = fields.get("hash")
    if value is not None and not isinstance(value, str | list):
        raise InvalidRow("hash must be a string (or, for vpdq, a list)")
    return _entry(
        algorithm=fields.get("algorithm"),
        value=fields.get("hash"),
        default_algorithm=reading.algorithm,
        entry_id=fields.get("entry_id"),
        category=fields.get("category"),
        metadata=metadata,
    )


def _jsonl_mapped(
    obj: dict[str, Any], columns: ColumnMap, reading: _Reading, seen: set[Column]
) -> list[BankEntry]:
    used: set[str] = set()

    def take(column: Column) -> Any:
        assert isinstance(column, str)
        key = column
        if key not in obj:
            folded = [k for k in obj if k.casefold() == column.casefold()]
            if len(folded) > 1:
                raise InvalidRow(f"{len(folded)} keys match {column!r} when case is ignored")
            if not folded:
                return None
            key = folded[0]
        seen.add(column)
        used.add(key)
        return obj[key]

    fields = {target: take(column) for target, column in columns.fields}
    cells = [(algorithm, f"key {c!r}", take(c)) for algorithm, c in columns.hashes]
    unmapped = {} if reading.drop_unmapped else {k: v for k, v in obj.items() if k not in used}
    metadata = _merged_metadata(fields.get("metadata"), unmapped)
    if cells:
        return _entries_per_algorithm(
            cells,
            entry_id=fields.get("entry_id"),
            category=fields.get("category"),
            metadata=metadata,
        )
    return [_jsonl_single(fields, metadata, reading)]
