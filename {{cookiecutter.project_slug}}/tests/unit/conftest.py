"""Unit-test fixtures: apps backed by fakeredis instead of a Redis server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.config import settings_from_mapping
from {{ cookiecutter.package_name }}.store import CounterStore

MakeApp = Callable[..., Flask]


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    """One in-memory Redis; set ``fake_server.connected = False`` to simulate an outage."""
    return fakeredis.FakeServer()


@pytest.fixture
def make_app(fake_server: fakeredis.FakeServer) -> MakeApp:
    """Build an app from Settings field overrides, e.g. ``make_app(allow_counter_reset=True)``."""

    def make(**overrides: Any) -> Flask:
        settings = settings_from_mapping(overrides)
        store = CounterStore.from_settings(
            settings, connection_class=fakeredis.FakeRedisConnection, server=fake_server
        )
        app = create_app(settings, store=store)
        app.testing = True
        return app

    return make


@pytest.fixture
def client(make_app: MakeApp) -> FlaskClient:
    return make_app().test_client()
