"""Settings: defaults, YAML file, environment precedence, password file, invalid values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }} import __version__, create_app
from {{ cookiecutter.package_name }}.config import (
    OPTIONS,
    ConfigError,
    Settings,
    load_settings,
    settings_from_mapping,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def write_yaml(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_without_environment():
    settings = load_settings({})
    assert settings == Settings()
    assert settings.redis_host == "localhost"
    assert settings.redis_port == 6379
    assert settings.redis_db == 0
    assert settings.redis_password is None
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.allow_counter_reset is False
    assert settings.failure_rate == 0.0
    assert settings.app_version == __version__
    assert settings.port == {{ cookiecutter.app_port }}


def test_environment_values_are_parsed():
    settings = load_settings(
        {
            "REDIS_HOST": "redis.internal",
            "REDIS_PORT": "6380",
            "REDIS_DB": "3",
            "REDIS_TLS": "yes",
            "REDIS_SOCKET_TIMEOUT": "0.5",
            "REDIS_CONNECT_TIMEOUT": "1",
            "REDIS_MAX_CONNECTIONS": "7",
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "TEXT",
            "GREETING": "Hi there!",
            "COUNTER_KEY": "demo:hits",
            "ALLOW_COUNTER_RESET": "true",
            "FAILURE_RATE": "0.25",
            "APP_VERSION": "9.9.9",
            "GIT_SHA": "abc1234",
            "BUILD_DATE": "2025-01-31T12:00:00Z",
            "PORT": "9000",
            "GUNICORN_WORKERS": "3",
            "GUNICORN_THREADS": "8",
            "GUNICORN_TIMEOUT": "60",
            "GUNICORN_GRACEFUL_TIMEOUT": "10",
            "GUNICORN_KEEPALIVE": "2",
        }
    )
    assert settings.redis_host == "redis.internal"
    assert settings.redis_port == 6380
    assert settings.redis_db == 3
    assert settings.redis_tls is True
    assert settings.redis_socket_timeout == 0.5
    assert settings.redis_connect_timeout == 1.0
    assert settings.redis_max_connections == 7
    assert settings.log_level == "DEBUG"
    assert settings.log_format == "text"
    assert settings.greeting == "Hi there!"
    assert settings.counter_key == "demo:hits"
    assert settings.allow_counter_reset is True
    assert settings.failure_rate == 0.25
    assert (settings.app_version, settings.git_sha) == ("9.9.9", "abc1234")
    assert settings.build_date == "2025-01-31T12:00:00Z"
    assert settings.port == 9000
    assert settings.gunicorn_workers == 3
    assert settings.gunicorn_threads == 8
    assert settings.gunicorn_timeout == 60
    assert settings.gunicorn_graceful_timeout == 10
    assert settings.gunicorn_keepalive == 2


def test_empty_variables_count_as_unset():
    assert load_settings({"REDIS_PORT": "", "GREETING": "  "}) == Settings()


def test_config_file_overrides_defaults(tmp_path):
    path = write_yaml(
        tmp_path / "config.yaml",
        """
redis:
  host: redis-from-file
  port: 6390
  tls: true
log:
  level: warning
counter:
  allow_reset: true
  failure_rate: 0.5
build:
  git_sha: 1234567          # YAML reads this as a number; it is still text
  date: 2025-01-31T12:00:00Z
server:
  workers: 4
