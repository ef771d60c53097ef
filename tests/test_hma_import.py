"""``hashguard import-hma`` against a PostgreSQL database made with HMA's schema.

The DDL below is our own, written from HMA's models and first migration
(facebook/ThreatExchange, hasher-matcher-actioner/src/OpenMediaMatch/storage/postgres/
database.py and migrations/versions/21cb8a3df884_.py, commit
baefb4ed67b6cdc1d4c82dbaef858d50866ac424): the tables and columns import-hma reads,
and the credentials table it must never read. Content is benign and generated."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import psycopg
import pytest
from threatexchange.extensions.vpdq.vpdq import VPDQSignal
from typer.testing import CliRunner

from hashguard.cli.app import app
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.audit import AuditAction
from hashguard.domain.signals import Algorithm
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.store import open_store

pytestmark = pytest.mark.postgres

HMA_DDL = """
CREATE TABLE exchange (
    id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL UNIQUE, api_cls VARCHAR(255) NOT NULL,
    retain_api_data BOOLEAN NOT NULL, fetching_enabled BOOLEAN NOT NULL,
    retain_data_with_unknown_signal_types BOOLEAN NOT NULL, typed_config JSON NOT NULL);
CREATE TABLE exchange_api_config (
    id SERIAL PRIMARY KEY, api VARCHAR NOT NULL UNIQUE, default_credentials_json JSON NOT NULL);
CREATE TABLE bank (
    id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL UNIQUE, enabled_ratio FLOAT NOT NULL,
    import_from_exchange_id INTEGER UNIQUE REFERENCES exchange(id) ON DELETE CASCADE);
CREATE TABLE exchange_data (
    id SERIAL PRIMARY KEY, collab_id INTEGER NOT NULL REFERENCES exchange(id) ON DELETE CASCADE,
    fetch_id TEXT NOT NULL, pickled_fetch_signal_metadata BYTEA,
    fetched_metadata_summary JSON NOT NULL, matched BOOLEAN NOT NULL,
    verification_result BOOLEAN);
CREATE TABLE bank_content (
    id SERIAL PRIMARY KEY, bank_id INTEGER NOT NULL REFERENCES bank(id) ON DELETE CASCADE,
    imported_from_id INTEGER UNIQUE REFERENCES exchange_data(id) ON DELETE CASCADE,
    disable_until_ts INTEGER NOT NULL, original_content_uri VARCHAR,
    bank_content_metadata JSON, note VARCHAR(255));
CREATE TABLE content_signal (
    content_id INTEGER NOT NULL REFERENCES bank_content(id) ON DELETE CASCADE,
    signal_type VARCHAR NOT NULL, signal_val TEXT NOT NULL,
    create_time TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (content_id, signal_type));
