"""The Arachnid Shield adapter against a loopback fake of its documented contract: the
remote-matcher contract by hash and by media, the hash-only preference, media only with
allow_media, classifications, retries, and no credential anywhere."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals, PdqMode
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.remote.arachnid import (
    MEDIA_PATH,
    NO_MEDIA,
    NO_REFERENCE,
    PDQ_PATH,
    ArachnidShieldMatcher,
)
from hashguard.remote.base import RemoteMatcher, sends_pdq
from hashguard.testing import RemoteMatcherContract
from tests.fakes import BEHAVIOURS, benign_image, flat_image, signals_of
from tests.fakes.arachnid import FakeArachnidShield

USERNAME = "canary-user-3b7d"
PASSWORD = "canary-password-8e21c4"
BASIC = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


@pytest.fixture
def fake() -> Iterator[FakeArachnidShield]:
    with FakeArachnidShield(USERNAME, PASSWORD) as running:
        yield running
    assert not any(p.startswith("/v1/media/submit") for p in running.paths()), (
        "media is never submitted for retention"
    )


def shield(
    fake: FakeArachnidShield, username: str = USERNAME, password: str = PASSWORD, **settings: Any
) -> ArachnidShieldMatcher:
    options: dict[str, Any] = {
        "base_url": fake.url,
        "timeout_seconds": 0.3,
        "retries": 1,
        "backoff_seconds": 0.01,
        "requests_per_second": 1000,
        **settings,
    }
    matcher = ArachnidShieldMatcher.configure(
        options, {"username": SecretStr(username), "password": SecretStr(password)}
    )
    assert isinstance(matcher, ArachnidShieldMatcher)
    return matcher


def ask(matcher: RemoteMatcher, data: bytes, signals: FileSignals | None = None) -> RemoteResult:
    try:
        return matcher.match(data, signals or signals_of(data))
    finally:
        matcher.close()


def b64(pdq_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(pdq_hex)).decode()


class TestArachnidByHash(RemoteMatcherContract):
    """Hash-only: the sample has a PDQ hash of good quality, media is not allowed."""

    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeArachnidShield) -> None:
        self.fake = fake

    def matcher(self, behaviour: str) -> RemoteMatcher:
        self.fake.behaviour = behaviour
        return shield(self.fake)

    def sample(self) -> tuple[bytes, FileSignals]:
        data = benign_image()
        return data, signals_of(data)

    def test_the_lookup_sends_only_what_it_may(self) -> None:
        self._ask("match")
        assert self.fake.paths() == [PDQ_PATH]


class TestArachnidByMedia(TestArachnidByHash):
    """The media: no PDQ hash of good quality, and media allowed."""

    def matcher(self, behaviour: str) -> RemoteMatcher:
        self.fake.behaviour = behaviour
        return shield(self.fake, allow_media=True)

    def sample(self) -> tuple[bytes, FileSignals]:
        data = flat_image()
        return data, signals_of(data)

    def test_the_lookup_sends_only_what_it_may(self) -> None:
        self._ask("match")
        assert self.fake.paths() == [MEDIA_PATH]


def test_the_hash_lookup_is_preferred_even_when_media_is_allowed(
    fake: FakeArachnidShield,
) -> None:
    fake.behaviour = "no_match"
    data = benign_image()
    signals = signals_of(data)
    result = ask(shield(fake, allow_media=True), data, signals)
    assert (result.status, result.method) == (RemoteStatus.NO_MATCH, "hash")
    (request,) = fake.requests
    assert request.path == PDQ_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Basic {BASIC}"
    assert json.loads(request.body) == {"hashes": [b64(signals.pdq[0].value)]}
    assert data not in request.body


def test_without_a_good_pdq_the_media_goes_only_when_allowed(fake: FakeArachnidShield) -> None:
    fake.behaviour = "match"
    data = flat_image()
    signals = signals_of(data)
    assert signals.pdq
    assert signals.pdq[0].low_quality

    refused = ask(shield(fake), data, signals)
    assert refused.status is RemoteStatus.NOT_ANSWERED
    assert refused.reason == NO_MEDIA
    assert fake.requests == []

    sent = ask(shield(fake, allow_media=True), data, signals)
    assert (sent.status, sent.method) == (RemoteStatus.MATCHED, "media")
    (request,) = fake.requests
    assert request.path == MEDIA_PATH
    assert request.headers["content-type"] == "image/png"
    assert request.body == data


def test_media_of_an_unknown_type_is_not_sent(fake: FakeArachnidShield) -> None:
    result = ask(shield(fake, allow_media=True), b"not an image at all")
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "media type is unknown" in (result.reason or "")
    assert fake.requests == []


@pytest.mark.parametrize("allow_media", [False, True])
@pytest.mark.parametrize(
    ("classification", "distance"), [("csam", 1200), ("harmful-abusive-material", None)]
)
def test_a_match_carries_classification_type_and_distance(
    fake: FakeArachnidShield, allow_media: bool, classification: str, distance: int | None
) -> None:
    fake.behaviour = "match"
    fake.classification = classification
    fake.distance = distance
    data = flat_image() if allow_media else benign_image()
    result = ask(shield(fake, allow_media=allow_media, test_mode=False), data)
    assert result.status is RemoteStatus.MATCHED
    assert result.method == ("media" if allow_media else "hash")
    assert (result.classification, result.match_type, result.distance) == (
        classification,
        "near",
        distance,
    )
    assert result.raw is not None
    assert json.loads(result.raw)


def test_the_test_classification_is_a_match_labelled_test(fake: FakeArachnidShield) -> None:
    fake.behaviour = "match"
    fake.classification = "test"
    result = ask(shield(fake), benign_image())
    assert (result.status, result.classification) == (RemoteStatus.MATCHED, "test")


@pytest.mark.parametrize("allow_media", [False, True])
@pytest.mark.parametrize("classification", ["csam", "harmful-abusive-material", "test"])
def test_in_test_mode_every_match_is_labelled_test(
    fake: FakeArachnidShield,
    allow_media: bool,
    classification: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: test mode (the default) used to pass the service's ``csam`` through."""
    fake.behaviour = "match"
    fake.classification = classification
    data = flat_image() if allow_media else benign_image()
    matcher = shield(fake, allow_media=allow_media)
    assert matcher.arachnid.test_mode is True
    with caplog.at_level(logging.WARNING, logger="hashguard.remote.arachnid"):
        result = ask(matcher, data)
    assert (result.status, result.classification) == (RemoteStatus.MATCHED, "test")
    assert ("test mode is on" in caplog.text) is (classification != "test")
    fake.behaviour = "no_match"
    assert ask(shield(fake, allow_media=allow_media), data).classification is None


