"""Per-request plumbing: correlation id, the request log line, and response headers."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from .config import Settings

# Accepted in this order; Istio/Envoy set X-Request-ID, other proxies X-Correlation-ID.
CORRELATION_HEADERS = ("X-Request-ID", "X-Correlation-ID")
# A client-supplied id lands in logs and headers: accept only short, plain tokens.
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# Probes and scrapes run every few seconds; their request lines are DEBUG, not INFO.
_QUIET_PATHS = re.compile(r"^/(health/|metrics$)")

request_log = logging.getLogger("{{ cookiecutter.package_name }}.request")


def _incoming_correlation_id() -> str:
    for header in CORRELATION_HEADERS:
        value = request.headers.get(header, "").strip()
        if _VALID_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def init_request_hooks(app: Flask, settings: Settings) -> None:
    @app.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        g.correlation_id = _incoming_correlation_id()

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-App-Version"] = settings.app_version
        correlation_id = g.get("correlation_id")
        if correlation_id:
            response.headers["X-Request-ID"] = correlation_id
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        level = logging.DEBUG if _QUIET_PATHS.match(request.path) else logging.INFO
        request_log.log(
            level,
            "%s %s %s %sms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "remote_addr": request.remote_addr,
            },
        )
        return response
