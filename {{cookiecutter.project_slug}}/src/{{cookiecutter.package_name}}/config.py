"""Settings: built-in defaults < YAML file named by $CONFIG_FILE < environment variables.

Every setting has one environment variable and one dotted YAML key (``redis.port``
is ``port:`` under ``redis:``); ``OPTIONS`` is the single list of them, and the
README's configuration table documents the same list. Invalid values raise
:class:`ConfigError`, whose message is one line naming the setting, the bad
value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from ._version import __version__

# Reported by /version, the app_info metric and Redis' CLIENT LIST.
SERVICE_NAME = "{{ cookiecutter.project_slug }}"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")
# Generated from the project template's answer; "fmt: skip" keeps its quoting as generated.
DEFAULT_GREETING = {{ cookiecutter.greeting | quoted }}  # fmt: skip


# The value of a build fact (git_sha, build_date) that was not supplied.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Settings:
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_password: str | None = dataclasses.field(default=None, repr=False)
    redis_password_file: str | None = None
    redis_db: int = 0
    # A URL may embed a password, so keep it out of repr() as well.
    redis_url: str | None = dataclasses.field(default=None, repr=False)
    redis_tls: bool = False
    redis_socket_timeout: float = 2.0
    redis_connect_timeout: float = 1.0
    redis_max_connections: int = 20
    log_level: str = "INFO"
    log_format: str = "json"
    greeting: str = DEFAULT_GREETING
    counter_key: str = "{{ cookiecutter.project_slug }}:hits"
    allow_counter_reset: bool = False
    failure_rate: float = 0.0
    app_version: str = __version__
    # Build facts no one supplied read "unknown" everywhere (/version, app_info).
    git_sha: str = UNKNOWN
    build_date: str = UNKNOWN
    port: int = {{ cookiecutter.app_port }}
    gunicorn_workers: int = 2
    gunicorn_threads: int = 4
    gunicorn_timeout: int = 30
    gunicorn_graceful_timeout: int = 20
    gunicorn_keepalive: int = 5


class ConfigError(ValueError):
    """A setting that cannot be used; ``str()`` is the one-line message."""

    def __init__(self, setting: str, value: Any, allowed: str, origin: str | None = None):
        self.setting, self.value, self.allowed, self.origin = setting, value, allowed, origin
        where = f" in {origin}" if origin else ""
        super().__init__(f"{setting}={value!r}{where} is not allowed: {allowed}")


class _Invalid(ValueError):
    """Raised by a parser; its message says what is allowed."""


Parser = Callable[[Any], Any]


def _integer(low: int, high: int | None = None) -> Parser:
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def parse(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be {allowed}")
        if value < low or (high is not None and value > high):
            raise _Invalid(f"must be {allowed}")
        return value

    return parse


def _number(low: float, high: float | None = None, *, low_inclusive: bool = True) -> Parser:
    bound = ">=" if low_inclusive else ">"
    allowed = f"a number from {low} to {high}" if high is not None else f"a number {bound} {low}"

    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _Invalid(f"must be {allowed}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"must be {allowed}")
        if not math.isfinite(value):
            raise _Invalid(f"must be {allowed}")
        too_low = value < low if low_inclusive else value <= low
        if too_low or (high is not None and value > high):
            raise _Invalid(f"must be {allowed}")
        return float(value)

    return parse


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid("must be true or false (1/0, yes/no and on/off also work)")


def _choice(*choices: str, upper: bool = False) -> Parser:
    def parse(value: Any) -> str:
        text = str(value).strip()
        text = text.upper() if upper else text.lower()
        if isinstance(value, bool) or text not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _text(value: Any) -> str:
    # YAML turns unquoted 1234567 or 1.0 into numbers; they are still meant as text here.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid("must be text")
    text = str(value)
    if not text.strip() or not text.isprintable():
        raise _Invalid("must be non-empty, single-line printable text")
    return text


def _redis_key(value: Any) -> str:
    text = _text(value)
    if any(ch.isspace() for ch in text) or len(text) > 200:
        raise _Invalid("must be 1-200 characters without whitespace")
    return text


def _redis_url(value: Any) -> str:
    text = _text(value).strip()
    if not text.startswith(REDIS_URL_SCHEMES):
        raise _Invalid(f"must be a URL starting with {', '.join(REDIS_URL_SCHEMES)}")
    return text


def _timestamp(value: Any) -> str:
    # YAML already parses an unquoted ISO 8601 timestamp.
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value).strip()
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise _Invalid("must be an ISO 8601 date/time such as 2025-01-31T12:00:00Z") from None
    return text


@dataclass(frozen=True)
class Option:
    name: str  # Settings field
    env: str
    key: str  # dotted YAML key
    parse: Parser
    secret: bool = False  # never echo the value in error messages


OPTIONS: tuple[Option, ...] = (
    Option("redis_host", "REDIS_HOST", "redis.host", _text),
    Option("redis_port", "REDIS_PORT", "redis.port", _integer(1, 65535)),
    Option("redis_password", "REDIS_PASSWORD", "redis.password", _text, secret=True),
    Option("redis_password_file", "REDIS_PASSWORD_FILE", "redis.password_file", _text),
    Option("redis_db", "REDIS_DB", "redis.db", _integer(0)),
    Option("redis_url", "REDIS_URL", "redis.url", _redis_url, secret=True),
    Option("redis_tls", "REDIS_TLS", "redis.tls", _boolean),
    Option(
        "redis_socket_timeout",
        "REDIS_SOCKET_TIMEOUT",
        "redis.socket_timeout",
        _number(0, low_inclusive=False),
    ),
    Option(
        "redis_connect_timeout",
        "REDIS_CONNECT_TIMEOUT",
        "redis.connect_timeout",
        _number(0, low_inclusive=False),
    ),
    Option("redis_max_connections", "REDIS_MAX_CONNECTIONS", "redis.max_connections", _integer(1)),
    Option("log_level", "LOG_LEVEL", "log.level", _choice(*LOG_LEVELS, upper=True)),
    Option("log_format", "LOG_FORMAT", "log.format", _choice(*LOG_FORMATS)),
    Option("greeting", "GREETING", "counter.greeting", _text),
    Option("counter_key", "COUNTER_KEY", "counter.key", _redis_key),
    Option("allow_counter_reset", "ALLOW_COUNTER_RESET", "counter.allow_reset", _boolean),
    Option("failure_rate", "FAILURE_RATE", "counter.failure_rate", _number(0.0, 1.0)),
    Option("app_version", "APP_VERSION", "build.version", _text),
    Option("git_sha", "GIT_SHA", "build.git_sha", _text),
    Option("build_date", "BUILD_DATE", "build.date", _timestamp),
    Option("port", "PORT", "server.port", _integer(1, 65535)),
    Option("gunicorn_workers", "GUNICORN_WORKERS", "server.workers", _integer(1, 64)),
    Option("gunicorn_threads", "GUNICORN_THREADS", "server.threads", _integer(1, 256)),
    Option("gunicorn_timeout", "GUNICORN_TIMEOUT", "server.timeout", _integer(1)),
    Option(
        "gunicorn_graceful_timeout",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "server.graceful_timeout",
        _integer(0),
    ),
    Option("gunicorn_keepalive", "GUNICORN_KEEPALIVE", "server.keepalive", _integer(0)),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}
OPTIONS_BY_KEY = {option.key: option for option in OPTIONS}


def _shown(option: Option, value: Any) -> Any:
    if not option.secret:
        return value
    if option.name == "redis_url" and isinstance(value, str):
        # Keep the URL recognisable but drop the password: redis://user:***@host:6379/0
        return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", value)
    return "***"


# Where a value came from: the setting's name there, and the config file (None for env/mapping).
Source = tuple[str, str | None]


def _parse(option: Option, value: Any, source: Source) -> Any:
    try:
        return option.parse(value)
    except _Invalid as error:
        raise ConfigError(source[0], _shown(option, value), str(error), source[1]) from None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, then the YAML file at CONFIG_FILE, then the environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    config_file = environ.get("CONFIG_FILE", "").strip()
    if config_file:
        for option, value in _read_config_file(config_file):
            sources[option.name] = (option.key, config_file)
            values[option.name] = _parse(option, value, sources[option.name])
    for option in OPTIONS:
        raw = environ.get(option.env, "")
        # An empty variable counts as unset: Kubernetes renders optional values as "".
        if raw.strip():
            sources[option.name] = (option.env, None)
            values[option.name] = _parse(option, raw, sources[option.name])
    return _finish(values, sources)


def settings_from_mapping(overrides: Mapping[str, Any]) -> Settings:
    """Defaults plus ``overrides`` (keys are Settings field names), validated like the environment.

    Neither the environment nor CONFIG_FILE is read, so tests get exactly what they ask for.
    """
    values: dict[str, Any] = {}
    for name, value in overrides.items():
        option = OPTIONS_BY_NAME.get(name)
        if option is None:
            raise ConfigError(name, value, f"unknown setting; known: {', '.join(OPTIONS_BY_NAME)}")
        if value is not None:
            values[name] = _parse(option, value, (name, None))
    return _finish(values, {name: (name, None) for name in values})


def _read_config_file(path: str) -> list[tuple[Option, Any]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        allowed = f"must name a readable UTF-8 file ({reason})"
        raise ConfigError("CONFIG_FILE", path, allowed) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError("CONFIG_FILE", path, f"must be valid YAML ({problem}{where})") from None
    if document is None:
        return []
    sections = sorted({key.split(".")[0] for key in OPTIONS_BY_KEY})
    if not isinstance(document, dict):
        raise ConfigError(
            "CONFIG_FILE", path, f"must hold a mapping with the sections {', '.join(sections)}"
        )
    found: list[tuple[Option, Any]] = []
    for section, body in document.items():
        if section not in sections:
            raise ConfigError(
                "section", section, f"top-level keys must be {', '.join(sections)}", path
            )
        if not isinstance(body, dict):
            raise ConfigError(str(section), body, "must be a mapping of settings", path)
        for key, value in body.items():
            option = OPTIONS_BY_KEY.get(f"{section}.{key}")
            if option is None:
                allowed = f"unknown setting; known: {', '.join(OPTIONS_BY_KEY)}"
                raise ConfigError(f"{section}.{key}", value, allowed, path)
            # A key left empty (null) keeps the default, like an unset environment variable.
            if value is not None:
                found.append((option, value))
    return found


def _finish(values: dict[str, Any], sources: Mapping[str, Source]) -> Settings:
    password_file = values.get("redis_password_file")
    if password_file:
        source = sources["redis_password_file"]
        values["redis_password"] = _read_password_file(password_file, source)
    settings = Settings(**values)
    if settings.redis_url and settings.redis_tls and not settings.redis_url.startswith("rediss://"):
        # Silently talking plain text when TLS was asked for would be worse than refusing.
        raise ConfigError(
            sources["redis_tls"][0],
            True,
            "REDIS_URL decides the transport; use a rediss:// URL for TLS, or drop REDIS_TLS",
            sources["redis_tls"][1],
        )
    return settings


def _read_password_file(path: str, source: Source) -> str:
    try:
        # Secrets mounted from files usually end with a newline that is not part of the password.
        password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        allowed = f"must name a readable file ({reason})"
        raise ConfigError(source[0], path, allowed, source[1]) from None
    if not password:
        raise ConfigError(source[0], path, "must name a file holding the password", source[1])
    return password
