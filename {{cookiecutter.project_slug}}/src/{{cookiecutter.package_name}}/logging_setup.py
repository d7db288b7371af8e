"""Logging to the console only: INFO and below on stdout, WARNING and above on stderr.

LOG_FORMAT=json (default) writes one JSON object per line, serialised with orjson
(every request writes one); LOG_FORMAT=text is for reading logs locally. Every
record carries ``correlation_id`` (the request's X-Request-ID, or "-" outside a
request).

The same handlers serve the app and gunicorn's own loggers (see
``gunicorn_logconfig``), so a process never mixes formats. There is no log file:
the container runtime collects stdout/stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

import orjson
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


# LogRecord attributes that are not fields of their own; everything else on a
# record (``extra=``, correlation_id) becomes a field.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: written_at, level, logger, msg, pid, correlation_id, ...

    The fields of json-logging's formatter, which the template used before, from
    the record alone (no second clock read, no per-field type checks), serialised
    by orjson (docs/benchmarks.md of the project template has the figures).
    """

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        fields: dict[str, Any] = {
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int(record.msecs):03d}Z",
            "written_ts": int(record.created * 1e9),
            "type": "log",
            "level": record.levelname,
            "logger": record.name,
            # One line per record, whatever the message holds.
            "msg": record.getMessage().replace("\n", "_").replace("\r", "_").replace("\t", "_"),
            "module": record.module,
            "line_no": record.lineno,
            "thread": record.threadName,
            # Several workers share a stream.
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                fields[key] = value
        if record.exc_info:
            fields["exc_info"] = "".join(traceback.format_exception(*record.exc_info))
            fields["filename"] = record.filename
        try:
            return orjson.dumps(fields, default=repr).decode()
        except orjson.JSONEncodeError:
            # What orjson refuses (an int beyond 64 bits, non-str keys) is shown, never lost.
            return json.dumps(fields, default=repr)


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
