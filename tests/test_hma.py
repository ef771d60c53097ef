"""HMA's API under /hma (issue 20): every route against HMA's shapes, over loopback
HTTP, through hashguard's tokens, pipeline, lookup guards and audit log."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hashguard.banks.exchanges.base import ListSource
from hashguard.banks.formats import parse_signal
from hashguard.demo.clips import benign_clip, pan, write_clip
from hashguard.demo.corpus import Kind, edited_copy, encode, generate, photo_like
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry, SignalState
from hashguard.domain.exchanges import SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.domain.video import vpdq_digest
from hashguard.keys import master_key_for
from hashguard.plugins import GROUP, Registry
from hashguard.services import exchanges
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests import hma_shapes as shapes
from tests.api_support import bearer, make_token
from tests.server import running_server

IMAGE = generate(Kind.PHOTO, seed=31, width=480, height=360)
ORIGINAL = encode(IMAGE)
EDITED = edited_copy(IMAGE, "resized")
OTHER = encode(generate(Kind.PHOTO, seed=77, width=320, height=240))
PATH_SECRET = "s3cr3t-path-for-coop-0123456789abcdef"


class _Images(BaseHTTPRequestHandler):
    """A loopback host serving the benign image (the allowlisted URL source)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(ORIGINAL)))
        self.end_headers()
        self.wfile.write(ORIGINAL)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _settings(folder: Path, **extra: Any) -> Settings:
    url = f"sqlite:///{folder / 'hashguard.db'}"
    open_store(url, migrate=True).close()
    return Settings(
        home=folder / "home", database_url=url, workers=1, index_refresh_seconds=0.2, **extra
    )


