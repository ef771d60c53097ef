"""The NCMEC hash-sharing exchange (API v2): entries read by time window, feedback sent back.

Our own client on ``ServiceClient``, not threatexchange's ``NCMECHashAPI``, which takes
its URL only from its enum, retries via ``requests`` outside our limits, logs response
bodies (list contents) at DEBUG, sends local time marked ``Z``, fails a whole page on
one bad entry (quoting the page in the error) and does not refuse DTDs. We follow its
documented contract: XML shapes, environments, ``next`` links, feedback calls.

**Checkpoint.** NCMEC's entries are not in time order, so the time checkpoint moves only
once a whole ``from``/``to`` window is read. Mid-window, each page's checkpoint holds the
window and NCMEC's ``next`` link (valid only with that window), so a crash resumes at
the same page; a link older than 12 hours is dropped and its window read again
(re-reading is harmless: upserts and tombstones are idempotent)::

    {"v": 1, "from": "2024-05-01T00:00:00Z"}                                 # done
    {"v": 1, "from": "…", "to": "…", "next": "/v2/entries?…", "paged_at": "…"}  # mid

Windows are ``window_hours`` long; one that fit in one page lets the next be twice as
long (up to a year), so a first sync from 1970 crosses empty years in a few dozen
calls. Entries of the last five minutes wait for the next sync (late commits).

**Deletions.** NCMEC documents ``deletedImage``/``deletedVideo`` with member, id and
timestamp only. Fingerprints a deletion does carry become tombstones (unless a live
entry of the page lists the hash); a deletion naming only its entry tombstones the
bank's entries of that entry id. (A bank keeps one entry id per hash: a hash that two
members listed goes with the deletion of the entry that wrote it last.)

**Feedback.** CONFIRMED is ``affirmative``. FALSE_POSITIVE needs one of NCMEC's reason
GUIDs: ``metadata["reason_id"]``, else the reason named ``Feedback.reason``, else the
only reason offered; otherwise ``ExchangeError`` lists the reasons' names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, NoReturn
from urllib.parse import parse_qs, quote, urlsplit
from xml.etree import ElementTree as ET
from xml.parsers import expat

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hashguard.banks.exchanges.base import ExchangeError, FeedbackUnsupported, ListSource
from hashguard.banks.formats import InvalidRow, check_storable, normalise_hash
from hashguard.domain.banks import BankEntry
from hashguard.domain.exchanges import Feedback, FeedbackVerdict, SyncBatch
from hashguard.domain.signals import Algorithm
from hashguard.httpclient import RetryPolicy, ServiceClient, ServiceError, check_base_url

log = logging.getLogger("hashguard.exchanges.ncmec")

NAMESPACE = "https://hashsharing.ncmec.org/hashsharing/v2"
#: the beginning of the list when no ``start`` is set: everything NCMEC holds
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: entries newer than this wait for the next sync (late commits, clock skew)
SETTLE = timedelta(minutes=5)
#: pytx's experience: NCMEC paging links are not to be trusted after this
PAGING_LINK_LIFETIME = timedelta(hours=12)
#: the longest window an empty stretch of history grows to
MAX_WINDOW = timedelta(days=366)
_CHECKPOINT_VERSION = 1
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


#: which NCMEC database: the names of threatexchange's ``NCMECEnvironment`` (persisted
#: in settings; never rename one)
Environment = Literal[
    "Industry", "Industry_Exploitative", "LawEnforcement", "NGO", "Exploitative",
    "NGO_Generative_AI", "NGO_Generative_AI_Exploitative", "test_Industry",
    "test_Industry_Exploitative", "test_LawEnforcement", "test_NGO", "test_Exploitative",
    "test_NGO_Generative_AI", "test_NGO_Generative_AI_Exploitative",
]  # fmt: skip
ENVIRONMENTS: Mapping[Environment, str] = {
    "Industry": "https://report.cybertip.org/hashsharing",
    "Industry_Exploitative": "https://report.cybertip.org/exploitative-hashsharing",
    "LawEnforcement": "https://lesp.ncmec.org/csam-hashsharing",
    "NGO": "https://hashsharing.ncmec.org/npo",
    "Exploitative": "https://hashsharing.ncmec.org/exploitative",
    "NGO_Generative_AI": "https://hashsharing.ncmec.org/generative-ai-csam",
    "NGO_Generative_AI_Exploitative": "https://hashsharing.ncmec.org/generative-ai-exploitative",
    "test_Industry": "https://exttest.cybertip.org/hashsharing",
    "test_Industry_Exploitative": "https://exttest.cybertip.org/exploitative-hashsharing",
    "test_LawEnforcement": "https://betalesp.ncmec.org/csam-hashsharing",
    "test_NGO": "https://hashsharing-test.ncmec.org/npo",
    "test_Exploitative": "https://hashsharing-test.ncmec.org/exploitative",
    "test_NGO_Generative_AI": "https://hashsharing-test.ncmec.org/generative-ai-csam",
    "test_NGO_Generative_AI_Exploitative": (
        "https://hashsharing-test.ncmec.org/generative-ai-exploitative"
    ),
}


class NcmecSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: NCMEC's test database unless the operator names another
    environment: Environment = "test_Industry"
    #: replaces the environment's URL (a proxy, a fake); https unless on loopback
    base_url: str | None = None
    #: where the first sync begins (naive times are UTC); by default the whole list
    start: datetime | None = None
    #: the longest from/to window that is read before the time checkpoint moves
    window_hours: int = Field(default=24, ge=1, le=24 * 366)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    retries: int = Field(default=3, ge=0, le=10)
    requests_per_second: float = Field(default=2.0, gt=0, le=1000)
    #: entries this recent wait for the next sync (NCMEC may still commit older stamps)
    settle_seconds: float = Field(default=SETTLE.total_seconds(), ge=0, le=86_400)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def url(self) -> str:
        return self.base_url or ENVIRONMENTS[self.environment]


# -- checkpoint -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Cursor:
    """Where a fetch stands: a window start, and mid-window its end and paging link."""

    start: datetime
    end: datetime | None = None
    next: str | None = None
    paged_at: datetime | None = None

    def dump(self) -> str:
        data: dict[str, Any] = {"v": _CHECKPOINT_VERSION, "from": _fmt(self.start)}
        if self.next is not None:
            assert self.end is not None
            assert self.paged_at is not None
            data |= {"to": _fmt(self.end), "next": self.next, "paged_at": _fmt(self.paged_at)}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def load(cls, checkpoint: str) -> _Cursor:
        try:
            data = json.loads(checkpoint)
            if data.get("v") == _CHECKPOINT_VERSION:
                start = _parse_time(data["from"])
                if "next" not in data:
                    return cls(start=start)
                return cls(
                    start=start,
                    end=_parse_time(data["to"]),
                    next=str(data["next"]),
                    paged_at=_parse_time(data["paged_at"]),
                )
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        raise ExchangeError("ncmec: the stored checkpoint is not one this adapter wrote; reset it")


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- XML --------------------------------------------------------------------------------


class _Refused(Exception):
    pass


def _refuse(*_args: object) -> NoReturn:
    raise _Refused


def parse_xml(body: bytes) -> ET.Element:
    """The document as a tree with namespaces stripped; ``ExchangeError`` for anything
    but plain well-formed XML (a DTD or entity declaration is refused outright, so no
    entity expansion or external fetch can happen; ``defusedxml`` is not installed)."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse

    def start(name: str, attributes: dict[str, str]) -> None:
        builder.start(_local(name), {_local(k): v for k, v in attributes.items()})

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda name: builder.end(_local(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
        return builder.close()
    except _Refused:
        raise ExchangeError("ncmec: the answer declares a DTD or entities; refused") from None
    except (expat.ExpatError, AssertionError):
        raise ExchangeError("ncmec: the answer is not well-formed XML") from None


def _local(name: str) -> str:
    return name.rpartition(" ")[2]


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


# -- entries ----------------------------------------------------------------------------

#: the fingerprints we hold, per medium; the rest (PhotoDNA is licensed, NetClean,
#: video fingerprints served from their own endpoints) are named in metadata, not kept
_KEPT: Mapping[str, Mapping[str, Algorithm]] = {
    "image": {"md5": Algorithm.MD5, "sha1": Algorithm.SHA1, "pdq": Algorithm.PDQ},
    "video": {"md5": Algorithm.MD5, "sha1": Algorithm.SHA1},
}
_ENTRY_TAGS = {
    "image": ("image", False),
    "deletedImage": ("image", True),
    "video": ("video", False),
    "deletedVideo": ("video", True),
}
_FEEDBACK_TYPES = {Algorithm.MD5: "MD5", Algorithm.SHA1: "SHA1", Algorithm.PDQ: "PDQ"}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Entry:
    key: str
    media: str
    deleted: bool
    member_id: int
    ncmec_id: str
    timestamp: datetime | None
    classification: str | None
    fingerprints: tuple[tuple[Algorithm, str], ...]
    ignored: tuple[str, ...]


@dataclass(kw_only=True, slots=True)
class _Page:
    entries: list[_Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    next: str | None = None


def read_page(root: ET.Element) -> _Page:
    """The entries of one ``queryResult``; a malformed entry or fingerprint is skipped
    with a reason, never raised."""
    if root.tag != "queryResult":
        raise ExchangeError(f"ncmec: expected a queryResult, got <{root.tag}>")
    page = _Page(next=_text(root.find("paging/next")))
    for container in (root.find("images"), root.find("videos")):
        for position, element in enumerate(container if container is not None else (), 1):
            where = f"{container.tag if container is not None else ''}[{position}]"
            kind = _ENTRY_TAGS.get(element.tag)
            if kind is None:
                page.skipped.append(f"{where}: unknown element <{element.tag}>")
                continue
            try:
                page.entries.append(_entry(element, *kind, page.skipped))
            except InvalidRow as exc:
                page.skipped.append(f"{where}: {exc}")
    return page


def _entry(element: ET.Element, media: str, deleted: bool, skipped: list[str]) -> _Entry:
    member = element.find("member")
    member_id = member.get("id", "").strip() if member is not None else ""
    if not member_id.isdigit():
        raise InvalidRow(f"{element.tag} without a numeric member id")
    ncmec_id = _text(element.find("id"))
    if ncmec_id is None:
        raise InvalidRow(f"{element.tag} of member {member_id} without an id")
    key = f"{int(member_id)}:{ncmec_id}"
    check_storable(key, "entry id")
    stamp = _text(element.find("timestamp"))
    try:
        timestamp = _parse_time(stamp) if stamp is not None else None
    except ValueError:
        raise InvalidRow(f"{media} {key}: timestamp is not ISO 8601") from None
    classification = _text(element.find("classification"))
    check_storable(classification, "classification")
    kept: list[tuple[Algorithm, str]] = []
    ignored: set[str] = set()
    fingerprints = element.find("fingerprints")
    for fingerprint in fingerprints if fingerprints is not None else ():
        name = fingerprint.tag.lower()
        algorithm = _KEPT[media].get(name)
        if algorithm is None:
            ignored.add(name)
            continue
        try:
            kept.append((algorithm, normalise_hash(algorithm, fingerprint.text or "")))
        except InvalidRow as exc:
            skipped.append(f"{media} {key}: {exc}")
    return _Entry(
        key=key,
        media=media,
        deleted=deleted,
        member_id=int(member_id),
        ncmec_id=ncmec_id,
        timestamp=timestamp,
        classification=classification,
        fingerprints=tuple(dict.fromkeys(kept)),
        ignored=tuple(sorted(ignored)),
    )


def _batch(page: _Page, environment: str, checkpoint: str) -> SyncBatch:
    latest: dict[str, _Entry] = {}
    for entry in page.entries:  # listed twice in one page: its latest state counts
        seen = latest.get(entry.key)
        if seen is None or (entry.timestamp or EPOCH) >= (seen.timestamp or EPOCH):
            latest[entry.key] = entry
    upserts: dict[tuple[Algorithm, str], BankEntry] = {}
    for entry in latest.values():
        if entry.deleted:
            continue
        for algorithm, value in entry.fingerprints:
            # a hash listed by two entries is one bank entry: the first names it
            upserts.setdefault(
                (algorithm, value),
                BankEntry(
                    algorithm=algorithm,
                    value=value,
                    entry_id=entry.key,
                    category=entry.classification,
                    metadata=_metadata(entry, environment),
                ),
            )
    removals: dict[tuple[Algorithm, str], None] = {}
    removed_ids: list[str] = []
    for entry in latest.values():
        if not entry.deleted:
            continue
        if not entry.fingerprints:
            removed_ids.append(entry.key)
        for signal in entry.fingerprints:
            if signal not in upserts:  # another live entry still lists the hash
                removals[signal] = None
    unusable = sum(1 for e in latest.values() if not e.deleted and not e.fingerprints)
    if unusable:
        log.info("ncmec: %d entries carry no fingerprint this bank holds", unusable)
    return SyncBatch(
        upserts=tuple(upserts.values()),
        removals=tuple(removals),
        removed_entry_ids=tuple(removed_ids),
        skipped=tuple(page.skipped),
        checkpoint=checkpoint,
    )


def _metadata(entry: _Entry, environment: str) -> dict[str, Any]:
    metadata = {
        "media": entry.media,
        "member_id": entry.member_id,
        "ncmec_id": entry.ncmec_id,
        "environment": environment,
        "timestamp": _fmt(entry.timestamp) if entry.timestamp is not None else None,
        "classification": entry.classification,
        "ignored_fingerprints": list(entry.ignored) or None,
    }
    return {name: value for name, value in metadata.items() if value is not None}


# -- the adapter ------------------------------------------------------------------------


class NcmecExchange(ListSource):
    name = "ncmec"
    description = (
        "NCMEC hash sharing (API v2): image MD5/SHA-1/PDQ and video MD5/SHA-1, with feedback"
    )
    terms = (
        "Registered ESPs or NGOs with NCMEC's hash-sharing agreement (legal basis 18 USC "
        "2258C). List contents are confidential; PhotoDNA fingerprints are never stored."
    )
    Settings: ClassVar[type[BaseModel]] = NcmecSettings
    secrets = ("username", "password")
    algorithms = frozenset({Algorithm.MD5, Algorithm.SHA1, Algorithm.PDQ})

    def __init__(
        self,
        settings: BaseModel,
        secrets: Mapping[str, SecretStr],
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``clock`` (aware UTC ``datetime``) decides where a sync ends; tests fix it."""
        super().__init__(settings, secrets)
        assert isinstance(settings, NcmecSettings)
        self.options = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._client = ServiceClient(
            settings.url,
            service=self.name,
            timeout=settings.timeout_seconds,
            retry=RetryPolicy(attempts=settings.retries + 1),
            per_second=settings.requests_per_second,
            headers={"Accept": "application/xml"},
            auth=(
                secrets["username"].get_secret_value(),
                secrets["password"].get_secret_value(),
            ),
        )
        #: fingerprint type -> reason name -> guid, as NCMEC lists them
        self._reasons: dict[str, dict[str, str]] = {}

    # -- sync ---------------------------------------------------------------------------

    def fetch(self, checkpoint: str | None) -> Iterator[SyncBatch]:
        now = self._clock().astimezone(UTC).replace(microsecond=0)
        until = now - timedelta(seconds=self.options.settle_seconds)
        window = timedelta(hours=self.options.window_hours)
        span = window
        if checkpoint is None:
            cursor = _Cursor(start=self.options.start or EPOCH)
        else:
            cursor = _Cursor.load(checkpoint)
        if cursor.next is not None and cursor.end is not None and cursor.paged_at is not None:
            self._check_link(cursor.next, cursor.start, cursor.end, previous=None)
            if now - cursor.paged_at > PAGING_LINK_LIFETIME:
                log.info("ncmec: paging link too old; reading its window again")
                cursor = _Cursor(start=cursor.start)
        while cursor.next is not None or cursor.start < until:
            end = cursor.end if cursor.end is not None else min(cursor.start + span, until)
            pages = 0
            link = cursor.next
            while True:
                root = self._entries(cursor.start, end, link)
                page = read_page(root)
                pages += 1
                if page.next is not None:
                    page.next = self._check_link(page.next, cursor.start, end, previous=link)
                    link = page.next
                    after = _Cursor(start=cursor.start, end=end, next=link, paged_at=self._clock())
                else:
                    after = _Cursor(start=end)
                log.debug(
                    "ncmec: window %s..%s page %d: %d entries, %d skipped",
                    _fmt(cursor.start),
                    _fmt(end),
                    pages,
                    len(page.entries),
                    len(page.skipped),
                )
                yield _batch(page, self.options.environment, after.dump())
                if page.next is None:
                    break
            # an empty stretch of history is crossed in growing steps; a full one
            # is read in windows of the configured length
            single = pages == 1 and cursor.next is None
            span = min(span * 2, MAX_WINDOW) if single else window
            cursor = after

    def _entries(self, start: datetime, end: datetime, link: str | None) -> ET.Element:
        if link is None:
            return self._get("/v2/entries", params={"from": _fmt(start), "to": _fmt(end)})
        return self._get(link)

    @staticmethod
    def _check_link(link: str, start: datetime, end: datetime, *, previous: str | None) -> str:
        """A ``next`` link is followed with our credentials: it must stay on the entries
        endpoint of this service, for this window, and move."""
        parts = urlsplit(link)
        if parts.scheme or parts.netloc or parts.path != "/v2/entries":
            raise ExchangeError("ncmec: the paging link leaves the entries endpoint; refused")
        query = parse_qs(parts.query)
        for name, expected in (("from", start), ("to", end)):
            try:
                moved = name in query and _parse_time(query[name][0]) != expected
            except ValueError:
                moved = True
            if moved:
                raise ExchangeError(f"ncmec: the paging link changes the window's {name!r}")
        if link == previous:
            raise ExchangeError("ncmec: the paging link does not advance")
        return link

    # -- feedback -----------------------------------------------------------------------

    def send_feedback(self, feedback: Feedback) -> None:
        """PUT our verdict on one fingerprint of an entry (``entry_id`` "member:id")."""
        kind = _FEEDBACK_TYPES.get(feedback.algorithm)
        if kind is None:
            raise FeedbackUnsupported(f"ncmec takes no feedback on {feedback.algorithm}")
        member, _, ncmec_id = feedback.entry_id.partition(":")
        if not member.isdigit() or not ncmec_id:
            raise ExchangeError("ncmec: feedback needs an entry id of the form 'member:id'")
        root = ET.Element("feedbackSubmission", xmlns=NAMESPACE)
        if feedback.verdict is FeedbackVerdict.CONFIRMED:
            ET.SubElement(root, "affirmative")
        else:
            guid = self._reason_id(kind, feedback)
            negative = ET.SubElement(root, "negative")
            ET.SubElement(ET.SubElement(negative, "reasonIds"), "guid").text = guid
        path = f"/v2/entries/{member}/{quote(ncmec_id, safe='')}/{kind}/feedback"
        self._call(
            "PUT",
            path,
            label=f"PUT /v2/entries/{{member}}/{{id}}/{kind}/feedback",
            content=ET.tostring(root, encoding="utf-8", xml_declaration=True),
            headers={"Content-Type": "application/xml; charset=utf-8"},
        )

    def _reason_id(self, kind: str, feedback: Feedback) -> str:
        given = feedback.metadata.get("reason_id")
        if given is not None:
            if not isinstance(given, str) or not _GUID.fullmatch(given):
                raise ExchangeError("ncmec: metadata reason_id must be a reason GUID")
            return given
        reasons = self.feedback_reasons(kind)
        wanted = (feedback.reason or "").strip().casefold()
        for name, guid in reasons.items():
            if wanted and name.strip().casefold() == wanted:
                return guid
        if len(reasons) == 1:
            return next(iter(reasons.values()))
        raise ExchangeError(
            f"ncmec: negative feedback on {kind} needs one of NCMEC's reasons "
            f"(give its name as the reason): {sorted(reasons) or 'none offered'}"
        )

    def feedback_reasons(self, kind: str) -> dict[str, str]:
        """NCMEC's reasons for negative feedback on fingerprint type ``kind`` (name ->
        GUID), read once per adapter."""
        if kind not in self._reasons:
            root = self._get(f"/v2/feedback/{quote(kind, safe='')}/reasons")
            reasons: dict[str, str] = {}
            for reason in root.iter("reason"):  # availableFeedbackReasons/reason
                guid, name = reason.get("guid", ""), reason.get("name", "")
                if _GUID.fullmatch(guid) and name:
                    reasons[name] = guid
            self._reasons[kind] = reasons
        return self._reasons[kind]

    # -- HTTP ---------------------------------------------------------------------------

    def _get(self, path: str, *, params: Mapping[str, str] | None = None) -> ET.Element:
        response = self._call("GET", path, label=f"GET {urlsplit(path).path}", params=params)
        return parse_xml(response.content)

    def _call(self, method: str, path: str, *, label: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except ServiceError as exc:
            raise ExchangeError(str(exc)) from None
        status = response.status_code
        if status in (401, 403):
            raise ExchangeError(
                f"ncmec: {label} refused the credentials ({status}); check the username, "
                f"the password and that they are valid for {self.options.environment}"
            )
        if not 200 <= status < 300:
            raise ExchangeError(f"ncmec: {label} answered {status}")
        return response

    def close(self) -> None:
        self._client.close()
