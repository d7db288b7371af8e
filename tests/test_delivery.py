"""Delivery: the generated Makefile's cluster targets, the CI workflows and the operations guides.

Cluster targets are checked with `make -n` (the exact commands) and for real
up to the point where they need a cluster: without a kubectl context they
stop at once with one clear line. `make secret` runs against a stand-in
kubectl that records what it gets, to prove the password never reaches the
terminal or a command line.
"""

from __future__ import annotations

import re
import shutil
import stat
import time
from pathlib import Path

import pytest
import yaml

from helpers import TEMPLATE_DIR, make, require_tool, run

CLUSTER_TARGETS = ("deploy", "undeploy", "secret", "ingress-nginx", "monitoring", "istio", "port-forward")
PATH_PREFIXES = ("charts", "monitoring", "k8s", "docs", "scripts", "config", "src", "tests")


def makefile_targets(project: Path) -> set[str]:
    text = (project / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z][a-zA-Z0-9_-]*):", text, re.MULTILINE))


def make_targets_in(commands: list[str]) -> set[str]:
    """Targets named by `make ...` command lines (variables like TAG=x and options left out)."""
    targets = set()
    for command in commands:
        # `make` where a command starts: not "apk add make bash".
        for match in re.finditer(r"(?:^|&&|\|\||[;|(])\s*make((?:[ \t]+[^\s;&|)]+)+)", command, re.MULTILINE):
            for word in match.group(1).split():
                if word.startswith("-") or "=" in word or word.startswith(("'", '"', "$")):
                    continue
                if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                targets.add(word)
    return targets


# --- Makefile ------------------------------------------------------------------------


def test_every_target_is_documented_for_make_help(baked):
    project = baked("defaults")
    documented = set(re.findall(r"^## ([a-zA-Z_-]+): ", (project / "Makefile").read_text(), re.MULTILINE))
    assert makefile_targets(project) == documented
    listed = make(project, "help").stdout
    for target in (*CLUSTER_TARGETS, "push", "alerts-test", "cluster-context"):
        assert re.search(rf"^\s+{re.escape(target)}\s", listed, re.MULTILINE), f"make help lacks {target}"


@pytest.mark.parametrize("target", CLUSTER_TARGETS)
def test_cluster_targets_stop_at_once_without_a_context(baked, tmp_path, target):
    require_tool("kubectl")
    project = baked("defaults")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    started = time.monotonic()
    # HELM points nowhere: reaching helm would fail differently.
    result = make(project, target, "HELM=/nonexistent/helm", env={"KUBECONFIG": str(kubeconfig)}, check=False)
    assert result.returncode != 0
    assert "kubectl has no current context" in result.stderr, result.stderr
    assert "/nonexistent/helm" not in result.stdout + result.stderr
    assert time.monotonic() - started < 15


def test_deploy_dry_run_is_an_atomic_helm_upgrade_with_tag_and_values(baked):
    project = baked("defaults")
    slug = project.name
    commands = make(project, "-n", "deploy", "TAG=1.2.3", "VALUES=prod-values.yaml").stdout
    helm = " ".join(line.strip(" \t\\") for line in commands.splitlines() if "helm" in line or "--" in line)
    for part in (
        f"helm upgrade --install {slug} charts/{slug} --namespace {slug} --create-namespace",
        "--atomic --wait",
        "--values prod-values.yaml",
        "--set image.tag=1.2.3",
        "--set image.repository=ghcr.io/example/",
    ):
        assert part in helm, f"{part!r} not in {helm!r}"
    assert "config current-context" in commands, "deploy does not check the cluster first"