@pytest.fixture(scope="module")
def hma(tmp_path_factory: pytest.TempPathFactory, image_host: str) -> Iterator[dict[str, Any]]:
    """One server with hma_compat on, and tokens of each kind."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("HASHGUARD_"):
                patch.delenv(name)
        folder = tmp_path_factory.mktemp("hma")
        base_settings = _settings(folder)
        admin = make_token(base_settings, Scope.ADMIN, name="coop")
        with contextlib.closing(open_store(base_settings.resolved_database_url)) as store:
            trusted, trusted_secret = store.tokens.create("trusted", [Scope.LOOKUP])
        settings = base_settings.model_copy(
            update={
                "hma_compat": True,
                "hma_url_hosts": ("localhost",),
                "hma_path_secrets": {PATH_SECRET: SecretStr(admin)},
                "lookup_distance_tokens": (trusted.id,),
            }
        )
        tokens = {
            "admin": admin,
            "lookup": make_token(settings, Scope.LOOKUP, name="lookup"),
            "read": make_token(settings, Scope.BANKS_READ, name="read"),
            "trusted": trusted_secret,
        }
        with running_server(settings) as base:
            yield {"base": base, "tokens": tokens, "settings": settings, "host": image_host}


@contextlib.contextmanager
def _client(hma: dict[str, Any], who: str = "admin") -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=hma["base"] + "/hma", headers=bearer(hma["tokens"][who]), timeout=60
    ) as http:
        yield http


def _ok(answer: httpx.Response, shape: Any, status: int = 200) -> Any:
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    return shapes.check(shape, answer.json())


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    message: str = shapes.check(shapes.Message, answer.json()).message
    return message


def _audit(hma: dict[str, Any]) -> list[Any]:
    with contextlib.closing(open_store(hma["settings"].resolved_database_url)) as store:
        return list(store.audit.events())


def _wait_indexed(
    http: httpx.Client, signal_type: str, signal: str, bank: str | None = None
) -> list[int]:
    """The index refreshes every 0.2 s: poll until the new content is found (in
    ``bank``, when given)."""
    query = {"signal_type": signal_type, "signal": signal} | ({"banks": bank} if bank else {})
    for _ in range(200):
        found = _ok(http.get("/m/raw_lookup", params=query), shapes.RawLookup).matches
        if found:
            return list(found)
        threading.Event().wait(0.05)
    return []


def test_an_hma_client_banks_an_image_and_finds_its_edited_copy_as_any_upload(
    hma: dict[str, Any],
) -> None:
    with _client(hma) as http:
        # Coop sends enabled_ratio as a string; HMA's pydantic takes it, so do we
        created = _ok(
            http.post("/c/banks", json={"name": "COOP_BANK", "enabled_ratio": "1"}),
            shapes.BankConfig,
            201,
        )
        assert (created.name, created.matching_enabled_ratio) == ("COOP_BANK", 1.0)
        assert "COOP_BANK" in [b.name for b in _ok(http.get("/c/banks"), shapes.Banks).root]
        added = _ok(
            http.post("/c/bank/COOP_BANK/content", files={"photo": ("a.jpg", ORIGINAL)}),
            shapes.AddedContent,
        )
        assert set(added.signals) == {"pdq", "md5"}
        assert added.signals["md5"] == hashlib.md5(ORIGINAL).hexdigest()
        assert _wait_indexed(http, "pdq", added.signals["pdq"]) == [added.id]
        # the md5 of the same content answers the same content id
        assert _wait_indexed(http, "md5", added.signals["md5"]) == [added.id]

        found = _ok(
            http.post("/m/lookup", files={"photo": ("copy.jpg", EDITED)}),
            shapes.LookupBySignalType,
        ).root
        assert [m.bank_content_id for m in found["pdq"]["COOP_BANK"]] == [added.id]
        assert int(found["pdq"]["COOP_BANK"][0].distance) > 0  # an edited copy, not a twin
        assert found["md5"] == {}
        nothing = _ok(
            http.post("/m/lookup", files={"photo": ("other.jpg", OTHER)}),
            shapes.LookupBySignalType,
        ).root
        assert nothing == {"pdq": {}, "md5": {}}
    # hashguard recorded it as any upload: the scan, its decision and the case
    events = _audit(hma)
    actions = [e.action for e in events]
    assert AuditAction.BANK_CREATED in actions
    added_events = [e for e in events if e.action == AuditAction.BANK_ENTRIES_ADDED]
    assert added_events[-1].details["content"] == added.id
    assert any("case" in e.action for e in events), sorted(set(actions))
    with contextlib.closing(open_store(hma["settings"].resolved_database_url)) as store:
        cases = store.cases.list()
        assert cases, "the matched upload opened a case"


def test_raw_lookup_answers_ids_and_withholds_pdq_distances_from_untrusted_tokens(
    hma: dict[str, Any],
) -> None:
    with _client(hma) as http:
        _ok(http.post("/c/banks", json={"name": "RAW_BANK"}), shapes.BankConfig, 201)
        pdq = "f" * 64
        md5 = hashlib.md5(b"benign made-up content").hexdigest()
        added = _ok(
            http.post("/c/bank/RAW_BANK/signal", json={"pdq": pdq, "md5": md5}),
            shapes.AddedContent,
        )
        assert added.signals == {"pdq": pdq, "md5": md5}
        assert _wait_indexed(http, "md5", md5) == [added.id]
    with _client(hma, "lookup") as http:
        near = "0" + "f" * 63
        plain = _ok(
            http.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": near}),
            shapes.RawLookup,
        )
        assert plain.matches == [added.id]
        withheld = _ok(
            http.get(
                "/m/raw_lookup",
                params={"signal_type": "pdq", "signal": near, "include_distance": "true"},
            ),
            shapes.RawLookupWithDistance,
        )
        assert [(m.bank_content_id, m.distance) for m in withheld.matches] == [(added.id, "-1")]
        exact = _ok(
            http.get(
                "/m/raw_lookup",
                params={"signal_type": "md5", "signal": md5, "include_distance": "true"},
            ),
            shapes.RawLookupWithDistance,
        )
        assert [(m.bank_content_id, m.distance) for m in exact.matches] == [(added.id, "0")]
        other_bank = http.get(
            "/m/raw_lookup", params={"signal_type": "md5", "signal": md5, "banks": "NOPE"}
        )
        assert _ok(other_bank, shapes.RawLookup).matches == []
        by_bank = _ok(
            http.get("/m/lookup", params={"signal_type": "md5", "signal": md5}),
            shapes.LookupByBank,
        ).root
        assert [m.bank_content_id for m in by_bank["RAW_BANK"]] == [added.id]
        assert "invalid signal" in _error(
            http.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": "xyz"}), 400
        )
        assert "No such SignalType" in _error(
            http.get("/m/raw_lookup", params={"signal_type": "tmk", "signal": md5}), 400
        )
        # a lookup token curates nothing
        assert http.post("/c/banks", json={"name": "NOT_MINE"}).status_code == 403


def test_content_is_removed_by_its_integer_id(hma: dict[str, Any]) -> None:
    md5 = hashlib.md5(b"removed benign content").hexdigest()
    with _client(hma) as http:
        _ok(http.post("/c/banks", json={"name": "GONE_BANK"}), shapes.BankConfig, 201)
        added = _ok(http.post("/c/bank/GONE_BANK/signal", json={"md5": md5}), shapes.AddedContent)
        assert _wait_indexed(http, "md5", md5) == [added.id]
        assert (
            _ok(http.delete(f"/c/bank/GONE_BANK/content/{added.id}"), shapes.Deleted).deleted == 1
        )
        assert (
            _ok(http.delete(f"/c/bank/GONE_BANK/content/{added.id}"), shapes.Deleted).deleted == 0
        )
        assert "not found" in _error(http.delete(f"/c/bank/NOPE/content/{added.id}"), 404)


def test_banks_are_updated_and_deleted_with_hmas_shapes(hma: dict[str, Any]) -> None:
    with _client(hma) as http:
        _ok(
            http.post("/c/banks", json={"name": "EDIT_BANK", "enabled": False}),
            shapes.BankConfig,
            201,
        )
        shown = _ok(http.get("/c/bank/EDIT_BANK"), shapes.BankConfig)
        assert shown.matching_enabled_ratio == 0.0
        on = _ok(http.put("/c/bank/EDIT_BANK", json={"enabled_ratio": 1.0}), shapes.BankConfig)
        assert on.matching_enabled_ratio == 1.0
        assert "on (1.0) or off" in _error(
            http.put("/c/bank/EDIT_BANK", json={"enabled_ratio": 0.5}), 400
        )
        assert "rename" in _error(http.put("/c/bank/EDIT_BANK", json={"name": "OTHER"}), 400)
        assert _error(http.post("/c/banks", json={"name": "EDIT_BANK"}), 403)
        assert _ok(http.delete("/c/bank/EDIT_BANK"), shapes.Message).message == "Done"
        assert _error(http.get("/c/bank/EDIT_BANK"), 404)
        assert _error(http.put("/c/bank/EDIT_BANK", json={"enabled": True}), 404)


def test_hashing_uploads_and_allowlisted_urls_only(hma: dict[str, Any]) -> None:
    with _client(hma) as http:
        hashed = _ok(http.post("/h/hash", files={"photo": ("a.jpg", ORIGINAL)}), shapes.Hashes)
        assert set(hashed.root) == {"pdq", "md5"}
        assert hashed.root["md5"] == hashlib.md5(ORIGINAL).hexdigest()
        video = _ok(
            http.post("/h/hash", files={"video": ("v.mp4", b"benign bytes")}), shapes.Hashes
        )
        assert video.root == {"video_md5": hashlib.md5(b"benign bytes").hexdigest()}
        assert _error(http.post("/h/hash", files={"audio": ("a.wav", b"x")}), 400)
        assert _error(http.post("/h/hash", content=b"raw"), 400)
        fetched = _ok(http.get("/h/hash", params={"url": hma["host"] + "/a.jpg"}), shapes.Hashes)
        assert fetched.root == hashed.root
        _ok(http.post("/c/banks", json={"name": "URL_BANK"}), shapes.BankConfig, 201)
        by_url = _ok(
            http.post("/c/bank/URL_BANK/content", params={"url": hma["host"] + "/a.jpg"}),
            shapes.AddedContent,
        )
        assert by_url.signals == hashed.root
        # a lookup by URL runs the fetched file through the pipeline, as an upload
        assert _wait_indexed(http, "md5", hashed.root["md5"], "URL_BANK") == [by_url.id]
        looked = _ok(
            http.get("/m/lookup", params={"url": hma["host"] + "/a.jpg"}),
            shapes.LookupBySignalType,
        ).root
        assert [m.bank_content_id for m in looked["md5"]["URL_BANK"]] == [by_url.id]
        only_pdq = _ok(
            http.get("/m/lookup", params={"url": hma["host"] + "/a.jpg", "signal_type": "pdq"}),
            shapes.LookupByBank,
        ).root
        assert [m.bank_content_id for m in only_pdq["URL_BANK"]] == [by_url.id]
        refused = http.post("/c/bank/URL_BANK/content", params={"url": "http://127.0.0.1:9/a"})
        assert "configured hosts" in _error(refused, 403)
        # any host not on the allowlist is refused before a connection is made
        for url in (
            "http://127.0.0.1:9/a.jpg",
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            hma["host"].replace("localhost", "127.0.0.1") + "/a.jpg",
        ):
            assert "configured hosts" in _error(http.get("/h/hash", params={"url": url}), 403)
            assert _error(http.get("/m/lookup", params={"url": url}), 403)


def test_compare_index_status_and_type_lists(hma: dict[str, Any]) -> None:
    with _client(hma, "lookup") as http:
        near = "0" + "f" * 63
        compared = _ok(
            http.post("/m/compare", json={"pdq": ["f" * 64, near], "md5": ["a" * 32, "b" * 32]}),
            shapes.Compare,
        ).root
        assert compared["pdq"][0] is True
        assert compared["pdq"][1].distance == 4
        assert compared["md5"][0] is False
        assert _error(http.post("/m/compare", json={"pdq": ["f" * 64]}), 400)
        assert _error(http.post("/m/compare", json=["no"]), 400)
        status = _ok(http.get("/m/index/status"), shapes.IndexStatuses).root
        assert set(status) == {"pdq", "md5", "video_md5", "vpdq"}
        assert status["pdq"].present
        assert set(_ok(http.get("/m/index/status?signal_type=pdq"), shapes.IndexStatuses).root) == {
            "pdq"
        }
        assert _error(http.get("/m/index/status?signal_type=tmk"), 400)
    with _client(hma, "read") as http:
        for path in ("/c/signal_type", "/c/signal_types"):
            names = [s.name for s in _ok(http.get(path), shapes.SignalTypes).root]
            assert names == ["pdq", "md5", "video_md5", "vpdq"]
        for path in ("/c/content_type", "/c/content_types"):
            assert [c.name for c in _ok(http.get(path), shapes.ContentTypes).root] == [
                "photo",
                "video",
            ]
        assert http.put("/c/signal_type/pdq", json={"enabled_ratio": 1.0}).status_code == 403
    with _client(hma) as http:  # signal types are always on: only 1.0 is taken
        on = http.put("/c/signal_type/pdq", json={"enabled_ratio": "1"})
        assert (on.status_code, on.content) == (204, b"")
        assert "always on" in _error(http.put("/c/signal_type/md5", json={"enabled_ratio": 0}), 400)
        assert _error(http.put("/c/signal_type/tmk", json={"enabled_ratio": 1}), 404)


def test_status_tokens_and_the_secret_path_prefix(hma: dict[str, Any]) -> None:
    base = hma["base"]
    answer = httpx.get(base + "/hma/status")  # open, as /readyz
    assert (answer.status_code, answer.text) == (200, shapes.STATUS_OK)
    assert httpx.get(base + "/hma/c/banks").status_code == 401
    assert httpx.get(base + "/hma/c/banks", headers=bearer("wrong")).status_code == 401
    with_secret = httpx.get(f"{base}/hma/s/{PATH_SECRET}/c/banks")
    _ok(with_secret, shapes.Banks)
    assert httpx.get(f"{base}/hma/s/not-the-secret/c/banks").status_code == 404
    assert httpx.get(f"{base}/hma/s/{PATH_SECRET}").status_code == 404
    # the secret path acts as its token: audited under that token
    _ok(
        httpx.post(f"{base}/hma/s/{PATH_SECRET}/c/banks", json={"name": "PATH_BANK"}),
        shapes.BankConfig,
        201,
    )
    created = [e for e in _audit(hma) if e.action == AuditAction.BANK_CREATED]
    assert created[-1].subject == "bank:PATH_BANK"
    assert created[-1].actor.startswith("token:")


#: what an outside probe sent /hma; on PostgreSQL each reached the store and failed there
#: (a NUL in a bank name or a signal, an id beyond bigint): 500s and reset connections
HOSTILE = (
    ("GET", "/c/bank/A%00B", {}),
    ("DELETE", "/c/bank/%00", {}),
    ("GET", "/c/bank/%ED%A0%80", {}),
    ("GET", "/c/bank/KNOWN/content/9223372036854775808", {}),
    ("GET", "/c/bank/KNOWN/content/" + "9" * 30, {}),
    ("DELETE", "/c/bank/KNOWN/content/9223372036854775808", {}),
    ("PUT", "/c/bank/KNOWN/content/-1", {"json": {}}),
    ("POST", "/c/bank/A%00/signal", {"json": {"md5": "0" * 32}}),
    ("GET", "/c/exchange/%00", {}),
    ("GET", "/c/exchange/A%00/status", {}),
    ("GET", "/m/raw_lookup", {"params": {"signal_type": "md5", "signal": "\x00"}}),
    ("GET", "/m/raw_lookup?signal_type=pdq&signal=%ED%A0%80", {}),
    ("GET", "/m/lookup", {"params": {"signal_type": "pdq", "signal": "a\x00"}}),
    ("GET", "/h/hash", {"params": {"url": "http://[::1"}}),
    ("GET", "/m/lookup", {"params": {"url": "http://[::1"}}),
)


def test_hostile_text_and_numbers_get_hmas_400_or_404_on_both_engines(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    settings = Settings(
        home=tmp_path / "home", database_url=db_url, workers=1, index_refresh_seconds=0.2
    )
    secret = make_token(settings, Scope.ADMIN)
    settings = settings.model_copy(update={"hma_compat": True, "hma_url_hosts": ("localhost",)})
    with (
        running_server(settings, background=False) as base,
        httpx.Client(base_url=base + "/hma", headers=bearer(secret), timeout=60) as http,
    ):
        _ok(http.post("/c/banks", json={"name": "KNOWN"}), shapes.BankConfig, 201)
        for method, path, extra in HOSTILE:
            answer = http.request(method, path, **extra)
            assert answer.status_code in (400, 404), (method, path, answer.text[:200])
            shapes.check(shapes.Message, answer.json())
        # the service is whole: the next request on the same connection is answered
        _ok(http.get("/c/banks"), shapes.Banks)


def test_the_hma_api_is_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    settings = _settings(tmp_path)
    secret = make_token(settings, Scope.ADMIN)
    with running_server(settings, background=False) as base:
        for path in ("/hma/status", "/hma/c/banks", "/hma/m/index/status"):
            assert httpx.get(base + path, headers=bearer(secret)).status_code == 404


def test_content_items_are_numbered_and_removed_in_the_store(store: Store) -> None:
    store.banks.create("B")
    entries = [
        BankEntry(algorithm=Algorithm.PDQ, value="e" * 64),
        BankEntry(algorithm=Algorithm.MD5, value="d" * 32),
    ]
    content, counts = store.banks.add_content("B", entries)
    assert counts.added == 2
    again, _ = store.banks.add_content("B", [BankEntry(algorithm=Algorithm.MD5, value="c" * 32)])
    assert again != content
    assert store.banks.content_algorithms("B", content) == [Algorithm.PDQ, Algorithm.MD5]
    assert store.banks.content_algorithms("B", content + 1) == []
    store.banks.add_entries("B", [BankEntry(algorithm=Algorithm.MD5, value="f" * 32)])
    plain = max(store.banks.describe(range(1, 100)))  # an entry of another origin: its row
    assert store.banks.content_algorithms("B", plain) == [Algorithm.MD5]
    assert store.banks.remove_content("B", content + 1) == 0  # a row of content, not its id
    assert store.banks.remove_content("B", content) == 2
    assert store.banks.content_algorithms("B", content) == []
    assert store.banks.remove_content("B", content) == 0
    assert store.banks.remove_content("B", again) == 1


def test_raw_lookup_probing_is_refused_and_audited_as_on_v1(hma: dict[str, Any]) -> None:
    """One-bit flips around a matched hash, one per call (as an HMA client would send
    them), exhaust the token's probing budget: 429 in HMA's shape, and an audit alert."""
    listed = "a" * 64
    with _client(hma) as http:
        _ok(http.post("/c/banks", json={"name": "PROBE_BANK"}), shapes.BankConfig, 201)
        _ok(http.post("/c/bank/PROBE_BANK/signal", json={"pdq": listed}), shapes.AddedContent)
        assert _wait_indexed(http, "pdq", listed)
    prober = make_token(hma["settings"], Scope.LOOKUP, name="prober")
    budget = hma["settings"].lookup_probe_budget
    with httpx.Client(base_url=hma["base"] + "/hma", headers=bearer(prober), timeout=60) as http:
        _ok(
            http.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": listed}),
            shapes.RawLookup,
        )
        statuses = []
        for bit in range(budget + 2):
            flipped = f"{int(listed, 16) ^ (1 << bit):064x}"
            answer = http.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": flipped})
            statuses.append(answer.status_code)
        assert statuses[:budget] == [200] * budget
        assert statuses[budget:] == [429, 429]
        assert "close to" in _error(answer, 429)
    alerts = [e for e in _audit(hma) if e.action == AuditAction.LOOKUP_PROBING]
    assert alerts


def test_content_ids_never_reuse_an_imported_hma_id(store: Store) -> None:
    store.banks.create("B")
    first, _ = store.banks.add_content("B", [BankEntry(algorithm=Algorithm.MD5, value="1" * 32)])
    # an entry imported from an HMA database with the id the next row will have
    store.banks.add_entries(
        "B",
        [BankEntry(algorithm=Algorithm.MD5, value="2" * 32, entry_id=f"hma:{first + 2}")],
    )
    second, _ = store.banks.add_content("B", [BankEntry(algorithm=Algorithm.MD5, value="3" * 32)])
    assert second == 2**31 + first + 2
    assert store.banks.remove_content("B", second) == 1
    assert store.banks.remove_content("B", first + 2) == 1  # the imported one, untouched before


def test_content_items_are_shown_and_updates_hashguard_cannot_keep_are_refused(
    hma: dict[str, Any],
) -> None:
    md5 = hashlib.md5(b"shown benign content").hexdigest()
    with _client(hma) as http:
        _ok(http.post("/c/banks", json={"name": "SHOWN_BANK"}), shapes.BankConfig, 201)
        added = _ok(
            http.post("/c/bank/SHOWN_BANK/signal", json={"md5": md5, "note": "n"}),
            shapes.AddedContent,
        )
        path = f"/c/bank/SHOWN_BANK/content/{added.id}"
        shown = _ok(http.get(path, params={"include_signals": "true"}), shapes.BankContent)
        assert (shown.id, shown.disable_until_ts, shown.bank.name) == (added.id, 1, "SHOWN_BANK")
        assert shown.signals is None  # a bank's hashes never leave hashguard
        assert md5 not in http.get(path, params={"include_signals": "true"}).text
        assert _ok(http.put(path, json={"disable_until_ts": 1}), shapes.BankContent) == shown
        assert "remove it" in _error(http.put(path, json={"disable_until_ts": 0}), 400)
        assert "no notes" in _error(http.put(path, json={"note": "kept?"}), 400)
        with _client(hma, "read") as reader:
            assert reader.put(path, json={"disable_until_ts": 1}).status_code == 403
            assert _ok(reader.get(path), shapes.BankContent).id == added.id
        _ok(http.delete(path), shapes.Deleted)
        assert "not found" in _error(http.get(path), 404)
        assert "not found" in _error(http.get(f"/c/bank/NOPE/content/{added.id}"), 404)


def test_exchanges_are_listed_shown_and_switched_without_their_credentials(
    hma: dict[str, Any],
) -> None:
    settings = hma["settings"]
    key, _created = master_key_for(settings)
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        exchanges.add_exchange(
            store,
            "cli:test",
            "ncmec-shapes",
            adapter="ncmec",
            bank="NCMEC_SHAPES",
            settings={"environment": "test_NGO", "window_hours": 12},
            secrets={"username": "made-up-user", "password": "made-up-password"},
            key=key,
        )
    answers: list[str] = []
    with _client(hma) as http:

        def seen(answer: httpx.Response) -> httpx.Response:
            answers.append(answer.text)
            return answer

        apis = _ok(seen(http.get("/c/exchanges/apis")), shapes.Names).root
        assert {"ncmec", "stopncii", "threatexchange"} <= set(apis)
        auth = _ok(seen(http.get("/c/exchanges/api/ncmec")), shapes.ExchangeApiConfig)
        assert (auth.supports_authentification, auth.has_set_authentification) == (True, True)
        # HMA's name of an API hashguard also has
        fbtx = _ok(http.get("/c/exchanges/api/fb_threatexchange"), shapes.ExchangeApiConfig)
        assert (fbtx.supports_authentification, fbtx.has_set_authentification) == (True, False)
        plain = _ok(http.get("/c/exchanges/api/local_file"), shapes.ExchangeApiConfig)
        assert (plain.supports_authentification, plain.has_set_authentification) == (False, False)
        assert "no such Exchange API" in _error(http.get("/c/exchanges/api/nope"), 400)
        refused = http.post("/c/exchanges/api/ncmec", json={"credential_json": {"user": "u"}})
        assert "master key" in _error(refused, 403)
        assert _ok(http.post("/c/exchanges/api/ncmec", json={}), shapes.ExchangeApiConfig) == auth

        schema = _ok(seen(http.get("/c/exchanges/api/ncmec/schema")), shapes.ExchangeApiSchema)
        fields = {f.name: f for f in schema.config_schema.fields}
        assert fields["environment"].type == "enum"
        assert "test_NGO" in (fields["environment"].choices or [])
        assert fields["window_hours"].type == "number"
        assert fields["window_hours"].default == 24
        assert schema.credentials_schema is not None
        assert {f.name for f in schema.credentials_schema.fields} == {"username", "password"}
        assert _error(http.get("/c/exchanges/api/nope/schema"), 404)

        assert "ncmec-shapes" in _ok(seen(http.get("/c/exchanges")), shapes.Names).root
        # HMA names an exchange after its bank: both names find it
        for name in ("ncmec-shapes", "NCMEC_SHAPES"):
            config = _ok(seen(http.get(f"/c/exchange/{name}")), shapes.ExchangeConfig)
            assert (config.name, config.api, config.enabled) == ("ncmec-shapes", "ncmec", True)
            assert config.model_extra == {
                "bank": "NCMEC_SHAPES",
                "environment": "test_NGO",
                "window_hours": 12,
            }
        status = _ok(seen(http.get("/c/exchange/NCMEC_SHAPES/status")), shapes.FetchStatus)
        assert status == shapes.FetchStatus(
            checkpoint_ts=None,
            running_fetch_start_ts=None,
            last_fetch_complete_ts=None,
            last_fetch_succeeded=None,
            up_to_date=False,
            fetched_items=0,
        )
        assert "not found" in _error(http.get("/c/exchange/NOPE"), 404)
        assert _error(http.get("/c/exchange/NOPE/status"), 404)

        off = _ok(
            seen(http.put("/c/exchange/NCMEC_SHAPES", json={"enabled": False})),
            shapes.ExchangeConfig,
        )
        assert off.enabled is False
        assert "boolean" in _error(
            http.put("/c/exchange/NCMEC_SHAPES", json={"enabled": "no"}), 400
        )

        # creating one over HTTP: only for APIs that need no credentials and read no file
        create = {"bank": "NEW_EXCHANGE", "api": "ncmec", "api_json": {}}
        assert "needs credentials" in _error(http.post("/c/exchanges", json=create), 400)
        local = create | {"api": "local_file", "api_json": {"path": "/etc/hostname"}}
        assert "server's files" in _error(http.post("/c/exchanges", json=local), 403)
        assert "must match" in _error(http.post("/c/exchanges", json=create | {"bank": "x"}), 400)
        unknown = http.post("/c/exchanges", json=create | {"api": "nope"})
        assert "no such Exchange API" in _error(unknown, 400)
        with _client(hma, "read") as reader:
            # the gate's scope refusals (problem documents, as for every /hma route)
            assert reader.post("/c/exchanges", json=create).status_code == 403
            assert reader.put("/c/exchange/NCMEC_SHAPES", json={"enabled": True}).status_code == 403
            assert reader.delete("/c/exchange/NCMEC_SHAPES").status_code == 403

        gone = _ok(http.delete("/c/exchange/NCMEC_SHAPES"), shapes.Message)
        assert gone.message == "Exchange deleted"
        assert _error(http.get("/c/exchange/ncmec-shapes"), 404)
        assert _ok(http.delete("/c/exchange/ncmec-shapes"), shapes.Message) == gone
    for text in answers:
        assert "made-up" not in text
    events = [e for e in _audit(hma) if e.subject == "exchange:ncmec-shapes"]
    assert [e.action for e in events] == [
        AuditAction.EXCHANGE_ADDED,
        AuditAction.EXCHANGE_DISABLED,
        AuditAction.EXCHANGE_REMOVED,
    ]
    assert all(e.actor.startswith("token:") for e in events[1:])


def test_signal_type_index_reports_the_index_against_the_bank_entries(
    hma: dict[str, Any],
) -> None:
    md5 = hashlib.md5(b"indexed benign content").hexdigest()
    with _client(hma) as http:
        _ok(http.post("/c/banks", json={"name": "INDEX_BANK"}), shapes.BankConfig, 201)
        added = _ok(http.post("/c/bank/INDEX_BANK/signal", json={"md5": md5}), shapes.AddedContent)
        assert _wait_indexed(http, "md5", md5) == [added.id]  # the index has applied it
    with _client(hma, "read") as http:
        status = _ok(http.get("/c/signal_type/index"), shapes.SignalTypeIndexes).root
        assert set(status) == {"pdq", "md5", "video_md5", "vpdq"}
        md5s = status["md5"]
        assert md5s.db_size == md5s.index_size >= 1
        assert md5s.index_out_of_date is False
        assert md5s.newest_db_item == md5s.index_built_to > 0
        assert status["video_md5"] == md5s  # the same entries: a video's md5 is an md5
        only = _ok(http.get("/c/signal_type/index?signal_type=pdq"), shapes.SignalTypeIndexes)
        assert set(only.root) == {"pdq"}
        assert "No such signal type" in _error(
            http.get("/c/signal_type/index?signal_type=tmk"), 400
        )
    with _client(hma, "lookup") as http:  # a curation read: banks:read
        assert http.get("/c/signal_type/index").status_code == 403


def test_signal_state_counts_live_entries_and_what_an_index_applied(store: Store) -> None:
    nothing = store.banks.signal_state(Algorithm.MD5, -1)
    assert nothing == SignalState(live=0, newest=None, newest_applied=None, pending=False)
    store.banks.create("B")
    store.banks.add_entries("B", [BankEntry(algorithm=Algorithm.MD5, value="1" * 32)])
    applied = store.banks.change_seq()
    store.banks.add_entries(
        "B",
        [
            BankEntry(algorithm=Algorithm.MD5, value="2" * 32),
            BankEntry(algorithm=Algorithm.PDQ, value="3" * 64),
        ],
    )
    behind = store.banks.signal_state(Algorithm.MD5, applied)
    assert (behind.live, behind.pending) == (2, True)
    assert behind.newest is not None
    assert behind.newest_applied is not None
    assert behind.newest >= behind.newest_applied
    caught_up = store.banks.signal_state(Algorithm.MD5, store.banks.change_seq())
    assert (caught_up.live, caught_up.pending) == (2, False)
    assert caught_up.newest_applied == caught_up.newest
    assert store.banks.signal_state(Algorithm.VPDQ, applied).live == 0
    current = store.banks.change_seq()
    assert store.banks.remove_entries("B", [(Algorithm.MD5, "2" * 32)]) == 1
    removed = store.banks.signal_state(Algorithm.MD5, current)
    assert (removed.live, removed.pending) == (1, True)


# -- vPDQ ------------------------------------------------------------------------------

CLIP_SECONDS, CLIP_FPS = 8, 10


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A benign clip, a re-encoded smaller copy of it, and a clip of another picture
    (as tests/test_video_banks.py makes them)."""
    pytest.importorskip("vpdq")
    pytest.importorskip("av")
    folder = tmp_path_factory.mktemp("hma-clips")
    listed = benign_clip(folder / "listed.mp4", 21, seconds=CLIP_SECONDS, fps=CLIP_FPS)
    frames = pan(
        photo_like(21, 800, 600), seconds=CLIP_SECONDS, fps=CLIP_FPS, width=320, height=240
    )
    edited = write_clip(
        folder / "re.mkv", [f.resize((240, 180)) for f in frames], fps=CLIP_FPS, codec="mpeg2video"
    )
    other = benign_clip(folder / "other.mp4", 22, seconds=5, fps=CLIP_FPS)
    return {
        "listed": listed.read_bytes(),
        "edited": edited.read_bytes(),
        "other": other.read_bytes(),
    }


