"""The DSA Transparency Database sink (Art. 24(5)), from its documented API
(``reference/services.md`` §4).

Bearer token (Laravel Sanctum); JSON. ``POST /api/v1/statements`` takes
``{"statements": [...]}`` with 1 to 100 statements and answers 201 ``{"statements":
[{..., "puid", "uuid"}]}``; 422 ``{"errors": {"statement_<i>": {...}}}`` when one is
invalid, or ``{"message", "errors": {"puid": [...], "existing_puids": [...]}}`` when
the platform already filed a puid — in both cases nothing of the batch was stored.
Anything else but 201 means nothing was stored: retry. ``GET /api/ping`` checks
reachability. The sandbox's address is not public (the Commission gives it at
onboarding): it has no default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hashguard.domain.statements import (
    CATEGORY,
    EU_EEA,
    GROUND,
    KEYWORD,
    PUID_PATTERN,
    ContentType,
    StatementOfReasons,
)
from hashguard.httpclient import RetryPolicy, ServiceClient, ServiceError, check_base_url
from hashguard.statements.reasons import OTHER_CONTENT
from hashguard.statements.sink import BatchAnswer, InvalidStatement, StatementSink

PRODUCTION_URL = "https://transparency.dsa.ec.europa.eu"
STATEMENTS_PATH = "/api/v1/statements"
PING_PATH = "/api/ping"
_LIMITS = {
    "illegal_content_legal_ground": 500,
    "illegal_content_explanation": 2000,
    "decision_facts": 5000,
    "decision_ground_reference_url": 500,
    "content_type_other": 500,
    "puid": 500,
}
_REQUIRED = (
    "decision_visibility", "decision_ground", "illegal_content_legal_ground",
    "illegal_content_explanation", "content_type", "category", "content_date",
    "application_date", "decision_facts", "source_type", "automated_detection",
    "automated_decision", "puid",
)  # fmt: skip


class TdbSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the sandbox until the Commission validated the tests and the operator switches
    environment: Literal["sandbox", "production"] = "sandbox"
    sandbox_url: str | None = None
    production_url: str = PRODUCTION_URL
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: the Database allows 200 requests/s per user; stay far below
    requests_per_second: float = Field(default=5.0, gt=0, le=200)

    @field_validator("sandbox_url", "production_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    @property
    def url(self) -> str:
        if self.environment == "production":
            return self.production_url
        if self.sandbox_url is None:
            raise InvalidStatement(
                "no sandbox_url: the Commission gives the sandbox's address at onboarding "
                "(`hashguard statements settings --sandbox-url ...`)"
            )
        return self.sandbox_url


def tdb_document(reasons: StatementOfReasons) -> dict[str, Any]:
    """``reasons`` in the Database's schema: only the fields it defines, nothing
    personal (no source identity, no URL of the content, no account)."""
    document: dict[str, Any] = {
        "decision_visibility": [str(reasons.visibility)],
        "decision_ground": GROUND,
        "illegal_content_legal_ground": reasons.legal_ground,
        "illegal_content_explanation": reasons.explanation,
        "content_type": [str(reasons.content_type)],
        "category": CATEGORY,
        "category_specification": [KEYWORD],
        "territorial_scope": list(reasons.territorial_scope),
        "content_date": reasons.content_date.isoformat(),
        "application_date": reasons.decided_at.date().isoformat(),
        "decision_facts": reasons.facts,
        "source_type": str(reasons.source_type),
        "automated_detection": "Yes" if reasons.automated_detection else "No",
        "automated_decision": str(reasons.automated_decision),
        "puid": reasons.puid,
    }
    if reasons.content_type is ContentType.OTHER:
        document["content_type_other"] = OTHER_CONTENT
    if reasons.reference_url:
        document["decision_ground_reference_url"] = reasons.reference_url
    return check_document(document)


def check_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` if it follows the Database's rules that ``tdb_document`` can break
    (required fields, lengths, the puid's pattern, dates in range, scope codes);
    ``InvalidStatement`` naming the first problem otherwise."""
    missing = [name for name in _REQUIRED if document.get(name) in (None, "", [])]
    if missing:
        raise InvalidStatement(f"missing {', '.join(missing)}")
    for name, limit in _LIMITS.items():
        value = document.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise InvalidStatement(f"{name} is longer than {limit} characters")
    if not re.fullmatch(PUID_PATTERN, document["puid"]):
        raise InvalidStatement("puid holds characters other than letters, digits, '-', '_'")
    if not "2000-01-01" <= document["content_date"] <= "2038-01-01":
        raise InvalidStatement("content_date is outside 2000-2038")
    if not "2020-01-01" <= document["application_date"] <= "2038-01-01":
        raise InvalidStatement("application_date is outside 2020-2038")
    unknown = set(document.get("territorial_scope") or ()) - set(EU_EEA)
    if unknown:
        raise InvalidStatement(f"territorial_scope holds {sorted(unknown)}: not EU/EEA codes")
    return dict(document)


