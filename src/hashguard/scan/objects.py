"""Object storage (S3 and S3-compatible stores) as a scan's source: listing, inventories,
reading objects, retries and the request rate.

boto3 is the ``s3`` extra: this module imports it when a bucket is opened, so the server
and the plain CLI start without it (``need_boto3`` says which extra to install).

Credentials come from boto3's standard chain (environment, shared files, instance or
container roles); ``endpoint_url`` points it at an S3-compatible store. Every request
goes through botocore's retries in ``adaptive`` mode: a throttled answer (``SlowDown``,
503) is retried with exponential backoff and makes the client's own rate limiter send
more slowly from then on. ``rate`` caps the requests per second on top of that.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from hashguard.domain.objects import ListedObject, ObjectRef

#: keys per LIST page (S3's maximum; tests use a smaller page)
LIST_PAGE = 1000
#: attempts per request, the first included (botocore's retries, adaptive mode)
ATTEMPTS = 8


class NeedsExtra(RuntimeError):
    """An optional dependency is missing; the message names the extra to install."""


class Unreadable(OSError):
    """An object could not be read (refused, gone, changed since listing, cut short)."""


class BadInventory(ValueError):
    """An inventory manifest or data file that does not follow S3 Inventory's format."""


def need_boto3() -> Any:
    try:
        import boto3  # noqa: PLC0415 - the s3 extra, only when a bucket is scanned
    except ImportError:
        raise NeedsExtra(
            "scanning object storage needs the s3 extra: pip install 'hashguard[s3]'"
        ) from None
    return boto3


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as ``(bucket, prefix)``."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/prefix address: {uri}")
    return parts.netloc, parts.path.removeprefix("/")


def is_object_uri(text: str) -> bool:
    return text.startswith("s3://")


class RateLimit:
    """At most ``rate`` requests per second over all threads (``None``: no cap). Each
    request takes the next free slot and waits for it; the clock and the wait are
    injectable."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, **_event: Any) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


@dataclass
class Requests:
    """Requests sent, by operation, and the retries throttling or errors caused."""

    sent: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, operation: str) -> None:
        with self._lock:
            self.sent[operation] = self.sent.get(operation, 0) + 1

    def answered(self, *, retries: int, throttled: bool) -> None:
        with self._lock:
            self.retried += retries
            self.throttled += int(throttled)


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


def _version(value: str | None) -> str | None:
    return None if value in (None, "", "null") else value


class ObjectStore:
    """One S3 client (thread-safe) with retries, the rate cap and request counts."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        rate: float | None = None,
        attempts: int = ATTEMPTS,
        connections: int = 32,
        page_size: int = LIST_PAGE,
        client: Any = None,
    ) -> None:
        self.requests = Requests()
        self.page_size = page_size
        if client is None:
            boto3 = need_boto3()
            from botocore.config import Config  # noqa: PLC0415 - with boto3

            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(
                    retries={"max_attempts": attempts, "mode": "adaptive"},
                    max_pool_connections=connections,
                    connect_timeout=10,
                    read_timeout=60,
                ),
            )
        self.client = client
        self._limit = RateLimit(rate)
        events = client.meta.events
        events.register("before-send.s3", self._limit.wait)
        events.register("before-call.s3", self._before_call)
        events.register_first("needs-retry.s3", self._answered)

    def _before_call(self, model: Any, **_kwargs: Any) -> None:
        self.requests.count(model.name)

    def _answered(self, response: Any = None, attempts: int = 1, **_kwargs: Any) -> None:
        """Counts retries (before botocore's handler decides on one; returns nothing)."""
        if response is None:
            return
        http, parsed = response
        code = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        if http.status_code >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout"):
            self.requests.answered(retries=1, throttled=code == "SlowDown")

    # -- listing ---------------------------------------------------------------------

    def list(self, bucket: str, prefix: str, *, versions: bool) -> Iterator[ListedObject]:
        """Every object under ``prefix``: the current ones (ListObjectsV2), or with
        ``versions`` every version that is not a delete marker (ListObjectVersions)."""
        config = {"PageSize": self.page_size}
        if not versions:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig=config
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    yield ListedObject(
                        ref=ObjectRef(bucket=bucket, key=item["Key"], etag=_etag(item["ETag"])),
                        size=int(item["Size"]),
                    )
            return
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig=config
        )
        for page in pages:
            for item in page.get("Versions", ()):
                yield ListedObject(
                    ref=ObjectRef(
                        bucket=bucket,
                        key=item["Key"],
                        version_id=_version(item.get("VersionId")),
                        etag=_etag(item["ETag"]),
                    ),
                    size=int(item["Size"]),
                    is_latest=bool(item.get("IsLatest", True)),
                )

    def inventory(self, manifest_uri: str, *, prefix: str = "") -> Iterator[ListedObject]:
        """The objects an S3 Inventory lists (``manifest.json``; CSV or Parquet data
        files, each checked against the manifest's MD5), under ``prefix``, without
        delete markers."""
        bucket, key = split_uri(manifest_uri)
        manifest = json.loads(self._read(bucket, key))
        yield from read_inventory(manifest, self._read, prefix=prefix)

    def _read(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    # -- objects ---------------------------------------------------------------------

    def content_type(self, ref: ObjectRef) -> str | None:
        """The object's Content-Type (a HEAD request: nothing is downloaded)."""
        answer = self._call(self.client.head_object, ref)
        value: str | None = answer.get("ContentType")
        return value

    def get(self, ref: ObjectRef) -> tuple[bytes, ObjectRef]:
        """The object's bytes and the identity read: pinned to ``ref``'s version and its
        ETag (``If-Match``), so an object changed since listing is refused, not hashed
        in place of the one listed. Raises ``Unreadable`` saying why."""
        answer = self._call(self.client.get_object, ref)
        body = answer["Body"]
        try:
            data: bytes = body.read()
        except Exception as exc:
            raise Unreadable(f"the download was cut short: {exc}") from exc
        finally:
            body.close()
        expected = answer.get("ContentLength")
        if expected is not None and len(data) != int(expected):
            raise Unreadable(f"the download was cut short: {len(data)} of {expected} bytes")
        read = ObjectRef(
            bucket=ref.bucket,
            key=ref.key,
            version_id=_version(answer.get("VersionId")) or ref.version_id,
            etag=_etag(answer.get("ETag")) or ref.etag,
        )
        return data, read

    def fetch(self, ref: ObjectRef) -> bytes:
        return self.get(ref)[0]

    def _call(self, method: Callable[..., dict[str, Any]], ref: ObjectRef) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        arguments: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            arguments["VersionId"] = ref.version_id
        if ref.etag:
            arguments["IfMatch"] = f'"{ref.etag}"'
        try:
            return method(**arguments)
        except ClientError as exc:
            raise Unreadable(_client_error(exc)) from None
        except BotoCoreError as exc:
            raise Unreadable(f"the object store did not answer: {exc}") from None


def _client_error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "?"))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    why = {
        "403": "access denied",
        "AccessDenied": "access denied",
        "404": "the object is gone (deleted since listing)",
        "NoSuchKey": "the object is gone (deleted since listing)",
        "NoSuchVersion": "the version is gone (deleted since listing)",
        "412": "the object changed since listing (ETag differs)",
        "PreconditionFailed": "the object changed since listing (ETag differs)",
    }.get(code, f"{code}: {error.get('Message', '')}".strip())
    return f"cannot read the object: {why} (HTTP {status})"


