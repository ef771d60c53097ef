"""Remote matching for one file: the services asked concurrently within a time budget,
late answers handed on, broken adapters contained, and matchers built through the real
registry from explicit entry points."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.plugins import GROUP, PluginError, Registry
from hashguard.remote.arachnid import ArachnidShieldMatcher
from hashguard.remote.base import RemoteMatcher
from hashguard.remote.photodna import PhotoDnaMatcher
from hashguard.remote.service import RemoteMatching, configure_remote
from tests.fakes import benign_image, signals_of
from tests.fakes.arachnid import FakeArachnidShield
from tests.fakes.photodna import FakePhotoDna

KEY = "canary-service-key-77aa"
USERNAME = "canary-service-user"
PASSWORD = "canary-service-password-1d9"
FAST = {"retries": 0, "backoff_seconds": 0.01, "requests_per_second": 1000}

POINTS = [
    EntryPoint(name="photodna", value="hashguard.remote.photodna:PhotoDnaMatcher", group=GROUP),
    EntryPoint(
        name="arachnid_shield",
        value="hashguard.remote.arachnid:ArachnidShieldMatcher",
        group=GROUP,
    ),
    EntryPoint(name="md5", value="hashguard.hashing.hasher:Md5Hasher", group=GROUP),
]
SECRETS = {
    "photodna": {"subscription_key": SecretStr(KEY)},
    "arachnid_shield": {"username": SecretStr(USERNAME), "password": SecretStr(PASSWORD)},
}


@pytest.fixture
def photodna_fake() -> Iterator[FakePhotoDna]:
    with FakePhotoDna(KEY) as running:
        yield running


@pytest.fixture
def arachnid_fake() -> Iterator[FakeArachnidShield]:
    with FakeArachnidShield(USERNAME, PASSWORD) as running:
        yield running


@pytest.fixture
def sample() -> tuple[bytes, FileSignals]:
    data = benign_image()
    return data, signals_of(data)


def photodna(fake: FakePhotoDna, timeout: float = 2.0) -> PhotoDnaMatcher:
    settings = {"base_url": fake.url, "allow_media": True, "timeout_seconds": timeout, **FAST}
    matcher = PhotoDnaMatcher.configure(settings, SECRETS["photodna"])
    assert isinstance(matcher, PhotoDnaMatcher)
    return matcher


def arachnid(fake: FakeArachnidShield) -> ArachnidShieldMatcher:
    settings = {"base_url": fake.url, "timeout_seconds": 2.0, **FAST}
    matcher = ArachnidShieldMatcher.configure(settings, SECRETS["arachnid_shield"])
    assert isinstance(matcher, ArachnidShieldMatcher)
    return matcher


def test_a_slow_service_costs_its_own_answer_only_and_never_more_than_the_budget(
    photodna_fake: FakePhotoDna,
    arachnid_fake: FakeArachnidShield,
    sample: tuple[bytes, FileSignals],
) -> None:
    photodna_fake.behaviour = "timeout"  # hangs well past the budget (and its own timeout)
    arachnid_fake.behaviour = "match"
    with RemoteMatching([photodna(photodna_fake), arachnid(arachnid_fake)], 0.5) as remote:
        started = time.monotonic()
        slow, fast = remote.match(*sample)
        elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 1.0, "the budget bounds the wait (plus scheduling slack)"
    assert (slow.service, slow.status) == ("photodna", RemoteStatus.NOT_ANSWERED)
    assert slow.reason == "time budget of 0.5 s spent"
    assert (fast.service, fast.status) == ("arachnid_shield", RemoteStatus.MATCHED)
    assert fast.seconds < 0.5


def test_services_are_asked_concurrently(
    photodna_fake: FakePhotoDna,
    arachnid_fake: FakeArachnidShield,
    sample: tuple[bytes, FileSignals],
) -> None:
    photodna_fake.delay_seconds = arachnid_fake.delay_seconds = 0.5
    with RemoteMatching([photodna(photodna_fake), arachnid(arachnid_fake)], 5) as remote:
        started = time.monotonic()
        results = remote.match(*sample)
        elapsed = time.monotonic() - started
    assert [r.status for r in results] == [RemoteStatus.NO_MATCH, RemoteStatus.NO_MATCH]
    assert elapsed < 0.9, "one after the other would take 1 s or more"


def test_a_late_match_is_handed_on_not_lost(
    photodna_fake: FakePhotoDna, sample: tuple[bytes, FileSignals]
) -> None:
    photodna_fake.behaviour = "match"
    photodna_fake.delay_seconds = 0.5
    late: list[RemoteResult] = []
    arrived = threading.Event()

    def on_late(result: RemoteResult) -> None:
        late.append(result)
        arrived.set()

    with RemoteMatching([photodna(photodna_fake)], 0.1, on_late=on_late) as remote:
        (result,) = remote.match(*sample)
        assert result.status is RemoteStatus.NOT_ANSWERED
        assert arrived.wait(5)
    (answer,) = late
    assert (answer.status, answer.classification) == (RemoteStatus.MATCHED, "test")


def test_a_late_answer_goes_to_the_file_it_belongs_to_and_settle_waits_for_it(
    photodna_fake: FakePhotoDna, sample: tuple[bytes, FileSignals]
) -> None:
    photodna_fake.behaviour = "match"
    photodna_fake.delay_seconds = 0.5
    late: dict[str, list[RemoteResult]] = {"a": [], "b": []}
    with RemoteMatching([photodna(photodna_fake)], 0.1) as remote:
        (first,) = remote.match(*sample, on_late=late["a"].append)
        (second,) = remote.match(*sample, on_late=late["b"].append)
        assert first.status is second.status is RemoteStatus.NOT_ANSWERED
        assert remote.settle(timeout=5), "both calls answered within their timeout"
        # handed on before settle returns: nothing is left to wait for
        assert [len(v) for v in late.values()] == [1, 1]
        assert remote.settle(timeout=0)
    assert all(r[0].status is RemoteStatus.MATCHED for r in late.values())


class Broken(RemoteMatcher):
    """An adapter that breaks the no-raise contract (a third-party plugin's bug)."""

    name: ClassVar[str] = "broken"
    description: ClassVar[str] = "raises"

    def match(self, data: bytes, signals: FileSignals) -> RemoteResult:
        raise RuntimeError(f"failed with {KEY}")


def test_an_adapter_that_raises_is_not_answered_without_its_message(
    arachnid_fake: FakeArachnidShield, sample: tuple[bytes, FileSignals]
) -> None:
    broken = Broken.configure({"base_url": "http://127.0.0.1:9"}, {})
    with RemoteMatching([broken, arachnid(arachnid_fake)], 2) as remote:
        failed, answered = remote.match(*sample)
    assert (failed.service, failed.status) == ("broken", RemoteStatus.NOT_ANSWERED)
    assert failed.reason == "broken failed (RuntimeError)"
    assert KEY not in repr(failed)
    assert answered.status is RemoteStatus.NO_MATCH


def test_no_matchers_no_results(sample: tuple[bytes, FileSignals]) -> None:
    with RemoteMatching([], 1) as remote:
        assert remote.match(*sample) == ()


def test_the_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RemoteMatching([], 0)


def test_a_closed_service_refuses_files(
    arachnid_fake: FakeArachnidShield, sample: tuple[bytes, FileSignals]
) -> None:
    remote = RemoteMatching([arachnid(arachnid_fake)], 1)
    remote.close()
    with pytest.raises(RuntimeError, match="closed"):
        remote.match(*sample)


# -- building matchers through the registry -----------------------------------------------


def configs(photodna_url: str, arachnid_url: str) -> dict[str, dict[str, Any]]:
    return {
        "photodna": {"base_url": photodna_url, "allow_media": True, **FAST},
        "arachnid_shield": {"base_url": arachnid_url, **FAST},
    }


def test_configured_through_the_registry_from_entry_points(
    photodna_fake: FakePhotoDna,
    arachnid_fake: FakeArachnidShield,
    sample: tuple[bytes, FileSignals],
) -> None:
    registry = Registry.load(points=POINTS)
    matchers = configure_remote(registry, configs(photodna_fake.url, arachnid_fake.url), SECRETS)
    assert [type(m) for m in matchers] == [PhotoDnaMatcher, ArachnidShieldMatcher]
    photodna_fake.behaviour = arachnid_fake.behaviour = "match"
    with RemoteMatching(matchers, 5) as remote:
        results = remote.match(*sample)
    assert [(r.service, r.status, r.method) for r in results] == [
        ("photodna", RemoteStatus.MATCHED, "media"),
        ("arachnid_shield", RemoteStatus.MATCHED, "hash"),
    ]


def test_an_adapter_not_enabled_is_refused() -> None:
    registry = Registry.load(["photodna"], points=POINTS)
    with pytest.raises(PluginError, match="'arachnid_shield' is installed but not enabled"):
        configure_remote(registry, configs("http://127.0.0.1:9", "http://127.0.0.1:9"), SECRETS)


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ({"nope": {}}, "no remote_matcher adapter named 'nope'"),
        ({"md5": {}}, "no remote_matcher adapter named 'md5'"),
        ({"photodna": {"timeout_seconds": -1}}, "photodna: invalid settings: timeout_seconds"),
        ({"photodna": {"surely_not_a_setting": 1}}, "photodna: invalid settings"),
    ],
)
def test_misconfiguration_is_refused_by_name(
    configured: dict[str, dict[str, Any]], message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        configure_remote(Registry.load(points=POINTS), configured, SECRETS)


def test_missing_credentials_are_named_never_shown() -> None:
    secrets = {"arachnid_shield": {"username": SecretStr(USERNAME)}}
    with pytest.raises(PluginError) as raised:
        configure_remote(
            Registry.load(points=POINTS), {"arachnid_shield": {}, "photodna": {}}, secrets
        )
    assert str(raised.value) == "arachnid_shield: missing credentials: password"
    assert USERNAME not in str(raised.value)
