"""Statement figures: statements of reasons filed per minute in the Transparency Database,
against the loopback fake (``tests/fakes/tdb.py``, which validates every statement).

Setup (not timed): a fresh SQLite store, one case opened by the pipeline for a benign
generated image, and the round's statements stored as automated decisions on it (each
a distinct sighting: its own puid), pending.

Timed, per round: ``Filer.run`` to the end — claim a batch of 100 (the checkpoint,
committed), build and check each document, POST the batch over loopback, record the
receipts with their audit event — until none is pending.

The baseline, in the same round: the same documents, already built, POSTed in batches
of 100 with a bare ``httpx`` client to a fresh fake (no store, no checkpoint, no
audit). The ratio is hashguard's rate over that: what the checkpoint and the
bookkeeping (two SQLite commits per batch: the claim and the receipts with their audit
event) cost against the HTTP and the fake's validation alone. No verdict: the
Database's own limit (200 requests/s, i.e. 20,000 statements/s in batches of 100) is
far above both, and what bounds filing in practice is how many statements a platform
produces.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr
from tests.fakes.tdb import FakeTransparencyDatabase

from bench.config import REPEATS, Scale
from bench.report import INFO, Row
from bench.timing import median
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.banks import BankEntry
from hashguard.domain.cases import ContentRef
from hashguard.domain.signals import Algorithm
from hashguard.domain.statements import MAX_BATCH, StatementConfig, StatementKind
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import Upload
from hashguard.statements.filing import Filer
from hashguard.statements.reasons import build, uploader_text
from hashguard.statements.tdb import STATEMENTS_PATH, TransparencyDatabaseSink, tdb_document
from hashguard.store import Store, open_store

#: statements filed per round, by scale (``REPEATS`` rounds; the figure is the median)
PER_ROUND = {"small": 500, "full": 5000}


def _case(store: Store) -> int:
    data = encode(generate(Kind.PHOTO, 9100, 64, 48))
    output = hash_data(data, HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    store.banks.create("bench-known")
    store.banks.add_entries(
        "bench-known", [BankEntry(algorithm=Algorithm.MD5, value=output.signals.md5)]
    )
    matcher = Matcher.build(store.banks)
    done = Pipeline(
        store=store, actor="system:bench", policies=lambda: policies_of(matcher.banks)
    ).process(
        "upload",
        output,
        matcher.match(output.signals),
        Upload(data=data, request_id="bench", content_ref=ContentRef()),
    )
    assert done.case is not None
    return done.case.id


def _store_statements(
    store: Store, case_id: int, count: int, round_no: int
) -> list[dict[str, object]]:
    case = store.cases.get(case_id)
    config = StatementConfig(issue=True, prefix=f"hgbench{round_no}")
    at = datetime.now(UTC)
    documents = []
    with store.transaction() as writes:
        for n in range(count):
            sor = build(
                case, config, kind=StatementKind.AUTOMATED, at=at, notifier=None, key=str(n)
            )
            writes.add_statement(sor, uploader_text(sor), at=at)
            documents.append(tdb_document(sor))
    return documents


def _bare(base_url: str, token: str, documents: list[dict[str, object]]) -> float:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        start = time.perf_counter()
        for i in range(0, len(documents), MAX_BATCH):
            response = client.post(
                STATEMENTS_PATH, json={"statements": documents[i : i + MAX_BATCH]}
            )
            if response.status_code != 201:
                raise RuntimeError(f"the fake answered {response.status_code}")
        return time.perf_counter() - start


def statements_rows(scale: Scale, progress: Callable[[str], None]) -> list[Row]:
    per_round = PER_ROUND.get(scale.name, PER_ROUND["small"])
    progress(f"statements: {REPEATS} rounds of {per_round} statements, SQLite, loopback fake TDB")
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'statements.db'}"
        with closing(open_store(url, migrate=True)) as store, FakeTransparencyDatabase() as fake:
            case_id = _case(store)
            sink = TransparencyDatabaseSink.configure(
                {"sandbox_url": fake.base_url, "requests_per_second": 200},
                {"token": SecretStr(fake.token)},
            )
            try:
                for index in range(REPEATS):
                    progress(f"statements: round {index + 1}/{REPEATS}")
                    documents = _store_statements(store, case_id, per_round, index)
                    start = time.perf_counter()
                    report = Filer(
                        statements=store.statements, sink=sink, clock=lambda: datetime.now(UTC)
                    ).run()
                    ours.append(time.perf_counter() - start)
                    if report.filed != per_round or report.error:
                        raise RuntimeError(f"filed {report.filed} of {per_round}: {report.error}")
                    with FakeTransparencyDatabase(token=secrets.token_hex(8)) as other:
                        bare.append(_bare(other.base_url, other.token, documents))
            finally:
                sink.close()
    rate = 60.0 * per_round / median(ours)
    baseline = 60.0 * per_round / median(bare)
    ratio = rate / baseline
    return [
        Row(
            figure="DSA statements of reasons filed in batches of 100 (checkpoint, receipts, "
            "audit; loopback fake TDB, SQLite): per minute",
            value=rate,
            unit="statements/min",
            baseline=baseline,
            ratio=ratio,
            target="info: the checkpoint's and receipts' cost against bare posts",
            verdict=INFO,
            extra={"s per 100": 100 * median(ours) / per_round},
            samples=[60.0 * per_round / s for s in ours],
            samples_unit="statements/min",
        ),
        Row(
            figure="Bare HTTP posts of the same batches (no store), per minute",
            value=baseline,
            unit="statements/min",
            verdict=INFO,
        ),
    ]
