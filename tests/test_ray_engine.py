"""The Ray Data engine (``hashguard scan … --engine ray``): the same results as the local
pool, resumable after kill -9 of the driver or of a hashing actor, and Ray kept out of
the server and the plain CLI.

A 2-CPU Ray cluster is started once in this process (loopback, no dashboard); drivers
run in-process (CliRunner) or, to be killed, as their own ``hashguard scan`` processes
connected with ``--address``. The moto S3 server runs in this process on loopback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner, Result

from hashguard.cli.app import app as cli_app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import Outcome
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.scan.rayactor import HashActor, Shipment, ship_index
from hashguard.store import Store
from tests import hostile
from tests.cli import json_lines, write_known_list
from tests.ray_support import (
    CREDENTIALS,
    distinct_images,
    driver,
    expected_by_key,
    fill_bucket,
    hash_actors,
    kill9,
    local_ray,
    read_results,
    shape,
    stop,
)

#: the issue's size for the kill -9 trials; a few hundred distinct images across keys
OBJECTS = 20_000
DISTINCT = 200


def _cli(*args: str, check: int | None = 0) -> Result:
    result = CliRunner().invoke(cli_app, list(args))
    if check is not None:
        assert result.exit_code == check, (result.exit_code, result.stdout, result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
    return result


def test_the_server_and_plain_cli_never_import_ray() -> None:
    probe = (
        "import sys, hashguard.web.app, hashguard.cli.app, hashguard.scan.rayengine; "
        "print('ray' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.stdout.strip() == "False", done.stderr[-2000:]


@pytest.mark.usefixtures("home")
def test_engine_ray_without_the_extra_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    (tmp_path / "a.jpg").write_bytes(b"x")
    result = _cli("scan", str(tmp_path / "a.jpg"), "--engine", "ray", check=2)
    assert "pip install 'hashguard[bulk]'" in result.stderr
    result = _cli("scan", str(tmp_path / "a.jpg"), "--address", "auto", check=2)
    assert "apply to --engine ray" in result.stderr


# -- on a Ray cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        # werkzeug logs every request: 40,000 captured log records cost the driver time
        patch.setattr(logging.getLogger("werkzeug"), "level", logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def ray_address(moto_url: str) -> Iterator[str]:
    """After ``moto_url``: the actors inherit the S3 credentials set for it."""
    with local_ray(cpus=2) as address:
        yield address


def _known(tmp_path: Path, md5_of: bytes, pdq_of: bytes) -> None:
    """A known list: one image by MD5, another by PDQ (a near-copy path through the
    index and its confirmation in reference mode)."""
    pdq = hash_data(pdq_of, HashOptions(max_pixels=10**8)).signals
    assert pdq is not None
    listing = write_known_list(
        tmp_path / "known.csv",
        [
            ("md5", hashlib.md5(md5_of).hexdigest(), "k-md5"),
            ("pdq", pdq.pdq[0].value, "k-pdq"),
        ],
    )
    _cli("banks", "import", "known", str(listing), "--source", "tests", "--licence", "test only")


def _by_path(files: list[dict[str, Any]], base: str) -> dict[str, tuple[Any, ...]]:
    return {f["path"].removeprefix(base): shape(f) for f in files}


@pytest.mark.ray
@pytest.mark.usefixtures("home")
def test_ray_and_the_local_pool_give_identical_results(
    moto_url: str, ray_address: str, tmp_path: Path
) -> None:
    import boto3  # noqa: PLC0415

    hostile_files = hostile.write_hostile_set(tmp_path / "hostile")
    known = encode(generate(Kind.PHOTO, seed=42, width=320, height=240))
    near = encode(generate(Kind.TEXTURE, seed=9, width=320, height=240))
    corpus = {
        **{f"hostile/{p.name}": p.read_bytes() for p in hostile_files.values()},
        "known.jpg": known,
        "sub/copy.jpg": known,
        "near.jpg": near,
        "near.png": encode(generate(Kind.TEXTURE, seed=9, width=320, height=240), "PNG"),
        **{f"many/{i}.jpg": img for i, img in enumerate(distinct_images(24))},
        "readme.txt": b"not an image",
    }
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    s3.create_bucket(Bucket="same-ray")
    folder = tmp_path / "corpus"
    for name, data in corpus.items():
        s3.put_object(Bucket="same-ray", Key=f"c/{name}", Body=data)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    _known(tmp_path, known, near)

    endpoint = ("--endpoint-url", moto_url)
    local = _cli("scan", "s3://same-ray/c/", *endpoint, "--json", "--workers", "2", check=1)
    on_ray = _cli("scan", "s3://same-ray/c/", *endpoint, "--json", "--engine", "ray", check=1)
    folder_local = _cli("scan", str(folder), "--json", "--workers", "2", check=1)
    folder_ray = _cli("scan", str(folder), "--json", "--engine", "ray", check=1)

    local_files, local_summary = json_lines(local.stdout)
    ray_files, ray_summary = json_lines(on_ray.stdout)
    assert _by_path(ray_files, "s3://same-ray/c/") == _by_path(local_files, "s3://same-ray/c/")
    assert ray_summary["counts"] == local_summary["counts"]
    assert ray_summary["counts"]["matched"] >= 3  # the MD5 copies and the PDQ near copies
    assert ray_summary["counts"]["undecodable"] >= 5  # bombs and broken files, typed
    assert {f["path"]: f["object"] for f in ray_files} == {
        f["path"]: f["object"] for f in local_files
    }
    files_local, _ = json_lines(folder_local.stdout)
    files_ray, folder_summary = json_lines(folder_ray.stdout)
    assert _by_path(files_ray, f"{folder}/") == _by_path(files_local, f"{folder}/")
    assert _by_path(files_ray, f"{folder}/") == _by_path(ray_files, "s3://same-ray/c/")
    # the Ray run is a scan record like any other
    shown = _cli("scans", "show", str(ray_summary["run"]), "--json")
    shown_files, shown_summary = json_lines(shown.stdout)
    assert _by_path(shown_files, "") == _by_path(ray_files, "")
    assert shown_summary["status"] == "completed"
    assert folder_summary["counts"] == local_summary["counts"]


def test_an_unreadable_object_on_ray_is_an_error(moto_url: str, sqlite_store: Store) -> None:
    import boto3  # noqa: PLC0415

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    s3.create_bucket(Bucket="gone-ray")
    for i, image in enumerate(distinct_images(3)):
        s3.put_object(Bucket="gone-ray", Key=f"{i}.jpg", Body=image)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="gone-ray")["Contents"]]
    assert len(listed) == 3
    # the ETag listed is refused once the object changed: the read is pinned to it
    s3.put_object(Bucket="gone-ray", Key="1.jpg", Body=b"changed")
    matcher = Matcher.build(sqlite_store.banks)
    actor = HashActor(
        Shipment(
            options=HashOptions(max_pixels=10**8),
            timeout=30,
            memory_mb=1024,
            index=ship_index(matcher),
            banks=matcher.banks,
            store_id=matcher.store_id,
            seq=matcher.seq,
            endpoint_url=moto_url,
        )
    )
    old_etag = hashlib.md5(distinct_images(3)[1]).hexdigest()
    refs = [
        json.dumps({"bucket": "gone-ray", "key": "0.jpg", "version_id": None, "etag": None}),
        json.dumps({"bucket": "gone-ray", "key": "1.jpg", "version_id": None, "etag": old_etag}),
        json.dumps({"bucket": "gone-ray", "key": "nope.jpg", "version_id": None, "etag": None}),
    ]
    hashed = list(actor.hash_items(["a", "b", "c"], refs))
    assert [h.output.problem for h in hashed][1:] == [Outcome.ERROR, Outcome.ERROR]
    assert hashed[0].output.signals is not None
    assert hashed[0].output.problem is None
    assert "changed since listing" in (hashed[1].output.reason or "")
    assert "gone" in (hashed[2].output.reason or "")


# -- kill -9 during a 20,000-object scan ---------------------------------------------------


@pytest.fixture(scope="module")
def big_bucket(moto_url: str) -> tuple[list[bytes], dict[str, int]]:
    images = distinct_images(DISTINCT)
    return images, fill_bucket("big-ray", images, OBJECTS)


def _reference(tmp_path: Path, images: list[bytes]) -> dict[str, dict[str, Any]]:
    """A clean scan of the distinct images, by image index (the local pool)."""
    folder = tmp_path / "distinct"
    folder.mkdir()
    for i, image in enumerate(images):
        (folder / f"{i}.jpg").write_bytes(image)
    files, _ = json_lines(_cli("scan", str(folder), "--json", check=None).stdout)
    return {Path(f["path"]).stem: f for f in files}


def _final(run_id: int) -> dict[str, tuple[Any, ...]]:
    files, summary = json_lines(_cli("scans", "show", str(run_id), "--json").stdout)
    assert summary["status"] == "completed"
    assert summary["total"] == len(files) == OBJECTS  # nothing lost, nothing doubled
    return {f["path"]: shape(f) for f in files}


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.usefixtures("home")
def test_kill_9_of_the_driver_and_of_an_actor_loses_and_doubles_nothing(
    moto_url: str,
    ray_address: str,
    big_bucket: tuple[list[bytes], dict[str, int]],
    tmp_path: Path,
) -> None:
    """One 20,000-object scan, two kills: the driver a fifth of the way in, then, in the
    driver that resumed the run, the hashing actors. (``bench/raykill.py``: five trials
    of each kind, at different moments, each its own scan.)"""
    images, which = big_bucket
    _known(tmp_path, images[3], images[5])
    expected = expected_by_key(_reference(tmp_path, images), which, "big-ray")
    args = ["s3://big-ray/big/", "--endpoint-url", moto_url, "--engine", "ray"]
    args += ["--address", ray_address]

    log = tmp_path / "drivers.log"
    first = driver(args, log)
    assert first.stdout is not None
    assert read_results(first.stdout, OBJECTS // 5) == OBJECTS // 5
    kill9(first.pid)
    stop(first)

    resumed = driver(args, log)  # the same command resumes the run
    assert resumed.stdout is not None
    assert read_results(resumed.stdout, OBJECTS // 2) == OBJECTS // 2
    actors = hash_actors()
    assert actors, "no hashing actor found"
    for pid in actors:
        kill9(pid)
    out, _ = resumed.communicate(timeout=1500)
    err = log.read_text()
    assert resumed.returncode == 1, err[-3000:]  # something matched
    assert "resuming scan" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["resumed"]
    assert _final(summary["run"]) == expected
