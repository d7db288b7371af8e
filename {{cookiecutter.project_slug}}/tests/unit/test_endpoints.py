"""Every endpoint and error path, against fakeredis."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from {{ cookiecutter.package_name }} import __version__
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.context import services


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if sample_name == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def test_index_increments_and_greets(client):
    first = client.get("/")
    second = client.get("/")
    assert first.status_code == 200
    assert first.mimetype == "text/html"
    greeting = escape(Settings().greeting)
    assert first.get_data(as_text=True) == f"{greeting} I have been seen 1 time.\n"
    assert second.get_data(as_text=True) == f"{greeting} I have been seen 2 times.\n"


def test_index_escapes_the_greeting(make_app):
    client = make_app(greeting="<b>Hi</b> & bye").test_client()
    body = client.get("/").get_data(as_text=True)
    assert body == "&lt;b&gt;Hi&lt;/b&gt; &amp; bye I have been seen 1 time.\n"


def test_api_get_does_not_increment(client):
    assert client.get("/api/counter").get_json() == {"count": 0}
    client.get("/")
    assert client.get("/api/counter").get_json() == {"count": 1}
    assert client.get("/api/counter").get_json() == {"count": 1}


def test_api_post_increments(client):
    assert client.post("/api/counter").get_json() == {"count": 1}
    assert client.post("/api/counter", json={"by": 5}).get_json() == {"count": 6}
    assert client.post("/api/counter", json={}).get_json() == {"count": 7}
    assert client.get("/api/counter").get_json() == {"count": 7}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('{"by": 0}', "application/json", 400),
        ('{"by": 1001}', "application/json", 400),
        ('{"by": "2"}', "application/json", 400),
        ('{"by": true}', "application/json", 400),
        ('{"step": 1}', "application/json", 400),
        ("by=2", "application/x-www-form-urlencoded", 415),
    ],
)
def test_api_post_rejects_bad_bodies(client, body, content_type, status):
    response = client.post("/api/counter", data=body, content_type=content_type)
    assert response.status_code == status
    payload = response.get_json()
    assert payload["status"] == status
    assert payload["error"] in {"bad_request", "unsupported_media_type"}
    assert payload["message"]
    assert client.get("/api/counter").get_json() == {"count": 0}


def test_oversized_body_is_json_413(client):
    body = '{"by": 1, "padding": "' + "x" * 20_000 + '"}'
    response = client.post("/api/counter", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    assert client.get("/api/counter").get_json() == {"count": 0}


def test_reset_is_forbidden_by_default(client):
    client.get("/")
    response = client.delete("/api/counter")
    assert response.status_code == 403
    assert response.get_json()["error"] == "reset_forbidden"
    assert "ALLOW_COUNTER_RESET" in response.get_json()["message"]
    assert client.get("/api/counter").get_json() == {"count": 1}


def test_reset_when_allowed(make_app):
    client = make_app(allow_counter_reset=True).test_client()
    client.get("/")
    assert client.delete("/api/counter").get_json() == {"count": 0}
    assert client.get("/api/counter").get_json() == {"count": 0}


def test_counter_key_is_configurable(make_app, fake_server):
    import fakeredis

    make_app(counter_key="custom:key").test_client().get("/")
    assert fakeredis.FakeRedis(server=fake_server).get("custom:key") == b"1"


def test_liveness_never_touches_redis(client, fake_server):
    fake_server.connected = False
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readiness(client, fake_server):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "redis": "ok"}
    fake_server.connected = False
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["error"] == "redis_unavailable"
    assert "cannot connect to redis at localhost:6379/0" in body["reason"]


def test_version(make_app):
    client = make_app(git_sha="abc1234", build_date="2025-01-31T12:00:00Z").test_client()
    assert client.get("/version").get_json() == {
        "name": "{{ cookiecutter.project_slug }}",
        "version": __version__,
        "git_sha": "abc1234",
        "build_date": "2025-01-31T12:00:00Z",
    }


def test_version_without_build_info(client):
    body = client.get("/version").get_json()
    assert body["git_sha"] == "unknown"
    assert body["build_date"] == "unknown"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/counter"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/version"),
        ("GET", "/metrics"),
        ("GET", "/no/such/path"),
        ("PUT", "/api/counter"),
    ],
)
def test_every_response_has_version_and_request_id(make_app, method, path):
    client = make_app(app_version="1.2.3").test_client()
    response = client.open(path, method=method)
    assert response.headers["X-App-Version"] == "1.2.3"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


@pytest.mark.parametrize("header", ["X-Request-ID", "X-Correlation-ID"])
def test_incoming_correlation_id_is_echoed(client, header):
    response = client.get("/api/counter", headers={header: "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_unsafe_correlation_id_is_replaced(client):
    response = client.get("/api/counter", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_unknown_path_is_json_404(client):
    response = client.get("/no/such/path", headers={"X-Request-ID": "r-1"})
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json() == {
        "error": "not_found",
        "message": response.get_json()["message"],
        "status": 404,
        "request_id": "r-1",
    }


def test_wrong_method_is_json_405_with_allow_header(client):
    response = client.put("/api/counter")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST", "DELETE"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/api/counter"), ("POST", "/api/counter"), ("DELETE", "/api/counter")],
)
def test_redis_down_is_json_503(make_app, fake_server, method, path):
    client = make_app(allow_counter_reset=True).test_client()
    fake_server.connected = False
    response = client.open(path, method=method)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.get_json()
    assert body["error"] == "redis_unavailable"
    assert "Traceback" not in response.get_data(as_text=True)


def test_redis_recovers(client, fake_server):
    fake_server.connected = False
    assert client.get("/").status_code == 503
    fake_server.connected = True
    assert client.get("/").status_code == 200


def test_unexpected_error_is_json_500(make_app, monkeypatch):
    app = make_app()

    def broken() -> int:
        raise RuntimeError("boom")

    with app.app_context():
        monkeypatch.setattr(services().store, "count", broken)
    client = app.test_client()
    response = client.get("/api/counter")
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal_error"
    assert "boom" not in response.get_data(as_text=True)
    text = client.get("/metrics").get_data(as_text=True)
    exceptions = "flask_http_request_exceptions_total"
    assert metric_value(text, exceptions, method="GET", status="500") == 1
    assert metric_value(text, "flask_http_request_total", method="GET", status="500") == 1


def test_failure_rate_one_fails_every_counter_request(make_app, fake_server):
    import fakeredis

    client = make_app(failure_rate=1.0).test_client()
    for path in ("/", "/api/counter"):
        response = client.get(path)
        assert response.status_code == 500
        assert response.get_json()["error"] == "injected_failure"
    # Failed before Redis was touched, so a retry never counts twice.
    assert fakeredis.FakeRedis(server=fake_server).get(Settings().counter_key) is None
    # Only counter endpoints fail on purpose.
    assert client.get("/health/ready").status_code == 200
    assert client.get("/version").status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert metric_value(metrics, "app_injected_failures_total") == 2


def test_failure_rate_zero_never_fails(client):
    assert all(client.get("/").status_code == 200 for _ in range(20))


def test_metrics(make_app, fake_server):
    client = make_app(app_version="1.2.3", git_sha="abc1234").test_client()
    for _ in range(3):
        client.get("/")
    client.post("/api/counter", json={"by": 4})
    client.get("/api/counter")
    client.get("/health/live")
    client.get("/health/ready")
    client.get("/metrics")
    client.get("/no/such/path")
    client.get("/another/missing/path")
    fake_server.connected = False
    client.get("/api/counter")

    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "app_info", version="1.2.3", git_sha="abc1234") == 1
    assert metric_value(text, "app_counter_increments_total") == 7
    assert metric_value(text, "app_redis_errors_total", operation="get") == 1
    assert metric_value(text, "app_redis_errors_total", operation="increment") == 0
    assert metric_value(text, "flask_http_request_total", method="GET", status="200") == 4
    assert metric_value(text, "flask_http_request_total", method="POST", status="200") == 1
    assert metric_value(text, "flask_http_request_total", method="GET", status="503") == 1
    count = "flask_http_request_duration_seconds_count"
    assert metric_value(text, count, endpoint="counter.index", status="200") == 3
    assert metric_value(text, count, endpoint="counter.read_counter", status="503") == 1
    # Every path no route matches shares one series.
    assert metric_value(text, count, endpoint="unmatched", status="404") == 2
    assert 'endpoint="None"' not in text
    # Probes and scrapes are not request metrics.
    assert 'endpoint="health.' not in text
    assert 'endpoint="prometheus_metrics"' not in text


def test_reset_is_counted(make_app):
    client = make_app(allow_counter_reset=True).test_client()
    client.delete("/api/counter")
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "app_counter_resets_total") == 1


def test_apps_are_independent(make_app):
    # The factory keeps no global state: two apps, two registries, two configurations.
    first, second = make_app(app_version="1.0.0"), make_app(app_version="2.0.0")
    first.test_client().get("/")
    assert first.test_client().get("/version").get_json()["version"] == "1.0.0"
    assert second.test_client().get("/version").get_json()["version"] == "2.0.0"
    second_metrics = second.test_client().get("/metrics").get_data(as_text=True)
    assert metric_value(second_metrics, "app_counter_increments_total") == 0