def object_fetcher(endpoint_url: str | None) -> Callable[[ObjectRef], bytes]:
    """Reads a matched object again (pinned to its version and ETag); the object store
    is opened at the first read, so a run with no object hit needs no S3 extra."""
    opened: list[ObjectStore] = []

    def fetch(ref: ObjectRef) -> bytes:
        if not opened:
            try:
                opened.append(ObjectStore(endpoint_url=endpoint_url, rate=None))
            except NeedsExtra as exc:  # the [s3] extra
                raise OSError(f"object storage is not available: {exc}") from exc
        return opened[0].fetch(ref)

    return fetch


# -- S3 Inventory ---------------------------------------------------------------------

#: fileSchema names (CSV) and Parquet/ORC column names of the fields read
_CSV_FIELDS = {
    "Bucket": "bucket",
    "Key": "key",
    "VersionId": "version_id",
    "IsLatest": "is_latest",
    "IsDeleteMarker": "is_delete_marker",
    "Size": "size",
    "ETag": "e_tag",
}


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def read_inventory(
    manifest: dict[str, Any], read: Callable[[str, str], bytes], *, prefix: str = ""
) -> Iterator[ListedObject]:
    """The rows of an S3 Inventory: ``manifest`` is its ``manifest.json``; ``read(bucket,
    key)`` reads a data file from the destination bucket (named by ARN or by name)."""
    try:
        file_format = str(manifest["fileFormat"]).upper()
        schema = str(manifest["fileSchema"])
        destination = str(manifest["destinationBucket"]).removeprefix("arn:aws:s3:::")
        files = list(manifest["files"])
    except (KeyError, TypeError) as exc:
        raise BadInventory(f"not an S3 Inventory manifest: missing {exc}") from None
    for entry in files:
        data = read(destination, entry["key"])
        expected = entry.get("MD5checksum")
        if expected and hashlib.md5(data, usedforsecurity=False).hexdigest() != expected:
            raise BadInventory(f"inventory file {entry['key']} does not match its MD5checksum")
        if file_format == "CSV":
            rows = _csv_rows(data, schema)
        elif file_format == "PARQUET":
            rows = _parquet_rows(data)
        else:
            raise BadInventory(f"inventory format {file_format} is not read (CSV, Parquet)")
        for row in rows:
            key = row["key"]
            if not key.startswith(prefix) or _bool(row.get("is_delete_marker")):
                continue
            size = row.get("size")
            yield ListedObject(
                ref=ObjectRef(
                    bucket=row["bucket"],
                    key=key,
                    version_id=_version(row.get("version_id")),
                    etag=_etag(row.get("e_tag")),
                ),
                size=int(size) if size not in (None, "") else 0,
                is_latest=row.get("is_latest") in (None, "") or _bool(row.get("is_latest")),
            )


def _csv_rows(data: bytes, schema: str) -> Iterator[dict[str, Any]]:
    """A gzipped CSV data file: no header, columns as ``fileSchema`` names them, keys
    URL-encoded (as S3 Inventory writes them)."""
    names = [_CSV_FIELDS.get(name.strip(), name.strip()) for name in schema.split(",")]
    text = io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(data)), encoding="utf-8")
    for values in csv.reader(text):
        row: dict[str, Any] = dict(zip(names, values, strict=False))
        row["key"] = unquote(row["key"])
        yield row


def _parquet_rows(data: bytes) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - only for Parquet inventories
    except ImportError:
        raise NeedsExtra("Parquet inventories need pyarrow: pip install pyarrow") from None
    table = pq.read_table(io.BytesIO(data))
    for batch in table.to_batches(max_chunksize=65536):
        yield from batch.to_pylist()
