"""Issue 21's "done means": on the demo's data (scanned in process), plus a notice and a
CyberTipline report (to the loopback fake), ``hashguard stats``, ``/v1/stats``,
``/ui/stats``, the transparency files, the feed and ``/metrics`` all show the same numbers,
and ``hashguard stats verify`` agrees."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from hashguard.cli.app import app as cli_app
from hashguard.demo.run import build, demo_settings, import_demo_bank, scan_like_the_cli
from hashguard.domain.notices import NoticeCategory, NoticeChannel, Notifier, NotifierKind
from hashguard.domain.people import Role
from hashguard.domain.reports import ReportState
from hashguard.domain.scans import ScanOptions
from hashguard.domain.tokens import Scope
from hashguard.keys import master_key_for
from hashguard.notices.intake import NoticeRequest, receive
from hashguard.plugins import Registry
from hashguard.reports import service
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web.ui.session import COOKIE
from tests.api_support import metric
from tests.fakes.cybertipline import FakeCyberTipline
from tests.server import running_server
from tests.test_ui_reports import configure_reports, confirm, xsd_or_skip


@dataclass(frozen=True)
class Seeded:
    settings: Settings
    home: Path
    #: the period the rollups fall in (the scan ran at the wall clock: its year)
    year: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    xsd_or_skip()
    root = tmp_path_factory.mktemp("done")
    settings = demo_settings(root / "home", workers=1)
    layout = build(root / "demo")
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        import_demo_bank(store, layout)
        done = scan_like_the_cli(
            store, settings, layout.uploads, ScanOptions(max_pixels=10**8, dihedral=True)
        )
        for name in ("alice", "carol"):
            store.people.create_user(name, Role.LEAD, password_hash=PasswordHasher().hash("pw"))
        receive(
            store,
            NoticeRequest(
                urls=("https://files.example.test/u/other-00.jpg",),
                category=NoticeCategory.CHILD_SEXUAL_ABUSE,
                explanation="Assessed as child sexual abuse material (demo notice).",
                notifier=Notifier(kind=NotifierKind.USER),
            ),
            actor="system:demo",
            channel=NoticeChannel.FORM,
            at=datetime.now(UTC),
            notifiers={},
            token_name=None,
        )
    with FakeCyberTipline() as fake:
        configure_reports(settings, fake)
        reported = done.cases[0].id
        confirm(settings, reported)
        key = master_key_for(settings)[0]
        with contextlib.closing(open_store(settings.resolved_database_url)) as store:
            with service.Reporting.open(settings, store, Registry.load(), lambda: key) as rep:
                report = rep.submit(reported, actor="user:carol")
            assert report.state is ReportState.FINISHED, report
            days = {r.day for r in store.stats.counts(date(2000, 1, 1), date(2099, 12, 31))}
    years = {d.year for d in days}
    assert len(years) == 1, days
    return Seeded(settings=settings, home=root / "home", year=str(years.pop()))


def _cli(seeded: Seeded, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    for name in [n for n in os.environ if n.startswith("HASHGUARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HASHGUARD_HOME", str(seeded.home))
    done = CliRunner().invoke(cli_app, list(args))
    assert done.exit_code == 0, (done.output, done.exception)
    return done.stdout


def test_every_view_shows_the_same_numbers(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    year = seeded.year
    span = {"since": f"{year}-01-01", "until": f"{year}-12-31"}
    table = json.loads(
        _cli(
            seeded,
            monkeypatch,
            "stats",
            "--since",
            span["since"],
            "--until",
            span["until"],
            "--by",
            "year",
            "--format",
            "json",
        )
    )
    (row,) = table["rows"]
    counts = row["counts"]
    assert counts["checked"] > counts["matched"] > 0
    assert counts["cases_opened"] > 0
    assert (counts["confirmed"], counts["reports_filed"], counts["notices"]) == (1, 1, 1)

    # the transparency files
    out = tmp_path / "report"
    _cli(seeded, monkeypatch, "stats", "transparency", "--period", year, "--out", str(out))
    auto = _csv(out / "dsa-1.6-automated-means.csv")
    assert _cell(auto, indicator="files_checked", breakdown="all")["value"] == str(
        counts["checked"]
    )
    assert _cell(auto, indicator="files_checked", breakdown="outcome=matched")["value"] == str(
        counts["matched"]
    )
    annual = {r["indicator"]: r["value"] for r in _csv(out / "eu-2021-1232-art3-annual.csv")}
    assert annual["volume_processed_total"] == str(counts["checked"])
    assert annual["cases_identified"] == str(counts["cases_opened"])
    assert annual["cases_confirmed"] == str(counts["confirmed"])
    assert annual["cases_reported"] == str(counts["reports_filed"])
    notices = _cell(_csv(out / "dsa-1.3-notices.csv"), type_of_alleged_illegal_content="ALL")
    assert notices["notices_received"] == str(counts["notices"])

    # the feed (k=1: nothing suppressed, so every cell can be compared)
    feed = json.loads(_cli(seeded, monkeypatch, "stats", "feed", "--period", year, "--k", "1"))
    tables = feed["payload"]["tables"]
    assert tables["files_checked"]["total"] == counts["checked"]
    assert tables["matches"]["total"] == counts["matches"]
    assert tables["notices"]["total"] == counts["notices"]
    assert _feed_cell(tables["cases_decided"], outcome="confirmed") == counts["confirmed"]
    assert _feed_cell(tables["reports"], state="filed") == counts["reports_filed"]

    with contextlib.closing(open_store(seeded.settings.resolved_database_url)) as store:
        _, secret = store.tokens.create("done-stats", [Scope.STATS])
        carol = next(u for u in store.people.list_users() if u.name == "carol")
        _, session = store.people.create_session(carol.id, method="password", ip=None)
    with running_server(seeded.settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        # the API: the same table
        api = http.get(
            "/v1/stats",
            params={**span, "by": "year"},
            headers={"authorization": f"Bearer {secret}"},
        )
        assert api.status_code == 200, api.text
        assert api.json() == table
        # the dashboard: per list and band, summed
        page = http.get("/ui/stats", params=span, headers={"cookie": f"{COOKIE}={session}"})
        assert page.status_code == 200, page.text[:300]
        shown = [
            [int(n) for n in cells]
            for cells in re.findall(
                r'<tr class="list-row"[^>]*>\s*<td>[^<]*</td><td>[^<]*</td><td>(\d+)</td>'
                r"<td>(\d+)</td>\s*<td>(\d+)</td><td>(\d+)</td>",
                page.text,
            )
        ]
        assert shown, "no list rows on the dashboard"
        assert [sum(c[i] for c in shown) for i in range(4)] == [
            counts["matches"],
            counts["cases_opened"],
            counts["confirmed"],
            counts["false_positive"],
        ]
        # Prometheus: all-time totals (everything here happened this year), to the same
        # stats token a scraper would have
        text = http.get("/metrics", headers={"authorization": f"Bearer {secret}"}).text
        assert _total(text, "hashguard_stats_files_checked_total") == counts["checked"]
        assert _total(text, "hashguard_stats_matches_total") == counts["matches"]
        assert _total(text, "hashguard_stats_cases_opened_total") == counts["cases_opened"]
        assert _total(text, "hashguard_stats_notices_total") == counts["notices"]
        assert metric(text, "hashguard_stats_reports_total", state="filed") == 1

    # and the recount from the audit log and the scan results agrees
    _cli(seeded, monkeypatch, "stats", "verify", "--since", span["since"], "--until", span["until"])


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _cell(rows: list[dict[str, str]], **match: str) -> dict[str, str]:
    (found,) = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return found


def _feed_cell(table: dict[str, Any], **key: str) -> int:
    (found,) = [c for c in table["cells"] if c["key"] == key]
    assert not found["suppressed"]
    return int(found["count"])


def _total(text: str, name: str) -> int:
    return sum(
        int(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )
