"""Cross-resource checks over rendered Kubernetes objects.

kubeconform validates each object alone; these checks validate how objects
refer to each other (selectors, names, ports, keys), which only fails at run
time in a cluster otherwise. Each check returns a list of problems, one line
each, naming the object and the reference that does not resolve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Obj = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# Pod Security Standard "restricted" plus this project's own rule of UIDs >= 10000.
MIN_UID = 10000


def name_of(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj.get("kind") == kind]


def find(objects: Iterable[Obj], kind: str, name: str) -> Obj | None:
    return next((obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name), None)


def matches(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A matchLabels-style selector (non-empty) selects these labels."""
    labels = labels or {}
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def label_selector(selector: Mapping[str, Any]) -> dict[str, str]:
    if selector.get("matchExpressions"):
        raise AssertionError(f"matchExpressions are not used by this project: {selector}")
    return dict(selector.get("matchLabels") or {})


def pod_template_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels") or {}


def workloads(objects: Iterable[Obj]) -> list[Obj]:
    return [obj for obj in objects if obj.get("kind") in WORKLOAD_KINDS]


def pod_specs(objects: Iterable[Obj]) -> list[tuple[str, Obj]]:
    specs = [(name_of(w), w["spec"]["template"]["spec"]) for w in workloads(objects)]
    specs += [(name_of(p), p["spec"]) for p in of_kind(objects, "Pod")]
    return specs


def component_pods(objects: Iterable[Obj], component: str) -> list[Obj]:
    return [
        w
        for w in workloads(objects)
        if pod_template_labels(w).get("app.kubernetes.io/component") == component
    ]


def container_ports(workload: Obj) -> list[dict[str, Any]]:
    return [port for c in workload["spec"]["template"]["spec"]["containers"] for port in c.get("ports", [])]


def port_exists(ports: list[Mapping[str, Any]], ref: Any, number_key: str) -> bool:
    if isinstance(ref, str) and not ref.isdigit():
        return any(port.get("name") == ref for port in ports)
    return any(port.get(number_key) == int(ref) for port in ports)


# --- the checks ----------------------------------------------------------------


def check_workload_selectors(objects: list[Obj]) -> list[str]:
    problems = []
    for workload in workloads(objects):
        selector = label_selector(workload["spec"]["selector"])
        if not matches(selector, pod_template_labels(workload)):
            problems.append(f"{name_of(workload)}: selector {selector} does not match its own pod template")
    for stateful in of_kind(objects, "StatefulSet"):
        governing = find(objects, "Service", stateful["spec"]["serviceName"])
        if governing is None:
            problems.append(
                f"{name_of(stateful)}: serviceName {stateful['spec']['serviceName']!r} is no Service"
            )
        # The governing Service gives each pod its DNS name: only a headless one does.
        elif governing["spec"].get("clusterIP") != "None":
            problems.append(
                f"{name_of(stateful)}: serviceName names {name_of(governing)}, which is not headless"
            )
    return problems


def check_service_selectors(objects: list[Obj]) -> list[str]:
    problems = []
    for service in of_kind(objects, "Service"):
        selector = service["spec"].get("selector") or {}
        selected = [w for w in workloads(objects) if matches(selector, pod_template_labels(w))]
        if not selected:
            problems.append(f"{name_of(service)}: selector {selector} matches no pod template")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload in selected:
                if not port_exists(container_ports(workload), target, "containerPort"):
                    problems.append(
                        f"{name_of(service)}: targetPort {target!r} is not a port of {name_of(workload)}"
                    )
    return problems


