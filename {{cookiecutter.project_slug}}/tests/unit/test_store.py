"""The Redis store: pool options, retry policy, error reasons, outage logging."""

from __future__ import annotations

import logging
import socket
import time

import fakeredis
import pytest
import redis

from {{ cookiecutter.package_name }}.config import settings_from_mapping
from {{ cookiecutter.package_name }}.store import (
    HEALTH_CHECK_INTERVAL_SECONDS,
    PROBE_TIMEOUT_SECONDS,
    RETRIED_ERRORS,
    RETRIES,
    CounterStore,
    StoreUnavailable,
    build_pool,
)


def fake_store(server: fakeredis.FakeServer, **overrides) -> CounterStore:
    settings = settings_from_mapping(overrides)
    return CounterStore.from_settings(
        settings, connection_class=fakeredis.FakeRedisConnection, server=server
    )


def test_pool_options_come_from_settings():
    settings = settings_from_mapping(
        {
            "redis_host": "cache",
            "redis_port": 6380,
            "redis_db": 2,
            "redis_password": "s3cret",
            "redis_socket_timeout": 1.5,
            "redis_connect_timeout": 0.75,
            "redis_max_connections": 9,
        }
    )
    store = CounterStore.from_settings(settings)
    options = store.pool_options
    assert (options["host"], options["port"], options["db"]) == ("cache", 6380, 2)
    assert options["password"] == "s3cret"
    assert options["socket_timeout"] == 1.5
    assert options["socket_connect_timeout"] == 0.75
    assert options["health_check_interval"] == HEALTH_CHECK_INTERVAL_SECONDS
    assert options["retry"].get_retries() == RETRIES
    assert store._pool.max_connections == 9


def test_a_silent_redis_costs_one_socket_timeout_not_one_per_retry():
    # The kernel accepts connections on a listening socket nobody serves: like a paused Redis.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        host, port = silent.getsockname()
        timeout = 0.2
        settings = settings_from_mapping(
            {
                "redis_host": host,
                "redis_port": port,
                "redis_socket_timeout": timeout,
                "redis_connect_timeout": timeout,
            }
        )
        store = CounterStore.from_settings(settings)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="did not answer in time"):
            store.increment()
        # Retried timeouts (nested by redis-py) would take about 9x as long.
        assert time.monotonic() - started < 2 * timeout
    assert not issubclass(redis.TimeoutError, RETRIED_ERRORS)


def test_probe_pool_is_fast_and_does_not_retry():
    settings = settings_from_mapping({"redis_socket_timeout": 5, "redis_connect_timeout": 5})
    store = CounterStore.from_settings(settings)
    options = store._probe.connection_pool.connection_kwargs
    assert options["socket_timeout"] == PROBE_TIMEOUT_SECONDS
    assert options["socket_connect_timeout"] == PROBE_TIMEOUT_SECONDS
    assert options["retry"].get_retries() == 0


def test_url_wins_over_host_and_port():
    settings = settings_from_mapping(
        {"redis_url": "redis://:urlpass@redis.example:6390/4", "redis_password": "other"}
    )
    options = CounterStore.from_settings(settings).pool_options
    assert (options["host"], options["port"], options["db"]) == ("redis.example", 6390, 4)
    assert options["password"] == "urlpass"


def test_tls_uses_ssl_connections():
    pool = build_pool(
        settings_from_mapping({"redis_tls": True}),
        socket_timeout=1,
        connect_timeout=1,
        retries=0,
        max_connections=1,
    )
    assert pool.connection_class is redis.SSLConnection
    rediss = build_pool(
        settings_from_mapping({"redis_url": "rediss://h:6380/0"}),
        socket_timeout=1,
        connect_timeout=1,
        retries=0,
        max_connections=1,
    )
    assert rediss.connection_class is redis.SSLConnection


def test_counter_operations():
    store = fake_store(fakeredis.FakeServer())
    assert store.count() == 0
    assert store.increment() == 1
    assert store.increment(4) == 5
    assert store.count() == 5
    store.reset()
    assert store.count() == 0
    store.ping()


def test_increment_is_not_resent_after_a_reply_timeout(monkeypatch):
    # No health-check PING in between: the reply read after INCR is the INCR reply.
    store = CounterStore.from_settings(
        settings_from_mapping({}),
        connection_class=fakeredis.FakeRedisConnection,
        server=fakeredis.FakeServer(),
        health_check_interval=0,
    )
    connection_class = fakeredis.FakeRedisConnection
    send, read = connection_class.send_command, connection_class.read_response
    sent: list[str] = []

    def record_send(self, *args, **kwargs):
        sent.append(str(args[0]))
        return send(self, *args, **kwargs)

    def lose_incr_reply(self, *args, **kwargs):
        response = read(self, *args, **kwargs)  # Redis executed the command...
        if sent and sent[-1] == "INCR":
            raise redis.TimeoutError("Timeout reading from socket")  # ...but the reply is lost
        return response

    monkeypatch.setattr(connection_class, "send_command", record_send)
    monkeypatch.setattr(connection_class, "read_response", lose_incr_reply)
    with pytest.raises(StoreUnavailable) as caught:
        store.increment()
    assert caught.value.operation == "increment"
    monkeypatch.undo()
    assert sent.count("INCR") == 1
    assert store.count() == 1  # applied exactly once


def test_unavailable_reason_names_target_not_secrets():
    server = fakeredis.FakeServer()
    server.connected = False
    store = fake_store(server, redis_password="s3cret", redis_host="cache", redis_port=6380)
    with pytest.raises(StoreUnavailable) as caught:
        store.count()
    assert caught.value.reason == "cannot connect to redis at cache:6380/0"
    assert "s3cret" not in str(caught.value)


def test_authentication_error_reason(monkeypatch):
    store = fake_store(fakeredis.FakeServer(), redis_password="s3cret")

    def refuse(*args, **kwargs):
        raise redis.AuthenticationError("invalid username-password pair")

    monkeypatch.setattr(store._probe, "ping", refuse)
    with pytest.raises(StoreUnavailable) as caught:
        store.ping()
    assert "authentication failed" in caught.value.reason
    assert "s3cret" not in caught.value.reason


def test_outage_is_logged_once_with_exception_and_recovery_once(caplog):
    server = fakeredis.FakeServer()
    store = fake_store(server)
    caplog.set_level(logging.INFO, logger="{{ cookiecutter.package_name }}.store")
    server.connected = False
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            store.increment()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    server.connected = True
    store.increment()
    store.increment()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "redis reachable again (increment succeeded)"
    ]
