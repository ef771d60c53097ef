"""Undoing a case's quarantines when its content is no longer restricted: stopping those
still pending, putting back the files a scan moved, and queueing, once, the restore of
each object quarantined in object storage with the case's content (the dispatcher
carries it out: ``actions.objquarantine``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hashguard.actions.objquarantine import object_restore_action
from hashguard.actions.outbox import derived_key
from hashguard.actions.quarantine import QuarantineError, restore
from hashguard.domain.actions import ActionKind, ActionState, QuarantineState
from hashguard.domain.appeals import Restoration
from hashguard.domain.cases import Case, SourceKind
from hashguard.store import Store


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectRestore:
    """Where putting one quarantined object back stands: ``restored``, ``pending``
    (its restore is queued, not carried out yet) or ``failed`` (the restore was refused
    for good: ``note`` says why)."""

    uri: str
    state: Restoration
    note: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PutBack:
    """What one try at putting a case's content back did: one note per file or object,
    and the state it amounts to."""

    notes: tuple[str, ...]
    files: int
    failed: int
    pending: int

    @property
    def state(self) -> Restoration:
        if self.failed:
            return Restoration.FAILED
        if self.pending:
            return Restoration.PENDING
        return Restoration.RESTORED if self.notes else Restoration.NONE


# -- files a scan quarantined -------------------------------------------------------------


def _scan_quarantines(store: Store, case: Case) -> list[tuple[str, int, ActionState]]:
    """(path, action id, state) of each quarantine action a scan queued for the case."""
    found = []
    for source in case.sources:
        if source.kind is not SourceKind.SCAN or source.path is None:
            continue
        action = store.actions.find_by_key(
            derived_key(f"scan:{source.ref}:{source.path}", "quarantine")
        )
        if action is not None:
            found.append((source.path, action.id, action.state))
    return found


def quarantined_files(store: Store, case: Case) -> list[tuple[str, int]]:
    """(path, action id) of each of the case's files a scan put in quarantine."""
    return [
        (path, action_id)
        for path, action_id, _ in _scan_quarantines(store, case)
        if store.actions.quarantine_record(action_id) is not None
    ]


def _files_in_flight(store: Store, case: Case) -> list[str]:
    """The paths whose quarantine is still pending (not cancelled, not carried out)."""
    return [
        path
        for path, action_id, state in _scan_quarantines(store, case)
        if state is ActionState.PENDING and store.actions.quarantine_record(action_id) is None
    ]


# -- objects quarantined with the content -------------------------------------------------


def object_restores(
    store: Store, sha256: str, *, actor: str, at: datetime | None = None
) -> list[ObjectRestore]:
    """Queue, once, the restore of each object quarantined with the content ``sha256``
    (the outbox entry's idempotency key derives from the quarantine action: running this
    again queues nothing more) and say where each stands. A restore the dispatcher gave
    up on stays a dead letter (``hashguard actions retry ID`` queues it again)."""
    done = []
    for held in store.actions.object_quarantines(sha256=sha256):
        back = ObjectRestore(uri=held.uri, state=Restoration.RESTORED, note=f"{held.uri}: restored")
        if held.state is QuarantineState.RESTORED:
            done.append(back)
            continue
        action = object_restore_action(held, actor=actor)
        queued = store.actions.find_by_key(action.idempotency_key)
        if queued is None:
            action_id = store.actions.enqueue(action, at=at)
            note = f"{held.uri}: restore from {held.quarantine_uri} queued (action {action_id})"
            done.append(ObjectRestore(uri=held.uri, state=Restoration.PENDING, note=note))
        elif queued.state is ActionState.PENDING:
            note = (
                f"{held.uri}: restore from {held.quarantine_uri} queued (action {queued.id}), "
                "not carried out yet"
            )
            done.append(ObjectRestore(uri=held.uri, state=Restoration.PENDING, note=note))
        elif queued.state is ActionState.DEAD:
            note = (
                f"{held.uri}: not restored: {queued.last_error or 'the restore was given up'} "
                f"(action {queued.id}: hashguard actions retry {queued.id} queues it again)"
            )
            done.append(ObjectRestore(uri=held.uri, state=Restoration.FAILED, note=note))
        else:  # delivered after the record was read: it is back
            done.append(back)
    return done


def objects_in_flight(store: Store, sha256: str) -> list[str]:
    """The objects of the content ``sha256`` whose quarantine is pending and has not
    started moving (a dispatcher holds it, or it was queued again by hand)."""
    return [
        str(action.payload.get("uri") or f"action {action.id}")
        for action in store.actions.pending(ActionKind.OBJECT_QUARANTINE, sha256=sha256)
        if store.actions.object_quarantine(action.id) is None
    ]


# -- what a reversal calls ----------------------------------------------------------------


def holds_content(store: Store, case: Case) -> bool:
    """Whether a file of ``case`` or an object with its content went into quarantine."""
    return bool(
        quarantined_files(store, case) or store.actions.object_quarantines(sha256=case.content_key)
    )


def cancel_quarantines(unit: Store, case: Case, *, error: str, at: datetime) -> list[str]:
    """Stop the case's quarantines still pending, of its files and of objects with its
    content, in the caller's transaction (``error`` says why). The paths and objects of
    those a dispatcher holds right now (they finish; the caller puts them back
    afterwards). One already moving is left to finish: its copy may already stand for
    the original."""
    busy = []
    for path, action_id, state in _scan_quarantines(unit, case):
        if state is not ActionState.PENDING or unit.actions.quarantine_record(action_id):
            continue
        if not unit.actions.cancel(action_id, error=error, at=at):
            busy.append(path)
    for action in unit.actions.pending(ActionKind.OBJECT_QUARANTINE, sha256=case.content_key):
        if unit.actions.object_quarantine(action.id) is not None:
            continue
        if not unit.actions.cancel(action.id, error=error, at=at):
            busy.append(str(action.payload.get("uri") or f"action {action.id}"))
    return busy


def put_back(store: Store, case: Case, *, actor: str, at: datetime) -> PutBack:
    """Put back the case's files still in quarantine (a file now at the original path
    is never overwritten) and queue, once, each quarantined object's restore."""
    notes: list[str] = []
    failed = pending = 0
    for path, action_id in quarantined_files(store, case):
        held = store.actions.quarantine_record(action_id)
        if held is not None and held.state is QuarantineState.RESTORED:
            notes.append(f"{path}: restored")
            continue
        try:
            restored = restore(store.actions, action_id, actor=actor)
        except (QuarantineError, OSError) as exc:
            failed += 1
            notes.append(f"{path}: not restored: {exc}")
        else:
            notes.append(f"{restored.original_path}: restored")
    for path in _files_in_flight(store, case):
        failed += 1
        notes.append(f"{path}: not restored: its quarantine is still being carried out")
    files = len(notes)
    for put in object_restores(store, case.content_key, actor=actor, at=at):
        if put.state is Restoration.FAILED:
            failed += 1
        elif put.state is Restoration.PENDING:
            pending += 1
        notes.append(put.note)
    for uri in objects_in_flight(store, case.content_key):
        pending += 1  # its restore is queued once the quarantine is recorded
        notes.append(f"{uri}: not back yet: its quarantine is still being carried out")
    return PutBack(notes=tuple(notes), files=files, failed=failed, pending=pending)
