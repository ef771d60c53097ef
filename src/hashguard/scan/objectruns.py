"""Object-storage scan runs as the CLI and the server start them: what a run over
``s3://`` addresses selects, its scanner, and which buckets a server may read.

One wiring: ``hashguard scan s3://…`` and ``POST /v1/runs`` with ``s3://`` paths both
build the run's scanner here (``object_scanner``), over the same listing, filters and
incremental skip; only where the options come from differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hashguard.scan.objects import is_object_uri, split_uri
from hashguard.scan.objectscan import AlreadyChecked, ObjectFilter, ObjectScanner, listing_of
from hashguard.settings import Settings
from hashguard.store import Store


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectScanArgs:
    """The object-storage options of one scan run."""

    uris: tuple[str, ...]
    endpoint_url: str | None
    inventory: str | None
    chosen: ObjectFilter
    rate: float | None

    def scope(self) -> dict[str, Any]:
        """What the run's resume key includes besides the roots and hashing options."""
        return {**self.chosen.as_json(), "inventory": self.inventory}


def object_run_args(
    paths: Sequence[str],
    *,
    endpoint_url: str | None,
    inventory: str | None,
    all_versions: bool,
    max_size: int | None,
    extensions: Sequence[str] | None,
    content_types: Sequence[str] | None,
    rate: float | None,
) -> ObjectScanArgs | None:
    """The object scan ``paths`` ask for (``None``: they are local paths). Raises
    ``ValueError`` saying what is wrong (object options without an s3:// address, local
    and s3:// paths mixed, an address that is not s3://bucket/prefix)."""
    remote = [p for p in paths if is_object_uri(p)]
    if not remote:
        if inventory or extensions or content_types or max_size or endpoint_url:
            raise ValueError(
                "--inventory, --ext, --content-type, --max-size and --endpoint-url "
                "apply to s3:// addresses"
            )
        return None
    if len(remote) != len(paths):
        raise ValueError("scan either s3:// addresses or local paths, not both at once")
    for uri in (*remote, *([inventory] if inventory else [])):
        split_uri(uri)
    return ObjectScanArgs(
        uris=tuple(dict.fromkeys(remote)),
        endpoint_url=endpoint_url,
        inventory=inventory,
        chosen=ObjectFilter(
            extensions=frozenset(e.lower().lstrip(".") for e in extensions) if extensions else None,
            content_types=tuple(t.lower() for t in content_types or ()),
            max_size=max_size,
            all_versions=all_versions,
        ),
        rate=rate,
    )


class BucketNotAllowed(PermissionError):
    """A server was asked to read a bucket (or prefix) its ``scan_buckets`` do not name."""


def allowed(uri: str, allowlist: Sequence[str]) -> bool:
    """Whether ``s3://bucket/prefix`` is inside one of ``allowlist``'s addresses (a
    bucket, or a bucket and a key prefix)."""
    bucket, prefix = split_uri(uri)
    for entry in allowlist:
        allowed_bucket, allowed_prefix = split_uri(entry)
        if bucket == allowed_bucket and prefix.startswith(allowed_prefix):
            return True
    return False


def check_allowed(uris: Sequence[str], allowlist: Sequence[str]) -> None:
    """Raises ``BucketNotAllowed`` naming the first address outside ``allowlist``."""
    if not allowlist:
        raise BucketNotAllowed("no buckets are configured for scan runs on this server")
    for uri in uris:
        if not allowed(uri, allowlist):
            raise BucketNotAllowed(f"{uri} is not under a bucket this server may scan")


def incremental(settings: Settings, store: Store) -> AlreadyChecked | None:
    """The incremental skip (kept signals by object identity), when signals are kept."""
    if not (settings.keep_signals and settings.scan_skip_checked):
        return None
    return store.kept.checked_objects


def object_scanner(
    args: ObjectScanArgs,
    object_store: Any,
    *,
    already_checked: AlreadyChecked | None,
    **parts: Any,
) -> ObjectScanner:
    """The scanner of a run over ``args.uris``: their listing (LIST calls or the
    inventory), ``args.chosen``'s filters, the incremental skip; ``parts`` as the
    ``Scanner`` takes them (store, matcher, pool, pipeline). Close it when done."""
    return ObjectScanner(
        objects=object_store,
        listing=listing_of(
            object_store,
            args.uris,
            inventory=args.inventory,
            all_versions=args.chosen.all_versions,
        ),
        chosen=args.chosen,
        already_checked=already_checked,
        **parts,
    )
