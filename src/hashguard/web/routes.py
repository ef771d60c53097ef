"""The app's routes as one flat list (FastAPI wraps included routers), for what must
find a route outside routing: metrics labels and the Allow header of a 405."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def _flat(routes: Iterable[Any]) -> Iterator[BaseRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat(inner.routes)
        elif isinstance(route, BaseRoute):
            yield route


def matching(scope: Scope) -> list[BaseRoute]:
    """Every route whose path matches the request (whatever its method)."""
    app = scope.get("app")
    return [r for r in _flat(getattr(app, "routes", ())) if r.matches(scope)[0] is not Match.NONE]
