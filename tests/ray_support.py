"""A 2-CPU Ray cluster on loopback and a large bucket on the moto S3 server, for the Ray
engine's tests and the kill -9 trials in ``bench/raykill.py``."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from hashguard.demo.corpus import Kind, encode, generate

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def local_ray(cpus: int = 2) -> Iterator[str]:
    """A Ray cluster started in this process (``cpus`` CPUs, loopback only, no
    dashboard); yields its GCS address for other drivers (``--address``)."""
    import ray  # noqa: PLC0415 - the bulk extra

    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def distinct_images(count: int) -> list[bytes]:
    """``count`` distinct benign generated images (small, so hashing them is cheap)."""
    kinds = list(Kind)
    return [
        encode(generate(kinds[i % len(kinds)], seed=1000 + i, width=64, height=48))
        for i in range(count)
    ]


def key_of(index: int) -> str:
    return f"big/{index // 1000:03d}/{index:05d}.jpg"


def fill_bucket(bucket: str, images: list[bytes], objects: int) -> dict[str, int]:
    """``objects`` keys in ``bucket`` of the in-process moto server, key ``i`` holding
    image ``i % len(images)`` (written to moto's backend directly: the reads under test
    still go over HTTP). Returns each key's image index."""
    from moto.core.models import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.s3.models import s3_backends  # noqa: PLC0415

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.create_bucket(bucket, "us-east-1")
    which = {}
    for i in range(objects):
        key = key_of(i)
        backend.put_object(bucket, key, images[i % len(images)])
        which[key] = i % len(images)
    return which


def shape(item: dict[str, Any]) -> tuple[Any, ...]:
    """What must be the same whichever engine scanned an item."""
    return (
        item["outcome"],
        item.get("md5"),
        item.get("sha256"),
        json.dumps(item.get("pdq"), sort_keys=True),
        tuple((m["bank"], m["algorithm"], m["distance"]) for m in item["matches"]),
        item["decision"]["action"] if isinstance(item.get("decision"), dict) else None,
    )


def expected_by_key(
    reference: dict[str, dict[str, Any]], which: dict[str, int], bucket: str
) -> dict[str, tuple[Any, ...]]:
    """A clean run's results over the bucket, from a clean scan of its distinct images
    (``reference``: image index → result): an item's result is its content's."""
    out = {}
    for key, image in which.items():
        item = reference[str(image)]
        out[f"s3://{bucket}/{key}"] = shape(item)
    return out


def etag_ok(item: dict[str, Any], images: list[bytes], which: dict[str, int]) -> bool:
    key = item["object"]["key"]
    return bool(item["object"]["etag"] == hashlib.md5(images[which[key]]).hexdigest())


def driver(args: list[str], log: Path) -> subprocess.Popen[str]:
    """``hashguard scan`` as its own process (a Ray driver): JSON lines on stdout, its
    stderr (Ray's progress) appended to ``log`` (a pipe nobody reads would fill up)."""
    with log.open("ab") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "hashguard", "scan", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )


def stop(process: subprocess.Popen[str]) -> None:
    """Reap a killed driver and close its pipe."""
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def read_results(stream: IO[str], count: int) -> int:
    """Read until ``count`` results were reported (or the stream ends); how many were."""
    seen = 0
    for line in stream:
        if line.startswith('{"type": "file"'):
            seen += 1
            if seen >= count:
                break
    return seen


def _processes() -> dict[int, tuple[int, str]]:
    """Every process's parent and command line (``/proc``)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found[int(entry)] = (parent, command)
    return found


def hash_actors() -> list[int]:
    """The pids of the hashing actors of the Ray cluster this process started (its
    descendants: never another user's Ray)."""
    table = _processes()
    mine = {os.getpid()}
    grown = True
    while grown:
        more = {pid for pid, (parent, _cmd) in table.items() if parent in mine} - mine
        grown = bool(more)
        mine |= more
    return sorted(pid for pid in mine if "HashActor" in table[pid][1])


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
