"""The case API over real loopback HTTP, on SQLite and PostgreSQL: reading cases, the
route x role matrix, the two-person rule, the lead's final confirmation, false positives
into the allow bank, the webhook a confirmation queues, assignment, paging, and that no
answer ever holds the content's bytes or a bank's other entries. Cases come from a real
scan of benign generated images against a bank made from them, evidence kept."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import EventType
from hashguard.domain.banks import BankEntry
from hashguard.domain.people import Role
from hashguard.domain.scans import ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.evidence import Vault, open_vault
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.keys import master_key_for
from hashguard.matching.matcher import Matcher
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import OnceVault, Pipeline
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.web.auth import Authenticator
from hashguard.web.problems import ProblemError
from tests.api_support import assert_problem, bearer
from tests.cli import hashguard
from tests.server import running_server

OPTIONS = ScanOptions(max_pixels=10**7)
SYSTEM = "system:test"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"hashguard-test-secret-32-bytes!!").decode()
IMAGES = ("one", "two", "three", "four", "five")
#: an entry of the bank that no scanned file matches: no answer may ever show it
UNMATCHED_MD5 = hashlib.md5(b"never scanned").hexdigest()
PEOPLE = {
    "vera": Role.VIEWER,
    "alice": Role.REVIEWER,
    "bob": Role.REVIEWER,
    "carol": Role.LEAD,
    "dora": Role.LEAD,
    "adam": Role.ADMIN,
    "audrey": Role.AUDITOR,
    "dan": Role.REVIEWER,  # disabled
}
BOTH = (Scope.CASES_READ, Scope.CASES_REVIEW)


@dataclass(frozen=True)
class World:
    settings: Settings
    cases: dict[str, int]
    images: dict[str, bytes]
    #: token secrets: one per person (both case scopes), "unowned" (both scopes, no
    #: person), "noscope" (carol's, only scan)
    tokens: dict[str, str]
    token_ids: dict[str, int]

    def store(self) -> contextlib.closing[Store]:
        return contextlib.closing(open_store(self.settings.resolved_database_url))

    def client(self, base: str, who: str) -> httpx.Client:
        return httpx.Client(base_url=base, headers=bearer(self.tokens[who]), timeout=30)


def _scan(store: Store, folder: Path, vault: Callable[[], Vault]) -> None:
    prepared = prepare_run(store.scans, [str(folder)], OPTIONS)
    matcher = Matcher.build(store.banks)
    pipeline = Pipeline(
        store=store, actor=SYSTEM, policies=lambda: policies_of(matcher.banks), vault=vault
    )
    with HashingPool(
        workers=1, options=HashOptions.for_scan(OPTIONS), timeout=60, memory_mb=2048
    ) as pool:
        Scanner(store=store.scans, matcher=matcher, pool=pool, pipeline=pipeline).run(prepared.run)


@pytest.fixture
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    with contextlib.closing(open_store(db_url, migrate=True)):
        pass
    settings = Settings(
        home=tmp_path / "home",
        database_url=db_url,
        workers=1,
        index_refresh_seconds=0.2,
        # nothing listens there: the case.confirmed webhook stays in the outbox
        webhooks=[{"name": "ops", "url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET}],  # type: ignore[list-item]
    )
    images = {
        name: encode(generate(Kind.PHOTO, seed, 160, 120)) for seed, name in enumerate(IMAGES, 71)
    }
    folder = tmp_path / "scanned"
    folder.mkdir()
    for name, data in images.items():
        (folder / f"{name}.jpg").write_bytes(data)
    tokens: dict[str, str] = {}
    token_ids: dict[str, int] = {}
    with contextlib.closing(open_store(db_url)) as store:
        store.banks.create("known", source="test hotline")
        entries = [
            BankEntry(
                algorithm=Algorithm.MD5,
                value=hashlib.md5(data).hexdigest(),
                entry_id=f"k-{name}",
                category="A1",
            )
            for name, data in images.items()
        ]
        entries.append(BankEntry(algorithm=Algorithm.MD5, value=UNMATCHED_MD5, entry_id="k-x"))
        store.banks.add_entries("known", entries)
        key = master_key_for(settings)[0]
        _scan(store, folder, OnceVault(lambda: open_vault(settings, store, key)))
        cases = {Path(c.sources[0].path or "").stem: c.id for c in store.cases.list()}
        for name, role in PEOPLE.items():
            user = store.people.create_user(name, role)
            token, secret = store.tokens.create(name, BOTH)
            store.people.set_token_owner(token.id, user.id)
            tokens[name], token_ids[name] = secret, token.id
            if name == "dan":
                store.people.update_user(user.id, disabled=True)
        token, tokens["unowned"] = store.tokens.create("unowned", BOTH)
        token_ids["unowned"] = token.id
        token, tokens["noscope"] = store.tokens.create("noscope", [Scope.SCAN])
        store.people.set_token_owner(token.id, store.people.find_user("carol").id)  # type: ignore[union-attr]
        token_ids["noscope"] = token.id
    assert set(cases) == set(IMAGES)
    return World(settings, cases, images, tokens, token_ids)


@pytest.fixture
def base(world: World) -> Iterator[str]:
    with running_server(world.settings) as url:
        yield url


def _no_content(world: World, response: httpx.Response) -> None:
    """No answer holds the content's bytes (raw, hex, base64) or the bank's other entry."""
    text = response.text
    for data in world.images.values():
        chunk = data[200:248]
        for form in (chunk.hex(), chunk.hex().upper(), base64.b64encode(chunk).decode()):
            assert form not in text
        assert chunk.decode("latin-1") not in text
    assert UNMATCHED_MD5 not in text.lower()


# -- the route x role matrix -------------------------------------------------------------

#: a disabled person's token: the token gate refuses it on every route
DISABLED = 401
CREDENTIALS = ("noscope", "unowned", "vera", "adam", "audrey", "dan", "alice", "carol")
READ = {"noscope": 403, "unowned": 200, "vera": 200, "adam": 200, "audrey": 403, "dan": DISABLED}
READ |= {"alice": 200, "carol": 200}
#: alice's is the first confirmation, carol's (a lead) the final one
DECIDE = {"noscope": 403, "unowned": 403, "vera": 403, "adam": 403, "audrey": 403, "dan": DISABLED}
DECIDE |= {"alice": 200, "carol": 200}
#: taking the case oneself: case.decide (an admin gives cases to others, takes none)
TAKE = dict(DECIDE)


def test_route_by_role_matrix(world: World, base: str) -> None:
    one, two = world.cases["one"], world.cases["two"]
    failures = []
    requests: list[tuple[str, str, dict[str, Any], dict[str, int]]] = [
        ("GET", "/v1/cases", {}, READ),
        ("GET", f"/v1/cases/{one}", {}, READ),
        ("POST", f"/v1/cases/{one}/decisions", {"verdict": "confirm", "reason": "seen"}, DECIDE),
        ("POST", f"/v1/cases/{two}/assignee", {}, TAKE),
    ]
    for method, path, body, expected in requests:
        for who in CREDENTIALS:
            payload = {"assignee": who} if path.endswith("/assignee") else body
            with world.client(base, who) as http:
                answer = http.request(method, path, json=payload if method == "POST" else None)
            if answer.status_code != expected[who]:
                failures.append(f"{method} {path} as {who}: {answer.status_code} {answer.text}")
            elif answer.status_code >= 400:
                detail = assert_problem(answer, answer.status_code)["detail"]
                if who == "noscope" and "lacks the 'cases:" not in detail:
                    failures.append(f"{method} {path} as {who}: {detail}")
            else:
                _no_content(world, answer)
    assert not failures, "\n".join(failures)
    with world.store() as store:
        case = store.cases.get(one)
        assert case.state == "confirmed"
        assert case.confirmers == ("alice", "carol")
        assert store.cases.get(two).assignee == "carol"
        actors = [e.actor for e in store.cases.history(one)]
    assert f"token:{world.token_ids['alice']}/as:alice" in actors
    assert f"token:{world.token_ids['carol']}/as:carol" in actors


def test_refusals_say_why(world: World, base: str) -> None:
    one = world.cases["one"]
    decision = {"verdict": "escalate", "reason": "look"}
    with world.client(base, "unowned") as http:
        detail = assert_problem(http.post(f"/v1/cases/{one}/decisions", json=decision), 403)
        assert "tokens create --user" in detail["detail"]
    with world.client(base, "vera") as http:
        detail = assert_problem(http.post(f"/v1/cases/{one}/decisions", json=decision), 403)
        assert "'case.decide'" in detail["detail"]
    with world.client(base, "dan") as http:
        assert "disabled" in assert_problem(http.get("/v1/cases"), DISABLED)["detail"]
    with world.client(base, "audrey") as http:
        assert "'queue.view'" in assert_problem(http.get(f"/v1/cases/{one}"), 403)["detail"]


# -- reading -----------------------------------------------------------------------------


def test_a_case_and_its_history(world: World, base: str) -> None:
    one = world.cases["one"]
    with world.client(base, "unowned") as http:
        answer = http.get(f"/v1/cases/{one}")
        assert answer.status_code == 200
        case = answer.json()
        assert_problem(http.get("/v1/cases/999999"), 404)
        assert_problem(http.get("/v1/cases/0"), 422)
    _no_content(world, answer)
    assert case["id"] == one
    assert case["state"] == "open"
    assert case["reportable"] is False
    assert case["version"] == 1
    assert case["confirmers"] == []
    assert case["assignee"] is None
    assert case["banks"] == ["known"]
    assert [
        (m["bank"], m["algorithm"], m["distance"], m["entry_id"], m["category"])
        for m in case["matches"]
    ] == [("known", "md5", 0, "k-one", "A1")]
    assert case["decision"]["action"] == "act"
    assert case["sources"][0]["kind"] == "scan"
    assert case["sources"][0]["path"].endswith("one.jpg")
    assert case["evidence_id"], "the evidence was kept: the case names it"
    assert case["signals"]["md5"] == hashlib.md5(world.images["one"]).hexdigest()
    assert case["content_key"] == hashlib.sha256(world.images["one"]).hexdigest()
    assert [(e["kind"], e["actor"], e["to_state"]) for e in case["history"]] == [
        ("opened", SYSTEM, "open")
    ]


def test_listing_filters_and_pages(world: World, base: str) -> None:
    ids = sorted(world.cases.values())
    with world.client(base, "carol") as http:
        first = http.get("/v1/cases")
        assert first.status_code == 200
        _no_content(world, first)
        assert [c["id"] for c in first.json()["cases"]] == ids
        assert first.json()["next"] is None
        seen: list[int] = []
        after = None
        while True:
            params = {"limit": 2} | ({"after": after} if after is not None else {})
            page = http.get("/v1/cases", params=params).json()
            seen += [c["id"] for c in page["cases"]]
            after = page["next"]
            if after is None:
                break
        assert seen == ids
        newest = http.get("/v1/cases", params={"order": "newest", "limit": 3}).json()
        assert [c["id"] for c in newest["cases"]] == ids[::-1][:3]
        rest = http.get("/v1/cases", params={"order": "newest", "after": newest["next"]}).json()
        assert [c["id"] for c in rest["cases"]] == ids[::-1][3:]
        ranked = http.get("/v1/cases", params={"order": "priority"}).json()
        assert sorted(c["id"] for c in ranked["cases"]) == ids
        assert ranked["next"] is None
        assert all(c["priority"] for c in ranked["cases"]), "each with its reason"
        first = http.get("/v1/cases", params={"order": "priority", "limit": 2}).json()
        rest = http.get("/v1/cases", params={"order": "priority", "after": first["next"]}).json()
        ranking = [c["id"] for c in ranked["cases"]]
        assert [c["id"] for c in first["cases"] + rest["cases"]] == ranking
        assert rest["next"] is None

        one, two, three = (world.cases[n] for n in ("one", "two", "three"))
        decision = {"verdict": "escalate", "reason": "legal"}
        assert http.post(f"/v1/cases/{one}/decisions", json=decision).status_code == 200
        took = http.post(f"/v1/cases/{two}/assignee", json={"assignee": "alice"})
        assert took.status_code == 200, took.text
        fp = {"verdict": "false_positive", "reason": "a cat"}
        assert http.post(f"/v1/cases/{three}/decisions", json=fp).status_code == 200

        def listed(**params: Any) -> list[int]:
            answer = http.get("/v1/cases", params=params)
            assert answer.status_code == 200, answer.text
            return [c["id"] for c in answer.json()["cases"]]

        assert listed(state="escalated") == [one]
        assert listed(state=["escalated", "false_positive"]) == [one, three]
        assert listed(state=["escalated", "false_positive"], limit=1) == [one]
        assert listed(state=["open", "false_positive"], order="newest") == [
            i for i in ids[::-1] if i != one
        ]
        assert listed(assignee="alice") == [two]
        assert listed(assignee="alice", state="escalated") == []
        assert_problem(http.get("/v1/cases", params={"state": "nonsense"}), 422)
        assert_problem(http.get("/v1/cases", params={"limit": 0}), 422)
        assert_problem(http.get("/v1/cases", params={"limit": 501}), 422)


# -- deciding ----------------------------------------------------------------------------


def test_two_people_confirm_and_the_second_is_a_lead(world: World, base: str) -> None:
    one = world.cases["one"]
    path = f"/v1/cases/{one}/decisions"
    confirm = {"verdict": "confirm", "reason": "matches the hotline's entry"}
    with world.store() as store:
        assert store.actions.list() == []
    with world.client(base, "alice") as alice, world.client(base, "bob") as bob:
        first = alice.post(path, json=confirm)
        assert first.status_code == 200, first.text
        assert first.json()["state"] == "confirmed_once"
        assert first.json()["reportable"] is False
        assert first.json()["confirmers"] == ["alice"]
        version = first.json()["version"]
        # the same person again: refused by the two-person rule
        again = alice.post(path, json=confirm)
        assert "different person" in assert_problem(again, 409)["detail"]
        # another reviewer: this confirmation would make it reportable, a lead's step
        refused = bob.post(path, json=confirm)
        assert "'case.confirm_final'" in assert_problem(refused, 403)["detail"]
    with world.client(base, "carol") as carol:
        stale = carol.post(path, json=confirm | {"version": version - 1})
        assert "changed meanwhile" in assert_problem(stale, 409)["detail"]
        done = carol.post(path, json=confirm | {"version": version})
        assert done.status_code == 200, done.text
        case = done.json()
        _no_content(world, done)
        assert case["state"] == "confirmed"
        assert case["reportable"] is True
        assert case["confirmers"] == ["alice", "carol"]
        assert [e["actor"] for e in case["history"][-2:]] == [
            f"token:{world.token_ids['alice']}/as:alice",
            f"token:{world.token_ids['carol']}/as:carol",
        ]
        # a final case moves no more
        late = carol.post(path, json={"verdict": "escalate", "reason": "x"})
        assert "cannot become" in assert_problem(late, 409)["detail"]
    with world.client(base, "bob") as bob:
        # not a lead's step any more: the case is final, for everyone
        assert "cannot become" in assert_problem(bob.post(path, json=confirm), 409)["detail"]
    with world.client(base, "carol") as carol:
        assert_problem(carol.post("/v1/cases/999999/decisions", json=confirm), 404)
    with world.store() as store:
        queued = [a for a in store.actions.list() if a.event is EventType.CASE_CONFIRMED]
        audited = [e for e in store.audit.events() if e.action == "case.confirmed"]
    assert [(a.target, a.subject) for a in queued] == [("ops", f"case:{one}")]
    assert {e.actor for e in audited} == {
        f"token:{world.token_ids['alice']}/as:alice",
        f"token:{world.token_ids['carol']}/as:carol",
    }


def test_invalid_decisions(world: World, base: str) -> None:
    path = f"/v1/cases/{world.cases['one']}/decisions"
    with world.client(base, "alice") as http:
        for body in (
            {"verdict": "confirm"},
            {"verdict": "confirm", "reason": ""},
            {"verdict": "confirm", "reason": " \t\n\u3000"},
            {"verdict": "maybe", "reason": "x"},
            {"verdict": "confirm", "reason": "x", "version": True},
            {"verdict": "confirm", "reason": "x", "version": 0},
            {"verdict": "confirm", "reason": "x", "allow_bank": "no spaces"},
            {"verdict": "confirm", "reason": "a\0b"},
        ):
            assert_problem(http.post(path, json=body), 422)
        assert_problem(
            http.post(path, content=b"{", headers={"Content-Type": "application/json"}), 422
        )
    with world.store() as store:
        assert store.cases.get(world.cases["one"]).version == 1


def test_a_false_positive_goes_to_the_allow_bank(world: World, base: str) -> None:
    one, two = world.cases["one"], world.cases["two"]
    fp = {"verdict": "false_positive", "reason": "a holiday photo"}
    with world.client(base, "alice") as alice:
        other = alice.post(f"/v1/cases/{one}/decisions", json=fp | {"allow_bank": "mine"})
        assert "another allow bank" in assert_problem(other, 403)["detail"]
        # naming the server's own allow bank is no privilege
        same = fp | {"allow_bank": world.settings.review_allow_bank}
        done = alice.post(f"/v1/cases/{one}/decisions", json=same)
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "false_positive"
    with world.client(base, "carol") as carol:
        lead = carol.post(f"/v1/cases/{two}/decisions", json=fp | {"allow_bank": "lead-allow"})
        assert lead.status_code == 200, lead.text
        # an allow bank must be one: a known bank is refused
        known = carol.post(
            f"/v1/cases/{world.cases['three']}/decisions", json=fp | {"allow_bank": "known"}
        )
        assert "not an allow bank" in assert_problem(known, 409)["detail"]
    with world.store() as store:
        for bank in (world.settings.review_allow_bank, "lead-allow"):
            stats = store.banks.stats(bank)
            assert str(stats.bank.kind) == "allow"
            assert stats.active[Algorithm.MD5] == stats.active[Algorithm.SHA256] == 1
        events = [e for e in store.actions.list() if e.event is EventType.CASE_FALSE_POSITIVE]
    assert len(events) == 2


def test_assignment(world: World, base: str) -> None:
    two = world.cases["two"]
    path = f"/v1/cases/{two}/assignee"
    with (
        world.client(base, "alice") as alice,
        world.client(base, "carol") as carol,
        world.client(base, "adam") as adam,
    ):
        given = carol.post(path, json={"assignee": "alice", "reason": "yours"})
        assert given.status_code == 200, given.text
        assert given.json()["assignee"] == "alice"
        assert given.json()["history"][-1]["reason"] == "yours"
        back = alice.post(path, json={"assignee": None})
        assert back.status_code == 200, back.text
        assert back.json()["assignee"] is None
        assert (
            "'case.assign'"
            in assert_problem(alice.post(path, json={"assignee": "bob"}), 403)["detail"]
        )
        took = alice.post(path, json={"assignee": "alice"})
        assert took.status_code == 200
        assert_problem(carol.post(path, json={"assignee": "bob", "version": 1}), 409)  # stale
        assert_problem(carol.post(path, json={"assignee": "nobody"}), 409)
        assert_problem(carol.post(path, json={"assignee": "vera"}), 409)  # cannot decide
        assert_problem(carol.post(path, json={"assignee": "dan"}), 409)  # disabled
        assert_problem(carol.post(path, json={"assignee": "not a name"}), 422)
        assert_problem(carol.post(path, json={}), 422)
        assert adam.post(path, json={"assignee": "bob"}).json()["assignee"] == "bob"
        assert_problem(alice.post(path, json={"assignee": None}), 403)
        assert carol.post(path, json={"assignee": None}).json()["assignee"] is None
        assert_problem(carol.post("/v1/cases/999999/assignee", json={"assignee": None}), 404)
        fp = {"verdict": "false_positive", "reason": "fine"}
        assert carol.post(f"/v1/cases/{two}/decisions", json=fp).status_code == 200
        final = carol.post(path, json={"assignee": "carol"})
        assert "cannot become" in assert_problem(final, 409)["detail"]


# -- tokens for a person -------------------------------------------------------------------


def test_tokens_create_for_a_person(home: Path) -> None:
    settings = Settings()
    with contextlib.closing(open_store(settings.resolved_database_url, migrate=True)) as store:
        store.people.create_user("alice", Role.REVIEWER)
        gone = store.people.create_user("gone", Role.REVIEWER)
        store.people.update_user(gone.id, disabled=True)
    made = hashguard(
        "tokens",
        "create",
        "alice-laptop",
        "--scope",
        "cases:read",
        "--scope",
        "cases:review",
        "--user",
        "alice",
    )
    assert made.stdout.strip().startswith("hgt_")
    assert "acting for alice (reviewer)" in " ".join(made.stderr.split())
    hashguard("tokens", "create", "machine", "--scope", "cases:read")
    assert (
        "no person named"
        in hashguard("tokens", "create", "x", "--scope", "scan", "--user", "nobody", check=2).stderr
    )
    assert (
        "disabled"
        in hashguard("tokens", "create", "x", "--scope", "scan", "--user", "gone", check=2).stderr
    )
    listed = json.loads(hashguard("tokens", "list", "--json").stdout)
    assert [(t["name"], t["user"], t["scopes"]) for t in listed] == [
        ("alice-laptop", "alice", ["cases:read", "cases:review"]),
        ("machine", None, ["cases:read"]),
    ]
    assert "alice" in hashguard("tokens", "list").stdout
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        created = [e for e in store.audit.events() if e.action == "token.created"]
        owner = store.people.token_owner(listed[0]["id"])
    assert [e.details["user"] for e in created] == ["alice", None]
    assert owner is not None
    assert owner.name == "alice"


def test_a_disabled_persons_tokens_stop_working(store: Store) -> None:
    """What the server does once services.py builds its Authenticator with
    ``owner_disabled`` (see the report): the token of a disabled person is refused."""

    def owner_disabled(token_id: int) -> bool:
        owner = store.people.token_owner(token_id)
        return owner is not None and owner.disabled

    person = store.people.create_user("erin", Role.REVIEWER)
    token, secret = store.tokens.create("erin", BOTH)
    store.people.set_token_owner(token.id, person.id)
    _, machine = store.tokens.create("machine", [Scope.SCAN])
    auth = Authenticator(store.tokens, owner_disabled=owner_disabled)
    assert auth.identify(f"Bearer {secret}").id == token.id
    store.people.update_user(person.id, disabled=True)
    fresh = Authenticator(store.tokens, owner_disabled=owner_disabled)
    with pytest.raises(ProblemError) as refused:
        fresh.identify(f"Bearer {secret}")
    assert refused.value.status == 401
    assert "disabled" in (refused.value.detail or "")
    assert fresh.identify_cached(f"Bearer {secret}") is None
    assert fresh.identify(f"Bearer {machine}").name == "machine"
