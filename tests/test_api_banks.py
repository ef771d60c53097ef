"""The banks API (create, configure, import, edit, delete; never a hash out) and the runs API."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.tokens import Scope
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.settings import Settings
from tests.api_support import assert_problem, bearer, hex_variants, make_token, wait_until
from tests.server import running_server

IMAGES = [encode(generate(Kind.PHOTO, seed, 320, 240)) for seed in range(3)]


def _pdq(data: bytes) -> str:
    output = hash_data(data, HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    return output.signals.pdq[0].value


MD5 = [hashlib.md5(data).hexdigest() for data in IMAGES]
SHA1 = [hashlib.sha1(data).hexdigest() for data in IMAGES]
SHA256 = [hashlib.sha256(data).hexdigest() for data in IMAGES]
PDQ = [_pdq(data) for data in IMAGES]
#: Every hash any test here gives a bank: none may ever come back out of the API.
ALL_HASHES = hex_variants(MD5 + SHA1 + SHA256 + PDQ)

LIST_V1 = (
    "algorithm,hash,entry_id,category\n"
    f"md5,{MD5[0]},e0,test\n"
    f"sha256,{SHA256[1]},e1,test\n"
    f"pdq,{PDQ[2]},e2,test\n"
    f"sha1,{SHA1[0]},e3,\n"
)
LIST_V2 = "\n".join(LIST_V1.splitlines()[:4]) + "\n"  # without the sha1 row
#: Lines 3 and 5 are invalid (not hex; too short); lines 2 and 4 are new, valid entries.
WITH_ERRORS = (
    "algorithm,hash,entry_id\n"
    f"md5,{MD5[1]},ok-1\n"
    "md5,zz-not-hex-zz,bad-1\n"
    f"md5,{MD5[2]},ok-2\n"
    "sha256,abcdef,bad-2\n"
)
CSV = {"Content-Type": "text/csv"}


class Recorder:
    """A client that keeps the text of every answer, to check none carries a bank's hash."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.texts: list[str] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.http.request(method, path, **kwargs)
        self.texts.append(f"{method} {path} -> {answer.status_code}: {answer.text}")
        return answer


