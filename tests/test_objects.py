"""Scanning object storage: the moto S3 server on loopback (real HTTP, boto3 and pyarrow),
behind a proxy that logs what the store receives and plays throttling and failures."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner, Result

from hashguard.cli.app import app as cli_app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.objects import ListedObject, ObjectRef
from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.matching.matcher import Matcher
from hashguard.scan.objects import BadInventory, ObjectStore, RateLimit, read_inventory
from hashguard.scan.objectscan import ObjectFilter, ObjectScanner, estimate
from hashguard.scan.scanner import prepare_run
from hashguard.store import Store
from tests import hostile
from tests.cli import json_lines, write_known_list
from tests.s3_proxy import Proxy, s3_proxy

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def proxy(moto_url: str) -> Iterator[Proxy]:
    with s3_proxy(moto_url) as running:
        yield running


@pytest.fixture
def fresh_proxy(proxy: Proxy) -> Proxy:
    proxy.log.clear()
    proxy.faults.slowdowns = 0
    proxy.faults.denied.clear()
    proxy.faults.truncated.clear()
    return proxy


@pytest.fixture(scope="module")
def s3(moto_url: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")


def _bucket(s3: Any, name: str, objects: dict[str, bytes], *, versioned: bool = False) -> None:
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for key, data in objects.items():
        kind = "image/jpeg" if key.lower().endswith(".jpg") else "text/plain"
        s3.put_object(Bucket=name, Key=key, Body=data, ContentType=kind)


def _cli(*args: str, check: int | None = 0) -> Result:
    result = CliRunner().invoke(cli_app, list(args))
    if check is not None:
        assert result.exit_code == check, (result.exit_code, result.stdout, result.stderr)
    return result


# -- listing, pagination, versions, inventories ---------------------------------------------


def test_listing_with_prefix_and_pagination(s3: Any, fresh_proxy: Proxy) -> None:
    _bucket(s3, "paged", {**{f"img/{i:03d}.jpg": b"x" for i in range(23)}, "other/a.jpg": b"y"})
    store = ObjectStore(endpoint_url=fresh_proxy.url, page_size=5)
    listed = list(store.list("paged", "img/", versions=False))
    assert [o.ref.key for o in listed] == [f"img/{i:03d}.jpg" for i in range(23)]
    assert all(o.size == 1 and o.ref.etag for o in listed)
    assert len(fresh_proxy.requests("GET", "/paged")) == 5  # 23 keys, 5 a page
    figures = estimate(listed, ObjectFilter())
    assert (figures.selected, figures.selected_bytes, figures.get_requests) == (23, 23, 23)


def test_versions_all_or_latest(s3: Any, fresh_proxy: Proxy) -> None:
    _bucket(s3, "versioned", {"a.jpg": b"one", "b.jpg": b"bee"}, versioned=True)
    s3.put_object(Bucket="versioned", Key="a.jpg", Body=b"two")
    s3.delete_object(Bucket="versioned", Key="b.jpg")  # a delete marker
    store = ObjectStore(endpoint_url=fresh_proxy.url)
    every = list(store.list("versioned", "", versions=True))
    assert sorted((o.ref.key, o.size, o.is_latest) for o in every) == [
        ("a.jpg", 3, False),
        ("a.jpg", 3, True),
        ("b.jpg", 3, False),  # its delete marker is not an object
    ]
    assert all(o.ref.version_id for o in every)
    latest = [o for o in every if ObjectFilter(all_versions=False).selects_key(o)]
    assert [o.ref.key for o in latest] == ["a.jpg"]
    # an old version is read as it was, pinned to its version id
    old = next(o for o in every if o.ref.key == "a.jpg" and not o.is_latest)
    data, read = store.get(old.ref)
    assert data == b"one"
    assert read.version_id == old.ref.version_id
    assert [o.ref.key for o in store.list("versioned", "", versions=False)] == ["a.jpg"]


def _csv_gz(rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    for row in rows:
        text.write(",".join(f'"{v}"' for v in row) + "\n")
    return gzip.compress(text.getvalue().encode())


def _manifest(s3: Any, source: str, fmt: str, files: dict[str, bytes], schema: str) -> str:
    """An S3 Inventory manifest as AWS documents it, its data files in bucket ``inv``."""
    entries = []
    for key, data in files.items():
        s3.put_object(Bucket="inv", Key=key, Body=data)
        entries.append(
            {"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}
        )
    manifest = {
        "sourceBucket": source,
        "destinationBucket": "arn:aws:s3:::inv",
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": fmt,
        "fileSchema": schema,
        "files": entries,
    }
    key = f"{source}/{fmt.lower()}/2026-12-03T01-00Z/manifest.json"
    s3.put_object(Bucket="inv", Key=key, Body=json.dumps(manifest).encode())
    return f"s3://inv/{key}"


CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (STRING); required binary key (STRING); "
    "optional binary version_id (STRING); optional boolean is_latest; optional boolean "
    "is_delete_marker; optional int64 size; optional binary e_tag (STRING);}"
)


@pytest.mark.usefixtures("home")
def test_inventory_csv_and_parquet_manifests(s3: Any, fresh_proxy: Proxy) -> None:
    objects = {"photos/a b.jpg": b"a" * 10, "photos/c.jpg": b"c" * 20, "docs/d.txt": b"d"}
    _bucket(s3, "invsrc", objects)
    s3.create_bucket(Bucket="inv")
    listed = {
        o.ref.key: o
        for o in ObjectStore(endpoint_url=fresh_proxy.url).list("invsrc", "", versions=False)
    }
    rows = [
        [
            "invsrc",
            key.replace(" ", "%20"),
            "",
            "true",
            "false",
            str(o.size),
            "2026-12-03T00:00:00.000Z",
            o.ref.etag or "",
        ]
        for key, o in listed.items()
    ] + [["invsrc", "gone.jpg", "", "true", "true", "", "2026-12-03T00:00:00.000Z", ""]]
    csv_uri = _manifest(
        s3,
        "invsrc",
        "CSV",
        {
            "invsrc/config/data/one.csv.gz": _csv_gz(rows[:2]),
            "invsrc/config/data/two.csv.gz": _csv_gz(rows[2:]),
        },
        CSV_SCHEMA,
    )
    table = pa.table(
        {
            "bucket": ["invsrc"] * len(listed),
            "key": list(listed),
            "version_id": [None] * len(listed),
            "is_latest": [True] * len(listed),
            "is_delete_marker": [False] * len(listed),
            "size": [o.size for o in listed.values()],
            "e_tag": [o.ref.etag for o in listed.values()],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    parquet_uri = _manifest(
        s3, "invsrc", "Parquet", {"invsrc/config/data/all.parquet": sink.getvalue()}, PARQUET_SCHEMA
    )
    store = ObjectStore(endpoint_url=fresh_proxy.url)
    want = sorted((o.ref.uri, o.ref.etag, o.size) for o in listed.values())
    assert sorted((o.ref.uri, o.ref.etag, o.size) for o in store.inventory(csv_uri)) == want
    assert sorted((o.ref.uri, o.ref.etag, o.size) for o in store.inventory(parquet_uri)) == want
    assert [o.ref.key for o in store.inventory(parquet_uri, prefix="photos/")] == [
        "photos/a b.jpg",
        "photos/c.jpg",
    ]
    # a dry run from the inventory: the manifest and its 2 data files are all it reads
    fresh_proxy.log.clear()
    dry = _cli(
        "scan", "s3://invsrc/photos/", "--inventory", csv_uri, "--endpoint-url",
        fresh_proxy.url, "--dry-run", "--json",
    )  # fmt: skip
    figures = json.loads(dry.stdout)
    assert (figures["objects"], figures["bytes"]) == (2, 30)
    assert figures["requests"] == {"list": 3, "head": 0, "get": 2}
    assert len(fresh_proxy.log) == 3
    # a data file that is not the one the manifest names is refused
    manifest = json.loads(
        s3.get_object(Bucket="inv", Key=parquet_uri.removeprefix("s3://inv/"))["Body"].read()
    )
    manifest["files"][0]["MD5checksum"] = "0" * 32
    with pytest.raises(BadInventory, match="MD5checksum"):
        list(read_inventory(manifest, store.__class__._read.__get__(store)))


def test_rate_cap_spaces_requests() -> None:
    now = [100.0]
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(round(seconds, 6))
        now[0] += seconds

    limit = RateLimit(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limit.wait()
    assert waited == [0.25, 0.25, 0.25, 0.25]
    assert now[0] == pytest.approx(101.0)


# -- scans ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A known image and its copy, others, the hostile set (decoding bombs, truncated and
    lying files), a text file: the same files go to a folder and to a bucket."""
    folder = tmp_path_factory.mktemp("hostile")
    files = {
        f"hostile/{p.name}": p.read_bytes() for p in hostile.write_hostile_set(folder).values()
    }
    known = encode(generate(Kind.PHOTO, seed=42, width=320, height=240))
    return {
        **files,
        "known.jpg": known,
        "sub/copy.jpg": known,
        "other.jpg": encode(generate(Kind.PHOTO, seed=7, width=320, height=240)),
        "readme.txt": b"not an image",
    }


