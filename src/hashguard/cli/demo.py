"""``hashguard demo``: build a benign corpus and a demo bank, scan it, show what was found;
with ``--serve``, the review demo: sign in and work the cases the scan opened."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from hashguard.classify.signals import is_classifier_decision
from hashguard.cli.context import err, out, settings_of
from hashguard.demo.cybertipline import FakeCyberTipline
from hashguard.demo.exchange import EXCHANGE, add_and_sync
from hashguard.demo.exchange import start_fake as start_hashsharing
from hashguard.demo.hashsharing import FakeNcmec
from hashguard.demo.receiver import WebhookReceiver
from hashguard.demo.remote import REVIEW_PRIORITY, DemoRemote
from hashguard.demo.reports import configure as configure_reports
from hashguard.demo.reports import find_xsd, start_fake
from hashguard.demo.run import (
    CLASSIFIER_ONLY,
    CLIP,
    DEMO_BANK,
    DEMO_HOTLINE,
    DEMO_POLICY,
    REMOTE_MATCHED,
    DemoLayout,
    ScanDone,
    build,
    create_demo_accounts,
    demo_settings,
    import_demo_bank,
    needs_dihedral,
    remote_demo_hashes,
    scan_like_the_cli,
)
from hashguard.demo.videos import (
    VIDEO_BANK,
    VideoFinding,
    described,
    how_found,
    import_video_bank,
)
from hashguard.domain.cases import Case
from hashguard.domain.policy import Action
from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.keys import master_key_for
from hashguard.plugins import Registry
from hashguard.remote.service import RemoteMatching
from hashguard.review.contact import is_video
from hashguard.settings import Settings, WebhookEndpointSettings
from hashguard.store import open_store


def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder to (re)create for the demo.")
    ] = Path("demo"),
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then serve the review UI on 127.0.0.1: demo accounts (passwords printed "
            "once), the demo list synced from a fake NCMEC hash sharing with feedback on, "
            "quarantine of the exact copies, a webhook receiver that prints what arrives, "
            "and a walkthrough to follow. Stop with Ctrl-C.",
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="Port of the review UI with --serve.", min=1)] = 8080,
    ncmec_xsd: Annotated[
        Path | None,
        typer.Option(
            envvar="HASHGUARD_DEMO_NCMEC_XSD",
            help="NCMEC's CyberTipline XSD (not part of hashguard): with --serve, confirmed "
            "cases are reported to a fake CyberTipline. Default: the project's shared "
            "reference beside a source checkout, if there.",
        ),
    ] = None,
) -> None:
    """Generate benign images, make a demo bank of four, scan edited copies and distractors.

    The scan takes `hashguard scan`'s path with a review band on the demo bank: exact
    copies are acted on, edited copies (PDQ matches) go to review; every match opens a
    case with its evidence kept. Uses its own store in DIR/home, never your configured
    one. Exit code 0 when every copy of a known image was found and no distractor matched.
    """
    settings = settings_of(ctx)
    started = time.monotonic()
    shutil.rmtree(directory, ignore_errors=True)
    layout = build(directory)
    home = (directory / "home").resolve()
    say = _say
    receiver = WebhookReceiver(say=say) if serve else None
    xsd = find_xsd(ncmec_xsd) if serve else None
    fake = start_fake(xsd) if xsd is not None else None
    # the review demo's list comes from an exchange with feedback on (see demo/exchange.py)
    lists = start_hashsharing(layout, at=datetime.now(UTC), say=say) if serve else None
    # PhotoDNA, Safer and Content Safety (fakes on loopback, test mode) beside the list
    remote = DemoRemote(*remote_demo_hashes(layout)).start() if serve else None
    if receiver is not None:
        receiver.start()
        # the exact copies are moved into DIR/home/quarantine once the server runs (its
        # dispatcher carries the actions out) and come back after a false positive
        demo_home = demo_settings(
            home,
            workers=settings.workers,
            quarantine_local=True,
            webhooks=(
                WebhookEndpointSettings(
                    name="demo", url=receiver.url, secret=SecretStr(receiver.secret)
                ),
            ),
            port=port,
            # served on plain http at 127.0.0.1 only: some browsers (Safari) drop Secure
            # cookies there, and the cookie never leaves this machine
            ui_secure_cookies=False,
            # a case two people confirmed is reported within seconds
            auto_report=fake is not None,
            reports_run_minutes=0.1,
        )
    else:
        demo_home = demo_settings(home, workers=settings.workers)
    try:
        done, passwords = _scan(
            demo_home,
            layout,
            settings.max_pixels,
            accounts=serve,
            cybertipline=fake,
            hashsharing=lists,
            remote=remote,
        )
        if _report(layout, done, directory, started):
            raise typer.Exit(1)
        if serve:
            remote_lines = _remote_lines(f"http://{demo_home.host}:{demo_home.port}", done)
            _serve(
                demo_home, passwords, fake, ncmec_xsd, _example(done), remote_lines,
                _clip_case(done),
            )  # fmt: skip
    finally:
        if receiver is not None:
            receiver.stop()
        if fake is not None:
            fake.stop()
        if lists is not None:
            lists.stop()
        if remote is not None:
            remote.stop()


def _say(line: str) -> None:
    err.print(escape(line), highlight=False)


def _example(done: ScanDone) -> Case | None:
    """An edited copy's case (a PDQ match, for review) to walk through."""
    return next(
        (
            c
            for c in done.cases
            if c.decision.action is not Action.ACT
            and not is_classifier_decision(c.decision)
            and not is_video(c.signals)
        ),
        None,
    )