def test_banks_api(api_settings: Settings) -> None:
    writer = bearer(make_token(api_settings, Scope.BANKS_READ, Scope.BANKS_WRITE))
    scanner = bearer(make_token(api_settings, Scope.SCAN))
    with (
        running_server(api_settings) as base,
        httpx.Client(base_url=base, headers=writer) as http,
    ):
        call = Recorder(http)

        created = call(
            "POST",
            "/v1/banks",
            json={
                "name": "ngo-list",
                "source": "tests",
                "licence": "test only",
                "pdq_threshold": 20,
            },
        )
        assert created.status_code == 201
        assert {k: v for k, v in created.json().items() if k != "created_at"} == {
            "name": "ngo-list",
            "kind": "known",
            "enabled": True,
            "pdq_threshold": 20,
            "source": "tests",
            "licence": "test only",
            "version": None,
            "imported_at": None,
            "entries": {},
            "removed_entries": 0,
            "imports": 0,
            "auto_max_distance": 10,
            "review_max_distance": None,
            "exact_action": "act",
            "shadow": False,
            "vpdq_query_percent": 80.0,
            "vpdq_compared_percent": 0.0,
        }
        assert_problem(call("POST", "/v1/banks", json={"name": "ngo-list"}), 409)
        for bad in ("", "-leading-dash", "has space", "slash/name", "n" * 101, "ünïcode"):
            assert_problem(call("POST", "/v1/banks", json={"name": bad}), 422)
        assert_problem(call("POST", "/v1/banks", json={"name": "k", "kind": "bogus"}), 422)
        assert_problem(call("POST", "/v1/banks", json={"name": "t", "pdq_threshold": 999}), 422)
        assert [bank["name"] for bank in call("GET", "/v1/banks").json()] == ["ngo-list"]

        # import as multipart, then as a raw text/csv body: each is the list's new version
        first = call(
            "POST",
            "/v1/banks/ngo-list/import",
            params={"format": "csv", "version": "v1"},
            files={"file": ("list.csv", LIST_V1.encode())},
        ).json()
        assert (first["applied"], first["rows"], first["added"], first["errors"]) == (
            True,
            4,
            4,
            [],
        )
        shown = call("GET", "/v1/banks/ngo-list").json()
        assert shown["entries"] == {"md5": 1, "pdq": 1, "sha1": 1, "sha256": 1}
        assert (shown["version"], shown["imports"]) == ("v1", 1)
        assert shown["imported_at"] is not None

        matched = wait_until(
            lambda: http.post("/v1/scan", content=IMAGES[0], headers=scanner).json(),
            lambda answer: answer["outcome"] == "matched",
            timeout=10,
        )
        assert matched["outcome"] == "matched"
        assert {(m["bank"], m["algorithm"]) for m in matched["matches"]} == {
            ("ngo-list", "md5"),
            ("ngo-list", "sha1"),
        }

        second = call(
            "POST",
            "/v1/banks/ngo-list/import",
            params={"format": "csv", "version": "v2"},
            content=LIST_V2,
            headers=CSV,
        ).json()
        assert (second["applied"], second["unchanged"], second["removed"]) == (True, 3, 1)

        # one invalid row and nothing is imported; every bad row is named by its line
        refused = call(
            "POST",
            "/v1/banks/ngo-list/import",
            params={"format": "csv", "version": "v3"},
            content=WITH_ERRORS,
            headers=CSV,
        ).json()
        assert refused["applied"] is False
        assert refused["added"] == 0
        assert [error["line"] for error in refused["errors"]] == [3, 5]
        assert all(error["reason"] for error in refused["errors"])
        shown = call("GET", "/v1/banks/ngo-list").json()
        assert shown["entries"] == {"md5": 1, "pdq": 1, "sha256": 1}
        assert (shown["version"], shown["imports"]) == ("v2", 2)

        skipped = call(
            "POST",
            "/v1/banks/ngo-list/import",
            params={"format": "csv", "version": "v3", "skip_invalid": "true"},
            files={"file": ("errors.csv", WITH_ERRORS.encode())},
        ).json()
        assert (skipped["applied"], skipped["added"], skipped["removed"]) == (True, 2, 3)
        assert [error["line"] for error in skipped["errors"]] == [3, 5]
        shown = call("GET", "/v1/banks/ngo-list").json()
        assert (shown["entries"], shown["version"]) == ({"md5": 2}, "v3")

        # create=true makes a missing bank, with the given kind and threshold
        assert_problem(
            call(
                "POST",
                "/v1/banks/missing/import",
                params={"format": "csv"},
                content=LIST_V1,
                headers=CSV,
            ),
            404,
        )
        not_created = call(
            "POST",
            "/v1/banks/never/import",
            params={"format": "csv", "create": "true"},
            content=WITH_ERRORS,
            headers=CSV,
        ).json()
        assert not_created["applied"] is False
        assert_problem(call("GET", "/v1/banks/never"), 404)
        fresh = call(
            "POST",
            "/v1/banks/fresh/import",
            params={"format": "csv", "create": "true", "kind": "allow", "threshold": 12},
            content=LIST_V2,
            headers=CSV,
        ).json()
        assert (fresh["applied"], fresh["added"]) == (True, 3)
        shown = call("GET", "/v1/banks/fresh").json()
        assert (shown["kind"], shown["pdq_threshold"], shown["entries"]["pdq"]) == ("allow", 12, 1)

        # settings
        patched = call(
            "PATCH",
            "/v1/banks/ngo-list",
            json={"enabled": False, "pdq_threshold": 10, "source": "changed", "licence": "other"},
        ).json()
        assert (patched["enabled"], patched["pdq_threshold"]) == (False, 10)
        assert (patched["source"], patched["licence"], patched["kind"]) == (
            "changed",
            "other",
            "known",
        )
        assert call("GET", "/v1/banks/ngo-list").json()["enabled"] is False
        assert call("PATCH", "/v1/banks/ngo-list", json={"kind": "allow"}).json()["kind"] == "allow"
        assert_problem(call("PATCH", "/v1/banks/ngo-list", json={"pdq_threshold": -1}), 422)
        assert_problem(call("PATCH", "/v1/banks/nowhere", json={"enabled": True}), 404)

        # entries, one by one
        entries = {
            "entries": [
                {"algorithm": "md5", "hash": MD5[0].upper(), "entry_id": "x1"},
                {"algorithm": "sha1", "hash": SHA1[1], "category": "c", "metadata": {"k": 1}},
            ]
        }
        counts = {"added": 0, "updated": 0, "unchanged": 0, "restored": 0, "removed": 0}
        added = call("POST", "/v1/banks/ngo-list/entries", json=entries).json()
        assert added == counts | {"added": 1, "restored": 1}  # MD5[0] left the list with v3
        again = call("POST", "/v1/banks/ngo-list/entries", json=entries).json()
        assert again == counts | {"unchanged": 2}
        short = {"entries": [{"algorithm": "md5", "hash": MD5[2][:-1]}]}
        assert_problem(call("POST", "/v1/banks/ngo-list/entries", json=short), 422)
        assert_problem(call("POST", "/v1/banks/nowhere/entries", json=entries), 404)
        assert call("GET", "/v1/banks/ngo-list").json()["entries"] == {"md5": 3, "sha1": 1}
        gone = {"entries": [{"algorithm": "md5", "hash": MD5[0]}]}
        assert call("POST", "/v1/banks/ngo-list/entries/remove", json=gone).json()["removed"] == 1
        assert call("POST", "/v1/banks/ngo-list/entries/remove", json=gone).json()["removed"] == 0
        shown = call("GET", "/v1/banks/ngo-list").json()
        assert shown["entries"] == {"md5": 2, "sha1": 1}

        # delete
        deleted = call("DELETE", "/v1/banks/fresh")
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert_problem(call("GET", "/v1/banks/fresh"), 404)
        assert_problem(call("DELETE", "/v1/banks/fresh"), 404)
        assert [bank["name"] for bank in call("GET", "/v1/banks").json()] == ["ngo-list"]

    leaks = [text for text in call.texts if any(value in text for value in ALL_HASHES)]
    assert not leaks, leaks
    assert len(call.texts) >= 40  # the leak check saw the whole conversation


