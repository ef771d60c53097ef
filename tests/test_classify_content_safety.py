"""Google's Content Safety API (a classifier: review priority only) against a loopback
fake of its documented request and answer: the classifier contract (never a match, an
action or a report; failures not_answered), the request's shape, each priority level,
the host's review level, no key anywhere, and the pipeline: a priority alone never
acts; with the review level on, a case of its own kind."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import date
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.classify.content_safety import (
    CLASSIFY_PATH,
    LEVELS,
    NO_MEDIA,
    ContentSafetyClassifier,
)
from hashguard.classify.signals import CLASSIFIER_BAND, NO_LIST_MATCH
from hashguard.domain.cases import ContentRef
from hashguard.domain.policy import Action
from hashguard.domain.remote import RemoteStatus, remote_from_json, remote_to_json
from hashguard.domain.scans import Outcome
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.plugins import AdapterKind, PluginError, Registry
from hashguard.remote.base import RemoteMatcher
from hashguard.remote.service import RemoteMatching, configure_remote
from hashguard.review.cases import confirm, mark_false_positive
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Committed, Pipeline
from hashguard.scan.sources import Upload
from hashguard.stats.aggregate import aggregate
from hashguard.store import Store
from hashguard.testing import ClassifierContract
from tests.fakes import benign_image, signals_of
from tests.fakes.content_safety import MODEL_VERSION, FakeContentSafety

KEY = "canary-google-key-3be1d7"
IMAGE = benign_image(seed=31)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def fake() -> Iterator[FakeContentSafety]:
    with FakeContentSafety(KEY) as running:
        yield running


def content_safety(fake: FakeContentSafety, **settings: Any) -> ContentSafetyClassifier:
    options: dict[str, Any] = {
        "base_url": fake.url,
        "allow_media": True,
        "timeout_seconds": 0.3,
        "retries": 0,
        "backoff_seconds": 0.01,
        "requests_per_second": 1000,
        **settings,
    }
    built = ContentSafetyClassifier.configure(options, {"api_key": SecretStr(KEY)})
    assert isinstance(built, ContentSafetyClassifier)
    return built


class TestContentSafety(ClassifierContract):
    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeContentSafety) -> None:
        self.fake = fake

    def classifier(self, behaviour: str, *, review: bool = False) -> RemoteMatcher:
        self.fake.behaviour = behaviour
        return content_safety(self.fake, **({"review_priority": "HIGH"} if review else {}))

    def sample(self) -> bytes:
        return IMAGE


def test_settings_need_media_a_key_and_one_way_to_say_the_threshold() -> None:
    for options in ({}, {"allow_media": False}):
        with pytest.raises(PluginError, match="allow_media"):
            ContentSafetyClassifier.configure(options, {"api_key": SecretStr(KEY)})
    with pytest.raises(PluginError, match="api_key"):
        ContentSafetyClassifier.configure({"allow_media": True}, {})
    with pytest.raises(PluginError, match="not both"):
        ContentSafetyClassifier.configure(
            {"allow_media": True, "review_priority": "HIGH", "classifier_review_threshold": 0.5},
            {"api_key": SecretStr(KEY)},
        )
    with pytest.raises(PluginError, match="review_priority"):
        ContentSafetyClassifier.configure(
            {"allow_media": True, "review_priority": "URGENT"}, {"api_key": SecretStr(KEY)}
        )
    assert NO_MEDIA


def test_the_request_is_the_documented_one_and_each_level_is_kept(
    fake: FakeContentSafety,
) -> None:
    fake.behaviour = "scored"
    scores = []
    for level in LEVELS:
        fake.priority = level
        classifier = content_safety(fake)
        try:
            result = classifier.match(IMAGE, signals_of(IMAGE))
        finally:
            classifier.close()
        assert result.status is RemoteStatus.NO_MATCH
        assert (result.classifier_level, result.list_version) == (level, MODEL_VERSION)
        assert result.signal_only
        assert remote_from_json(remote_to_json(result)) == result
        scores.append(result.classifier_score)
    assert scores == sorted(scores), "a higher priority ranks higher"
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", CLASSIFY_PATH)
    assert request.headers["x-goog-api-key"] == KEY
    assert "key" not in request.query, "a key in the URL lands in access logs"
    assert json.loads(request.body) == {"images": [base64.b64encode(IMAGE).decode()]}


def test_the_review_priority_is_the_threshold(fake: FakeContentSafety) -> None:
    assert content_safety(fake).review_threshold() is None
    assert content_safety(fake, review_priority="HIGH").review_threshold() == LEVELS["HIGH"]
    assert content_safety(fake, classifier_review_threshold=0.4).review_threshold() == 0.4


def test_anything_but_an_image_is_not_answered_without_a_call(fake: FakeContentSafety) -> None:
    text = b"a text file, not an image\n"
    classifier = content_safety(fake)
    result = classifier.match(text, signals_of(text))
    classifier.close()
    assert result.status is RemoteStatus.NOT_ANSWERED
    assert "images only" in (result.reason or "")
    assert fake.requests == []


def test_refusals_and_bad_answers_are_not_answered_and_the_key_never_shows(
    fake: FakeContentSafety, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = []
    for behaviour in ("unauthorized", "malformed", "timeout", "rate_limited", "scored"):
        fake.behaviour = behaviour
        classifier = content_safety(fake)
        result = classifier.match(IMAGE, signals_of(IMAGE))
        classifier.close()
        if behaviour != "scored":
            assert result.status is RemoteStatus.NOT_ANSWERED, behaviour
        seen.append(repr(result))
    wrong = ContentSafetyClassifier.configure(
        {"base_url": fake.url, "allow_media": True, "retries": 0},
        {"api_key": SecretStr("not-the-key")},
    )
    refused = wrong.match(IMAGE, signals_of(IMAGE))
    wrong.close()
    assert refused.status is RemoteStatus.NOT_ANSWERED
    assert "INVALID_ARGUMENT" in (refused.reason or "")
    assert KEY not in "\n".join(seen) + repr(refused) + caplog.text


def test_configured_under_remote_through_the_registry(fake: FakeContentSafety) -> None:
    point = EntryPoint(
        name="content_safety",
        value="hashguard.classify.content_safety:ContentSafetyClassifier",
        group="hashguard.plugins",
    )
    registry = Registry.load(["content_safety"], points=[point])
    (installed,) = registry.installed()
    assert installed.kind is AdapterKind.CLASSIFIER
    (built,) = configure_remote(
        registry,
        {"google": {"adapter": "content_safety", "base_url": fake.url, "allow_media": True}},
        {"google": {"api_key": SecretStr(KEY)}},
    )
    fake.behaviour = "scored"
    with RemoteMatching([built], 5) as remote:
        (answer,) = remote.match(IMAGE, signals_of(IMAGE))
    assert (answer.service, answer.classifier_level) == ("google", "VERY_HIGH")


def _run(
    store: Store, tmp_path: Path, fake: FakeContentSafety, image: bytes = IMAGE, **options: Any
) -> Committed:
    classifier = content_safety(fake, **options)
    matcher = Matcher.build(store.banks)
    vault = Vault(store.evidence, MasterKey(secrets.token_bytes(32)), tmp_path / "evidence")
    output = hash_data(image, HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    with RemoteMatching([classifier], 5) as remote:
        pipeline = Pipeline(
            store=store,
            actor="system:test",
            policies=lambda: policies_of(matcher.banks),
            vault=lambda: vault,
            quarantine_local=True,
            remote=remote,
        )
        upload = Upload(
            data=image,
            request_id="req-cs",
            content_ref=ContentRef(content_id="c-content-safety"),
            uploader_ip=None,
        )
        return pipeline.process("a.png", output, matcher.match(output.signals), upload)


@SQLITE
def test_in_the_pipeline_a_priority_alone_never_acts_and_review_is_opt_in(
    store: Store, tmp_path: Path, fake: FakeContentSafety
) -> None:
    fake.behaviour = "scored"
    done = _run(store, tmp_path, fake)
    assert done.result.outcome is Outcome.NO_MATCH
    assert done.result.decision.action is Action.IGNORE
    assert done.case is None
    assert store.actions.list() == []

    done = _run(store, tmp_path, fake, review_priority="HIGH")
    assert done.result.outcome is Outcome.NO_MATCH, "a priority is never a match"
    assert done.case is not None
    assert done.case.decision.bank == "classifier:content_safety"
    assert NO_LIST_MATCH in done.case.decision.rule
    assert "said VERY_HIGH" in done.case.decision.rule
    assert store.actions.list() == [], "never an action"
    assert store.reports.list() == [], "never a report"
    (opened,) = [e for e in store.audit.events() if e.action == "case.opened"]
    assert opened.details["band"] == CLASSIFIER_BAND


@SQLITE
def test_in_the_pipeline_its_silence_is_recorded_not_an_outcome(
    store: Store, tmp_path: Path, fake: FakeContentSafety
) -> None:
    fake.behaviour = "server_error"
    done = _run(store, tmp_path, fake, review_priority="LOW")
    assert done.result.outcome is Outcome.NO_MATCH
    (answer,) = done.result.remote
    assert (answer.status, answer.signal_only) == (RemoteStatus.NOT_ANSWERED, True)
    assert done.case is None


@SQLITE
def test_reviewers_decisions_give_each_classifiers_precision_at_its_threshold(
    store: Store, tmp_path: Path, fake: FakeContentSafety
) -> None:
    """Cases a classifier opened are counted under its own bank (``classifier:<name>``)
    and band ``classifier``: ``accuracy`` grouped by bank and band is the classifier's
    precision at its threshold, apart from every list's."""
    fake.behaviour = "scored"
    opened = []
    for seed in (41, 42, 43):
        done = _run(store, tmp_path, fake, benign_image(seed=seed), review_priority="HIGH")
        assert done.case is not None
        opened.append(done.case.id)
    confirm(store, opened[0], actor="user:alice", reason="seen", second_confirmation=False)
    confirm(store, opened[1], actor="user:alice", reason="seen", second_confirmation=False)
    mark_false_positive(
        store, opened[2], actor="user:alice", reason="benign", allow_bank="reviewed-allow"
    )
    table = aggregate(
        store.stats, date(2000, 1, 1), date(2100, 1, 1), by=("bank", "band"), figures={"accuracy"}
    )
    rows = {row.key: row for row in table.rows}
    precision = rows[("classifier:content_safety", CLASSIFIER_BAND)].shares["accuracy"]
    assert (precision.hits, precision.total) == (2, 3)