def _import_known(tmp_path: Path, data: bytes) -> None:
    listing = write_known_list(
        tmp_path / "known.csv", [("md5", hashlib.md5(data).hexdigest(), "k-md5")]
    )
    _cli("banks", "import", "known", str(listing), "--source", "tests", "--licence", "test only")


def _shape(files: list[dict[str, Any]], base: str) -> dict[str, tuple[Any, ...]]:
    return {
        f["path"].removeprefix(base): (
            f["outcome"],
            f.get("md5"),
            f.get("sha256"),
            json.dumps(f.get("pdq"), sort_keys=True),
            tuple((m["bank"], m["algorithm"], m["distance"]) for m in f["matches"]),
        )
        for f in files
    }


@pytest.mark.usefixtures("home")
def test_s3_scan_equals_a_local_scan_and_records_identity(
    s3: Any, fresh_proxy: Proxy, corpus: dict[str, bytes], tmp_path: Path
) -> None:
    _bucket(s3, "same", {f"corpus/{k}": v for k, v in corpus.items()} | {"elsewhere.jpg": b"x"})
    folder = tmp_path / "corpus"
    for name, data in corpus.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    _import_known(tmp_path, corpus["known.jpg"])

    local = _cli("scan", str(folder), "--json", "--workers", "2", check=1)
    remote = _cli(
        "scan",
        "s3://same/corpus/",
        "--endpoint-url",
        fresh_proxy.url,
        "--json",
        "--workers",
        "2",
        check=1,
    )
    local_files, local_summary = json_lines(local.stdout)
    remote_files, remote_summary = json_lines(remote.stdout)
    assert _shape(remote_files, "s3://same/corpus/") == _shape(local_files, f"{folder}/")
    assert remote_summary["counts"] == local_summary["counts"]
    assert remote_summary["counts"]["matched"] == 2
    assert remote_summary["counts"]["undecodable"] >= 5  # bombs and broken files, typed
    # every result names the object read: bucket, key, etag (unversioned: no version)
    for item in remote_files:
        key = item["path"].removeprefix("s3://same/")
        assert item["object"] == {
            "bucket": "same",
            "key": key,
            "version_id": None,
            "etag": hashlib.md5(corpus[key.removeprefix("corpus/")]).hexdigest(),
        }
    # the run is kept and shown like a local one; run again, it is complete (a new run)
    shown = _cli("scans", "show", str(remote_summary["run"]), "--json", check=None)
    shown_files, _ = json_lines(shown.stdout)
    assert {f["path"]: f["object"]["etag"] for f in shown_files} == {
        f["path"]: f["object"]["etag"] for f in remote_files
    }
    assert not [p for p in fresh_proxy.requests("GET") if "elsewhere" in p]  # outside the prefix


