"""Refusing work early: overload 503s, per-token 429s, lookup budgets and batch limits."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.signals import PdqMode
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from tests.api_support import assert_problem, bearer, make_token, metric
from tests.server import running_server

SMALL = encode(generate(Kind.PHOTO, seed=11, width=160, height=120))
#: An overloaded server answers within this (it refuses as soon as a small body is in).
REFUSAL_LIMIT = 0.05


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """A 4000x3000 JPEG (about 0.3 s of reference-mode hashing): a slow, benign upload."""
    image = generate(Kind.PHOTO, seed=1, width=800, height=600)
    return encode(image.resize((4000, 3000), Image.Resampling.BILINEAR))


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    seconds: float
    retry_after: str | None
    body: str
    started: float
    ended: float


def _post(http: httpx.Client, data: bytes) -> Answer:
    started = time.perf_counter()
    response = http.post("/v1/scan", content=data)
    ended = time.perf_counter()
    if response.status_code not in (200, 429, 503):
        raise AssertionError(f"{response.status_code}: {response.text[:300]}")
    if response.status_code != 200:
        assert_problem(response, response.status_code)
    return Answer(
        status=response.status_code,
        seconds=ended - started,
        retry_after=response.headers.get("retry-after"),
        body=response.text,
        started=started,
        ended=ended,
    )


@contextmanager
def _busy(client: Callable[[], httpx.Client], data: bytes) -> Iterator[list[Answer]]:
    """Keep uploading ``data`` from another thread until the block ends; yields its answers."""
    stop = threading.Event()
    answers: list[Answer] = []

    def hold() -> None:
        with client() as http:
            while not stop.is_set():
                answers.append(_post(http, data))

    holder = threading.Thread(target=hold, name="slow-uploader")
    holder.start()
    try:
        yield answers
    finally:
        stop.set()
        holder.join(timeout=60)


def _probe_until(
    probe: Callable[[], Answer], enough: Callable[[list[Answer]], bool], seconds: float = 90
) -> list[Answer]:
    answers: list[Answer] = []
    deadline = time.monotonic() + seconds
    while not enough(answers) and time.monotonic() < deadline:
        answers.append(probe())
        time.sleep(0.01)
    return answers


def _statuses(answers: list[Answer]) -> list[int]:
    return [answer.status for answer in answers]


def test_overload_is_refused_at_once_while_accepted_uploads_are_scanned(
    api_settings: Settings, big_jpeg: bytes
) -> None:
    settings = api_settings.model_copy(
        update={
            "workers": 1,
            "queue_per_worker": 1,
            "token_concurrency": 16,
            "pdq_mode": PdqMode.REFERENCE,
        }
    )
    auth = bearer(make_token(settings, Scope.SCAN))
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    with running_server(settings) as base:

        def client() -> httpx.Client:
            return httpx.Client(base_url=base, headers=auth, timeout=60)

        with client() as http:
            warm = _post(http, big_jpeg)
            assert warm.status == 200
            hold = _post(http, big_jpeg).seconds  # how long one slow upload keeps the slot

            # a burst of slow uploads: one slot, so some are refused, the others scanned
            barrier = threading.Barrier(6)

            def upload(_: int) -> Answer:
                with client() as own:
                    barrier.wait()
                    return _post(own, big_jpeg)

            with ThreadPoolExecutor(6) as pool:
                burst = list(pool.map(upload, range(6)))
            assert set(_statuses(burst)) == {200, 503}, _statuses(burst)
            for answer in burst:
                if answer.status == 200:
                    assert '"outcome":"no_match"' in answer.body
                else:
                    assert answer.retry_after is not None
                    assert int(answer.retry_after) >= 1
                    assert "Overloaded" in answer.body
                    assert answer.seconds < hold, (answer.seconds, hold)  # never queued

            # while a slow upload holds the slot, a refusal comes back at once
            with _busy(client, big_jpeg) as held:
                probes = _probe_until(
                    lambda: _post(http, SMALL), lambda got: _statuses(got).count(503) >= 5
                )
            assert set(_statuses(probes)) <= {200, 503}
            assert set(_statuses(held)) <= {200, 503}
            assert 200 in _statuses(held)
            refused = [answer for answer in probes if answer.status == 503]
            assert len(refused) >= 5, _statuses(probes)
            assert all(answer.retry_after == "1" for answer in refused)
            latencies = sorted(answer.seconds for answer in refused)
            assert statistics.median(latencies) < REFUSAL_LIMIT, latencies
            assert latencies[-1] < hold, (latencies, hold)

            refusals = _statuses(burst + held + probes).count(503)
            metrics = http.get("/metrics", headers=scraper).text
            scan_503 = metric(
                metrics, "hashguard_http_requests_total", route="/v1/scan", status="503"
            )
            assert scan_503 == refusals
            assert metric(metrics, "hashguard_rejected_total", reason="overload") == refusals
            assert metric(metrics, "hashguard_hashing_in_flight") == 0


def test_readiness_and_metrics_documents(api_settings: Settings) -> None:
    scraper = bearer(make_token(api_settings, Scope.STATS, name="prometheus"))
    with running_server(api_settings) as base, httpx.Client(base_url=base) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.headers["content-type"] == "application/json"
        body = ready.json()
        assert body["status"] == "ready"
        assert set(body["detail"]) == {
            "index_entries",
            "index_age_seconds",
            "hashing_pool_rebuilds",
        }
        assert body["detail"]["hashing_pool_rebuilds"] == 0
        assert body["detail"]["index_entries"] == 0
        assert 0 <= body["detail"]["index_age_seconds"] < 5
        assert http.get("/healthz").json() == {"status": "ok", "detail": {}}

        metrics = http.get("/metrics", headers=scraper)
        assert metrics.status_code == 200
        media_type, _, parameters = metrics.headers["content-type"].partition(";")
        assert media_type == "text/plain"
        assert "version=" in parameters
        families = {family.name for family in text_string_to_metric_families(metrics.text)}
        assert families >= {
            "hashguard_http_requests",
            "hashguard_http_request_seconds",
            "hashguard_scan_outcomes",
            "hashguard_matches",
            "hashguard_rejected",
            "hashguard_index_entries",
            "hashguard_index_pending",
            "hashguard_index_age_seconds",
            "hashguard_hashing_in_flight",
            "hashguard_uploads_receiving",
            "hashguard_hashing_pool_rebuilds",
            "hashguard_hashing_pool_ready",
        }
        before = metric(
            metrics.text, "hashguard_http_requests_total", route="/readyz", status="200"
        )
        http.get("/readyz")
        after = http.get("/metrics", headers=scraper).text
        assert metric(after, "hashguard_http_requests_total", route="/readyz", status="200") == (
            before + 1
        )
        assert metric(after, "hashguard_http_requests_total", route="/metrics", status="200") == 1


def test_a_token_over_its_concurrency_limit_gets_429(
    api_settings: Settings, big_jpeg: bytes
) -> None:
    settings = api_settings.model_copy(
        update={
            "workers": 1,
            "queue_per_worker": 8,
            "token_concurrency": 1,
            "pdq_mode": PdqMode.REFERENCE,
        }
    )
    busy_token = bearer(make_token(settings, Scope.SCAN, name="busy"))
    other_token = bearer(make_token(settings, Scope.SCAN, name="other"))
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    with (
        running_server(settings) as base,
        httpx.Client(base_url=base, headers=busy_token, timeout=60) as busy,
        httpx.Client(base_url=base, headers=other_token, timeout=60) as other,
    ):
        assert _post(busy, big_jpeg).status == 200  # warm

        def client() -> httpx.Client:
            return httpx.Client(base_url=base, headers=busy_token, timeout=60)

        others: list[Answer] = []

        def probe() -> Answer:
            others.append(_post(other, SMALL))
            return _post(busy, SMALL)

        with _busy(client, big_jpeg) as held:
            probes = _probe_until(probe, lambda got: _statuses(got).count(429) >= 3)
        assert set(_statuses(probes)) <= {200, 429}
        assert set(_statuses(held)) <= {200, 429}
        limited = [answer for answer in probes if answer.status == 429]
        assert len(limited) >= 3, _statuses(probes)
        assert all(answer.retry_after == "1" for answer in limited)
        assert all("1 uploads in flight" in answer.body for answer in limited)
        # another token is not held back by this one's limit, nor is the server overloaded
        assert set(_statuses(others)) == {200}
        token_limited = _statuses(probes + held).count(429)
        metrics = busy.get("/metrics", headers=scraper).text
        assert metric(metrics, "hashguard_rejected_total", reason="token_limit") == token_limited
        assert metric(metrics, "hashguard_http_requests_total", route="/v1/scan", status="503") == 0


def _hashes(count: int, start: int = 0) -> dict[str, list[dict[str, str]]]:
    return {
        "hashes": [
            {"algorithm": "md5", "hash": f"{index:032x}"} for index in range(start, start + count)
        ]
    }


def test_lookup_budget_per_token_and_batch_limit(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"lookup_rate_per_minute": 10, "lookup_max_batch": 4})
    first = bearer(make_token(settings, Scope.LOOKUP, name="first"))
    second = bearer(make_token(settings, Scope.LOOKUP, name="second"))
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    with running_server(settings) as base, httpx.Client(base_url=base) as http:

        def lookup(auth: dict[str, str], count: int) -> httpx.Response:
            return http.post("/v1/lookup", json=_hashes(count), headers=auth)

        answer = lookup(first, 4)
        assert answer.status_code == 200
        assert [(r["valid"], r["matches"]) for r in answer.json()["results"]] == [(True, [])] * 4
        assert lookup(first, 4).status_code == 200
        spent = assert_problem(lookup(first, 4), 429)  # 8 of 10 used: 4 more do not fit
        assert "10 hashes a minute" in spent["detail"]
        retry_after = lookup(first, 4).headers["retry-after"]
        assert retry_after.isdigit()
        assert 1 <= int(retry_after) <= 60
        assert lookup(first, 2).status_code == 200  # refused calls spent nothing

        too_many = assert_problem(lookup(second, 5), 413)
        assert "at most 4 hashes" in too_many["detail"]
        # each token has its own budget, and a refused batch spent none of it
        assert lookup(second, 4).status_code == 200
        assert lookup(second, 4).status_code == 200
        assert_problem(lookup(second, 4), 429)

        # a vPDQ frame is one index search: a video is charged its frames, up to a batch
        third = bearer(make_token(settings, Scope.LOOKUP, name="third"))

        def video(*frames: int) -> httpx.Response:
            items = [
                {"algorithm": "vpdq", "hash": [f"{i:064x},100,{i}.0" for i in range(1, n + 1)]}
                for n in frames
            ]
            return http.post("/v1/lookup", json={"hashes": items}, headers=third)

        assert video(3).status_code == 200  # 3 of 10
        assert video(50).status_code == 200  # a long video: one batch's share, 4
        assert video(3).status_code == 200  # 10 of 10
        assert_problem(video(1), 429)
        # every frame counted, a call holds at most a long video's (10,800)
        assert "vPDQ frame" in assert_problem(video(6000, 6000), 413)["detail"]

        metrics = http.get("/metrics", headers=scraper).text
        assert metric(metrics, "hashguard_rejected_total", reason="token_limit") == 4
        assert metric(metrics, "hashguard_rejected_total", reason="too_large") == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_retry_after_of_a_refused_lookup_comes_true(api_settings: Settings) -> None:
    """A batch may be larger than the per-minute rate (the bucket holds the largest
    batch), and the Retry-After of a refusal is long enough."""
    settings = api_settings.model_copy(
        update={"lookup_rate_per_minute": 120, "lookup_max_batch": 130}
    )
    auth = bearer(make_token(settings, Scope.LOOKUP))
    with running_server(settings) as base, httpx.Client(base_url=base, headers=auth) as http:
        assert http.post("/v1/lookup", json=_hashes(130)).status_code == 200
        refused = http.post("/v1/lookup", json=_hashes(5))
        assert refused.status_code == 429
        time.sleep(int(refused.headers["retry-after"]) + 0.2)
        again = http.post("/v1/lookup", json=_hashes(5))
        assert again.status_code == 200, again.text


def _unloadable_index(settings: Settings) -> Settings:
    """Settings whose match index cannot load: its folder is a file."""
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "index").write_text("not a folder")
    return settings


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_not_ready_says_why_and_nothing_is_answered_unchecked(api_settings: Settings) -> None:
    settings = _unloadable_index(api_settings)
    auth = bearer(make_token(settings, Scope.ADMIN))
    with (
        running_server(settings, ready=False) as base,
        httpx.Client(base_url=base, headers=auth) as http,
    ):
        not_ready = http.get("/readyz")
        assert not_ready.status_code == 503
        body = not_ready.json()
        assert body["status"] == "not ready"
        assert any("match index failed to load" in p for p in body["detail"]["problems"])
        assert http.get("/healthz").status_code == 200
        # an upload is hashed but cannot be matched: 503, never an answer of no_match
        scanned = assert_problem(http.post("/v1/scan", content=SMALL), 503)
        assert scanned["title"] == "Not ready"
        looked_up = http.post("/v1/lookup", json=_hashes(1))
        assert_problem(looked_up, 503)
        assert looked_up.headers["retry-after"] == "5"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_readiness_503s_are_not_counted_as_overload(api_settings: Settings) -> None:
    settings = _unloadable_index(api_settings)
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    with running_server(settings, ready=False) as base, httpx.Client(base_url=base) as http:
        assert http.get("/readyz").status_code == 503
        metrics = http.get("/metrics", headers=scraper).text
        assert metric(metrics, "hashguard_rejected_total", reason="overload") == 0


def test_clients_as_many_as_the_slots_are_never_refused(api_settings: Settings) -> None:
    """A slot frees before its answer leaves: a client that sends its next upload as
    soon as it has an answer finds its slot free (no 503 from a slot still held)."""
    settings = api_settings.model_copy(update={"workers": 1, "queue_per_worker": 2})
    # one token each: no token may hold more than half of the slots
    auths = [bearer(make_token(settings, Scope.SCAN, name=f"client-{i}")) for i in range(2)]
    with running_server(settings) as base:

        def client(index: int) -> list[int]:
            with httpx.Client(base_url=base, headers=auths[index], timeout=30) as http:
                return [http.post("/v1/scan", content=SMALL).status_code for _ in range(25)]

        with ThreadPoolExecutor(2) as pool:
            statuses = [status for answers in pool.map(client, range(2)) for status in answers]
    assert statuses == [200] * 50, statuses
