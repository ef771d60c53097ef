"""One bad record costs one record (issue 19, item 7).

A record with a lone surrogate (``"\\ud800"``) or 100,000-deep nesting made every sync of
its exchange fail with +0 entries, and a list import answer 500 (a traceback in the
CLI); so did a CSV field over the csv module's 131,072 characters. Now a sync skips,
counts and names the bad record and stores the rest; an import names the bad row by
line (nothing imported unless ``skip_invalid``), and a CSV it cannot read on is a 422
(an error on the command line) naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from hashguard.banks.exchanges.fbtx import ThreatExchangeExchange
from hashguard.banks.exchanges.localfile import LocalFileExchange
from hashguard.banks.exchanges.ncmec import parse_xml, read_page
from hashguard.banks.exchanges.stopncii import StopNciiExchange
from hashguard.banks.exchanges.sync import sync_exchange
from hashguard.banks.formats import MAX_DEPTH, TOO_DEEP, parse_json
from hashguard.domain.exchanges import Exchange
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import Store
from tests.api_support import assert_problem, bearer, make_token
from tests.cli import hashguard
from tests.fakes import Recorded, Reply
from tests.fakes.stopncii import FETCH_KEY, SUBSCRIPTION_KEY, FakeStopNcii, record
from tests.fakes.threatexchange import APP_TOKEN, PRIVACY_GROUP, FakeThreatExchange, FakeUpdate
from tests.server import running_server

#: Where a fake's JSON gets a value nested 100,000 deep (json.dumps cannot write one).
DEEP_MARK = "@@deep@@"
DEEP = "[" * 100_000 + "]" * 100_000
SURROGATE = "\ud800"


def _md5(n: int) -> str:
    return f"{n:032x}"


def _deepened(body: bytes) -> bytes:
    return body.replace(json.dumps(DEEP_MARK).encode(), DEEP.encode())


def test_parse_json_cuts_only_what_is_too_deep() -> None:
    page = '{"records": [{"ok": 1}, {"bad": ' + DEEP + '}, {"ok": 2}]}'
    parsed = parse_json(page)
    assert parsed["records"][0] == {"ok": 1}
    assert parsed["records"][2] == {"ok": 2}
    value = parsed["records"][1]["bad"]
    for _ in range(MAX_DEPTH):
        value = value[0]
    assert TOO_DEEP in json.dumps(value)
    assert parse_json('["a\\"[", {"b": "]]"}]') == ['a"[', {"b": "]]"}]


# -- exchange syncs -------------------------------------------------------------------------


def _exchange(store: Store, name: str, adapter: str, settings: dict[str, Any]) -> Exchange:
    store.banks.create(name)
    return store.exchanges.create(
        name,
        adapter=adapter,
        bank=name,
        settings=settings,
        credential_names=(),
        credentials=None,
    )


def _live(store: Store, bank: str) -> set[tuple[Algorithm, str]]:
    bank_id = store.banks.get(bank).id
    return {
        (algorithm, value)
        for rows in store.banks.index_rows()
        for owner, algorithm, value in zip(rows.bank_ids, rows.algorithms, rows.values, strict=True)
        if owner == bank_id
    }


def test_a_local_feed_with_bad_records_lands_the_rest(store: Store, tmp_path: Path) -> None:
    good = [json.dumps({"algorithm": "md5", "hash": _md5(n), "id": f"e{n}"}) for n in range(1, 6)]
    bad = [
        # json.dumps writes a lone surrogate as the escape \ud800, as a partner's feed would
        json.dumps({"algorithm": "md5", "hash": _md5(90), "metadata": {"k": SURROGATE}}),
        json.dumps({"algorithm": "md5", "hash": _md5(91), "id": "x" + SURROGATE}),
        json.dumps({"algorithm": "md5", "hash": _md5(92), "category": SURROGATE}),
        json.dumps({"algorithm": "md5", "hash": _md5(93), "metadata": {SURROGATE: 1}}),
        '{"algorithm": "md5", "hash": "' + _md5(94) + '", "metadata": {"k": ' + DEEP + "}}",
        '{"algorithm": "md5", "hash": "' + _md5(95) + '", "id": ' + DEEP + "}",
        DEEP,
    ]
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(line + "\n" for line in [*good[:2], *bad, *good[2:]]))
    exchange = _exchange(store, "feed", "local_file", {"path": str(path), "batch_size": 4})

    def source() -> LocalFileExchange:
        made = LocalFileExchange.configure(exchange.settings, {})
        assert isinstance(made, LocalFileExchange)
        return made

    report = sync_exchange(store, exchange, source())
    assert report.ok, report
    assert (report.upserted, report.skipped) == (5, len(bad))
    assert [reason.split(":")[0] for reason in report.skipped_reasons] == [
        f"line {n}" for n in range(3, 3 + len(bad))
    ]
    assert "surrogate" in report.skipped_reasons[0]
    assert "nested" in report.skipped_reasons[4]
    for reason in report.skipped_reasons:  # a reason can be printed and stored
        reason.encode("utf-8")
        assert "\x00" not in reason
    assert _live(store, "feed") == {(Algorithm.MD5, _md5(n)) for n in range(1, 6)}
    with path.open("a") as feed:
        feed.write(json.dumps({"algorithm": "md5", "hash": _md5(7)}) + "\n")
    again = sync_exchange(store, exchange, source())  # not stuck at the bad records
    assert (again.ok, again.upserted, again.skipped) == (True, 1, 0)


class _DeepStopNcii(FakeStopNcii):
    def answer(self, request: Recorded, behaviour: str) -> Reply:
        reply = super().answer(request, behaviour)
        return Reply(status=reply.status, body=_deepened(reply.body), headers=reply.headers)


@pytest.fixture
def stopncii() -> Iterator[FakeStopNcii]:
    records = [record("ImagePDQ", _md5(n) * 2, timestamp=1_600_000_000 + n) for n in range(1, 7)]
    surrogate = record("ImagePDQ", _md5(80) * 2, timestamp=1_600_000_003, feedbacks=(SURROGATE,))
    deep = record("ImagePDQ", _md5(81) * 2, timestamp=1_600_000_004)
    deep["caseNumbers"] = DEEP_MARK
    with _DeepStopNcii(records=[*records, surrogate, deep]) as fake:
        yield fake


def test_a_stopncii_page_with_bad_records_lands_the_rest(
    store: Store, stopncii: FakeStopNcii
) -> None:
    settings = {
        "base_url": stopncii.url,
        "page_size": 3,
        "retries": 1,
        "backoff_seconds": 0.01,
        "timeout_seconds": 5.0,
        "requests_per_second": 1000.0,
    }
    exchange = _exchange(store, "ncii", "stopncii", settings)
    keys = {"subscription_key": SUBSCRIPTION_KEY, "fetch_function_key": FETCH_KEY}
    source = StopNciiExchange.configure(settings, {k: SecretStr(v) for k, v in keys.items()})
    assert isinstance(source, StopNciiExchange)
    report = sync_exchange(store, exchange, source)
    assert report.ok, report
    assert (report.upserted, report.skipped) == (6, 2)
    assert any("surrogate" in reason for reason in report.skipped_reasons)
    assert any("nested" in reason for reason in report.skipped_reasons)
    assert _live(store, "ncii") == {(Algorithm.PDQ, _md5(n) * 2) for n in range(1, 7)}


class _DeepThreatExchange(FakeThreatExchange):
    def answer(self, request: Recorded, behaviour: str) -> Reply:
        reply = super().answer(request, behaviour)
        return Reply(status=reply.status, body=_deepened(reply.body), headers=reply.headers)


def test_a_threatexchange_page_with_bad_records_lands_the_rest(store: Store) -> None:
    def update(n: int, **overrides: Any) -> FakeUpdate:
        return FakeUpdate(
            id=1000 + n,
            indicator=_md5(n),
            type="HASH_MD5",
            last_updated=1_600_000_000 + n,
            descriptors=[5000 + n],
            overrides=overrides,
        )

    updates = [update(n) for n in range(1, 6)]
    updates += [update(80, tags=["a" + SURROGATE]), update(81, tags=DEEP_MARK)]
    with _DeepThreatExchange(updates) as fake:
        settings = {
            "base_url": fake.url,
            "privacy_group": PRIVACY_GROUP,
            "retries": 1,
            "backoff_seconds": 0.01,
            "timeout_seconds": 5.0,
            "requests_per_second": 1000.0,
        }
        exchange = _exchange(store, "fbtx", "threatexchange", settings)
        source = ThreatExchangeExchange.configure(settings, {"app_token": SecretStr(APP_TOKEN)})
        report = sync_exchange(store, exchange, source)
    assert report.ok, report
    assert (report.upserted, report.skipped) == (5, 2)
    assert sorted(reason.split(":")[0] for reason in report.skipped_reasons) == [
        "update 1080",
        "update 1081",
    ]
    assert _live(store, "fbtx") == {(Algorithm.MD5, _md5(n)) for n in range(1, 6)}


# -- list imports ---------------------------------------------------------------------------

#: a JSON Lines list: lines 2, 3 and 5 are bad records, 1 and 4 good ones
JSONL = (
    json.dumps({"algorithm": "md5", "hash": _md5(1)})
    + "\n"
    + json.dumps({"algorithm": "md5", "hash": _md5(2), "category": SURROGATE})
    + "\n"
    + '{"algorithm": "md5", "hash": "'
    + _md5(3)
    + '", "metadata": '
    + DEEP
    + "}\n"
    + json.dumps({"algorithm": "md5", "hash": _md5(4), "k": [SURROGATE]})
    + "\n"
    + DEEP
    + "\n"
    + json.dumps({"algorithm": "md5", "hash": _md5(6)})
    + "\n"
)
#: a CSV list whose line 3 has a field over the csv module's 131,072 characters
CSV = f"algorithm,hash,note\nmd5,{_md5(1)},a\nmd5,{_md5(2)},{'x' * 140_000}\nmd5,{_md5(3)},c\n"


def test_an_import_names_bad_records_by_line(api_settings: Settings) -> None:
    writer = bearer(make_token(api_settings, Scope.BANKS_READ, Scope.BANKS_WRITE))
    with (
        running_server(api_settings) as base,
        httpx.Client(base_url=base, headers=writer, timeout=60) as http,
    ):
        assert http.post("/v1/banks", json={"name": "lst"}).status_code == 201
        refused = http.post("/v1/banks/lst/import?format=jsonl", content=JSONL.encode())
        assert refused.status_code == 200, refused.text
        body = refused.json()
        assert body["applied"] is False
        assert [(e["line"], e["reason"]) for e in body["errors"]] == [
            (2, "category contains a lone surrogate (not valid Unicode)"),
            (3, f"the line is nested deeper than {MAX_DEPTH} levels"),
            (4, "metadata contains a lone surrogate (not valid Unicode)"),
            (5, f"the line is nested deeper than {MAX_DEPTH} levels"),
        ]
        skipped = http.post(
            "/v1/banks/lst/import?format=jsonl&skip_invalid=true", content=JSONL.encode()
        ).json()
        assert (skipped["applied"], skipped["added"], len(skipped["errors"])) == (True, 2, 4)
        assert http.get("/v1/banks/lst").json()["entries"] == {"md5": 2}

        unreadable = http.post(
            "/v1/banks/lst/import?format=csv&skip_invalid=true", content=CSV.encode()
        )
        problem = assert_problem(unreadable, 422)
        assert "line 3" in problem["detail"]
        assert "field larger than field limit" in problem["detail"]
        assert http.get("/v1/banks/lst").json()["entries"] == {"md5": 2}  # nothing imported


@pytest.mark.usefixtures("home")
def test_the_import_command_names_bad_records_without_a_traceback(tmp_path: Path) -> None:
    jsonl, csv = tmp_path / "list.jsonl", tmp_path / "list.csv"
    jsonl.write_text(JSONL)
    csv.write_text(CSV)
    refused = hashguard("banks", "import", "lst", str(jsonl), check=1)
    assert "Traceback" not in refused.stderr
    assert "list.jsonl:2: category contains a lone surrogate" in refused.stderr
    assert f"list.jsonl:3: the line is nested deeper than {MAX_DEPTH} levels" in refused.stderr
    landed = hashguard("banks", "import", "lst", str(jsonl), "--skip-invalid")
    assert "2 added" in landed.stderr
    unreadable = hashguard("banks", "import", "lst", str(csv), "--skip-invalid", check=2)
    assert "Traceback" not in unreadable.stderr
    assert "line 3" in unreadable.stderr


def test_an_ncmec_page_with_a_deeply_nested_entry_reads_its_entries() -> None:
    """XML cannot carry a lone surrogate or a NUL (the parser refuses the document), but
    it can nest 100,000 deep: the page is still read, entry by entry."""
    deep = "<x>" * 100_000 + "</x>" * 100_000
    body = (
        "<queryResult><images>"
        f'<image><member id="1"/><id>5</id><fingerprints><md5>{_md5(5)}</md5></fingerprints>'
        f"<extra>{deep}</extra></image>"
        f'<image><member id="1"/><id>6</id><fingerprints><md5>{_md5(6)}</md5></fingerprints>'
        "</image></images></queryResult>"
    ).encode()
    page = read_page(parse_xml(body))
    assert [entry.key for entry in page.entries] == ["1:5", "1:6"]
    assert page.skipped == []
