"""Noticing a token that probes the PDQ lists with /v1/lookup: many lookups close together.

A PDQ lookup answers whether a hash lies within a bank's threshold of a listed one. A
client that holds a near copy of listed content can look up small changes of its hash
(one-bit flips, or a walk to the threshold's edge and flips there) and read the listed
hash bit by bit from the answers. Ordinary clients look up the hashes of their uploads:
repeats of one hash, and hashes far apart. So this keeps, per token, the recent PDQ
queries that matched something (anchors) and every recent query; a new query within
``radius`` bits of an anchor, and not a repeat of a recent query, is a *close* lookup.
A token gets ``budget`` close lookups per ``window_seconds``; a call that would go over
is refused whole (429) and answers nothing, and the caller records an alert.

A vPDQ lookup (one video's frames) answers whether the video lies within a listed
video's thresholds, which a client can narrow to one frame (the other frames known to
match) and then read that frame as above. So a video query is one close lookup when
any of its fresh frames lies within ``radius`` of an anchor of an earlier call, and the
frames of a matched one become anchors. Its own frames are never compared with each
other: one video's frames lie close together.

A token of a tenant of the hash check service is also charged to its tenant, with the
same budget: a tenant cannot multiply the budget by making tokens. A call is refused
when either budget would go over, and then neither is charged.

In memory, per server process (as the lookup rate limit): a token spread over several
servers gets the budget on each.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

#: anchors compared at once (keeps the temporaries in the CPU cache)
_CHUNK = 64
#: at most one alert per token this often, however many calls are refused
ALERT_EVERY_SECONDS = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeVerdict:
    """What a call's PDQ queries cost. ``refused``: the call goes over the budget.
    ``alert``: record an alert now (the first refusal in ``ALERT_EVERY_SECONDS``);
    ``refused_since_alert`` counts the refusals that alert covers."""

    close: int
    used: int
    budget: int
    refused: bool
    alert: bool = False
    refused_since_alert: int = 0
    #: whose budget the verdict is about: ``token`` or ``tenant``
    of: str = "token"


@dataclass(kw_only=True, slots=True)
class _History:
    #: matched queries: value -> when, oldest first
    anchors: OrderedDict[bytes, float] = field(default_factory=OrderedDict)
    #: every query: value -> when, oldest first (a repeat tells nothing new)
    recent: OrderedDict[bytes, float] = field(default_factory=OrderedDict)
    #: when each close lookup was charged
    charged: deque[float] = field(default_factory=deque)
    alerted_at: float | None = None
    refused_since_alert: int = 0


class ProbeGuard:
    """Per-token memory of PDQ lookups and a budget for close ones (see the module)."""

    def __init__(
        self,
        *,
        radius: int,
        budget: int,
        window_seconds: float,
        memory: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.radius = radius
        self.budget = budget
        self.window_seconds = window_seconds
        self.memory = memory
        self._clock = clock
        self._lock = threading.Lock()
        self._histories: dict[tuple[str, int], _History] = {}

    def check(
        self,
        token_id: int,
        queries: Sequence[tuple[str, bool]],
        *,
        tenant_id: int | None = None,
        videos: Sequence[tuple[Sequence[str], bool]] = (),
    ) -> ProbeVerdict:
        """Charge ``token_id`` (and its tenant, if any) for one call's PDQ ``queries``
        (valid hex, whether it matched) and vPDQ ``videos`` (their frames' hex, whether
        the video matched), or refuse the call (nothing charged or remembered) if it
        would go over either budget."""
        now = self._clock()
        pdq = list(dict.fromkeys(bytes.fromhex(value) for value, _ in queries))
        matched = {bytes.fromhex(value) for value, hit in queries if hit}
        clips = [list(dict.fromkeys(bytes.fromhex(v) for v in frames)) for frames, _ in videos]
        for frames, (_, hit) in zip(clips, videos, strict=True):
            if hit:
                matched.update(frames)
        values = list(dict.fromkeys([*pdq, *(v for frames in clips for v in frames)]))
        keys: list[tuple[str, int]] = [("token", token_id)]
        if tenant_id is not None:
            keys.append(("tenant", tenant_id))
        with self._lock:
            costs: list[tuple[str, _History, int, int]] = []
            for kind, key in keys:
                history = self._histories.setdefault((kind, key), _History())
                self._forget(history, now)
                fresh = [v for v in pdq if v not in history.recent]
                anchors = [*history.anchors, *(v for v in fresh if v in matched)]
                close = _close(fresh, anchors, self.radius)
                earlier = list(history.anchors)
                close += sum(
                    1
                    for frames in clips
                    if _close([v for v in frames if v not in history.recent], earlier, self.radius)
                )
                costs.append((kind, history, close, len(history.charged)))
            for kind, history, close, used in costs:
                if used + close > self.budget:
                    return self._refuse(kind, history, close, used, now)
            for _kind, history, close, _used in costs:
                history.charged.extend([now] * close)
                for value in values:
                    _remember(history.recent, value, now, self.memory)
                    if value in matched:
                        _remember(history.anchors, value, now, self.memory)
            _kind, _history, close, used = costs[0]
            return ProbeVerdict(close=close, used=used + close, budget=self.budget, refused=False)

    def _refuse(
        self, kind: str, history: _History, close: int, used: int, now: float
    ) -> ProbeVerdict:
        history.refused_since_alert += 1
        alert = history.alerted_at is None or now - history.alerted_at >= ALERT_EVERY_SECONDS
        refused = history.refused_since_alert
        if alert:
            history.alerted_at, history.refused_since_alert = now, 0
        return ProbeVerdict(
            close=close,
            used=used,
            budget=self.budget,
            refused=True,
            alert=alert,
            refused_since_alert=refused,
            of=kind,
        )

    def _forget(self, history: _History, now: float) -> None:
        horizon = now - self.window_seconds
        while history.charged and history.charged[0] <= horizon:
            history.charged.popleft()
        for kept in (history.anchors, history.recent):
            while kept and next(iter(kept.values())) <= horizon:
                kept.popitem(last=False)


def _remember(kept: OrderedDict[bytes, float], value: bytes, now: float, memory: int) -> None:
    kept.pop(value, None)
    kept[value] = now
    while len(kept) > memory:
        kept.popitem(last=False)


def _bits(values: Sequence[bytes]) -> npt.NDArray[np.uint64]:
    """256-bit hashes as rows of four 64-bit words (popcount ignores byte order)."""
    return np.frombuffer(b"".join(values), dtype=np.uint64).reshape(len(values), -1)


def _close(queries: Sequence[bytes], anchors: Sequence[bytes], radius: int) -> int:
    """How many ``queries`` lie within ``radius`` bits of an anchor other than themselves.

    Word by word over blocks of anchors, so the temporaries stay in the CPU cache (a
    full batch against a full memory takes about 0.1 s). Distances add up in uint8: only
    256 (every bit differs) wraps, to 0, and neither 0 nor 256 is close."""
    if not queries or not anchors:
        return 0
    wanted, known = _bits(queries), _bits(anchors)
    words = [np.ascontiguousarray(wanted[:, k, None]) for k in range(wanted.shape[1])]
    near = np.zeros(len(queries), dtype=bool)
    for start in range(0, len(known), _CHUNK):
        block = known[start : start + _CHUNK]
        distances = np.bitwise_count(words[0] ^ block[None, :, 0])
        for k in range(1, len(words)):
            distances += np.bitwise_count(words[k] ^ block[None, :, k])
        near |= ((distances > 0) & (distances <= radius)).any(axis=1)
    return int(near.sum())
