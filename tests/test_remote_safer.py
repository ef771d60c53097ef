"""The Safer adapter (Hive's combined CSAM endpoint) against a loopback fake of Hive's
documented answers: the remote-matcher contract, allow_media required, the test hash
set, SE matches, video scenes, the classifier's score on a no-match only, 429 and 5xx
and timeouts as not_answered, and no key anywhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.domain.remote import RemoteResult, RemoteStatus, remote_from_json, remote_to_json
from hashguard.domain.signals import FileSignals
from hashguard.plugins import PluginError
from hashguard.remote.base import RemoteMatcher
from hashguard.remote.safer import NO_MEDIA, NO_VIDEO_KEY, SYNC_PATH, SaferMatcher
from hashguard.testing import ClassifierContract, RemoteMatcherContract
from tests.fakes import benign_image, signals_of
from tests.fakes.safer import FakeSafer

KEY = "canary-hive-key-5f1a9c"
VIDEO_KEY = "canary-hive-video-key-77d0"
#: an ISO media file's first box (made up; the fake does not decode it)
VIDEO = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)


@pytest.fixture
def fake() -> Iterator[FakeSafer]:
    with FakeSafer(KEY, VIDEO_KEY) as running:
        yield running


def safer(fake: FakeSafer, *, video: bool = False, **settings: Any) -> SaferMatcher:
    options: dict[str, Any] = {
        "base_url": fake.url,
        "allow_media": True,
        "timeout_seconds": 0.3,
        "retries": 1,
        "backoff_seconds": 0.01,
        "requests_per_second": 1000,
        **settings,
    }
    secrets = {"api_key": SecretStr(KEY)}
    if video:
        secrets["video_api_key"] = SecretStr(VIDEO_KEY)
    matcher = SaferMatcher.configure(options, secrets)
    assert isinstance(matcher, SaferMatcher)
    return matcher


def ask(matcher: RemoteMatcher, data: bytes, signals: FileSignals | None = None) -> RemoteResult:
    try:
        return matcher.match(data, signals or signals_of(data))
    finally:
        matcher.close()


class TestSafer(RemoteMatcherContract):
    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeSafer) -> None:
        self.fake = fake

    def matcher(self, behaviour: str) -> RemoteMatcher:
        self.fake.behaviour = behaviour
        return safer(self.fake)

    def sample(self) -> tuple[bytes, FileSignals]:
        data = benign_image()
        return data, signals_of(data)


def test_settings_without_allow_media_are_refused() -> None:
    for options in ({}, {"allow_media": False}):
        with pytest.raises(PluginError, match="allow_media"):
            SaferMatcher.configure(options, {"api_key": SecretStr(KEY)})
    with pytest.raises(PluginError, match="api_key"):
        SaferMatcher.configure({"allow_media": True}, {})
    assert NO_MEDIA


def test_an_image_match_carries_source_set_type_and_distance(fake: FakeSafer) -> None:
    fake.behaviour = "match"
    data = benign_image()
    result = ask(safer(fake, test_mode=False), data)
    assert result.status is RemoteStatus.MATCHED
    assert (result.classification, result.match_type, result.distance) == ("csam", "near", 3)
    assert result.source == "thorn-made-up-set:made-up-source-0001"
    assert result.classifier_score is None
    (request,) = fake.requests
    assert request.path == SYNC_PATH
    assert request.headers["authorization"] == f"Token {KEY}"
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert data in request.body, "Safer hashes the media itself"


def test_an_exact_match_and_an_se_match(fake: FakeSafer) -> None:
    fake.behaviour, fake.distance = "se", 0
    result = ask(safer(fake, test_mode=False), benign_image())
    assert (result.classification, result.match_type) == ("sexual_exploitation", "exact")


def test_the_test_hash_set_is_classified_test(fake: FakeSafer) -> None:
    fake.behaviour = "test_set"
    result = ask(safer(fake, test_mode=False), benign_image())
    assert (result.status, result.classification) == (RemoteStatus.MATCHED, "test")
    assert result.source is not None
    assert result.source.startswith("test:")


def test_test_mode_labels_every_match_test(fake: FakeSafer) -> None:
    fake.behaviour = "match"
    assert ask(safer(fake), benign_image()).classification == "test"


def test_no_match_carries_the_classifier_score_and_is_never_a_match(fake: FakeSafer) -> None:
    fake.behaviour, fake.classifier_score = "no_match", 0.97
    result = ask(safer(fake), benign_image())
    assert result.status is RemoteStatus.NO_MATCH
    assert result.classifier_score == pytest.approx(0.97)
    assert result.classification is None
    assert result.raw is None
    assert remote_from_json(remote_to_json(result)) == result


def test_a_video_goes_to_the_matching_project_and_names_its_scene(fake: FakeSafer) -> None:
    fake.behaviour = "video"
    signals = signals_of(VIDEO)
    assert signals.image_format is None

    without_key = ask(safer(fake), VIDEO, signals)
    assert (without_key.status, without_key.reason) == (RemoteStatus.NOT_ANSWERED, NO_VIDEO_KEY)
    assert fake.requests == []

    result = ask(safer(fake, video=True, test_mode=False), VIDEO, signals)
    assert result.status is RemoteStatus.MATCHED
    assert result.source == "thorn-made-up-set:made-up-source-0001@4-9s"
    (request,) = fake.requests
    assert request.headers["authorization"] == f"Token {VIDEO_KEY}"


def test_429_with_retry_after_is_retried_then_not_answered(fake: FakeSafer) -> None:
    fake.retry_after = "0"
    fake.script = ["rate_limited", "match"]
    assert ask(safer(fake), benign_image()).status is RemoteStatus.MATCHED
    assert len(fake.requests) == 2
    fake.behaviour = "rate_limited"
    result = ask(safer(fake), benign_image())
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "429" in (result.reason or "")


def test_5xx_and_timeout_are_not_answered(fake: FakeSafer) -> None:
    for behaviour in ("server_error", "timeout"):
        fake.behaviour = behaviour
        result = ask(safer(fake, retries=0), benign_image())
        assert result.status is RemoteStatus.NOT_ANSWERED, behaviour


def test_the_key_is_never_in_an_answer_or_a_log(
    fake: FakeSafer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = []
    for behaviour in ("unauthorized", "match", "no_match", "server_error"):
        fake.behaviour = behaviour
        seen.append(repr(ask(safer(fake, video=True), benign_image())))
    text = "\n".join(seen) + caplog.text
    assert KEY not in text
    assert VIDEO_KEY not in text


class TestSaferClassifier(ClassifierContract):
    """Safer's classifier prediction (on a no-match of the same call) is a signal only."""

    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeSafer) -> None:
        self.fake = fake

    def classifier(self, behaviour: str, *, review: bool = False) -> RemoteMatcher:
        self.fake.behaviour = "no_match" if behaviour == "scored" else behaviour
        self.fake.classifier_score = 0.97
        threshold = {"classifier_review_threshold": 0.9} if review else {}
        return safer(self.fake, retries=0, **threshold)

    def sample(self) -> bytes:
        return benign_image()
