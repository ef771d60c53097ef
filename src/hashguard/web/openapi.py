"""The OpenAPI document as the app really answers: problems, bearer tokens, limits.

FastAPI documents its own 422 as ``application/json`` HTTPValidationError; every error
here is an RFC 9457 problem (problems.py), and every /v1 route may also answer 401 and
403 (the gate and the scope check), 413 (the body limit) and 400/422 (a body or a
parameter it cannot use); so does /metrics, unless ``metrics_public`` opens it (401 and
403: it takes no body). This hook writes that into the document once, for all routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hashguard.web.gate import METRICS
from hashguard.web.problems import PROBLEM_JSON, TITLES

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_METHODS = ("get", "put", "post", "delete", "patch")


def _problem(status: int) -> dict[str, Any]:
    return {"description": TITLES[status], "content": {PROBLEM_JSON: {"schema": _PROBLEM}}}


def document(app: FastAPI, *, metrics_public: bool = False) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a token from `hashguard tokens create` (shown once)",
        }
    }
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = [422] if operation.get("parameters") or "requestBody" in operation else []
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}]
                statuses += [401, 403, 413]
            elif path == METRICS and not metrics_public:
                operation["security"] = [{"bearer": []}]
                statuses += [401, 403]
            if "requestBody" in operation:
                statuses.append(400)
            for status in statuses:
                responses[str(status)] = _problem(status)
    app.openapi_schema = doc
    return doc
