"""``hashguard stats`` (in process) and ``GET /v1/stats`` over a seeded in-memory
``StatsReader``: the same numbers as the aggregation, the same files as the golden ones,
a feed that verifies with the host's published key, and its push through the outbox."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import typer
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from typer.testing import CliRunner

from hashguard.actions.webhooks import body_bytes, signed_headers
from hashguard.actions.webhooks import verify as verify_webhook
from hashguard.cli.stats_views import register
from hashguard.domain.actions import ActionKind, ActionState, WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.domain.people import Role
from hashguard.domain.stats import StatsReader
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.stats.aggregate import aggregate, table_json
from hashguard.stats.signing import verify
from hashguard.store import Store, open_store
from hashguard.web.app import create_app
from hashguard.web.ui.session import COOKIE
from tests.api_support import assert_problem, bearer
from tests.server import running_server
from tests.stats_workload import workload

GOLDEN = Path(__file__).parent / "golden" / "stats"
AT = datetime(2026, 7, 2, 8, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
_names = itertools.count()
UI_ALLOWED = {Role.LEAD, Role.ADMIN, Role.AUDITOR}


@pytest.fixture(scope="module")
def reader() -> StatsReader:
    return workload()


@pytest.fixture
def cli(home: Path, reader: StatsReader) -> typer.Typer:
    stats_app = typer.Typer()
    register(stats_app, reader_for=lambda _store: reader, clock=lambda: AT)
    root = typer.Typer()
    root.add_typer(stats_app, name="stats")

    @root.callback()
    def _root() -> None:
        """The test's root (typer needs one to keep ``stats`` a group)."""

    return root


def _run(app: typer.Typer, *args: str) -> str:
    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 0, (done.output, done.exception)
    return done.stdout


def test_the_table_in_every_format(cli: typer.Typer, reader: StatsReader) -> None:
    span = ["--since", "2026-01-01", "--until", "2026-06-30"]
    shown = json.loads(_run(cli, "stats", *span, "--by", "month", "--format", "json"))
    expected = table_json(aggregate(reader, date(2026, 1, 1), date(2026, 6, 30), by=["month"]))
    assert shown == json.loads(json.dumps(expected))
    rows = list(
        csv.DictReader(io.StringIO(_run(cli, "stats", *span, "--by", "bank", "--format", "csv")))
    )
    assert {r["bank"] for r in rows} == {"eokm", "iwf-list", "ncmec-ngo"}
    assert all(0 < float(r["accuracy_low"]) < float(r["accuracy"]) for r in rows)
    table = _run(cli, "stats", "--period", "2026-H1", "--by", "quarter")
    assert "2026-Q1" in table
    assert "accuracy" in table
    assert "notice_to_decision" in table
    refused = CliRunner().invoke(cli, ["stats", "--by", "fortnight"])
    assert refused.exit_code == 2
    assert "cannot group by" in refused.output