def _shares(distance: str) -> tuple[int, int]:
    found = re.fullmatch(shapes.VPDQ_DISTANCE, distance)
    assert found, distance
    return int(found[1]), int(found[2])


def test_videos_are_hashed_banked_and_found_by_vpdq(
    hma: dict[str, Any], clips: dict[str, bytes]
) -> None:
    from threatexchange.extensions.vpdq.vpdq_util import json_to_vpdq  # noqa: PLC0415

    with _client(hma) as http:
        hashed = _ok(
            http.post("/h/hash", files={"video": ("v.mp4", clips["listed"])}), shapes.Hashes
        ).root
        assert set(hashed) == {"video_md5", "vpdq"}
        assert hashed["video_md5"] == hashlib.md5(clips["listed"]).hexdigest()
        # threatexchange's vpdq signal type reads what /h/hash answers
        features = json_to_vpdq(hashed["vpdq"])
        assert len(features) >= CLIP_SECONDS - 1
        only = _ok(
            http.post("/h/hash?types=vpdq", files={"video": ("v.mp4", clips["listed"])}),
            shapes.Hashes,
        ).root
        assert only == {"vpdq": hashed["vpdq"]}
        edited = _ok(
            http.post("/h/hash", files={"video": ("e.mkv", clips["edited"])}), shapes.Hashes
        ).root["vpdq"]

        _ok(http.post("/c/banks", json={"name": "VIDEO_BANK"}), shapes.BankConfig, 201)
        added = _ok(
            http.post("/c/bank/VIDEO_BANK/signal", json={"vpdq": hashed["vpdq"]}),
            shapes.AddedContent,
        )
        assert added.signals == {"vpdq": hashed["vpdq"]}
        assert _wait_indexed(http, "vpdq", hashed["vpdq"]) == [added.id]
        assert "Invalid vpdq signal" in _error(
            http.post("/c/bank/VIDEO_BANK/signal", json={"vpdq": '["x"]'}), 400
        )

        # an upload through the pipeline: the re-encoded copy is found by vpdq, with
        # HMA's percentages (the caller holds the file), and its exact bytes are not
        found = _ok(
            http.post("/m/lookup", files={"video": ("e.mkv", clips["edited"])}),
            shapes.LookupBySignalType,
        ).root
        assert found["video_md5"] == {}
        (match,) = found["vpdq"]["VIDEO_BANK"]
        assert match.bank_content_id == added.id
        assert _shares(match.distance)[0] >= 80
        unrelated = _ok(
            http.post("/m/lookup", files={"video": ("o.mp4", clips["other"])}),
            shapes.LookupBySignalType,
        ).root
        assert unrelated["vpdq"] == {}
        assert unrelated["video_md5"] == {}

        # a video added by upload is one content item: its md5 and vpdq answer one id
        _ok(http.post("/c/banks", json={"name": "VIDEO_UPLOADS"}), shapes.BankConfig, 201)
        uploaded = _ok(
            http.post("/c/bank/VIDEO_UPLOADS/content", files={"video": ("o.mp4", clips["other"])}),
            shapes.AddedContent,
        )
        assert set(uploaded.signals) == {"video_md5", "vpdq"}
        for name in ("video_md5", "vpdq"):
            found_ids = _wait_indexed(http, name, uploaded.signals[name], "VIDEO_UPLOADS")
            assert found_ids == [uploaded.id]

        compared = _ok(
            http.post(
                "/m/compare",
                json={"vpdq": [edited, hashed["vpdq"]], "md5": ["a" * 32, "a" * 32]},
            ),
            shapes.Compare,
        ).root
        assert compared["vpdq"][0] is True
        assert isinstance(compared["vpdq"][1], shapes.VpdqSimilarity)
        assert compared["vpdq"][1].query_match_percent >= 80
        apart = _ok(
            http.post("/m/compare", json={"vpdq": [uploaded.signals["vpdq"], hashed["vpdq"]]}),
            shapes.Compare,
        ).root
        assert apart["vpdq"][0] is False
        assert "Invalid vpdq hash" in _error(
            http.post("/m/compare", json={"vpdq": ["[]", hashed["vpdq"]]}), 400
        )

    hash_query = {"signal_type": "vpdq", "signal": edited}
    with _client(hma, "trusted") as http:  # a token trusted with distances
        near = _ok(http.get("/m/lookup", params=hash_query), shapes.LookupByBank).root
        (match,) = near["VIDEO_BANK"]
        assert match.bank_content_id == added.id
        assert _shares(match.distance)[0] >= 80
        twin = _ok(
            http.get(
                "/m/raw_lookup",
                params={"signal_type": "vpdq", "signal": hashed["vpdq"], "include_distance": True},
            ),
            shapes.RawLookupWithDistance,
        )
        assert [(m.bank_content_id, m.distance) for m in twin.matches] == [(added.id, "100%[100%]")]
    with _client(hma, "lookup") as http:  # any other: which content, never how close
        plain = _ok(http.get("/m/raw_lookup", params=hash_query), shapes.RawLookup)
        assert plain.matches == [added.id]
        withheld = _ok(
            http.get("/m/raw_lookup", params=hash_query | {"include_distance": "true"}),
            shapes.RawLookupWithDistance,
        )
        assert [(m.bank_content_id, m.distance) for m in withheld.matches] == [(added.id, "-1")]
        by_bank = _ok(http.get("/m/lookup", params=hash_query), shapes.LookupByBank).root
        assert [(m.bank_content_id, m.distance) for m in by_bank["VIDEO_BANK"]] == [
            (added.id, "-1")
        ]
        for bad in ("not json", '["x"]', "[]", '{"a": 1}'):
            answer = http.get("/m/raw_lookup", params={"signal_type": "vpdq", "signal": bad})
            assert "invalid signal" in _error(answer, 400)


