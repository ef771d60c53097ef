"""Shared helpers of the API tests: tokens made in the real store, problem checks, metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web.problems import PROBLEM_JSON

T = TypeVar("T")


def make_token(
    settings: Settings,
    *scopes: Scope,
    expires_at: datetime | None = None,
    revoked: bool = False,
    name: str = "test",
) -> str:
    """The secret of a new token in the server's store (made before the server sees it)."""
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        token, secret = store.tokens.create(name, scopes, expires_at=expires_at)
        if revoked:
            store.tokens.revoke(token.id)
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type == PROBLEM_JSON, response.headers.get("content-type")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus exposition ``text`` (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def wait_until(probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 20.0) -> T:
    """Call ``probe`` until ``done`` accepts its value; the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def hex_variants(values: Iterable[str]) -> set[str]:
    """Each hash as lower and upper case hex, the forms a leak could take."""
    return {form for value in values for form in (value.lower(), value.upper())}