def test_only_reference_pdq_hashes_are_looked_up(fake: FakeArachnidShield) -> None:
    """A fast-mode hash never leaves: the lookup sends the reference hashes computed
    beside it, and a file with fast hashes only is not answered (not sent as media)."""
    fake.behaviour = "no_match"
    # a textured JPEG the decoder scales: the default mode's fast path
    data = encode(generate(Kind.PHOTO, 7, 1024, 768))
    fast = hash_data(data, HashOptions(max_pixels=10**8, pdq_mode=PdqMode.FAST)).signals
    both = hash_data(
        data, HashOptions(max_pixels=10**8, pdq_mode=PdqMode.FAST, also_reference=True)
    ).signals
    assert fast is not None
    assert both is not None
    assert fast.pdq[0].mode is PdqMode.FAST
    assert both.pdq == fast.pdq
    (reference,) = both.pdq_reference
    assert reference == signals_of(data).pdq[0]
    assert fast.pdq[0].value != reference.value, "the test needs hashes that differ"

    result = ask(shield(fake), data, both)
    assert result.status is RemoteStatus.NO_MATCH
    (request,) = fake.requests
    assert json.loads(request.body) == {"hashes": [b64(reference.value)]}

    for allow_media in (False, True):
        refused = ask(shield(fake, allow_media=allow_media), data, fast)
        assert (refused.status, refused.reason) == (RemoteStatus.NOT_ANSWERED, NO_REFERENCE)
    assert len(fake.requests) == 1
    matcher = shield(fake)
    try:
        assert sends_pdq([matcher]), "hashing must compute reference hashes for it"
    finally:
        matcher.close()