def _clip_case(done: ScanDone) -> Case | None:
    """The case of the clip showing a known image (its frames matched), if the demo made
    one (with the video extra)."""
    return next(
        (c for c in done.cases if c.sources and Path(c.sources[0].path or "").name == CLIP), None
    )


def _remote_lines(base: str, done: ScanDone) -> list[str]:
    """Where the remote services' matches and the classifier-only case show."""
    by_name = {Path(c.sources[0].path or "").name: c for c in done.cases if c.sources}
    lines = []
    for name in REMOTE_MATCHED:
        if name in by_name:
            lines.append(
                f"  remote: {name} matched the demo list, PhotoDNA and Safer (test sources): "
                f"{base}/ui/cases/{by_name[name].id}"
            )
    if CLASSIFIER_ONLY in by_name:
        lines.append(
            f"  classifier only: {CLASSIFIER_ONLY} matched no list; Content Safety said "
            f"VERY_HIGH, so it waits for review ({base}/ui/cases/"
            f"{by_name[CLASSIFIER_ONLY].id}), after every list match in the queue by "
            f"priority ({base}/ui/?order=priority), never acted on"
        )
    return lines


def _scan(
    demo_home: Settings,
    layout: DemoLayout,
    max_pixels: int,
    *,
    accounts: bool,
    cybertipline: FakeCyberTipline | None = None,
    hashsharing: FakeNcmec | None = None,
    remote: DemoRemote | None = None,
) -> tuple[ScanDone, dict[str, str]]:
    store = open_store(demo_home.resolved_database_url)
    registry = Registry.load(demo_home.adapters)
    try:
        if hashsharing is None:
            report = import_demo_bank(store, layout)
            err.print(
                f"bank {DEMO_BANK}: {report.added} entries from {layout.known_list}; "
                f"policy {DEMO_POLICY.describe()}"
            )
        else:
            synced = add_and_sync(
                store, registry, master_key_for(demo_home)[0], hashsharing, at=datetime.now(UTC)
            )
            if not synced.ok:
                err.print(
                    f"[red]demo failed[/red]: syncing {EXCHANGE}: {escape(synced.error or '')}"
                )
                raise typer.Exit(1)
            err.print(
                f"bank {DEMO_BANK}: {synced.upserted} entries synced from exchange {EXCHANGE} "
                f"(ncmec adapter, test environment: a fake NCMEC hash sharing at "
                f"{hashsharing.url}), feedback on; policy {DEMO_POLICY.describe()}",
                highlight=False,
            )
        if layout.videos is not None:
            videos = import_video_bank(store, layout.videos, DEMO_POLICY)
            err.print(
                f"bank {VIDEO_BANK}: {videos.added} listed video (vPDQ) from "
                f"{layout.videos.video_list}; policy {DEMO_POLICY.describe()}"
            )
        else:
            err.print(f"[yellow]the demo has no video part[/yellow]: {layout.video_problem}")
        options = ScanOptions(max_pixels=max_pixels, dihedral=True)
        if remote is None:
            done = scan_like_the_cli(store, demo_home, layout.uploads, options)
        else:
            err.print(
                f"remote services: photodna, safer and content_safety (classifier, review "
                f"at {REVIEW_PRIORITY}) in test mode against fakes at {remote.base_url}",
                highlight=False,
            )
            with RemoteMatching(remote.matchers(), demo_home.remote_budget_seconds) as asked:
                done = scan_like_the_cli(store, demo_home, layout.uploads, options, remote=asked)
                asked.settle()
        passwords = create_demo_accounts(store) if accounts else {}
        if cybertipline is not None:
            configure_reports(
                store,
                registry,
                lambda: master_key_for(demo_home)[0],
                cybertipline,
                home=demo_home.home,
                at=datetime.now(UTC),
            )
    finally:
        store.close()
    return done, passwords


