"""The NCMEC CyberTipline report sink (ESP reporting API), from its documented contract.

HTTP Basic auth; XML bodies (``text/xml; charset=utf-8``): ``POST /submit`` a
``<report>`` → ``reportResponse{responseCode, responseDescription, reportId}``;
``POST /upload`` (multipart: ``id``, ``file``) → ``reportResponse{…, fileId, hash}``
where ``hash`` is the MD5 of what NCMEC received; ``POST /fileinfo`` a ``<fileDetails>``;
``POST /finish`` (form ``id``) → ``reportDoneResponse{responseCode, reportId,
files/fileId*}``; ``POST /retract`` (form ``id``); ``GET /status``; ``GET /xsd``.
Every document is validated against NCMEC's XSD before it is sent (``schema_file``:
fetch it with ``GET /xsd``, never vendor it). Facts: ``reference/services.md`` §3.

Response codes (services.md §3) and what they mean here: 0 OK; 1000 server error, 1100
save failed, 1110/1111 upload failed, 1300 update failed: retryable; 2000 authentication
required, 3000/3100/3300 not authorised, 4000 invalid request, 4100 validation failed,
4110 malformed XML, 4200 malformed file, 1210 not found: permanent; 5001/5002 report or
file does not exist: expired (an unfinished report is cancelled by NCMEC on a timeout);
5101 already retracted (for a retraction) and 5102 already finished (for a finish):
already done, otherwise permanent. Any other code is permanent (fail visibly). No answer
at all (a timeout, a refused connection, HTTP 5xx or 429 without a parseable body) is
retryable.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from xml.etree import ElementTree as ET

import httpx
import xmlschema
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hashguard.banks.exchanges.base import ExchangeError
from hashguard.banks.exchanges.ncmec import parse_xml
from hashguard.domain.reports import IpCapture, ReportDraft, ReportFile, SinkAnswer, SinkOutcome
from hashguard.httpclient import RetryPolicy, ServiceClient, ServiceError, check_base_url
from hashguard.reports.base import InvalidReport, ReportSink

log = logging.getLogger("hashguard.reports.ncmec")

PRODUCTION_URL = "https://report.cybertip.org/ispws"
TEST_URL = "https://exttest.cybertip.org/ispws"
#: the only incident type hashguard reports: known CSAM found on the host
INCIDENT_TYPE = "Child Pornography (possession, manufacture, and distribution)"
XML_TYPE = "text/xml; charset=utf-8"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_SCHEMA_LOCATION = "https://report.cybertip.org/ispws/xsd"

RETRYABLE_CODES = frozenset({1000, 1100, 1110, 1111, 1300})
PERMANENT_CODES = frozenset({1210, 2000, 3000, 3100, 3300, 4000, 4100, 4110, 4200})
EXPIRED_CODES = frozenset({5001, 5002})
ALREADY_RETRACTED = 5101
ALREADY_FINISHED = 5102

Step = Literal["submit", "upload", "fileinfo", "finish", "retract", "status"]


def map_code(code: int, step: Step) -> SinkOutcome:
    """What NCMEC's response ``code`` to ``step`` means (module docstring)."""
    if code == 0:
        return SinkOutcome.OK
    if code in RETRYABLE_CODES:
        return SinkOutcome.RETRYABLE
    if code in EXPIRED_CODES:
        return SinkOutcome.EXPIRED
    if (code, step) in ((ALREADY_RETRACTED, "retract"), (ALREADY_FINISHED, "finish")):
        return SinkOutcome.ALREADY_DONE
    return SinkOutcome.PERMANENT


class CyberTiplineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: NCMEC's test environment unless the operator switches to production
    environment: Literal["test", "production"] = "test"
    test_url: str = TEST_URL
    production_url: str = PRODUCTION_URL
    #: NCMEC's XSD (``GET /xsd``, ``hashguard reports schema --fetch``); required to send
    schema_file: str | None = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    requests_per_second: float = Field(default=2.0, gt=0, le=1000)
    #: the host signed NCMEC's hash-sharing MOU: only then is a file's
    #: ``industryClassification`` sent (never otherwise, even when a reviewer set one)
    industry_classification_mou: bool = False

    @field_validator("test_url", "production_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return check_base_url(value)

    @property
    def url(self) -> str:
        return self.production_url if self.environment == "production" else self.test_url


@functools.lru_cache(maxsize=4)
def _schema(path: str, mtime_ns: int) -> xmlschema.XMLSchema10:
    del mtime_ns  # part of the cache key: a replaced schema file is read again
    return xmlschema.XMLSchema10(path)


def validate(document: bytes, schema_file: str | None) -> bytes:
    """``document`` when NCMEC's XSD at ``schema_file`` accepts it; ``InvalidReport``
    saying why otherwise (also when no schema is configured: nothing unvalidated goes)."""
    if not schema_file:
        raise InvalidReport(
            "no CyberTipline schema: run `hashguard reports schema --fetch` or set "
            "schema_file with `hashguard reports settings`"
        )
    path = Path(schema_file)
    try:
        schema = _schema(str(path), path.stat().st_mtime_ns)
    except (OSError, xmlschema.XMLSchemaException) as exc:
        raise InvalidReport(f"the CyberTipline schema {path} cannot be used: {exc}") from None
    errors = list(schema.iter_errors(ET.fromstring(document)))  # noqa: S314 (our own XML)
    if errors:
        first = errors[0]
        raise InvalidReport(
            f"the document does not follow NCMEC's schema ({len(errors)} problem(s)); first: "
            f"{first.reason} at {first.path}"
        )
    return document


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _root(tag: str) -> ET.Element:
    return ET.Element(tag, {"xmlns:xsi": _XSI, "xsi:noNamespaceSchemaLocation": _SCHEMA_LOCATION})


def _bytes(root: ET.Element) -> bytes:
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _ip_capture(parent: ET.Element, capture: IpCapture) -> None:
    event = _sub(parent, "ipCaptureEvent")
    _sub(event, "ipAddress", capture.ip)
    _sub(event, "eventName", str(capture.event))
    if capture.at is not None:
        _sub(event, "dateTime", _time(capture.at))
    if capture.possible_proxy is not None:
        _sub(event, "possibleProxy", "true" if capture.possible_proxy else "false")
    if capture.port is not None:
        _sub(event, "port", str(capture.port))


def _reported_user(root: ET.Element, draft: ReportDraft) -> None:
    """``personOrUserReported``: the case's uploader id, and what the platform said of
    the uploader (e-mails, ESP id, screen name, display names, IP capture events)."""
    details = draft.uploader
    esp_id = (details.esp_id if details else None) or draft.uploader_id
    if not esp_id and details is None:
        return
    user = _sub(root, "personOrUserReported")
    if details is not None and details.emails:
        person = _sub(user, "personOrUserReportedPerson")
        for address in details.emails:
            _sub(person, "email", address)
    if esp_id:
        _sub(user, "espIdentifier", esp_id)
    if draft.reporter.platform:
        _sub(user, "espService", draft.reporter.platform)
    if details is None:
        return
    if details.screen_name:
        _sub(user, "screenName", details.screen_name)
    for name in details.display_names:
        _sub(user, "displayName", name)
    for capture in details.ip_captures:
        _ip_capture(user, capture)


def report_xml(draft: ReportDraft) -> bytes:
    """The ``<report>`` of ``draft``, elements in the XSD's order."""
    root = _root("report")
    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", INCIDENT_TYPE)
    if draft.reporter.platform:
        _sub(summary, "platform", draft.reporter.platform)
    _sub(summary, "incidentDateTime", _time(draft.incident_at))
    if draft.incident_description:
        _sub(summary, "incidentDateTimeDescription", draft.incident_description)
    if draft.url:
        _sub(_sub(_sub(root, "internetDetails"), "webPageIncident"), "url", draft.url)
    reporter = _sub(root, "reporter")
    person = _sub(reporter, "reportingPerson")
    _sub(person, "firstName", draft.reporter.first_name)
    _sub(person, "lastName", draft.reporter.last_name)
    _sub(person, "email", draft.reporter.email)
    if draft.reporter.company_template:
        _sub(reporter, "companyTemplate", draft.reporter.company_template)
    if draft.reporter.legal_url:
        _sub(reporter, "legalURL", draft.reporter.legal_url)
    _reported_user(root, draft)
    if draft.additional_info:
        _sub(root, "additionalInfo", draft.additional_info)
    return _bytes(root)


def file_xml(remote_id: str, file_id: str, file: ReportFile, *, mou: bool = False) -> bytes:
    """The ``<fileDetails>`` of one uploaded file, elements in the XSD's order. Exact
    hashes go in ``originalFileHash``; a (reference-mode) PDQ hash, a perceptual hash
    and not a hash of the file's bytes, goes in ``details type="HASH"`` as NCMEC's
    examples do. The reviewers' ``fileAnnotations``; ``industryClassification`` only
    with ``mou`` (the host signed NCMEC's hash-sharing MOU); the upload's time and IP
    address when the platform gave them."""
    root = _root("fileDetails")
    _sub(root, "reportId", remote_id)
    _sub(root, "fileId", file_id)
    _sub(root, "fileName", file.name)
    if file.uploaded_at is not None:
        _sub(root, "uploadedToEspTimestamp", _time(file.uploaded_at))
    if file.location:
        _sub(root, "locationOfFile", file.location)
    _sub(root, "fileViewedByEsp", "true" if file.viewed else "false")
    if file.annotations:
        tags = _sub(root, "fileAnnotations")
        for annotation in sorted(set(file.annotations)):
            _sub(tags, annotation.xml_name, "true")
    if mou and file.classification is not None:
        _sub(root, "industryClassification", str(file.classification))
    exact = [h for h in file.hashes if h.kind != "PDQ"]
    perceptual = [h for h in file.hashes if h.kind == "PDQ"]
    for item in exact:
        _sub(root, "originalFileHash", item.value, hashType=item.kind)
    if file.upload_ip is not None:
        _ip_capture(root, file.upload_ip)
    if perceptual:
        details = _sub(root, "details", type="HASH")
        for item in perceptual:
            pair = _sub(details, "nameValuePair")
            _sub(pair, "name", item.kind)
            _sub(pair, "value", item.value)
    return _bytes(root)


def _text(root: ET.Element, tag: str) -> str | None:
    found = root.find(tag)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


class CyberTiplineSink(ReportSink):
    name: ClassVar[str] = "cybertipline"
    description: ClassVar[str] = "NCMEC CyberTipline: the US report of apparent CSAM (18 USC 2258A)"
    Settings: ClassVar[type[BaseModel]] = CyberTiplineSettings
    secrets: ClassVar[tuple[str, ...]] = ("username", "password")
    terms: ClassVar[str] = "Registered US electronic service providers, with NCMEC credentials"

    def __init__(
        self,
        settings: BaseModel,
        secrets: Mapping[str, SecretStr],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings, secrets)
        options = self.options
        self.environment = options.environment
        self._client = ServiceClient(
            options.url,
            service=self.name,
            timeout=options.timeout_seconds,
            # one try per call: the state machine retries, with backoff, across processes
            retry=RetryPolicy(attempts=1),
            per_second=options.requests_per_second,
            auth=(
                self.credentials["username"].get_secret_value(),
                self.credentials["password"].get_secret_value(),
            ),
            transport=transport,
        )

    @property
    def options(self) -> CyberTiplineSettings:
        assert isinstance(self.settings, CyberTiplineSettings)
        return self.settings

    # -- documents --

    def report_document(self, draft: ReportDraft) -> bytes:
        return validate(report_xml(draft), self.options.schema_file)

    def file_document(self, remote_id: str, file_id: str, file: ReportFile) -> bytes:
        document = file_xml(remote_id, file_id, file, mou=self.options.industry_classification_mou)
        return validate(document, self.options.schema_file)

    # -- calls --

    def _call(self, step: Step, method: str, path: str, **kwargs: Any) -> SinkAnswer:
        try:
            response = self._client.request(method, path, **kwargs)
        except ServiceError as exc:
            return SinkAnswer(outcome=SinkOutcome.RETRYABLE, code=None, description=str(exc))
        raw = response.content
        try:
            root = parse_xml(raw)
            code = int(_text(root, "responseCode") or "")
        except (ExchangeError, ValueError):
            retry = response.status_code >= 500 or response.status_code == 429
            return SinkAnswer(
                outcome=SinkOutcome.RETRYABLE if retry else SinkOutcome.PERMANENT,
                code=None,
                description=f"HTTP {response.status_code} without a CyberTipline answer",
                raw=raw,
            )
        files = root.find("files")
        return SinkAnswer(
            outcome=map_code(code, step),
            code=code,
            description=_text(root, "responseDescription") or "",
            raw=raw,
            remote_id=_text(root, "reportId"),
            file_id=_text(root, "fileId"),
            md5=(_text(root, "hash") or "").lower() or None,
            file_ids=tuple(
                (f.text or "").strip() for f in (files if files is not None else ()) if f.text
            ),
        )

    def submit(self, document: bytes) -> SinkAnswer:
        return self._call(
            "submit", "POST", "/submit", content=document, headers={"Content-Type": XML_TYPE}
        )

    def upload(self, remote_id: str, name: str, data: bytes) -> SinkAnswer:
        return self._call(
            "upload",
            "POST",
            "/upload",
            data={"id": remote_id},
            files={"file": (name, data, "application/octet-stream")},
        )

    def send_file_details(self, document: bytes) -> SinkAnswer:
        return self._call(
            "fileinfo", "POST", "/fileinfo", content=document, headers={"Content-Type": XML_TYPE}
        )

    def finish(self, remote_id: str) -> SinkAnswer:
        return self._call("finish", "POST", "/finish", data={"id": remote_id})

    def retract(self, remote_id: str) -> SinkAnswer:
        return self._call("retract", "POST", "/retract", data={"id": remote_id})

    def status(self) -> SinkAnswer:
        return self._call("status", "GET", "/status")

    def fetch_schema(self) -> bytes:
        """NCMEC's current XSD (``GET /xsd``); ``ServiceError`` when it does not come."""
        response = self._client.request("GET", "/xsd")
        if response.status_code != 200 or b"<xs:schema" not in response.content[:4096]:
            raise ServiceError(
                f"cybertipline: GET /xsd answered {response.status_code} without a schema",
                status=response.status_code,
                retryable=response.status_code >= 500,
            )
        return response.content

    def close(self) -> None:
        self._client.close()
