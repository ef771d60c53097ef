"""Remote matching for one file: every configured service asked at once, within a budget.

A service that has not answered when the budget is spent is ``not_answered`` for this
file; its call goes on in the background until its own timeout, and a late answer is
logged and handed to the ``on_late`` given with the file (the pipeline then records
the file's result again: a late match must not be lost) and to the ``on_late`` given
to ``RemoteMatching``, if any. ``settle`` waits for the calls still in flight (a
command that is about to exit calls it first).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any

from pydantic import SecretStr

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.keys import MasterKey
from hashguard.plugins import Adapter, AdapterKind, PluginError, Registry
from hashguard.remote.base import RemoteMatcher, sends_pdq
from hashguard.remote.secrets import SealedSecrets, matcher_secrets
from hashguard.settings import Settings

log = logging.getLogger(__name__)

#: in a remote matcher's settings: its adapter, when it is configured under another name
ADAPTER_KEY = "adapter"


class RemoteMatching:
    """The configured remote matchers, consulted concurrently for one file.

    ``match`` returns one result per matcher, in the matchers' order, and never blocks
    longer than ``budget_seconds``. Thread-safe: several files may be matched at once.
    """

    def __init__(
        self,
        matchers: Sequence[RemoteMatcher],
        budget_seconds: float,
        *,
        on_late: Callable[[RemoteResult], None] | None = None,
    ) -> None:
        if budget_seconds <= 0:
            raise ValueError("budget_seconds must be positive")
        self.matchers = tuple(matchers)
        self.budget_seconds = budget_seconds
        self._on_late = on_late
        self._closed = threading.Event()
        self._in_flight: set[Future[RemoteResult]] = set()
        self._in_flight_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            # calls still running past a budget keep their thread; each matcher's
            # ``concurrency`` spare lets the next files start at once
            max_workers=max(1, sum(m.concurrency for m in self.matchers)),
            thread_name_prefix="hashguard-remote",
        )

    @property
    def review_thresholds(self) -> dict[str, float]:
        """Each matcher's classifier review threshold, by the name its answers carry."""
        return {m.label: t for m in self.matchers if (t := m.review_threshold()) is not None}

    @property
    def wants_media(self) -> bool:
        """Whether any matcher may send a file's bytes (else hashes are enough)."""
        return any(m.options.allow_media for m in self.matchers)

    def match(
        self,
        data: bytes,
        signals: FileSignals,
        *,
        on_late: Callable[[RemoteResult], None] | None = None,
    ) -> tuple[RemoteResult, ...]:
        """One result per matcher; a matcher still busy when the budget is spent is
        ``not_answered`` here, and its answer, when it comes, goes to ``on_late``."""
        if not self.matchers:
            return ()
        if self._closed.is_set():
            raise RuntimeError("RemoteMatching is closed")
        started = time.monotonic()
        futures = [self._executor.submit(_ask, m, data, signals) for m in self.matchers]
        wait(futures, timeout=self.budget_seconds)
        results = []
        for matcher, future in zip(self.matchers, futures, strict=True):
            if future.done():
                results.append(future.result())  # _ask never raises
                continue
            with self._in_flight_lock:
                self._in_flight.add(future)
            future.add_done_callback(partial(self._late, on_late))
            results.append(
                RemoteResult(
                    service=matcher.label,
                    status=RemoteStatus.NOT_ANSWERED,
                    # the call is in flight: whether media left is the adapter's choice
                    method="unknown",
                    reason=f"time budget of {self.budget_seconds:g} s spent",
                    seconds=time.monotonic() - started,
                )
            )
        return tuple(results)

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until every call that overran its budget has answered and its late
        answer has been handed on (at most ``timeout`` seconds; by default as long as
        the slowest matcher may take: its timeout for each try). True when none is
        left in flight."""
        if timeout is None:
            timeout = (
                max(
                    (m.options.timeout_seconds * (m.options.retries + 1) for m in self.matchers),
                    default=0.0,
                )
                + 1.0
            )
        deadline = time.monotonic() + timeout
        while True:
            with self._in_flight_lock:
                pending = list(self._in_flight)
            if not pending:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            wait(pending, timeout=left)
            time.sleep(0.01)  # the done callbacks run right after the futures finish

    def close(self) -> None:
        """Stop taking files and release the matchers' connections; calls still in
        flight end with their matcher's client."""
        self._closed.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for matcher in self.matchers:
            try:
                matcher.close()
            except Exception as exc:  # noqa: BLE001 - closing one must not stop the rest
                log.warning(
                    "closing remote matcher %s failed (%s)", matcher.label, type(exc).__name__
                )

    def __enter__(self) -> RemoteMatching:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _late(
        self, on_late: Callable[[RemoteResult], None] | None, future: Future[RemoteResult]
    ) -> None:
        try:
            if future.cancelled():
                return
            result = future.result()
            level = logging.WARNING if result.status is RemoteStatus.MATCHED else logging.INFO
            log.log(level, "%s answered %s after the time budget", result.service, result.status)
            if self._closed.is_set():
                return
            for handler in (on_late, self._on_late):
                if handler is None:
                    continue
                try:
                    handler(result)
                except Exception:
                    log.exception("the late-answer handler failed")
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(future)