def _report(layout: DemoLayout, done: ScanDone, directory: Path, started: float) -> bool:
    """Print what the scan found; True when the demo's check failed."""
    table = Table("file", "copy of a known image?", "outcome", "decision", "best match")
    missed, false_hits = [], []
    for name, expected in sorted(layout.expected.items()):
        result = done.results[name]
        effective = sorted((m for m in result.matches if m.effective), key=lambda m: m.distance)
        found = result.outcome is Outcome.MATCHED
        if expected and not found:
            missed.append(name)
        if found and not expected:
            false_hits.append(name)
        best = effective[0] if effective else None
        detail = (
            f"{best.algorithm} d={best.distance} {best.transform}"
            if best
            else (result.reason or "")
        )
        style = "green" if found == expected else "red"
        table.add_row(
            name,
            "yes" if expected else "no",
            f"[{style}]{result.outcome}[/{style}]",
            str(result.decision.action) if found else "",
            detail,
        )
    out.print(table)
    video_failed = _report_videos(layout, done)
    run = done.run
    copies = sum(layout.expected.values())
    dihedral = sum(1 for name, exp in layout.expected.items() if exp and needs_dihedral(name))
    err.print(
        f"scan #{run.id}: {copies - len(missed)}/{copies} copies of known images found "
        f"({dihedral} of them rotated or mirrored, found by dihedral matching); "
        f"{len(false_hits)} distractors matched; {time.monotonic() - started:.1f} s"
    )
    acted = sum(1 for case in done.cases if case.decision.action is Action.ACT)
    kept = sum(1 for case in done.cases if case.evidence_id)
    signal = sum(1 for case in done.cases if is_classifier_decision(case.decision))
    err.print(
        f"{len(done.cases)} cases opened ({acted} exact copies to act on, "
        f"{len(done.cases) - acted - signal} edited copies or clips for review"
        + (f", {signal} classifier-only for review, never acted on" if signal else "")
        + f"), evidence kept for {kept}"
    )
    err.print(
        f"explore it: export HASHGUARD_HOME={(directory / 'home').resolve()}; "
        f"hashguard banks list; hashguard scans show {run.id}; hashguard cases list"
    )
    if missed or false_hits:
        err.print(f"[red]demo check failed[/red]: missed {missed}, false hits {false_hits}")
        return True
    return video_failed


def _report_videos(layout: DemoLayout, done: ScanDone) -> bool:
    """Print how each clip was found; True when one was not found as it must be."""
    if layout.videos is None:
        return False
    table = Table("clip", "must be found by", "found by", "decision", "where")
    wrong = []
    for name, expected in layout.videos.expected.items():
        result = done.results[name]
        found = how_found(result.matches)
        effective = [m for m in result.matches if m.effective]
        start, end = layout.videos.known_between
        in_place = found is not VideoFinding.FRAME or any(
            m.timestamp is not None and start <= m.timestamp < end for m in effective
        )
        if found is not expected or not in_place or result.outcome not in _expected_outcomes(found):
            wrong.append(name)
        style = "green" if name not in wrong else "red"
        table.add_row(
            name,
            str(expected),
            f"[{style}]{found}[/{style}]",
            str(result.decision.action) if effective else "",
            "; ".join(described(m) for m in effective) or (result.reason or ""),
        )
    out.print(table)
    frame = sum(1 for v in layout.videos.expected.values() if v is VideoFinding.FRAME)
    vpdq = sum(1 for v in layout.videos.expected.values() if v is VideoFinding.VPDQ)
    err.print(
        f"videos: {len(layout.videos.expected) - len(wrong)}/{len(layout.videos.expected)} "
        f"clips as expected ({frame} showing a known image for "
        f"{layout.videos.known_between[1] - layout.videos.known_between[0]:g} s, found by "
        f"frame matching; {vpdq} re-encoded copy of a listed clip, found by vPDQ; "
        "the other clip not matched)"
    )
    if wrong:
        err.print(f"[red]demo check failed[/red]: clips not found as expected: {wrong}")
    return bool(wrong)


