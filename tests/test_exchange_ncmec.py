"""The NCMEC exchange adapter against a loopback fake of NCMEC's hash-sharing API v2."""

from __future__ import annotations

import base64
import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment

from hashguard.banks.exchanges.base import ExchangeError, FeedbackUnsupported
from hashguard.banks.exchanges.ncmec import (
    ENVIRONMENTS,
    NAMESPACE,
    Environment,
    NcmecExchange,
    NcmecSettings,
    parse_xml,
    read_page,
)
from hashguard.domain.banks import BankEntry
from hashguard.domain.exchanges import Feedback, FeedbackVerdict, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.plugins import GROUP, AdapterKind, PluginError, Registry
from hashguard.testing import ListSourceContract
from tests.fakes.ncmec import DEFAULT_REASONS, Failure, FakeNcmec, sample_entries

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=60)
USERNAME = "hashguard-test"
#: must never appear in an exception or a log record
CANARY = f"canary-{uuid.uuid4().hex}"


def make_source(fake: FakeNcmec, *, password: str = CANARY, **settings: Any) -> NcmecExchange:
    values = {
        "base_url": fake.url,
        "start": START.isoformat(),
        "window_hours": 24 * 7,
        "requests_per_second": 1000,
        "timeout_seconds": 5,
        **settings,
    }
    return NcmecExchange(
        NcmecSettings.model_validate(values),
        {"username": SecretStr(USERNAME), "password": SecretStr(password)},
        clock=lambda: NOW,
    )


def run(source: NcmecExchange, checkpoint: str | None = None) -> list[SyncBatch]:
    try:
        return list(source.fetch(checkpoint))
    finally:
        source.close()


@pytest.fixture
def fake() -> Iterator[FakeNcmec]:
    with FakeNcmec(sample_entries(NOW), username=USERNAME, password=CANARY) as server:
        yield server


class TestNcmecContract(ListSourceContract):
    @pytest.fixture(autouse=True)
    def _serve(self, fake: FakeNcmec) -> None:
        self.fake = fake

    def source(self) -> NcmecExchange:
        return make_source(self.fake)


# -- settings ---------------------------------------------------------------------------


def test_environments_mirror_threatexchange() -> None:
    assert set(get_args(Environment)) == set(ENVIRONMENTS)
    assert dict(ENVIRONMENTS) == {e.name: e.value for e in NCMECEnvironment}


def test_settings() -> None:
    secrets = {"username": SecretStr("u"), "password": SecretStr("p")}
    default = NcmecExchange.configure({}, secrets)
    try:
        assert default.options.environment == "test_Industry"
        assert default.options.url == "https://exttest.cybertip.org/hashsharing"
    finally:
        default.close()
    chosen = NcmecSettings.model_validate(
        {"environment": "NGO", "base_url": "https://proxy.example/ncmec/", "start": "2024-01-01"}
    )
    assert chosen.url == "https://proxy.example/ncmec"
    assert chosen.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert NcmecSettings(environment="NGO").url == "https://hashsharing.ncmec.org/npo"
    for bad in (
        {"environment": "Production"},
        {"base_url": "http://proxy.example"},
        {"base_url": "https://user:pw@proxy.example"},
        {"base_url": "ftp://proxy.example"},
        {"window_hours": 0},
    ):
        with pytest.raises(PluginError):
            NcmecExchange.configure(bad, secrets)
    with pytest.raises(PluginError, match="password"):
        NcmecExchange.configure({}, {"username": SecretStr("u")})


def test_loads_through_the_registry() -> None:
    point = EntryPoint(
        name="ncmec", value="hashguard.banks.exchanges.ncmec:NcmecExchange", group=GROUP
    )
    registry = Registry.load(points=[point])
    assert registry.get("ncmec", AdapterKind.LIST_SOURCE) is NcmecExchange


# -- mapping ----------------------------------------------------------------------------


