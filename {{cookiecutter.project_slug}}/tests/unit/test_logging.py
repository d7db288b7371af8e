"""Logs: JSON lines, INFO and below on stdout, WARNING and above on stderr."""

from __future__ import annotations

import json
import logging
import re

import pytest

from {{ cookiecutter.package_name }}.logging_setup import configure_logging


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_levels_go_to_the_right_stream(capsys):
    configure_logging("DEBUG", "json")
    log = logging.getLogger("test.streams")
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    log.error("error line")
    captured = capsys.readouterr()
    out, err = json_lines(captured.out), json_lines(captured.err)
    assert [(e["msg"], e["level"]) for e in out] == [("debug line", "DEBUG"), ("info line", "INFO")]
    assert [e["msg"] for e in err] == ["warning line", "error line"]
    assert all(e["correlation_id"] == "-" for e in out + err)
    assert all(isinstance(e["pid"], int) for e in out + err)


def test_exception_stays_on_one_json_line(capsys):
    configure_logging("INFO", "json")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("test.exc").exception("it failed")
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    entry = json.loads(err)
    assert entry["msg"] == "it failed"
    assert "ValueError" in entry["exc_info"]


def test_json_line_fields_and_values_orjson_refuses(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("test.fields").info(
        "tab\there %s", "arg", extra={"obj": object(), "big": 2**70, "n": 3}
    )
    entry = json.loads(capsys.readouterr().out)
    assert entry["msg"] == "tab_here arg"
    assert entry["logger"] == "test.fields"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["written_at"])
    assert entry["n"] == 3
    # An int beyond 64 bits and an object orjson cannot write: the line is still written.
    assert entry["big"] == 2**70
    assert entry["obj"].startswith("<object object")
    assert "args" not in entry
    assert "exc_info" not in entry


def test_text_format(capsys):
    configure_logging("INFO", "text")
    logging.getLogger("test.text").info("hello %s", "world")
    out = capsys.readouterr().out
    assert "INFO" in out
    assert "test.text [-] hello world" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_reconfiguring_does_not_duplicate_lines(capsys):
    configure_logging("INFO", "json")
    configure_logging("INFO", "json")
    logging.getLogger("test.dup").info("once")
    assert len(json_lines(capsys.readouterr().out)) == 1


def test_request_log_line(make_app, capsys):
    client = make_app().test_client()
    client.get("/api/counter", headers={"X-Request-ID": "req-42"})
    client.get("/health/live")  # probes log at DEBUG: not at the default INFO
    lines = [e for e in json_lines(capsys.readouterr().out) if "method" in e]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET"
    assert line["path"] == "/api/counter"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["correlation_id"] == "req-42"
    assert line["level"] == "INFO"


def test_log_level_setting(make_app, capsys):
    client = make_app(log_level="WARNING").test_client()
    client.get("/api/counter")
    assert capsys.readouterr().out == ""


def test_text_request_log(make_app, capsys):
    client = make_app(log_format="text").test_client()
    client.get("/api/counter", headers={"X-Request-ID": "req-7"})
    out = capsys.readouterr().out
    assert "[req-7] GET /api/counter 200" in out


def test_injected_failure_is_a_warning_on_stderr(make_app, capsys):
    make_app(failure_rate=1.0).test_client().get("/")
    err = json_lines(capsys.readouterr().err)
    assert [e["level"] for e in err] == ["WARNING"]
    assert "FAILURE_RATE" in err[0]["msg"]


def test_redis_outage_logs_one_error_with_exception(make_app, fake_server, capsys):
    client = make_app().test_client()
    fake_server.connected = False
    for _ in range(3):
        assert client.get("/").status_code == 503
    err = json_lines(capsys.readouterr().err)
    assert len(err) == 1
    assert err[0]["level"] == "ERROR"
    assert "ConnectionError" in err[0]["exc_info"]
