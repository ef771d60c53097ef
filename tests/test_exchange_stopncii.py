"""The StopNCII exchange against a loopback fake of its API: the list-source contract,
the mapping of records, tombstones, paging and checkpoints, failures, feedback, and a
canary credential that never leaves the wire."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.banks.exchanges.base import ExchangeError, FeedbackUnsupported, ListSource
from hashguard.banks.exchanges.stopncii import StopNciiExchange
from hashguard.banks.exchanges.sync import sync_exchange
from hashguard.demo.clips import benign_clip
from hashguard.domain.exchanges import Feedback, FeedbackVerdict, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.hashing.kernel import HashOptions, hash_path
from hashguard.matching.matcher import Matcher
from hashguard.plugins import PluginError
from hashguard.store import Store
from hashguard.testing import ListSourceContract
from tests.fakes.stopncii import (
    FEEDBACK_KEY,
    FETCH_KEY,
    FIRST_TIMESTAMP,
    SUBSCRIPTION_KEY,
    FakeStopNcii,
    made_up_hex,
    record,
)

KEYS = {"subscription_key": SUBSCRIPTION_KEY, "fetch_function_key": FETCH_KEY}
FAST = {
    "page_size": 4,
    "retries": 2,
    "backoff_seconds": 0.01,
    "timeout_seconds": 2.0,
    "requests_per_second": 1000.0,
}


@pytest.fixture
def fake() -> Iterator[FakeStopNcii]:
    with FakeStopNcii() as running:
        yield running


def make_source(
    fake: FakeStopNcii, keys: dict[str, str] | None = None, **settings: Any
) -> StopNciiExchange:
    secrets = {k: SecretStr(v) for k, v in (KEYS if keys is None else keys).items()}
    source = StopNciiExchange.configure({"base_url": fake.url, **FAST, **settings}, secrets)
    assert isinstance(source, StopNciiExchange)
    return source


def sync(fake: FakeStopNcii, checkpoint: str | None = None, **settings: Any) -> list[SyncBatch]:
    source = make_source(fake, **settings)
    try:
        return list(source.fetch(checkpoint))
    finally:
        source.close()


def live(batches: list[SyncBatch]) -> dict[tuple[Algorithm, str], dict[str, Any]]:
    state: dict[tuple[Algorithm, str], dict[str, Any]] = {}
    for batch in batches:
        state.update({(e.algorithm, e.value): dict(e.metadata) for e in batch.upserts})
        for key in batch.removals:
            state.pop(key, None)
    return state


class TestStopNciiContract(ListSourceContract):
    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeStopNcii) -> None:
        self.fake = fake

    def source(self) -> ListSource:
        return make_source(self.fake)


def test_declaration() -> None:
    assert StopNciiExchange.audience == "adult_ncii", "NCII is never mixed with CSAM banks"
    assert StopNciiExchange.algorithms == {Algorithm.PDQ, Algorithm.MD5}
    assert StopNciiExchange.secrets == ("subscription_key", "fetch_function_key")
    assert StopNciiExchange.optional_secrets == ("feedback_function_key",)


def test_settings_refuse_plain_http_off_this_host() -> None:
    secrets = {k: SecretStr(v) for k, v in KEYS.items()}
    with pytest.raises(PluginError, match="https"):
        StopNciiExchange.configure({"base_url": "http://api.stopncii.org"}, secrets)
    with pytest.raises(PluginError, match="must not hold credentials"):
        StopNciiExchange.configure({"base_url": "https://user:pw@api.stopncii.org"}, secrets)
    assert StopNciiExchange.configure({"base_url": "http://127.0.0.2:8080/"}, secrets)
    with pytest.raises(PluginError, match="missing credentials: fetch_function_key"):
        StopNciiExchange.configure({}, {"subscription_key": SecretStr("x")})
    default = StopNciiExchange.configure({}, secrets)
    assert default.options.base_url == "https://api.stopncii.org"


def test_records_map_to_entries_and_tombstones(fake: FakeStopNcii) -> None:
    batches = sync(fake)
    upserts = [e for b in batches for e in b.upserts]
    by_type = {
        kind: [e for e in upserts if e.metadata["signal_type"] == kind]
        for kind in ("ImagePDQ", "VideoMD5")
    }
    assert len(by_type["ImagePDQ"]) == 13
    assert len(by_type["VideoMD5"]) == 4
    for entry in by_type["ImagePDQ"]:
        assert entry.algorithm is Algorithm.PDQ
        assert entry.metadata["media"] == "image"
    for entry in by_type["VideoMD5"]:
        assert entry.algorithm is Algorithm.MD5
        assert entry.metadata["media"] == "video"
    first = by_type["ImagePDQ"][0]
    assert first.entry_id is None, "StopNCII names a hash by its value"
    assert first.metadata["status"] == "Active"
    assert first.metadata["cases"] == 1
    assert first.metadata["csp_feedback"] == {"Blocked": 1}
    assert isinstance(first.metadata["last_modified"], int)
    assert "source" not in json.dumps(first.metadata), "other platforms' names are not kept"

    withdrawn = [r for r in fake.records if r.get("hashStatus") in ("Withdrawn", "Deleted")]
    removals = [k for b in batches for k in b.removals]
    assert removals == [
        (Algorithm.PDQ, withdrawn[0]["hashValue"]),
        (Algorithm.MD5, withdrawn[1]["hashValue"]),
    ]

    reasons = [reason for b in batches for reason in b.skipped]
    assert len(reasons) == 5, reasons
    joined = "\n".join(reasons)
    for expected in (
        "unsupported signal type 'VideoTMK'",
        "unsupported signal type 'Text'",
        "pdq hash is not hexadecimal",
        "all-zero PDQ hash",
        "signalType, hashValue and hashStatus must be strings",
    ):
        assert expected in joined
    for item in fake.records:
        assert str(item.get("hashValue")) not in joined, "a reason never quotes a hash"


def test_paging_checkpoints_and_the_next_sync(fake: FakeStopNcii) -> None:
    batches = sync(fake)
    assert len(batches) == 6  # 24 records, 4 a page
    saved = [json.loads(b.checkpoint or "") for b in batches]
    for mid in saved[:-1]:
        assert mid["startTimestamp"] == 10
        assert mid["nextPageToken"]
    assert saved[-1] == {"startTimestamp": fake.newest() + 1, "nextPageToken": None}
    fetches = fake.fetches()
    assert "nextPageToken" not in fetches[0].query
    assert fetches[0].query["startTimestamp"] == ["10"]
    assert fetches[0].query["pageSize"] == ["4"]
    for request in fetches:
        assert request.headers["ocp-apim-subscription-key"] == SUBSCRIPTION_KEY
        assert request.headers["x-functions-key"] == FETCH_KEY

    assert sync(fake, batches[-1].checkpoint) == [], "nothing new: no batch"
    assert fake.fetches()[-1].query["startTimestamp"] == [str(fake.newest() + 1)]

    added = made_up_hex(random.Random(99), 64)
    fake.add(record("ImagePDQ", added, timestamp=fake.newest() + 5))
    (batch,) = sync(fake, batches[-1].checkpoint)
    assert [e.value for e in batch.upserts] == [added]
    assert json.loads(batch.checkpoint or "")["startTimestamp"] == fake.newest() + 1


def test_a_withdrawn_case_removes_its_hash_on_the_next_sync(fake: FakeStopNcii) -> None:
    batches = sync(fake)
    before = live(batches)
    target = next(k for k in before if k[0] is Algorithm.MD5)
    fake.set_status(target[1], "Withdrawn")
    again = sync(fake, batches[-1].checkpoint)
    assert [k for b in again for k in b.removals] == [target]
    assert live(batches + again) == {k: v for k, v in before.items() if k != target}


def test_a_refused_stored_page_token_reads_the_listing_again(fake: FakeStopNcii) -> None:
    full = live(sync(fake))
    batches = sync(fake)
    fake.expire_tokens()
    resumed = sync(fake, batches[2].checkpoint)
    assert live(batches[:3] + resumed) == full
    assert len(resumed) == len(batches), "read again from the listing's start"
    assert "nextPageToken" in fake.fetches()[-len(resumed) - 1].query
    assert "nextPageToken" not in fake.fetches()[-len(resumed)].query


def test_a_refused_fresh_page_token_is_an_error(fake: FakeStopNcii) -> None:
    source = make_source(fake)
    listing = source.fetch(None)
    next(listing)
    fake.expire_tokens()
    with pytest.raises(ExchangeError, match="refused its own page token"):
        next(listing)
    source.close()


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (["unauthorized"], "refused the credentials (401)"),
        (["server_error"] * 3, "GET /v1/FetchHashes answered 500"),
        (["rate_limited"] * 3, "GET /v1/FetchHashes answered 429"),
        (["timeout"] * 3, "GET /v1/FetchHashes timed out"),
        (["malformed"], "answered malformed JSON"),
        (["shapeless"], "without hashRecords/hasMoreRecords"),
    ],
)
def test_failures_are_exchange_errors(fake: FakeStopNcii, script: list[str], message: str) -> None:
    fake.script = list(script)
    with pytest.raises(ExchangeError) as raised:
        sync(fake, timeout_seconds=0.3)
    assert message in str(raised.value)
    assert len(fake.fetches()) == len(script), "retried as often as allowed, then stopped"


def test_wrong_keys_are_refused_without_naming_them(fake: FakeStopNcii) -> None:
    source = make_source(fake, {**KEYS, "fetch_function_key": "wrong-key-value"})
    with pytest.raises(ExchangeError) as raised:
        list(source.fetch(None))
    source.close()
    assert "check subscription_key and fetch_function_key" in str(raised.value)
    assert "wrong-key-value" not in str(raised.value)


def test_a_rate_limit_then_success_is_retried(fake: FakeStopNcii) -> None:
    fake.script = ["rate_limited", "server_error"]
    assert live(sync(fake)) == live(sync(fake))
    assert len(fake.fetches()) == 2 + 6 + 6


def _feedback(verdict: FeedbackVerdict, value: str, **metadata: Any) -> Feedback:
    return Feedback(
        entry_id="",
        algorithm=Algorithm.PDQ,
        value=value,
        verdict=verdict,
        reason="reviewer note that must stay here",
        metadata=metadata,
    )


def test_feedback_bodies(fake: FakeStopNcii) -> None:
    value = made_up_hex(random.Random(3), 64)
    source = make_source(fake, {**KEYS, "feedback_function_key": FEEDBACK_KEY})
    try:
        source.send_feedback(_feedback(FeedbackVerdict.CONFIRMED, value))
        source.send_feedback(_feedback(FeedbackVerdict.FALSE_POSITIVE, value, tags=["hashguard"]))
    finally:
        source.close()
    assert fake.feedback == [
        {
            "count": 1,
            "hashFeedbacks": [{"hashValue": value, "feedbackValue": "Blocked", "tags": []}],
        },
        {
            "count": 1,
            "hashFeedbacks": [
                {"hashValue": value, "feedbackValue": "NotBlocked", "tags": ["hashguard"]}
            ],
        },
    ]
    posts = [r for r in fake.requests if r.method == "POST"]
    assert all(r.headers["x-functions-key"] == FEEDBACK_KEY for r in posts)
    assert all(b"reviewer note" not in r.body for r in posts)


def test_feedback_needs_its_own_key(fake: FakeStopNcii) -> None:
    source = make_source(fake)
    with pytest.raises(FeedbackUnsupported, match="feedback_function_key"):
        source.send_feedback(_feedback(FeedbackVerdict.CONFIRMED, "ab" * 32))
    assert fake.requests == []
    wrong = make_source(fake, {**KEYS, "feedback_function_key": "not-the-feedback-key"})
    with pytest.raises(ExchangeError, match="check subscription_key and feedback_function_key"):
        wrong.send_feedback(_feedback(FeedbackVerdict.CONFIRMED, "ab" * 32))
    wrong.close()


CANARY = "canary-stopncii-9d41e7"


def test_a_canary_credential_never_leaves_the_wire(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = {
        "subscription_key": CANARY + "-sub",
        "fetch_function_key": CANARY + "-fetch",
        "feedback_function_key": CANARY + "-feedback",
    }
    seen: list[str] = []
    with FakeStopNcii(
        subscription_key=keys["subscription_key"],
        fetch_key=keys["fetch_function_key"],
        feedback_key=keys["feedback_function_key"],
    ) as fake:
        sqlite_store.banks.create("ncii")
        exchange = sqlite_store.exchanges.create(
            "ncii",
            adapter="stopncii",
            bank="ncii",
            settings={"base_url": fake.url, **FAST, "timeout_seconds": 0.3},
            credential_names=sorted(keys),
            credentials=None,
        )
        for script in ([], ["unauthorized"], ["server_error"] * 3, ["timeout"] * 3, ["malformed"]):
            fake.script = list(script)
            source = make_source(fake, keys, timeout_seconds=0.3)
            report = sync_exchange(sqlite_store, exchange, source)
            seen += [str(report), repr(report), repr(sqlite_store.exchanges.state("ncii"))]
            assert report.ok is not bool(script), report
        fake.script = ["unauthorized"]
        source = make_source(fake, keys)
        with pytest.raises(ExchangeError) as raised:
            source.send_feedback(_feedback(FeedbackVerdict.CONFIRMED, "ab" * 32))
        seen += [str(raised.value), repr(raised.value), repr(source.credentials)]
        source.close()
        assert any(
            r.headers.get("x-functions-key") == keys["fetch_function_key"] for r in fake.requests
        )
    seen += [record.getMessage() for record in caplog.records]
    assert any(r.name.startswith("httpx") for r in caplog.records), "httpx logged its requests"
    for text in seen:
        assert CANARY not in text, text
    for item in fake.records:  # nor does any hash of the list reach a log
        value = item.get("hashValue")
        assert not isinstance(value, str) or len(value) < 32 or value not in caplog.text


def test_a_video_md5_record_matches_the_scanned_video(tmp_path: Path, sqlite_store: Store) -> None:
    """A ``VideoMD5`` record is an ``md5`` entry (media video): the scanned clip whose
    bytes it digests is matched by its exact hash."""
    clip = benign_clip(tmp_path / "clip.mp4", 1401, seconds=2)
    md5 = hashlib.md5(clip.read_bytes()).hexdigest()
    with FakeStopNcii(records=[record("VideoMD5", md5, timestamp=FIRST_TIMESTAMP)]) as running:
        batches = sync(running)
    (entry,) = [e for batch in batches for e in batch.upserts]
    assert (entry.algorithm, entry.value, entry.metadata["media"]) == (Algorithm.MD5, md5, "video")
    sqlite_store.banks.create("ncii")
    sqlite_store.banks.add_entries("ncii", [entry])
    signals = hash_path(str(clip), HashOptions(max_pixels=50_000_000)).signals
    assert signals is not None
    assert signals.video is not None
    (match,) = Matcher.build(sqlite_store.banks).match(signals)
    assert (match.bank, match.algorithm) == ("ncii", Algorithm.MD5)
