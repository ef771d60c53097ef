"""The hash check service's client: a small host's ``hashguard scan`` through the
``hashguard`` adapter (hashes computed locally, looked up at a real ``hashguard serve`` on
loopback with a tenant's token) against a local-bank scan of the same folder with the
same bank, same run.

Both scans hash with reference PDQ (what the adapter sends) and the same workers; every
file must come out ``no_match`` (the bank is made-up PDQ hashes), so the difference is
what asking the service costs: the lookup calls (batched across files) and the
remote budget's waits. The server runs on the same 2 cores as the client.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.cli import BenchError, run_hashguard
from bench.config import REPEATS, Scale
from bench.corpus import build_corpora
from bench.report import INFO, Row
from bench.scan import Sample, _check_all_no_match, _in_run_rate
from bench.service import running_server
from bench.tenants import bank_csv
from hashguard.domain.tokens import Scope
from hashguard.services.tenants import add_tenant
from hashguard.services.tokens import create_token
from hashguard.settings import Settings
from hashguard.store import open_store

#: made-up PDQ entries in the bank (the same on both sides)
BANK_ROWS = 10_000
WORKERS = 2
Say = Callable[[object], None]


def _import(home: Path, csv: Path) -> None:
    done = run_hashguard(
        ["banks", "import", "bench-client", str(csv), "--format", "csv", "--source", "bench"],
        home=home,
    )
    if done.returncode != 0:
        raise BenchError(f"bank import failed\n{done.tail()}")


def _scan(home: Path, directory: Path, expected: int, what: str) -> Sample:
    args = ["scan", str(directory), "--json", "--workers", str(WORKERS), "--rescan"]
    done = run_hashguard([*args, "--pdq-mode", "reference"], home=home)
    _check_all_no_match(done, expected, what)
    return Sample(seconds=done.seconds, in_run=_in_run_rate(done, WORKERS))


def client_rows(scale: Scale, say: Say) -> list[Row]:
    corpus = build_corpora(scale)[0]  # the 1 MP images
    files = len(corpus.files)
    csv, _ = bank_csv(BANK_ROWS)
    say(f"hash check client: {files} files ({corpus.label}), {BANK_ROWS:,} PDQ entries")
    with tempfile.TemporaryDirectory(prefix="hashguard-bench-client-") as tmp:
        service, local, client = (Path(tmp) / n for n in ("service", "local", "client"))
        for home in (service, local, client):
            home.mkdir()
        _import(service, csv)
        _import(local, csv)
        with contextlib.closing(open_store(Settings(home=service).resolved_database_url)) as store:
            add_tenant(store, "cli:bench", "host", contact="ops@host.test", quota_per_day=10**12)
            token = create_token(store, "cli:bench", "host-1", [Scope.LOOKUP], tenant="host")[1]
        with running_server(service, token) as server:
            os.environ["BENCH_HOTLINE_TOKEN"] = token
            try:
                added = run_hashguard(
                    ["remote", "add", "hotline", "--adapter", "hashguard",
                     "--setting", f"base_url=http://127.0.0.1:{server.port}",
                     "--credential", "token=env:BENCH_HOTLINE_TOKEN"],
                    home=client,
                )  # fmt: skip
            finally:
                del os.environ["BENCH_HOTLINE_TOKEN"]
            if added.returncode != 0:
                raise BenchError(f"remote add failed\n{added.tail()}")
            runs: dict[str, list[Sample]] = {"client": [], "local": []}
            for round_ in range(REPEATS):
                say(f"hash check client: round {round_ + 1}/{REPEATS}")
                order = ["client", "local"] if round_ % 2 == 0 else ["local", "client"]
                for kind in order:
                    home = client if kind == "client" else local
                    what = f"hashguard scan ({kind}) {corpus.directory}"
                    runs[kind].append(_scan(home, corpus.directory, files, what))
    remote = statistics.median(files / s.seconds for s in runs["client"])
    plain = statistics.median(files / s.seconds for s in runs["local"])
    return [
        Row(
            figure=f"client scan through the hash check service, {corpus.label}, "
            f"{WORKERS} workers, reference PDQ",
            value=remote,
            unit="files/s",
            baseline=plain,
            ratio=remote / plain if plain else 0.0,
            target="(local-bank scan of the same folder, same run)",
            verdict=INFO,
            samples=[files / s.seconds for s in runs["client"]],
            samples_unit="files/s",
            details={
                f"local round {n + 1}": files / s.seconds for n, s in enumerate(runs["local"])
            },
        )
    ]
