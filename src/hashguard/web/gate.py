"""What every /v1 request passes before a byte of its body is read: a token, a size.
(/metrics passes it too, for its token, unless ``metrics_public`` opens it.)

FastAPI reads (and parses) a JSON body before it solves a route's dependencies, so a
check made there would let a client without a token make the server buffer and parse
any body it likes. This middleware answers 401 for a missing or unusable token and
413 for a declared length over the route's limit at once, and counts the body as it
arrives (413 past the limit). An upload to /v1/scan is received here, whole, under the
receive budget (``limits.Receiving``; 503/429 at once when it is full, 408 for a body
that stalls or trickles), and only then admitted to a hashing slot (503/429 at once
when they are full), before any dependency is solved. The scope a
route needs is checked by the route's own dependency (``deps.require``), on the token
left here in the request state.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashguard.settings import Settings
from hashguard.web.limits import Reservation
from hashguard.web.metrics import Metrics
from hashguard.web.problems import ProblemError, problem_response

log = logging.getLogger("hashguard.web")
_LIST_IMPORT = re.compile(r"/v1/banks/[^/]+/import")
SCAN = "/v1/scan"
TOO_LARGE = "Request body too large"


#: HMA's upload routes (web/hma): received and admitted to hashing as /v1/scan
_HMA_UPLOAD = re.compile(r"/hma/(h/hash|m/lookup|c/bank/[^/]+/content)")
#: HMA's health check: open, as /readyz (web/hma)
_HMA_STATUS = "/hma/status"


#: remote services' callbacks (web/api/callbacks.py): their signed URL is the credential
_CALLBACKS = "/v1/callbacks/"
#: Prometheus metrics (web/api/health.py): their series name banks and list sources
METRICS = "/metrics"


def guarded(path: str, *, metrics_public: bool) -> bool:
    """The paths a token guards: /v1 (but remote services' signed callbacks), the
    HMA-compatible /hma (but its status) and /metrics (unless ``metrics_public``)."""
    if path == "/v1" or path.startswith("/v1/"):
        return not path.startswith(_CALLBACKS)
    if path == METRICS:
        return not metrics_public
    return path.startswith("/hma/") and path != _HMA_STATUS


class GateMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, *, metrics_public: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.metrics_public = metrics_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not guarded(path, metrics_public=self.metrics_public):
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
            declared = self._check_declared_length(request, limit)
            upload = scope["method"] == "POST" and (
                path == SCAN or _HMA_UPLOAD.fullmatch(path) is not None
            )
            if upload:
                reservation = svc.receiving.reserve(token.id, declared or 0)
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
        if upload:
            admitted = await self._admit_upload(
                request, token.id, reservation, limit, receive, send
            )
            if admitted is None:
                return
            receive = admitted
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large(limit)
            return message

        held = upload

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

    async def _admit_upload(
        self,
        request: Request,
        token_id: int,
        reservation: Reservation,
        limit: int,
        receive: Receive,
        send: Send,
    ) -> Receive | None:
        """Receive the upload's body, then take a hashing slot for it (held until the
        answer starts; see ``__call__``); the route's ``receive``, or None once answered."""
        svc = request.app.state.services
        try:
            body = await self._receive_body(receive, reservation, limit, svc.settings)
            if body is None:
                return None  # the client went away
            svc.admission.acquire(token_id)
        except ProblemError as exc:
            response = problem_response(request, exc.status, exc.title, exc.detail, exc.headers)
            await response(request.scope, receive, send)
            return None
        finally:
            reservation.release()
        return _replay(body, receive)

    def _check_declared_length(self, request: Request, limit: int) -> int | None:
        """The declared body length (None if not declared); 413 over ``limit``."""
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            return None
        if int(declared) > limit:
            raise ProblemError(413, TOO_LARGE, self._too_large(limit).detail)
        return int(declared)

    async def _receive_body(
        self, receive: Receive, reservation: Reservation, limit: int, settings: Settings
    ) -> bytes | None:
        """The whole body, or None if the client left. 408 when no byte arrives for
        ``upload_read_timeout`` s, or when the body takes longer than that plus its size
        at ``upload_min_bytes_per_second``; 413 past ``limit``."""
        idle, rate = settings.upload_read_timeout, settings.upload_min_bytes_per_second
        started = time.monotonic()
        chunks: list[bytes] = []
        received = 0
        while True:
            deadline = started + idle + max(reservation.size, received) / rate
            wait = min(idle, deadline - time.monotonic())
            try:
                async with asyncio.timeout(max(wait, 0.0)):  # no task per message
                    message = await receive()
            except TimeoutError:
                self.metrics.rejected.labels("slow_body").inc()
                raise ProblemError(
                    408,
                    "Request timeout",
                    f"the upload body stalled or arrived slower than {rate} bytes/s "
                    f"({received} bytes in {time.monotonic() - started:.1f} s)",
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise ProblemError(413, TOO_LARGE, self._too_large(limit).detail)
            reservation.grow(received)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, limit: int) -> HTTPException:
        """An HTTPException, so that FastAPI's body reading passes it on as it is."""
        self.metrics.rejected.labels("too_large").inc()
        return HTTPException(413, f"the limit for this route is {limit} bytes")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body read here, then the client's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
