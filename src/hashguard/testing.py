"""Contract tests every adapter must pass, ours or a plugin's.

Subclass the contract for your adapter's kind in a pytest module (name the subclass
``Test...``) and implement its one factory method; every ``test_`` method below then
runs against your adapter::

    class TestMyExchange(ListSourceContract):
        def source(self) -> ListSource: ...   # connected to a fake of the service
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
import tempfile
from abc import ABC, abstractmethod

from pydantic import ValidationError

from hashguard.banks.exchanges.base import ListSource
from hashguard.classify.signals import CLASSIFIER_BANK
from hashguard.domain.exchanges import SyncBatch
from hashguard.domain.policy import Action
from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.reports import ReportDraft, SinkOutcome
from hashguard.domain.scans import FileResult, Outcome
from hashguard.domain.signals import Algorithm, FileSignals
from hashguard.hashing.decode import SNIFF_BYTES
from hashguard.hashing.hasher import BUILTIN_HASHERS, ExactHasher, Hasher, MediaHasher
from hashguard.hashing.kernel import HashOptions, hash_data, hash_path
from hashguard.plugins import Adapter, AdapterKind
from hashguard.remote.base import RemoteMatcher
from hashguard.reports.base import ReportSink
from hashguard.scan.classify import classify

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _check_declaration(adapter: type[Adapter]) -> None:
    assert _NAME.fullmatch(adapter.name), adapter.name
    assert adapter.description.strip(), "an adapter describes itself"
    try:
        adapter.Settings.model_validate({"surely_not_a_setting": 1})
    except ValidationError:
        pass
    else:
        raise AssertionError("unknown settings must be refused (extra='forbid')")


class HasherContract(ABC):
    """``hasher()`` is the hasher under test; ``sample()`` bytes it applies to (for a
    media hasher, a file in a format it decodes). Each check runs it through the kernel
    as scans do, beside the built-in exact hashers (in place of the built-in one of the
    same algorithm) and without other media hashers."""

    @abstractmethod
    def hasher(self) -> Hasher: ...

    @abstractmethod
    def sample(self) -> bytes:
        """Bytes the algorithm applies to (an image for a perceptual hash)."""

    def _options(self, hasher: Hasher) -> HashOptions:
        others = tuple(
            h
            for h in BUILTIN_HASHERS
            if isinstance(h, ExactHasher) and h.algorithm is not hasher.algorithm
        )
        return HashOptions(max_pixels=50_000_000, hashers=(*others, hasher))

    def _values(self, data: bytes, hasher: Hasher | None = None) -> tuple[str, ...]:
        hasher = hasher or self.hasher()
        output = hash_data(data, self._options(hasher))
        assert output.signals is not None, output
        if isinstance(hasher, MediaHasher):
            assert output.problem is None, output
        return hasher.values(output.signals)

    def test_declares_itself(self) -> None:
        hasher = self.hasher()
        _check_declaration(type(hasher))
        assert isinstance(hasher, ExactHasher | MediaHasher), "subclass one of the two sorts"
        assert isinstance(hasher.algorithm, Algorithm)
        if isinstance(hasher, MediaHasher):
            assert hasher.media.strip(), "a media hasher names what it decodes"

    def test_canonical_and_deterministic(self) -> None:
        first = self._values(self.sample())
        assert first, "the sample must produce a value"
        assert first == self._values(self.sample())
        for value in first:
            assert re.fullmatch("[0-9a-f]+", value), value
            assert len(value) == self.hasher().algorithm.hex_length

    def test_never_raises_on_garbage(self) -> None:
        hasher = self.hasher()
        sample = self.sample()
        for junk in (b"", b"\x00" * 10, b"GIF89a" + b"\xff" * 100, sample[: len(sample) // 2]):
            if isinstance(hasher, MediaHasher):
                hasher.applies(junk[:SNIFF_BYTES])
            output = hash_data(junk, self._options(hasher))
            assert output.signals is not None, "exact hashes are always there"
            assert output.signals.size == len(junk)

    def test_a_file_hashes_as_its_bytes_do(self) -> None:
        """The kernel streams a file no media hasher applies to and reads one it applies
        to whole; either way the values are those of its bytes."""
        hasher = self.hasher()
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "sample")
            with open(path, "wb") as file:
                file.write(self.sample())
            output = hash_path(path, self._options(hasher))
        assert output.signals is not None, output
        assert hasher.values(output.signals) == self._values(self.sample())

    def test_exact_values_do_not_depend_on_chunking(self) -> None:
        hasher = self.hasher()
        if not isinstance(hasher, ExactHasher):
            return
        data = self.sample() * 3
        whole = hasher.digest()
        whole.update(data)
        pieces = hasher.digest()
        for start in range(0, len(data), 5):
            pieces.update(memoryview(data)[start : start + 5])
        assert pieces.hexdigest() == whole.hexdigest()
        assert self._values(data) == (whole.hexdigest(),)

    def test_applies_to_its_sample(self) -> None:
        hasher = self.hasher()
        if isinstance(hasher, MediaHasher):
            assert hasher.applies(self.sample()[:SNIFF_BYTES])

    def test_survives_the_trip_to_an_isolated_worker(self) -> None:
        """Workers receive hashers by pickle: the class is imported there by its module
        and name, and the copy hashes as the original does."""
        hasher = self.hasher()
        cls = type(hasher)
        assert getattr(importlib.import_module(cls.__module__), cls.__qualname__) is cls
        copy = pickle.loads(pickle.dumps(hasher))  # noqa: S301 - our own object, just pickled
        assert copy == hasher
        assert hash(copy) == hash(hasher)
        assert self._values(self.sample(), copy) == self._values(self.sample(), hasher)


Signal = tuple[Algorithm, str]


def _apply(known: set[Signal], batch: SyncBatch, ids: dict[str, set[Signal]]) -> set[Signal]:
    """What a bank holds after ``batch`` (as the sync engine stores it)."""
    for entry in batch.upserts:
        if entry.entry_id is not None:
            ids.setdefault(entry.entry_id, set()).add((entry.algorithm, entry.value))
    known = (known | {(e.algorithm, e.value) for e in batch.upserts}) - set(batch.removals)
    for entry_id in batch.removed_entry_ids:
        known -= ids.get(entry_id, set())
    return known


class ListSourceContract(ABC):
    """The source must be connected to a fake holding at least two batches' worth of
    entries, some removals, and at least one malformed record."""

    #: entry id -> signals, as upserts named them (for removals by entry id)
    _ids: dict[str, set[Signal]]

    def setup_method(self) -> None:
        self._ids = {}

    @abstractmethod
    def source(self) -> ListSource: ...

    def _final_state(
        self, checkpoint: str | None, known: set[tuple[Algorithm, str]]
    ) -> tuple[set[tuple[Algorithm, str]], list[SyncBatch]]:
        source = self.source()
        try:
            batches = list(source.fetch(checkpoint))
        finally:
            source.close()
        for batch in batches:
            known = _apply(known, batch, self._ids)
        return known, batches

    def test_declares_itself(self) -> None:
        source = type(self.source())
        _check_declaration(source)
        assert source.algorithms, "a source names the algorithms it carries"

    def test_batches_hold_only_declared_canonical_hashes(self) -> None:
        source = type(self.source())
        _, batches = self._final_state(None, set())
        assert batches
        assert sum(len(b.skipped) for b in batches) >= 1, "the fake must hold a bad record"
        for batch in batches:
            for entry in batch.upserts:
                assert entry.algorithm in source.algorithms
                assert re.fullmatch("[0-9a-f]+", entry.value)
                assert len(entry.value) == entry.algorithm.hex_length

    def test_resuming_from_any_checkpoint_loses_and_doubles_nothing(self) -> None:
        """A sync killed after any stored batch, resumed from the checkpoint it had
        stored, ends with the same entries as one uninterrupted sync."""
        full, batches = self._final_state(None, set())
        checkpoint: str | None = None
        applied: set[tuple[Algorithm, str]] = set()
        for batch in batches:
            applied = _apply(applied, batch, self._ids)
            if batch.checkpoint is not None:
                checkpoint = batch.checkpoint
            resumed, _ = self._final_state(checkpoint, set(applied))
            assert resumed == full

    def test_a_second_sync_from_the_last_checkpoint_changes_nothing(self) -> None:
        full, batches = self._final_state(None, set())
        last = [b.checkpoint for b in batches if b.checkpoint is not None]
        assert last, "a complete sync must leave a checkpoint"
        again, _ = self._final_state(last[-1], set(full))
        assert again == full


class RemoteMatcherContract(ABC):
    """``matcher(behaviour)`` returns the adapter connected to a fake that behaves so:
    ``match``, ``no_match``, ``timeout``, ``unauthorized``, ``rate_limited`` (429 on
    every call), ``server_error`` (5xx on every call), ``malformed`` (a 200 with a body
    that is not the service's format)."""

    BEHAVIOURS = (
        "match",
        "no_match",
        "timeout",
        "unauthorized",
        "rate_limited",
        "server_error",
        "malformed",
    )

    @abstractmethod
    def matcher(self, behaviour: str) -> RemoteMatcher: ...

    @abstractmethod
    def sample(self) -> tuple[bytes, FileSignals]: ...

    def _ask(self, behaviour: str) -> RemoteResult:
        matcher = self.matcher(behaviour)
        try:
            data, signals = self.sample()
            return matcher.match(data, signals)
        finally:
            matcher.close()

    def test_declares_itself(self) -> None:
        _check_declaration(type(self.matcher("no_match")))

    def test_a_match_carries_its_evidence(self) -> None:
        result = self._ask("match")
        assert result.status is RemoteStatus.MATCHED, result
        assert result.service == type(self.matcher("match")).name
        assert result.raw, "the raw response is kept as evidence"
        assert result.classification

    def test_no_match(self) -> None:
        assert self._ask("no_match").status is RemoteStatus.NO_MATCH

    def test_failures_are_not_answered_never_no_match(self) -> None:
        for behaviour in ("timeout", "unauthorized", "rate_limited", "server_error", "malformed"):
            result = self._ask(behaviour)
            assert result.status is RemoteStatus.NOT_ANSWERED, (behaviour, result)
            assert result.reason, behaviour


class ClassifierContract(ABC):
    """Anything that yields classifier signals: a classifier adapter (kind
    ``classifier``) or a remote matcher whose ``no_match`` carries its classifier's
    prediction (Safer). ``classifier(behaviour, review=...)`` returns it connected to a
    fake that behaves so: ``scored`` (a score at or above the threshold ``review=True``
    sets; nothing matched), ``timeout``, ``rate_limited`` (429 on every call),
    ``server_error`` (5xx on every call). ``review=True`` configures the host's review
    threshold for it; ``review=False`` none.

    Checked: a score is never a match, never an action and never a report (the
    decision never acts); only with the threshold does it send the file to review, as a
    case of its own kind (``classifier:<name>``); failures are ``not_answered`` with a
    reason and no score, never a signal."""

    @abstractmethod
    def classifier(self, behaviour: str, *, review: bool = False) -> RemoteMatcher: ...

    @abstractmethod
    def sample(self) -> bytes:
        """An image the classifier takes."""

    def _answer(self, behaviour: str, *, review: bool = False) -> tuple[RemoteResult, FileResult]:
        classifier = self.classifier(behaviour, review=review)
        try:
            data = self.sample()
            output = hash_data(data, HashOptions(max_pixels=50_000_000))
            assert output.signals is not None
            result = classifier.match(data, output.signals)
            threshold = classifier.review_threshold()
            thresholds = {classifier.label: threshold} if threshold is not None else {}
            assert review == bool(thresholds), "review=True sets a threshold, False none"
            return result, classify(
                "sample", output, (), (result,), {}, review_thresholds=thresholds
            )
        finally:
            classifier.close()

    def test_declares_itself(self) -> None:
        adapter = type(self.classifier("scored"))
        _check_declaration(adapter)
        assert adapter.kind in (AdapterKind.CLASSIFIER, AdapterKind.REMOTE_MATCHER)

    def test_a_score_is_never_a_match_an_action_or_a_report(self) -> None:
        result, file = self._answer("scored")
        assert result.status is RemoteStatus.NO_MATCH, result
        assert result.classifier_score is not None
        assert 0 <= result.classifier_score <= 1
        assert (result.classification, result.match_type, result.raw) == (None, None, None)
        assert file.outcome is Outcome.NO_MATCH
        assert file.decision.action is Action.IGNORE
        assert not file.decision.acts

    def test_with_its_threshold_it_opens_review_of_its_own_kind_only(self) -> None:
        result, file = self._answer("scored", review=True)
        assert result.status is RemoteStatus.NO_MATCH
        assert file.outcome is Outcome.NO_MATCH, "a score is never a match"
        assert file.decision.action is Action.REVIEW
        assert not file.decision.acts, "never an action, never a report"
        assert file.decision.bank == CLASSIFIER_BANK + result.service

    def test_failures_are_not_answered_typed_never_a_signal(self) -> None:
        for behaviour in ("timeout", "rate_limited", "server_error"):
            result, file = self._answer(behaviour, review=True)
            assert result.status is RemoteStatus.NOT_ANSWERED, (behaviour, result)
            assert result.reason, behaviour
            assert result.classifier_score is None, behaviour
            assert file.decision.action is not Action.REVIEW, behaviour
            assert not file.decision.acts, behaviour
            # a matcher's silence leaves the file unchecked; a classifier's, only unscored
            expected = Outcome.NO_MATCH if result.signal_only else Outcome.NOT_ANSWERED
            assert file.outcome is expected, behaviour


class ReportSinkContract(ABC):
    """``sink(behaviour)`` returns the adapter connected to a fake of its channel that
    behaves so: ``ok``, ``unauthorized`` (our credentials refused), ``down`` (no answer:
    5xx without a body on every call). ``draft()`` is a report the sink must accept,
    with one file whose bytes are ``sample()``."""

    @abstractmethod
    def sink(self, behaviour: str) -> ReportSink: ...

    @abstractmethod
    def draft(self) -> ReportDraft: ...

    @abstractmethod
    def sample(self) -> bytes: ...

    def test_declares_itself(self) -> None:
        _check_declaration(type(self.sink("ok")))

    def test_a_report_goes_through_every_step(self) -> None:
        sink, draft, data = self.sink("ok"), self.draft(), self.sample()
        try:
            opened = sink.submit(sink.report_document(draft))
            assert opened.outcome is SinkOutcome.OK, opened
            assert opened.remote_id
            (file,) = draft.files
            uploaded = sink.upload(opened.remote_id, file.name, data)
            assert uploaded.outcome is SinkOutcome.OK, uploaded
            assert uploaded.file_id
            assert uploaded.md5 == hashlib.md5(data).hexdigest()
            details = sink.file_document(opened.remote_id, uploaded.file_id, file)
            assert sink.send_file_details(details).outcome is SinkOutcome.OK
            done = sink.finish(opened.remote_id)
            assert done.outcome is SinkOutcome.OK, done
            assert uploaded.file_id in done.file_ids
            again = sink.finish(opened.remote_id)
            assert again.outcome is SinkOutcome.ALREADY_DONE, again
            assert sink.retract(opened.remote_id).outcome is not SinkOutcome.OK
        finally:
            sink.close()

    def test_a_retraction_twice_is_already_done(self) -> None:
        sink = self.sink("ok")
        try:
            opened = sink.submit(sink.report_document(self.draft()))
            assert opened.remote_id
            assert sink.retract(opened.remote_id).outcome is SinkOutcome.OK
            assert sink.retract(opened.remote_id).outcome is SinkOutcome.ALREADY_DONE
        finally:
            sink.close()

    def test_refused_credentials_are_permanent_and_no_answer_is_retryable(self) -> None:
        for behaviour, expected in (
            ("unauthorized", SinkOutcome.PERMANENT),
            ("down", SinkOutcome.RETRYABLE),
        ):
            sink = self.sink(behaviour)
            try:
                answer = sink.submit(sink.report_document(self.draft()))
            finally:
                sink.close()
            assert answer.outcome is expected, (behaviour, answer)
            assert answer.remote_id is None
