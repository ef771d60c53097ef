"""Property-based fuzzing of the whole HTTP API from its OpenAPI document.

schemathesis generates requests (valid and invalid) for every operation of the
document the app serves, and sends them over loopback HTTP to a real uvicorn server
on a real SQLite store, authenticated with an admin token. It is about the API
contract, so one engine is enough; it is deterministic (fixed seed, derandomized)
and bounded (MAX_EXAMPLES per operation and phase).

Two tests:

- ``test_no_server_error_and_documented_responses``: no 5xx, every status code
  documented, every content type, header and body as documented, and every error an
  RFC 9457 problem carrying the response's request id.
- ``test_every_response_conforms_to_the_document`` runs all of schemathesis's
  default checks (negative data refused, positive data accepted, Allow headers...).

Two findings of the fuzzer that its checks alone would not pin are plain tests at
the end: an empty import must not empty a bank, and NUL characters (or NaN) must
be client errors on PostgreSQL, which cannot store them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hashguard.domain.banks import BankKind
from hashguard.domain.cases import CaseSource, SourceKind
from hashguard.domain.matches import Match
from hashguard.domain.people import Role
from hashguard.domain.policy import Action, Decision
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web.app import create_app
from hashguard.web.problems import PROBLEM_JSON, REQUEST_ID
from tests.server import running_server

#: Fixed, so that a failure in CI replays anywhere.
SEED = 20240611
MAX_EXAMPLES = 25

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # A live server over HTTP is slower than hypothesis expects of a function.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _document() -> dict[str, Any]:
    """The app's OpenAPI document (create_app opens nothing until it is served)."""
    document: dict[str, Any] = create_app(
        Settings(home=Path("/nonexistent"), database_url="sqlite://")
    ).openapi()
    return document


#: schemathesis's tests, generated per operation, collapse to one item under pytest-xdist
pytestmark = pytest.mark.serial

schema = schemathesis.openapi.from_dict(
    _document(), config=schemathesis.Config.from_dict({"seed": SEED})
)

Live = tuple[str, dict[str, str]]


def _admin_store() -> tuple[Path, str, str]:
    """A fresh SQLite store with an admin token, another acting for a lead (a token never
    does more than its person, and only a person decides cases) and a few open review
    cases (so decisions get past "who decides" to real cases), made when the module is
    collected: schemathesis asks for the token (``AdminToken``) while it generates cases."""
    folder = Path(tempfile.mkdtemp(prefix="hashguard-fuzz-"))
    store = open_store(f"sqlite:///{folder / 'hashguard.db'}", migrate=True)
    try:
        secret = store.tokens.create("fuzzer", [Scope.ADMIN])[1]
        token, lead_secret = store.tokens.create("fuzzer-cases", [Scope.ADMIN])
        lead = store.people.create_user("fuzz-lead", Role.LEAD)
        store.people.set_token_owner(token.id, lead.id)
        for n in range(3):
            store.cases.open_or_update(
                content_key=f"{n:064x}",
                source=CaseSource(kind=SourceKind.UPLOAD, ref=f"fuzz-{n}"),
                signals=FileSignals(size=1, md5=f"{n:032x}", sha1=f"{n:040x}", sha256=f"{n:064x}"),
                matches=[
                    Match(
                        bank="fuzz",
                        bank_kind=BankKind.KNOWN,
                        algorithm=Algorithm.MD5,
                        distance=0,
                        entry_id=f"e{n}",
                        category=None,
                    )
                ],
                remote=[],
                decision=Decision(action=Action.REVIEW, rule="fuzz: exact", bank="fuzz"),
                actor="system:test",
            )
    finally:
        store.close()
    return folder, secret, lead_secret


FOLDER, SECRET, CASES_SECRET = _admin_store()


