"""One JSON shape per domain value: what the stores keep, what the CLI and the API show,
and rows that older versions wrote (they still load)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import update

from hashguard.domain.cases import CaseSource, SourceKind
from hashguard.domain.policy import Action, Decision
from hashguard.domain.remote import RemoteResult, RemoteStatus, remote_from_json, remote_to_json
from hashguard.domain.scans import FileResult, Outcome, ScanOptions
from hashguard.domain.signals import (
    FileSignals,
    PdqHash,
    PdqMode,
    signals_from_json,
    signals_shown,
    signals_to_json,
)
from hashguard.review.cases import case_json
from hashguard.store import Store
from hashguard.store.schema import cases, scan_results
from hashguard.web.schemas.cases import CaseOut
from hashguard.web.schemas.results import RemoteOut, SignalsOut

# made-up hashes: no list's contents
FAST = PdqHash(value="a" * 64, quality=100, mode=PdqMode.FAST)
REFERENCE = PdqHash(value="b" * 64, quality=90, mode=PdqMode.REFERENCE)
SIGNALS = FileSignals(
    size=2048,
    md5="1" * 32,
    sha1="2" * 40,
    sha256="3" * 64,
    pdq=(FAST,),
    pdq_reference=(REFERENCE,),
    image_format="JPEG",
    width=1024,
    height=768,
)
REVIEW = Decision(action=Action.REVIEW, rule="review: test")
#: how a case row's signals looked before PDQ modes and reference copies existed
OLD_SIGNALS: dict[str, Any] = {
    "size": 2048,
    "md5": "1" * 32,
    "sha1": "2" * 40,
    "sha256": "3" * 64,
    "pdq": [{"value": "a" * 64, "quality": 100}],
    "image_format": "JPEG",
    "width": 1024,
    "height": 768,
}


def test_signals_read_back_from_the_stored_and_the_shown_shape() -> None:
    assert signals_from_json(signals_to_json(SIGNALS)) == SIGNALS
    assert signals_from_json(signals_shown(SIGNALS, dihedral=True)) == SIGNALS
    bare = replace(SIGNALS, pdq=(), pdq_reference=(), image_format=None)
    assert signals_from_json(signals_to_json(bare)) == bare
    assert "pdq_reference" not in signals_to_json(replace(SIGNALS, pdq_reference=()))


def test_the_shown_shape_is_the_stored_one_plus_the_keys_outputs_documented() -> None:
    stored, shown = signals_to_json(SIGNALS), signals_shown(SIGNALS)
    assert set(shown) == set(stored) | {"format"}
    assert shown["format"] == shown["image_format"] == "JPEG"
    for key in ("pdq", "pdq_reference"):
        for kept, seen in zip(stored[key], shown[key], strict=True):
            assert seen == kept | {"hash": kept["value"], "low_quality": False}
    api = SignalsOut.of(SIGNALS).model_dump(mode="json")
    # the API's schema always has a video's two keys (null for an image); the CLI's JSON
    # has them only for a video
    assert api == shown | {"video": None, "vpdq_frames": None}


def test_a_remote_answer_keeps_raw_only_for_a_match_unless_told() -> None:
    matched = RemoteResult(
        service="photodna", status=RemoteStatus.MATCHED, method="media", raw="{}"
    )
    refused = replace(matched, status=RemoteStatus.NOT_ANSWERED, raw="timeout body")
    assert remote_to_json(matched)["raw"] == "{}"
    assert remote_to_json(refused)["raw"] is None
    assert remote_to_json(refused, keep_raw=True)["raw"] == "timeout body"
    assert remote_to_json(matched, keep_raw=False)["raw"] is None
    assert remote_from_json(remote_to_json(matched)) == matched
    assert RemoteOut.of(refused).model_dump(mode="json") == remote_to_json(refused)


def test_a_case_stores_the_one_shape_and_loads_rows_older_versions_wrote(store: Store) -> None:
    case, _ = store.cases.open_or_update(
        content_key="3" * 64,
        source=CaseSource(kind=SourceKind.UPLOAD, ref="r-1"),
        signals=SIGNALS,
        matches=(),
        remote=(),
        decision=REVIEW,
        actor="system:test",
    )
    with store.engine.connect() as conn:
        (kept,) = conn.execute(cases.select().with_only_columns(cases.c.signals)).scalars()
    assert kept == signals_to_json(SIGNALS)
    with store.engine.begin() as conn:
        conn.execute(update(cases).where(cases.c.id == case.id).values(signals=OLD_SIGNALS))
    old = store.cases.get(case.id)
    assert old.signals == replace(
        SIGNALS, pdq=(replace(FAST, mode=PdqMode.FAST),), pdq_reference=()
    )
    shown = case_json(old)["signals"]
    assert (shown["format"], shown["image_format"]) == ("JPEG", "JPEG")
    assert [(p["value"], p["hash"], p["mode"]) for p in shown["pdq"]] == [
        ("a" * 64, "a" * 64, "fast")
    ]
    out = CaseOut.of(old)
    assert out.signals is not None
    assert out.signals.pdq_reference == []


def test_a_scan_result_loads_rows_older_versions_wrote(store: Store) -> None:
    run = store.scans.create_run(
        roots=["/srv"], resume_key="k", options=ScanOptions(max_pixels=10_000_000), pid=1, host="h"
    )
    result = FileResult(path="/srv/a.jpg", outcome=Outcome.NO_MATCH, signals=SIGNALS)
    store.scans.add_results(run.id, [result])
    (back,) = store.scans.results(run.id)
    assert back.signals == SIGNALS
    with store.engine.begin() as conn:
        conn.execute(update(scan_results).values(pdq=OLD_SIGNALS["pdq"]))
    (old,) = store.scans.results(run.id)
    assert old.signals == replace(SIGNALS, pdq_reference=())
