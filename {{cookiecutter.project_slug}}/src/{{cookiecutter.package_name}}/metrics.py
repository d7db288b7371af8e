"""Prometheus metrics at /metrics (prometheus-flask-exporter serves them).

Request metrics (``flask_http_request_total{method,status}`` and the histogram
``flask_http_request_duration_seconds{method,endpoint,status}``, the names
prometheus-flask-exporter gives them) are recorded by the app's one after-request
hook (request_hooks.py), not by the exporter's three hooks per request. They skip
/health/* and /metrics, so probes and scrapes do not drown real traffic.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py) and every
worker writes its samples there; a scrape, whichever worker answers it, adds
up all workers. The metric names do not depend on the project name, so
dashboards and alerts work for every service made from the template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from .config import SERVICE_NAME, Settings

# Latency buckets (seconds) around what a Redis-backed request takes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REDIS_OPERATIONS = ("get", "increment", "reset", "ping")
# One label value for every path no route matches, so scanners cannot grow the series.
UNMATCHED = "unmatched"
# Label sets kept ready (labels() takes a lock and builds a key): more distinct
# ones than this (e.g. made-up methods) are still counted, just not cached.
MAX_CACHED_LABELS = 256


@dataclass(frozen=True)
class AppMetrics:
    exporter: PrometheusMetrics
    request_duration: Histogram
    request_total: Counter
    request_exceptions: Counter
    counter_increments: Counter
    counter_resets: Counter
    redis_errors: Counter
    injected_failures: Counter
    _children: dict = field(default_factory=dict, repr=False)

    def observe_request(
        self, method: str, endpoint: str | None, status: int, seconds: float
    ) -> None:
        endpoint = endpoint or UNMATCHED
        key = (method, endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.request_duration.labels(method=method, endpoint=endpoint, status=status),
                self.request_total.labels(method=method, status=status),
            )
            if len(self._children) < MAX_CACHED_LABELS:
                self._children[key] = children
        children[0].observe(seconds)
        children[1].inc()


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def init_metrics(app: Flask, settings: Settings) -> AppMetrics:
    # A registry per app: the factory may build several apps in one process (tests).
    registry = CollectorRegistry()
    exporter_class = GunicornInternalPrometheusMetrics if multiprocess_mode() else PrometheusMetrics
    exporter = exporter_class(
        app,
        path="/metrics",
        registry=registry,
        # The request metrics are defined below and recorded by request_hooks.py.
        export_defaults=False,
    )
    exporter.info(
        "app_info",
        "Version and build of the running service",
        # Names and values as lists: a "name" keyword would clash with info()'s own argument.
        labelnames=("name", "version", "git_sha"),
        labelvalues=(SERVICE_NAME, settings.app_version, settings.git_sha or "unknown"),
    )
    redis_errors = Counter(
        "app_redis_errors",
        "Redis operations that failed (after retries), by operation",
        ["operation"],
        registry=registry,
    )
    for operation in REDIS_OPERATIONS:
        # Export 0 from the start, so rate() and alerts see the series before the first error.
        redis_errors.labels(operation=operation)
    return AppMetrics(
        exporter=exporter,
        request_duration=Histogram(
            "flask_http_request_duration_seconds",
            "Flask HTTP request duration in seconds",
            ["method", "endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        request_total=Counter(
            "flask_http_request_total",
            "Total number of HTTP requests",
            ["method", "status"],
            registry=registry,
        ),
        request_exceptions=Counter(
            "flask_http_request_exceptions_total",
            "Total number of HTTP requests which resulted in an exception",
            ["method", "status"],
            registry=registry,
        ),
        counter_increments=Counter(
            "app_counter_increments",
            "Amount added to the counter by this service (INCR/INCRBY that succeeded)",
            registry=registry,
        ),
        counter_resets=Counter(
            "app_counter_resets", "Counter resets (DELETE /api/counter)", registry=registry
        ),
        redis_errors=redis_errors,
        injected_failures=Counter(
            "app_injected_failures",
            "Counter requests failed on purpose because of FAILURE_RATE",
            registry=registry,
        ),
    )
