"""Jinja filters that escape cookiecutter answers for the file format they land in.

Every free-text answer (project name, description, greeting, author) may hold
quotes, colons, '#', backslashes, non-ASCII letters or a leading '-'. Templates
therefore never paste such a value raw into a structured file:

* ``quoted``    - a double-quoted string literal that is valid JSON, YAML,
                  TOML and Python at the same time (JSON string syntax is a
                  subset of all four).
* ``markdown``  - backslash-escapes what Markdown would read as markup in prose,
                  headings and table cells, and nothing else (the raw file
                  stays readable: "Redis." stays "Redis.").
* ``pyliteral`` - a Python literal of any JSON-like value (used by the hooks).
* ``validate_answers`` - checks every answer (hooks/validation.py) while
                  cookiecutter renders the private answer ``__validated``, the
                  last one: a bad answer stops the bake with one line there,
                  before cookiecutter writes its replay file or any project
                  file. The pre-gen hook checks again for ``--replay``.

It also sets the global ``template_dir`` (this checkout of the template) for
the hook scripts: ``cookiecutter._repo_dir`` exists only under cookiecutter's
own entry point, while cruft renders through ``generate_files`` without it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from jinja2.ext import Extension

# Markup anywhere in a line: code, emphasis, links/images ("![" and "](" need
# the brackets), HTML and autolinks, table cells, strikethrough, entities.
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]<>|~]|&(?=#?\w+;))")
# Markup only at the start of a line: headings, block quotes (">" above), list items.
_MARKDOWN_LINE_START = re.compile(r"^(\s*)([#+\-=]|\d+(?=[.)]))")


def _escape_unprintable(text: str) -> str:
    # TOML forbids DEL and YAML forbids some C1 controls unescaped; JSON
    # escapes only < 0x20, so escape every non-printable character ourselves.
    return "".join(ch if ch.isprintable() or ch == " " else f"\\u{ord(ch):04x}" for ch in text)


def quoted(value: Any) -> str:
    encoded = json.dumps(str(value), ensure_ascii=False)
    # json.dumps escaped quotes, backslashes and C0 controls; the rest here.
    return '"' + _escape_unprintable(encoded[1:-1]) + '"'


def markdown(value: Any) -> str:
    text = _MARKDOWN_INLINE.sub(r"\\\1", str(value))
    # "1. x" -> "1\. x"; "# x" -> "\# x"; "- x" -> "\- x"
    match = _MARKDOWN_LINE_START.match(text)
    if match:
        start, marker = match.end(1), match.group(2)
        if marker[0].isdigit():
            start += len(marker)
        text = text[:start] + "\\" + text[start:]
    # An ATX heading drops a closing " #" run: keep it as text.
    return re.sub(r"(\s)(#+)$", lambda m: m.group(1) + "\\" + m.group(2), text)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def pyliteral(value: Any) -> str:
    return repr(_plain(value))


def validate_answers(answers: Any) -> str:
    from hooks.validation import InvalidAnswer, validate

    try:
        validate(answers)
    except InvalidAnswer as error:
        print(f"ERROR: {error}", file=sys.stderr)
        # Exits cookiecutter's command line with status 1 and no traceback.
        raise SystemExit(1) from None
    return "yes"


def _drop_hook_traceback(record: logging.LogRecord) -> bool:
    # Our hooks print one line saying what is wrong before they exit non-zero;
    # cookiecutter then logs a traceback of its own internals, which says nothing
    # more. Keep its message, drop the traceback.
    if record.exc_info and type(record.exc_info[1]).__name__ == "FailedHookException":
        record.exc_info = None
        record.exc_text = None
    return True


class FormatFilters(Extension):
    """Registers the filters above; enabled through ``_extensions`` in cookiecutter.json."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters.update(
            quoted=quoted, markdown=markdown, pyliteral=pyliteral, validate_answers=validate_answers
        )
        environment.globals["template_dir"] = str(Path(__file__).resolve().parent)
        hooks_logger = logging.getLogger("cookiecutter.hooks")
        if _drop_hook_traceback not in hooks_logger.filters:
            hooks_logger.addFilter(_drop_hook_traceback)
