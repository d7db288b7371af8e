"""Errors as JSON: ``{"error": <code>, "message": <text>, "status": <int>, "request_id": <id>}``.

No handler ever returns a stack trace: Redis failures become 503, anything
unexpected becomes a 500 whose details are only in the log.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Flask, Response, g, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from .context import services
from .store import StoreUnavailable

log = logging.getLogger(__name__)

# Headers of werkzeug's own error response that still apply to the JSON one (e.g. Allow on 405).
_REPLACED_HEADERS = {"content-type", "content-length"}
# The server's message for a request it rejects may quote the request line: keep it short.
MAX_REJECTION_MESSAGE = 200


def error_response(status: int, error: str, message: str, **extra: Any) -> Response:
    body: dict[str, Any] = {"error": error, "message": message, "status": status, **extra}
    if has_request_context():
        body["request_id"] = g.get("correlation_id")
    response = jsonify(body)
    response.status_code = status
    return response


def _error_code(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def rejected_request(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP response for a request the server rejects before the app sees it.

    Malformed HTTP (gunicorn.conf.py sends this instead of gunicorn's HTML page): the
    same JSON body as the app's errors, without a request id (there was no request).
    """
    body = {
        "error": _error_code(reason),
        "message": message[:MAX_REJECTION_MESSAGE],
        "status": status,
        "request_id": None,
    }
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode("latin-1") + payload


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    response = error_response(status, _error_code(error.name), error.description or error.name)
    for header, value in error.get_response().headers.items():
        if header.lower() not in _REPLACED_HEADERS:
            response.headers[header] = value
    return response


def _store_unavailable(error: StoreUnavailable) -> Response:
    # The store already logged the outage (once); the reason names internal hosts, so
    # clients get a generic message and /health/ready carries the details.
    services().metrics.redis_errors.labels(operation=error.operation).inc()
    response = error_response(
        503, "redis_unavailable", "the counter store is unavailable, try again shortly"
    )
    response.headers["Retry-After"] = "1"
    return response


def _unexpected(error: Exception) -> Response:
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=error)
    services().metrics.request_exceptions.labels(method=request.method, status=500).inc()
    return error_response(500, "internal_error", "unexpected error; the log has the details")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(Exception, _unexpected)
