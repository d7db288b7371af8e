"""The set-up `make test` runs (scripts/test-env.sh and the scripts it calls), as a new user meets it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from helpers import TEMPLATE_DIR, missing, require_tool, run, tool_cache_dir

pytestmark = pytest.mark.slow

SCRIPTS = TEMPLATE_DIR / "scripts"


def exports(output: str) -> dict[str, str]:
    """The variables an `export NAME=value` script output sets (values shell-quoted)."""
    return {
        name: shlex.split(value)[0] if value else ""
        for name, value in re.findall(r"^export ([A-Z_]+)=(.*)$", output, re.MULTILINE)
    }


def test_go_is_bootstrapped_without_usr_local_go():
    """A machine whose only Go is too old or absent: install-go.sh gets a Go >= 1.21 from apt
    and fetches the pinned toolchain through the Go module proxy (GOTOOLCHAIN). /usr/local/go
    is hidden by a private mount, as on a stock Debian machine."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("apt-get"):
        missing("needs root, unshare and apt-get to hide /usr/local/go and install a bootstrap Go")
    plain_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    script = f"mount -t tmpfs none /usr/local/go && {SCRIPTS / 'install-go.sh'}"
    result = run(
        ["unshare", "--mount", "bash", "-c", script],
        env={"PATH": plain_path, "COUNTER_TEMPLATE_CACHE": str(tool_cache_dir())},
        timeout=900,
    )
    bin_dir = Path(result.stdout.strip())
    assert not str(bin_dir).startswith("/usr/local/go"), result.stderr
    version = run([bin_dir / "go", "env", "GOVERSION"], env={"GOTOOLCHAIN": "local"}).stdout.strip()
    required = re.search(r"^go (\S+)$", (SCRIPTS / "control-plane" / "go.mod").read_text(), re.M).group(1)
    assert tuple(map(int, version[2:].split(".")[:2])) >= tuple(map(int, required.split(".")[:2])), version


def test_offline_set_up_points_kubeconform_at_the_cache_it_built():
    """Offline, `make test` must validate against the schema cache it builds, not the network."""
    docker = require_tool("docker", "scripts/docker-engine.sh")
    if run([docker, "info"], check=False).returncode != 0:
        missing("no Docker engine answers (scripts/docker-engine.sh starts one)")
    env = {
        "COUNTER_TEMPLATE_OFFLINE": "1",
        "COUNTER_TEMPLATE_NO_CLUSTER": "1",
        "COUNTER_TEMPLATE_STRICT": "",
        "KUBECONFORM_SCHEMA_LOCATION": "",
        "CRD_SCHEMA_LOCATION": "",
        "PYTHON": sys.executable,
    }
    result = run([SCRIPTS / "test-env.sh"], env=env, timeout=1200)
    exported = exports(result.stdout)
    cache = exported["KUBECONFORM_SCHEMA_LOCATION"]
    assert cache == str(tool_cache_dir() / "kube-schemas")
    assert Path(cache).is_dir() and any(Path(cache).iterdir())
    assert exported["PYTHON_IMAGE"].startswith("counter-template-standin/")
    # Offline without CRD schemas: said once, and handed to the tests as their skip reason.
    notes = exported["COUNTER_TEMPLATE_SETUP_NOTES"]
    assert "CRD schemas: offline and CRD_SCHEMA_LOCATION is not set" in notes
    assert "cluster: COUNTER_TEMPLATE_NO_CLUSTER is set" in notes


def test_each_checkout_has_its_own_cluster(tmp_path):
    """Two clones get two cluster names, so neither uses or stops the other's cluster."""
    names = []
    for clone in ("one", "two"):
        scripts = tmp_path / clone / "scripts"
        shutil.copytree(SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
        result = run(
            [scripts / "kube-cluster.sh", "kubeconfig"], env={"COUNTER_TEMPLATE_CLUSTER": ""}, check=False
        )
        assert result.returncode != 0
        names.append(re.search(r"cluster (\S+) is not running", result.stderr).group(1))
    assert names[0] != names[1] and all(name.startswith("counter-template-") for name in names)
    named = run(
        [SCRIPTS / "kube-cluster.sh", "kubeconfig"], env={"COUNTER_TEMPLATE_CLUSTER": "mine"}, check=False
    )
    assert "cluster mine is not running" in named.stderr


def test_cluster_up_offline_names_crd_schema_location_and_starts_nothing(tmp_path):
    result = run(
        [SCRIPTS / "kube-cluster.sh", "up"],
        env={
            "COUNTER_TEMPLATE_CLUSTER": "crd-check",
            "CRD_SCHEMA_LOCATION": "https://crds.invalid/catalog",
            "KWOK_WORKDIR": str(tmp_path / "kwok"),
        },
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "kube-cluster.sh: no CRDs for the cluster: the schemas at CRD_SCHEMA_LOCATION=https://crds.invalid/catalog"
    )
    assert "no objects passed to apply" not in result.stderr
    assert not (tmp_path / "kwok" / "clusters" / "crd-check").exists()
