"""The policy: distance bands, allow banks and shadow mode, from the pure function to the
store (SQLite and PostgreSQL), ``hashguard scan --json`` and POST /v1/scan."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.banks import BankEntry, BankKind
from hashguard.domain.matches import Match
from hashguard.domain.policy import (
    NO_MATCH,
    Action,
    BankPolicy,
    Decision,
    InvalidPolicy,
    decision_from_json,
    decision_to_json,
)
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.matching.matcher import Matcher
from hashguard.policy import REMOTE_ACTION, decide
from hashguard.scan.scanner import Scanner, prepare_run
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.store.banks import KEEP
from tests.cli import hashguard, json_lines, write_known_list
from tests.server import running_server

POLICY = BankPolicy(auto_max_distance=10, review_max_distance=20)


def pdq(bank: str, distance: int, **kw: object) -> Match:
    return Match(
        bank=bank,
        bank_kind=kw.pop("bank_kind", BankKind.KNOWN),  # type: ignore[arg-type]
        algorithm=Algorithm.PDQ,
        distance=distance,
        entry_id=None,
        category=None,
        **kw,  # type: ignore[arg-type]
    )


def exact(bank: str, **kw: object) -> Match:
    return Match(
        bank=bank,
        bank_kind=kw.pop("bank_kind", BankKind.KNOWN),  # type: ignore[arg-type]
        algorithm=Algorithm.MD5,
        distance=0,
        entry_id=None,
        category=None,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("match", "policy", "action", "in_rule"),
    [
        (exact("b"), POLICY, Action.ACT, "exact md5 match"),
        (exact("b"), BankPolicy(exact_action=Action.REVIEW), Action.REVIEW, "exact md5"),
        (pdq("b", 0), POLICY, Action.ACT, "band A"),
        (pdq("b", 10), POLICY, Action.ACT, "pdq distance 10 <= 10 (band A"),
        (pdq("b", 11), POLICY, Action.REVIEW, "pdq distance 11 <= 20, above 10 (band B"),
        (pdq("b", 20), POLICY, Action.REVIEW, "band B"),
        (pdq("b", 21), POLICY, Action.IGNORE, "beyond the review band (<= 20)"),
        # defaults: act <= 10, review up to whatever the bank's threshold let through
        (pdq("b", 10), BankPolicy(), Action.ACT, "band A"),
        (pdq("b", 31), BankPolicy(), Action.REVIEW, "<= the bank's threshold"),
        # PDQ never acts on its own
        (pdq("b", 0), BankPolicy(auto_max_distance=None), Action.REVIEW, "never acts"),
        (pdq("b", 0), BankPolicy(auto_max_distance=0, review_max_distance=0), Action.ACT, ""),
        (pdq("b", 1), BankPolicy(auto_max_distance=0, review_max_distance=0), Action.IGNORE, ""),
    ],
)
def test_bands(match: Match, policy: BankPolicy, action: Action, in_rule: str) -> None:
    decision = decide([match], [], {"b": policy})
    assert decision.action is action
    assert decision.bank == "b"
    assert decision.rule.startswith(f"{action}: bank b ")
    assert in_rule in decision.rule
    assert (decision.shadow, decision.shadow_decisions) == (False, ())


@pytest.mark.parametrize(
    ("matches", "action", "bank", "in_rule"),
    [
        ([], Action.IGNORE, None, "ignore: no match"),
        # allow banks decide nothing themselves
        ([exact("ok", bank_kind=BankKind.ALLOW)], Action.IGNORE, None, "no match"),
        (
            [exact("b", suppressed_by="ok"), exact("ok", bank_kind=BankKind.ALLOW)],
            Action.IGNORE,
            None,
            "matches of b suppressed by allow bank ok",
        ),
        (
            [pdq("b", 2, suppressed_by="ok"), pdq("c", 15)],
            Action.REVIEW,
            "c",
            "review: bank c pdq distance 15",
        ),
        # several banks: the strongest action wins
        ([pdq("b", 15), pdq("c", 3)], Action.ACT, "c", "band A"),
        ([pdq("b", 25), pdq("c", 15)], Action.REVIEW, "c", "band B"),
        # on a tie: exact before PDQ, then the nearer, then by name
        ([pdq("a", 1), exact("c")], Action.ACT, "c", "exact"),
        ([pdq("c", 5), pdq("b", 7), pdq("a", 9)], Action.ACT, "c", "distance 5"),
        ([pdq("c", 5), pdq("b", 5)], Action.ACT, "b", "distance 5"),
        # one bank, several matches: its strongest
        ([pdq("b", 25), pdq("b", 12), pdq("b", 8)], Action.ACT, "b", "distance 8"),
    ],
)
def test_allow_banks_and_several_banks(
    matches: list[Match], action: Action, bank: str | None, in_rule: str
) -> None:
    policies = dict.fromkeys(("a", "b", "c", "ok"), POLICY)
    decision = decide(matches, [], policies)
    assert (decision.action, decision.bank) == (action, bank)
    assert in_rule in decision.rule


def test_shadow_banks_are_recorded_and_never_acted_on() -> None:
    policies = {"live": POLICY, "trial": BankPolicy(shadow=True), "new": BankPolicy(shadow=True)}
    only_shadow = decide([pdq("trial", 3)], [], policies)
    assert only_shadow.action is Action.IGNORE
    assert only_shadow.shadow is True
    assert only_shadow.rule.startswith("ignore: only shadow banks matched; act: bank trial")
    (would,) = only_shadow.shadow_decisions
    assert (would.action, would.bank, would.shadow) == (Action.ACT, "trial", True)
    assert only_shadow.shadow_action is Action.ACT

    mixed = decide([pdq("trial", 3), pdq("live", 15), pdq("new", 20)], [], policies)
    assert (mixed.action, mixed.bank, mixed.shadow) == (Action.REVIEW, "live", False)
    assert [(d.bank, d.action) for d in mixed.shadow_decisions] == [
        ("new", Action.REVIEW),
        ("trial", Action.ACT),
    ]
    # a suppressed shadow match is not a shadow decision either
    suppressed = decide([exact("trial", suppressed_by="ok")], [], policies)
    assert (suppressed.action, suppressed.shadow_decisions) == (Action.IGNORE, ())


def test_remote_matches_go_to_review_and_banks_can_outrank_them() -> None:
    matched = RemoteResult(service="photodna", status=RemoteStatus.MATCHED, method="hash")
    silent = RemoteResult(service="arachnid", status=RemoteStatus.NOT_ANSWERED, method="media")
    decision = decide([], [matched, silent], {})
    assert REMOTE_ACTION is Action.REVIEW
    assert (decision.action, decision.bank) == (Action.REVIEW, "remote:photodna")
    assert "remote service photodna matched" in decision.rule
    assert decide([], [silent], {}) == NO_MATCH
    assert decide([exact("b")], [matched], {}).action is Action.ACT  # default policy


def test_a_paused_entry_goes_to_review_and_only_that_entry() -> None:
    flooding = replace(exact("b", entry_ref=7), entry_id="E-1")
    unnamed = pdq("b", 3, entry_ref=8)
    other = pdq("c", 4, entry_ref=9)
    policies = {"b": BankPolicy(), "c": BankPolicy()}
    # nothing paused: as before
    assert decide([flooding], [], policies).action is Action.ACT
    decision = decide([flooding], [], policies, paused={7})
    assert decision.action is Action.REVIEW
    assert decision.bank == "b"
    assert decision.rule == (
        "review: bank b entry E-1 is paused by the flood guard (it matched too many "
        "distinct items; would act: exact md5 match (exact matches: act))"
    )
    # an entry without the list's id is named by its reference, never by its hash
    assert "entry #8 is paused" in decide([unnamed], [], policies, paused={8}).rule
    # another entry of the file still acts
    both = decide([flooding, other], [], policies, paused={7})
    assert (both.action, both.bank) == (Action.ACT, "c")
    # a match that goes to review or is ignored anyway is judged as before
    review = pdq("b", 20, entry_ref=7)
    assert decide([review], [], policies, paused={7}) == decide([review], [], policies)
    far = pdq("b", 40, entry_ref=7)
    strict = {"b": BankPolicy(review_max_distance=30)}
    assert decide([far], [], strict, paused={7}).action is Action.IGNORE
    # a shadow bank never acts: its would-be decision is recorded as before
    shadow = {"b": BankPolicy(shadow=True)}
    assert decide([flooding], [], shadow, paused={7}) == decide([flooding], [], shadow)
    # remote matches have no entry: unaffected
    remote = RemoteResult(service="photodna", status=RemoteStatus.MATCHED, method="hash")
    assert decide([], [remote], {}, paused={7}).action is REMOTE_ACTION


def test_decision_json_round_trip_and_policy_validation() -> None:
    decision = decide(
        [pdq("trial", 3), pdq("live", 15)], [], {"live": POLICY, "trial": BankPolicy(shadow=True)}
    )
    assert decision_from_json(decision_to_json(decision)) == decision
    assert decision_to_json(NO_MATCH) == {
        "action": "ignore",
        "rule": "ignore: no match",
        "bank": None,
        "shadow": False,
        "shadow_decisions": [],
    }
    # band A comes first: a review limit below the auto limit leaves band B empty
    upside_down = {"b": BankPolicy(auto_max_distance=12, review_max_distance=11)}
    assert decide([pdq("b", 12)], [], upside_down).action is Action.ACT
    assert decide([pdq("b", 13)], [], upside_down).action is Action.IGNORE
    with pytest.raises(InvalidPolicy):
        BankPolicy(exact_action=Action.IGNORE)
    with pytest.raises(InvalidPolicy):
        BankPolicy(auto_max_distance=-1)


# -- through the store and the scanner ---------------------------------------------------


def flipped(pdq_hex: str, bits: int) -> str:
    """A PDQ hash at Hamming distance ``bits`` from ``pdq_hex``."""
    return f"{int(pdq_hex, 16) ^ ((1 << bits) - 1):064x}"


def _images(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    images = {
        name: encode(generate(Kind.PHOTO, seed, 320, 240))
        for seed, name in enumerate(["exact", "near", "far", "trial", "allowed", "clean"], 11)
    }
    for name, data in images.items():
        (folder / f"{name}.jpg").write_bytes(data)
    return images


def test_store_keeps_bank_policies(store: Store) -> None:
    bank = store.banks.create("b")
    assert bank.policy == BankPolicy()
    shadowed = store.banks.configure("b", shadow=True, review_max_distance=20)
    assert shadowed.policy == BankPolicy(review_max_distance=20, shadow=True)
    changed = store.banks.configure(
        "b", auto_max_distance=None, exact_action=Action.REVIEW, shadow=False
    )
    assert changed.policy == BankPolicy(
        auto_max_distance=None, review_max_distance=20, exact_action=Action.REVIEW
    )
    assert store.banks.configure("b", enabled=False, auto_max_distance=KEEP).policy == (
        changed.policy
    )
    with pytest.raises(InvalidPolicy):
        store.banks.configure("b", auto_max_distance=300)
    assert store.banks.get("b").policy == changed.policy  # nothing changed
    created = store.banks.create("c", policy=BankPolicy(auto_max_distance=3, shadow=True))
    assert created.policy == BankPolicy(auto_max_distance=3, shadow=True)


def test_scanner_records_decisions_on_both_engines(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    images = _images(folder)
    options = ScanOptions(max_pixels=10**7)
    signals = {
        name: hash_data(data, HashOptions.for_scan(options)).signals
        for name, data in images.items()
    }
    pdqs = {name: s.pdq[0].value for name, s in signals.items() if s is not None}
    md5s = {name: s.md5 for name, s in signals.items() if s is not None}
    store.banks.create("live", policy=BankPolicy(auto_max_distance=10, review_max_distance=20))
    store.banks.add_entries(
        "live",
        [
            BankEntry(algorithm=Algorithm.MD5, value=md5s["exact"]),
            BankEntry(algorithm=Algorithm.PDQ, value=flipped(pdqs["near"], 15)),
            BankEntry(algorithm=Algorithm.PDQ, value=flipped(pdqs["far"], 25)),
            BankEntry(algorithm=Algorithm.MD5, value=md5s["allowed"]),
        ],
    )
    store.banks.create("trial", policy=BankPolicy(shadow=True))
    store.banks.add_entries(
        "trial", [BankEntry(algorithm=Algorithm.PDQ, value=flipped(pdqs["trial"], 3))]
    )
    store.banks.create("fp", kind=BankKind.ALLOW)
    store.banks.add_entries("fp", [BankEntry(algorithm=Algorithm.MD5, value=md5s["allowed"])])

    prepared = prepare_run(store.scans, [str(folder)], options)
    with HashingPool(
        workers=1, options=HashOptions.for_scan(options), timeout=60, memory_mb=2048
    ) as pool:
        scanner = Scanner(store=store.scans, matcher=Matcher.build(store.banks), pool=pool)
        run = scanner.run(prepared.run)

    results = {Path(r.path).stem: r for r in store.scans.results(run.id)}
    decided = {name: (r.outcome, r.decision.action) for name, r in results.items()}
    assert decided == {
        "exact": (Outcome.MATCHED, Action.ACT),
        "near": (Outcome.MATCHED, Action.REVIEW),
        "far": (Outcome.MATCHED, Action.IGNORE),
        "trial": (Outcome.MATCHED, Action.IGNORE),
        "allowed": (Outcome.NO_MATCH, Action.IGNORE),
        "clean": (Outcome.NO_MATCH, Action.IGNORE),
    }
    assert "band B" in results["near"].decision.rule
    assert "beyond the review band" in results["far"].decision.rule
    assert "suppressed by allow bank fp" in results["allowed"].decision.rule
    trial = results["trial"].decision
    assert trial.shadow
    assert [(d.bank, d.action) for d in trial.shadow_decisions] == [("trial", Action.ACT)]
    assert run.actions == {Action.ACT: 1, Action.REVIEW: 1, Action.IGNORE: 4}
    assert run.shadow_actions == {Action.ACT: 1, Action.REVIEW: 0, Action.IGNORE: 5}


# -- hashguard scan --json -----------------------------------------------------------------


@pytest.mark.usefixtures("home")
def test_cli_scan_json_carries_the_decision(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    _images(folder)
    first, _ = json_lines(hashguard("scan", str(folder), "--json", "--workers", "1").stdout)
    got = {Path(f["path"]).stem: f for f in first}
    assert got["clean"]["decision"]["action"] == "ignore"
    listing = write_known_list(
        tmp_path / "list.csv",
        [
            ("md5", got["exact"]["md5"], "e1"),
            ("pdq", flipped(got["near"]["pdq"][0]["hash"], 8), "e2"),
        ],
    )
    hashguard("banks", "import", "live", str(listing))
    trial = write_known_list(
        tmp_path / "trial.csv", [("pdq", flipped(got["trial"]["pdq"][0]["hash"], 2), "t1")]
    )
    hashguard("banks", "import", "trial", str(trial))
    hashguard("banks", "set", "live", "--auto-max-distance", "5", "--review-max-distance", "none")
    hashguard("banks", "set", "trial", "--shadow")
    refused = hashguard("banks", "set", "live", "--review-max-distance", "near", check=2)
    assert "not a number or 'none'" in refused.stderr
    shown = hashguard("banks", "show", "live", "--json").stdout
    assert '"auto_max_distance": 5, "review_max_distance": null' in shown

    done = hashguard("scan", str(folder), "--json", "--workers", "1", "--rescan", check=1)
    files, summary = json_lines(done.stdout)
    decisions = {Path(f["path"]).stem: f["decision"] for f in files}
    assert decisions["exact"]["action"] == "act"
    assert decisions["near"]["action"] == "review"
    assert decisions["near"]["rule"].startswith("review: bank live pdq distance 8")
    assert (decisions["trial"]["action"], decisions["trial"]["shadow"]) == ("ignore", True)
    assert decisions["trial"]["shadow_decisions"][0]["action"] == "act"
    assert summary["actions"] == {"act": 1, "review": 1, "ignore": 4}
    assert summary["shadow_actions"] == {"act": 1, "review": 0, "ignore": 5}

    csv_out = hashguard("scan", str(folder), "--csv", "--workers", "1", check=1).stdout
    assert csv_out.splitlines()[0].endswith(",matches,action,rule,shadow_action")
    table = hashguard("scans", "show", str(summary["run"]), check=None)
    assert "decision: act" in table.stdout


# -- POST /v1/scan -------------------------------------------------------------------------


def test_api_scan_decision_and_bank_policy_fields(api_settings: Settings) -> None:
    store = open_store(api_settings.resolved_database_url)
    _, secret = store.tokens.create("t", [Scope.ADMIN])
    store.close()
    photo = encode(generate(Kind.PHOTO, 21, 320, 240))
    signals = hash_data(photo, HashOptions(max_pixels=api_settings.max_pixels)).signals
    assert signals is not None
    auth = {"Authorization": f"Bearer {secret}"}
    with running_server(api_settings) as base, httpx.Client(base_url=base, headers=auth) as http:
        created = http.post(
            "/v1/banks",
            json={"name": "ngo", "auto_max_distance": 4, "review_max_distance": 12},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["auto_max_distance"], body["review_max_distance"]) == (4, 12)
        assert (body["exact_action"], body["shadow"]) == ("act", False)
        bad = http.patch("/v1/banks/ngo", json={"auto_max_distance": 129})
        assert bad.status_code == 422
        http.post(
            "/v1/banks/ngo/entries",
            json={"entries": [{"algorithm": "pdq", "hash": flipped(signals.pdq[0].value, 9)}]},
        )
        deadline = time.monotonic() + 10
        while True:
            answer = http.post("/v1/scan", content=photo).json()
            if answer["outcome"] == "matched" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        decision = answer["decision"]
        assert (decision["action"], decision["matched"], decision["bank"]) == (
            "review",
            True,
            "ngo",
        )
        assert "band B" in decision["rule"]

        patched = http.patch("/v1/banks/ngo", json={"shadow": True, "auto_max_distance": None})
        assert patched.status_code == 200, patched.text
        assert (patched.json()["shadow"], patched.json()["auto_max_distance"]) == (True, None)
        assert patched.json()["review_max_distance"] == 12  # left out: unchanged
        deadline = time.monotonic() + 10
        while True:
            decision = http.post("/v1/scan", content=photo).json()["decision"]
            if decision["shadow"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (decision["action"], decision["shadow"], decision["matched"]) == (
            "ignore",
            True,
            True,
        )
        assert decision["shadow_decisions"] == [
            {"action": "review", "rule": decision["shadow_decisions"][0]["rule"], "bank": "ngo"}
        ]
        clean = http.post("/v1/scan", content=encode(generate(Kind.PHOTO, 3, 64, 64))).json()
        assert clean["decision"] == {
            "action": "ignore",
            "rule": "ignore: no match",
            "bank": None,
            "shadow": False,
            "shadow_decisions": [],
            "matched": False,
        }


def test_decision_is_a_frozen_value() -> None:
    decision = Decision(action=Action.ACT, rule="act: x")
    with pytest.raises(AttributeError):
        decision.action = Action.IGNORE  # type: ignore[misc]


def test_an_allow_bank_in_shadow_mode_suppresses_nothing_and_says_what_it_would() -> None:
    policies = {"live": POLICY, "fp-trial": BankPolicy(shadow=True)}
    decision = decide([pdq("live", 3, suppressed_by="fp-trial")], [], policies)
    assert (decision.action, decision.bank, decision.shadow) == (Action.ACT, "live", False)
    (would,) = decision.shadow_decisions
    assert (would.action, would.bank, would.shadow) == (Action.IGNORE, "fp-trial", True)
    assert "would be suppressed by allow bank fp-trial" in would.rule
    # a live allow bank still suppresses
    assert decide([pdq("live", 3, suppressed_by="ok")], [], policies).action is Action.IGNORE
