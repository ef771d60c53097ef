"""Errors as RFC 9457 problem details, and a request id on every response."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashguard.domain.text import printable
from hashguard.web.routes import matching

PROBLEM_JSON = "application/problem+json"
#: the HMA-compatible API (web/hma): its invalid requests answer HMA's ``{"message"}`` (400)
HMA_PREFIX = "/hma/"
REQUEST_ID = "X-Request-ID"
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger("hashguard.web")


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, for a person and for a program."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None


class ProblemError(Exception):
    """Raise to answer with a problem; ``headers`` go on the response (e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, request_id=request_id_of(request))
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def request_id_of(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return str(value) if value else None


#: Every route documents these, so clients (and the OpenAPI fuzzer) know their shape.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": TITLES[status]}
        for status in statuses
    }


TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request body too large",
    422: "Invalid request",
    429: "Too many requests for this token",
    500: "Internal error",
    503: "Overloaded or not ready",
}


def install(app: FastAPI) -> None:
    """Problem-details handlers for every error, and the request-id middleware."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(request, exc.status_code, title, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the deepest error says most: a union field (a hash or a vPDQ frame list) reports
        # one error per member, and the member the value was meant for goes deeper
        first: Mapping[str, Any] = max(
            exc.errors(), key=lambda e: len(e.get("loc", ())), default={}
        )
        # a location names what the client sent (a metadata key): never echo unencodable text
        where = printable(".".join(str(part) for part in first.get("loc", ())))
        detail = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
        if request.url.path.startswith(HMA_PREFIX):  # HMA's clients read its error shape
            return JSONResponse({"message": detail}, 400)
        return problem_response(request, 422, TITLES[422], detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"request_id": request_id_of(request)})
        return problem_response(request, 500, TITLES[500], "an internal error occurred")

    app.add_middleware(RequestIdMiddleware)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in matching(request.scope):
        methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


class RequestIdMiddleware:
    """Take the caller's X-Request-ID when it is sane, else make one; echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID.lower().encode(), b"").decode("latin-1")
        request_id = given if _SAFE_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
