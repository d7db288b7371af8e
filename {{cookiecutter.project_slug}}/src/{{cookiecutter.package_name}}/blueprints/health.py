"""Probes: liveness never touches Redis, readiness PINGs it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from ..context import services
from ..store import StoreUnavailable

blueprint = Blueprint("health", __name__, url_prefix="/health")


@blueprint.get("/live")
def live() -> dict[str, Any]:
    # Only says the process serves requests: restarting it would not fix a Redis outage.
    return {"status": "ok"}


@blueprint.get("/ready")
def ready() -> Any:
    app = services()
    try:
        app.store.ping()
    except StoreUnavailable as error:
        app.metrics.redis_errors.labels(operation=error.operation).inc()
        response: Response = jsonify(
            {"status": "unavailable", "error": "redis_unavailable", "reason": error.reason}
        )
        response.status_code = 503
        return response
    return {"status": "ok", "redis": "ok"}