""",
    )
    settings = load_settings({"CONFIG_FILE": path})
    assert settings.redis_host == "redis-from-file"
    assert settings.redis_port == 6390
    assert settings.redis_tls is True
    assert settings.log_level == "WARNING"
    assert settings.allow_counter_reset is True
    assert settings.failure_rate == 0.5
    assert settings.git_sha == "1234567"
    assert settings.build_date.startswith("2025-01-31T12:00:00")
    assert settings.gunicorn_workers == 4
    assert settings.redis_db == 0  # not in the file: default


def test_environment_overrides_config_file(tmp_path):
    path = write_yaml(tmp_path / "config.yaml", "redis:\n  host: from-file\n  port: 6390\n")
    settings = load_settings({"CONFIG_FILE": path, "REDIS_HOST": "from-env"})
    assert settings.redis_host == "from-env"
    assert settings.redis_port == 6390


def test_null_and_empty_file_keep_defaults(tmp_path):
    assert load_settings({"CONFIG_FILE": write_yaml(tmp_path / "a.yaml", "")}) == Settings()
    nulls = write_yaml(tmp_path / "b.yaml", "redis:\n  host:\n  port: null\n")
    assert load_settings({"CONFIG_FILE": nulls}) == Settings()


def test_example_config_lists_every_setting_and_loads():
    example = PROJECT_ROOT / "config" / "example.yaml"
    document = yaml.safe_load(example.read_text(encoding="utf-8"))
    keys = {f"{section}.{key}" for section, body in document.items() for key in body}
    assert keys == {option.key for option in OPTIONS}
    assert load_settings({"CONFIG_FILE": str(example)}) == Settings()


def test_readme_documents_every_setting():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"`{option.env}`" in readme, option.env
        assert f"`{option.key}`" in readme, option.key


def test_password_file_is_read_without_trailing_newline(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n", encoding="utf-8")
    settings = load_settings({"REDIS_PASSWORD_FILE": str(secret)})
    assert settings.redis_password == "s3cret"


def test_password_file_wins_over_password(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-file", encoding="utf-8")
    settings = load_settings({"REDIS_PASSWORD": "from-env", "REDIS_PASSWORD_FILE": str(secret)})
    assert settings.redis_password == "from-file"


def test_password_file_from_config_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-file", encoding="utf-8")
    path = write_yaml(tmp_path / "config.yaml", f"redis:\n  password_file: {secret}\n")
    assert load_settings({"CONFIG_FILE": path}).redis_password == "from-file"


def test_password_is_not_in_repr():
    settings = load_settings({"REDIS_PASSWORD": "s3cret", "REDIS_URL": "redis://:s3cret@h:1/0"})
    assert "s3cret" not in repr(settings)


def assert_one_line(error: ConfigError, *parts: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert "is not allowed" in message
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("REDIS_PORT", "abc", "integer from 1 to 65535"),
        ("REDIS_PORT", "0", "integer from 1 to 65535"),
        ("REDIS_PORT", "70000", "integer from 1 to 65535"),
        ("REDIS_DB", "-1", "integer >= 0"),
        ("REDIS_TLS", "maybe", "true or false"),
        ("REDIS_SOCKET_TIMEOUT", "0", "number > 0"),
        ("REDIS_CONNECT_TIMEOUT", "soon", "number > 0"),
        ("REDIS_MAX_CONNECTIONS", "0", "integer >= 1"),
        ("LOG_LEVEL", "verbose", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_FORMAT", "xml", "json, text"),
        ("COUNTER_KEY", "two words", "without whitespace"),
        ("ALLOW_COUNTER_RESET", "sometimes", "true or false"),
        ("FAILURE_RATE", "1.5", "number from 0.0 to 1.0"),
        ("FAILURE_RATE", "nan", "number from 0.0 to 1.0"),
        ("BUILD_DATE", "yesterday", "ISO 8601"),
        ("PORT", "http", "integer from 1 to 65535"),
        ("GUNICORN_WORKERS", "0", "integer from 1 to 64"),
        ("GUNICORN_THREADS", "many", "integer from 1 to 256"),
        ("GUNICORN_TIMEOUT", "-5", "integer >= 1"),
        ("GUNICORN_GRACEFUL_TIMEOUT", "1.5", "integer >= 0"),
        ("GUNICORN_KEEPALIVE", "x", "integer >= 0"),
        ("REDIS_URL", "http://example.com", "redis://, rediss://, unix://"),
    ],
)
def test_invalid_environment_value_names_variable_value_and_allowed(variable, value, allowed):
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert_one_line(caught.value, f"{variable}={value!r}", allowed)


def test_secrets_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": "http://user:s3cret@example.com"})
    assert "s3cret" not in str(caught.value)
    assert "user:***@example.com" in str(caught.value)


def test_invalid_value_in_file_names_key_and_file(tmp_path):
    path = write_yaml(tmp_path / "config.yaml", "redis:\n  port: abc\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONFIG_FILE": path})
    assert_one_line(caught.value, "redis.port='abc'", path, "integer from 1 to 65535")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("redis: [1, 2", "must be valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("radis:\n  host: x\n", "section='radis'"),
        ("redis: localhost\n", "redis='localhost'"),
        ("redis:\n  hots: x\n", "redis.hots='x'"),
    ],
)
def test_malformed_config_file(tmp_path, content, expected):
    path = write_yaml(tmp_path / "config.yaml", content)
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONFIG_FILE": path})
    assert_one_line(caught.value, expected)


def test_missing_config_file(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONFIG_FILE": missing})
    assert_one_line(caught.value, f"CONFIG_FILE={missing!r}", "readable")


@pytest.mark.parametrize("content", [None, "\n"])
def test_unusable_password_file(tmp_path, content):
    path = tmp_path / "password"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_PASSWORD_FILE": str(path)})
    assert_one_line(caught.value, f"REDIS_PASSWORD_FILE={str(path)!r}")


def test_tls_with_plain_url_is_refused():
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": "redis://localhost:6379/0", "REDIS_TLS": "true"})
    assert_one_line(caught.value, "REDIS_TLS=True", "rediss://")
    assert load_settings({"REDIS_URL": "rediss://h:6380/0", "REDIS_TLS": "true"}).redis_tls


def test_settings_from_mapping_validates_and_ignores_environment(monkeypatch):
    monkeypatch.setenv("REDIS_HOST", "from-env")
    settings = settings_from_mapping({"redis_port": "6390", "allow_counter_reset": "yes"})
    assert (settings.redis_host, settings.redis_port) == ("localhost", 6390)
    assert settings.allow_counter_reset is True
    with pytest.raises(ConfigError, match=re.escape("redis_prot=1")):
        settings_from_mapping({"redis_prot": 1})


def test_create_app_reads_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("APP_VERSION", "7.7.7")
    monkeypatch.setenv("CONFIG_FILE", write_yaml(tmp_path / "c.yaml", "log:\n  format: text\n"))
    app = create_app()
    response = app.test_client().get("/health/live")
    assert response.headers["X-App-Version"] == "7.7.7"


def test_create_app_refuses_invalid_environment(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL='loud' is not allowed"):
        create_app()