def _upserts(batches: list[SyncBatch]) -> dict[str, list[BankEntry]]:
    found: dict[str, list[BankEntry]] = {}
    for batch in batches:
        for entry in batch.upserts:
            assert entry.entry_id is not None
            found.setdefault(entry.entry_id, []).append(entry)
    return found


def test_maps_every_fingerprint_we_hold(fake: FakeNcmec) -> None:
    batches = run(make_source(fake))
    by_id = _upserts(batches)
    source = next(e for e in fake.entries if e.entry_id == "img-03")
    image = {e.algorithm: e for e in by_id["42:img-03"]}
    assert set(image) == {Algorithm.MD5, Algorithm.SHA1, Algorithm.PDQ}
    assert image[Algorithm.SHA1].value == source.fingerprints["sha1"].lower()
    assert image[Algorithm.PDQ].value == source.fingerprints["pdq"]
    assert image[Algorithm.MD5].category == "B2"
    assert image[Algorithm.MD5].metadata == {
        "media": "image",
        "member_id": 42,
        "ncmec_id": "img-03",
        "environment": "test_Industry",
        "timestamp": source.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "classification": "B2",
        "ignored_fingerprints": ["netclean", "pdna"],
    }
    video = {e.algorithm: e for e in by_id["43:vid-01"]}
    assert set(video) == {Algorithm.MD5, Algorithm.SHA1}
    assert video[Algorithm.MD5].metadata["media"] == "video"
    assert video[Algorithm.MD5].metadata["ignored_fingerprints"] == ["tmk-pdqf", "videntifier"]
    assert by_id["43:vid-02"][0].category is None
    # every live, well-formed entry arrives, the too-fresh one waits for the next sync
    expected = {f"42:img-{n:02d}" for n in range(1, 11)} | {"43:vid-01", "43:vid-02", "43:vid-03"}
    assert set(by_id) == expected | {"42:img-badhex"}
    # PhotoDNA fingerprints are licensed: never stored, not even in metadata
    text = repr(batches)
    for entry in fake.entries:
        if "pdna" in entry.fingerprints:
            assert entry.fingerprints["pdna"] not in text


def test_deletions(fake: FakeNcmec) -> None:
    batches = run(make_source(fake))
    withdrawn = next(e for e in fake.entries if e.entry_id == "img-withdrawn")
    removals = {r for b in batches for r in b.removals}
    assert removals == {
        (Algorithm.MD5, withdrawn.fingerprints["md5"]),
        (Algorithm.SHA1, withdrawn.fingerprints["sha1"]),
    }
    removed_ids = {i for b in batches for i in b.removed_entry_ids}
    assert {"42:img-gone", "43:vid-gone"} <= removed_ids, "deletions naming only the entry"


def test_malformed_entries_are_skipped_and_counted(fake: FakeNcmec) -> None:
    batches = run(make_source(fake))
    skipped = [s for b in batches for s in b.skipped]
    assert any("image 42:img-badhex: md5 hash is not hexadecimal" in s for s in skipped)
    assert any("image of member 42 without an id" in s for s in skipped)
    assert any("image without a numeric member id" in s for s in skipped)
    assert any("45:img-blankpdq: all-zero PDQ" in s for s in skipped)
    kept = _upserts(batches)["42:img-badhex"]
    assert [e.algorithm for e in kept] == [Algorithm.SHA1]


def test_a_hash_listed_twice_in_a_page_is_one_upsert(fake: FakeNcmec) -> None:
    twin = next(e for e in fake.entries if e.entry_id == "img-01")
    fake.entries = [twin, replace(twin, member_id=99)]
    fake.page_size = 10
    batches = run(make_source(fake))
    upserts = [e for b in batches for e in b.upserts]
    assert len(upserts) == len({(e.algorithm, e.value) for e in upserts}) == 3


# -- windows and checkpoints ------------------------------------------------------------


def _checkpoints(batches: list[SyncBatch]) -> list[dict[str, Any]]:
    return [json.loads(b.checkpoint) for b in batches if b.checkpoint is not None]