@pytest.mark.usefixtures("home")
def test_filters_apply_before_download_and_dry_run_reads_nothing(
    s3: Any, fresh_proxy: Proxy
) -> None:
    image = encode(generate(Kind.PHOTO, seed=3, width=64, height=48))
    big = encode(generate(Kind.PHOTO, seed=4, width=640, height=480))
    _bucket(
        s3,
        "filtered",
        {"a.jpg": image, "b.jpg": image, "big.jpg": big, "notes.txt": b"text", "c.JPG": image},
    )
    s3.put_object(Bucket="filtered", Key="lying.jpg", Body=image, ContentType="text/html")
    common = (
        "s3://filtered",
        "--endpoint-url",
        fresh_proxy.url,
        "--ext",
        "jpg",
        "--max-size",
        str(len(image) + 10),
        "--json",
    )

    estimate_line = _cli("scan", *common, "--dry-run").stdout.strip()
    figures = json.loads(estimate_line)
    assert figures["objects_listed"] == 6
    assert figures["objects"] == 4  # a, b, c, lying (notes.txt filtered; big over the cap)
    assert figures["bytes"] == 4 * len(image)
    assert figures["over_size_cap"] == 1
    assert figures["requests"] == {"list": 1, "head": 0, "get": 4}
    assert figures["cpu_seconds"] > 0
    assert fresh_proxy.requests("GET", "/filtered/") == []  # nothing but the LIST
    assert fresh_proxy.requests("HEAD") == []

    done = _cli("scan", *common, "--content-type", "image/*", "--workers", "1")
    files, summary = json_lines(done.stdout)
    outcome = {f["path"]: (f["outcome"], f["reason"]) for f in files}
    assert {p: o for p, (o, _) in outcome.items()} == {
        "s3://filtered/a.jpg": "no_match",
        "s3://filtered/b.jpg": "no_match",
        "s3://filtered/c.JPG": "no_match",
        "s3://filtered/big.jpg": "unsupported",
    }
    assert "over the size cap" in outcome["s3://filtered/big.jpg"][1]
    got = {p.split("?")[0] for p in fresh_proxy.requests("GET", "/filtered/")}
    assert got == {"/filtered/a.jpg", "/filtered/b.jpg", "/filtered/c.JPG"}
    assert "/filtered/lying.jpg" in fresh_proxy.requests("HEAD")  # checked, never read
    assert summary["counts"]["error"] == 0


