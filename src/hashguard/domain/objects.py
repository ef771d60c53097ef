"""An object in object storage (S3 and S3-compatible stores): its identity and its listing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectRef:
    """What names one object's content: ``(bucket, key, version_id, etag)``.

    ``version_id`` is ``None`` for an unversioned bucket (S3 says ``"null"``, kept as
    ``None``). The ETag is what was hashed: an object read for a scan is fetched with
    ``If-Match`` on it, so a result never names content it did not see. Quarantine,
    retro-matching and incremental rescans key on this identity.
    """

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` (``?versionId=…`` for a version): the item's path in a scan."""
        base = f"s3://{self.bucket}/{self.key}"
        return f"{base}?versionId={self.version_id}" if self.version_id else base


def object_to_json(ref: ObjectRef) -> dict[str, Any]:
    return {"bucket": ref.bucket, "key": ref.key, "version_id": ref.version_id, "etag": ref.etag}


def object_from_json(data: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(
        bucket=str(data["bucket"]),
        key=str(data["key"]),
        version_id=data.get("version_id"),
        etag=data.get("etag"),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ListedObject:
    """One row of a listing or an inventory: the identity and what filters see before
    anything is downloaded (size; the content type only after a HEAD)."""

    ref: ObjectRef
    size: int
    is_latest: bool = True
    content_type: str | None = None