"""


def _photo(seed: int) -> tuple[str, str]:
    data = encode(generate(Kind.PHOTO, seed, 320, 240))
    output = hash_data(data, HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    return output.signals.pdq[0].value, hashlib.md5(data).hexdigest()


@pytest.fixture
def hma_db(postgres_database: str) -> str:
    """An HMA database: a local bank with two photos (one disabled) and a video, an
    exchange-backed bank with a fetched item, a signal type hashguard does not have,
    and exchange credentials that must never come out."""
    url = postgres_database.replace("postgresql+psycopg://", "postgresql://")
    (pdq1, md51), (pdq2, _md52), (pdq3, _md53) = _photo(1), _photo(2), _photo(3)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(HMA_DDL)
        conn.execute(
            "INSERT INTO exchange (id, name, api_cls, retain_api_data, fetching_enabled, "
            "retain_data_with_unknown_signal_types, typed_config) VALUES "
            "(1, 'TX_SAMPLE', 'fb_threatexchange', false, true, false, %s)",
            (json.dumps({"privacy_group": 1234, "api_token": "NEVER-COPIED"}),),
        )
        conn.execute(
            "INSERT INTO exchange_api_config (api, default_credentials_json) "
            "VALUES ('fb_threatexchange', %s)",
            (json.dumps({"api_token": "NEVER-COPIED-EITHER"}),),
        )
        conn.execute(
            "INSERT INTO bank (id, name, enabled_ratio, import_from_exchange_id) VALUES "
            "(1, 'LOCAL_BANK', 1.0, NULL), (2, 'TX_SAMPLE', 0.0, 1)"
        )
        conn.execute(
            "INSERT INTO exchange_data (id, collab_id, fetch_id, fetched_metadata_summary, "
            "matched) VALUES (1, 1, 'fetch-42', '[]', false)"
        )
        conn.execute(
            "INSERT INTO bank_content (id, bank_id, imported_from_id, disable_until_ts) VALUES "
            "(101, 1, NULL, 0), (102, 1, NULL, 1), (103, 1, NULL, 0), (201, 2, 1, 0)"
        )
        conn.execute(
            "INSERT INTO content_signal (content_id, signal_type, signal_val) VALUES "
            "(101, 'pdq', %s), (101, 'md5', %s), (102, 'pdq', %s), "
            "(103, 'video_md5', %s), (103, 'tmk', 'not-ours'), (103, 'vpdq', %s), "
            "(201, 'pdq', %s)",
            (
                pdq1,
                md51,
                pdq2,
                hashlib.md5(b"benign video bytes").hexdigest(),
                VPDQSignal.get_examples()[0],  # a video's frames, as HMA keeps them
                pdq3,
            ),
        )
    return url


def test_import_hma_copies_banks_content_and_provenance_without_credentials(
    hma_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"sqlite:///{tmp_path / 'hashguard.db'}"
    open_store(target, migrate=True).close()
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", target)
    monkeypatch.setenv("HASHGUARD_HOME", str(tmp_path / "home"))
    done = CliRunner().invoke(app, ["import-hma", "--database-url", hma_db, "--json"])
    assert done.exit_code == 0, done.output
    assert "NEVER-COPIED" not in done.output
    report = json.loads(done.stdout)
    assert report["banks_created"] == ["LOCAL_BANK", "TX_SAMPLE"]
    assert (report["content"], report["signals"], report["disabled_skipped"]) == (3, 5, 1)
    assert report["unsupported"] == {"tmk": 1}
    assert report["exchanges"] == [
        {
            "name": "TX_SAMPLE",
            "api": "fb_threatexchange",
            "enabled": True,
            "config": {"privacy_group": 1234},
        }
    ]
    with contextlib.closing(open_store(target)) as store:
        local, tx = store.banks.get("LOCAL_BANK"), store.banks.get("TX_SAMPLE")
        assert (local.enabled, local.source) == (True, "hma")
        assert (tx.enabled, tx.source) == (False, "hma-exchange:fb_threatexchange:TX_SAMPLE")
        assert store.banks.stats("LOCAL_BANK").active == {
            Algorithm.PDQ: 1,
            Algorithm.MD5: 2,
            Algorithm.VPDQ: 1,
        }
        (frames,) = store.banks.vpdq_frames(range(1, 50)).values()
        assert len(frames) == len(json.loads(VPDQSignal.get_examples()[0]))
        rows = dict(store.banks.describe(range(1, 50)).values())
        assert set(rows) == {"hma:101", "hma:103", "hma:201"}
        imported = [e for e in store.audit.events() if e.action == AuditAction.BANK_IMPORTED]
        assert {e.subject for e in imported} == {"bank:LOCAL_BANK", "bank:TX_SAMPLE"}
        assert all("NEVER-COPIED" not in json.dumps(dict(e.details)) for e in store.audit.events())
    # running it again adds nothing new and creates no bank twice
    again = CliRunner().invoke(app, ["import-hma", "--database-url", hma_db, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["banks_existing"] == ["LOCAL_BANK", "TX_SAMPLE"]


def test_import_hma_refuses_an_unreadable_database_without_echoing_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"sqlite:///{tmp_path / 'hashguard.db'}"
    open_store(target, migrate=True).close()
    monkeypatch.setenv("HASHGUARD_DATABASE_URL", target)
    monkeypatch.setenv("HASHGUARD_HOME", str(tmp_path / "home"))
    url = "postgresql://hma:s3cret-pw@127.0.0.1:9/hma"
    done = CliRunner().invoke(app, ["import-hma", "--database-url", url])
    assert done.exit_code != 0
    assert "s3cret-pw" not in done.output
