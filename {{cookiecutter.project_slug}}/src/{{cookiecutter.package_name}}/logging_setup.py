"""Logging to the console only: INFO and below on stdout, WARNING and above on stderr.

LOG_FORMAT=json (default) writes one JSON object per line with the json-logging
library's formatter; LOG_FORMAT=text is for reading logs locally. Every record
carries ``correlation_id`` (the request's X-Request-ID, or "-" outside a request).

The same handlers serve the app and gunicorn's own loggers (see
``gunicorn_logconfig``), so a process never mixes formats. There is no log file:
the container runtime collects stdout/stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import json_logging
from flask import g, has_request_context

TEXT_FORMAT = "%(asctime)s %(levelname)-8s %(name)s [%(correlation_id)s] %(message)s"
# Handlers built here carry this attribute, so reconfiguring replaces them (and only them).
_OWN_HANDLER = "_{{ cookiecutter.package_name }}_handler"


class CorrelationIdFilter(logging.Filter):
    """Adds the current request's correlation id (set by the request hooks) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = g.get("correlation_id", "-") if has_request_context() else "-"
        return True


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class JsonFormatter(json_logging.JSONLogFormatter):
    """json-logging's formatter, plus the process id (several gunicorn workers share a stream)."""

    def _format_log_object(self, record: logging.LogRecord, request_util: Any) -> dict[str, Any]:
        log_object = super()._format_log_object(record, request_util)
        log_object["pid"] = record.process
        # Python 3.12+ adds taskName (always None here): noise in every line.
        log_object.pop("taskName", None)
        return log_object


def _formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def stdout_handler(log_format: str = "json") -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_BelowWarning())
    return _finish(handler, log_format)


def stderr_handler(log_format: str = "json") -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    return _finish(handler, log_format)


def _finish(handler: logging.Handler, log_format: str) -> logging.Handler:
    handler.addFilter(CorrelationIdFilter())
    handler.setFormatter(_formatter(log_format))
    setattr(handler, _OWN_HANDLER, True)
    return handler


def configure_logging(level: str, log_format: str) -> None:
    """Install the stdout/stderr handlers on the root logger; safe to call again."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OWN_HANDLER, False)]:
        root.removeHandler(handler)
        handler.close()
    root.addHandler(stdout_handler(log_format))
    root.addHandler(stderr_handler(log_format))
    root.setLevel(level)


def gunicorn_logconfig(level: str, log_format: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its loggers propagate to the same root handlers."""
    factory = f"{__name__}.%s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level, "handlers": ["stdout", "stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            # The app logs every request itself; gunicorn's access log stays off (accesslog = None).
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
        "handlers": {
            "stdout": {"()": factory % "stdout_handler", "log_format": log_format},
            "stderr": {"()": factory % "stderr_handler", "log_format": log_format},
        },
        "formatters": {},
    }
