"""``hashguard doctor``: passes on a fresh demo home; each check finds what it is for, on
SQLite and PostgreSQL; it changes nothing; slots take functions written elsewhere."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hashguard.doctor import (
    CHECKS,
    Check,
    Doctor,
    Level,
    Result,
    check_notices,
    check_statements,
    graph_api_check,
    orphans_check,
    permissions_check,
    run_checks,
)
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import CaseSource, SourceKind
from hashguard.domain.flood import FloodLimit
from hashguard.domain.notices import NoticeCategory, NoticeChannel, NoticeState
from hashguard.domain.policy import Action, BankPolicy, Decision
from hashguard.domain.signals import Algorithm
from hashguard.domain.statements import StatementKind
from hashguard.keys import MasterKey
from hashguard.matching.matcher import Matcher
from hashguard.notices.intake import NoticeRequest, receive
from hashguard.settings import Settings
from hashguard.statements import service
from hashguard.statements.reasons import build, uploader_text
from hashguard.store import Store, open_store
from hashguard.store.database import make_engine, upgrade
from tests.cli import hashguard

#: the checks but the worker pool (started once, in the demo test and its own test)
NO_POOL = tuple(c for c in CHECKS if c.name != "worker pool")
TODAY = date(2026, 3, 1)


def results(settings: Settings, checks: tuple[Check, ...] = NO_POOL) -> dict[str, Result]:
    return {r.name: r for r in run_checks(settings, checks, today=TODAY)}


def levels(found: dict[str, Result]) -> dict[str, Level]:
    return {name: r.level for name, r in found.items()}


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.mark.usefixtures("home")
def test_doctor_passes_on_a_fresh_demo_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashguard("demo", "--dir", str(tmp_path / "demo"))
    monkeypatch.setenv("HASHGUARD_HOME", str(tmp_path / "demo" / "home"))
    before = sorted(p.name for p in (tmp_path / "demo" / "home").iterdir())
    done = hashguard("doctor")
    lines = done.stdout.splitlines()
    assert [line.split(":")[0].split()[-1] for line in lines] == [
        "permissions",
        "key",
        "store",
        "migrations",
        "index",
        "pool",
        "settings",
        "matchers",
        "orphans",
        "api",
        "jobs",
        "reports",
        "statements",
        "notices",
        "quarantine",
    ]
    assert not [line for line in lines if line.startswith(("fail", "skip"))], done.stdout
    # the demo keeps its master key in its home: worth a warning, not a problem
    assert lines[1].startswith("warn master key: only in")
    assert "0 problem(s)" in done.stderr
    as_json = [
        json.loads(line) for line in hashguard("doctor", "--json").stdout.split("\n") if line
    ]
    assert {r["check"]: r["level"] for r in as_json}["worker pool"] == "ok"
    hashguard("doctor", "--strict", check=1)  # the warning counts with --strict
    assert sorted(p.name for p in (tmp_path / "demo" / "home").iterdir()) == before


def test_an_empty_home_is_a_problem_and_nothing_is_created(tmp_path: Path) -> None:
    home = tmp_path / "home"
    found = results(Settings(home=home))
    assert levels(found) == {
        "permissions": Level.OK,
        "master key": Level.OK,
        "store": Level.FAIL,
        "migrations": Level.SKIP,
        "index": Level.SKIP,
        "safety settings": Level.OK,
        "remote matchers": Level.OK,
        "orphans": Level.SKIP,
        "graph api": Level.SKIP,
        "background jobs": Level.SKIP,
        "reports": Level.SKIP,
        "statements": Level.SKIP,
        "notices": Level.SKIP,
        "object quarantine": Level.OK,
    }
    assert "no database at" in found["store"].message
    assert "created in" in found["master key"].message
    assert not home.exists()


def test_store_migrations_index_and_settings(empty_db_url: str, tmp_path: Path) -> None:
    db_url = empty_db_url
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    engine = make_engine(db_url)
    upgrade(engine, "0011")  # one version behind
    engine.dispose()
    found = results(settings)
    assert (found["store"].level, found["migrations"].level) == (Level.OK, Level.FAIL)
    assert "hashguard db upgrade" in found["migrations"].message
    assert found["index"].level is Level.SKIP
    store = open_store(db_url, migrate=True)
    try:
        found = results(settings)
        assert levels(found)["migrations"] is Level.OK
        assert found["index"].message.startswith("no snapshot yet")
        store.banks.create("known")
        store.banks.create("trial", policy=BankPolicy(shadow=True))
        Matcher.build(store.banks).save(settings.index_path)
        assert results(settings)["index"].level is Level.OK
        store.banks.create("later")
        store.flood.set_limit("later", FloodLimit(max_items=None), actor="cli:test")
        store.banks.add_entries("known", [BankEntry(algorithm=Algorithm.MD5, value="ab" * 16)])
        found = results(settings)
        assert found["index"].level is Level.WARN
        assert "1 bank change(s) behind" in found["index"].message
        weak = found["safety settings"]
        assert weak.level is Level.WARN
        assert "bank trial is in shadow mode" in weak.message
        assert "bank later has the flood guard off" in weak.message
        # a snapshot of another store, and a damaged one, are problems
        other = tmp_path / "other.db"
        with closing(open_store(f"sqlite:///{other}")) as foreign:
            Matcher.build(foreign.banks).save(settings.index_path)
        assert "another store" in results(settings)["index"].message
        data = bytearray(settings.index_path.read_bytes())
        data[20] ^= 1
        settings.index_path.write_bytes(bytes(data))
        damaged = results(settings)["index"]
        assert damaged.level is Level.FAIL
        assert "SHA-256" in damaged.message
    finally:
        store.close()


def test_an_unreachable_store_fails_and_the_rest_skip(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/none?connect_timeout=2",
    )
    found = results(settings)
    assert found["store"].level is Level.FAIL
    assert found["migrations"].level is Level.SKIP
    assert found["index"].level is Level.SKIP


def test_master_key_where_it_is(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert results(Settings(home=home, master_key=key()))["master key"].level is Level.OK
    kept = tmp_path / "elsewhere.key"
    kept.write_text(key())
    assert results(Settings(home=home, master_key_file=kept))["master key"].level is Level.OK
    missing = results(Settings(home=home, master_key_file=tmp_path / "gone.key"))
    assert missing["master key"].level is Level.FAIL
    bad = results(Settings(home=home, master_key="not base64!"))
    assert bad["master key"].level is Level.FAIL
    home.mkdir()
    (home / "master.key").write_text(key())
    only_home = results(Settings(home=home))["master key"]
    assert only_home.level is Level.WARN
    assert "HASHGUARD_MASTER_KEY_FILE" in only_home.message


def test_settings_that_weaken_safety(tmp_path: Path) -> None:
    weak = Settings(
        home=tmp_path / "home",
        remote={"photodna": {}, "arachnid": {"test_mode": False}},
        review_second_confirmation=False,
        review_break_after_reveals=0,
        ui_secure_cookies=False,
        metrics_public=True,
    )
    found = results(weak)["safety settings"]
    assert found.level is Level.WARN
    for said in (
        "remote matcher photodna is in test mode",
        "single confirmation",
        "never reminded to take a break",
        "plain http",
        "/metrics answers without a token",
    ):
        assert said in found.message
    assert "arachnid" not in found.message


def test_the_worker_pool_check_hashes_a_generated_image(tmp_path: Path) -> None:
    (found,) = run_checks(
        Settings(home=tmp_path / "home"), [c for c in CHECKS if c.name == "worker pool"]
    )
    assert found.level is Level.OK
    assert "hashed a generated image" in found.message
    # a worker that cannot produce a PDQ hash is a problem
    crippled = Settings(home=tmp_path / "home", max_pixels=1)
    (failed,) = run_checks(crippled, [c for c in CHECKS if c.name == "worker pool"])
    assert failed.level is Level.FAIL
    assert "could not hash a generated image" in failed.message


def test_slots_and_a_check_that_raises(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")

    def explode(_: object) -> tuple[bool, str]:
        raise RuntimeError("boom")

    found = list(
        run_checks(
            settings,
            [
                permissions_check(lambda home: [f"{home} is 0755"]),
                permissions_check(lambda home: []),
                orphans_check(lambda doctor: 3),
                graph_api_check(lambda version, today: None),
                Check(name="broken", run=explode),
            ],
            today=TODAY,
        )
    )
    assert [(r.name, r.level) for r in found] == [
        ("permissions", Level.FAIL),
        ("permissions", Level.OK),
        ("orphans", Level.SKIP),  # no store in this home
        ("graph api", Level.SKIP),
        ("broken", Level.FAIL),
    ]
    assert "is 0755" in found[0].message
    assert "RuntimeError: boom" in found[-1].message


def test_graph_api_and_orphans_slots_with_a_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    with closing(open_store(settings.resolved_database_url)) as store:
        store.banks.create("tx")
        store.exchanges.create(
            "meta",
            adapter="threatexchange",
            bank="tx",
            settings={"api_version": "v1.0"},
            credential_names=(),
            credentials=None,
        )
    seen: list[tuple[str, date]] = []

    def warning(version: str, today: date) -> str | None:
        seen.append((version, today))
        return f"Graph API {version} ends soon"

    found = list(
        run_checks(settings, [graph_api_check(warning), orphans_check(lambda d: 0)], today=TODAY)
    )
    assert seen == [("v1.0", TODAY)]
    assert [(r.level, r.message) for r in found] == [
        (Level.WARN, "meta: Graph API v1.0 ends soon"),
        (Level.OK, "no evidence without a case"),
    ]


# -- DSA: statements of reasons and notices ---------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _statement(store: Store, n: int) -> str:
    """A confirmed case's statement of reasons, issued at T0 (statements on)."""
    with store.transaction() as writes:
        case, _ = writes.open_case(
            content_key=f"{n:064x}",
            source=CaseSource(kind=SourceKind.SCAN, ref="1"),
            signals=None,
            matches=(),
            remote=(),
            decision=Decision(action=Action.REVIEW, rule="test"),
            actor="system:test",
        )
        config = service.config_of(store.statements.settings(service.STATEMENTS)[0])
        sor = build(case, config, kind=StatementKind.CONFIRMED, at=T0, notifier=None)
        writes.add_statement(sor, uploader_text(sor), at=T0)
    return sor.puid