def test_other_cluster_target_dry_runs(baked):
    project = baked("defaults")
    slug = project.name
    version_file = project / "src" / slug.replace("-", "_") / "_version.py"
    version = re.search(r'^__version__ = "(.+)"', version_file.read_text(), re.MULTILINE)[1]
    assert f"helm uninstall {slug} --namespace {slug} --wait" in make(project, "-n", "undeploy").stdout
    assert "https://kubernetes.github.io/ingress-nginx" in make(project, "-n", "ingress-nginx").stdout
    monitoring = make(project, "-n", "monitoring").stdout
    assert "kube-prometheus-stack --repo https://prometheus-community.github.io/helm-charts" in monitoring
    values = re.search(r"--values (\S+)", monitoring)[1]
    assert (project / values).is_file()
    istio = make(project, "-n", "istio").stdout
    assert "istiod" in istio and f"label namespace {slug} istio-injection=enabled --overwrite" in istio
    assert f"port-forward service/{slug} 8080:80" in make(project, "-n", "port-forward").stdout
    # The chart prefixes the release name unless it contains the chart name.
    assert f"service/prod-{slug} " in make(project, "-n", "port-forward", "RELEASE=prod").stdout
    push = make(project, "-n", "push").stdout
    assert f"tag {slug}:local ghcr.io/example/{slug}:{version}" in push
    assert f"push ghcr.io/example/{slug}:{version}" in push


def fake_kubectl(tmp_path: Path) -> tuple[Path, Path]:
    """A kubectl stand-in: a context exists; `create ... --from-file=...=/dev/stdin` records its input."""
    log = tmp_path / "kubectl.log"
    script = tmp_path / "kubectl"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "ARGS $*" >> {log}\n'
        'case "$*" in\n'
        '  "config current-context") echo test-context ;;\n'
        f'  *"/dev/stdin"*) echo "STDIN $(cat)" >> {log}; echo "kind: Secret" ;;\n'
        '  "apply -f -") cat > /dev/null; echo "applied" ;;\n'
        '  *) echo "kind: Namespace" ;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def test_secret_comes_from_dotenv_and_is_never_printed(baked, tmp_path):
    project = baked("defaults")
    kubectl, log = fake_kubectl(tmp_path)
    env_file = tmp_path / ".env"
    env_file.write_text("GRAFANA_ADMIN_PASSWORD=other\nREDIS_PASSWORD=s3cret-from-dotenv\n")
    result = make(project, "secret", f"KUBECTL={kubectl}", f"ENV_FILE={env_file}")
    recorded = log.read_text()
    assert "STDIN s3cret-from-dotenv" in recorded
    assert "s3cret" not in result.stdout + result.stderr
    args = [line for line in recorded.splitlines() if line.startswith("ARGS")]
    assert not any("s3cret" in line for line in args), "the password is on a command line (visible in ps)"
    assert any(f"create secret generic {project.name}-redis" in line for line in args)


def test_secret_prompts_without_dotenv_and_refuses_empty(baked, tmp_path):
    project = baked("defaults")
    kubectl, log = fake_kubectl(tmp_path)
    missing = tmp_path / "no.env"
    typed = make(project, "secret", f"KUBECTL={kubectl}", f"ENV_FILE={missing}", input="typed-secret\n")
    assert "STDIN typed-secret" in log.read_text()
    assert "typed-secret" not in typed.stdout + typed.stderr
    empty = make(project, "secret", f"KUBECTL={kubectl}", f"ENV_FILE={missing}", input="", check=False)
    assert empty.returncode != 0 and "REDIS_PASSWORD='' is not allowed" in empty.stderr


def test_alerts_test_and_template_targets_run(baked):
    require_tool("promtool", "apt-get install prometheus")
    helm = require_tool("helm", "run scripts/install-tools.sh")
    project = baked("defaults")
    assert "SUCCESS" in make(project, "alerts-test").stdout
    rendered = make(project, "--silent", "template", f"HELM={helm}").stdout
    assert {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc} >= {
        "Deployment",
        "StatefulSet",
        "Service",
    }


def test_template_lists_what_the_render_leaves_out_and_the_readme_example_shows_it(baked):
    """`helm template` sees no cluster: gated objects are left out and said so, and the README's
    example announces the API, so it renders what it claims."""
    helm = require_tool("helm", "run scripts/install-tools.sh")
    project = baked("defaults")

    def kinds(rendered: str) -> set[str]:
        return {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}

    plain = make(project, "--silent", "template", f"HELM={helm}", "ARGS=--set istio.enabled=true").stdout
    assert "VirtualService" not in kinds(plain)
    assert "# - istio.enabled=true, but the cluster has no networking.istio.io/v1 API" in plain
    (example,) = re.findall(r"^make template ARGS='([^']+)'$", (project / "README.md").read_text(), re.M)
    shown = make(project, "--silent", "template", f"HELM={helm}", f"ARGS={example}").stdout
    assert {"VirtualService", "DestinationRule"} <= kinds(shown)
    assert "Left out of this render" not in shown


