"""No PDQ hash leaves unlabelled, and every one that leaves is a reference hash.

One test per exit: the ``match.detected`` webhook, evidence context (and so its export),
allow-bank entries from a false positive (Arachnid Shield lookups are pinned in
test_remote_arachnid.py). Each exit is given a fast-mode file: without reference hashes it
carries no PDQ hash at all; with them, the reference hashes only, labelled. Also: the
stores keep both kinds, ``with_reference`` computes them through the isolated pool or
from bytes, and the CLI and API label each hash's mode.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hashguard.actions.outbox import match_data, plan_for_decision
from hashguard.cli.render import csv_header, csv_row
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.actions import EventType, WebhookEndpoint
from hashguard.domain.banks import BankKind
from hashguard.domain.cases import Case, CaseSource, SourceKind
from hashguard.domain.evidence import RetentionPolicy
from hashguard.domain.matches import Match
from hashguard.domain.policy import Action, Decision
from hashguard.domain.scans import FileResult, Outcome, ScanOptions
from hashguard.domain.signals import (
    Algorithm,
    FileSignals,
    NotReference,
    PdqMode,
    leaving,
    signals_shown,
)
from hashguard.evidence.capture import evidence_context
from hashguard.evidence.vault import Vault
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.hashing.reference import result_with_reference, with_reference
from hashguard.keys import MasterKey
from hashguard.review import cases as review
from hashguard.review.reference import from_evidence
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.web.schemas.cases import CaseOut
from hashguard.web.schemas.results import SignalsOut
from tests.cli import hashguard, write_known_list

LIMITS = HashOptions(max_pixels=10**8, pdq_mode=PdqMode.FAST)
ACT = Decision(action=Action.ACT, rule="act: bank known md5", bank="known")
MATCH = Match(
    bank="known", bank_kind=BankKind.KNOWN, algorithm=Algorithm.MD5, distance=0, entry_id="e-1",
    category=None,
)  # fmt: skip


def _fast_and_reference(data: bytes) -> tuple[FileSignals, FileSignals]:
    """The file's fast-mode signals, and the same with its reference hashes beside them."""
    fast = hash_data(data, LIMITS).signals
    both = hash_data(data, replace(LIMITS, also_reference=True)).signals
    assert fast is not None
    assert both is not None
    assert [p.mode for p in fast.pdq] == [PdqMode.FAST]
    assert both.pdq == fast.pdq
    assert fast.pdq[0].value != both.pdq_reference[0].value, "fast and reference must differ"
    return fast, both


@pytest.fixture(scope="module")
def image() -> bytes:
    # a JPEG the decoder scales (short side >= 768 px), textured: the default mode's
    # fast path; smaller or other files are hashed on the reference path anyway
    return encode(generate(Kind.PHOTO, 7, 1024, 768))


@pytest.fixture(scope="module")
def signals(image: bytes) -> tuple[FileSignals, FileSignals]:
    return _fast_and_reference(image)


def _result(signals: FileSignals, path: str = "/srv/up/a.png") -> FileResult:
    return FileResult(
        path=path, outcome=Outcome.MATCHED, signals=signals, matches=(MATCH,), decision=ACT
    )


def _pdq_values(blob: object) -> str:
    return json.dumps(blob)


# -- the domain's guard ------------------------------------------------------------------


def test_a_fast_hash_is_refused_as_reference_and_never_leaves(
    signals: tuple[FileSignals, FileSignals],
) -> None:
    fast, both = signals
    with pytest.raises(NotReference):
        replace(fast, pdq_reference=fast.pdq)
    with pytest.raises(NotReference):
        leaving(fast.pdq)
    assert fast.reference_pdq == ()
    assert fast.needs_reference
    assert both.reference_pdq == both.pdq_reference
    assert not both.needs_reference
    reference = replace(fast, pdq=both.pdq_reference, pdq_reference=())
    assert reference.reference_pdq == both.pdq_reference, "a reference scan's own hashes leave"
    assert not reference.needs_reference


# -- exit 1: the match.detected webhook --------------------------------------------------


def test_match_detected_carries_reference_hashes_only_labelled(
    signals: tuple[FileSignals, FileSignals],
) -> None:
    fast, both = signals
    endpoint = WebhookEndpoint(
        name="hook", url="http://127.0.0.1:9/", secret="whsec_" + "A" * 32,
        events=frozenset({EventType.MATCH_DETECTED}),
    )  # fmt: skip
    at = datetime(2026, 1, 1, tzinfo=UTC)
    (unhashed,) = plan_for_decision(
        _result(fast), endpoints=[endpoint], quarantine_local=False, key="k", at=at
    )
    assert unhashed.payload["data"]["content"]["pdq"] == []
    assert fast.pdq[0].value not in _pdq_values(unhashed.payload)

    (action,) = plan_for_decision(
        _result(both), endpoints=[endpoint], quarantine_local=False, key="k", at=at
    )
    (ref,) = both.pdq_reference
    assert action.payload["data"]["content"]["pdq"] == [
        {"value": ref.value, "quality": ref.quality, "frame": 0, "mode": "reference"}
    ]
    assert fast.pdq[0].value not in _pdq_values(action.payload)
    assert match_data(_result(both))["content"]["md5"] == both.md5