def test_an_unknown_classification_is_not_answered(fake: FakeArachnidShield) -> None:
    fake.behaviour = "match"
    fake.classification = "something-new"
    result = ask(shield(fake), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "unknown classification 'something-new'" in (result.reason or "")


def test_a_null_entry_is_no_match(fake: FakeArachnidShield) -> None:
    fake.behaviour = "null_entry"
    assert ask(shield(fake), benign_image()).status is RemoteStatus.NO_MATCH


def test_a_scan_result_without_classification_is_not_answered(
    fake: FakeArachnidShield,
) -> None:
    fake.behaviour = "missing_fields"
    for allow_media, data in ((False, benign_image()), (True, flat_image())):
        result = ask(shield(fake, allow_media=allow_media), data)
        assert result.status is RemoteStatus.NOT_ANSWERED
        assert "no classification" in (result.reason or "")


def test_several_frames_go_in_one_call_and_the_worst_answer_wins(
    fake: FakeArachnidShield,
) -> None:
    data = benign_image()
    signals = signals_of(data)
    other = signals_of(benign_image(seed=8)).pdq[0]
    low = dataclasses.replace(signals.pdq[0], quality=10, frame=2)
    many = dataclasses.replace(
        signals, pdq=(signals.pdq[0], dataclasses.replace(other, frame=1), low)
    )
    fake.behaviour = "match"
    result = ask(shield(fake), data, many)
    assert result.status is RemoteStatus.MATCHED
    (request,) = fake.requests
    assert json.loads(request.body)["hashes"] == [b64(signals.pdq[0].value), b64(other.value)]


def test_wrong_credentials_are_refused_and_not_retried(fake: FakeArachnidShield) -> None:
    fake.behaviour = "match"
    result = ask(shield(fake, password="not-the-password", retries=3), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "credentials were refused (HTTP 401): Invalid username/password." in (
        result.reason or ""
    )
    assert len(fake.requests) == 1


def test_an_error_detail_never_repeats_a_credential(fake: FakeArachnidShield) -> None:
    fake.behaviour = "unauthorized"  # its detail echoes the username
    result = ask(shield(fake), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert result.reason is not None
    assert "User [redacted] may not use this endpoint." in result.reason


def test_429_then_success_honours_retry_after(fake: FakeArachnidShield) -> None:
    """Retry-After: 0 is obeyed: the jittered backoff (here 5-10 s) is not waited."""
    fake.script = ["rate_limited"]
    fake.behaviour = "match"
    started = time.monotonic()
    result = ask(shield(fake, backoff_seconds=5), benign_image())
    assert time.monotonic() - started < 2
    assert result.status is RemoteStatus.MATCHED
    assert fake.paths() == [PDQ_PATH, PDQ_PATH]


def test_server_errors_after_every_retry_are_not_answered(fake: FakeArachnidShield) -> None:
    fake.behaviour = "server_error"
    fake.retry_after = None
    result = ask(shield(fake, retries=2), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "503" in (result.reason or "")
    assert len(fake.requests) == 3


def test_the_credentials_appear_in_no_result_and_no_log(
    fake: FakeArachnidShield, caplog: pytest.LogCaptureFixture
) -> None:
    results = []
    with caplog.at_level(logging.DEBUG):
        for name in ("httpx", "httpcore", "hashguard"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            for behaviour in (*BEHAVIOURS, "null_entry", "missing_fields"):
                fake.behaviour = behaviour
                results.append(ask(shield(fake), benign_image()))
                results.append(ask(shield(fake, allow_media=True), flat_image()))
            results.append(ask(shield(fake, password="wrong"), benign_image()))
        finally:
            for name in ("httpx", "httpcore", "hashguard"):
                logging.getLogger(name).setLevel(logging.NOTSET)
    assert {r.status for r in results} == set(RemoteStatus)
    assert any(r.name.startswith("httpcore") for r in caplog.records), "DEBUG was captured"
    for secret in (USERNAME, PASSWORD, BASIC):
        for result in results:
            assert secret not in repr(result)
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
            assert secret not in repr(record.args)
