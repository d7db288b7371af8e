"""The app against a real Redis server."""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import urlsplit

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import settings_from_mapping
from {{ cookiecutter.package_name }}.store import CounterStore

from .conftest import free_port


def test_counter_endpoints(redis_url, counter_key):
    app = create_app(
        {"redis_url": redis_url, "counter_key": counter_key, "allow_counter_reset": True}
    )
    client = app.test_client()
    assert "I have been seen 1 time." in client.get("/").get_data(as_text=True)
    assert "I have been seen 2 times." in client.get("/").get_data(as_text=True)
    assert client.post("/api/counter", json={"by": 3}).get_json() == {"count": 5}
    assert client.get("/api/counter").get_json() == {"count": 5}
    assert client.delete("/api/counter").get_json() == {"count": 0}
    assert client.get("/health/ready").get_json() == {"status": "ok", "redis": "ok"}


def test_increments_are_atomic_across_threads(redis_url, counter_key):
    store = CounterStore.from_settings(
        settings_from_mapping({"redis_url": redis_url, "counter_key": counter_key})
    )

    def hit() -> None:
        for _ in range(25):
            store.increment()

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count() == 200
    store.close()


def test_wrong_credentials_are_reported_as_auth_error_without_echoing_them(redis_url, capsys):
    parts = urlsplit(redis_url)
    password = "wrong-s3cret-password"
    # An unknown user fails on every Redis >= 6, with or without a password configured
    # (a bare wrong password would pass on a server without one).
    url = f"redis://no-such-user-{uuid.uuid4().hex}:{password}@{parts.hostname}:{parts.port}/0"
    app = create_app({"redis_url": url})
    client = app.test_client()
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert "authentication failed" in ready.get_json()["reason"]
    counter = client.get("/")
    assert counter.status_code == 503
    captured = capsys.readouterr()
    for text in (ready.get_data(as_text=True), counter.get_data(as_text=True)):
        assert password not in text
    assert password not in captured.out + captured.err


def test_readiness_fails_fast_when_nothing_listens():
    app = create_app({"redis_port": free_port()})
    client = app.test_client()
    started = time.monotonic()
    response = client.get("/health/ready")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.get_json()["reason"].startswith("cannot connect to redis at localhost:")
    assert client.get("/").status_code == 503
