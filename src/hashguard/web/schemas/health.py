"""Shapes of the health probes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)
