"""Classifier signals (Safer's classifier, from the same call as its hash matching): a
score is never a match, never acts and never reports; only with a per-adapter threshold
does it open a review case of its own kind ("classifier, no list match"), counted under
``band=classifier``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.classify.signals import (
    CLASSIFIER_BAND,
    NO_LIST_MATCH,
    ClassifierSignal,
    review_decision,
    signals_of,
)
from hashguard.domain.cases import ContentRef
from hashguard.domain.policy import Action
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.scans import Outcome
from hashguard.evidence.vault import Vault
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.remote.safer import SaferMatcher
from hashguard.remote.service import RemoteMatching
from hashguard.review.cases import escalate
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Committed, Pipeline
from hashguard.scan.sources import Upload
from hashguard.store import Store
from tests.fakes import benign_image
from tests.fakes.safer import FakeSafer

KEY = "canary-hive-key-c1a55"
IMAGE = benign_image(seed=21)
#: pipeline behaviour, not the store's: one engine
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def test_a_signal_comes_only_with_a_no_match() -> None:
    scored = RemoteResult(
        service="safer", status=RemoteStatus.NO_MATCH, method="media", classifier_score=0.9
    )
    silent = RemoteResult(service="other", status=RemoteStatus.NOT_ANSWERED, method="media")
    assert signals_of((scored, silent)) == (ClassifierSignal(source="safer", score=0.9),)
    assert review_decision(signals_of((scored,)), {}) is None
    assert review_decision(signals_of((scored,)), {"safer": 0.95}) is None
    decision = review_decision(signals_of((scored,)), {"safer": 0.8})
    assert decision is not None
    assert decision.action is Action.REVIEW
    assert not decision.acts
    assert NO_LIST_MATCH in decision.rule


@pytest.fixture
def fake() -> Iterator[FakeSafer]:
    with FakeSafer(KEY) as running:
        running.behaviour = "no_match"
        running.classifier_score = 0.97
        yield running


def _run(store: Store, tmp_path: Path, fake: FakeSafer, **options: Any) -> Committed:
    safer = SaferMatcher.configure(
        {"base_url": fake.url, "allow_media": True, "retries": 0, **options},
        {"api_key": SecretStr(KEY)},
    )
    matcher = Matcher.build(store.banks)
    vault = Vault(store.evidence, MasterKey(secrets.token_bytes(32)), tmp_path / "evidence")
    output = hash_data(IMAGE, HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    with RemoteMatching([safer], 5) as remote:
        pipeline = Pipeline(
            store=store,
            actor="system:test",
            policies=lambda: policies_of(matcher.banks),
            vault=lambda: vault,
            quarantine_local=True,
            remote=remote,
        )
        upload = Upload(
            data=IMAGE,
            request_id="req-c",
            content_ref=ContentRef(content_id="c-classifier"),
            uploader_ip=None,
        )
        return pipeline.process("a.png", output, matcher.match(output.signals), upload)


@SQLITE
def test_a_score_alone_is_never_a_match_an_action_or_a_case(
    store: Store, tmp_path: Path, fake: FakeSafer
) -> None:
    done = _run(store, tmp_path, fake)
    assert done.result.outcome is Outcome.NO_MATCH
    (answer,) = done.result.remote
    assert answer.classifier_score == pytest.approx(0.97)
    assert done.result.decision.action is Action.IGNORE
    assert done.case is None
    assert store.cases.list() == []
    assert store.actions.list() == []
    assert store.evidence.list() == []


@SQLITE
def test_with_a_threshold_it_opens_a_review_case_of_its_own_kind_and_nothing_else(
    store: Store, tmp_path: Path, fake: FakeSafer
) -> None:
    done = _run(store, tmp_path, fake, classifier_review_threshold=0.9)
    assert done.result.outcome is Outcome.NO_MATCH, "a score is never a match"
    assert done.case is not None
    assert done.case.decision.action is Action.REVIEW
    assert done.case.decision.bank == "classifier:safer"
    assert NO_LIST_MATCH in done.case.decision.rule
    assert store.actions.list() == [], "never an action (webhook, quarantine)"
    assert store.reports.list() == [], "never a report"
    events = [e for e in store.audit.events() if e.action == "case.opened"]
    (opened,) = events
    assert opened.details["band"] == CLASSIFIER_BAND

    # a reviewer's decision on it is counted apart too (CASES_DECIDED's band label)
    escalate(store, done.case.id, actor="user:alice", reason="a person looks")
    (decided,) = [e for e in store.audit.events() if e.action == "case.escalated"]
    assert decided.details["band"] == CLASSIFIER_BAND


@SQLITE
def test_below_the_threshold_nothing_opens(store: Store, tmp_path: Path, fake: FakeSafer) -> None:
    fake.classifier_score = 0.5
    done = _run(store, tmp_path, fake, classifier_review_threshold=0.9)
    assert done.case is None
    assert store.cases.list() == []