def test_transparency_writes_the_golden_files(cli: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "report"
    _run(
        cli,
        "stats",
        "transparency",
        "--period",
        "2026-H1",
        "--out",
        str(out),
        "--provider",
        "Example Hosting B.V.",
        "--service",
        "example.invalid",
    )
    golden = GOLDEN / "transparency-2026-H1"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in golden.iterdir())
    for path in golden.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_feed_verifies_with_the_published_key_and_is_pushed_once(
    cli: typer.Typer, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", url)
    monkeypatch.setenv(
        "HASHGUARD_WEBHOOKS",
        json.dumps(
            [
                {
                    "name": "hotline",
                    "url": "http://127.0.0.1:9/feed",
                    "secret": SECRET,
                    "events": ["stats.feed"],
                },
                {"name": "platform", "url": "http://127.0.0.1:9/all", "secret": SECRET},
            ]
        ),
    )
    key_id, pem = _run(cli, "stats", "feed-key").split("\n", 1)
    public = load_pem_public_key(pem.encode()).public_bytes_raw()  # type: ignore[union-attr]
    envelope = json.loads(_run(cli, "stats", "feed", "--period", "2026-Q2", "--k", "25"))
    assert envelope["signature"]["key_id"] == key_id
    payload = verify(envelope, public)
    assert payload["suppression"]["k"] == 25
    assert payload["period"]["name"] == "2026-Q2"
    for _ in range(2):  # the same feed pushed twice is delivered once
        _run(cli, "stats", "feed", "--period", "2026-Q2", "--k", "25", "--push")
    with contextlib.closing(open_store(url)) as store:
        (action,) = store.actions.list()
        assert action.kind is ActionKind.WEBHOOK
        assert action.target == "hotline"
        assert action.state is ActionState.PENDING
        assert action.payload["type"] == "stats.feed"
        assert verify(action.payload["data"], public) == payload
        pushed = [e for e in store.audit.events() if e.action == AuditAction.STATS_FEED_PUSHED]
        assert len(pushed) == 2
        assert pushed[0].details["endpoints"] == ["hotline"]
    # what the hotline receives: a Standard Webhooks delivery whose data is the envelope
    body = body_bytes(action.payload)
    endpoint = WebhookEndpoint(name="hotline", url="http://127.0.0.1:9/feed", secret=SECRET)
    headers = signed_headers(endpoint, action.idempotency_key, body, datetime.now(UTC))
    assert verify(verify_webhook(SECRET, body, headers)["data"], public) == payload
    refused = CliRunner().invoke(
        cli, ["stats", "feed", "--period", "2026-Q2", "--push", "--to", "platform"]
    )
    assert refused.exit_code == 2
    assert "stats.feed" in refused.output


# -- GET /v1/stats -------------------------------------------------------------


@contextlib.contextmanager
def _server(settings: Settings, reader: StatsReader | None) -> Iterator[str]:
    app = create_app(settings, background=False)
    with running_server(settings, app=app) as base:
        app.state.services.stats = reader  # the rollups the recording would keep
        yield base


def _token(store: Store, scope: Scope, role: Role | None) -> str:
    token, secret = store.tokens.create(f"t{next(_names)}", [scope])
    if role is not None:
        person = store.people.create_user(f"p{next(_names)}", role)
        store.people.set_token_owner(token.id, person.id)
    return secret


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_api_serves_the_same_numbers_to_the_roles_allowed(
    api_settings: Settings, reader: StatsReader
) -> None:
    allowed = {None, Role.LEAD, Role.ADMIN, Role.AUDITOR}
    with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
        tokens = {
            (scope, role): _token(store, scope, role)
            for scope in (Scope.STATS, Scope.ADMIN, Scope.CASES_READ)
            for role in (None, *Role)
        }
    query = {"since": "2026-01-01", "until": "2026-06-30", "by": "month,way"}
    with _server(api_settings, reader) as base, httpx.Client(base_url=base, timeout=30) as http:
        wrong = []
        for (scope, role), secret in tokens.items():
            answer = http.get("/v1/stats", params=query, headers=bearer(secret))
            ok = scope is not Scope.CASES_READ and role in allowed
            if answer.status_code != (200 if ok else 403):
                wrong.append(f"{scope} {role}: {answer.status_code}")
        assert not wrong, wrong
        answer = http.get("/v1/stats", params=query, headers=bearer(tokens[Scope.STATS, None]))
        expected = table_json(
            aggregate(reader, date(2026, 1, 1), date(2026, 6, 30), by=["month", "way"])
        )
        assert answer.json() == json.loads(json.dumps(expected))
        only = http.get(
            "/v1/stats",
            headers=bearer(tokens[Scope.STATS, None]),
            params={**query, "by": "bank", "metrics": "matches"},
        ).json()
        assert all(set(r["counts"]) == {"matches"} for r in only["rows"])
        bad = http.get(
            "/v1/stats", params={"by": "person"}, headers=bearer(tokens[Scope.STATS, None])
        )
        assert "query.by" in assert_problem(bad, 422)["detail"]
        assert_problem(http.get("/v1/stats"), 401)
    with _server(api_settings, None) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert_problem(http.get("/v1/stats", headers=bearer(tokens[Scope.STATS, None])), 503)


# -- /ui/stats ---------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_dashboard_draws_the_api_numbers_for_the_roles_allowed(
    api_settings: Settings, reader: StatsReader
) -> None:
    settings = api_settings.model_copy(update={"ui_secure_cookies": False})
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        cookies = {}
        for role in Role:
            user = store.people.create_user(f"u{next(_names)}", role)
            cookies[role] = store.people.create_session(user.id, method="password", ip=None)[1]
        api = _token(store, Scope.STATS, None)
    span = {"since": "2026-01-01", "until": "2026-06-30"}
    with _server(settings, reader) as base:
        for role, secret in cookies.items():
            with httpx.Client(base_url=base, cookies={COOKIE: secret}) as http:
                answer = http.get("/ui/stats", params=span)
                assert answer.status_code == (200 if role in UI_ALLOWED else 403), role
        with httpx.Client(base_url=base, cookies={COOKIE: cookies[Role.AUDITOR]}) as http:
            html = http.get("/ui/stats", params=span).text
            exported = http.get("/ui/stats.csv", params={**span, "by": "bank,band"})
        numbers = httpx.get(
            f"{base}/v1/stats", params={**span, "by": "month"}, headers=bearer(api)
        ).json()
    assert "Content-Security-Policy" in answer.headers
    assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
    assert "style=" not in html
    assert "<script" not in html.split("</head>")[1]
    charts = dict(re.findall(r'<svg class="chart" data-chart="([^"]+)"(.*?)</svg>', html, re.S))
    assert set(charts) == {
        "files checked",
        "matches",
        "not-checked share",
        "matches per list source",
        "accuracy per list and band",
    }
    drawn = [float(v) for v in re.findall(r'data-value="([^"]+)"', charts["matches"])]
    assert drawn == [row["counts"]["matches"] for row in numbers["rows"]]
    checked = [float(v) for v in re.findall(r'data-value="([^"]+)"', charts["files checked"])]
    assert checked == [row["counts"]["checked"] for row in numbers["rows"]]
    lists = aggregate(reader, date(2026, 1, 1), date(2026, 6, 30), by=["bank", "band"])
    dots = re.findall(
        r'data-label="([^"]+)" data-value="([^"]+)"', charts["accuracy per list and band"]
    )
    assert [(label, round(float(v), 4)) for label, v in dots] == [
        (f"{r.key[0]} {r.key[1]}".strip(), round(r.shares["accuracy"].value or 0, 4))
        for r in lists.rows
    ]
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0].startswith("bank,band,matches")
