"""What every /v1 request passes before a byte of its body is read: a token, a size.

FastAPI reads (and parses) a JSON body before it solves a route's dependencies, so a
check made there would let a client without a token make the server buffer and parse
any body it likes. This middleware answers 401 for a missing or unusable token and
413 for a declared length over the route's limit at once, and counts the body as it
arrives (413 past the limit). An upload to /v1/scan is admitted here too (503/429 at
once when the hashing slots are full), before any dependency is solved. The scope a
route needs is checked by the route's own dependency (``deps.require``), on the token
left here in the request state.
"""

from __future__ import annotations

import logging
import re

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashguard.web.metrics import Metrics
from hashguard.web.problems import ProblemError, problem_response

log = logging.getLogger("hashguard.web")
_LIST_IMPORT = re.compile(r"/v1/banks/[^/]+/import")
SCAN = "/v1/scan"
TOO_LARGE = "Request body too large"


class GateMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        svc = scope["app"].state.services
        limit = svc.list_limit if _LIST_IMPORT.fullmatch(path) else svc.upload_limit
        header = request.headers.get("authorization")
        try:
            token = svc.authenticator.identify_cached(header) or await run_in_threadpool(
                svc.authenticator.identify, header
            )
            self._check_declared_length(request, limit)
            # an upload holds a hashing slot from before its body is read until answered
            admitted = path == SCAN and scope["method"] == "POST"
            if admitted:
                svc.admission.acquire(token.id)
        except ProblemError as exc:
            response = problem_response(request, exc.status, exc.title, exc.detail, exc.headers)
            await response(scope, receive, send)
            return
        except Exception:  # the store is unreachable: not ready, never a bare 500
            log.exception("authenticating a request failed")
            response = problem_response(
                request, 503, "Not ready", "the store cannot be reached", {"Retry-After": "5"}
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["token"] = token
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large(limit)
            return message

        held = admitted

        def release() -> None:
            nonlocal held
            if held:
                held = False
                svc.admission.release(token.id)

        async def answering(message: Message) -> None:
            # the slot frees before the answer leaves: a client that sends its next
            # upload as soon as it has this answer must find the slot free again
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, counted, answering)
        finally:
            release()

    def _check_declared_length(self, request: Request, limit: int) -> None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ProblemError(413, TOO_LARGE, self._too_large(limit).detail)

    def _too_large(self, limit: int) -> HTTPException:
        """An HTTPException, so that FastAPI's body reading passes it on as it is."""
        self.metrics.rejected.labels("too_large").inc()
        return HTTPException(413, f"the limit for this route is {limit} bytes")
