"""Shared helpers for the template's test suite: baking, running commands, tool checks."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# CI sets this: a test that would skip for a missing tool fails instead, so a
# green CI run really exercised docker, helm, kubeconform, redis-server, ...
STRICT = os.environ.get("COUNTER_TEMPLATE_STRICT", "") not in ("", "0", "false")

# The count in the page GET / serves (the generated app's and the benchmark peers'):
# "I have been seen 1 time.", "I have been seen 2 times."
SEEN_COUNT = re.compile(r"I have been seen (\d+) times?\.")


def find_tool(name: str) -> str | None:
    """A tool on PATH, in the template venv, or in the machine-level tool cache."""
    candidates = [shutil.which(name), VENV_BIN / name, tool_cache_dir() / "bin" / name]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def tool_cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "counter-template"
    return Path(os.environ.get("COUNTER_TEMPLATE_CACHE", default))


def missing(reason: str) -> None:
    """Skip locally; fail under COUNTER_TEMPLATE_STRICT (CI) so nothing is silently left out.

    The reason carries what `make test`'s set-up could not do (scripts/test-env.sh), if anything.
    """
    notes = os.environ.get("COUNTER_TEMPLATE_SETUP_NOTES", "").strip()
    if notes:
        reason += " (not set up by make test: " + "; ".join(notes.splitlines()) + ")"
    if STRICT:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, hint: str = "") -> str:
    path = find_tool(name)
    if path is None:
        missing(f"{name} not found{': ' + hint if hint else ''}")
    return path


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers the tests start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    description: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.25
) -> Any:
    """Poll ``probe`` until it returns something true, and return that.

    Connection errors and half-started servers (OSError, which URLError is; bad
    JSON, a missing key) count as "not yet"; the last one is shown on timeout.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except (OSError, ValueError, KeyError) as error:
            last = error
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {description} (last error: {last!r})", pytrace=False)


def generated_venv_for(project: Path, extra: Sequence[str] = ()) -> Path:
    """A venv with a generated project's runtime + dev dependencies (not the project itself).

    Projects run from source with PYTHONPATH=src, so one venv serves every
    variant; ``extra`` requirements are added (make bench: the servers it compares). It
    is cached under .cache/ keyed by the dependency list, and created under a file lock
    because xdist workers (and make bench) ask at once.
    """
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dev = meta.get("optional-dependencies", {}).get("dev", [])
    requirements = sorted([*meta["dependencies"], *dev, *extra])
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    cache = TEMPLATE_DIR / ".cache"
    cache.mkdir(exist_ok=True)
    venv = cache / f"generated-venv-{digest}"
    with open(cache / "generated-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
                check=True,
            )
            (venv / "ready").write_text("\n".join(requirements))
    return venv


def run(
    cmd: Sequence[str | os.PathLike[str]],
    cwd: os.PathLike[str] | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
    inherit_env: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, and show that output when it fails.

    ``env`` is added to this process's environment, or replaces it with
    ``inherit_env=False``. Standard input is ``input``, or closed: nothing may prompt.
    """
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    result = subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        env=full_env,
        **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}),
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"command failed ({result.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}",
            pytrace=False,
        )
    return result


def make(
    project: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """A generated project's own Makefile target (``args``: targets, VAR=value, options)."""
    return run(
        ["make", "--no-print-directory", "-C", project, *args],
        env=env,
        check=check,
        input=input,
        timeout=timeout,
    )


def bake(output_dir: Path, validate: str = "off", **answers: Any) -> Path:
    """Bake the template with ``answers`` into ``output_dir`` and return the project directory.

    ``validate`` sets COUNTER_TEMPLATE_VALIDATE for the post-gen hook: the matrix
    tests run helm/kubeconform themselves, so they bake with validation off.
    """
    previous = os.environ.get("COUNTER_TEMPLATE_VALIDATE")
    os.environ["COUNTER_TEMPLATE_VALIDATE"] = validate
    try:
        project = cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context=answers,
            output_dir=str(output_dir),
        )
    finally:
        if previous is None:
            os.environ.pop("COUNTER_TEMPLATE_VALIDATE", None)
        else:
            os.environ["COUNTER_TEMPLATE_VALIDATE"] = previous
    return Path(project)


def bake_cli(
    output_dir: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Bake through the real ``cookiecutter`` command line, as a user would.

    A throwaway user config keeps replay files out of the real ~/.cookiecutter_replay.
    """
    cli = VENV_BIN / "cookiecutter"
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "cookiecutterrc.yaml"
        config.write_text(f"replay_dir: {scratch}/replay\ncookiecutters_dir: {scratch}/templates\n")
        return run(
            [cli, "--no-input", "-o", output_dir, TEMPLATE_DIR, *args],
            env={"COUNTER_TEMPLATE_VALIDATE": "off", "COOKIECUTTER_CONFIG": str(config), **(env or {})},
            check=False,
        )