@schema.auth()
class AdminToken:
    """Schemathesis authenticates its requests with the live server's admin token (and
    still sends requests without one, or with a broken one, on purpose)."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return SECRET

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        if case.path.startswith("/v1/cases"):
            data = CASES_SECRET  # the lead's token: the case routes need a person who decides
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """A real server on that store, and the headers of its admin token."""
    with pytest.MonkeyPatch.context() as env:  # no HASHGUARD_* setting of the caller leaks in
        for name in list(os.environ):
            if name.startswith("HASHGUARD_"):
                env.delenv(name)
        api = Settings(
            home=FOLDER / "home",
            database_url=f"sqlite:///{FOLDER / 'hashguard.db'}",
            workers=2,
            index_refresh_seconds=0.2,
        )
    try:
        with running_server(api) as base:
            yield base, {"Authorization": f"Bearer {SECRET}"}
    finally:
        shutil.rmtree(FOLDER, ignore_errors=True)


def test_the_server_serves_the_document_being_fuzzed(live: Live) -> None:
    base, _ = live
    assert httpx.get(base + "/openapi.json").json() == _document()


# -- the checks ------------------------------------------------------------------------


def _media_type(response: schemathesis.Response) -> str:
    values = response.headers.get("content-type", [""])
    return values[0].split(";", 1)[0].strip().lower()


def problem_details(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every response carries its request id; every error is an RFC 9457 problem
    (web/problems.py) whose status and request id are the response's own."""
    request_ids = response.headers.get(REQUEST_ID.lower(), [])
    assert len(request_ids) == 1, f"expected one {REQUEST_ID} header, got {request_ids}"
    if response.status_code < 400:
        return None
    assert _media_type(response) == PROBLEM_JSON, (
        f"a {response.status_code} answered as {_media_type(response)!r}, not {PROBLEM_JSON}"
    )
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("title"), str), body
    assert isinstance(body.get("type"), str), body
    assert body.get("status") == response.status_code, body
    assert body.get("request_id") == request_ids[0], body
    return None


CONTRACT_CHECKS = [
    not_a_server_error,
    problem_details,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_error_and_documented_responses(case: schemathesis.Case, live: Live) -> None:
    base, _ = live
    case.call_and_validate(base_url=base, checks=CONTRACT_CHECKS)


# -- every default check, against the document as it is ---------------------------------


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_response_conforms_to_the_document(case: schemathesis.Case, live: Live) -> None:
    base, _ = live
    case.call_and_validate(base_url=base)


# -- what the fuzzer found, pinned as plain regression tests ------------------------------


def test_an_import_without_a_body_is_refused_and_keeps_the_bank(live: Live) -> None:
    base, auth = live
    with httpx.Client(base_url=base, headers=auth) as http:
        assert http.post("/v1/banks", json={"name": "keep-me"}).status_code == 201
        entries = [{"algorithm": "md5", "hash": f"{n:032x}"} for n in (1, 2)]
        assert http.post("/v1/banks/keep-me/entries", json={"entries": entries}).is_success
        answer = http.post("/v1/banks/keep-me/import", params={"format": "plain"})
        kept = http.get("/v1/banks/keep-me").json()["entries"]
    assert kept == {"md5": 2}, f"the empty import answered {answer.status_code}: {answer.text}"
    assert answer.status_code == 400


def _nul_requests() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Requests carrying a NUL character in a text the store keeps or looks up."""
    md5 = "0" * 31 + "1"
    row = f"{md5}\n".encode()
    # Python's json (which FastAPI uses) reads NaN; PostgreSQL's json type does not.
    nan = '{"entries": [{"algorithm": "md5", "hash": "' + md5 + '", "metadata": {"k": NaN}}]}'
    return {
        "bank name in the path": ("GET", "/v1/banks/a%00b", {}),
        "bank source": ("POST", "/v1/banks", {"json": {"name": "n1", "source": "a\0b"}}),
        "bank licence": ("PATCH", "/v1/banks/nul", {"json": {"licence": "a\0b"}}),
        "entry id": (
            "POST",
            "/v1/banks/nul/entries",
            {"json": {"entries": [{"algorithm": "md5", "hash": md5, "entry_id": "a\0b"}]}},
        ),
        "import version": (
            "POST",
            "/v1/banks/nul/import",
            {"params": {"format": "plain", "algorithm": "md5", "version": "a\0b"}, "content": row},
        ),
        "NaN in entry metadata": (
            "POST",
            "/v1/banks/nul/entries",
            {
                "content": nan.encode(),
                "headers": {"Content-Type": "application/json"},
            },
        ),
    }


@pytest.mark.postgres
def test_nul_characters_get_a_client_error_not_a_server_error_on_postgres(
    postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by fuzzing; SQLite stores these texts, PostgreSQL refuses them."""
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    store = open_store(postgres_database, migrate=True)
    try:
        _, secret = store.tokens.create("nul", [Scope.ADMIN])
    finally:
        store.close()
    api = Settings(home=tmp_path / "home", database_url=postgres_database, workers=1)
    # A 500 closes the connection: one connection per request keeps the answers apart.
    headers = {"Authorization": f"Bearer {secret}", "Connection": "close"}
    statuses = {}
    with running_server(api) as base, httpx.Client(base_url=base, headers=headers) as http:
        assert http.post("/v1/banks", json={"name": "nul"}).status_code == 201
        for what, (method, path, options) in _nul_requests().items():
            statuses[what] = http.request(method, path, **options).status_code
    assert all(400 <= status < 500 for status in statuses.values()), statuses
