"""Hostile benign uploads to /v1/scan: typed outcomes, body size limits and broken multipart."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from tests import hostile
from tests.api_support import assert_problem, bearer, make_token, metric
from tests.server import running_server

#: The one outcome of each hostile upload; every file of the hostile set must be named here.
EXPECTED = {
    "png_bomb_over_cap": "undecodable",
    "bomb_81mp": "undecodable",
    "lying_header": "undecodable",
    "truncated_jpeg": "undecodable",
    "truncated_png": "undecodable",
    "truncated_webp": "undecodable",
    "jpeg_cut_after_headers": "undecodable",
    "frame_flood_gif": "no_match",  # only the first frame is hashed
    "empty": "unsupported",
    "text": "unsupported",
}

GOOD = encode(generate(Kind.PHOTO, seed=21, width=320, height=240))


@pytest.fixture(scope="module")
def hostile_uploads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bytes]]:
    """Every hostile file by name: (file name, bytes)."""
    written = hostile.write_hostile_set(tmp_path_factory.mktemp("hostile"))
    files = {name: (path.name, path.read_bytes()) for name, path in written.items()}
    files["jpeg_cut_after_headers"] = ("cut.jpg", GOOD[:600])
    files["text"] = ("notes.txt", b"just some text, not an image\n")
    return files


def _scan_token(settings: Settings, *more: Scope) -> dict[str, str]:
    return bearer(make_token(settings, Scope.SCAN, *more))


def test_every_hostile_upload_gets_its_typed_outcome_and_the_server_keeps_serving(
    api_settings: Settings, hostile_uploads: dict[str, tuple[str, bytes]]
) -> None:
    assert set(hostile_uploads) == set(EXPECTED)
    auth = _scan_token(api_settings)
    scraper = bearer(make_token(api_settings, Scope.STATS, name="prometheus"))
    failures: list[str] = []
    with (
        running_server(api_settings) as base,
        httpx.Client(base_url=base, headers=auth, timeout=60) as http,
    ):
        for name, (filename, data) in hostile_uploads.items():
            for how in ("multipart", "raw body"):
                if how == "multipart":
                    answer = http.post("/v1/scan", files={"file": (filename, data)})
                else:
                    answer = http.post("/v1/scan", content=data)
                if answer.status_code != 200:
                    failures.append(f"{name} as {how}: {answer.status_code} {answer.text[:200]}")
                    continue
                body = answer.json()
                got = (body["outcome"], body["decision"]["matched"], body["matches"])
                if got != (EXPECTED[name], False, []):
                    failures.append(f"{name} as {how}: {got} {body['reason']!r}")
                if EXPECTED[name] != "no_match" and not body["reason"]:
                    failures.append(f"{name} as {how}: {body['outcome']} without a reason")
                # the server hashed exactly the bytes sent, whichever way they came
                if (body["signals"] or {}).get("md5") != hashlib.md5(data).hexdigest():
                    failures.append(f"{name} as {how}: md5 {body['signals']!r}")
        assert not failures, "\n".join(failures)

        good = http.post(
            "/v1/scan", files={"file": ("good.jpg", GOOD)}, data={"content_id": "after-hostile"}
        )
        assert good.status_code == 200
        assert good.json()["outcome"] == "no_match"
        assert good.json()["content"]["content_id"] == "after-hostile"
        assert [p["frame"] for p in good.json()["signals"]["pdq"]] == [0]
        assert http.get("/readyz").status_code == 200
        metrics = http.get("/metrics", headers=scraper).text
        sent = {"undecodable": 7 * 2, "unsupported": 2 * 2, "no_match": 1 * 2 + 1}
        for outcome, count in sent.items():
            assert metric(metrics, "hashguard_scan_outcomes_total", outcome=outcome) == count


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def tiny_limit(api_settings: Settings) -> Iterator[tuple[httpx.Client, int]]:
    """A client of a server whose upload limit is 0.01 MB, and that limit in bytes (its
    token may scan and read /metrics)."""
    settings = api_settings.model_copy(update={"max_upload_mb": 0.01})
    limit = int(0.01 * 1024 * 1024)
    with (
        running_server(settings) as base,
        httpx.Client(base_url=base, headers=_scan_token(settings, Scope.STATS), timeout=60) as http,
    ):
        yield http, limit


def test_a_body_over_the_limit_is_refused_with_413_with_or_without_content_length(
    tiny_limit: tuple[httpx.Client, int],
) -> None:
    http, limit = tiny_limit
    at_limit, over = b"\0" * limit, b"\0" * (limit + 1)

    assert http.post("/v1/scan", content=at_limit).json()["outcome"] == "unsupported"
    assert "too large" in assert_problem(http.post("/v1/scan", content=over), 413)["title"]

    streamed = http.post("/v1/scan", content=_chunks(at_limit))
    assert streamed.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in streamed.request.headers
    assert streamed.json()["outcome"] == "unsupported"
    assert_problem(http.post("/v1/scan", content=_chunks(over)), 413)
    # far over the limit: refused while the client is still sending
    assert_problem(http.post("/v1/scan", content=_chunks(b"\0" * (limit * 6))), 413)

    assert_problem(http.post("/v1/scan", files={"file": ("big.bin", over)}), 413)

    assert http.post("/v1/scan", content=GOOD[: limit // 2]).json()["outcome"] == "undecodable"
    assert metric(http.get("/metrics").text, "hashguard_rejected_total", reason="too_large") == 4


def test_broken_multipart_is_a_400(tiny_limit: tuple[httpx.Client, int]) -> None:
    http, _ = tiny_limit
    boundary = "b0undary"
    multipart = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    cases = {
        "not multipart at all": b"this is not a multipart body",
        "another boundary": (
            b'--other\r\nContent-Disposition: form-data; name="file"\r\n\r\nDATA\r\n--other--\r\n'
        ),
        "a broken part header": (
            b"--b0undary\r\nContent-Disposition form-data name file\r\n\r\nDATA\r\n--b0undary--\r\n"
        ),
    }
    for name, body in cases.items():
        detail = assert_problem(http.post("/v1/scan", content=body, headers=multipart), 400)
        assert "malformed multipart" in detail["detail"], name

    no_file = http.post("/v1/scan", files={"attachment": ("a.jpg", GOOD[:1000])})
    assert "without a 'file' part" in assert_problem(no_file, 400)["detail"]
    empty = http.post("/v1/scan", content=b"", headers=multipart)
    assert "closing boundary" in assert_problem(empty, 400)["detail"]
    no_boundary = http.post(
        "/v1/scan", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert "boundary" in assert_problem(no_boundary, 400)["detail"]

    good = http.post("/v1/scan", files={"file": ("small.jpg", GOOD[:100])})
    assert good.json()["outcome"] == "undecodable"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_multipart_body_without_its_closing_boundary_is_a_400(
    tiny_limit: tuple[httpx.Client, int],
) -> None:
    http, _ = tiny_limit
    cut = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + GOOD[:2000]
    )
    answer = http.post(
        "/v1/scan",
        content=cut,
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert_problem(answer, 400)