def test_the_native_lookup_matches_a_videos_vpdq_frames(
    hma: dict[str, Any], clips: dict[str, bytes]
) -> None:
    """/v1/lookup's vpdq queries, which /hma's hash lookups go through: one video a
    query, matched against listed videos; percentages only for a trusted token."""
    with _client(hma) as http:
        listed = _ok(
            http.post("/h/hash", files={"video": ("v.mp4", clips["listed"])}), shapes.Hashes
        ).root["vpdq"]
        edited = _ok(
            http.post("/h/hash", files={"video": ("e.mkv", clips["edited"])}), shapes.Hashes
        ).root["vpdq"]
        _ok(http.post("/c/banks", json={"name": "NATIVE_VIDEOS"}), shapes.BankConfig, 201)
        added = _ok(
            http.post("/c/bank/NATIVE_VIDEOS/signal", json={"vpdq": listed}), shapes.AddedContent
        )
        assert _wait_indexed(http, "vpdq", listed, "NATIVE_VIDEOS") == [added.id]
    query = {
        "hashes": [
            {"algorithm": "vpdq", "hash": json.loads(edited)},
            {"algorithm": "vpdq", "hash": "a" * 64},
            {"algorithm": "md5", "hash": ["f" * 64 + ",100,0.000"]},
        ]
    }
    answers = {}
    for who in ("lookup", "trusted"):
        with httpx.Client(base_url=hma["base"], headers=bearer(hma["tokens"][who])) as http:
            answer = http.post("/v1/lookup", json=query)
            assert answer.status_code == 200, answer.text[:300]
            answers[who] = answer.json()["results"]
    for results in answers.values():
        video, as_text, md5_list = results
        assert video["valid"] is True
        assert video["hash"] == vpdq_digest(parse_signal(Algorithm.VPDQ, edited)[1])
        (match,) = [m for m in video["matches"] if m["bank"] == "NATIVE_VIDEOS"]
        assert match["algorithm"] == "vpdq"
        assert (as_text["valid"], md5_list["valid"]) == (False, False)
        assert "list" in as_text["reason"]
        assert "string" in md5_list["reason"]
    (hidden,) = [m for m in answers["lookup"][0]["matches"] if m["bank"] == "NATIVE_VIDEOS"]
    assert (hidden["distance"], hidden["query_percent"], hidden["compared_percent"]) == (
        None,
        None,
        None,
    )
    assert hidden["timestamps"] == []
    (shown,) = [m for m in answers["trusted"][0]["matches"] if m["bank"] == "NATIVE_VIDEOS"]
    assert shown["query_percent"] >= 80
    assert shown["compared_percent"] > 0
    assert shown["distance"] is not None


