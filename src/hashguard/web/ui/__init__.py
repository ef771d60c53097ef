"""The review UI: server-rendered pages under /ui (Jinja templates, no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from hashguard.web.ui import auth, pages

STATIC = Path(__file__).with_name("static")
router = APIRouter(prefix="/ui", include_in_schema=False)
router.include_router(auth.router)
router.include_router(pages.router)
