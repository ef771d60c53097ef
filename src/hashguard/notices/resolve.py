"""Resolving a notice: each item to the platform's content (its callback), then through the
one pipeline, a case opened whether or not it matched.

A notice is a person's claim, so its content goes to a person either way: a match is
decided as any upload's is (the same ``Pipeline.match`` / ``process``: policy,
evidence, case, actions); content that matched nothing, or could not be decoded, opens
a review case flagged notice-only (``notice: no list match``, ``notice: content could
not be decoded``). A callback that fails or times out is never "no match" and never
"not found": the item stays to do, the notice ``failed``, retried with backoff.

Each item's outcome is saved as soon as it is committed, so a resolver killed between
two items, or between the pipeline's commit and the item's save, loses nothing: the
next run takes the notice again (it is still ``resolving``) and does what is left; an
item done again changes nothing (its case already holds the notice as a source, its
actions have the same idempotency keys).

A resolver works on a notice under the notice's lease (``NoticeStore.claim``), renewed
as each item is saved: two resolvers on one store (a worker's job and ``hashguard
notices resolve``) never resolve the same notice, and each goes on with the notices the
other does not hold. A killed resolver's notice is taken again once its lease ran out.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hashguard.domain.backoff import Backoff
from hashguard.domain.cases import ContentRef
from hashguard.domain.notices import (
    ItemState,
    Notice,
    NoticeItem,
    NoticeState,
    aggregate_state,
)
from hashguard.domain.policy import Action, Decision
from hashguard.domain.scans import FileResult, Outcome
from hashguard.hashing.isolate import PoolStopped
from hashguard.matching.service import NotLoaded
from hashguard.notices.callback import CallbackFailed, NotFound, PlatformCallback
from hashguard.scan.pipeline import Pipeline
from hashguard.scan.sources import NoticeContent
from hashguard.store import Store
from hashguard.store.notices import NoticeBusy

log = logging.getLogger("hashguard.notices")

#: who the resolver acts as (audit log, cases)
RESOLVER_ACTOR = "system:notices"
NO_MATCH_RULE = "notice: no list match"
UNDECODABLE_RULE = "notice: content could not be decoded"
#: the steps ``checkpoint`` names: after an item's pipeline commit, after its save
STEPS = ("committed", "saved")
#: the wait before a notice whose callback failed is tried again
CALLBACK_BACKOFF = Backoff(first=timedelta(minutes=1), longest=timedelta(hours=1))


class NotConfigured(RuntimeError):
    """No platform callback is configured: notices wait, ``received``."""


#: how long a resolver holds a notice without saving an item (a killed one's is taken
#: again after): longer than an item takes (the callback's timeout, then hashing)
LEASE = timedelta(minutes=10)


def _no_checkpoint(_step: str) -> None:
    return None


def default_owner() -> str:
    """A name unique to this resolver (host, process, random): two never share a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:100]


