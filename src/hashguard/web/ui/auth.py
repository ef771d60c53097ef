"""Sign-in and sign-out: local accounts and OpenID Connect. (Being written.)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