def _ask(matcher: RemoteMatcher, data: bytes, signals: FileSignals) -> RemoteResult:
    """The matcher's answer; an adapter that breaks its no-raise contract is
    ``not_answered`` (named by exception type only: a message may carry a secret)."""
    started = time.monotonic()
    try:
        return matcher.match(data, signals)
    except Exception as exc:  # noqa: BLE001 - one broken adapter costs its own answer only
        log.warning("remote matcher %s raised %s", matcher.label, type(exc).__name__)
        return RemoteResult(
            service=matcher.label,
            status=RemoteStatus.NOT_ANSWERED,
            method="unknown",
            reason=f"{matcher.label} failed ({type(exc).__name__})",
            seconds=time.monotonic() - started,
        )


def configure_remote(
    registry: Registry,
    configs: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, SecretStr]],
) -> list[RemoteMatcher]:
    """One configured matcher per entry of ``configs`` (its name -> its settings),
    built through the registry, so an adapter that is not installed or not enabled is
    refused with ``PluginError``, as are invalid settings and missing credentials. The
    adapter is the entry's ``adapter`` setting, else its name (``remote.photodna``);
    ``secrets`` are by entry name."""
    matchers: list[RemoteMatcher] = []
    try:
        for name, settings in configs.items():
            matchers.append(_build(registry, name, settings, secrets.get(name, {})))
    except BaseException:
        for built in matchers:
            built.close()
        raise
    return matchers


def _build(
    registry: Registry, name: str, settings: Mapping[str, Any], secrets: Mapping[str, SecretStr]
) -> RemoteMatcher:
    rest = dict(settings)
    adapter = rest.pop(ADAPTER_KEY, name)
    if not isinstance(adapter, str):
        raise PluginError(f"remote.{name}: {ADAPTER_KEY} must be an adapter's name")
    try:
        matcher = remote_kind(registry, adapter).configure(rest, secrets)
    except PluginError as exc:
        if adapter == name:
            raise
        raise PluginError(f"remote.{name}: {exc}") from None
    if not isinstance(matcher, RemoteMatcher):
        raise PluginError(f"{name}: not a remote matcher")
    return matcher.labelled(name)


def remote_kind(registry: Registry, adapter: str) -> type[Adapter]:
    """The enabled adapter ``adapter`` configured under ``remote``: a remote matcher, or
    a classifier (``classify.base``: asked the same way, its answers only signals)."""
    try:
        return registry.get(adapter, AdapterKind.REMOTE_MATCHER)
    except PluginError:
        try:
            return registry.get(adapter, AdapterKind.CLASSIFIER)
        except PluginError:
            pass
        raise


def adapter_of(name: str, settings: Mapping[str, Any]) -> str:
    """The adapter of the remote matcher configured as ``name``."""
    return str(settings.get(ADAPTER_KEY, name))


def remote_matching(
    settings: Settings,
    registry: Registry,
    *,
    stored: SealedSecrets | None = None,
    master_key: Callable[[], MasterKey] | None = None,
) -> RemoteMatching | None:
    """The remote matchers the settings configure (``remote``), or None when there are
    none. Their credentials are the secrets sealed in ``stored`` (opened with
    ``master_key()``), else the deprecated plaintext ``remote_secrets`` of the settings
    (see ``remote.secrets``). ``PluginError`` names a misconfigured one."""
    if not settings.remote:
        return None
    secrets = matcher_secrets(
        settings.remote,
        plaintext=settings.remote_secrets,
        stored=stored,
        master_key=master_key,
    )
    matchers = configure_remote(registry, settings.remote, secrets)
    return RemoteMatching(matchers, settings.remote_budget_seconds)


def sends_pdq_hashes(remote: RemoteMatching | None) -> bool:
    """Whether a configured remote matcher is sent every file's PDQ hashes: then every
    file needs reference hashes (``HashOptions.also_reference``), as only those leave."""
    return remote is not None and sends_pdq(remote.matchers)
