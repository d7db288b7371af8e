"""gunicorn settings; run with ``gunicorn -c gunicorn.conf.py``.

Values come from the same settings as the app (defaults < $CONFIG_FILE < env),
so an invalid value stops gunicorn here with one line, before any worker starts.
"""

import os
import sys
from pathlib import Path

# Only /tmp is writable at runtime.
DEFAULT_METRICS_DIR = "/tmp/{{ cookiecutter.project_slug }}-metrics"
# prometheus_client chooses multiprocess mode when it is first imported, so this
# must be set before the imports below load the app. Empty counts as unset.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = DEFAULT_METRICS_DIR

from gunicorn import util  # noqa: E402
from gunicorn.glogging import Logger  # noqa: E402
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics  # noqa: E402

from {{ cookiecutter.package_name }}.config import ConfigError, load_settings  # noqa: E402
from {{ cookiecutter.package_name }}.errors import rejected_request  # noqa: E402
from {{ cookiecutter.package_name }}.logging_setup import gunicorn_logconfig  # noqa: E402

try:
    settings = load_settings()
except ConfigError as error:
    sys.exit(f"configuration error: {error}")

wsgi_app = "{{ cookiecutter.package_name }}.wsgi:app"
bind = f"0.0.0.0:{settings.port}"
# Kubernetes scales by adding pods, and os.cpu_count() reports the node's cores,
# not the pod's CPU limit, so the default is a fixed 2 rather than 2 * cores + 1.
# Raise GUNICORN_WORKERS when one pod gets several dedicated cores.
workers = settings.gunicorn_workers
# Threads overlap the time spent waiting for Redis; gthread also handles keep-alive.
# The template's benchmark (make bench) found 2, 4 and 8 threads within noise on two
# cores; 4 (GUNICORN_THREADS) leaves room for slow clients with little GIL contention.
worker_class = "gthread"
threads = settings.gunicorn_threads
timeout = settings.gunicorn_timeout
# Below Kubernetes' default terminationGracePeriodSeconds (30 s), so in-flight
# requests finish before the kubelet sends SIGKILL.
graceful_timeout = settings.gunicorn_graceful_timeout
keepalive = settings.gunicorn_keepalive
# Each worker listens on its own socket (SO_REUSEPORT; gunicorn >= 24) and the kernel
# spreads new connections evenly over them. With one shared socket the worker that
# wakes first takes a burst of keep-alive connections alone: the template's benchmark
# saw 31 of 32 connections on one worker, halving throughput.
reuse_port = True
proc_name = "{{ cookiecutter.project_slug }}"

# Logs: JSON on stdout/stderr through the app's handlers. The app writes one
# request line per request (with correlation id and duration), so gunicorn's
# access log stays off instead of logging every request twice.
accesslog = None
errorlog = "-"
loglevel = settings.log_level.lower()
logconfig_dict = gunicorn_logconfig(settings.log_level, settings.log_format)


class NoAccessLogLogger(Logger):
    """gunicorn's logger minus the access log.

    With logconfig_dict set, gunicorn builds every access-log line and only then
    drops it (gunicorn.access is at WARNING): about 5% of a worker's CPU under
    load, measured with a profiler in the project template's benchmark.
    """

    def access(self, resp, req, environ, request_time):
        return None


logger_class = NoAccessLogLogger


def write_json_error(sock, status_int, reason, mesg):
    util.write_nonblock(sock, rejected_request(status_int, reason, mesg))


# Requests gunicorn rejects itself (malformed HTTP, oversized headers) get the app's JSON
# error body instead of gunicorn's HTML page: its workers send them through this function.
util.write_error = write_json_error

# Worker heartbeat files: /dev/shm is memory-backed, so a slow or read-only disk
# cannot make gunicorn think a worker hangs.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn >= 25.1 would create a control socket under $HOME; the root filesystem
# may be read-only, and nothing here uses gunicornc.
control_socket_disable = True


def on_starting(server):
    # Samples left by a previous run would be added to this run's totals. Only *.db
    # files are removed: the directory may be a mounted volume.
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def when_ready(server):
    # With reuse_port every worker opens its own socket, so gunicorn's
    # "Listening at:" line has no address; say where the workers listen.
    server.log.info("workers listening on %s (SO_REUSEPORT)", bind)


def child_exit(server, worker):
    # Drop the exited worker's live gauges; its counters stay part of the totals.
    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
