"""A PDQ lookup must not spell out a listed hash (issue 19, item 3).

The probe: from a near copy at distance 16, look up its hash and its 256 one-bit flips;
a flip that lowers the distance names a bit where the copy differs from the listed hash,
so two calls and 257 hashes gave the exact listed hash, unseen by the rate limit.
``reconstruct`` below is that attacker. Against a token the server trusts with
distances (and a budget wide enough) it still works, which shows it is a faithful
attacker; with the defaults it recovers nothing, the call is refused (429) and the
probing is audited.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.audit import AuditAction
from hashguard.domain.tokens import Scope
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web.probing import ProbeGuard
from tests.api_support import assert_problem, bearer, metric, wait_until
from tests.server import running_server

BITS = 256


def _pdq(seed: int) -> str:
    output = hash_data(
        encode(generate(Kind.PHOTO, seed, 320, 240)), HashOptions(max_pixels=50_000_000)
    )
    assert output.signals is not None
    return output.signals.pdq[0].value


#: the "listed" hash: a benign generated photo's PDQ hash
LISTED = _pdq(11)


def flip(value: str, *bits: int) -> str:
    number = int(value, 16)
    for bit in bits:
        number ^= 1 << bit
    return f"{number:064x}"


#: the attacker's near copy: 16 bits away from the listed hash
NEAR = flip(LISTED, *random.Random(5).sample(range(BITS), 16))

Lookup = Callable[[Sequence[str]], "httpx.Response"]


def reconstruct(lookup: Lookup, near: str) -> str | None:
    """The attacker: look up ``near`` and its 256 one-bit flips (2 calls, 257 hashes)
    and read the listed hash from the distances. None when the answers do not allow it
    (no distance, refused)."""
    first = lookup([near])
    answer = lookup([flip(near, bit) for bit in range(BITS)])
    if first.status_code != 200 or answer.status_code != 200:
        return None
    base = _distance(first.json()["results"][0])
    if base is None:
        return None
    wrong = []
    for bit, result in enumerate(answer.json()["results"]):
        distance = _distance(result)
        if distance is None:
            return None
        if distance < base:
            wrong.append(bit)
    return flip(near, *wrong)


def _distance(result: dict[str, Any]) -> int | None:
    matches = result["matches"]
    return matches[0]["distance"] if matches else None


def _token(settings: Settings) -> tuple[int, str]:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        token, secret = store.tokens.create("prober", [Scope.LOOKUP])
    return token.id, secret


def _listed(http: httpx.Client) -> None:
    assert http.post("/v1/banks", json={"name": "known"}).status_code == 201
    added = http.post(
        "/v1/banks/known/entries", json={"entries": [{"algorithm": "pdq", "hash": LISTED}]}
    )
    assert added.status_code == 200, added.text
    wait_until(
        lambda: http.post("/v1/lookup", json={"hashes": [{"algorithm": "pdq", "hash": LISTED}]}),
        lambda answer: bool(answer.json()["results"][0]["matches"]),
    )


def _lookup(http: httpx.Client, secret: str) -> Lookup:
    def call(hashes: Sequence[str]) -> httpx.Response:
        body = {"hashes": [{"algorithm": "pdq", "hash": value} for value in hashes]}
        return http.post("/v1/lookup", json=body, headers=bearer(secret))

    return call


def _probing_events(settings: Settings) -> list[Any]:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        return [e for e in store.audit.events() if e.action == AuditAction.LOOKUP_PROBING]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_attacker_reads_the_hash_where_distances_are_given(api_settings: Settings) -> None:
    """The attacker is faithful: given distances and no probing budget, it succeeds."""
    token_id, secret = _token(api_settings)
    settings = api_settings.model_copy(
        update={"lookup_distance_tokens": (token_id,), "lookup_probe_budget": 10_000}
    )
    admin = bearer(_admin(settings))
    with (
        running_server(settings) as base,
        httpx.Client(base_url=base, headers=admin, timeout=30) as http,
    ):
        _listed(http)
        assert reconstruct(_lookup(http, secret), NEAR) == LISTED


def test_a_lookup_does_not_spell_out_a_listed_hash(api_settings: Settings) -> None:
    token_id, secret = _token(api_settings)
    admin = bearer(_admin(api_settings))
    with (
        running_server(api_settings) as base,
        httpx.Client(base_url=base, headers=admin, timeout=30) as http,
    ):
        _listed(http)
        lookup = _lookup(http, secret)
        # the near copy matches, without saying how far it is
        near = lookup([NEAR]).json()["results"][0]["matches"]
        assert [(m["bank"], m["distance"]) for m in near] == [("known", None)]
        assert reconstruct(lookup, NEAR) is None
        # the flips were refused whole, as a probe; the refusal is counted and audited
        refused = assert_problem(lookup([flip(NEAR, bit) for bit in range(BITS)]), 429)
        assert "close" in refused["detail"]
        assert metric(http.get("/metrics").text, "hashguard_rejected_total", reason="probing") >= 2
        events = _probing_events(api_settings)
        assert len(events) == 1  # one alert a minute, however many calls were refused
        assert events[0].actor == f"token:{token_id}"
        assert events[0].subject == f"token:{token_id}"
        assert events[0].details["budget"] == api_settings.lookup_probe_budget
        assert not any(LISTED in str(e.details) for e in events)
        # the token still looks up what ordinary clients look up
        assert lookup([LISTED] * 50 + [NEAR] * 50).status_code == 200
        far = [f"{random.Random(i).getrandbits(BITS):064x}" for i in range(500)]
        assert lookup(far).status_code == 200


def _admin(settings: Settings) -> str:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        return store.tokens.create("admin", [Scope.ADMIN])[1]


# -- the guard itself (a set clock) ---------------------------------------------------------


def test_close_lookups_have_a_budget_per_window() -> None:
    now = [1000.0]
    guard = ProbeGuard(radius=16, budget=4, window_seconds=60, memory=100, clock=lambda: now[0])
    anchor = LISTED
    assert not guard.check(1, [(anchor, True)]).refused  # a first match is free
    assert guard.check(1, [(anchor, True)] * 10).close == 0  # repeats are free
    verdict = guard.check(1, [(flip(anchor, b), b % 2 == 0) for b in range(3)])
    assert (verdict.close, verdict.used, verdict.refused) == (3, 3, False)
    refused = guard.check(1, [(flip(anchor, b), True) for b in range(3, 5)])
    assert (refused.refused, refused.alert) == (True, True)
    again = guard.check(1, [(flip(anchor, b), True) for b in range(3, 5)])
    assert (again.refused, again.alert) == (True, False)  # one alert a minute
    assert not guard.check(2, [(flip(anchor, b), True) for b in range(3, 5)]).refused  # per token
    far = flip(anchor, *range(0, 64))  # 64 bits away: not close
    assert guard.check(1, [(far, True)]).close == 0
    now[0] += 61  # the window has passed: the budget is back
    assert not guard.check(1, [(flip(anchor, b), True) for b in range(3, 7)]).refused


def test_a_video_is_one_close_lookup_when_a_fresh_frame_nears_an_earlier_anchor() -> None:
    guard = ProbeGuard(radius=16, budget=2, window_seconds=60, memory=100, clock=lambda: 0.0)
    video = [LISTED, flip(LISTED, 1), flip(LISTED, 2, 3)]  # one video's frames lie close
    assert guard.check(1, [], videos=[(video, True)]).close == 0  # never against each other
    assert guard.check(1, [], videos=[(video, True)]).close == 0  # a repeat
    far = [flip(LISTED, *range(64)), flip(LISTED, *range(64, 128))]
    assert guard.check(1, [], videos=[(far, False)]).close == 0
    walked = [flip(LISTED, 40, 41), *video[1:]]
    verdict = guard.check(1, [], videos=[(walked, False), ([flip(LISTED, 50)], False)])
    assert (verdict.close, verdict.used, verdict.refused) == (2, 2, False)
    refused = guard.check(1, [], videos=[([flip(LISTED, 60)], False)])
    assert (refused.refused, refused.alert) == (True, True)
    # a matched PDQ lookup is an anchor for videos too, and a video's frames for PDQ
    assert guard.check(2, [(LISTED, True)]).close == 0
    frame = flip(LISTED, *range(10))
    assert guard.check(2, [], videos=[([frame], True)]).close == 1
    assert guard.check(2, [(flip(frame, *range(10, 20)), False)]).close == 1  # 20 from LISTED


def test_the_guard_is_quick_on_a_full_batch() -> None:
    """1,000 PDQ lookups against 4,096 remembered ones: numpy, not a Python loop."""
    rng = random.Random(1)
    guard = ProbeGuard(radius=16, budget=10_000, window_seconds=60, memory=4096)
    for _ in range(4):
        guard.check(1, [(f"{rng.getrandbits(BITS):064x}", True) for _ in range(1024)])
    started = time.perf_counter()
    guard.check(1, [(f"{rng.getrandbits(BITS):064x}", True) for _ in range(1000)])
    assert time.perf_counter() - started < 2.0
