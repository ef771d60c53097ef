"""Meta ThreatExchange: tailing a privacy group's ``/threat_updates`` into a bank.

API (Graph API; see ``reference/services.md`` and python-threatexchange's
``exchanges/clients/fb_threatexchange/``; ``{version}`` defaults to
``graph_api.DEFAULT_VERSION``): ``GET /{version}/{privacy_group}/threat_updates
?start_time&stop_time&types&limit&fields``, paged by ``paging.next``. Each update is a
ThreatIndicator with ``should_delete``: ``true`` is a tombstone. ``HASH_PDQ`` becomes a
``pdq`` entry; ``HASH_MD5`` and ``HASH_VIDEO_MD5`` become ``md5`` entries
(``media=video`` for ``HASH_VIDEO_MD5`` and for ``HASH_MD5`` tagged
``media_type_video``, as python-threatexchange reads them). Other types are skipped.

We ask for ``descriptors{id}`` as well: reactions (our feedback) are posted on
descriptors, not indicators. As in python-threatexchange (ThreatExchange issue #834),
an update that carries no descriptor visible to us is treated as a tombstone.

The app token (``appid|secret``) goes in the ``Authorization`` header, never in a URL:
URLs end up in httpx's logs, in error messages and, for ``paging.next``, in the stored
checkpoint. Graph API echoes ``access_token`` into ``paging.next``; we strip it before
following or storing the link, and follow a link only on the configured host.

Checkpoint: JSON ``{"update_time": int | null, "next": str | null, "max_seen": int |
null}``. Mid-listing, ``next`` is the (token-free) link to the next page and
``update_time`` stays the listing's start; once the listing is exhausted,
``update_time`` becomes the highest ``last_updated`` seen (``start_time`` is inclusive,
so the records of that second are read again: harmless) and ``next`` is cleared. A
refused stored link (HTTP 400: Graph cursors expire) restarts the listing from
``update_time``. Deletions are kept by Meta for 90 days: sync more often than that.

``audience`` is ``csam`` (the privacy groups hashguard is for). A group sharing other
material (terrorism, NCII) belongs in its own bank.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hashguard.banks.exchanges.base import ExchangeError, FeedbackUnsupported, ListSource
from hashguard.banks.exchanges.graph_api import DEFAULT_VERSION
from hashguard.banks.formats import (
    InvalidRow,
    check_depth,
    check_storable,
    normalise_hash,
    parse_json,
)
from hashguard.domain.banks import BankEntry
from hashguard.domain.exchanges import Feedback, FeedbackVerdict, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.httpclient import RetryPolicy, ServiceClient, ServiceError, check_base_url

log = logging.getLogger("hashguard.exchanges.threatexchange")

DEFAULT_BASE_URL = "https://graph.facebook.com"
#: indicator type -> (algorithm, media); media None: ask the tags
_TYPES: dict[str, tuple[Algorithm, str | None]] = {
    "HASH_PDQ": (Algorithm.PDQ, "image"),
    "HASH_VIDEO_MD5": (Algorithm.MD5, "video"),
    "HASH_MD5": (Algorithm.MD5, None),
}
FIELDS = "id,indicator,type,last_updated,should_delete,tags,descriptors{id}"
#: reaction types (developers.facebook.com/docs/threat-exchange/reference/apis/reaction-type)
Reaction = Literal[
    "HELPFUL", "NOT_HELPFUL", "OUTDATED", "SAW_THIS_TOO", "WANT_MORE_INFO", "DISAGREE_WITH_TAGS"
]
#: Graph API error codes: the token is not accepted, or the app is over its rate limit
_AUTH_CODES = frozenset({10, 102, 104, 190, 200})
_THROTTLE_CODES = frozenset({4, 17, 32, 613})


class ThreatExchangeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    privacy_group: int = Field(gt=0)
    base_url: str = DEFAULT_BASE_URL
    #: Graph API version (see ``graph_api``: its end date is warned about before it ends)
    api_version: str = Field(default=DEFAULT_VERSION, pattern=r"^v\d+\.\d+$")
    #: where a first sync starts (epoch seconds); None: the group's whole history
    start_time: int | None = Field(default=None, ge=0)
    page_size: int = Field(default=500, ge=1, le=5000)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    #: retries after a timeout, a 429 or a 5xx (Retry-After honoured)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0, le=30)
    requests_per_second: float = Field(default=5.0, gt=0)
    #: what feedback says: a confirmed match, and a false positive
    confirmed_reaction: Reaction = "SAW_THIS_TOO"
    false_positive_reaction: Reaction = "DISAGREE_WITH_TAGS"

    _url = field_validator("base_url")(check_base_url)


class ThreatExchangeExchange(ListSource):
    name = "threatexchange"
    description = "a Meta ThreatExchange privacy group, tailed through /threat_updates"
    terms = "a ThreatExchange app approved by Meta, member of the privacy group"
    Settings: ClassVar[type[BaseModel]] = ThreatExchangeSettings
    secrets = ("app_token",)
    algorithms = frozenset({Algorithm.PDQ, Algorithm.MD5})
    audience = "csam"

    _http: ServiceClient | None = None

    @property
    def options(self) -> ThreatExchangeSettings:
        assert isinstance(self.settings, ThreatExchangeSettings)
        return self.settings

    @property
    def graph_api_version(self) -> str:
        """The Graph API version this exchange calls (``graph_api.graph_api_warning``)."""
        return self.options.api_version

    def _client(self) -> ServiceClient:
        if self._http is None:
            options = self.options
            token = self.credentials["app_token"].get_secret_value()
            self._http = ServiceClient(
                options.base_url,
                service=self.name,
                timeout=options.timeout_seconds,
                retry=RetryPolicy(
                    attempts=options.retries + 1, base_seconds=options.backoff_seconds
                ),
                per_second=options.requests_per_second,
                headers={"Authorization": f"Bearer {token}"},
            )
        return self._http

    def fetch(self, checkpoint: str | None) -> Iterator[SyncBatch]:
        start, link, max_seen = _resume(checkpoint, self.options.start_time)
        request = self._follow(link) if link else None
        if link and request is None:
            log.info("%s: stored page link is not on base_url; listing again", self.name)
        from_checkpoint = request is not None
        if request is None:
            request = self._first(start)
        while True:
            path, params = request
            try:
                page = self._call("GET", path, params=params, cursor=from_checkpoint)
            except _StaleCursor:
                log.info("%s: stored page link refused; listing again from its start", self.name)
                from_checkpoint, request, max_seen = False, self._first(start), None
                continue
            from_checkpoint = False
            updates, next_link = _page(page, self.name)
            upserts, removals, skipped, seen = _updates(updates)
            if seen is not None:
                max_seen = seen if max_seen is None else max(max_seen, seen)
            following = None
            if next_link is not None:
                following = self._follow(next_link)
                if following is None:
                    raise ExchangeError(
                        f"{self.name}: paging.next points away from the configured base_url"
                    )
                if following == request:
                    raise ExchangeError(f"{self.name}: paging.next repeated the page")
            if following is not None and next_link is not None:
                saved = _checkpoint(start, _without_token(next_link), max_seen)
            else:
                done = start if max_seen is None else max(max_seen, start or 0)
                saved = _checkpoint(done, None, None)
            log.debug(
                "%s: page of %d updates (%d upserts, %d removals, %d skipped)",
                self.name,
                len(updates),
                len(upserts),
                len(removals),
                len(skipped),
            )
            if updates or saved != checkpoint:
                yield SyncBatch(
                    upserts=tuple(upserts),
                    removals=tuple(removals),
                    skipped=tuple(skipped),
                    checkpoint=saved,
                )
            if following is None:
                return
            request = following

    def _first(self, start: int | None) -> tuple[str, dict[str, str]]:
        options = self.options
        params = {
            "types": ",".join(_TYPES),
            "limit": str(options.page_size),
            "fields": FIELDS,
            # a bounded window: the listing ends even while the group keeps changing
            "stop_time": str(int(time.time())),
        }
        if start is not None:
            params["start_time"] = str(start)
        return f"/{options.api_version}/{options.privacy_group}/threat_updates", params

    def _follow(self, link: str) -> tuple[str, dict[str, str]] | None:
        """The path and query of a paging link on our host, without any token; ``None``
        for a link elsewhere (the token is never sent to another host)."""
        base, target = urlsplit(self.options.base_url), urlsplit(link)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            return None
        prefix = base.path.rstrip("/")
        if not target.path.startswith(prefix + "/"):
            return None
        params = {k: v for k, v in parse_qsl(target.query) if k != "access_token"}
        return target.path[len(prefix) :], params

    def send_feedback(self, feedback: Feedback) -> None:
        """React on the entry's descriptors: ``confirmed_reaction`` for a confirmed match,
        ``false_positive_reaction`` for a false positive.

        The descriptor ids come from ``feedback.metadata["descriptor_ids"]`` (the entry's
        metadata, as synced); without them they are looked up from the indicator
        (``feedback.entry_id``)."""
        if feedback.algorithm not in self.algorithms:
            raise FeedbackUnsupported(f"{self.name} holds no {feedback.algorithm} hashes")
        reaction = (
            self.options.confirmed_reaction
            if feedback.verdict is FeedbackVerdict.CONFIRMED
            else self.options.false_positive_reaction
        )
        descriptors = _descriptor_ids(feedback.metadata.get("descriptor_ids"))
        if not descriptors:
            descriptors = self._descriptors_of(feedback.entry_id)
        if not descriptors:
            raise FeedbackUnsupported(
                f"{self.name}: indicator {feedback.entry_id} has no descriptor to react on"
            )
        version = self.options.api_version
        for descriptor in descriptors:
            self._call(
                "POST", f"/{version}/{descriptor}", params={"reactions": reaction}, expect=False
            )

    def _descriptors_of(self, indicator: str) -> list[str]:
        if not indicator.isdigit():
            raise FeedbackUnsupported(f"{self.name}: {indicator[:40]!r} is not an indicator id")
        answer = self._call(
            "GET", f"/{self.options.api_version}/{indicator}", params={"fields": "descriptors{id}"}
        )
        found = _descriptor_ids(answer.get("descriptors")) if isinstance(answer, dict) else None
        return found or []

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str],
        cursor: bool = False,
        expect: bool = True,
    ) -> Any:
        try:
            response = self._client().request(method, path, params=params)
        except ServiceError as exc:
            raise ExchangeError(str(exc)) from None
        return _answer(self.name, method, path, response, cursor=cursor, expect=expect)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class _StaleCursor(ExchangeError):
    """Graph API refused a stored paging link (its cursor expired)."""


def _answer(
    service: str, method: str, path: str, response: httpx.Response, *, cursor: bool, expect: bool
) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        if not expect:
            return None
        try:
            return parse_json(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ExchangeError(f"{service}: {method} {path} answered malformed JSON") from None
    error = _graph_error(response)
    if error is not None and error[1] in _THROTTLE_CODES:
        raise ExchangeError(
            f"{service}: {method} {path} is over Graph API's rate limit ({status}, "
            f"{error[0]} {error[1]}); the next sync resumes"
        )
    if status in (401, 403) or (error is not None and error[1] in _AUTH_CODES):
        detail = f", {error[0]} {error[1]}" if error else ""
        raise ExchangeError(
            f"{service}: {method} {path} refused the app token ({status}{detail}); "
            "check app_token and the app's membership of the privacy group"
        )
    if status == 400 and cursor:
        raise _StaleCursor(f"{service}: {method} {path} answered 400")
    detail = f" ({error[0]} {error[1]})" if error else ""
    raise ExchangeError(f"{service}: {method} {path} answered {status}{detail}")


def _graph_error(response: httpx.Response) -> tuple[str, int] | None:
    """The error's type and code (never its message, which may quote the request)."""
    try:
        body = parse_json(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    kind, code = error.get("type"), error.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    label = kind if isinstance(kind, str) and kind.isidentifier() else "error"
    return label[:40], code


def _resume(
    checkpoint: str | None, default: int | None
) -> tuple[int | None, str | None, int | None]:
    if checkpoint is None:
        return default, None, None
    wrong = ExchangeError("threatexchange: the stored checkpoint is not this adapter's")
    try:
        saved = json.loads(checkpoint)
        start, link, seen = saved["update_time"], saved.get("next"), saved.get("max_seen")
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        raise wrong from None
    for value in (start, seen):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise wrong
    if link is not None and not isinstance(link, str):
        raise wrong
    return start, link, seen


def _checkpoint(update_time: int | None, link: str | None, max_seen: int | None) -> str:
    return json.dumps({"update_time": update_time, "next": link, "max_seen": max_seen})


def _without_token(link: str) -> str:
    parts = urlsplit(link)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "access_token"])
    return parts._replace(query=query).geturl()