def notice_decision(result: FileResult) -> FileResult:
    """``result`` with a decision that sends the content to a person: what the policy
    decided when it opens a case, else review, flagged notice-only."""
    if result.decision.opens_case or result.signals is None:
        return result
    rule = UNDECODABLE_RULE if result.outcome is Outcome.UNDECODABLE else NO_MATCH_RULE
    return replace(
        result,
        decision=Decision(
            action=Action.REVIEW,
            rule=rule,
            shadow_decisions=result.decision.shadow_decisions,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class Resolver:
    """Resolves due notices with ``callback`` through ``pipeline`` (which holds the
    hashing pool and the matcher)."""

    store: Store
    pipeline: Pipeline
    callback: PlatformCallback | None
    backoff: Backoff = CALLBACK_BACKOFF
    actor: str = RESOLVER_ACTOR
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    checkpoint: Callable[[str], None] = field(default=_no_checkpoint)
    owner: str = field(default_factory=default_owner)
    lease: timedelta = LEASE

    def resolve_due(
        self, *, limit: int = 100, check: Callable[[], None] | None = None
    ) -> list[Notice]:
        """Every due notice, in queue order (configured notifiers first); a notice
        another resolver holds is left to it."""
        if self.callback is None:
            raise NotConfigured("no notices_callback_url and notices_callback_secret are set")
        done = []
        for notice_id in self.store.notices.due(self.clock(), limit=limit):
            if check is not None:
                check()
            try:
                done.append(self.resolve(notice_id))
            except NoticeBusy:
                continue  # another resolver took it since ``due`` was read
            except Exception as exc:  # one notice's trouble, not the queue's
                log.exception("notice #%d could not be resolved", notice_id)
                failed = self._failed(notice_id, f"{type(exc).__name__}: {exc}")
                if failed is not None:
                    done.append(failed)
        return done

    def _failed(self, notice_id: int, error: str) -> Notice | None:
        """An unexpected error: the notice waits for its backoff (its items as saved),
        so it does not hold up the notices behind it. None when another resolver holds
        it now."""
        now = self.clock()
        if not self.store.notices.claim(notice_id, self.owner, now=now, until=now + self.lease):
            return None
        try:
            notice = self.store.notices.get(notice_id)
            wait = self.backoff.delay(notice.attempts + 1)
            return self.store.notices.move(
                notice_id,
                NoticeState.FAILED,
                actor=self.actor,
                at=now,
                error=error,
                next_attempt_at=now + wait,
                owner=self.owner,
            )
        finally:
            self.store.notices.release(notice_id, self.owner)

    def resolve(self, notice_id: int) -> Notice:
        """Resolve the notice's items still to do (a resolved notice is left as it is;
        a failed one is tried now, whatever its backoff), under the notice's lease.
        Raises ``UnknownNotice``, and ``NoticeBusy`` when another resolver holds it."""
        notice = self.store.notices.get(notice_id)
        if not notice.state.due:
            return notice
        if self.callback is None:
            raise NotConfigured("no notices_callback_url and notices_callback_secret are set")
        now = self.clock()
        if not self.store.notices.claim(notice_id, self.owner, now=now, until=now + self.lease):
            raise NoticeBusy(notice_id)
        try:
            return self._resolve(notice_id, self.callback)
        finally:
            self.store.notices.release(notice_id, self.owner)

    def _resolve(self, notice_id: int, callback: PlatformCallback) -> Notice:
        notice = self.store.notices.get(notice_id)  # as it is now that it is ours
        if not notice.state.due:
            return notice  # another resolver finished it before we took it
        if notice.state is not NoticeState.RESOLVING:
            notice = self.store.notices.move(
                notice_id,
                NoticeState.RESOLVING,
                actor=self.actor,
                at=self.clock(),
                owner=self.owner,
            )
        items = list(notice.items)
        errors = []
        for index, item in enumerate(items):
            if item.state not in (ItemState.PENDING, ItemState.FAILED):
                continue
            items[index] = self._item(notice, index, item, callback)
            if items[index].state is ItemState.FAILED:
                errors.append(f"item {index}: {items[index].reason}")
            now = self.clock()
            self.store.notices.save_items(
                notice_id, items, at=now, owner=self.owner, until=now + self.lease
            )
            self.checkpoint("saved")
        state = aggregate_state(tuple(items))
        now = self.clock()
        if state is NoticeState.FAILED:
            wait = self.backoff.delay(notice.attempts + 1)
            log.warning("notice #%d failed: %s", notice_id, "; ".join(errors))
            return self.store.notices.move(
                notice_id,
                state,
                actor=self.actor,
                at=now,
                items=items,
                error="; ".join(errors),
                next_attempt_at=now + wait,
                owner=self.owner,
            )
        log.info("notice #%d %s", notice_id, state)
        return self.store.notices.move(
            notice_id, state, actor=self.actor, at=now, items=items, owner=self.owner
        )

    def _item(
        self, notice: Notice, index: int, item: NoticeItem, callback: PlatformCallback
    ) -> NoticeItem:
        try:
            answer = callback.resolve(notice.id, index, item)
        except CallbackFailed as exc:
            return replace(item, state=ItemState.FAILED, reason=str(exc))
        if isinstance(answer, NotFound):
            return replace(item, state=ItemState.NOT_FOUND, reason="not on the platform")
        source = NoticeContent(
            data=answer.data,
            notice_id=notice.id,
            item=index,
            content_ref=ContentRef(content_id=answer.content_id or item.content_id, url=item.url),
        )
        pool = self.pipeline.hashing
        assert pool is not None, "the resolver's pipeline has a hashing pool"
        try:
            output = pool.submit_data(answer.data).result()
            output, matches = self.pipeline.match(output, source)
            done = self.pipeline.process(
                f"notice:{notice.id}:{index}", output, matches, source, decided=notice_decision
            )
        except (PoolStopped, NotLoaded) as exc:
            return replace(item, state=ItemState.FAILED, reason=f"not checked: {exc}")
        self.checkpoint("committed")
        result = done.result
        if done.case is None:
            # the bytes could not be read at all (no hashes): nothing to open a case on
            return replace(
                item,
                state=ItemState.FAILED,
                outcome=str(result.outcome),
                reason=result.reason or "the content could not be hashed",
            )
        state = (
            ItemState.UNDECODABLE if result.outcome is Outcome.UNDECODABLE else ItemState.RESOLVED
        )
        return replace(
            item,
            state=state,
            content_id=source.content_ref.content_id,
            case_id=done.case.id,
            outcome=str(result.outcome),
            reason=result.reason,
        )
