"""The review demo's reports to NCMEC: a loopback fake CyberTipline and the report settings
that send to it, so a case two people confirmed is reported (auto_report) before the
person's eyes, its evidence held and the platform told (``report.filed``).

NCMEC's XSD is not part of hashguard (it is NCMEC's, fetched with credentials, never
vendored), and no report leaves unvalidated: the demo files reports only with a copy of
it — given by ``--ncmec-xsd`` (or ``HASHGUARD_DEMO_NCMEC_XSD``), or found in the project's
shared reference beside the checkout. The fake serves that copy at ``GET /xsd`` and the
demo fetches it from there, as ``hashguard reports schema --fetch`` does from NCMEC.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import hashguard
from hashguard.demo.cybertipline import FakeCyberTipline
from hashguard.keys import MasterKey
from hashguard.permissions import private_file
from hashguard.plugins import Registry
from hashguard.reports import service
from hashguard.reports.ncmec import CyberTiplineSink
from hashguard.store import Store

#: where a source checkout finds the project's shared reference copy of NCMEC's XSD
REFERENCE_XSD = Path("shared/reference/ncmec/cyber_tipline.xsd")
#: the demo's reporting person and company (made-up values)
DEMO_REPORTER = {
    "first_name": "Demo",
    "last_name": "Reporter",
    "email": "trust-safety@demo.example",
    "company_template": "hashguard demo (generated benign images, a fake CyberTipline)",
    "legal_url": "https://demo.example/legal",
    "platform": "hashguard demo",
}
ACTOR = "system:demo"


def find_xsd(given: Path | None) -> Path | None:
    """NCMEC's XSD for the demo: ``given``, else the shared reference beside a source
    checkout (``../shared/reference/ncmec/``), else ``None``."""
    if given is not None:
        return given if given.is_file() else None
    checkout = Path(hashguard.__file__).resolve().parents[2]
    for folder in (checkout, *checkout.parents[:2]):
        candidate = folder / REFERENCE_XSD
        if candidate.is_file():
            return candidate
    return None


def start_fake(xsd: Path) -> FakeCyberTipline:
    """The fake CyberTipline on 127.0.0.1 with fresh random credentials, validating
    against ``xsd``; ``stop()`` it."""
    return FakeCyberTipline(
        username=f"demo-{secrets.token_hex(4)}", password=secrets.token_urlsafe(16), xsd=xsd
    ).start()


def configure(
    store: Store,
    registry: Registry,
    master_key: Callable[[], MasterKey],
    fake: FakeCyberTipline,
    *,
    home: Path,
    at: datetime,
) -> Path:
    """Report settings that send to ``fake`` (NCMEC's test environment as far as the
    reports know), the credentials sealed, and the schema fetched from it; the schema's
    path."""
    username, password = fake.credentials
    service.change_settings(
        store,
        master_key,
        reporter=DEMO_REPORTER,
        sink_settings={
            "environment": "test",
            "test_url": fake.base_url,
            # the fake on loopback: no need to keep to NCMEC's pace
            "requests_per_second": 100,
        },
        secrets={"username": username, "password": password},
        actor=ACTOR,
        at=at,
    )
    sink = service.open_sink(store, registry, master_key)
    try:
        assert isinstance(sink, CyberTiplineSink)
        data = sink.fetch_schema()
    finally:
        sink.close()
    path = private_file(home / "reports" / "cyber_tipline.xsd")
    path.write_bytes(data)
    service.change_settings(
        store,
        master_key,
        reporter={},
        sink_settings={"schema_file": str(path)},
        secrets={},
        actor=ACTOR,
        at=at,
    )
    return path
