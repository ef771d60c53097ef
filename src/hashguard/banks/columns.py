"""Column mappings: which column of a partner's list export fills which entry field.

An operator imports the export as it is (``--columns hash=MD5Hash,category=Category``,
or ``md5=MD5,sha1=SHA1`` for a row carrying several hashes) instead of editing it.
A mapping is checked on its own here, then against the file by the reader
(formats.py); either check that fails is one error, raised before anything is imported.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from enum import StrEnum

from hashguard.domain.signals import Algorithm

#: The fields a mapping fills (formats.py reads the same ones by header name); besides
#: these, a column per algorithm (``md5=…``) holds hashes of that algorithm.
FIELDS = ("algorithm", "hash", "entry_id", "category", "metadata")

#: The API's pattern for a mapping: printable, one ``=`` at least; parse_columns decides.
COLUMNS_PATTERN = r"^[^\x00-\x1f\x7f]*=[^\x00-\x1f\x7f]*$"
COLUMNS_MAX_LENGTH = 2000

_ALGORITHMS = frozenset(algorithm.value for algorithm in Algorithm)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX = re.compile(r"[0-9a-f]+")


class ColumnMappingError(ValueError):
    """A column mapping that cannot apply, to any file or to this one: nothing is read."""


#: A header name or JSON key; in a file read without a header, a 0-based position.
Column = str | int


@dataclass(frozen=True, kw_only=True, slots=True)
class ColumnMap:
    """Which source column fills which field, in place of header-name detection.

    ``fields`` fill the fields of ``FIELDS``. ``hashes`` are columns that each hold
    hashes of one algorithm: a row yields one entry per non-empty one, all with the
    row's entry id, category and metadata. A mapping has ``hash`` (with an optional
    ``algorithm``) or ``hashes``, never both. With ``header=False`` the file has no
    header row and columns are positions.
    """

    fields: tuple[tuple[str, Column], ...] = ()
    hashes: tuple[tuple[Algorithm, Column], ...] = ()
    header: bool = True

    @property
    def targets(self) -> tuple[tuple[str, Column], ...]:
        """Every (field or algorithm name, column) pair, for messages."""
        return self.fields + tuple((str(a), column) for a, column in self.hashes)


class Preset(StrEnum):
    """Column mappings of list exports whose layout is publicly documented."""

    #: ``threatexchange dataset -P --csv`` (python-threatexchange): the columns
    #: signal_type, signal_str, collab, category, tags; collab and tags become metadata.
    THREATEXCHANGE_CSV = "threatexchange-csv"


_PRESETS = {
    Preset.THREATEXCHANGE_CSV: "algorithm=signal_type,hash=signal_str,category=category",
}


def column_map(
    columns: str | None = None, *, preset: Preset | None = None, header: bool = True
) -> ColumnMap | None:
    """The mapping an operator asked for, checked; ``None`` for header-name detection."""
    if columns is not None and preset is not None:
        raise ColumnMappingError("give a column mapping or a preset, not both")
    if preset is not None:
        if not header:
            raise ColumnMappingError(f"preset {preset} names header columns; the file needs one")
        return parse_columns(_PRESETS[preset])
    if columns is None:
        if not header:
            raise ColumnMappingError(
                "a file without a header needs a column mapping by position, such as hash=1"
            )
        return None
    return parse_columns(columns, header=header)


def parse_columns(text: str, *, header: bool = True) -> ColumnMap:
    """Read ``field=COLUMN,…``. A pair whose column name holds a comma is quoted whole,
    as in CSV (``"category=Class, main"``). Without a header, columns are 1-based."""
    if _CONTROL.search(text):
        raise ColumnMappingError("column mapping: control characters are not allowed")
    try:
        rows = list(csv.reader([text], skipinitialspace=True, strict=True))
    except csv.Error as exc:
        raise ColumnMappingError(f"column mapping: {exc}") from None
    fields: dict[str, Column] = {}
    hashes: dict[Algorithm, Column] = {}
    owners: dict[Column, str] = {}
    for item in rows[0] if rows else []:
        name, equals, column_text = item.partition("=")
        target, column_text = name.strip().lower(), column_text.strip()
        if not equals or not target or not column_text:
            raise ColumnMappingError(f"column mapping: {item!r} is not field=COLUMN")
        column = _column(column_text, header)
        if target in fields or target in hashes:
            raise ColumnMappingError(f"column mapping: {target} is mapped twice")
        if column in owners:
            raise ColumnMappingError(
                f"column mapping: {describe(column)} is mapped to both {owners[column]} "
                f"and {target}"
            )
        owners[column] = target
        if target in FIELDS:
            fields[target] = column
        elif target in _ALGORITHMS:
            hashes[Algorithm(target)] = column
        else:
            raise ColumnMappingError(
                f"column mapping: unknown field {target!r}; fields are "
                f"{', '.join(FIELDS)}, or an algorithm ({', '.join(Algorithm)}) for a "
                "column of its hashes"
            )
    if hashes and ("hash" in fields or "algorithm" in fields):
        raise ColumnMappingError(
            "column mapping: map hash= (with an optional algorithm=) or a column per "
            "algorithm (md5=, sha1=, sha256=, pdq=), not both"
        )
    if not hashes and "hash" not in fields:
        raise ColumnMappingError(
            "column mapping: no hash column; map hash=COLUMN, or a column per algorithm "
            "such as md5=COLUMN"
        )
    return ColumnMap(fields=tuple(fields.items()), hashes=tuple(hashes.items()), header=header)


def _column(text: str, header: bool) -> Column:
    if header:
        return text
    if not (text.isascii() and text.isdigit()):
        raise ColumnMappingError(
            f"column mapping: without a header, columns are 1-based positions, not {text!r}"
        )
    if int(text) < 1:
        raise ColumnMappingError("column mapping: positions start at 1")
    return int(text) - 1


def describe(column: Column) -> str:
    return f"column {column + 1}" if isinstance(column, int) else f"column {column!r}"


def shown(name: str) -> str:
    """A name from a list file, for a message: a hash (a data row read as a header, or
    swapped columns) is not echoed; hashes are confidential even to error messages."""
    if len(name) >= 16 and _HEX.fullmatch(name.lower()):
        return "(a hex value)"
    return repr(name if len(name) <= 60 else name[:60] + "…")


def resolve(names: list[str], column: str, target: str, file: str) -> int:
    """The index of the header column ``column`` names: exact, else ignoring case."""
    found = [i for i, name in enumerate(names) if name == column]
    if not found:
        folded = column.casefold()
        found = [i for i, name in enumerate(names) if name.casefold() == folded]
    if len(found) == 1:
        return found[0]
    if found:
        raise ColumnMappingError(
            f"{file}: the header has {len(found)} columns named {column!r} (mapped to {target})"
        )
    listed = ", ".join(shown(name) for name in names[:30]) + (", …" if len(names) > 30 else "")
    hint = " (positions need a file read without a header)" if column.isdigit() else ""
    raise ColumnMappingError(
        f"{file}: the header has no column {column!r} (mapped to {target}); "
        f"its columns are {listed}{hint}"
    )
