"""Per-request plumbing: correlation id, response headers, request metrics and log line.

One before- and one after-request hook do all of it: every hook Flask runs costs
a lookup and a call per request, so the metrics are recorded here instead of by
prometheus-flask-exporter's own three hooks.
"""

from __future__ import annotations

import logging
import os
import re
import time

from flask import Flask, Response, g, request

from .config import Settings
from .metrics import AppMetrics

# Accepted in this order; Istio/Envoy set X-Request-ID, other proxies X-Correlation-ID.
CORRELATION_HEADERS = ("X-Request-ID", "X-Correlation-ID")
# The same headers as WSGI environ keys, read directly (cheaper than request.headers).
_CORRELATION_ENVIRON_KEYS = ("HTTP_X_REQUEST_ID", "HTTP_X_CORRELATION_ID")
# A client-supplied id lands in logs and headers: accept only short, plain tokens.
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# Probes and scrapes run every few seconds: their request lines are DEBUG, not INFO,
# and they are not request metrics.
QUIET_PATHS = re.compile(r"^/(health/|metrics$)")

request_log = logging.getLogger("{{ cookiecutter.package_name }}.request")


def _incoming_correlation_id(environ: dict) -> str:
    for key in _CORRELATION_ENVIRON_KEYS:
        value = environ.get(key, "").strip()
        if value and _VALID_ID.fullmatch(value):
            return value
    # 32 hex digits like uuid4().hex, without building a UUID object.
    return os.urandom(16).hex()


def init_request_hooks(app: Flask, settings: Settings, metrics: AppMetrics) -> None:
    # These hooks run on every request: `request` and `g` are context-local proxies
    # that cost a lookup per attribute, so each is read once into a local.
    @app.before_request
    def start_request() -> None:
        context = g._get_current_object()
        context.request_started = time.perf_counter()
        context.correlation_id = _incoming_correlation_id(request.environ)

    @app.after_request
    def finish_request(response: Response) -> Response:
        context = g._get_current_object()
        headers = response.headers
        headers["X-App-Version"] = settings.app_version
        correlation_id = context.get("correlation_id")
        if correlation_id:
            headers["X-Request-ID"] = correlation_id
        current = request._get_current_object()
        path, method, status = current.path, current.method, response.status_code
        quiet = QUIET_PATHS.match(path)
        started = context.get("request_started")
        seconds = time.perf_counter() - started if started else 0.0
        if not quiet:
            metrics.observe_request(method, current.endpoint, status, seconds)
        level = logging.DEBUG if quiet else logging.INFO
        if not request_log.isEnabledFor(level):
            return response
        duration_ms = round(seconds * 1000, 2) if started else None
        request_log.log(
            level,
            "%s %s %s %sms",
            method,
            path,
            status,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "remote_addr": current.remote_addr,
            },
        )
        return response