def _invalid(errors: Mapping[str, Any]) -> dict[int, str]:
    found: dict[int, str] = {}
    for key, value in errors.items():
        match = re.fullmatch(r"statement_(\d+)", str(key))
        if match:
            found[int(match.group(1))] = str(value)[:1000]
    return found


class TransparencyDatabaseSink(StatementSink):
    name: ClassVar[str] = "tdb"
    description: ClassVar[str] = (
        "DSA Transparency Database: every statement of reasons of an online platform (Art. 24(5))"
    )
    Settings: ClassVar[type[BaseModel]] = TdbSettings
    secrets: ClassVar[tuple[str, ...]] = ("token",)
    terms: ClassVar[str] = (
        "Online platforms in the EU onboarded by their Digital Services Coordinator"
    )

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
            # one try per call: the filing loop retries with backoff, across processes
            retry=RetryPolicy(attempts=1),
            per_second=options.requests_per_second,
            headers={
                "Authorization": f"Bearer {self.credentials['token'].get_secret_value()}",
                "Accept": "application/json",
            },
            transport=transport,
        )

    @property
    def options(self) -> TdbSettings:
        assert isinstance(self.settings, TdbSettings)
        return self.settings

    def document(self, reasons: StatementOfReasons) -> dict[str, Any]:
        return tdb_document(reasons)

    def submit(self, documents: Sequence[Mapping[str, Any]]) -> BatchAnswer:
        if not 1 <= len(documents) <= self.max_batch:
            raise ValueError(f"a batch holds 1 to {self.max_batch} statements")
        try:
            response = self._client.request(
                "POST", STATEMENTS_PATH, json={"statements": [dict(d) for d in documents]}
            )
        except ServiceError as exc:  # its message names no secret
            return BatchAnswer(status=exc.status, description=str(exc), retryable=True)
        return _answer(response)

    def status(self) -> BatchAnswer:
        try:
            response = self._client.request("GET", PING_PATH)
        except ServiceError as exc:
            return BatchAnswer(status=exc.status, description=str(exc), retryable=True)
        return BatchAnswer(status=response.status_code, description=response.text[:200])

    def close(self) -> None:
        self._client.close()


def _answer(response: httpx.Response) -> BatchAnswer:
    code = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return BatchAnswer(
            status=code, description=f"HTTP {code} without a JSON answer", retryable=True
        )
    if code == 201:
        created = {
            str(s.get("puid")): str(s.get("uuid") or "")
            for s in body.get("statements") or ()
            if isinstance(s, dict) and s.get("puid")
        }
        return BatchAnswer(status=code, description="created", created=created)
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
    assert isinstance(errors, dict)
    if code == 422:
        existing = errors.get("existing_puids") or (body.get("existing") or {}).get("puid")
        if existing:
            puids = [existing] if isinstance(existing, str) else [str(p) for p in existing]
            return BatchAnswer(
                status=code, description=str(body.get("message", ""))[:500], existing=tuple(puids)
            )
        invalid = _invalid(errors)
        if invalid:
            return BatchAnswer(status=code, description="invalid statements", invalid=invalid)
    # anything else stored nothing: try again later (a refused token is fixed by a person)
    message = str(body.get("message", ""))[:300]
    return BatchAnswer(status=code, description=f"HTTP {code}: {message}", retryable=True)
