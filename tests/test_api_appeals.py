"""POST/GET /v1/cases/{id}/appeals and the case page's Appeal section over real loopback
HTTP: the platform sends an uploader's appeal with the ``appeals`` scope; 201 then 200
for the same appeal again, 404, 409 and 422 (too late, bad text) as typed problems; the
page offers uphold/reverse only to an eligible reviewer. The rules: test_appeals.py."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hashguard.domain.appeals import Outcome
from hashguard.domain.people import Role
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web.ui.session import COOKIE
from tests.api_support import assert_problem, bearer, make_token
from tests.server import running_server
from tests.test_appeals import World


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_platform_sends_an_appeal(api_settings: Settings, tmp_path: Path) -> None:
    with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
        world = World(store=store, tmp=tmp_path)
        world.statements_on()
        # an automated act 200 days ago (the pipeline's clock): its six months are over
        world.now[0] = datetime.now(UTC) - timedelta(days=200)
        old = world.case(21)
        # one of today (the server's clock is the real one)
        world.now[0] = datetime.now(UTC)
        case = world.confirm(world.case(22, review=True))
        (statement,) = store.statements.for_case(case.id)
        (old_statement,) = store.statements.for_case(old.id)
    platform = bearer(make_token(api_settings, Scope.APPEALS, name="platform"))
    reader = bearer(make_token(api_settings, Scope.CASES_READ, name="reader"))
    body = {"statement": statement.puid, "reference": "PLT-42", "explanation": "my own photo"}
    path = f"/v1/cases/{case.id}/appeals"
    with running_server(api_settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert_problem(http.post(path, json=body, headers=reader), 403)
        first = http.post(path, json=body, headers=platform)
        assert first.status_code == 201, first.text
        appeal = first.json()
        assert (appeal["state"], appeal["statement_puid"], appeal["reference"]) == (
            "open", statement.puid, "PLT-42",
        )  # fmt: skip
        again = http.post(path, json=body, headers=platform)
        assert again.status_code == 200
        assert again.json() == appeal
        conflicts = (
            {**body, "explanation": "something else"},  # the reference names another appeal
            {**body, "reference": "PLT-43"},  # the statement was appealed already
        )
        for conflict in conflicts:
            assert_problem(http.post(path, json=conflict, headers=platform), 409)
        missing = (
            (f"/v1/cases/{case.id + 100}/appeals", body),
            (path, {**body, "statement": old_statement.puid, "reference": "PLT-44"}),
        )
        for where, sent in missing:
            assert_problem(http.post(where, json=sent, headers=platform), 404)
        late = http.post(
            f"/v1/cases/{old.id}/appeals",
            json={**body, "statement": old_statement.puid, "reference": "PLT-45"},
            headers=platform,
        )
        assert assert_problem(late, 422)["title"] == "Appeal out of time"
        for bad in (
            {**body, "explanation": "a\x00b"},
            {**body, "explanation": " \n"},
            {**body, "explanation": "x" * 5001},
            {**body, "reference": "two words"},
            {**body, "statement": "hg/../x"},
            {**body, "extra": 1},
        ):
            assert_problem(http.post(path, json=bad, headers=platform), 422)
        listed = http.get(path, headers=platform).json()["appeals"]
        assert [a["id"] for a in listed] == [appeal["id"]]

        with contextlib.closing(open_store(api_settings.resolved_database_url)) as store:
            world = World(store=store, tmp=tmp_path)
            world.decide(appeal["id"], Outcome.UPHOLD, actor="user:carol")
        (shown,) = http.get(path, headers=platform).json()["appeals"]
        assert (shown["state"], shown["decided_by"]) == ("upheld", "user:carol")
        assert shown["decision_statement"] is not None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_case_page_shows_the_appeal_and_buttons_only_to_an_eligible_reviewer(
    api_settings: Settings, tmp_path: Path
) -> None:
    settings = api_settings.model_copy(update={"ui_secure_cookies": False})
    sessions: dict[str, tuple[str, str]] = {}
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        world = World(store=store, tmp=tmp_path)
        world.statements_on()
        case = world.confirm(world.case(23, review=True), actor="user:lead")
        appeal = world.appeal(case, explanation="It is <b>my</b> photo").appeal
        for name, role in (("lead", Role.LEAD), ("carol", Role.REVIEWER), ("vera", Role.VIEWER)):
            user = store.people.create_user(name, role)
            session, secret = store.people.create_session(user.id, method="password", ip=None)
            sessions[name] = (secret, session.csrf_token)

    def client(base: str, name: str) -> httpx.Client:
        return httpx.Client(
            base_url=base, cookies={COOKIE: sessions[name][0]}, follow_redirects=False, timeout=30
        )

    page = f"/ui/cases/{case.id}"
    decide = f"/ui/appeals/{appeal.id}/decide"
    with running_server(settings) as base:
        for name, buttons in (("lead", False), ("vera", False), ("carol", True)):
            with client(base, name) as http:
                html = http.get(page).text
            assert 'id="appeals"' in html, name
            assert "It is &lt;b&gt;my&lt;/b&gt; photo" in html  # escaped
            assert (f'id="appeal-decide-{appeal.id}"' in html) is buttons, name
        form = {"outcome": "uphold", "reason": "looked again"}
        with client(base, "lead") as http:  # sent anyway: the service refuses it
            refused = http.post(decide, data={**form, "csrf_token": sessions["lead"][1]})
            assert refused.status_code == 409, refused.text[:300]
        with client(base, "carol") as http:
            assert http.post(decide, data=form).status_code == 403  # no CSRF token
            done = http.post(decide, data={**form, "csrf_token": sessions["carol"][1]})
            assert done.status_code == 303, done.text[:300]
            assert done.headers["location"].endswith(f"{page}?appeal=upheld#appeals")
            html = http.get(page + "?appeal=upheld").text
        assert 'id="appeal-flash"' in html
        assert "Upheld" in html
        assert f'id="appeal-decide-{appeal.id}"' not in html