def _page(body: Any, service: str) -> tuple[list[Any], str | None]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ExchangeError(f"{service}: threat_updates answered without a data list")
    paging = body.get("paging")
    link = paging.get("next") if isinstance(paging, dict) else None
    if link is not None and not isinstance(link, str):
        raise ExchangeError(f"{service}: threat_updates answered a paging.next that is not text")
    return body["data"], link


def _updates(
    updates: list[Any],
) -> tuple[list[BankEntry], list[tuple[Algorithm, str]], list[str], int | None]:
    upserts: list[BankEntry] = []
    removals: list[tuple[Algorithm, str]] = []
    skipped: list[str] = []
    seen: int | None = None
    for number, update in enumerate(updates, start=1):
        label = _label(update, number)
        try:
            removed, entry, when = _update(update)
        except InvalidRow as exc:
            # a reason names the update's id, never its hash (lists are confidential)
            skipped.append(f"{label}: {exc}")
            continue
        seen = when if seen is None else max(seen, when)
        if removed:
            removals.append((entry.algorithm, entry.value))
        else:
            upserts.append(entry)
    return upserts, removals, skipped, seen


def _label(update: Any, number: int) -> str:
    ident = update.get("id") if isinstance(update, dict) else None
    if isinstance(ident, str | int) and str(ident).isdigit():
        return f"update {ident}"
    return f"update #{number} of its page"