def test_every_target_finds_helm_by_the_same_rule(baked, tmp_path):
    """Not on PATH, but in K8S_TOOLS_DIR (the template's tool cache by default): `make template`
    and scripts/validate_k8s.py (`make validate`) both find it there, and validate says so."""
    helm = require_tool("helm", "run scripts/install-tools.sh")
    project = baked("defaults")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "helm").symlink_to(helm)
    env = {"PATH": "/usr/bin:/bin", "K8S_TOOLS_DIR": str(tools), "HOME": str(tmp_path)}
    rendered = run(["make", "--silent", "-C", project, "template"], env=env, inherit_env=False).stdout
    assert "kind: Deployment" in rendered
    helm_lint = run(
        ["python3", project / "scripts" / "validate_k8s.py"], env=env, inherit_env=False, check=False
    )
    assert f"helm is not on PATH; using {tools}/helm" in helm_lint.stderr


def test_prometheus_values_scrape_configs_are_valid(baked, tmp_path):
    """The plain-Prometheus values' scrape jobs and the rules they load pass promtool."""
    promtool = require_tool("promtool", "apt-get install prometheus")
    project = baked("defaults")
    values = yaml.safe_load((project / "monitoring" / "kubernetes" / "prometheus-values.yaml").read_text())
    jobs = yaml.safe_load(values["extraScrapeConfigs"])
    assert [job["job_name"] for job in jobs] == [project.name, f"{project.name}-redis"]
    for job in jobs:
        # Debian's promtool is built without Kubernetes discovery: check the rest of each job.
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    config = tmp_path / "prometheus.yml"
    rules = project / "charts" / project.name / "prometheus" / "alerts.yml"
    config.write_text(yaml.safe_dump({"rule_files": [str(rules)], "scrape_configs": jobs}))
    run([promtool, "check", "config", config])
    mount = values["server"]["extraConfigmapMounts"][0]
    assert f"{mount['mountPath']}/alerts.yml" in values["serverFiles"]["prometheus.yml"]["rule_files"]


# --- CI --------------------------------------------------------------------------------


def ci_commands(project: Path, provider: str) -> tuple[dict, list[str]]:
    if provider == "github":
        workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
        commands = [
            step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
        ]
        return workflow, commands
    pipeline = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    commands = [
        line
        for job in pipeline.values()
        if isinstance(job, dict)
        for key in ("before_script", "script")
        for line in job.get(key, [])
    ]
    return pipeline, commands


@pytest.mark.parametrize(("variant", "provider"), [("defaults", "github"), ("ci_provider=gitlab", "gitlab")])
def test_ci_parses_and_calls_existing_make_targets(baked, variant, provider):
    project = baked(variant)
    config, commands = ci_commands(project, provider)
    called = make_targets_in(commands)
    assert called >= {"lint", "test", "build", "validate", "alerts-test", "push"}
    assert called <= makefile_targets(project), (
        f"CI calls missing targets: {called - makefile_targets(project)}"
    )
    assert any("pre-commit run --all-files" in command for command in commands)
    other = {"github": ".gitlab-ci.yml", "gitlab": ".github"}[provider]
    assert not (project / other).exists(), f"{other} generated for ci_provider={provider}"
    if provider == "github":
        assert config[True if True in config else "on"]["push"]["tags"] == ["v*"]
        assert "redis" in config["jobs"]["test"]["services"]
        assert config["jobs"]["test"]["env"]["TEST_REQUIRE_REDIS"] == "1"
        release = config["jobs"]["release"]
        assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
        text = (project / ".github" / "workflows" / "ci.yml").read_text()
        # GitHub's own ${{ }} expressions survive the bake untouched.
        assert "secrets.GITHUB_TOKEN }}" in text and "${{ env.PYTHON_VERSION }}" in text
    else:
        assert config["test"]["services"][0]["name"].startswith("redis")
        assert config["test"]["variables"]["TEST_REQUIRE_REDIS"] == "1"
        assert config["release"]["rules"] == [{"if": "$CI_COMMIT_TAG"}]


