"""Object storage: listing from an S3 Inventory vs LIST calls, and a scan read from S3 vs
the same files read locally, against moto's S3 server on loopback (same run, ratios);
and the hashing cost per object and per MB that a dry run's CPU-hours use.

Selected with ``BENCH_ONLY=objects``. moto is an emulator: its LIST and GET cost more
CPU than S3's, on the same two cores as the hashing workers, so the S3/local scan
ratio is a floor for what a real store gives.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import REPEATS
from bench.report import Row
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import ScanOptions
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.scan.objects import ObjectStore
from hashguard.scan.objectscan import ObjectFilter, ObjectScanner
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.store import open_store

LISTED = 5000
IMAGES = 120


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def hashing_cost(images: list[bytes]) -> tuple[float, float]:
    """CPU seconds per object and per MB, fitted on small and large images (one process)."""
    options = HashOptions.for_scan(ScanOptions(max_pixels=10**8))
    sizes, costs = [], []
    for data in images:
        start = _cpu()
        hash_data(data, options)
        sizes.append(len(data) / 1e6)
        costs.append(_cpu() - start)
    slope, intercept = statistics.linear_regression(sizes, costs)
    return max(intercept, 0.0), max(slope, 0.0)


def _rate(count: int, run: Callable[[], int]) -> float:
    start = time.perf_counter()
    seen = run()
    assert seen == count, (seen, count)
    return count / (time.perf_counter() - start)


def objects_rows(say: Callable[[str], None]) -> list[Row]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - dev extra, only when asked

    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        return _rows(url, say)
    finally:
        server.stop()


def _rows(url: str, say: Callable[[str], None]) -> list[Row]:
    store = ObjectStore(endpoint_url=url, region="us-east-1", connections=16)
    s3: Any = store.client
    s3.create_bucket(Bucket="bench")
    s3.create_bucket(Bucket="inv")
    say(f"objects: {LISTED:,} keys to list")
    rows = []
    for index in range(LISTED):
        key = f"listed/{index:06d}.jpg"
        s3.put_object(Bucket="bench", Key=key, Body=b"x")
        rows.append(f'"bench","{key}","1","{hashlib.md5(b"x").hexdigest()}"\n')
    data = gzip.compress("".join(rows).encode())
    s3.put_object(Bucket="inv", Key="data/0.csv.gz", Body=data)
    manifest = {
        "sourceBucket": "bench",
        "destinationBucket": "arn:aws:s3:::inv",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, ETag",
        "files": [
            {
                "key": "data/0.csv.gz",
                "size": len(data),
                "MD5checksum": hashlib.md5(data).hexdigest(),
            }
        ],
    }
    s3.put_object(Bucket="inv", Key="manifest.json", Body=json.dumps(manifest).encode())
    listing = _rate(LISTED, lambda: sum(1 for _ in store.list("bench", "listed/", versions=False)))
    inventory = _rate(LISTED, lambda: sum(1 for _ in store.inventory("s3://inv/manifest.json")))

    say(f"objects: scan of {IMAGES} images from S3 and from a folder")
    images = [
        encode(generate(Kind.PHOTO, seed=i, width=512 + 8 * (i % 64), height=384))
        for i in range(IMAGES)
    ]
    large = [encode(generate(Kind.PHOTO, seed=1000 + i, width=2000, height=1500)) for i in range(6)]
    per_object, per_mb = hashing_cost(images[:40] + large)
    folder = Path(tempfile.mkdtemp(prefix="hashguard-bench-objects-"))
    for index, image in enumerate(images):
        (folder / f"{index:04d}.jpg").write_bytes(image)
        s3.put_object(Bucket="bench", Key=f"scan/{index:04d}.jpg", Body=image)
    local_rates, s3_rates = [], []
    for index in range(REPEATS):  # round-robin: the machine's load hits both alike
        say(f"objects: scan round {index + 1}/{REPEATS}")
        local_rates.append(_scan_rate(folder, None))
        s3_rates.append(_scan_rate(folder, store))
    local_rate, s3_rate = statistics.median(local_rates), statistics.median(s3_rates)
    return [
        Row(figure="objects: listing, LIST calls (moto)", value=round(listing), unit="objects/s"),
        Row(
            figure="objects: listing, S3 Inventory CSV",
            value=round(inventory),
            unit="objects/s",
            baseline=round(listing),
            ratio=round(inventory / listing, 2),
        ),
        Row(figure="objects: scan, local files", value=round(local_rate, 1), unit="files/s"),
        Row(
            figure="objects: scan, from S3 (moto)",
            value=round(s3_rate, 1),
            unit="files/s",
            baseline=round(local_rate, 1),
            ratio=round(s3_rate / local_rate, 2),
        ),
        Row(
            figure="objects: hashing cost (dry-run model)",
            value=f"{per_object:.4f} s/object + {per_mb:.4f} s/MB",
            unit="",
        ),
    ]


def _scan_rate(folder: Path, objects: ObjectStore | None) -> float:
    with tempfile.TemporaryDirectory() as home:
        db = open_store(f"sqlite:///{home}/bench.db")
        options = ScanOptions(max_pixels=10**8)
        root = str(folder) if objects is None else "s3://bench/scan/"
        prepared = prepare_run(db.scans, [root], options)
        with HashingPool(
            workers=2, options=HashOptions.for_scan(options), timeout=60, memory_mb=2048
        ) as pool:
            parts: dict[str, Any] = {
                "store": db.scans,
                "matcher": Matcher.build(db.banks),
                "pool": pool,
            }
            if objects is None:
                scanner: Scanner = Scanner(**parts)
            else:
                scanner = ObjectScanner(
                    objects=objects,
                    listing=lambda: objects.list("bench", "scan/", versions=False),
                    chosen=ObjectFilter(),
                    **parts,
                )
            start = time.perf_counter()
            run = scanner.run(prepared.run)
            elapsed = time.perf_counter() - start
            if isinstance(scanner, ObjectScanner):
                scanner.close()
        db.close()
    assert run.total == IMAGES, run.total
    return IMAGES / elapsed
