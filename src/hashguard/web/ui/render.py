"""Rendering UI pages: the Jinja environment and the headers every page carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from hashguard.web.ui.session import CSRF_FIELD

HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
)

#: no inline script or style, nothing from elsewhere, never framed, never cached
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def page(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """Render template ``name``. ``who`` (the signed-in person, if any: set by the
    session dependency) and ``csrf_token`` are always in the context."""
    who = getattr(request.state, "signed_in", None)
    values = {
        "who": who,
        "csrf_field": CSRF_FIELD,
        "csrf_token": who.session.csrf_token if who is not None else "",
        **(context or {}),
    }
    response: HTMLResponse = templates.TemplateResponse(request, name, values, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response