def _write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"{index}.jpg").write_bytes(IMAGES[index % len(IMAGES)])


def test_runs_api(api_settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "storage"
    uploads = root / "uploads"
    _write_images(uploads, 3)
    (uploads / "nested").mkdir()
    (uploads / "nested" / "t.png").write_bytes(encode(generate(Kind.TEXTURE, 5, 64, 64), "PNG"))
    (uploads / "notes.txt").write_text("not an image")
    outside = tmp_path / "outside"
    _write_images(outside, 1)
    (root / "link-out").symlink_to(outside)
    settings = api_settings.model_copy(update={"scan_roots": (root,)})
    admin = bearer(make_token(settings, Scope.ADMIN))
    with running_server(settings) as base, httpx.Client(base_url=base, headers=admin) as http:
        started = http.post("/v1/runs", json={"paths": [str(uploads)]})
        assert started.status_code == 202
        run = started.json()
        assert (run["status"], run["roots"]) == ("running", [str(uploads)])
        done = wait_until(
            lambda: http.get(f"/v1/runs/{run['id']}").json(), lambda r: not r["active"]
        )
        assert done["status"] == "completed", done
        assert done["finished_at"] is not None
        assert done["total"] == 5
        assert sum(done["counts"].values()) == done["total"]
        assert done["counts"] == {
            "matched": 0,
            "no_match": 4,
            "undecodable": 0,
            "unsupported": 1,
            "error": 0,
            "not_answered": 0,
        }
        assert [r["id"] for r in http.get("/v1/runs").json()] == [run["id"]]

        for paths in (
            [str(outside)],
            ["storage/uploads"],  # relative
            [str(root / ".." / "outside")],
            [str(root / "link-out")],  # a symlink out of the root
            [str(uploads), str(outside)],
            [str(root) + "-sibling"],  # a prefix of the root is not under it
        ):
            refused = assert_problem(http.post("/v1/runs", json={"paths": paths}), 403)
            assert "not an absolute path under a scan root" in refused["detail"], paths
        assert len(http.get("/v1/runs").json()) == 1
        assert_problem(http.get("/v1/runs/999999"), 404)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_runs_are_refused_without_scan_roots(api_settings: Settings, tmp_path: Path) -> None:
    _write_images(tmp_path / "photos", 1)
    admin = bearer(make_token(api_settings, Scope.ADMIN))
    with running_server(api_settings) as base, httpx.Client(base_url=base, headers=admin) as http:
        refused = http.post("/v1/runs", json={"paths": [str(tmp_path / "photos")]})
        assert "no scan roots" in assert_problem(refused, 403)["detail"]
        assert http.get("/v1/runs").json() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_run_that_is_active_is_not_started_twice(api_settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "storage"
    _write_images(root / "many", 12)
    settings = api_settings.model_copy(update={"scan_roots": (root,)})
    admin = bearer(make_token(settings, Scope.ADMIN))
    with running_server(settings) as base, httpx.Client(base_url=base, headers=admin) as http:
        first = http.post("/v1/runs", json={"paths": [str(root / "many")]})
        second = http.post("/v1/runs", json={"paths": [str(root / "many")]})
        try:
            assert first.status_code == 202
            assert_problem(second, 409)
        finally:
            wait_until(
                lambda: http.get(f"/v1/runs/{first.json()['id']}").json(),
                lambda r: not r["active"],
            )
            time.sleep(0.2)  # let a second thread, if any, finish before the server stops


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_run_does_not_follow_symlinks_out_of_the_scan_roots(
    api_settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "storage"
    _write_images(root / "uploads", 1)
    outside = tmp_path / "outside"
    _write_images(outside, 2)
    (root / "uploads" / "file-out.jpg").symlink_to(outside / "1.jpg")
    (root / "uploads" / "folder-out").symlink_to(outside)
    settings = api_settings.model_copy(update={"scan_roots": (root,)})
    admin = bearer(make_token(settings, Scope.ADMIN))
    with running_server(settings) as base, httpx.Client(base_url=base, headers=admin) as http:
        run = http.post("/v1/runs", json={"paths": [str(root / "uploads")]}).json()
        done = wait_until(
            lambda: http.get(f"/v1/runs/{run['id']}").json(), lambda r: not r["active"]
        )
        assert done["status"] == "completed"
        assert done["counts"]["no_match"] == 1, done  # only uploads/0.jpg was read
