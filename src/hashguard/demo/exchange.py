"""The review demo's list through an exchange: a loopback fake of NCMEC's hash sharing
serves the demo list's entries, the ``ncmec`` exchange (NCMEC's test environment as far
as hashguard knows, credentials sealed) syncs them into the demo bank with feedback on,
and each feedback the fake receives is said, so a final review decision is seen going
back to the list.

Only the review demo (``--serve``) takes this path: ``make demo`` decides nothing, so
no feedback would ever leave, and it keeps showing the other way a list arrives,
imported from a file.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from xml.etree import ElementTree as ET

from hashguard.banks.exchanges.sync import build_source, sync_exchange
from hashguard.demo.hashsharing import DEFAULT_REASONS, NAMESPACE, FakeEntry, FakeNcmec
from hashguard.demo.run import DEMO_ACTOR, DEMO_BANK, DEMO_POLICY, DemoLayout
from hashguard.domain.exchanges import SyncReport
from hashguard.keys import MasterKey
from hashguard.plugins import Registry
from hashguard.services import exchanges as exchange_service
from hashguard.services.banks import BankChanges, configure_bank
from hashguard.store import Store

#: the demo's exchange (its bank is DEMO_BANK)
EXCHANGE = "demo-ncmec"
#: the made-up NCMEC member that "listed" the demo's entries
MEMBER_ID = 9999
#: what a false positive is sent with: one of the fake's reasons (NCMEC takes only its own)
FALSE_POSITIVE_REASON = "Not CSAM"
#: how long before the demo starts its entries are stamped (NCMEC's entries of the last
#: minutes wait for the next sync)
LISTED_BEFORE = timedelta(days=1)


def demo_entries(layout: DemoLayout, *, at: datetime) -> list[FakeEntry]:
    """The demo list as NCMEC would list it: one image entry per known image (the
    layout's made-up entry ids), with its MD5 and PDQ hashes."""
    return [
        FakeEntry(
            member_id=MEMBER_ID,
            entry_id=entry_id,
            timestamp=at - LISTED_BEFORE,
            classification="A1",
            fingerprints=dict(prints),
        )
        for entry_id, prints in sorted(layout.known.items())
    ]


def describe_feedback(
    where: tuple[str, ...], body: ET.Element, reasons: Mapping[str, str] = DEFAULT_REASONS
) -> str:
    """One line about a feedback submission the fake received: the verdict, the
    fingerprint type and the entry (never a hash: the submission holds none)."""
    member, entry_id, kind = where
    names = {guid: name for name, guid in reasons.items()}
    if body.find(f"{{{NAMESPACE}}}affirmative") is not None:
        verdict = "affirmative"
    else:
        guids = [g.text or "" for g in body.iter(f"{{{NAMESPACE}}}guid")]
        verdict = "negative (" + ", ".join(names.get(g, g) for g in guids) + ")"
    return f"{verdict} on {kind} of entry {member}:{entry_id}"


def start_fake(layout: DemoLayout, *, at: datetime, say: Callable[[str], None]) -> FakeNcmec:
    """The fake hash sharing on 127.0.0.1 with fresh random credentials, serving the
    demo list and saying each feedback it receives; ``stop()`` it."""
    return FakeNcmec(
        demo_entries(layout, at=at),
        username=f"demo-{secrets.token_hex(4)}",
        password=secrets.token_urlsafe(16),
        page_size=100,
        delay_seconds=0,
        on_feedback=lambda where, body: say(
            f"feedback to the list ({EXCHANGE}): {describe_feedback(where, body)}"
        ),
    ).start()


def add_and_sync(
    store: Store,
    registry: Registry,
    key: MasterKey,
    fake: FakeNcmec,
    *,
    at: datetime,
) -> SyncReport:
    """The ``ncmec`` exchange EXCHANGE reading ``fake`` (test environment, the
    credentials sealed with ``key``, feedback on), synced once into DEMO_BANK, which
    then gets DEMO_POLICY; every step audited. The sync's report (``ok`` false: the
    bank is empty)."""
    username, password = fake.credentials
    exchange_service.add_exchange(
        store,
        DEMO_ACTOR,
        EXCHANGE,
        adapter="ncmec",
        bank=DEMO_BANK,
        settings={
            "environment": "test_Industry",
            "base_url": fake.url,
            # the list begins shortly before its entries: no empty years to cross
            "start": (at - 2 * LISTED_BEFORE).isoformat(),
            "window_hours": 24 * 7,
            # the fake on loopback: no need to keep to NCMEC's pace
            "requests_per_second": 100,
            "retries": 0,
            "timeout_seconds": 10,
        },
        secrets={"username": username, "password": password},
        key=key,
        feedback=True,
        feedback_reason=FALSE_POSITIVE_REASON,
    )
    exchange = store.exchanges.get(EXCHANGE)
    source = build_source(registry, store, key, exchange)
    try:
        report = sync_exchange(store, exchange, source, actor=DEMO_ACTOR)
    finally:
        source.close()
    configure_bank(
        store,
        DEMO_ACTOR,
        DEMO_BANK,
        BankChanges(
            licence="test only",
            exact_action=DEMO_POLICY.exact_action,
            auto_max_distance=DEMO_POLICY.auto_max_distance,
            review_max_distance=DEMO_POLICY.review_max_distance,
        ),
    )
    return report