def test_statements_pending_or_refused_and_the_sink_off_being_fine(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", statements_run_minutes=1)
    key = MasterKey(secrets.token_bytes(32))

    def change(**kwargs: object) -> None:
        values: dict[str, object] = {"statements": {}, "sink_settings": {}, "token": None}
        service.change_settings(
            store,
            lambda: key,
            actor="cli:test",
            at=T0,
            **{**values, **kwargs},  # type: ignore[arg-type]
        )

    def at(minutes: float) -> tuple[Level | bool, str]:
        doctor = Doctor(settings, today=T0.date(), now=T0 + timedelta(minutes=minutes))
        try:
            return check_statements(doctor)
        finally:
            doctor.close()

    with closing(open_store(settings.resolved_database_url)) as store:
        level, said = at(0)
        assert level is True
        assert said.startswith("statements off, 0 issued; the Transparency Database sink is off")
        assert "fine for a hosting service" in said
        change(statements={"issue": True})
        _statement(store, 1)
        # a hosting service keeps the sink off: statements wait for nobody, that is fine
        level, said = at(600)
        assert level is True
        assert "statements on, 1 issued" in said
        assert "sink is off" in said
        change(tdb=True)
        level, said = at(0)
        assert level is False
        assert "has no token" in said
        change(token="tdb-token")
        assert at(1)[0] is True
        # not filed after twice the job's interval and a lease: is a worker running?
        level, said = at(3 + settings.jobs_lease_seconds / 60 + 1)
        assert level is Level.WARN
        assert "1 statement(s) not filed since 2026-03-01 12:00 UTC" in said
        assert "hashguard statements submit" in said
        # refused by the Database: the dead letter is a problem
        batch, rows = store.statements.claim(now=T0, lease_until=T0, limit=10)
        store.statements.refused(
            batch, {rows[0].puid: "invalid: decision_ground"}, actor="system:test", at=T0
        )
        _statement(store, 2)
        level, said = at(600)
        assert level is False
        assert "1 statement(s) refused by the Database" in said
        assert "1 statement(s) not filed" in said
        change(statements={"issue": False})
        assert "no statements are issued" in at(600)[1]


def _notice(store: Store, minutes: float = 0) -> int:
    return receive(
        store,
        NoticeRequest(
            urls=("https://files.example.test/u/x",),
            category=NoticeCategory.CHILD_SEXUAL_ABUSE,
            explanation="seen",
        ),
        actor="system:test",
        channel=NoticeChannel.FORM,
        at=T0 + timedelta(minutes=minutes),
        notifiers={},
    ).notice.id


def test_notices_waiting_without_a_callback_or_stuck(tmp_path: Path) -> None:
    home = tmp_path / "home"
    without = Settings(home=home, notices_run_minutes=1)
    configured = Settings(
        home=home,
        notices_run_minutes=1,
        notices_callback_url="http://127.0.0.1:9/resolve",
        notices_callback_secret="whsec_" + key(),  # type: ignore[arg-type]
    )

    def at(settings: Settings, minutes: float) -> tuple[Level | bool, str]:
        doctor = Doctor(settings, today=T0.date(), now=T0 + timedelta(minutes=minutes))
        try:
            return check_notices(doctor)
        finally:
            doctor.close()

    with closing(open_store(without.resolved_database_url)) as store:
        assert at(without, 0) == (
            True,
            "no notice waiting; no platform callback configured (notices would wait)",
        )
        assert at(configured, 0) == (True, "no notice waiting")
        first = _notice(store)
        level, said = at(without, 0)
        assert level is False
        assert "1 notice(s) waiting since 2026-03-01 12:00 UTC" in said
        assert "notices_callback_url" in said
        assert at(configured, 1) == (True, "1 notice(s) being resolved, none stuck")
        late = 3 + configured.jobs_lease_seconds / 60 + 1
        level, said = at(configured, late)
        assert level is Level.WARN
        assert "1 notice(s) unresolved since 2026-03-01 12:00 UTC" in said
        assert "hashguard notices resolve" in said
        store.notices.move(
            first,
            NoticeState.FAILED,
            actor="system:test",
            at=T0,
            error="item 0: the callback answered HTTP 500",
            next_attempt_at=T0 + timedelta(minutes=1),
        )
        level, said = at(configured, late)
        assert level is Level.WARN
        assert "1 failed (retried with backoff; last error: item 0: the callback" in said
        assert "worker" not in said
        # a resolved notice waits for nothing
        store.notices.move(first, NoticeState.NOT_FOUND, actor="system:test", at=T0)
        assert at(configured, late) == (True, "no notice waiting")


def test_each_remote_matcher_shows_its_mode(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'hashguard.db'}"
    with closing(open_store(url, migrate=True)):
        pass
    settings = Settings(
        home=home,
        database_url=url,
        remote={
            "photodna": {"base_url": "http://127.0.0.1:9", "allow_media": True},
            "arachnid_shield": {"base_url": "http://127.0.0.1:9", "test_mode": False},
        },
        remote_secrets={
            "photodna": {"subscription_key": "k"},
            "arachnid_shield": {"username": "u", "password": "p"},
        },  # type: ignore[arg-type]
    )
    found = results(settings)["remote matchers"]
    assert "photodna (test)" in found.message
    assert "arachnid_shield (live)" in found.message


#: the moment the remote services' records are read from (doctor's ``now``, the CLI's clock)
RECORDS_NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
REMOTE = {
    "photodna": {"base_url": "http://127.0.0.1:9", "allow_media": True},
    "thorn": {
        "adapter": "safer",
        "base_url": "http://127.0.0.1:9",
        "allow_media": True,
        "test_mode": False,
    },
}


def _recorded_answers(tmp_path: Path) -> str:
    """A store whose scan results hold remote answers recorded before RECORDS_NOW."""
    from hashguard.domain.remote import RemoteResult, RemoteStatus  # noqa: PLC0415
    from hashguard.domain.scans import FileResult, Outcome, ScanOptions  # noqa: PLC0415
    from hashguard.store.unit import transaction  # noqa: PLC0415

    url = f"sqlite:///{tmp_path / 'hashguard.db'}"
    now = RECORDS_NOW

    def answer(service: str, status: RemoteStatus) -> RemoteResult:
        return RemoteResult(service=service, status=status, method="media")

    def result(n: int, *answers: RemoteResult) -> FileResult:
        return FileResult(
            path=f"/x/{n}.jpg",
            outcome=Outcome.NO_MATCH,
            remote=answers,
            decision=Decision(action=Action.IGNORE, rule="ignore"),
        )

    with closing(open_store(url, migrate=True)) as store:
        run = store.scans.create_run(
            roots=["/x"], resume_key="k", options=ScanOptions(max_pixels=10**7), pid=1, host="h"
        )
        answered, silent = RemoteStatus.NO_MATCH, RemoteStatus.NOT_ANSWERED
        recorded = [
            # two hours ago: before the hour, counted today only
            (now - timedelta(hours=2), result(1, answer("photodna", silent))),
            (now - timedelta(minutes=50), result(2, answer("photodna", answered))),
            (now - timedelta(minutes=30), result(3, answer("photodna", silent))),
            (now - timedelta(minutes=20), result(4, answer("photodna", answered))),
            (now - timedelta(minutes=10), result(5, answer("photodna", answered))),
            (now - timedelta(minutes=40), result(6, answer("thorn", answered))),
            (now - timedelta(minutes=5), result(7, answer("thorn", silent))),
        ]
        for at, one in recorded:
            with transaction(store.engine) as writes:
                writes.add_results(run.id, [one], at=at)
    return url


def test_each_remote_service_shows_its_last_answer_and_recent_silence(tmp_path: Path) -> None:
    """From what is recorded (scan results' remote answers, today's rollup), measured
    from the doctor's ``now``: last answer (time and kind), the share of not_answered in
    the hour before."""
    settings = Settings(
        home=tmp_path / "home",
        database_url=_recorded_answers(tmp_path),
        remote=REMOTE,
        remote_secrets={
            "photodna": {"subscription_key": "k"},
            "thorn": {"api_key": "k"},
        },  # type: ignore[arg-type]
    )
    found = {
        r.name: r
        for r in run_checks(
            settings, [c for c in CHECKS if c.name == "remote matchers"], now=RECORDS_NOW
        )
    }["remote matchers"]
    said = found.message
    assert (
        "photodna (test): configured (no check call); "
        "last answer no_match at 2026-03-02 11:50:00 UTC" in said
    )
    assert "not_answered 1 of 4 (25%) in the last hour; today 2 of 5 not_answered" in said
    assert "thorn (live)" in said
    assert "last answer not_answered at 2026-03-02 11:55:00 UTC" in said
    assert "not_answered 1 of 2 (50%) in the last hour" in said


def test_plugins_list_shows_each_configured_service_with_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time_machine  # noqa: PLC0415
    from typer.testing import CliRunner  # noqa: PLC0415

    from hashguard.cli.app import app  # noqa: PLC0415

    url = _recorded_answers(tmp_path)
    monkeypatch.setenv("HASHGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", url)
    monkeypatch.setenv("HASHGUARD_REMOTE", json.dumps(REMOTE))
    with time_machine.travel(RECORDS_NOW, tick=False):
        listed = CliRunner().invoke(app, ["plugins", "list", "--json"])
        shown = CliRunner().invoke(app, ["plugins", "list"])
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    (photodna,) = rows["photodna"]["configured"]
    assert photodna == {
        "name": "photodna",
        "adapter": "photodna",
        "kind": "remote_matcher",
        "mode": "test",
        "last_answer_at": "2026-03-02T11:50:00+00:00",
        "last_answer": "no_match",
        "calls_last_hour": 4,
        "not_answered_last_hour": 1,
        "not_answered_share_last_hour": 0.25,
        "calls_today": 5,
        "not_answered_today": 2,
    }
    (thorn,) = rows["safer"]["configured"]
    assert (thorn["name"], thorn["mode"], thorn["last_answer"]) == ("thorn", "live", "not_answered")
    assert "configured" not in rows["md5"]
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    for said in ("thorn", "safer", "live", "(50%)", "(25%)"):  # the table wraps its cells
        assert said in text, said