# -- creating an exchange over HTTP --------------------------------------------------------


class _FeedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    collection: str = Field(min_length=1)
    page_size: int = Field(default=100, ge=1)


class _CredentialFreeFeed(ListSource):
    """A list source that needs no credentials and reads no server file (none of the
    built-ins qualifies): registered for these tests only, through an entry point."""

    name = "hma_test_feed"
    description = "a made-up credential-free feed (tests only)"
    Settings: ClassVar[type[BaseModel]] = _FeedSettings
    algorithms = frozenset({Algorithm.MD5})
    audience = "any"

    def fetch(self, checkpoint: str | None) -> Iterator[SyncBatch]:
        yield SyncBatch(checkpoint="done")


def test_an_exchange_of_a_credential_free_api_is_created_with_its_bank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    builtins = [a.name for a in Registry.load().installed() if a.enabled]
    # a plugin distribution on sys.path, found by the real registry's entry-point scan
    info = tmp_path / "plugins" / "hma_test_feed-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hma-test-feed\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\nhma_test_feed = {__name__}:_CredentialFreeFeed\n"
    )
    monkeypatch.syspath_prepend(str(info.parent))
    settings = _settings(tmp_path).model_copy(
        update={"hma_compat": True, "adapters": (*builtins, "hma_test_feed")}
    )
    admin = make_token(settings, Scope.ADMIN, name="curator")
    create = {"bank": "FEED_BANK", "api": "hma_test_feed", "api_json": {"collection": "demo"}}
    with (
        running_server(settings, background=False) as base,
        httpx.Client(base_url=base + "/hma", headers=bearer(admin), timeout=60) as http,
    ):
        assert "hma_test_feed" in _ok(http.get("/c/exchanges/apis"), shapes.Names).root
        schema = _ok(http.get("/c/exchanges/api/hma_test_feed/schema"), shapes.ExchangeApiSchema)
        assert [f.name for f in schema.config_schema.fields] == ["collection", "page_size"]
        assert schema.credentials_schema is None
        bad = create | {"api_json": {"collection": "demo", "page_size": 0}}
        assert "Failed to parse `api_json`" in _error(http.post("/c/exchanges", json=bad), 400)
        created = _ok(http.post("/c/exchanges", json=create), shapes.Message, 201)
        assert created.message == "Created successfully"
        assert "already" in _error(http.post("/c/exchanges", json=create), 400)
        config = _ok(http.get("/c/exchange/FEED_BANK"), shapes.ExchangeConfig)
        assert (config.name, config.api, config.enabled) == ("FEED_BANK", "hma_test_feed", True)
        assert config.model_extra == {"bank": "FEED_BANK", "collection": "demo"}
        bank = _ok(http.get("/c/bank/FEED_BANK"), shapes.BankConfig)
        assert bank.matching_enabled_ratio == 1.0
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        exchange = store.exchanges.get("FEED_BANK")
        assert (exchange.adapter, exchange.bank) == ("hma_test_feed", "FEED_BANK")
        assert dict(exchange.settings) == {"collection": "demo"}
        assert exchange.credential_names == ()
        assert store.banks.find("FEED_BANK") is not None
        events = list(store.audit.events())
    made = [(e.action, e.subject) for e in events if "FEED_BANK" in e.subject]
    assert made == [
        (AuditAction.BANK_CREATED, "bank:FEED_BANK"),
        (AuditAction.EXCHANGE_ADDED, "exchange:FEED_BANK"),
    ]
    assert all(e.actor.startswith("token:") for e in events if "FEED_BANK" in e.subject)


