"""Kill -9 trials of the Ray engine: five of the driver and five of a hashing actor, at
different moments of a 20,000-object scan on the moto S3 server (loopback), each final
result compared with a clean run's.

``python -m bench.raykill [OBJECTS]`` (needs the bulk and dev extras). The suite runs
one trial of each kind (``tests/test_ray_engine.py``); this runs all ten and prints,
per trial, the results recorded, missing, doubled and differing from the clean run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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

MOMENTS = (0.05, 0.25, 0.5, 0.75, 0.95)
DISTINCT = 200


def _hashguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hashguard", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )


def _final(run_id: int) -> tuple[dict[str, tuple[Any, ...]], int, str]:
    files, summary = json_lines(_hashguard("scans", "show", str(run_id), "--json").stdout)
    return {f["path"]: shape(f) for f in files}, len(files), str(summary["status"])


def _compare(expected: dict[str, tuple[Any, ...]], run_id: int) -> dict[str, Any]:
    got, rows, status = _final(run_id)
    return {
        "status": status,
        "results": rows,
        "missing": len(set(expected) - set(got)),
        "doubled": rows - len(got),
        "differing": sum(1 for path, item in got.items() if expected.get(path) != item),
    }


def _last_run(out: str) -> int:
    return int(json.loads(out.strip().splitlines()[-1])["run"])


def main(objects: int) -> int:
    os.environ.update(CREDENTIALS)
    home = Path(tempfile.mkdtemp(prefix="hashguard-raykill-"))
    os.environ["HASHGUARD_HOME"] = str(home)
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - dev extra

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    images = distinct_images(DISTINCT)
    which = fill_bucket("kill", images, objects)
    import hashlib  # noqa: PLC0415

    listing = write_known_list(
        home / "known.csv", [("md5", hashlib.md5(images[3]).hexdigest(), "k-md5")]
    )
    _hashguard("banks", "import", "known", str(listing), "--source", "bench", "--licence", "x")
    folder = home / "distinct"
    folder.mkdir()
    for i, image in enumerate(images):
        (folder / f"{i}.jpg").write_bytes(image)
    files, _ = json_lines(_hashguard("scan", str(folder), "--json").stdout)
    expected = expected_by_key({Path(f["path"]).stem: f for f in files}, which, "kill")
    rows: list[dict[str, Any]] = []
    try:
        with local_ray(cpus=2) as address:
            args = ["s3://kill/big/", "--endpoint-url", url, "--engine", "ray"]
            for kind in ("driver", "actor"):
                for moment in MOMENTS:
                    start = time.perf_counter()
                    log = home / f"{kind}-{moment}.log"
                    first = driver([*args, "--address", address, "--rescan"], log)
                    assert first.stdout is not None
                    read_results(first.stdout, int(objects * moment))
                    if kind == "driver":
                        kill9(first.pid)
                        stop(first)
                        again = driver([*args, "--address", address], log)
                        out, _err = again.communicate(timeout=3600)
                        killed = 1
                    else:
                        # none left when Ray had hashed everything before that moment
                        actors = hash_actors()
                        for pid in actors[:1]:
                            kill9(pid)
                        killed = len(actors[:1])
                        out, _err = first.communicate(timeout=3600)
                    figures = _compare(expected, _last_run(out))
                    row = {
                        "kill": kind,
                        "at": moment,
                        "killed": killed,
                        **figures,
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        server.stop()
    bad = [r for r in rows if r["missing"] or r["doubled"] or r["differing"]]
    print(f"{len(rows)} trials, {len(bad)} with results unlike the clean run's")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
