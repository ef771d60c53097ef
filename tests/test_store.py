"""The store on SQLite and PostgreSQL: banks, imports with tombstones, scan runs, migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hashguard.banks.importer import EmptyList, ImportOptions, NewBank, import_list
from hashguard.domain import (
    Algorithm,
    BankEntry,
    BankKind,
    FileResult,
    Outcome,
    RunStatus,
    ScanOptions,
)
from hashguard.domain.signals import FileSignals, PdqHash, PdqMode
from hashguard.store import Store, UnknownBank
from hashguard.store.banks import BankExists, InvalidBankName
from hashguard.store.database import SchemaOutOfDate, make_engine, open_store
from hashguard.store.schema import metadata

MD5S = [f"{i:032x}" for i in range(1, 6)]


def entry(value: str, **kw: object) -> BankEntry:
    return BankEntry(algorithm=Algorithm.MD5, value=value, **kw)  # type: ignore[arg-type]


def test_migrations_match_the_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


@pytest.mark.postgres
def test_postgres_is_not_migrated_implicitly(postgres_database: str) -> None:
    """SQLite, the embedded store, migrates itself; shared PostgreSQL needs `db upgrade`."""
    with pytest.raises(SchemaOutOfDate):
        open_store(postgres_database)
    open_store(postgres_database, migrate=True).close()
    open_store(postgres_database).close()


def test_bank_lifecycle(store: Store) -> None:
    bank = store.banks.create("ncii", kind=BankKind.ALLOW, pdq_threshold=20, source="s")
    assert (bank.kind, bank.pdq_threshold, bank.enabled) == (BankKind.ALLOW, 20, True)
    with pytest.raises(BankExists):
        store.banks.create("ncii")
    changed = store.banks.configure("ncii", enabled=False, pdq_threshold=10, kind=BankKind.KNOWN)
    assert (changed.enabled, changed.pdq_threshold, changed.kind) == (False, 10, BankKind.KNOWN)
    assert [b.name for b in store.banks.list()] == ["ncii"]
    store.banks.delete("ncii")
    with pytest.raises(UnknownBank):
        store.banks.get("ncii")
    with pytest.raises(UnknownBank):
        store.banks.configure("ncii", enabled=True)


def test_reimport_upserts_tombstones_and_restores(store: Store) -> None:
    store.banks.create("list")
    first = store.banks.replace_entries(
        "list",
        [entry(v, entry_id=f"e{i}") for i, v in enumerate(MD5S[:3])],
        version="2026-01",
        filename="a.csv",
        rows=3,
        source="NGO",
        licence="terms",
    )
    assert (first.added, first.removed, first.version) == (3, 0, "2026-01")
    second = store.banks.replace_entries(
        "list",
        [entry(MD5S[0], entry_id="e0"), entry(MD5S[1], entry_id="changed"), entry(MD5S[3])],
        version=None,
        filename="b.csv",
        rows=3,
    )
    assert (second.added, second.updated, second.unchanged, second.removed) == (1, 1, 1, 1)
    assert second.version == "2"
    stats = store.banks.stats("list")
    assert stats.active == {Algorithm.MD5: 3}
    assert stats.removed == 1
    assert stats.imports == 2
    assert (stats.bank.source, stats.bank.licence, stats.bank.version) == ("NGO", "terms", "2")
    third = store.banks.replace_entries(
        "list", [entry(v) for v in MD5S[:4]], version="v3", filename="c.csv", rows=4
    )
    assert third.restored == 1
    live = [value for rows in store.banks.index_rows() for value in rows.values]
    assert sorted(live) == MD5S[:4]
    # Every change carried a change number; the index catches up from the last one it saw.
    changes = store.banks.changes_since(0)
    assert changes.seq == store.banks.change_seq() == 3
    assert sorted(changes.live.values) == MD5S[:4]
    assert store.banks.changes_since(changes.seq).live.ids == []


def test_import_is_all_or_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(f"algorithm,hash\nmd5,{MD5S[0]}\nmd5,nothex\nsha1,{'a' * 40}\n")
    refused = import_list(store.banks, "new", path, options=ImportOptions(create=NewBank()))
    assert not refused.applied
    assert [str(e) for e in refused.errors] == ["list.csv:3: md5 hash is not hexadecimal"]
    assert store.banks.find("new") is None  # not even created
    with pytest.raises(UnknownBank):
        import_list(store.banks, "new", path)
    applied = import_list(
        store.banks,
        "new",
        path,
        options=ImportOptions(skip_invalid=True, create=NewBank(pdq_threshold=12)),
    )
    assert (applied.applied, applied.added, len(applied.errors)) == (True, 2, 1)
    assert store.banks.get("new").pdq_threshold == 12


def test_scan_runs_record_one_result_per_path(store: Store) -> None:
    options = ScanOptions(max_pixels=1000, max_frames=2, dihedral=True)
    run = store.scans.create_run(roots=["/srv"], resume_key="k", options=options, pid=1, host="h")
    assert run.status is RunStatus.RUNNING
    assert run.options == options
    signals = FileSignals(
        size=3,
        md5=MD5S[0],
        sha1="b" * 40,
        sha256="c" * 64,
        pdq=(PdqHash(value="d" * 64, quality=90, frame=0, mode=PdqMode.FAST),),
        image_format="jpeg",
        width=2,
        height=1,
    )
    odd_name = b"/srv/caf\xe9.jpg".decode("utf-8", "surrogateescape")
    store.scans.add_results(
        run.id,
        [
            FileResult(path="/srv/a.jpg", outcome=Outcome.NO_MATCH, signals=signals),
            FileResult(path=odd_name, outcome=Outcome.ERROR, reason="cannot open"),
        ],
    )
    assert store.scans.latest_unfinished("k") == store.scans.get(run.id)
    store.scans.finish(run.id, RunStatus.COMPLETED)
    assert store.scans.latest_unfinished("k") is None
    done = store.scans.get(run.id)
    assert done.counts[Outcome.NO_MATCH] == 1
    assert done.counts[Outcome.ERROR] == 1
    assert done.finished_at is not None
    results = list(store.scans.results(run.id))
    assert results[0].signals == signals
    assert results[1].path == "/srv/caf\\xe9.jpg"
    assert len(store.scans.done_paths(run.id)) == 2
    assert [r.id for r in store.scans.list_runs()] == [run.id]


def test_sqlite_store_uses_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x' / 'db.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_a_list_without_valid_entries_empties_a_bank_only_when_asked(
    store: Store, tmp_path: Path
) -> None:
    store.banks.create("kept")
    store.banks.add_entries("kept", [entry(value) for value in MD5S])
    empty = tmp_path / "empty.txt"
    empty.write_text("# a truncated download: comments only\n")
    with pytest.raises(EmptyList, match="would remove every entry"):
        import_list(store.banks, "kept", empty)
    assert store.banks.stats("kept").total_active == len(MD5S)
    report = import_list(store.banks, "kept", empty, options=ImportOptions(allow_empty=True))
    assert report.removed == len(MD5S)
    # an empty bank may take an empty list: nothing would be lost
    assert import_list(store.banks, "kept", empty).applied


def test_bank_names_are_safe_in_urls_and_labels(store: Store) -> None:
    for bad in ("", "-x", "a b", "a/b", "a\0b", "x" * 101):
        with pytest.raises(InvalidBankName):
            store.banks.create(bad)
    store.banks.create("NCMEC.industry_2026-11")


def test_rows_a_database_cannot_keep_are_invalid_rows(store: Store, tmp_path: Path) -> None:
    """PostgreSQL text has no NUL and JSON has no NaN: refused at parse time on both engines."""
    path = tmp_path / "list.jsonl"
    path.write_text(
        f'{{"hash": "{MD5S[0]}", "id": "a\\u0000b"}}\n'
        f'{{"hash": "{MD5S[1]}", "metadata": {{"score": NaN}}}}\n'
        f'{{"hash": "{MD5S[2]}", "metadata": {{"k\\u0000": 1}}}}\n'
        f'{{"hash": "{MD5S[3]}", "category": "fine"}}\n'
    )
    report = import_list(
        store.banks, "nul", path, options=ImportOptions(create=NewBank(), skip_invalid=True)
    )
    assert [(e.line, e.reason) for e in report.errors] == [
        (1, "entry id contains a NUL character"),
        (2, "metadata contains a non-finite number (nan)"),
        (3, "metadata contains a NUL character"),
    ]
    assert report.added == 1
