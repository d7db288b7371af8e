"""``make bake``: generate a project from this checkout, with one-line errors for every bad answer.

Usage: python -m hooks.bake [--output-dir DIR] [key=value ...]

Plain ``cookiecutter`` converts ``key=value`` answers itself before any hook of
this template runs, and answers a yes/no that is not one (``enable_istio=maybe``),
a choice that is not offered (``python_version=3.10``) with a traceback of its
own internals; an answer name it does not know (``enable_isito=yes``) it drops
without a word. This entry point checks those three first, in the template's
error grammar, then bakes with cookiecutter's own API. Every other answer is
checked in-process before cookiecutter writes its replay file or any project
file (``validate_answers`` in local_extensions.py, hooks/validation.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cookiecutter.exceptions import CookiecutterException, FailedHookException
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import YesNoPrompt
from rich.prompt import InvalidResponse

from hooks.validation import ANSWERS, COOKIECUTTER_JSON, FIELD_CHECKS, InvalidAnswer, boolean

TEMPLATE_DIR = COOKIECUTTER_JSON.parent


def parse_answer(field: str, text: str) -> Any:
    """One ``key=value`` answer as cookiecutter would take it, or :class:`InvalidAnswer`."""
    if field not in ANSWERS:
        raise InvalidAnswer(field, text, "not an answer of this template; answers: " + ", ".join(ANSWERS))
    default = ANSWERS[field]
    if isinstance(default, bool):
        try:
            return YesNoPrompt().process_response(text)
        except InvalidResponse:
            raise InvalidAnswer(field, text, boolean(text) + " (or yes/no, on/off, 1/0)") from None
    if isinstance(default, list):
        problem = FIELD_CHECKS[field](text)
        if problem:
            raise InvalidAnswer(field, text, problem)
    return text


def parse_answers(pairs: Sequence[str]) -> dict[str, Any]:
    answers = {}
    for pair in pairs:
        field, equals, text = pair.partition("=")
        if not equals:
            raise InvalidAnswer(pair, "", "answers are key=value, e.g. enable_istio=yes")
        answers[field] = parse_answer(field, text)
    return answers


def bake(output_dir: Path, answers: Mapping[str, Any]) -> Path:
    return Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context=dict(answers),
            output_dir=str(output_dir),
            overwrite_if_exists=True,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bake", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("build"))
    parser.add_argument("answers", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    try:
        project = bake(args.output_dir, parse_answers(args.answers))
    except InvalidAnswer as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    except FailedHookException:
        return 1  # the hook printed its own one-line error
    except CookiecutterException as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    print(f"generated {project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