def test_vpdq_lookups_that_walk_a_listed_frame_spend_the_probing_budget(
    hma: dict[str, Any], clips: dict[str, bytes]
) -> None:
    """A client holding a matching video can change one frame of its vpdq signal at a
    time and read that listed frame from the answers: each such call is one close
    lookup. Repeats and unrelated videos are not, and a video's own frames, close
    together, never count against each other."""
    with _client(hma) as http:
        listed, other = (
            _ok(http.post("/h/hash", files={"video": ("v.mp4", clips[n])}), shapes.Hashes).root[
                "vpdq"
            ]
            for n in ("listed", "other")
        )
        _ok(http.post("/c/banks", json={"name": "PROBED_VIDEOS"}), shapes.BankConfig, 201)
        _ok(http.post("/c/bank/PROBED_VIDEOS/signal", json={"vpdq": listed}), shapes.AddedContent)
        assert _wait_indexed(http, "vpdq", listed, "PROBED_VIDEOS")
    with contextlib.closing(open_store(hma["settings"].resolved_database_url)) as store:
        token, prober = store.tokens.create("video-prober", [Scope.LOOKUP])
    budget = hma["settings"].lookup_probe_budget
    frames = json.loads(listed)
    pdq, quality, timestamp = frames[0].split(",")
    with httpx.Client(base_url=hma["base"] + "/hma", headers=bearer(prober), timeout=60) as http:

        def status(signal: str) -> int:
            answer = http.get("/m/raw_lookup", params={"signal_type": "vpdq", "signal": signal})
            return answer.status_code

        assert [status(listed), status(listed), status(other)] == [200, 200, 200]
        statuses = []
        for bit in range(budget + 2):
            walked = f"{int(pdq, 16) ^ (1 << bit):064x},{quality},{timestamp}"
            statuses.append(status(json.dumps([walked, *frames[1:]])))
        assert statuses[:budget] == [200] * budget
        assert statuses[budget:] == [429, 429]
    alerts = [e for e in _audit(hma) if e.action == AuditAction.LOOKUP_PROBING]
    assert [e.subject for e in alerts].count(f"token:{token.id}") == 1
