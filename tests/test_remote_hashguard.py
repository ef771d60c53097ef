"""The ``hashguard`` remote matcher against a real hashguard service (in a thread here)
behind a recording proxy: the remote-matcher contract, hashes only on the wire, matches
that name their list source, category and version, shared calls, and /v1/whoami."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from hashguard.domain.banks import BankEntry
from hashguard.domain.remote import RemoteStatus
from hashguard.domain.signals import Algorithm, FileSignals, PdqMode
from hashguard.domain.tokens import Scope
from hashguard.plugins import PluginError, Registry
from hashguard.remote.base import RemoteMatcher
from hashguard.remote.hashguard import (
    LOOKUP_PATH,
    NO_REFERENCE,
    HashguardMatcher,
    WhoamiError,
    whoami,
)
from hashguard.remote.service import configure_remote
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.testing import RemoteMatcherContract
from tests.api_support import bearer, make_token
from tests.fakes import benign_image, signals_of
from tests.fakes.hashguard_proxy import HashguardProxy
from tests.server import running_server

KNOWN = benign_image(seed=7)
#: listed by its reference PDQ hash only; the client holds a JPEG copy of it
NEAR = benign_image(seed=11)
UNKNOWN = benign_image(seed=23)
SOURCE = "test hotline"


def jpeg(data: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


NEAR_COPY = jpeg(NEAR)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Settings]]:
    """A real service with one bank (KNOWN by MD5, NEAR by PDQ) and a lookup token."""
    settings = Settings(
        home=tmp_path_factory.mktemp("service"), workers=1, index_refresh_seconds=0.2
    )
    with contextlib.closing(open_store(settings.resolved_database_url, migrate=True)) as store:
        store.banks.create("known", source=SOURCE, licence="tests only")
        store.banks.add_entries(
            "known",
            [
                BankEntry(
                    algorithm=Algorithm.MD5,
                    value=signals_of(KNOWN).md5,
                    entry_id="k-1",
                    category="test-category",
                ),
                BankEntry(
                    algorithm=Algorithm.PDQ,
                    value=signals_of(NEAR).pdq[0].value,
                    entry_id="k-2",
                    category="test-category",
                ),
            ],
        )
    token = make_token(settings, Scope.LOOKUP, name="small-host-scan")
    with running_server(settings) as base:
        yield base, token, settings


@pytest.fixture
def proxy(service: tuple[str, str, Settings]) -> Iterator[HashguardProxy]:
    with HashguardProxy(service[0]) as running:
        yield running


def client(proxy: HashguardProxy, token: str, **settings: Any) -> HashguardMatcher:
    options: dict[str, Any] = {
        "base_url": proxy.url,
        "timeout_seconds": 0.5,
        "retries": 1,
        "backoff_seconds": 0.01,
        "requests_per_second": 1000,
        "gather_seconds": 0,
        **settings,
    }
    matcher = HashguardMatcher.configure(options, {"token": SecretStr(token)})
    assert isinstance(matcher, HashguardMatcher)
    return matcher


def sent(proxy: HashguardProxy) -> list[dict[str, str]]:
    """Every hash that reached the wire, in every lookup call."""
    found: list[dict[str, str]] = []
    for request in proxy.requests:
        assert request.path == LOOKUP_PATH, request.path
        body = json.loads(request.body)
        assert set(body) == {"hashes"}
        for item in body["hashes"]:
            assert set(item) == {"algorithm", "hash"}
            found.append(item)
    return found


class TestHashguardContract(RemoteMatcherContract):
    @pytest.fixture(autouse=True)
    def _proxy(self, proxy: HashguardProxy, service: tuple[str, str, Settings]) -> None:
        self.proxy, self.token = proxy, service[1]

    def matcher(self, behaviour: str) -> RemoteMatcher:
        self.proxy.behaviour = self.behaviour = behaviour
        return client(self.proxy, self.token)

    def sample(self) -> tuple[bytes, FileSignals]:
        data = UNKNOWN if self.behaviour == "no_match" else KNOWN
        return data, signals_of(data)

    def test_only_hashes_leave(self) -> None:
        data, signals = KNOWN, signals_of(KNOWN)
        matcher = self.matcher("match")
        try:
            assert matcher.match(data, signals).status is RemoteStatus.MATCHED
        finally:
            matcher.close()
        hashes = sent(self.proxy)
        assert {(h["algorithm"], h["hash"]) for h in hashes} == {
            ("md5", signals.md5),
            ("sha1", signals.sha1),
            ("sha256", signals.sha256),
            ("pdq", signals.pdq[0].value),
        }
        assert all(len(r.body) < 2_000 for r in self.proxy.requests)


def test_a_near_match_names_its_list(
    proxy: HashguardProxy, service: tuple[str, str, Settings]
) -> None:
    matcher = client(proxy, service[1])
    try:
        result = matcher.match(NEAR_COPY, signals_of(NEAR_COPY))
    finally:
        matcher.close()
    assert signals_of(NEAR_COPY).md5 != signals_of(NEAR).md5
    assert result.status is RemoteStatus.MATCHED, result
    assert result.method == "hash"
    assert result.match_type == "near"
    assert result.distance is None, "the service does not tell this token distances"
    assert result.classification == "test-category"
    assert result.source == SOURCE
    assert result.list_version is not None
    assert int(result.list_version) > 0
    raw = json.loads(result.raw or "")
    assert raw["index_version"] == result.list_version
    assert raw["matches"][0]["bank"] == "known"
    assert raw["matches"][0]["source"] == SOURCE


def test_fast_mode_pdq_hashes_never_leave(
    proxy: HashguardProxy, service: tuple[str, str, Settings]
) -> None:
    reference = signals_of(NEAR_COPY)
    # as a large image's hash in fast mode (a small one is hashed in reference mode)
    fast = dataclasses.replace(
        reference, pdq=tuple(dataclasses.replace(p, mode=PdqMode.FAST) for p in reference.pdq)
    )
    assert fast.needs_reference
    matcher = client(proxy, service[1])
    try:
        result = matcher.match(NEAR_COPY, fast)
    finally:
        matcher.close()
    assert not [h for h in sent(proxy) if h["algorithm"] == "pdq"]
    assert result.status is RemoteStatus.NOT_ANSWERED, "half a check is not no_match"
    assert result.reason == NO_REFERENCE


def test_files_asked_about_at_once_share_calls(
    proxy: HashguardProxy, service: tuple[str, str, Settings]
) -> None:
    matcher = client(proxy, service[1], gather_seconds=0.3)
    files = [KNOWN, UNKNOWN, NEAR_COPY, benign_image(seed=31)] * 2
    results: dict[int, RemoteStatus] = {}
    start = threading.Barrier(len(files))

    def ask(i: int) -> None:
        start.wait()
        results[i] = matcher.match(files[i], signals_of(files[i])).status

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(files))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        matcher.close()
    assert len(proxy.requests) < len(files)
    expected = [RemoteStatus.MATCHED, RemoteStatus.NO_MATCH, RemoteStatus.MATCHED]
    assert [results[i] for i in range(3)] == expected
    assert [results[i] for i in (4, 5, 6)] == expected
    # each hash once per call
    for request in proxy.requests:
        items = [tuple(h.values()) for h in json.loads(request.body)["hashes"]]
        assert len(items) == len(set(items))


def test_a_file_with_more_hashes_than_a_call_takes_goes_in_several(
    proxy: HashguardProxy, service: tuple[str, str, Settings]
) -> None:
    matcher = client(proxy, service[1], batch_size=3)
    try:
        result = matcher.match(UNKNOWN, signals_of(UNKNOWN))
    finally:
        matcher.close()
    assert result.status is RemoteStatus.NO_MATCH
    assert [len(json.loads(r.body)["hashes"]) for r in proxy.requests] == [3, 1]


def test_media_and_plain_http_to_another_host_are_refused() -> None:
    token = {"token": SecretStr("t")}
    with pytest.raises(PluginError, match="hashes only"):
        HashguardMatcher.configure({"base_url": "https://x.test", "allow_media": True}, token)
    with pytest.raises(PluginError, match="https"):
        HashguardMatcher.configure({"base_url": "http://check.example.test"}, token)


def test_the_token_appears_in_no_result_and_no_log(
    proxy: HashguardProxy, service: tuple[str, str, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = service[1]
    for behaviour in ("forward", "unauthorized", "server_error", "malformed"):
        proxy.behaviour = behaviour
        matcher = client(proxy, token)
        try:
            result = matcher.match(KNOWN, signals_of(KNOWN))
        finally:
            matcher.close()
        assert token not in repr(result)
    assert token not in caplog.text


def test_whoami_names_the_token_and_refuses_what_cannot_look_up(
    proxy: HashguardProxy, service: tuple[str, str, Settings]
) -> None:
    base, token, settings = service
    me = whoami(proxy.url, token)
    assert me["name"] == "small-host-scan"
    assert me["scopes"] == ["lookup"]
    assert me["lookup_max_batch"] == settings.lookup_max_batch
    with pytest.raises(WhoamiError, match="refused the token") as refused:
        whoami(proxy.url, "hgt_" + "u" * 43)
    assert "hgt_" not in str(refused.value)
    # any valid token may ask; one that cannot look up is refused by the client
    banks_only = make_token(settings, Scope.BANKS_READ, name="banks-only")
    answer = httpx.get(base + "/v1/whoami", headers=bearer(banks_only), timeout=10)
    assert answer.status_code == 200, answer.text
    with pytest.raises(WhoamiError, match="lookup scope"):
        whoami(proxy.url, banks_only)


def test_a_lookup_answer_names_its_list_version(service: tuple[str, str, Settings]) -> None:
    base, token, _ = service
    answer = httpx.post(
        base + "/v1/lookup",
        json={"hashes": [{"algorithm": "md5", "hash": signals_of(KNOWN).md5}]},
        headers=bearer(token),
        timeout=10,
    ).json()
    assert isinstance(answer["index_version"], int)
    (match,) = answer["results"][0]["matches"]
    assert match["source"] == SOURCE
    assert "list_version" in match


def test_configured_under_its_own_name() -> None:
    (matcher,) = configure_remote(
        Registry.load(),
        {"hotline": {"adapter": "hashguard", "base_url": "https://check.example.test"}},
        {"hotline": {"token": SecretStr("t")}},
    )
    try:
        assert matcher.label == "hotline"
        assert matcher.name == "hashguard"
    finally:
        matcher.close()