def check_ingress_backends(objects: list[Obj]) -> list[str]:
    problems = []
    for ingress in of_kind(objects, "Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = find(objects, "Service", backend["name"])
                if service is None:
                    problems.append(f"{name_of(ingress)}: backend Service {backend['name']!r} does not exist")
                    continue
                port = backend["port"].get("name", backend["port"].get("number"))
                if not port_exists(service["spec"]["ports"], port, "port"):
                    problems.append(f"{name_of(ingress)}: {name_of(service)} has no port {port!r}")
    return problems


def check_hpa_and_pdb(objects: list[Obj]) -> list[str]:
    problems = []
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        deployment = find(objects, target["kind"], target["name"])
        if deployment is None or target["apiVersion"] != deployment["apiVersion"]:
            problems.append(f"{name_of(hpa)}: scaleTargetRef {target} is no rendered workload")
            continue
        if "replicas" in deployment["spec"]:
            problems.append(f"{name_of(hpa)}: {name_of(deployment)} sets replicas, fighting the autoscaler")
        if hpa["spec"].get("minReplicas", 1) < 2:
            problems.append(f"{name_of(hpa)}: minReplicas below 2 is not highly available")
        if hpa["spec"]["minReplicas"] > hpa["spec"]["maxReplicas"]:
            problems.append(f"{name_of(hpa)}: minReplicas > maxReplicas")
        containers = deployment["spec"]["template"]["spec"]["containers"]
        if not all(c.get("resources", {}).get("requests", {}).get("cpu") for c in containers):
            problems.append(f"{name_of(hpa)}: CPU utilisation needs a CPU request on every container")
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        selector = label_selector(pdb["spec"]["selector"])
        if not any(matches(selector, pod_template_labels(d)) for d in of_kind(objects, "Deployment")):
            problems.append(f"{name_of(pdb)}: selector {selector} matches no Deployment's pods")
        # With the default (IfHealthyBudget) a crash-looping pod counts against the budget and
        # can never be evicted, so it blocks every drain of its node.
        if pdb["spec"].get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
            problems.append(f"{name_of(pdb)}: unhealthyPodEvictionPolicy is not AlwaysAllow")
    return problems


def check_config_references(objects: list[Obj], external_secrets: Mapping[str, Iterable[str]]) -> list[str]:
    """configMapKeyRef/secretKeyRef/envFrom name rendered objects and keys, or a documented Secret."""

    def keys(kind: str, name: str) -> set[str] | None:
        obj = find(objects, kind, name)
        if obj is not None:
            return set(obj.get("data") or {}) | set(obj.get("stringData") or {})
        if kind == "Secret" and name in external_secrets:
            return set(external_secrets[name])
        return None

    problems = []
    for owner, spec in pod_specs(objects):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for source in container.get("envFrom", []):
                for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if field in source and keys(kind, source[field]["name"]) is None:
                        problems.append(f"{owner}: envFrom {kind} {source[field]['name']!r} does not exist")
            for variable in container.get("env", []):
                for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = (variable.get("valueFrom") or {}).get(field)
                    if not ref:
                        continue
                    available = keys(kind, ref["name"])
                    if available is None:
                        problems.append(
                            f"{owner}: env {variable['name']}: {kind} {ref['name']!r} does not exist"
                        )
                    elif ref["key"] not in available:
                        problems.append(
                            f"{owner}: env {variable['name']}: {kind} {ref['name']!r} "
                            f"has no key {ref['key']!r}"
                        )
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if not secret:
                continue
            available = keys("Secret", secret["secretName"])
            if available is None:
                problems.append(
                    f"{owner}: volume {volume['name']}: Secret {secret['secretName']!r} does not exist"
                )
            for item in secret.get("items", []):
                if available is not None and item["key"] not in available:
                    problems.append(
                        f"{owner}: volume {volume['name']}: Secret {secret['secretName']!r} "
                        f"has no key {item['key']!r}"
                    )
        account = spec.get("serviceAccountName")
        if account and account != "default" and find(objects, "ServiceAccount", account) is None:
            problems.append(f"{owner}: ServiceAccount {account!r} does not exist")
    return problems


def check_probes(objects: list[Obj]) -> list[str]:
    problems = []
    for owner, spec in pod_specs(objects):
        for container in spec["containers"]:
            ports = container.get("ports", [])
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(probe_name)
                if (
                    probe
                    and "httpGet" in probe
                    and not port_exists(ports, probe["httpGet"]["port"], "containerPort")
                ):
                    problems.append(
                        f"{owner}: {probe_name} port {probe['httpGet']['port']!r} is not a container port"
                    )
            # A container that can die can also be not ready yet: without a readiness probe it
            # counts as Ready (and its ports as endpoints) from its first second.
            if container.get("livenessProbe") and not container.get("readinessProbe"):
                problems.append(f"{owner} container {container['name']}: livenessProbe but no readinessProbe")
    for workload in component_pods(objects, "app"):
        container = workload["spec"]["template"]["spec"]["containers"][0]
        paths = {
            name: (container.get(name) or {}).get("httpGet", {}).get("path")
            for name in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        expected = {
            "startupProbe": "/health/live",
            "livenessProbe": "/health/live",
            "readinessProbe": "/health/ready",
        }
        if paths != expected:
            problems.append(f"{name_of(workload)}: probe paths {paths}, expected {expected}")
    return problems


def check_redis_probes(objects: list[Obj]) -> list[str]:
    """Redis has a startup probe, and liveness and readiness ask different questions.

    One `redis-cli ping` for both restarts Redis while it loads its append-only file (every
    command answers LOADING until then): liveness must accept that, readiness must not.
    """
    problems = []
    for workload in component_pods(objects, "redis"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container["name"] != "redis":
                continue
            where = f"{name_of(workload)} container redis"
            probes = {
                name: container.get(name) for name in ("startupProbe", "livenessProbe", "readinessProbe")
            }
            problems += [f"{where}: no {name}" for name, probe in probes.items() if not probe]
            liveness, readiness = probes["livenessProbe"], probes["readinessProbe"]
            if liveness and readiness and liveness.get("exec") == readiness.get("exec"):
                problems.append(f"{where}: livenessProbe and readinessProbe run the same command")
            if liveness and "LOADING" not in " ".join((liveness.get("exec") or {}).get("command", [])):
                problems.append(f"{where}: livenessProbe fails while Redis loads its data (LOADING)")
    return problems


def check_secrets_off_command_lines(objects: list[Obj]) -> list[str]:
    """No Secret reaches a command line, and Redis' containers read the password from a file.

    A command line is world-readable (ps, /proc/<pid>/cmdline): `--requirepass $(VAR)` with VAR
    from a Secret shows the password to every process on the node. Redis and its exporter get
    the Secret mounted instead; REDISCLI_AUTH stays in the env for the probes' redis-cli
    (an environment is readable by the same user and root only).
    """
    problems = []
    for owner, spec in pod_specs(objects):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            where = f"{owner} container {container['name']}"
            secret_env = {
                variable["name"]
                for variable in container.get("env", [])
                if "secretKeyRef" in (variable.get("valueFrom") or {})
            }
            argv = " ".join(map(str, container.get("command", []) + container.get("args", [])))
            problems += [
                f"{where}: Secret env {name} is on the command line"
                for name in sorted(secret_env)
                if f"$({name})" in argv
            ]
    for workload in component_pods(objects, "redis"):
        spec = workload["spec"]["template"]["spec"]
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for variable in container.get("env", []):
                if (
                    "secretKeyRef" in (variable.get("valueFrom") or {})
                    and variable["name"] != "REDISCLI_AUTH"
                ):
                    problems.append(
                        f"{name_of(workload)} container {container['name']}: password in env "
                        f"{variable['name']}, not read from the mounted Secret"
                    )
    return problems


def check_service_monitors(objects: list[Obj]) -> list[str]:
    problems = []
    for monitor in of_kind(objects, "ServiceMonitor"):
        selector = label_selector(monitor["spec"]["selector"])
        services = [s for s in of_kind(objects, "Service") if matches(selector, s["metadata"].get("labels"))]
        if not services:
            problems.append(f"{name_of(monitor)}: selector {selector} matches no Service")
        job_label = monitor["spec"].get("jobLabel")
        for service in services:
            if job_label and job_label not in (service["metadata"].get("labels") or {}):
                problems.append(
                    f"{name_of(monitor)}: jobLabel {job_label!r} is no label of {name_of(service)}"
                )
        for endpoint in monitor["spec"]["endpoints"]:
            for service in services:
                if not any(p.get("name") == endpoint.get("port") for p in service["spec"]["ports"]):
                    problems.append(
                        f"{name_of(monitor)}: {name_of(service)} has no port named {endpoint.get('port')!r}"
                    )
    return problems


def check_prometheus_rules(objects: list[Obj]) -> list[str]:
    """Each rule is an alert or a recording rule with an expression; alerts carry a severity."""
    problems = []
    for rule_object in of_kind(objects, "PrometheusRule"):
        groups = rule_object["spec"].get("groups") or []
        if not groups:
            problems.append(f"{name_of(rule_object)}: no rule groups")
        for group in groups:
            for rule in group.get("rules") or []:
                label = rule.get("alert") or rule.get("record")
                if not label or not rule.get("expr"):
                    problems.append(f"{name_of(rule_object)}: rule {rule} needs alert/record and expr")
                elif "alert" in rule and not (rule.get("labels") or {}).get("severity"):
                    problems.append(f"{name_of(rule_object)}: alert {label} has no severity label")
    return problems


def check_istio(objects: list[Obj]) -> list[str]:
    problems = []
    rules = {rule["spec"]["host"]: rule for rule in of_kind(objects, "DestinationRule")}
    for host, rule in rules.items():
        service = find(objects, "Service", host)
        if service is None:
            problems.append(f"{name_of(rule)}: host {host!r} is no Service")
            continue
        for subset in rule["spec"]["subsets"]:
            selector = {**service["spec"]["selector"], **subset["labels"]}
            selected = [
                d for d in of_kind(objects, "Deployment") if matches(selector, pod_template_labels(d))
            ]
            if len(selected) != 1:
                problems.append(
                    f"{name_of(rule)}: subset {subset['name']} selects {len(selected)} Deployments, want 1"
                )
    for service in of_kind(objects, "VirtualService"):
        for host in service["spec"]["hosts"][:1]:
            if find(objects, "Service", host) is None:
                problems.append(f"{name_of(service)}: first host {host!r} is not the app Service")
        for route in service["spec"]["http"]:
            destinations = route["route"]
            total = sum(d.get("weight", 0) for d in destinations)
            if len(destinations) > 1 and total != 100:
                problems.append(f"{name_of(service)}: route weights sum to {total}, not 100")
            for destination in destinations:
                target = destination["destination"]
                rule = rules.get(target["host"])
                subsets = {s["name"] for s in rule["spec"]["subsets"]} if rule else set()
                if target.get("subset") and target["subset"] not in subsets:
                    problems.append(
                        f"{name_of(service)}: subset {target['subset']!r} is not in a DestinationRule"
                    )
                port = (target.get("port") or {}).get("number")
                svc = find(objects, "Service", target["host"])
                if port and svc and not port_exists(svc["spec"]["ports"], port, "port"):
                    problems.append(f"{name_of(service)}: Service {target['host']!r} has no port {port}")
            retries = route.get("retries") or {}
            if not {"attempts", "perTryTimeout", "retryOn"} <= set(retries):
                problems.append(f"{name_of(service)}: retry policy incomplete: {retries}")
    return problems


def check_network_policies(objects: list[Obj]) -> list[str]:
    """Every policy that isolates Redis still admits the app pods on the Redis port."""
    problems = []
    app_pods = component_pods(objects, "app")
    for redis in component_pods(objects, "redis"):
        redis_labels = pod_template_labels(redis)
        redis_ports = container_ports(redis)
        for policy in of_kind(objects, "NetworkPolicy"):
            if not matches(label_selector(policy["spec"]["podSelector"]), redis_labels):
                continue
            for app in app_pods:
                admitted = any(
                    any(
                        matches(label_selector(peer.get("podSelector", {})), pod_template_labels(app))
                        for peer in rule.get("from", [])
                    )
                    and all(
                        port_exists(redis_ports, p["port"], "containerPort") for p in rule.get("ports", [])
                    )
                    for rule in policy["spec"].get("ingress", [])
                )
                if not admitted:
                    problems.append(f"{name_of(policy)}: does not let {name_of(app)} reach {name_of(redis)}")
    return problems


def selecting_policies(objects: list[Obj], labels: Mapping[str, str]) -> list[Obj]:
    return [
        policy
        for policy in of_kind(objects, "NetworkPolicy")
        if matches(label_selector(policy["spec"]["podSelector"]), labels)
    ]


def rule_ports(rule: Mapping[str, Any]) -> list[tuple[Any, str]]:
    return [(p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports") or []]


def check_app_network_policies(objects: list[Obj]) -> list[str]:
    """Once the chart isolates Redis, the app is isolated too, both ways, and still works.

    The app's pods are selected for Ingress and Egress; their egress admits Redis' pod on its
    port and DNS (UDP and TCP 53); their ingress admits the chart's `helm test` pod on the
    app port. Redis' own policy isolates its egress and allows none: it opens no connection.
    """
    problems = []
    if not of_kind(objects, "NetworkPolicy"):
        return problems
    tests = [
        p
        for p in of_kind(objects, "Pod")
        if (p["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ]
    for app in component_pods(objects, "app"):
        policies = selecting_policies(objects, pod_template_labels(app))
        types = {kind for policy in policies for kind in policy["spec"].get("policyTypes", [])}
        if not {"Ingress", "Egress"} <= types:
            problems.append(
                f"{name_of(app)}: no NetworkPolicy isolates its pods' Ingress and Egress ({types})"
            )
            continue
        egress = [rule for policy in policies for rule in policy["spec"].get("egress") or []]
        ingress = [rule for policy in policies for rule in policy["spec"].get("ingress") or []]
        dns = set().union(*(rule_ports(rule) for rule in egress)) if egress else set()
        if not {(53, "UDP"), (53, "TCP")} <= dns:
            problems.append(f"{name_of(app)}: its egress admits no DNS (UDP and TCP 53)")
        for redis in component_pods(objects, "redis"):
            numbers = {p["containerPort"] for p in container_ports(redis) if p.get("name") == "redis"}
            admitted = any(
                any(
                    matches(label_selector(peer.get("podSelector") or {}), pod_template_labels(redis))
                    and "namespaceSelector" not in peer
                    for peer in rule.get("to", [])
                )
                and any(port in numbers for port, _ in rule_ports(rule))
                for rule in egress
            )
            if not admitted:
                problems.append(f"{name_of(app)}: its egress does not admit {name_of(redis)} on its port")
        app_ports = container_ports(app)
        for test in tests:
            admitted = any(
                any(
                    matches(label_selector(peer.get("podSelector") or {}), test["metadata"].get("labels"))
                    and "namespaceSelector" not in peer
                    for peer in rule.get("from", [])
                )
                and all(port_exists(app_ports, port, "containerPort") for port, _ in rule_ports(rule))
                for rule in ingress
            )
            if not admitted:
                problems.append(f"{name_of(app)}: its ingress does not admit the helm test {name_of(test)}")
    for redis in component_pods(objects, "redis"):
        for policy in selecting_policies(objects, pod_template_labels(redis)):
            if "Egress" not in policy["spec"].get("policyTypes", []):
                problems.append(f"{name_of(policy)}: does not isolate {name_of(redis)}'s egress")
            elif policy["spec"].get("egress"):
                problems.append(f"{name_of(policy)}: lets {name_of(redis)} open connections; it needs none")
    return problems


def check_affinity(objects: list[Obj]) -> list[str]:
    problems = []
    redis_labels = [pod_template_labels(r) for r in component_pods(objects, "redis")]
    for app in component_pods(objects, "app"):
        affinity = app["spec"]["template"]["spec"].get("affinity") or {}
        for term in (affinity.get("podAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution", []
        ):
            selector = label_selector(term["podAffinityTerm"]["labelSelector"])
            if not any(matches(selector, labels) for labels in redis_labels):
                problems.append(f"{name_of(app)}: podAffinity selector {selector} matches no Redis pod")
        anti = affinity.get("podAntiAffinity") or {}
        terms = [
            t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
        ]
        terms += anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        for term in terms:
            if not matches(label_selector(term["labelSelector"]), pod_template_labels(app)):
                problems.append(f"{name_of(app)}: podAntiAffinity selector does not match its own replicas")
    return problems


def check_restricted_pods(objects: list[Obj]) -> list[str]:
    """Pod Security "restricted", read-only root with a writable /tmp, requests and limits."""
    problems = []
    for owner, spec in pod_specs(objects):
        pod = spec.get("securityContext") or {}
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{owner}: automountServiceAccountToken is not false")
        if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{owner}: seccompProfile is not RuntimeDefault")
        for container in spec["containers"]:
            where = f"{owner} container {container['name']}"
            context = container.get("securityContext") or {}
            if not (context.get("runAsNonRoot") or pod.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot is not set")
            uid = context.get("runAsUser", pod.get("runAsUser"))
            if uid is None or uid < MIN_UID:
                problems.append(f"{where}: runAsUser {uid!r} is below {MIN_UID}")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if (context.get("capabilities") or {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities are not dropped (drop: [ALL])")
            resources = container.get("resources") or {}
            for bound in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(bound) or {}):
                    problems.append(f"{where}: {bound} for cpu and memory missing")
    for app in component_pods(objects, "app"):
        mounts = {
            m["mountPath"]
            for c in app["spec"]["template"]["spec"]["containers"]
            for m in c.get("volumeMounts", [])
        }
        if "/tmp" not in mounts:
            problems.append(f"{name_of(app)}: no writable /tmp volume for the read-only root filesystem")
    return problems


CHECKS: list[Callable[[list[Obj]], list[str]]] = [
    check_workload_selectors,
    check_service_selectors,
    check_ingress_backends,
    check_hpa_and_pdb,
    check_probes,
    check_redis_probes,
    check_secrets_off_command_lines,
    check_service_monitors,
    check_prometheus_rules,
    check_istio,
    check_network_policies,
    check_app_network_policies,
    check_affinity,
    check_restricted_pods,
]


def all_problems(
    objects: list[Obj], external_secrets: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    problems = check_config_references(objects, external_secrets or {})
    for check in CHECKS:
        problems += check(objects)
    return problems
