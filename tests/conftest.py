"""Fixtures: real SQLite and a real PostgreSQL, settings pointing at a temp home, images."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests.postgres import find_bin, temporary_cluster

POSTGRES_ENV = "HASHGUARD_TEST_POSTGRES_URL"
REQUIRE_ENV = "HASHGUARD_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server: the one CI names, else one started here."""
    given = os.environ.get(POSTGRES_ENV)
    if given:
        yield given
        return
    bindir = find_bin()
    if bindir is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail("PostgreSQL binaries not found and PostgreSQL tests are required")
        pytest.skip("no PostgreSQL binaries on this machine")
    with temporary_cluster(bindir) as url:
        yield url


def _fresh_postgres_database(server: str, template: str | None = None) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    copied = f' TEMPLATE "{template}"' if template else ""
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copied}'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def postgres_database(postgres_server: str) -> str:
    """A fresh, empty PostgreSQL database."""
    return _fresh_postgres_database(postgres_server)


@pytest.fixture(scope="session")
def _migrated_postgres(postgres_server: str) -> str:
    """A PostgreSQL database migrated to the head once per session: ``db_url`` copies it
    (``CREATE DATABASE … TEMPLATE``, a fraction of a second instead of the migrations'
    two). Nobody connects to it after this, as a template requires."""
    url = _fresh_postgres_database(postgres_server)
    open_store(url, migrate=True).close()
    return str(make_url(url).database)


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the head once per session, copied by ``db_url``."""
    path = tmp_path_factory.mktemp("migrated") / "hashguard.db"
    open_store(f"sqlite:///{path}", migrate=True).close()
    return path


def _copied_sqlite(template: Path, folder: Path) -> str:
    path = folder / "hashguard.db"
    shutil.copy2(template, path)  # mode too: the store's file is 0600
    for suffix in ("-wal", "-shm"):
        extra = template.with_name(template.name + suffix)
        if extra.exists():
            shutil.copy2(extra, path.with_name(path.name + suffix))
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each engine, already migrated to the head (a copy of one
    migrated once per session); ``empty_db_url`` for one with no schema at all."""
    if request.param == "sqlite":
        return _copied_sqlite(request.getfixturevalue("_migrated_sqlite"), tmp_path)
    server = str(request.getfixturevalue("postgres_server"))
    return _fresh_postgres_database(server, request.getfixturevalue("_migrated_postgres"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine (no schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hashguard.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url, migrate=True)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'hashguard.db'}")
    yield opened
    opened.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HASHGUARD_HOME for CLI runs; no other HASHGUARD_* setting leaks in."""
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    path = tmp_path / "home"
    monkeypatch.setenv("HASHGUARD_HOME", str(path))
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(workers=2)


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Server settings on a fresh database of each engine, with a private home."""
    for name in list(os.environ):
        if name.startswith("HASHGUARD_"):
            monkeypatch.delenv(name)
    opened = open_store(db_url, migrate=True)  # PostgreSQL is never migrated by a server
    opened.close()
    return Settings(
        home=tmp_path / "home",
        database_url=db_url,
        workers=2,
        index_refresh_seconds=0.2,
    )


#: not HASHGUARD_*: the fixtures clear those, and subprocesses must see it
CLOCK_AHEAD_ENV = "HG_TEST_CLOCK_AHEAD_DAYS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-ahead",
        type=int,
        default=int(os.environ.get(CLOCK_AHEAD_ENV, "0")),
        metavar="DAYS",
        help="run with this process's wall clock DAYS ahead (a guard against tests "
        "that hold a fixed date: .ci/run passes 365)",
    )


def pytest_configure(config: pytest.Config) -> None:
    days = config.getoption("--clock-ahead")
    # a worker process of pytest-xdist is a subprocess: the shim moved its clock already
    if days and not os.environ.get("PYTEST_XDIST_WORKER"):
        import time_machine  # noqa: PLC0415 (only this guard needs it)

        traveller = time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)
        # subprocesses (the CLI, servers, hashing workers) travel with us
        os.environ[CLOCK_AHEAD_ENV] = str(days)
        shim = str(Path(__file__).parent / "clockshim")
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (shim, os.environ.get("PYTHONPATH")) if p
        )
