"""The Jinja filters that escape answers for the format they land in (local_extensions.py)."""

from __future__ import annotations

import ast
import json
import tomllib

import pytest
import yaml

from local_extensions import markdown, pyliteral, quoted

NASTY = [
    "Flask Counter",
    'say "hi": #1',
    "back\\slash",
    "- leading dash",
    "Zähler ünd Grüße ✓",
    "tab\there",
    "del\x7fchar",
    "nel\x85char",
    "{{ not jinja }} & <b>",
]


@pytest.mark.parametrize("text", NASTY)
def test_quoted_round_trips_through_every_format(text):
    literal = quoted(text)
    assert json.loads(literal) == text
    assert yaml.safe_load(f"key: {literal}") == {"key": text}
    assert tomllib.loads(f"key = {literal}") == {"key": text}
    assert ast.literal_eval(literal) == text


def test_markdown_escapes_punctuation_that_would_change_rendering():
    assert markdown("# not a heading *or* _emphasis_ [link](x)") == (
        r"\# not a heading \*or\* \_emphasis\_ \[link\]\(x\)"
    )
    assert markdown("Flask Counter") == "Flask Counter"


def test_pyliteral_is_plain_python():
    value = {"a": [1, True, None], "b": "x'y\"z"}
    assert ast.literal_eval(pyliteral(value)) == value