def test_windows_and_paging(fake: FakeNcmec) -> None:
    batches = run(make_source(fake))
    first = fake.requests[0]
    assert first.path == "/v2/entries"
    assert first.query["from"] == ["2024-12-31T12:00:00Z"]
    assert first.query["to"] == ["2025-01-07T12:00:00Z"]
    checkpoints = _checkpoints(batches)
    assert len(checkpoints) == len(batches)
    paged = [c for c in checkpoints if "next" in c]
    assert paged, "the fake's busy week needs several pages"
    for checkpoint in paged:
        assert set(checkpoint) == {"v", "from", "to", "next", "paged_at"}
        assert checkpoint["next"].startswith("/v2/entries?")
    # the time checkpoint only moves when a window is done, and never backwards
    done = [datetime.fromisoformat(c["from"]) for c in checkpoints if "next" not in c]
    assert done == sorted(done)
    assert done[-1] == NOW - timedelta(minutes=5)
    # each page request follows NCMEC's link with the window's own from/to
    for request in fake.requests:
        if "start" in request.query:
            assert set(request.query) == {"from", "to", "start", "size", "max"}


def test_resuming_mid_window_follows_the_stored_link(fake: FakeNcmec) -> None:
    batches = run(make_source(fake))
    checkpoint = next(b.checkpoint for b in batches if b.checkpoint and "next" in b.checkpoint)
    link = urlsplit(json.loads(checkpoint)["next"])
    fake.requests.clear()
    resumed = run(make_source(fake), checkpoint)
    assert (fake.requests[0].path, fake.requests[0].query) == (link.path, parse_qs(link.query))
    # what follows the checkpoint is what the uninterrupted sync read after it
    position = [b.checkpoint for b in batches].index(checkpoint)
    assert resumed == batches[position + 1 :]


