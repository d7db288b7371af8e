"""The Jinja filters that escape answers for the format they land in (local_extensions.py)."""

from __future__ import annotations

import ast
import json
import re
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


MARKDOWN_TEXTS = [
    *NASTY,
    "Counts hits in Redis.",
    "Hello from Flask Counter!",
    "# not a heading *or* _emphasis_ [link](x) ![image](y) `code`",
    "1. not a list",
    "2) nor this",
    "- nor this",
    "+ nor this",
    "> not a quote",
    "a | b",
    "~~struck~~ <https://example.com> &amp; &#35;",
    "ends with a hash #",
    "under_score and a*star",
]


def rendered(markdown_source: str, tag: str) -> str:
    """What a reader sees inside ``tag``: CommonMark (markdown-it, GFM tables and strikethrough)."""
    import html

    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown_source)
    match = re.search(f"<{tag}>(.*)</{tag}>", page)
    assert match, f"no <{tag}> in {page!r}"
    # Markup the escaping missed would stay as tags (<em>, <a>, <code>, ...) here.
    return html.unescape(match.group(1))


@pytest.mark.parametrize("text", MARKDOWN_TEXTS)
def test_markdown_renders_as_the_literal_text(text):
    assert rendered(markdown(text), "p") == text.strip()
    assert rendered("# " + markdown(text), "h1") == text.strip()
    assert rendered(f"| a |\n| --- |\n| {markdown(text)} |\n", "td") == text.strip()


def test_markdown_escapes_only_what_would_be_markup():
    # The raw file stays readable: ordinary punctuation is left alone.
    assert markdown("Counts hits in Redis. Hello from Flask Counter!") == (
        "Counts hits in Redis. Hello from Flask Counter!"
    )
    assert markdown("# not a heading *or* _emphasis_ [link](x)") == (
        r"\# not a heading \*or\* \_emphasis\_ \[link\](x)"
    )
    assert markdown("1. x") == r"1\. x"


def test_pyliteral_is_plain_python():
    value = {"a": [1, True, None], "b": "x'y\"z"}
    assert ast.literal_eval(pyliteral(value)) == value