# -- exit 2: evidence context, and so its export ---------------------------------------


def test_evidence_keeps_and_exports_reference_hashes_only_labelled(
    store: Store, tmp_path: Path, image: bytes, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    assert evidence_context(_result(fast))["hashes"]["pdq"] == []
    vault = Vault(
        store.evidence,
        MasterKey(secrets.token_bytes(32)),
        tmp_path / "evidence",
        lambda: datetime(2026, 1, 1, tzinfo=UTC),
        retention=RetentionPolicy(default_days=365),
    )
    item = vault.put(image, evidence_context(_result(both)), jurisdiction="us")
    _data, context = vault.get(item.id, actor="cli:test")  # what `evidence export` writes
    (ref,) = both.pdq_reference
    assert context["hashes"]["pdq"] == [
        {"value": ref.value, "quality": ref.quality, "frame": 0, "mode": "reference"}
    ]
    assert fast.pdq[0].value not in json.dumps(context)


# -- exit 3: allow-bank entries from a false positive ----------------------------------


def _case(store: Store, signals: FileSignals, *, evidence_id: str | None = None) -> Case:
    opened = review.open_from_result(
        store,
        _result(signals),
        CaseSource(kind=SourceKind.UPLOAD, ref="r-1"),
        evidence_id=evidence_id,
    )
    assert opened is not None
    return opened[0]


def _bank_pdq(store: Store, bank: str) -> list[str]:
    """The PDQ values of ``bank`` (the only bank these tests hold)."""
    assert [b.name for b in store.banks.list()] == [bank]
    return [
        value
        for rows in store.banks.index_rows()
        for algorithm, value in zip(rows.algorithms, rows.values, strict=True)
        if algorithm is Algorithm.PDQ
    ]


def test_a_false_positive_adds_no_fast_hash(
    store: Store, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, _both = signals
    # fast hashes only and nothing to compute them from: the exact hashes alone
    case = _case(store, fast)
    closed = review.mark_false_positive(store, case.id, actor="user:a", reason="r", allow_bank="fp")
    assert _bank_pdq(store, "fp") == []
    assert store.banks.stats("fp").active[Algorithm.MD5] == 1
    (event,) = [e for e in store.cases.history(closed.id) if e.kind == "false_positive"]
    assert event.details["pdq_withheld"] == "no reference PDQ hash"


def test_a_false_positive_refuses_a_fast_hash_given_as_reference(
    store: Store, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, _both = signals
    case = _case(store, fast)
    with pytest.raises(NotReference):
        review.mark_false_positive(
            store, case.id, actor="user:a", reason="r", allow_bank="fp",
            reference=lambda _case: fast.pdq,
        )  # fmt: skip
    assert store.cases.get(case.id).state == "open"
    assert _bank_pdq(store, "fp") == []


def test_a_false_positive_computes_reference_hashes_from_the_evidence(
    store: Store, tmp_path: Path, image: bytes, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    vault = Vault(
        store.evidence,
        MasterKey(secrets.token_bytes(32)),
        tmp_path / "evidence",
        lambda: datetime(2026, 1, 1, tzinfo=UTC),
        retention=RetentionPolicy(default_days=365),
    )
    item = vault.put(image, evidence_context(_result(fast)), jurisdiction="us")
    case = _case(store, fast, evidence_id=item.id)
    reference = from_evidence(lambda: vault, LIMITS, actor="user:a")
    review.mark_false_positive(
        store, case.id, actor="user:a", reason="r", allow_bank="fp", reference=reference
    )
    assert _bank_pdq(store, "fp") == [p.value for p in both.pdq_reference]


def test_a_case_seen_again_with_reference_hashes_keeps_them(
    store: Store, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    first = _case(store, fast)
    second = _case(store, both)
    assert second.id == first.id
    assert second.signals is not None
    assert second.signals.pdq_reference == both.pdq_reference
    review.mark_false_positive(store, first.id, actor="user:a", reason="r", allow_bank="fp")
    assert _bank_pdq(store, "fp") == [both.pdq_reference[0].value]


# -- where the hashes are kept and how they are computed -------------------------------


def test_the_stores_keep_both_kinds_with_their_modes(
    store: Store, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    options = ScanOptions(max_pixels=10**8)
    run = store.scans.create_run(roots=["/srv"], resume_key="k", options=options, pid=1, host="h")
    store.scans.add_results(run.id, [_result(both, "/srv/a.png"), _result(fast, "/srv/b.png")])
    kept = {r.path: r.signals for r in store.scans.results(run.id)}
    assert kept == {"/srv/a.png": both, "/srv/b.png": fast}
    case = _case(store, both)
    assert store.cases.get(case.id).signals == both


def test_with_reference_through_the_pool_and_from_bytes(
    tmp_path: Path, image: bytes, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    path = tmp_path / "a.png"
    path.write_bytes(image)
    assert with_reference(both, limits=LIMITS, data=b"unused") is both, "nothing needed"
    assert with_reference(fast, limits=LIMITS, data=image) == both
    with HashingPool(workers=1, options=LIMITS, timeout=30, memory_mb=1024) as pool:
        assert with_reference(fast, limits=LIMITS, pool=pool, path=str(path)) == both
        assert with_reference(fast, limits=LIMITS, pool=pool, data=image) == both
        # the pool's own options are unchanged by a per-call mode
        assert pool.submit(str(path)).result().signals == fast
        # the content changed since it was hashed: nothing is computed
        path.write_bytes(encode(generate(Kind.PHOTO, 9, 1024, 768)))
        assert with_reference(fast, limits=LIMITS, pool=pool, path=str(path)) is fast
    with pytest.raises(ValueError, match="needs the content"):
        with_reference(fast, limits=LIMITS)


def test_the_pipeline_call_hashes_again_only_what_leaves(
    tmp_path: Path, image: bytes, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    path = tmp_path / "a.png"
    path.write_bytes(image)
    acted = _result(fast, str(path))
    assert result_with_reference(acted, limits=LIMITS, data=image).signals == both
    assert result_with_reference(acted, limits=LIMITS).signals == both, "read from the path"
    shadow = replace(acted, decision=replace(ACT, action=Action.IGNORE, shadow=True))
    clean = FileResult(path=str(path), outcome=Outcome.NO_MATCH, signals=fast)
    for stays in (shadow, clean):
        assert result_with_reference(stays, limits=LIMITS, data=b"never read") is stays


# -- every PDQ hash shown names its mode -----------------------------------------------


def test_cli_and_api_shapes_label_each_hash(
    store: Store, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    shown = signals_shown(both)
    assert [p["mode"] for p in shown["pdq"]] == ["fast"]
    assert [(p["hash"], p["mode"]) for p in shown["pdq_reference"]] == [
        (both.pdq_reference[0].value, "reference")
    ]
    assert "pdq_reference" not in signals_shown(fast)
    (row,) = csv.DictReader(io.StringIO(csv_header() + csv_row(_result(both))))
    assert (row["pdq_mode"], row["pdq_reference"]) == ("fast", both.pdq_reference[0].value)

    api = SignalsOut.of(both)
    assert [p.mode for p in api.pdq] == [PdqMode.FAST]
    assert [p.mode for p in api.pdq_reference] == [PdqMode.REFERENCE]
    case = CaseOut.of(_case(store, both))
    assert case.signals is not None
    assert [p.mode for p in case.signals.pdq] == [PdqMode.FAST]
    assert [p.value for p in case.signals.pdq_reference] == [both.pdq_reference[0].value]


@pytest.mark.usefixtures("home")
def test_hashguard_hash_prints_reference_hashes_unless_asked(
    tmp_path: Path, image: bytes, signals: tuple[FileSignals, FileSignals]
) -> None:
    fast, both = signals
    photo = tmp_path / "a.png"
    photo.write_bytes(image)
    (shown,) = json.loads(hashguard("hash", str(photo)).stdout)["pdq"]
    assert (shown["hash"], shown["mode"]) == (both.pdq_reference[0].value, "reference")
    (shown,) = json.loads(hashguard("hash", str(photo), "--pdq-mode", "fast").stdout)["pdq"]
    assert (shown["hash"], shown["mode"]) == (fast.pdq[0].value, "fast")


def test_hashguard_cases_false_positive_adds_the_reference_hash_from_the_evidence(
    settings: Settings, tmp_path: Path, image: bytes, signals: tuple[FileSignals, FileSignals]
) -> None:
    """The CLI wiring: a fast-mode scan computes the matched file's reference hash (the
    pipeline does, before evidence and case); the false positive puts that hash, never
    the fast one, in the allow bank."""
    _fast, both = signals
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "a.png").write_bytes(image)
    listed = write_known_list(tmp_path / "l.csv", [("md5", both.md5, "e-1")])
    hashguard("banks", "import", "known", str(listed))
    hashguard("scan", str(folder), "--workers", "1", check=1)
    (case,) = json.loads(hashguard("cases", "list", "--json").stdout)
    assert case["evidence_id"]
    assert [p["mode"] for p in case["signals"]["pdq"]] == ["fast"]
    assert [p["value"] for p in case["signals"]["pdq_reference"]] == [both.pdq_reference[0].value]
    hashguard("cases", "false-positive", str(case["id"]), "--reason", "r", "--allow-bank", "fp")
    store = open_store(settings.resolved_database_url)
    try:
        pdq = [
            value
            for rows in store.banks.index_rows()
            for algorithm, value in zip(rows.algorithms, rows.values, strict=True)
            if algorithm is Algorithm.PDQ
        ]
    finally:
        store.close()
    assert pdq == [both.pdq_reference[0].value]