def test_a_stale_paging_link_reads_the_window_again(fake: FakeNcmec) -> None:
    batches = run(make_source(fake))
    saved = json.loads(
        next(b.checkpoint for b in batches if b.checkpoint and "next" in b.checkpoint)
    )
    saved["paged_at"] = (NOW - timedelta(hours=13)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.requests.clear()
    run(make_source(fake), json.dumps(saved))
    first = fake.requests[0]
    assert "start" not in first.query
    assert first.query["from"] == [saved["from"]]


def test_a_foreign_paging_link_is_refused(fake: FakeNcmec) -> None:
    saved = {
        "v": 1,
        "from": "2025-01-01T00:00:00Z",
        "to": "2025-01-08T00:00:00Z",
        "next": "https://elsewhere.example/v2/entries?start=4",
        "paged_at": "2025-03-01T11:00:00Z",
    }
    with pytest.raises(ExchangeError, match="leaves the entries endpoint"):
        run(make_source(fake), json.dumps(saved))
    saved["next"] = "/v2/entries?from=2024-01-01T00%3A00%3A00.000Z&to=2025-01-08T00:00:00Z&start=4"
    with pytest.raises(ExchangeError, match="changes the window's 'from'"):
        run(make_source(fake), json.dumps(saved))
    assert fake.requests == []


def test_a_sync_from_the_present_asks_nothing(fake: FakeNcmec) -> None:
    batches = run(make_source(fake))
    assert run(make_source(fake), batches[-1].checkpoint) == []
    assert len(fake.requests) == len(batches)


def test_an_unreadable_checkpoint_is_an_error(fake: FakeNcmec) -> None:
    for bad in ("", "{}", '{"v": 2, "from": "2025-01-01"}', '{"v": 1, "from": "soon"}'):
        with pytest.raises(ExchangeError, match="checkpoint"):
            run(make_source(fake), bad)


def test_the_first_sync_crosses_empty_history_quickly(fake: FakeNcmec) -> None:
    batches = run(make_source(fake, start=None, window_hours=24))
    assert len(fake.requests) < 120  # 55 years from 1970, most of them empty
    assert _upserts(batches).keys() == _upserts(run(make_source(fake))).keys()


# -- failures ---------------------------------------------------------------------------


def test_refused_credentials(fake: FakeNcmec) -> None:
    with pytest.raises(ExchangeError, match=r"refused the credentials \(401\)"):
        run(make_source(fake, password="wrong"))
    assert len(fake.requests) == 1, "a refusal is not retried"


def test_429_is_retried(fake: FakeNcmec) -> None:
    fake.fail(Failure.RATE_LIMITED, times=1)
    batches = run(make_source(fake))
    assert _upserts(batches)
    assert fake.requests[0].query == fake.requests[1].query


def test_5xx_is_retried_then_an_error(fake: FakeNcmec) -> None:
    fake.fail(Failure.SERVER_ERROR)
    with pytest.raises(ExchangeError, match="answered 500"):
        run(make_source(fake, retries=2))
    assert len(fake.requests) == 3


def test_timeout(fake: FakeNcmec) -> None:
    fake.fail(Failure.TIMEOUT)
    fake.delay_seconds = 1.0
    with pytest.raises(ExchangeError, match="timed out"):
        run(make_source(fake, timeout_seconds=0.2, retries=0))


def test_malformed_xml(fake: FakeNcmec) -> None:
    fake.fail(Failure.MALFORMED_XML)
    with pytest.raises(ExchangeError, match="not well-formed XML"):
        run(make_source(fake))


def test_a_dtd_is_refused(fake: FakeNcmec) -> None:
    fake.fail(Failure.DTD)
    with pytest.raises(ExchangeError, match="DTD"):
        run(make_source(fake))
    external = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://example.invalid/x.dtd"><r/>'
    with pytest.raises(ExchangeError, match="DTD"):
        parse_xml(external)


def test_parse_xml_strips_namespaces() -> None:
    root = parse_xml(
        f'<queryResult xmlns="{NAMESPACE}"><paging><next>/v2/entries?a=1&amp;b=2</next>'
        "</paging></queryResult>".encode()
    )
    assert root.tag == "queryResult"
    assert root.findtext("paging/next") == "/v2/entries?a=1&b=2"


def test_an_answer_that_is_not_a_query_result() -> None:
    status = f'<status xmlns="{NAMESPACE}"><member id="1">ESP</member></status>'
    with pytest.raises(ExchangeError, match="expected a queryResult"):
        read_page(parse_xml(status.encode()))


# -- feedback ---------------------------------------------------------------------------


def _feedback(verdict: FeedbackVerdict, **kwargs: Any) -> Feedback:
    return Feedback(
        entry_id=kwargs.pop("entry_id", "42:img-01"),
        algorithm=kwargs.pop("algorithm", Algorithm.MD5),
        value="0" * 32,
        verdict=verdict,
        **kwargs,
    )


def _send(fake: FakeNcmec, feedback: Feedback) -> None:
    source = make_source(fake)
    try:
        source.send_feedback(feedback)
    finally:
        source.close()


def _tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def test_confirmed_feedback_is_affirmative(fake: FakeNcmec) -> None:
    _send(fake, _feedback(FeedbackVerdict.CONFIRMED, entry_id="42:img/01", algorithm=Algorithm.PDQ))
    [(where, body)] = fake.feedback
    assert where == ("42", "img/01", "PDQ")
    assert fake.paths("PUT") == ["/v2/entries/42/img%2F01/PDQ/feedback"]
    assert [child.tag for child in body] == [_tag("affirmative")]


def test_false_positive_with_a_reason_id(fake: FakeNcmec) -> None:
    guid = "2d8c9154-8f20-4fa0-9c77-2e3d4f5a6b72"
    _send(fake, _feedback(FeedbackVerdict.FALSE_POSITIVE, metadata={"reason_id": guid}))
    [(where, body)] = fake.feedback
    assert where == ("42", "img-01", "MD5")
    assert body.findtext(f"{_tag('negative')}/{_tag('reasonIds')}/{_tag('guid')}") == guid
    assert fake.paths() == [], "no reason lookup when the GUID is given"


def test_false_positive_reason_by_name(fake: FakeNcmec) -> None:
    _send(
        fake, _feedback(FeedbackVerdict.FALSE_POSITIVE, algorithm=Algorithm.SHA1, reason="not csam")
    )
    [(_, body)] = fake.feedback
    guid = body.findtext(f"{_tag('negative')}/{_tag('reasonIds')}/{_tag('guid')}")
    assert guid == DEFAULT_REASONS["Not CSAM"]
    assert fake.paths() == ["/v2/feedback/SHA1/reasons"]


def test_false_positive_with_a_single_reason_needs_no_name(fake: FakeNcmec) -> None:
    fake.reasons = {"Not CSAM": DEFAULT_REASONS["Not CSAM"]}
    _send(fake, _feedback(FeedbackVerdict.FALSE_POSITIVE, reason="a stock photo"))
    [(_, body)] = fake.feedback
    assert body.findtext(f".//{_tag('guid')}") == DEFAULT_REASONS["Not CSAM"]


def test_false_positive_needs_a_known_reason(fake: FakeNcmec) -> None:
    with pytest.raises(ExchangeError, match="Not CSAM") as caught:
        _send(fake, _feedback(FeedbackVerdict.FALSE_POSITIVE, reason="a stock photo"))
    assert "Wrong classification" in str(caught.value)
    assert fake.feedback == []
    with pytest.raises(ExchangeError, match="GUID"):
        _send(fake, _feedback(FeedbackVerdict.FALSE_POSITIVE, metadata={"reason_id": "nope"}))


def test_feedback_it_cannot_send(fake: FakeNcmec) -> None:
    with pytest.raises(FeedbackUnsupported):
        _send(fake, _feedback(FeedbackVerdict.CONFIRMED, algorithm=Algorithm.SHA256))
    with pytest.raises(ExchangeError, match="member:id"):
        _send(fake, _feedback(FeedbackVerdict.CONFIRMED, entry_id="img-01"))
    fake.fail(Failure.UNAUTHORIZED)
    with pytest.raises(ExchangeError, match="refused the credentials"):
        _send(fake, _feedback(FeedbackVerdict.CONFIRMED))
    assert fake.feedback == []


# -- secrets ----------------------------------------------------------------------------


def test_the_password_never_reaches_an_error_or_a_log(
    fake: FakeNcmec, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "urllib3", "requests", "hashguard"):
        caplog.set_level(logging.DEBUG, logger=name)
    basic = base64.b64encode(f"{USERNAME}:{CANARY}".encode()).decode()
    errors: list[BaseException] = []

    def attempt(failure: Failure | None, **settings: Any) -> None:
        fake.fail(failure)
        try:
            run(make_source(fake, **settings))
            _send(fake, _feedback(FeedbackVerdict.FALSE_POSITIVE, reason="a stock photo"))
        except (ExchangeError, FeedbackUnsupported) as exc:
            errors.append(exc)

    attempt(None)
    attempt(Failure.UNAUTHORIZED)
    attempt(Failure.SERVER_ERROR, retries=1)
    attempt(Failure.TIMEOUT, timeout_seconds=0.1, retries=0)
    attempt(Failure.MALFORMED_XML)
    attempt(Failure.DTD)
    fake.fail(None)
    with pytest.raises(ExchangeError) as refused:
        run(make_source(fake, password=CANARY + "x"))
    errors.append(refused.value)
    assert len(errors) == 7
    assert {"httpx", "httpcore.http11", "hashguard.exchanges.ncmec"} <= {
        r.name for r in caplog.records
    }, "DEBUG logging was on"
    for exc in errors:
        text = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
        chained: BaseException | None = exc
        while chained is not None:
            text += repr(chained) + str(chained)
            chained = chained.__cause__ or chained.__context__
        assert CANARY not in text
        assert basic not in text
    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    assert CANARY not in logged
    assert basic not in logged