def _expected_outcomes(found: VideoFinding) -> set[Outcome]:
    """A clip found must be ``matched``; the other one ``no_match``, or ``not_answered``
    when the review demo's remote services took no video (PhotoDNA takes images only):
    a check that did not happen is never reported as no match."""
    if found is VideoFinding.NONE:
        return {Outcome.NO_MATCH, Outcome.NOT_ANSWERED}
    return {Outcome.MATCHED}


def _serve(
    demo_home: Settings,
    passwords: dict[str, str],
    cybertipline: FakeCyberTipline | None,
    xsd_given: Path | None,
    example: Case | None,
    remote_lines: Sequence[str] = (),
    clip: Case | None = None,
) -> None:
    import uvicorn  # noqa: PLC0415 - only --serve needs the server

    from hashguard.web.app import create_app  # noqa: PLC0415

    base = f"http://{demo_home.host}:{demo_home.port}"
    err.print("")
    err.print("[bold]review demo[/bold]: accounts (the passwords are shown only now)")
    for name, password in passwords.items():
        err.print(f"  {name:<14} password {escape(password)}")
    err.print(f"sign in at {base}/ui/login and work the queue at {base}/ui/")
    err.print(
        f"effects: exact copies move to {demo_home.resolved_quarantine_dir} (a false "
        "positive puts them back); false positives' hashes go to the allow bank "
        f"{demo_home.review_allow_bank!r}; webhooks and the list's feedback are printed "
        f"below as they arrive; the audit log is at {base}/ui/audit (as demo-auditor)."
    )
    for line in [*_walkthrough(base, example, cybertipline, xsd_given), *remote_lines]:
        err.print(escape(line), highlight=False)
    if clip is not None:
        err.print(
            f"a video: case #{clip.id} at {base}/ui/cases/{clip.id} shows the clip as a "
            "contact sheet of blurred greyscale frames, the matched frame marked with its "
            "time; each frame is revealed on its own (as demo-reviewer), and counts as one "
            "reveal",
            highlight=False,
        )
    err.print("Ctrl-C stops.")
    uvicorn.run(
        create_app(demo_home),
        host=demo_home.host,
        port=demo_home.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def _walkthrough(
    base: str, example: Case | None, cybertipline: FakeCyberTipline | None, xsd_given: Path | None
) -> list[str]:
    """The steps from a scanned case to its report, feedback and referral, each with
    where it shows."""
    case = (
        f"case #{example.id} ({Path(example.sources[0].path or '').name}) at "
        f"{base}/ui/cases/{example.id}"
        if example is not None and example.sources
        else "an edited copy's case"
    )
    lines = [
        "walkthrough: one case from scan to report; each step shows on the case page and "
        f"in the audit log ({base}/ui/audit, as demo-auditor)",
        f"  1. as demo-reviewer, open {case} and confirm it",
        "  2. as demo-lead, confirm it again: the case is confirmed (case.confirmed is "
        "printed below)",
    ]
    if cybertipline is not None:
        lines += [
            "  3. the report: within seconds the reports job (auto_report on) files it "
            f"against a fake CyberTipline at {cybertipline.base_url} (NCMEC's test "
            "environment as far as hashguard knows); the case page's Report (as "
            "demo-lead) shows the NCMEC report id and the receipt, and report.filed is "
            "printed below (`hashguard reports list` with HASHGUARD_HOME set as above)",
            "  4. evidence on hold: the receipt puts the case's evidence on a one-year "
            "legal hold (REPORT Act): the case page's Evidence says legal hold",
        ]
    else:
        where = f"{xsd_given} is not a file" if xsd_given else "none found"
        lines += [
            f"  3-4. reports: off ({where}): NCMEC's XSD is not part of hashguard and no "
            "report leaves unvalidated; pass --ncmec-xsd PATH (or set "
            "HASHGUARD_DEMO_NCMEC_XSD) to file reports against a fake CyberTipline and "
            "hold the evidence",
        ]
    lines += [
        "  5. feedback: the lead's confirmation sends affirmative feedback to the list "
        f"the match came from (exchange {EXCHANGE}, a fake NCMEC hash sharing): printed "
        "below as it arrives, and delivered under the case page's Feedback to the lists",
        "  6. a referral: on the case page, open a referral task for "
        f"{DEMO_HOTLINE['name']!r}, then mark it done with any reference (say DEMO-1)",
        "  the audit log then holds case.confirmed, report.finished, evidence.preserved, "
        "exchange.feedback_sent, referral.opened and referral.done",
    ]
    return lines
