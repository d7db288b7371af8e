"""The counter: ``GET /`` (HTML) and ``/api/counter`` (JSON)."""

from __future__ import annotations

import logging
import random
from typing import Any

from flask import Blueprint, Response, abort, request
from markupsafe import escape

from ..context import services
from ..errors import error_response

MAX_INCREMENT = 1000

blueprint = Blueprint("counter", __name__)
log = logging.getLogger(__name__)


def inject_failure() -> Response | None:
    """Fail a FAILURE_RATE share of counter requests on purpose (to demo Istio retries).

    It happens before Redis is touched, so a retried request is not counted twice.
    create_app() installs it as the blueprint's before-request hook only when
    FAILURE_RATE > 0: otherwise it would cost every counter request a call.
    """
    app = services()
    rate = app.settings.failure_rate
    if rate > 0 and random.random() < rate:
        app.metrics.injected_failures.inc()
        log.warning(
            "injected failure for %s %s (FAILURE_RATE=%s)", request.method, request.path, rate
        )
        return error_response(500, "injected_failure", f"failed on purpose (FAILURE_RATE={rate})")
    return None


@blueprint.get("/")
def index() -> Response:
    app = services()
    count = app.store.increment()
    app.metrics.counter_increments.inc()
    times = "time" if count == 1 else "times"
    body = f"{escape(app.settings.greeting)} I have been seen {count} {times}.\n"
    return Response(body, mimetype="text/html")


@blueprint.get("/api/counter")
def read_counter() -> dict[str, Any]:
    return {"count": services().store.count()}


@blueprint.post("/api/counter")
def increment_counter() -> dict[str, Any]:
    app = services()
    amount = _requested_increment()
    count = app.store.increment(amount)
    app.metrics.counter_increments.inc(amount)
    return {"count": count}


@blueprint.delete("/api/counter")
def reset_counter() -> Any:
    app = services()
    if not app.settings.allow_counter_reset:
        return error_response(
            403, "reset_forbidden", "resetting the counter is disabled (ALLOW_COUNTER_RESET=false)"
        )
    app.store.reset()
    app.metrics.counter_resets.inc()
    log.info("counter reset")
    return {"count": 0}


def _requested_increment() -> int:
    """The optional JSON body ``{"by": N}``; no body means 1."""
    if not request.get_data(cache=True):
        return 1
    body = request.get_json()  # invalid JSON -> 400, another content type -> 415
    if not isinstance(body, dict) or set(body) - {"by"}:
        abort(400, description='the body must be a JSON object like {"by": 1}, or empty')
    amount = body.get("by", 1)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_INCREMENT:
        abort(400, description=f'"by" must be an integer from 1 to {MAX_INCREMENT}')
    return amount
