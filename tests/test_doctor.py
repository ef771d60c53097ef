"""``hashguard doctor``: passes on a fresh demo home; each check finds what it is for, on
SQLite and PostgreSQL; it changes nothing; slots take functions written elsewhere."""

from __future__ import annotations

import base64
import json
import os
import socket
from contextlib import closing
from datetime import date
from pathlib import Path

import pytest

from hashguard.doctor import (
    CHECKS,
    Check,
    Level,
    Result,
    graph_api_check,
    orphans_check,
    permissions_check,
    run_checks,
)
from hashguard.domain.banks import BankEntry
from hashguard.domain.flood import FloodLimit
from hashguard.domain.policy import BankPolicy
from hashguard.domain.signals import Algorithm
from hashguard.matching.matcher import Matcher
from hashguard.settings import Settings
from hashguard.store import open_store
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
    )
    found = results(weak)["safety settings"]
    assert found.level is Level.WARN
    for said in (
        "remote matcher photodna is in test mode",
        "single confirmation",
        "never reminded to take a break",
        "plain http",
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
