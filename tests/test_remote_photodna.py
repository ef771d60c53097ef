"""The PhotoDNA Cloud adapter against a loopback fake of its documented contract: the
remote-matcher contract, media only with allow_media, limits enforced before any call,
status codes, test mode, retries honouring Retry-After, and no credential anywhere."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.remote.base import RemoteMatcher
from hashguard.remote.photodna import NO_MEDIA, PhotoDnaMatcher
from hashguard.testing import RemoteMatcherContract
from tests.fakes import BEHAVIOURS, benign_image, signals_of
from tests.fakes.photodna import PATH, FakePhotoDna

KEY = "canary-photodna-key-5f1e9a7c"


@pytest.fixture
def fake() -> Iterator[FakePhotoDna]:
    with FakePhotoDna(KEY) as running:
        yield running


def photodna(fake: FakePhotoDna, key: str = KEY, **settings: Any) -> PhotoDnaMatcher:
    options: dict[str, Any] = {
        "base_url": fake.url,
        "allow_media": True,
        "timeout_seconds": 0.3,
        "retries": 1,
        "backoff_seconds": 0.01,
        "requests_per_second": 1000,
        **settings,
    }
    matcher = PhotoDnaMatcher.configure(options, {"subscription_key": SecretStr(key)})
    assert isinstance(matcher, PhotoDnaMatcher)
    return matcher


def ask(matcher: RemoteMatcher, data: bytes, signals: FileSignals | None = None) -> RemoteResult:
    try:
        return matcher.match(data, signals or signals_of(data))
    finally:
        matcher.close()


class TestPhotoDna(RemoteMatcherContract):
    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakePhotoDna) -> None:
        self.fake = fake

    def matcher(self, behaviour: str) -> RemoteMatcher:
        self.fake.behaviour = behaviour
        return photodna(self.fake)

    def sample(self) -> tuple[bytes, FileSignals]:
        data = benign_image()
        return data, signals_of(data)


def test_media_never_leaves_when_allow_media_is_off(fake: FakePhotoDna) -> None:
    fake.behaviour = "match"
    result = ask(photodna(fake, allow_media=False), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert result.reason == NO_MEDIA == "media may not leave the platform (allow_media is off)"
    assert result.seconds == 0.0
    assert fake.requests == []


def test_allow_media_is_off_by_default() -> None:
    matcher = PhotoDnaMatcher.configure({}, {"subscription_key": SecretStr(KEY)})
    try:
        assert matcher.photodna.allow_media is False
        assert matcher.photodna.base_url == "https://api.microsoftmoderator.com"
        assert matcher.photodna.requests_per_second == 5
        assert matcher.photodna.test_mode is True
    finally:
        matcher.close()


@pytest.mark.parametrize(
    ("width", "height", "image_format", "reason"),
    [
        (100, 300, "PNG", "under PhotoDNA's minimum of 160x160"),
        (300, 159, "PNG", "under PhotoDNA's minimum of 160x160"),
        (256, 256, "WEBP", "gif, jpeg, png, bmp or tiff images only (this file: webp)"),
        (1200, 1200, "BMP", "over PhotoDNA's limit of 4194304 bytes"),
    ],
)
def test_images_outside_the_limits_are_refused_without_a_call(
    fake: FakePhotoDna, width: int, height: int, image_format: str, reason: str
) -> None:
    fake.behaviour = "match"
    result = ask(photodna(fake), benign_image(width, height, image_format))
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert reason in (result.reason or "")
    assert fake.requests == []


def test_a_file_that_is_not_an_image_is_refused_without_a_call(fake: FakePhotoDna) -> None:
    result = ask(photodna(fake), b"plain text, not an image")
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "this file: not an image" in (result.reason or "")
    assert fake.requests == []


def test_the_call_carries_the_key_and_the_image_as_it_is(fake: FakePhotoDna) -> None:
    fake.behaviour = "no_match"
    data = benign_image(320, 200, "JPEG")
    result = ask(photodna(fake), data)
    assert result.status is RemoteStatus.NO_MATCH
    assert result.method == "media"
    assert result.raw is None, "nothing of a non-match is kept"
    assert result.tracking_id == fake.tracking_ids[-1]
    (request,) = fake.requests
    assert (request.method, request.path, request.query) == ("POST", PATH, {})
    assert request.headers["content-type"] == "image/jpeg"
    assert request.body == data


def test_a_match_in_test_mode_says_test(fake: FakePhotoDna) -> None:
    fake.behaviour = "match"
    started = time.monotonic()
    result = ask(photodna(fake), benign_image())
    assert result.status is RemoteStatus.MATCHED
    assert result.classification == "test"
    assert result.source == "Test"
    assert result.tracking_id == fake.tracking_ids[-1]
    assert result.raw is not None
    assert result.tracking_id in result.raw
    assert '"MatchId"' in result.raw
    assert 0 < result.seconds <= time.monotonic() - started


def test_a_match_in_production_carries_the_violations(fake: FakePhotoDna) -> None:
    fake.behaviour = "match"
    fake.source = "MadeUpList"
    fake.violations = ["A1", "B2"]
    result = ask(photodna(fake, test_mode=False), benign_image())
    assert result.status is RemoteStatus.MATCHED
    assert (result.classification, result.source) == ("A1,B2", "MadeUpList")


def test_the_test_source_says_test_even_outside_test_mode(fake: FakePhotoDna) -> None:
    fake.behaviour = "match"
    result = ask(photodna(fake, test_mode=False), benign_image())
    assert (result.classification, result.source) == ("test", "Test")


@pytest.mark.parametrize("code", [3002, 3004, 3206, 3208])
def test_a_status_other_than_3000_is_not_answered_with_its_code(
    fake: FakePhotoDna, code: int
) -> None:
    fake.behaviour = f"status:{code}"
    result = ask(photodna(fake), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert f"status {code}: " in (result.reason or "")


def test_an_http_error_with_a_status_names_it(fake: FakePhotoDna) -> None:
    fake.behaviour = "no_match"
    data = benign_image()
    signals = signals_of(data)
    matcher = photodna(fake)
    try:
        # a body the fake refuses: the adapter always sends the right type, so send none
        result = matcher.match(b"", signals)
    finally:
        matcher.close()
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "HTTP 400, status 3002" in (result.reason or "")


def test_a_json_answer_without_the_documented_fields_is_not_answered(
    fake: FakePhotoDna,
) -> None:
    fake.behaviour = "missing_fields"
    result = ask(photodna(fake), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "no Status.Code" in (result.reason or "")


def test_a_wrong_key_is_refused_and_not_retried(fake: FakePhotoDna) -> None:
    fake.behaviour = "match"
    result = ask(photodna(fake, key="some-other-key", retries=3), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "subscription key was refused (HTTP 401)" in (result.reason or "")
    assert len(fake.requests) == 1


def test_enhance_is_sent_only_when_a_setting_asks(fake: FakePhotoDna) -> None:
    data = benign_image()
    ask(photodna(fake), data)
    ask(photodna(fake, enhance=True), data)
    ask(photodna(fake, enhance=False), data)
    assert [r.query for r in fake.requests] == [{}, {"enhance": ["true"]}, {"enhance": ["false"]}]


def test_429_then_success_honours_retry_after(fake: FakePhotoDna) -> None:
    """Retry-After: 0 is obeyed: the jittered backoff (here 5-10 s) is not waited."""
    fake.script = ["rate_limited"]
    fake.behaviour = "match"
    started = time.monotonic()
    result = ask(photodna(fake, backoff_seconds=5), benign_image())
    assert time.monotonic() - started < 2
    assert result.status is RemoteStatus.MATCHED
    assert len(fake.requests) == 2


def test_rate_limited_after_every_retry_is_not_answered(fake: FakePhotoDna) -> None:
    fake.behaviour = "rate_limited"
    result = ask(photodna(fake, retries=2), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "429" in (result.reason or "")
    assert len(fake.requests) == 3


def test_a_timeout_is_not_answered_within_the_client_timeout(fake: FakePhotoDna) -> None:
    fake.behaviour = "timeout"
    started = time.monotonic()
    result = ask(photodna(fake, retries=0), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "timed out" in (result.reason or "")
    assert 0.25 < result.seconds < 1.5
    assert time.monotonic() - started < 1.5


def test_an_unreachable_service_is_not_answered(fake: FakePhotoDna) -> None:
    matcher = photodna(fake, retries=0)
    fake.stop()
    result = ask(matcher, benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert result.reason


def test_the_key_appears_in_no_result_and_no_log(
    fake: FakePhotoDna, caplog: pytest.LogCaptureFixture
) -> None:
    data = benign_image()
    signals = signals_of(data)
    results = []
    with caplog.at_level(logging.DEBUG):
        for name in ("httpx", "httpcore", "hashguard"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            for behaviour in (*BEHAVIOURS, "status:3206", "missing_fields"):
                fake.behaviour = behaviour
                results.append(ask(photodna(fake, retries=1), data, signals))
            results.append(ask(photodna(fake, key="wrong-" + KEY), data, signals))
        finally:
            for name in ("httpx", "httpcore", "hashguard"):
                logging.getLogger(name).setLevel(logging.NOTSET)
    assert {r.status for r in results} == set(RemoteStatus)
    assert any(r.name.startswith("httpcore") for r in caplog.records), "DEBUG was captured"
    for result in results:
        assert KEY not in repr(result)
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.args)