def test_dry_run_and_object_options_need_an_s3_address(tmp_path: Path) -> None:
    assert "s3://" in _cli("scan", str(tmp_path), "--dry-run", check=2).stderr
    assert "s3://" in _cli("scan", str(tmp_path), "--ext", "jpg", check=2).stderr


def _scan(
    store: Store,
    objects: ObjectStore,
    listing: list[ListedObject],
    *,
    chosen: ObjectFilter | None = None,
) -> Any:
    options = ScanOptions(max_pixels=10**7)
    prepared = prepare_run(store.scans, ["s3://unread"], options, scope={"test": True})
    with HashingPool(
        workers=1, options=HashOptions.for_scan(options), timeout=30, memory_mb=2048
    ) as pool:
        scanner = ObjectScanner(
            objects=objects,
            listing=lambda: listing,
            chosen=chosen or ObjectFilter(),
            store=store.scans,
            matcher=Matcher.build(store.banks),
            pool=pool,
            batch=2,
        )
        try:
            run = scanner.run(prepared.run)
        finally:
            scanner.close()
    return run, {r.path: r for r in store.scans.results(run.id)}


def test_an_object_that_cannot_be_read_is_an_error_never_no_match(
    s3: Any, fresh_proxy: Proxy, sqlite_store: Store
) -> None:
    image = encode(generate(Kind.PHOTO, seed=5, width=64, height=48))
    _bucket(
        s3,
        "unread",
        {
            "ok.jpg": image,
            "denied.jpg": image,
            "cut.jpg": image,
            "deleted.jpg": image,
            "changed.jpg": image,
        },
    )
    objects = ObjectStore(endpoint_url=fresh_proxy.url, attempts=2)
    listing = list(objects.list("unread", "", versions=False))
    s3.delete_object(Bucket="unread", Key="deleted.jpg")  # between the listing and the GET
    s3.put_object(Bucket="unread", Key="changed.jpg", Body=image + b"more")
    fresh_proxy.faults.denied.add("/unread/denied.jpg")
    fresh_proxy.faults.truncated.add("/unread/cut.jpg")

    run, results = _scan(sqlite_store, objects, listing)
    outcome = {path.removeprefix("s3://unread/"): r.outcome for path, r in results.items()}
    assert outcome == {
        "ok.jpg": Outcome.NO_MATCH,
        "denied.jpg": Outcome.ERROR,
        "cut.jpg": Outcome.ERROR,
        "deleted.jpg": Outcome.ERROR,
        "changed.jpg": Outcome.ERROR,
    }
    reasons = {p.removeprefix("s3://unread/"): r.reason or "" for p, r in results.items()}
    assert "access denied" in reasons["denied.jpg"]
    assert "cut short" in reasons["cut.jpg"]
    assert "gone" in reasons["deleted.jpg"]
    assert "changed since listing" in reasons["changed.jpg"]
    assert results["s3://unread/ok.jpg"].object == ObjectRef(
        bucket="unread", key="ok.jpg", etag=hashlib.md5(image).hexdigest()
    )
    assert run.counts[Outcome.ERROR] == 4


