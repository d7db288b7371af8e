"""The hit counter in Redis, with connection pooling, timeouts and bounded retries.

Retry policy (why INCR is never applied twice): redis-py retries a command by
sending it again, and a timeout while *reading* the reply does not tell whether
Redis already executed it. So:

* connecting (TCP connect, AUTH, SELECT) is retried with exponential backoff:
  nothing has been sent yet, so a retry cannot repeat a command;
* reads and idempotent writes (GET, DEL, PING) are retried the same way;
* INCR is sent exactly once on a connection that is already established; if it
  fails after that, the error is reported (503) and never retried.

Only connection errors (refused, reset: Redis restarting) are retried, never
timeouts: a timeout has already used up the time a request has, and redis-py
nests retries (a new connection's first PING has its own), so retrying them
turned a paused Redis into requests of up to 9x REDIS_SOCKET_TIMEOUT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from .config import SERVICE_NAME, Settings

# Retries after the first attempt, waiting 0.1 s, then 0.2 s: short enough for a
# web request, long enough to ride out a Redis restart or a dropped connection.
RETRIES = 2
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 0.5
# Timeouts are not retried (see above).
RETRIED_ERRORS = (redis.ConnectionError,)
# Idle pooled connections are PINGed before reuse after this long, so a
# half-open connection (Redis restarted, NAT timeout) is replaced, not used.
HEALTH_CHECK_INTERVAL_SECONDS = 30
# The readiness probe must answer well within the kubelet's probe timeout (1 s by default).
PROBE_TIMEOUT_SECONDS = 0.5

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """Redis could not serve ``operation``; ``reason`` is safe to show to clients."""

    def __init__(self, operation: str, reason: str):
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason


def _reason(error: redis.RedisError, target: str) -> str:
    # Fixed texts: a server reply could quote what the client sent (e.g. AUTH arguments).
    if isinstance(error, redis.AuthenticationError):
        return "redis authentication failed: check REDIS_PASSWORD / REDIS_PASSWORD_FILE"
    if isinstance(error, redis.exceptions.AuthorizationError | redis.exceptions.NoPermissionError):
        return "redis refused the command: the user lacks ACL permissions"
    if isinstance(error, redis.TimeoutError):
        return f"redis at {target} did not answer in time"
    if isinstance(error, redis.ConnectionError):
        return f"cannot connect to redis at {target}"
    return f"redis error ({type(error).__name__})"


def _target(pool: redis.ConnectionPool) -> str:
    options = pool.connection_kwargs
    if "path" in options:
        return f"unix:{options['path']}"
    return f"{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"


def build_pool(
    settings: Settings,
    *,
    socket_timeout: float,
    connect_timeout: float,
    retries: int,
    max_connections: int,
    **connection_options: Any,
) -> redis.ConnectionPool:
    """A pool for ``settings``; ``connection_options`` are extra ConnectionPool arguments."""
    backoff = ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS)
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "retry": Retry(
            backoff if retries else NoBackoff(), retries, supported_errors=RETRIED_ERRORS
        ),
        "max_connections": max_connections,
        "client_name": SERVICE_NAME,
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password
    options.update(connection_options)
    if settings.redis_url:
        # URL parts (host, port, db, credentials, rediss:// for TLS) win over the options above.
        return redis.ConnectionPool.from_url(settings.redis_url, **options)
    if settings.redis_tls:
        options.setdefault("connection_class", redis.SSLConnection)
    return redis.ConnectionPool(
        host=settings.redis_host, port=settings.redis_port, db=settings.redis_db, **options
    )


class CounterStore:
    """Counter operations on one Redis key; every Redis failure becomes StoreUnavailable."""

    def __init__(self, pool: redis.ConnectionPool, probe_pool: redis.ConnectionPool, key: str):
        self._pool = pool
        self._client = redis.Redis(connection_pool=pool)
        self._probe = redis.Redis(connection_pool=probe_pool)
        self._key = key
        self._target = _target(pool)
        self._available = True

    @classmethod
    def from_settings(cls, settings: Settings, **connection_options: Any) -> CounterStore:
        """Build the pools; ``connection_options`` go to both (tests plug in fakeredis here)."""
        pool = build_pool(
            settings,
            socket_timeout=settings.redis_socket_timeout,
            connect_timeout=settings.redis_connect_timeout,
            retries=RETRIES,
            max_connections=settings.redis_max_connections,
            **connection_options,
        )
        # A separate small pool without retries, so the probe answers quickly and
        # reports the current state instead of waiting for Redis to come back.
        probe_pool = build_pool(
            settings,
            socket_timeout=min(settings.redis_socket_timeout, PROBE_TIMEOUT_SECONDS),
            connect_timeout=min(settings.redis_connect_timeout, PROBE_TIMEOUT_SECONDS),
            retries=0,
            max_connections=2,
            **connection_options,
        )
        return cls(pool, probe_pool, settings.counter_key)

    @property
    def pool_options(self) -> Mapping[str, Any]:
        return self._pool.connection_kwargs

    def count(self) -> int:
        value = self._call("get", self._client.get, self._key)
        return int(value or 0)

    def increment(self, amount: int = 1) -> int:
        if amount == 1:
            return int(self._call("increment", self._send_once, "INCR", self._key))
        return int(self._call("increment", self._send_once, "INCRBY", self._key, amount))

    def reset(self) -> None:
        self._call("reset", self._client.delete, self._key)

    def ping(self) -> None:
        self._call("ping", self._probe.ping)

    def close(self) -> None:
        self._pool.disconnect()
        self._probe.connection_pool.disconnect()

    def _send_once(self, *command: Any) -> Any:
        # get_connection() connects (with the pool's retries) before anything is sent;
        # the command itself goes out once, on that connection.
        connection = self._pool.get_connection()
        try:
            connection.send_command(*command)
            return connection.read_response()
        except BaseException:
            # The reply may still be in flight: this connection must not be reused.
            connection.disconnect()
            raise
        finally:
            self._pool.release(connection)

    def _call(self, operation: str, function: Callable[..., Any], *args: Any) -> Any:
        try:
            result = function(*args)
        except redis.RedisError as error:
            reason = _reason(error, self._target)
            if self._available:
                # Once per outage (per worker process), with the exception; requests
                # answer 503 until it is over.
                self._available = False
                log.error("redis unavailable during %s: %s", operation, reason, exc_info=error)
            else:
                log.debug("redis still unavailable during %s: %s", operation, reason)
            raise StoreUnavailable(operation, reason) from error
        if not self._available:
            self._available = True
            log.info("redis reachable again (%s succeeded)", operation)
        return result
