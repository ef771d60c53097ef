"""UI errors as pages: ``UiError`` rendered (or a redirect to sign-in), and for /ui paths
the framework's 404, 405 and 422 as pages too rather than problem+json.

The review pages' routes use ``UiRoute``, which renders a ``UiError`` raised anywhere in
the route (its dependencies included), so they work without anything installed on the
app. ``install(app)`` adds the same handling app-wide (sign-in routes, unknown /ui
paths); call it after ``problems.install(app)``, whose handlers it defers to outside /ui.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from hashguard.web.routes import matching
from hashguard.web.ui.render import SECURITY_HEADERS, page
from hashguard.web.ui.session import UiError

UI_PREFIX = "/ui"
TITLES = {
    400: "Bad request",
    401: "Sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Too many requests",
}

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def error_response(request: Request, error: UiError) -> Response:
    """The page for ``error``, or a 303 to its ``location``."""
    if error.location is not None:
        redirect = RedirectResponse(error.location, status_code=303)
        redirect.headers.update(SECURITY_HEADERS)
        return redirect
    return page(
        request,
        "error.html",
        {"status": error.status, "title": error.title, "detail": error.detail},
        status=error.status,
    )


def _invalid(request: Request) -> Response:
    """A path or form value of the wrong shape: for a person, that page does not exist."""
    return error_response(request, UiError(404, "Not found", "there is no such page"))


class UiRoute(APIRoute):
    """A route whose ``UiError``s (from the endpoint or a dependency such as
    ``require``) and malformed paths answer with a page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except UiError as exc:
                return error_response(request, exc)
            except RequestValidationError:
                return _invalid(request)

        return guarded


def _is_ui(request: Request) -> bool:
    path = request.url.path
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        return await answer
    return answer


def install(app: FastAPI) -> None:
    """Render ``UiError`` everywhere, and 404/405/422 under /ui, as pages. Call it after
    ``problems.install(app)``: other paths keep the handlers found here then."""

    async def ui_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UiError)
        return error_response(request, exc)

    app.add_exception_handler(UiError, ui_error)
    before_http: Handler = app.exception_handlers.get(
        StarletteHTTPException, http_exception_handler
    )
    before_invalid: Handler = app.exception_handlers.get(
        RequestValidationError, request_validation_exception_handler
    )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not _is_ui(request):
            return await _call(before_http, request, exc)
        status = exc.status_code
        title = TITLES.get(status, "Error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else ""
        response = error_response(request, UiError(status, title, detail))
        if status == 405:
            methods: set[str] = set()
            for route in matching(request.scope):
                methods |= getattr(route, "methods", None) or set()
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not _is_ui(request):
            return await _call(before_invalid, request, exc)
        return _invalid(request)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
