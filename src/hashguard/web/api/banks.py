"""/v1/banks: create, configure, import and edit banks. No route ever returns a bank's hashes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.audit import token_actor
from hashguard.banks.columns import (
    COLUMNS_MAX_LENGTH,
    COLUMNS_PATTERN,
    ColumnMappingError,
    Preset,
)
from hashguard.banks.formats import InvalidRow, ListFormat, UnreadableList, parse_signal
from hashguard.banks.importer import EmptyList, NewBank
from hashguard.domain.banks import BANK_NAME_PATTERN, MAX_PDQ_THRESHOLD, BankEntry, BankKind
from hashguard.domain.policy import Action, BankPolicy, InvalidPolicy
from hashguard.domain.signals import Algorithm
from hashguard.domain.text import printable
from hashguard.domain.tokens import Scope, Token
from hashguard.domain.video import parse_vpdq_features, vpdq_digest
from hashguard.services import banks as service
from hashguard.store.banks import KEEP, BankExists, UnknownBank
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.banks import (
    BankIn,
    BankOut,
    BankPatch,
    EntriesIn,
    EntriesOut,
    ImportOut,
    RemoveIn,
    RowErrorOut,
)
from hashguard.web.schemas.fields import NO_NUL
from hashguard.web.services import Services
from hashguard.web.uploads import read_upload

router = APIRouter(prefix="/v1/banks", tags=["banks"])

Reader = Annotated[Token, Depends(require(Scope.BANKS_READ))]
Writer = Annotated[Token, Depends(require(Scope.BANKS_WRITE))]
Svc = Annotated[Services, Depends(services)]
BankName = Annotated[str, Path(pattern=BANK_NAME_PATTERN)]
Note = Annotated[str | None, Query(max_length=1000, pattern=NO_NUL)]

_LIST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "minLength": 1}},
                }
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary", "minLength": 1}
            },
        },
    }
}


def _unknown(exc: UnknownBank) -> ProblemError:
    return ProblemError(404, "Not found", str(exc))


def _invalid(exc: InvalidPolicy) -> ProblemError:
    return ProblemError(422, "Invalid request", str(exc))


@router.get("", response_model=list[BankOut])
def list_banks(_: Reader, svc: Svc) -> list[BankOut]:
    """Every bank with its settings, provenance and live entry counts."""
    return [BankOut.of(svc.store.banks.stats(bank.name)) for bank in svc.store.banks.list()]


@router.post("", response_model=BankOut, status_code=201, responses=problem_responses(409))
def create_bank(body: BankIn, token: Writer, svc: Svc) -> BankOut:
    try:
        policy = BankPolicy(
            auto_max_distance=body.auto_max_distance,
            review_max_distance=body.review_max_distance,
            exact_action=Action(body.exact_action),
            shadow=body.shadow,
        )
        service.create_bank(
            svc.store,
            token_actor(token),
            body.name,
            kind=body.kind,
            enabled=body.enabled,
            pdq_threshold=body.pdq_threshold,
            source=body.source,
            licence=body.licence,
            policy=policy,
        )
    except BankExists as exc:
        raise ProblemError(409, "Conflict", str(exc)) from None
    except InvalidPolicy as exc:
        raise _invalid(exc) from None
    return BankOut.of(svc.store.banks.stats(body.name))


@router.get("/{name}", response_model=BankOut, responses=problem_responses(404))
def show_bank(name: BankName, _: Reader, svc: Svc) -> BankOut:
    """Counts, provenance and settings of one bank (never its hashes)."""
    try:
        return BankOut.of(svc.store.banks.stats(name))
    except UnknownBank as exc:
        raise _unknown(exc) from None


@router.patch("/{name}", response_model=BankOut, responses=problem_responses(404))
def configure_bank(name: BankName, body: BankPatch, token: Writer, svc: Svc) -> BankOut:
    """Change settings; matching and the policy use them at once, on every server within
    seconds. For ``auto_max_distance`` and ``review_max_distance``, an explicit null is
    a value (no automatic PDQ band; review up to the threshold)."""
    given = body.model_fields_set
    changes = service.BankChanges(
        enabled=body.enabled,
        pdq_threshold=body.pdq_threshold,
        kind=body.kind,
        source=body.source,
        licence=body.licence,
        auto_max_distance=body.auto_max_distance if "auto_max_distance" in given else KEEP,
        review_max_distance=body.review_max_distance if "review_max_distance" in given else KEEP,
        exact_action=Action(body.exact_action) if body.exact_action else None,
        shadow=body.shadow,
        vpdq_query_percent=body.vpdq_query_percent,
        vpdq_compared_percent=body.vpdq_compared_percent,
    )
    try:
        service.configure_bank(svc.store, token_actor(token), name, changes)
        return BankOut.of(svc.store.banks.stats(name))
    except UnknownBank as exc:
        raise _unknown(exc) from None
    except InvalidPolicy as exc:
        raise _invalid(exc) from None


@router.delete("/{name}", status_code=204, responses=problem_responses(404))
def delete_bank(name: BankName, token: Writer, svc: Svc) -> Response:
    try:
        service.delete_bank(svc.store, token_actor(token), name)
    except UnknownBank as exc:
        raise _unknown(exc) from None
    return Response(status_code=204)


@router.post(
    "/{name}/import",
    response_model=ImportOut,
    openapi_extra=_LIST_BODY,
    responses=problem_responses(404, 409),
)
async def import_bank(
    request: Request,
    name: BankName,
    token: Writer,
    svc: Svc,
    list_format: Annotated[ListFormat, Query(alias="format")],
    algorithm: Algorithm | None = None,
    version: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    source: Note = None,
    licence: Note = None,
    skip_invalid: bool = False,
    allow_empty: bool = False,
    create: bool = False,
    kind: BankKind = BankKind.KNOWN,
    threshold: Annotated[int, Query(ge=0, le=MAX_PDQ_THRESHOLD)] = 31,
    columns: Annotated[
        str | None, Query(max_length=COLUMNS_MAX_LENGTH, pattern=COLUMNS_PATTERN)
    ] = None,
    preset: Preset | None = None,
    no_header: bool = False,
    drop_unmapped: bool = False,
) -> ImportOut:
    """Import a list file as the bank's new version: entries missing from it are
    tombstoned. With any invalid row, nothing is imported (``applied: false``, every
    bad row named by line) unless ``skip_invalid``. A list without a valid entry would
    empty the bank: it is refused with 409 unless ``allow_empty``. ``create`` makes a
    missing bank.

    ``columns`` (``field=COLUMN,…``, as ``hashguard banks import --columns``) or
    ``preset`` say which column fills which field instead of header names; with
    ``no_header`` the CSV/TSV has no header row and columns are 1-based positions;
    ``drop_unmapped`` keeps other columns out of the metadata. A mapping that cannot
    apply to the list imports nothing, like an invalid row: ``applied: false`` and the
    reason as an error of line 0."""
    upload = await read_upload(request)
    if not upload.data:
        raise ProblemError(400, "Bad request", "the request carries no list file")
    filename = upload.fields.get("filename", f"upload.{list_format}")
    asked = service.ImportRequest(
        list_format=list_format,
        algorithm=algorithm,
        version=version,
        source=source,
        licence=licence,
        skip_invalid=skip_invalid,
        allow_empty=allow_empty,
        create=NewBank(kind=kind, pdq_threshold=threshold) if create else None,
        columns=columns,
        preset=preset,
        header=not no_header,
        drop_unmapped=drop_unmapped,
    )
    try:
        report = await run_in_threadpool(
            service.import_upload,
            svc.store,
            token_actor(token),
            name,
            upload.data,
            filename,
            asked,
        )
    except UnknownBank as exc:
        raise _unknown(exc) from None
    except EmptyList as exc:
        raise ProblemError(409, "Conflict", str(exc)) from None
    except ColumnMappingError as exc:
        return _not_applied(name, version, filename, str(exc))
    except UnreadableList as exc:  # the file, not a row: nothing imported, the line named
        raise ProblemError(422, "Invalid request", printable(str(exc))) from None
    return ImportOut.of(report)


def _not_applied(bank: str, version: str | None, filename: str, reason: str) -> ImportOut:
    return ImportOut(
        bank=bank,
        version=version,
        applied=False,
        rows=0,
        added=0,
        updated=0,
        unchanged=0,
        removed=0,
        restored=0,
        duplicates=0,
        errors=[RowErrorOut(file=filename, line=0, reason=reason)],
    )


def _entries(body: EntriesIn) -> list[BankEntry]:
    entries = []
    for number, item in enumerate(body.entries):
        algorithm = Algorithm(item.algorithm)
        try:
            if isinstance(item.hash, list):
                # the schema checked each frame; an entry without a usable frame (one a
                # list file would refuse) is kept: it can never match
                frames = parse_vpdq_features(item.hash)
                value = vpdq_digest(frames)
            else:
                value, frames = parse_signal(algorithm, item.hash)
        except (InvalidRow, ValueError) as exc:
            raise ProblemError(
                422, "Invalid request", f"entries[{number}]: {printable(str(exc))}"
            ) from None
        entries.append(
            BankEntry(
                algorithm=algorithm,
                value=value,
                entry_id=item.entry_id,
                category=item.category,
                metadata=item.metadata,
                frames=frames,
            )
        )
    return entries


@router.post("/{name}/entries", response_model=EntriesOut, responses=problem_responses(404))
def add_entries(name: BankName, body: EntriesIn, token: Writer, svc: Svc) -> EntriesOut:
    """Add or update entries, leaving the bank's other entries as they are."""
    entries = _entries(body)
    try:
        counts = service.add_entries(svc.store, token_actor(token), name, entries)
    except UnknownBank as exc:
        raise _unknown(exc) from None
    return EntriesOut(
        added=counts.added,
        updated=counts.updated,
        unchanged=counts.unchanged,
        restored=counts.restored,
    )


@router.post(
    "/{name}/entries/remove",
    response_model=EntriesOut,
    responses=problem_responses(404),
)
def remove_entries(name: BankName, body: RemoveIn, token: Writer, svc: Svc) -> EntriesOut:
    """Tombstone entries (kept on record as removed, no longer matched)."""
    signals = [(Algorithm(item.algorithm), item.hash.lower()) for item in body.entries]
    try:
        removed = service.remove_entries(svc.store, token_actor(token), name, signals)
    except UnknownBank as exc:
        raise _unknown(exc) from None
    return EntriesOut(removed=removed)
