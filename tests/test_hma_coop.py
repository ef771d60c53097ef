"""A published HMA client drives hashguard unchanged (issue 20): ROOST Coop's HMA
client, ``server/services/hmaService/index.ts`` with Coop's own HTTP client
``server/services/networkingService/index.ts``, run with node against ``/hma`` on a
loopback hashguard server.

Coop publishes no package, and tests reach no network but loopback, so its code is not
fetched here and not copied into this repository: the test runs when
``HASHGUARD_COOP_SRC`` names a Coop checkout (checked at commit
``1c1f54da95c738ed6293997c73ab83541ba9a373``) and ``npm install`` has been run in
``tests/hma_coop`` (the npm packages Coop's module imports, and TypeScript to compile
it); otherwise it is skipped, saying so. docs/hma.md says how to run it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from hashguard.demo.corpus import Kind, edited_copy, encode, generate
from hashguard.domain.audit import AuditAction
from hashguard.domain.tokens import Scope
from hashguard.keys import master_key_for
from hashguard.services import exchanges
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.api_support import make_token
from tests.server import running_server

COOP_ENV = "HASHGUARD_COOP_SRC"
HARNESS = Path(__file__).parent / "hma_coop"
IMAGE = generate(Kind.PHOTO, seed=41, width=480, height=360)
ORIGINAL = encode(IMAGE)
EDITED = edited_copy(IMAGE, "resized")
OTHER = encode(generate(Kind.PHOTO, seed=83, width=320, height=240))
SECRET = "coop-path-secret-7f3a9c1e5b2d4f6a8c0e"
#: Coop names its HMA banks COOP_<ORG>_<NAME>
BANK = "COOP_ORG1_KNOWN_IMAGES"


def _coop() -> Path:
    where = os.environ.get(COOP_ENV)
    if not where:
        pytest.skip(f"{COOP_ENV} names no Coop checkout (Coop is not on a registry)")
    coop = Path(where)
    if not (coop / "server/services/hmaService/index.ts").is_file():
        pytest.skip(f"{COOP_ENV}={where} has no server/services/hmaService/index.ts")
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (HARNESS / "node_modules/typescript").is_dir():
        pytest.skip("run `npm install` in tests/hma_coop first")
    return coop


class _Images(BaseHTTPRequestHandler):
    """The platform's media host (allowlisted in hma_url_hosts): benign images only."""

    FILES: ClassVar[dict[str, bytes]] = {
        "/original.jpg": ORIGINAL,
        "/edited.jpg": EDITED,
        "/other.jpg": OTHER,
    }

    def do_GET(self) -> None:
        body = self.FILES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_coops_hma_client_banks_an_image_and_finds_its_edited_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coop = _coop()
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'hashguard.db'}"
    open_store(url, migrate=True).close()
    base = Settings(home=tmp_path / "home", database_url=url, workers=1, index_refresh_seconds=0.2)
    coop_token = make_token(
        base, Scope.SCAN, Scope.LOOKUP, Scope.BANKS_READ, Scope.BANKS_WRITE, name="coop"
    )
    settings = base.model_copy(
        update={
            "hma_compat": True,
            "hma_url_hosts": ("localhost",),
            "hma_path_secrets": {SECRET: SecretStr(coop_token)},
        }
    )
    key, _created = master_key_for(settings)
    with contextlib.closing(open_store(url)) as store:  # an exchange set up in hashguard
        exchanges.add_exchange(
            store,
            "cli:test",
            "ncmec-test",
            adapter="ncmec",
            bank="NCMEC_TEST",
            settings={"environment": "test_Industry"},
            secrets={"username": "made-up", "password": "made-up-too"},
            key=key,
        )
    original = tmp_path / "original.jpg"
    original.write_bytes(ORIGINAL)

    with _image_host() as host, running_server(settings) as server:
        scenario = {
            # Coop knows only the base URL: the secret path stands for its token
            "service_url": f"{server}/hma/s/{SECRET}",
            "bank": "Known images",
            "original": str(original),
            "other_url": f"{host}/other.jpg",
            "edited_url": f"{host}/edited.jpg",
            "exchange_api": "ncmec",
            "exchange_bank": "NCMEC_TEST",
        }
        (tmp_path / "scenario.json").write_text(json.dumps(scenario))
        run = subprocess.run(
            ["node", str(HARNESS / "harness.mjs"), str(coop), str(tmp_path / "scenario.json")],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert run.returncode == 0, run.stderr[-2000:]
    steps = json.loads(run.stdout)
    failed = {k: v["error"] for k, v in steps.items() if "error" in v}
    assert not failed, failed
    got = {k: v["ok"] for k, v in steps.items()}

    assert got["createBank"]["hma_name"] == BANK
    assert got["getBank"]["hma_name"] == BANK  # HMA said the bank exists
    assert got["listBanks"] == [BANK]
    upload, by_url = got["addContentByUpload"], got["addContentByUrl"]
    assert set(upload["signals"]) == {"pdq", "md5"}
    assert isinstance(upload["id"], int)
    assert isinstance(by_url["id"], int)
    assert upload["id"] != by_url["id"]
    assert set(got["hashEditedFromUrl"]) == {"pdq", "md5"}
    assert got["checkImageMatch"] == {"matched": True, "matchedBanks": [BANK]}
    # the edited copy, fetched by URL, matched the banked original and nothing else
    found = got["lookupEditedByUrl"]
    assert [m["bank_content_id"] for m in found["pdq"][BANK]] == [upload["id"]]
    assert found["md5"] == {}
    apis = {a["name"]: a for a in got["getExchangeApis"]}
    assert apis["ncmec"] == {"name": "ncmec", "supports_auth": True, "has_auth": True}
    assert {"stopncii", "threatexchange"} <= set(apis)
    fields = [f["name"] for f in got["getExchangeApiSchema"]["config_schema"]["fields"]]
    assert "environment" in fields
    creds = got["getExchangeApiSchema"]["credentials_schema"]["fields"]
    assert {f["name"] for f in creds} == {"username", "password"}
    exchange = got["getExchangeForBank"]
    assert (exchange["api"], exchange["enabled"], exchange["has_auth"]) == ("ncmec", True, True)
    assert exchange["fetched_items"] == 0
    assert exchange["is_fetching"] is False
    assert got["getExchangeForPlainBank"] is None  # a bank with no exchange
    assert got["updateBankDisabled"]["enabled_ratio"] == 0

    # hashguard recorded Coop's calls as any others: the bank, its content, the upload
    # that matched (its decision and case), and nothing of the credentials
    with contextlib.closing(open_store(url)) as store:
        bank = store.banks.get(BANK)
        assert not bank.enabled  # Coop's enabled_ratio 0
        assert store.banks.find("COOP_ORG1_TO_DELETE") is None
        cases = store.cases.list()
        assert len(cases) == 1, cases
        events = list(store.audit.events())
    actions = [e.action for e in events]
    assert actions.count(AuditAction.BANK_CREATED) == 3  # NCMEC_TEST, Coop's two
    assert AuditAction.BANK_DELETED in actions
    added = [e for e in events if e.action == AuditAction.BANK_ENTRIES_ADDED]
    assert {e.details["content"] for e in added} == {upload["id"], by_url["id"]}
    coop_actor = added[0].actor
    assert coop_actor.startswith("token:")  # the token the secret path stands for
    decisions = [e for e in events if e.action == AuditAction.SCAN_DECISION]
    assert decisions
    assert all(e.actor == coop_actor for e in decisions)
    opened = [e for e in events if e.action == AuditAction.CASE_OPENED]
    assert [e.subject for e in opened] == [f"case:{cases[0].id}"], opened
    assert "made-up" not in run.stdout