def _update(update: Any) -> tuple[bool, BankEntry, int]:
    if not isinstance(update, dict):
        raise InvalidRow("not a JSON object")
    check_depth(update)  # a value nested too deeply to parse is cut there: skipped
    ident, indicator, kind = update.get("id"), update.get("indicator"), update.get("type")
    if not isinstance(ident, str | int) or isinstance(ident, bool) or not str(ident).isdigit():
        raise InvalidRow("no numeric id")
    if not isinstance(indicator, str) or not isinstance(kind, str):
        raise InvalidRow("indicator and type must be strings")
    if kind not in _TYPES:
        raise InvalidRow(f"unsupported type {kind[:40]!r}")
    should_delete = update.get("should_delete", False)
    if not isinstance(should_delete, bool):
        raise InvalidRow("should_delete is not a boolean")
    when = _timestamp(update.get("last_updated"))
    tags = _tags(update.get("tags"))
    algorithm, media = _TYPES[kind]
    if media is None:
        media = "video" if "media_type_video" in tags else None
    descriptors = _descriptor_ids(update.get("descriptors"))
    metadata: dict[str, Any] = {"type": kind, "last_updated": when, "tags": tags}
    if media is not None:
        metadata["media"] = media
    if descriptors:
        metadata["descriptor_ids"] = descriptors
    entry = BankEntry(
        algorithm=algorithm,
        value=normalise_hash(algorithm, indicator),
        entry_id=str(ident),
        metadata=metadata,
    )
    check_storable(entry.metadata)
    # no descriptor visible to us: nothing left to hold (python-threatexchange, issue #834)
    return should_delete or not descriptors, entry, when


def _timestamp(value: Any) -> int:
    """``last_updated``: epoch seconds (a number or digits), or an ISO 8601 time."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return int(parsed.timestamp())
    raise InvalidRow("last_updated is not a time")


def _tags(value: Any) -> list[str]:
    """Tags as plain strings (``["a"]``, or Graph's ``{"data": [{"text": "a"}]}``)."""
    if isinstance(value, dict):
        value = [t.get("text") for t in value.get("data") or () if isinstance(t, dict)]
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidRow("tags are not a list of strings")
    return sorted(set(value))


def _descriptor_ids(value: Any) -> list[str]:
    """Descriptor ids from ``{"data": [{"id": ...}]}`` or a plain list of ids."""
    if isinstance(value, dict):
        value = [d.get("id") for d in value.get("data") or () if isinstance(d, dict)]
    if not isinstance(value, list):
        return []
    return [str(d) for d in value if isinstance(d, str | int) and str(d).isdigit()]
