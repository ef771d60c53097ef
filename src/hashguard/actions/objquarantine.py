"""Quarantine in object storage: copy a matched object to the quarantine bucket, verify the
copy by SHA-256, then delete or tag the original; and put it back after a false positive.

The same rule as local quarantine (``actions.quarantine``): only the matched bytes move.
The original is read pinned to the version and ETag the scan read (``If-Match``) and its
SHA-256 must be the matched content's, or nothing is copied. The copy's key is derived
from the action id and recorded (state ``moving``) before it is written, so a dispatcher
killed at any step finishes the job on its next attempt: a verified copy already there
is not written again, an original already gone is not an error. With Object Lock
enabled on the quarantine bucket the copy is written with a legal hold; a store or
bucket without Object Lock gets a copy without one, and the record (and the audit
event) says why. The original is deleted (its version, in a versioned bucket) or tagged
``hashguard-quarantine=<action id>``, as ``quarantine_original`` says.

``ObjectRestoreDeliverer`` puts an object back (a reviewer's false positive): the copy,
checked by SHA-256 again, is written at its original key only if nothing is there now
(an object that has since appeared is never overwritten), or the tag is removed; then
the hold is released and the copy deleted. Both run through the outbox, so both are
retried with backoff and end as dead letters that say why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from hashguard.actions.delivery import Delivered, DeliveryResult, Permanent, Retry
from hashguard.actions.outbox import derived_key, webhook_actions
from hashguard.actions.quarantine import SHA256_HEX
from hashguard.domain.actions import (
    ActionKind,
    EventType,
    HoldKind,
    NewAction,
    ObjectQuarantineRecord,
    OriginalFate,
    OutboxAction,
    QuarantineState,
    WebhookEndpoint,
)
from hashguard.domain.objects import ObjectRef, object_from_json, object_to_json
from hashguard.settings import Settings
from hashguard.store.actions import ActionStore

#: the tag an original gets in ``tag`` mode
TAG_KEY = "hashguard-quarantine"
_GONE = {"404", "NoSuchKey", "NoSuchVersion"}
_CHANGED = {"412", "PreconditionFailed"}


class Refused(Exception):
    """Retrying cannot help (the object changed, is gone, or a restore would overwrite)."""


def object_quarantine_action(
    ref: ObjectRef, *, key: str, sha256: str | None, subject: str | None = None
) -> NewAction:
    """Quarantine the object ``ref`` if it still holds the matched content (``sha256``)."""
    return NewAction(
        kind=ActionKind.OBJECT_QUARANTINE,
        idempotency_key=derived_key(key, "object-quarantine"),
        payload={"object": object_to_json(ref), "uri": ref.uri, "sha256": sha256},
        subject=subject,
    )


def object_restore_action(record: ObjectQuarantineRecord, *, actor: str) -> NewAction:
    """Put the object of quarantine action ``record.action_id`` back (once)."""
    return NewAction(
        kind=ActionKind.OBJECT_RESTORE,
        idempotency_key=derived_key(f"object-quarantine:{record.action_id}", "restore"),
        payload={"quarantine_action": record.action_id, "uri": record.uri, "by": actor},
        subject=f"action:{record.action_id}",
    )


def quarantine_key(prefix: str, action_id: int) -> str:
    return f"{prefix}action-{action_id:012d}"


def _code(exc: Any) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code if code and not code.isdigit() else status or code


def _s3_errors() -> tuple[type[Exception], type[Exception]]:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - the s3 extra

    return ClientError, BotoCoreError


def _pinned(ref: ObjectRef) -> dict[str, Any]:
    args: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        args["VersionId"] = ref.version_id
    return args


def _read(client: Any, args: Mapping[str, Any]) -> bytes:
    body = client.get_object(**args)["Body"]
    try:
        data: bytes = body.read()
    finally:
        body.close()
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hold_support(client: Any, bucket: str, *, wanted: bool) -> tuple[HoldKind, str | None]:
    """Whether copies in ``bucket`` can get a legal hold, and why not when they cannot."""
    if not wanted:
        return HoldKind.NONE, "legal holds are switched off (quarantine_legal_hold = false)"
    client_error, _ = _s3_errors()
    try:
        answer = client.get_object_lock_configuration(Bucket=bucket)
    except client_error as exc:
        code = _code(exc)
        if code == "ObjectLockConfigurationNotFoundError":
            return HoldKind.NONE, (
                f"the quarantine bucket {bucket} has no Object Lock (create it with Object "
                "Lock enabled for legal holds)"
            )
        return HoldKind.NONE, f"the store does not support Object Lock here ({code})"
    enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
    if not enabled:
        return HoldKind.NONE, f"Object Lock is not enabled on the quarantine bucket {bucket}"
    return HoldKind.LEGAL_HOLD, None


class ObjectQuarantineDeliverer:
    """Carries out ``object_quarantine`` actions (see the module docstring); on success,
    ``content.quarantined`` webhooks follow in the transaction that records it."""

    def __init__(
        self,
        store: ActionStore,
        client: Callable[[], Any],
        *,
        bucket: str | None,
        prefix: str,
        original: OriginalFate,
        legal_hold: bool,
        endpoints: Mapping[str, WebhookEndpoint],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cleared: Callable[[str], bool] = lambda _sha256: False,
    ) -> None:
        self._store = store
        self._client = client
        #: whether content (by SHA-256) was since decided a false positive
        self._cleared = cleared
        self._bucket = bucket
        self._prefix = prefix
        self._original = original
        self._legal_hold = legal_hold
        self._endpoints = endpoints
        self._clock = clock

    def deliver(self, action: OutboxAction) -> DeliveryResult:
        if self._bucket is None:
            return Permanent("no quarantine_bucket is configured: nothing moved")
        try:
            ref = object_from_json(action.payload["object"])
        except (KeyError, TypeError):
            return Permanent("the quarantine action names no object")
        expected = action.payload.get("sha256")
        if not isinstance(expected, str) or not SHA256_HEX.fullmatch(expected):
            return Permanent("the quarantine action carries no SHA-256 of the matched content")
        try:
            client = self._client()
            client_error, boto_error = _s3_errors()
        except Exception as exc:  # noqa: BLE001 - the s3 extra or the store's configuration
            return Permanent(f"object storage is not available: {exc}")
        try:
            record = self._quarantine(client, action.id, ref, expected)
        except Refused as exc:
            return Permanent(str(exc))
        except (client_error, boto_error) as exc:
            return Retry(f"the object store: {_code(exc) or exc}")
        data = {
            "action_id": action.id,
            "object": record.uri,
            "sha256": record.sha256,
            "size": record.size,
            "quarantine": record.quarantine_uri,
            "hold": str(record.lock),
            "original": str(record.original),
        }
        followups = webhook_actions(
            EventType.CONTENT_QUARANTINED,
            data,
            self._endpoints.values(),
            key=f"quarantine:{action.idempotency_key}",
            subject=action.subject,
            at=self._clock(),
        )
        return Delivered(tuple(followups))

    def _quarantine(
        self, client: Any, action_id: int, ref: ObjectRef, sha256: str
    ) -> ObjectQuarantineRecord:
        assert self._bucket is not None
        record = self._store.object_quarantine(action_id)
        data: bytes | None = None
        if record is None:
            if self._cleared(sha256):
                raise Refused(
                    "the content was decided a false positive before it was moved: nothing moved"
                )
            data = self._matched_original(client, ref, sha256)
            record = self._store.begin_object_quarantine(
                ObjectQuarantineRecord(
                    action_id=action_id,
                    state=QuarantineState.MOVING,
                    bucket=ref.bucket,
                    key=ref.key,
                    version_id=ref.version_id,
                    etag=ref.etag,
                    sha256=sha256,
                    size=len(data),
                    quarantine_bucket=self._bucket,
                    quarantine_key=quarantine_key(self._prefix, action_id),
                    quarantine_version_id=None,
                    lock=HoldKind.NONE,
                    lock_note=None,
                    original=self._original,
                    created_at=self._clock(),
                )
            )
        if record.state is not QuarantineState.MOVING:
            return record  # done by an attempt whose outcome was not recorded
        if not self._copy_verified(client, record):
            if data is None:
                try:
                    data = self._matched_original(client, ref, sha256)
                except Refused:
                    self._store.drop_object_moving(action_id)
                    raise
            self._copy(client, record, data)
        self._dispose_original(client, action_id, ref, record.original)
        found = self._store.object_quarantine(action_id)
        assert found is not None
        return found

    def _matched_original(self, client: Any, ref: ObjectRef, sha256: str) -> bytes:
        client_error, _ = _s3_errors()
        args = _pinned(ref)
        if ref.etag:
            args["IfMatch"] = f'"{ref.etag}"'
        try:
            data = _read(client, args)
        except client_error as exc:
            code = _code(exc)
            if code in _GONE:
                raise Refused(f"{ref.uri} is gone: nothing to quarantine") from None
            if code in _CHANGED:
                raise Refused(
                    f"{ref.uri} changed since it was scanned (its ETag differs): nothing moved"
                ) from None
            raise
        if _sha256(data) != sha256:
            raise Refused(
                f"{ref.uri} does not hold the matched content (its SHA-256 differs): nothing moved"
            )
        return data

    def _copy_verified(self, client: Any, record: ObjectQuarantineRecord) -> bool:
        """Whether a copy with the matched bytes is already in quarantine."""
        client_error, _ = _s3_errors()
        args: dict[str, Any] = {"Bucket": record.quarantine_bucket, "Key": record.quarantine_key}
        if record.quarantine_version_id:
            args["VersionId"] = record.quarantine_version_id
        try:
            return _sha256(_read(client, args)) == record.sha256
        except client_error as exc:
            if _code(exc) in _GONE:
                return False
            raise

    def _copy(self, client: Any, record: ObjectQuarantineRecord, data: bytes) -> None:
        hold, note = hold_support(client, record.quarantine_bucket, wanted=self._legal_hold)
        extra: dict[str, Any] = {}
        if hold is HoldKind.LEGAL_HOLD:
            extra["ObjectLockLegalHoldStatus"] = "ON"
        written = client.put_object(
            Bucket=record.quarantine_bucket,
            Key=record.quarantine_key,
            Body=data,
            Metadata={"sha256": record.sha256, "action": str(record.action_id)},
            **extra,
        )
        version = written.get("VersionId")
        version = None if version in (None, "null") else str(version)
        args: dict[str, Any] = {"Bucket": record.quarantine_bucket, "Key": record.quarantine_key}
        if version:
            args["VersionId"] = version
        if _sha256(_read(client, args)) != record.sha256:
            raise Refused("the copy in quarantine does not hold the matched bytes; original kept")
        self._store.note_object_copy(record.action_id, version_id=version, lock=hold, note=note)

    def _dispose_original(
        self, client: Any, action_id: int, ref: ObjectRef, fate: OriginalFate
    ) -> None:
        client_error, _ = _s3_errors()
        try:
            if fate is OriginalFate.TAG:
                client.put_object_tagging(
                    **_pinned(ref),
                    Tagging={"TagSet": [{"Key": TAG_KEY, "Value": str(action_id)}]},
                )
                return
            if not ref.version_id and ref.etag:
                # an unversioned key: delete it only if it still holds what was copied
                client.head_object(Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"')
            client.delete_object(**_pinned(ref))
        except client_error as exc:
            code = _code(exc)
            if code in _GONE:
                return  # gone already (an earlier attempt, or the platform)
            if code in _CHANGED:
                raise Refused(
                    f"the object at {ref.uri} changed after the matched bytes were copied into "
                    "quarantine: the copy is kept, the object now at the key was left alone"
                ) from None
            raise


class ObjectRestoreDeliverer:
    """Carries out ``object_restore`` actions (a false positive): see the module docstring."""

    def __init__(self, store: ActionStore, client: Callable[[], Any]) -> None:
        self._store = store
        self._client = client

    def deliver(self, action: OutboxAction) -> DeliveryResult:
        try:
            quarantined = int(action.payload["quarantine_action"])
        except (KeyError, TypeError, ValueError):
            return Permanent("the restore action names no quarantine action")
        record = self._store.object_quarantine(quarantined)
        if record is None:
            return Permanent(f"action {quarantined} put nothing in quarantine")
        if record.state is QuarantineState.MOVING:
            return Retry(f"the quarantine of action {quarantined} is still being carried out")
        if record.state is QuarantineState.RESTORED:
            return Delivered()
        try:
            client = self._client()
            client_error, boto_error = _s3_errors()
        except Exception as exc:  # noqa: BLE001 - the s3 extra or the store's configuration
            return Permanent(f"object storage is not available: {exc}")
        try:
            self._restore(client, record)
        except Refused as exc:
            return Permanent(str(exc))
        except (client_error, boto_error) as exc:
            return Retry(f"the object store: {_code(exc) or exc}")
        return Delivered()

    def _restore(self, client: Any, record: ObjectQuarantineRecord) -> None:
        client_error, _ = _s3_errors()
        ref = ObjectRef(
            bucket=record.bucket, key=record.key, version_id=record.version_id, etag=record.etag
        )
        copy: dict[str, Any] = {"Bucket": record.quarantine_bucket, "Key": record.quarantine_key}
        if record.quarantine_version_id:
            copy["VersionId"] = record.quarantine_version_id
        if record.original is OriginalFate.TAG:
            try:
                client.delete_object_tagging(**_pinned(ref))
            except client_error as exc:
                if _code(exc) not in _GONE:
                    raise
        else:
            self._put_back(client, record, copy)
        self._release(client, record, copy)

    def _put_back(
        self, client: Any, record: ObjectQuarantineRecord, copy: Mapping[str, Any]
    ) -> None:
        client_error, _ = _s3_errors()
        try:
            now_there = _read(client, {"Bucket": record.bucket, "Key": record.key})
        except client_error as exc:
            if _code(exc) not in _GONE:
                raise
            now_there = None
        if now_there is not None:
            if _sha256(now_there) == record.sha256:
                return  # put back by an attempt whose outcome was not recorded
            raise Refused(f"an object now exists at {record.uri}; not overwriting it")
        try:
            data = _read(client, dict(copy))
        except client_error as exc:
            if _code(exc) in _GONE:
                raise Refused(f"the copy {record.quarantine_uri} is gone") from None
            raise
        if _sha256(data) != record.sha256:
            raise Refused(f"the copy {record.quarantine_uri} does not hold the quarantined bytes")
        client.put_object(Bucket=record.bucket, Key=record.key, Body=data)

    def _release(
        self, client: Any, record: ObjectQuarantineRecord, copy: Mapping[str, Any]
    ) -> None:
        """Lift the legal hold and delete the copy (it is back, or never left)."""
        client_error, _ = _s3_errors()
        try:
            if record.lock is HoldKind.LEGAL_HOLD:
                client.put_object_legal_hold(**copy, LegalHold={"Status": "OFF"})
            client.delete_object(**copy)
        except client_error as exc:
            if _code(exc) not in _GONE:
                raise


def bucket_readiness(settings: Settings) -> tuple[bool | None, str]:
    """``hashguard doctor``'s view of the quarantine bucket: ``(True, why)`` ready,
    ``(None, why)`` usable without legal holds, ``(False, why)`` not usable."""
    if not settings.quarantine_objects:
        return True, "off (quarantine_objects = false)"
    bucket = settings.quarantine_bucket
    if bucket is None:
        return False, "quarantine_objects is on but no quarantine_bucket is configured"
    try:
        from hashguard.scan.objects import ObjectStore  # noqa: PLC0415 - the s3 extra

        client = ObjectStore(endpoint_url=settings.s3_endpoint_url, attempts=2).client
        client_error, boto_error = _s3_errors()
    except Exception as exc:  # noqa: BLE001 - the extra, or a bad configuration
        return False, f"object storage is not available: {exc}"
    try:
        client.head_bucket(Bucket=bucket)
        hold, note = hold_support(client, bucket, wanted=settings.quarantine_legal_hold)
    except (client_error, boto_error) as exc:
        return False, f"the quarantine bucket {bucket} cannot be reached: {_code(exc) or exc}"
    if hold is HoldKind.NONE:
        return None, f"{bucket}: copies get no legal hold: {note}"
    return True, f"{bucket}: Object Lock on, copies get a legal hold"
