"""The ThreatExchange exchange against a loopback fake of Graph API's /threat_updates:
the list-source contract, the mapping of indicator types, tombstones, paging (only on
our host, token stripped), checkpoints, failures, reactions, and a canary token that
never leaves the Authorization header."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from hashguard.banks.exchanges.base import ExchangeError, FeedbackUnsupported, ListSource
from hashguard.banks.exchanges.fbtx import ThreatExchangeExchange
from hashguard.banks.exchanges.graph_api import DEFAULT_VERSION
from hashguard.banks.exchanges.sync import sync_exchange
from hashguard.domain.exchanges import Feedback, FeedbackVerdict, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.plugins import PluginError
from hashguard.store import Store
from hashguard.testing import ListSourceContract
from tests.fakes.threatexchange import (
    APP_TOKEN,
    PRIVACY_GROUP,
    FakeThreatExchange,
    FakeUpdate,
    made_up_hex,
)

FAST = {
    "page_size": 4,
    "retries": 2,
    "backoff_seconds": 0.01,
    "timeout_seconds": 2.0,
    "requests_per_second": 1000.0,
}


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with FakeThreatExchange() as running:
        yield running


def make_source(
    fake: FakeThreatExchange, token: str = APP_TOKEN, **settings: Any
) -> ThreatExchangeExchange:
    options = {"base_url": fake.url, "privacy_group": PRIVACY_GROUP, **FAST, **settings}
    source = ThreatExchangeExchange.configure(options, {"app_token": SecretStr(token)})
    assert isinstance(source, ThreatExchangeExchange)
    return source


def sync(
    fake: FakeThreatExchange, checkpoint: str | None = None, **settings: Any
) -> list[SyncBatch]:
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


class TestThreatExchangeContract(ListSourceContract):
    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeThreatExchange) -> None:
        self.fake = fake

    def source(self) -> ListSource:
        return make_source(self.fake)


def test_declaration_and_settings() -> None:
    assert ThreatExchangeExchange.audience == "csam"
    assert ThreatExchangeExchange.algorithms == {Algorithm.PDQ, Algorithm.MD5}
    assert ThreatExchangeExchange.secrets == ("app_token",)
    token = {"app_token": SecretStr(APP_TOKEN)}
    with pytest.raises(PluginError, match="privacy_group"):
        ThreatExchangeExchange.configure({}, token)
    with pytest.raises(PluginError, match="https"):
        ThreatExchangeExchange.configure(
            {"privacy_group": 1, "base_url": "http://graph.facebook.com"}, token
        )
    with pytest.raises(PluginError, match="confirmed_reaction"):
        ThreatExchangeExchange.configure({"privacy_group": 1, "confirmed_reaction": "LIKE"}, token)
    default = ThreatExchangeExchange.configure({"privacy_group": 1}, token)
    assert (default.options.base_url, default.options.api_version) == (
        "https://graph.facebook.com",
        "v26.0",
    )
    assert default.graph_api_version == DEFAULT_VERSION == "v26.0"
    assert default.options.start_time is None, "a first sync reads the group's whole history"


def test_indicator_types_map_to_entries(fake: FakeThreatExchange) -> None:
    batches = sync(fake)
    upserts = {e.entry_id: e for b in batches for e in b.upserts}
    by_id = {str(u.id): u for u in fake.updates if not u.should_delete}
    pdq = [e for e in upserts.values() if e.metadata["type"] == "HASH_PDQ"]
    assert {e.algorithm for e in pdq} == {Algorithm.PDQ}
    assert all(e.metadata["media"] == "image" for e in pdq)
    for entry in upserts.values():
        source = by_id[entry.entry_id or ""]
        assert entry.value == source.indicator.lower()
        assert entry.metadata["last_updated"] == source.last_updated, "int, digits and ISO"
        assert entry.metadata["descriptor_ids"] == [str(d) for d in source.descriptors]
        assert entry.metadata["tags"] == sorted(source.tags)
    md5: dict[str, list[str | None]] = {"HASH_MD5": [], "HASH_VIDEO_MD5": []}
    for entry in upserts.values():
        if entry.algorithm is Algorithm.MD5:
            md5[entry.metadata["type"]].append(entry.metadata.get("media"))
    assert md5["HASH_VIDEO_MD5"] == ["video", "video"]
    assert sorted(md5["HASH_MD5"], key=str) == [None, None, "video"], "video when tagged"

    reasons = [reason for b in batches for reason in b.skipped]
    assert len(reasons) == 2, reasons
    assert any("pdq hash is not hexadecimal" in r for r in reasons)
    assert any("last_updated is not a time" in r for r in reasons)
    assert all(r.startswith("update 7") for r in reasons), "named by the update's id"
    for update in fake.updates:
        assert update.indicator not in "\n".join(reasons)

    request = fake.listings()[0]
    assert request.path == f"/{DEFAULT_VERSION}/{PRIVACY_GROUP}/threat_updates"
    assert request.query["types"] == ["HASH_PDQ,HASH_VIDEO_MD5,HASH_MD5"]
    assert request.query["limit"] == ["4"]
    assert "should_delete" in request.query["fields"][0]
    assert "descriptors{id}" in request.query["fields"][0]
    assert "start_time" not in request.query
    assert int(request.query["stop_time"][0]) > fake.newest()


def test_other_types_are_skipped_and_counted(fake: FakeThreatExchange) -> None:
    fake.ignore_types = True
    reasons = [reason for b in sync(fake) for reason in b.skipped]
    assert sum("unsupported type 'URI'" in r for r in reasons) == 1


def test_should_delete_and_descriptorless_updates_are_tombstones(fake: FakeThreatExchange) -> None:
    batches = sync(fake)
    removals = [k for b in batches for k in b.removals]
    deleted = [u for u in fake.updates if u.should_delete]
    hidden = [u for u in fake.updates if not u.should_delete and not u.descriptors]
    expected = [(Algorithm.PDQ, hidden[0].indicator)]
    expected += [
        (Algorithm.PDQ if u.type == "HASH_PDQ" else Algorithm.MD5, u.indicator) for u in deleted
    ]
    assert sorted(removals) == sorted(expected)
    state = live(batches)
    for algorithm, value in expected:
        assert (algorithm, value) not in state


def test_paging_stays_on_our_host_and_keeps_the_token_out_of_urls(
    fake: FakeThreatExchange,
) -> None:
    batches = sync(fake)
    assert len(batches) == 5  # 20 updates of the types asked for, 4 a page
    for request in fake.requests:
        assert "access_token" not in request.query
        assert request.headers["authorization"] == f"Bearer {APP_TOKEN}"
    follow_up = fake.listings()[1]
    assert "after" in follow_up.query
    assert follow_up.query["stop_time"] == fake.listings()[0].query["stop_time"]
    for batch in batches:
        assert APP_TOKEN not in (batch.checkpoint or "")
        assert "access_token" not in (batch.checkpoint or "")

    with FakeThreatExchange() as elsewhere:
        fake.next_base = elsewhere.url.replace("127.0.0.1", "localhost")
        with pytest.raises(ExchangeError, match="points away from the configured base_url"):
            sync(fake)
        assert elsewhere.requests == []


def test_checkpoints_mid_listing_and_after_it(fake: FakeThreatExchange) -> None:
    batches = sync(fake, start_time=fake.updates[0].last_updated)
    saved = [json.loads(b.checkpoint or "") for b in batches]
    for mid in saved[:-1]:
        assert mid["update_time"] == fake.updates[0].last_updated
        assert mid["next"].startswith(fake.url)
    valid_times = [
        u.last_updated
        for u in fake.updates
        if u.type != "URI" and "last_updated" not in u.overrides
    ]
    assert saved[-1] == {"update_time": max(valid_times), "next": None, "max_seen": None}
    assert fake.listings()[0].query["start_time"] == [str(fake.updates[0].last_updated)]

    (again,) = sync(fake, batches[-1].checkpoint)
    assert fake.listings()[-1].query["start_time"] == [str(max(valid_times))]
    assert live([again]) == {}, "the last second is read again: its deletions only"

    added = FakeUpdate(
        id=7_100_000_001,
        indicator=made_up_hex(random.Random(5), 64),
        type="HASH_PDQ",
        last_updated=fake.newest() + 60,
        descriptors=[7_100_500_001],
    )
    fake.add(added)
    (batch,) = sync(fake, batches[-1].checkpoint)
    assert [e.value for e in batch.upserts] == [added.indicator]
    assert json.loads(batch.checkpoint or "")["update_time"] == added.last_updated


def test_a_refused_stored_page_link_lists_again(fake: FakeThreatExchange) -> None:
    full = live(sync(fake))
    batches = sync(fake)
    fake.expire_cursors()
    resumed = sync(fake, batches[2].checkpoint)
    assert len(resumed) == len(batches), "listed again from the checkpoint's start"
    assert live(batches[:3] + resumed) == full


def test_a_stored_link_to_another_host_is_not_followed(fake: FakeThreatExchange) -> None:
    batches = sync(fake)
    saved = json.loads(batches[2].checkpoint or "")
    saved["next"] = saved["next"].replace("127.0.0.1", "localhost")
    resumed = sync(fake, json.dumps(saved))
    assert "after" not in fake.listings()[-len(resumed)].query, "listed again from its start"
    assert live(batches[:3] + resumed) == live(batches)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (["unauthorized"], "refused the app token (401, OAuthException 190)"),
        (["graph_throttled"], "over Graph API's rate limit (400, OAuthException 4)"),
        (["server_error"] * 3, "threat_updates answered 500"),
        (["rate_limited"] * 3, "threat_updates answered 429"),
        (["timeout"] * 3, "threat_updates timed out"),
        (["malformed"], "answered malformed JSON"),
    ],
)
def test_failures_are_exchange_errors(
    fake: FakeThreatExchange, script: list[str], message: str
) -> None:
    fake.script = list(script)
    with pytest.raises(ExchangeError) as raised:
        sync(fake, timeout_seconds=0.3)
    assert message in str(raised.value)
    assert len(fake.requests) == len(script)


def test_a_wrong_token_is_refused_without_naming_it(fake: FakeThreatExchange) -> None:
    source = make_source(fake, token="100000000000042|wrong-secret-value")
    with pytest.raises(ExchangeError) as raised:
        list(source.fetch(None))
    source.close()
    assert "refused the app token (400, OAuthException 190)" in str(raised.value)
    assert "wrong-secret-value" not in str(raised.value)


def test_a_rate_limit_then_success_is_retried(fake: FakeThreatExchange) -> None:
    fake.script = ["rate_limited", "server_error"]
    assert live(sync(fake)) == live(sync(fake))
    assert len(fake.requests) == 2 + 5 + 5


def _feedback(
    fake: FakeThreatExchange, verdict: FeedbackVerdict, *, with_metadata: bool
) -> Feedback:
    update = next(u for u in fake.updates if u.type == "HASH_PDQ" and u.descriptors)
    metadata = {"descriptor_ids": [str(d) for d in update.descriptors]} if with_metadata else {}
    return Feedback(
        entry_id=str(update.id),
        algorithm=Algorithm.PDQ,
        value=update.indicator,
        verdict=verdict,
        metadata=metadata,
    )


def test_feedback_reacts_on_the_descriptors(fake: FakeThreatExchange) -> None:
    source = make_source(fake)
    try:
        source.send_feedback(_feedback(fake, FeedbackVerdict.CONFIRMED, with_metadata=True))
        source.send_feedback(_feedback(fake, FeedbackVerdict.FALSE_POSITIVE, with_metadata=False))
    finally:
        source.close()
    descriptor = str(fake.updates[0].descriptors[0])
    assert fake.reactions == [(descriptor, "SAW_THIS_TOO"), (descriptor, "DISAGREE_WITH_TAGS")]
    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", f"/{DEFAULT_VERSION}/{descriptor}"),
        ("GET", f"/{DEFAULT_VERSION}/{fake.updates[0].id}"),
        ("POST", f"/{DEFAULT_VERSION}/{descriptor}"),
    ]
    for request in fake.requests:
        assert "access_token" not in request.query
        assert request.headers["authorization"] == f"Bearer {APP_TOKEN}"

    configured = make_source(fake, confirmed_reaction="HELPFUL")
    configured.send_feedback(_feedback(fake, FeedbackVerdict.CONFIRMED, with_metadata=True))
    configured.close()
    assert fake.reactions[-1] == (descriptor, "HELPFUL")


def test_feedback_without_a_descriptor_is_refused(fake: FakeThreatExchange) -> None:
    source = make_source(fake)
    with pytest.raises(FeedbackUnsupported, match="not an indicator id"):
        source.send_feedback(
            Feedback(
                entry_id="",
                algorithm=Algorithm.PDQ,
                value="ab" * 32,
                verdict=FeedbackVerdict.CONFIRMED,
            )
        )
    with pytest.raises(ExchangeError, match="answered 400"):
        source.send_feedback(
            Feedback(
                entry_id="123",
                algorithm=Algorithm.PDQ,
                value="ab" * 32,
                verdict=FeedbackVerdict.CONFIRMED,
            )
        )
    source.close()


CANARY = "100000000000042|canary-threatexchange-c0ffee"


def test_a_canary_token_never_leaves_the_wire(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = CANARY.partition("|")[2]
    seen: list[str] = []
    with FakeThreatExchange(token=CANARY) as fake:
        sqlite_store.banks.create("tx")
        settings = {"base_url": fake.url, "privacy_group": PRIVACY_GROUP, **FAST}
        exchange = sqlite_store.exchanges.create(
            "tx",
            adapter="threatexchange",
            bank="tx",
            settings=settings,
            credential_names=["app_token"],
            credentials=None,
        )
        scripts: list[list[str]] = [
            [],
            ["unauthorized"],
            ["graph_throttled"],
            ["server_error"] * 3,
            ["timeout"] * 3,
            ["malformed"],
        ]
        for script in scripts:
            fake.script = list(script)
            source = make_source(fake, CANARY, timeout_seconds=0.3)
            report = sync_exchange(sqlite_store, exchange, source)
            state = sqlite_store.exchanges.state("tx")
            seen += [str(report), repr(report), repr(state), str(state.checkpoint)]
            assert report.ok is not bool(script), report
        wrong = make_source(fake, "100000000000042|" + secret + "-but-wrong")
        with pytest.raises(ExchangeError) as raised:
            list(wrong.fetch(None))
        seen += [str(raised.value), repr(raised.value), repr(wrong.credentials)]
        wrong.close()
        fake.script = ["unauthorized"]
        source = make_source(fake, CANARY)
        with pytest.raises(ExchangeError) as raised:
            source.send_feedback(_feedback(fake, FeedbackVerdict.CONFIRMED, with_metadata=True))
        seen += [str(raised.value), repr(raised.value)]
        source.close()
        assert any(r.headers.get("authorization") == f"Bearer {CANARY}" for r in fake.requests)
    seen += [record.getMessage() for record in caplog.records]
    assert any(r.name.startswith("httpx") for r in caplog.records), "httpx logged its requests"
    for text in seen:
        assert secret not in text, text
    for update in fake.updates:  # nor does any hash of the list reach a log
        assert update.indicator not in caplog.text