def test_workflows_pass_actionlint(baked):
    """actionlint checks expressions, job graphs and step syntax that a YAML parse lets through."""
    actionlint = require_tool("actionlint", "run scripts/install-tools.sh")
    for repository in (TEMPLATE_DIR, baked("defaults")):
        workflow = repository / ".github" / "workflows" / "ci.yml"
        # -shellcheck= : the run scripts are checked by the tests that run them, not by a shellcheck binary.
        result = run([actionlint, "-shellcheck=", "-pyflakes=", workflow], check=False)
        assert result.returncode == 0, f"{workflow}:\n{result.stdout}{result.stderr}"


def test_fork_workflow_runs_the_same_set_up_as_ci(baked):
    """One set-up for every CI: the fork workflow's test job runs `make test` in strict mode, which
    installs what the suite needs itself (scripts/test-env.sh), as .ci/run does."""
    workflow = yaml.safe_load((TEMPLATE_DIR / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    commands = [step["run"] for step in job["steps"] if "run" in step]
    assert job["env"]["COUNTER_TEMPLATE_STRICT"] == "1"
    assert "make test" in commands
    assert not any("apt-get" in command for command in commands), "packages belong to the set-up script"
    ci_run = (TEMPLATE_DIR / ".ci" / "run").read_text()
    assert "make test" in ci_run and "COUNTER_TEMPLATE_STRICT=1" in ci_run


def test_no_ci_files_without_a_provider(baked):
    project = baked("ci_provider=none")
    assert not (project / ".github").exists() and not (project / ".gitlab-ci.yml").exists()
    assert "**CI**" not in (project / "README.md").read_text()


def test_make_target_parser():
    assert make_targets_in(
        ["make build push TAG=${GITHUB_REF_NAME#v}", "cd x && make -n lint", "pip install"]
    ) == {
        "build",
        "push",
        "lint",
    }


# --- docs --------------------------------------------------------------------------------


def doc_files(project: Path) -> list[Path]:
    return [project / "README.md", *sorted((project / "docs").glob("*.md"))]


def guide_problems(project: Path) -> list[str]:
    """`make` targets, links and repository paths in README.md and docs/ that do not exist."""
    targets = makefile_targets(project)
    problems = []
    linked: set[Path] = set()
    for doc in doc_files(project):
        text = doc.read_text(encoding="utf-8")
        where = doc.relative_to(project)
        code = re.findall(r"```[^\n]*\n(.*?)```", text, re.DOTALL) + re.findall(r"`([^`\n]+)`", text)
        for target in make_targets_in(code):
            if target not in targets:
                problems.append(f"{where}: make {target}: no such target")
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+://", link):
                continue
            path = (doc.parent / link).resolve()
            linked.add(path)
            if not path.exists():
                problems.append(f"{where}: link {link} does not exist")
        for reference in re.findall(rf"(?<![\w./-])((?:{'|'.join(PATH_PREFIXES)})/[\w./*-]*)", text):
            reference = reference.rstrip(".,:")
            matches = list(project.glob(reference)) if "*" in reference else [project / reference]
            if not any(path.exists() for path in matches):
                problems.append(f"{where}: {reference} does not exist")
    for guide in ("ingress-nginx", "monitoring", "istio", "logs", "appendix"):
        if (project / "docs" / f"{guide}.md").resolve() not in linked:
            problems.append(f"docs/{guide}.md is not linked from the README or docs/README.md")
    return problems


@pytest.mark.parametrize("variant", ["defaults", "odd-names"])
def test_guides_reachable_and_refer_to_existing_targets_and_files(baked, variant):
    problems = guide_problems(baked(variant))
    assert problems == [], "\n".join(problems)


def test_guide_checker_catches_missing_targets_and_files(baked, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(baked("defaults"), project)
    with (project / "docs" / "istio.md").open("a", encoding="utf-8") as guide:
        guide.write("\nRun `make deploy-everything`, then edit `charts/no-such-chart/values.yaml`.\n")
    (project / "docs" / "logs.md").unlink()
    problems = "\n".join(guide_problems(project))
    assert "make deploy-everything: no such target" in problems
    assert "charts/no-such-chart/values.yaml does not exist" in problems
    assert "link logs.md does not exist" in problems