def test_a_throttled_store_is_answered_by_slowing_down(
    s3: Any, fresh_proxy: Proxy, sqlite_store: Store
) -> None:
    image = encode(generate(Kind.PHOTO, seed=6, width=64, height=48))
    _bucket(s3, "throttled", {f"{i}.jpg": image for i in range(6)})
    objects = ObjectStore(endpoint_url=fresh_proxy.url, connections=4)
    listing = list(objects.list("throttled", "", versions=False))
    fresh_proxy.faults.slowdowns = 3
    run, results = _scan(sqlite_store, objects, listing)
    assert {r.outcome for r in results.values()} == {Outcome.NO_MATCH}
    assert run.total == 6
    assert [status for _, _, status in fresh_proxy.log].count(503) == 3
    assert objects.requests.throttled == 3  # retried after backoff, then answered


def test_an_interrupted_object_scan_resumes_where_it_stopped(
    s3: Any, fresh_proxy: Proxy, sqlite_store: Store
) -> None:
    image = encode(generate(Kind.PHOTO, seed=8, width=64, height=48))
    _bucket(s3, "resumed", {f"{i}.jpg": image for i in range(5)})
    objects = ObjectStore(endpoint_url=fresh_proxy.url)
    listing = list(objects.list("resumed", "", versions=False))
    first, _ = _scan(sqlite_store, objects, listing[:2])
    sqlite_store.scans.finish(first.id, first.status.__class__("interrupted"))
    fresh_proxy.log.clear()
    again, results = _scan(sqlite_store, objects, listing)
    assert again.id == first.id
    assert again.total == 5
    assert len(fresh_proxy.requests("GET", "/resumed/")) == 3  # only what was left
    assert os.path.basename(sorted(results)[0]) == "0.jpg"


def test_the_server_and_cli_start_without_boto3_and_say_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocked = (
        "import sys; sys.modules['boto3'] = sys.modules['botocore'] = None; "
        "import hashguard.cli.app, hashguard.web.app, hashguard.scan.objectscan; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
    monkeypatch.setitem(sys.modules, "boto3", None)
    result = _cli("scan", "s3://any-bucket/prefix", check=2)
    assert "pip install 'hashguard[s3]'" in result.stderr
