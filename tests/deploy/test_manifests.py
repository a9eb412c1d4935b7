"""The Kubernetes manifests render, validate offline, and keep the promises of issue 7.

Rendered with `kubectl kustomize` (the same code path as `kubectl apply -k`) and checked
against the Kubernetes JSON schemas shipped in kubernetes-validate (strict: unknown fields
are errors), then against what the restricted Pod Security Standard and our design demand.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (it renders the kustomization)")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUSTOMIZE_DIR)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for name, deployment in of_kind(manifests, "Deployment").items():
        yield name, deployment["spec"]["template"]["spec"]


def containers(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest, Manifest]]:
    for name, pod in pod_specs(manifests):
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield f"{name}/{container['name']}", pod, container


def test_rendered_manifests_validate_against_the_kubernetes_schemas(manifests: list[Manifest]) -> None:
    failures = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_every_service_has_a_deployment_and_a_service(manifests: list[Manifest]) -> None:
    expected = {"gateway", "chat-service", "image-service", "rlm-service", "demo-model", "redis", "sandbox"}
    assert set(of_kind(manifests, "Deployment")) == expected
    assert set(of_kind(manifests, "Service")) == expected


def test_every_container_runs_as_non_root_with_a_read_only_root_filesystem(
    manifests: list[Manifest],
) -> None:
    for name, pod, container in containers(manifests):
        pod_ctx = pod.get("securityContext", {})
        ctx = container.get("securityContext", {})
        run_as_user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, name
        assert isinstance(run_as_user, int) and run_as_user > 0, name
        assert ctx.get("readOnlyRootFilesystem") is True, name


def test_every_container_meets_the_restricted_pod_security_standard(manifests: list[Manifest]) -> None:
    for name, pod, container in containers(manifests):
        ctx = container.get("securityContext", {})
        seccomp = ctx.get("seccompProfile", pod.get("securityContext", {}).get("seccompProfile", {}))
        assert ctx.get("allowPrivilegeEscalation") is False, name
        assert ctx.get("capabilities", {}).get("drop") == ["ALL"], name
        assert not ctx.get("capabilities", {}).get("add"), name
        assert seccomp.get("type") == "RuntimeDefault", name
        assert not ctx.get("privileged"), name
    for name, pod in pod_specs(manifests):
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), name
        assert all("hostPath" not in volume for volume in pod.get("volumes", [])), name
    namespace = of_kind(manifests, "Namespace")["tinychat"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_container_has_probes_and_resource_requests_and_limits(manifests: list[Manifest]) -> None:
    for name, _, container in containers(manifests):
        assert "readinessProbe" in container, name
        assert "livenessProbe" in container, name
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), name
        assert {"cpu", "memory"} <= set(resources.get("limits", {})), name


def test_gateway_and_chat_service_run_two_replicas_with_a_pdb_and_an_hpa(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    budgets = of_kind(manifests, "PodDisruptionBudget")
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
    for name in ("gateway", "chat-service"):
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert deployments[name]["spec"]["replicas"] == 2
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert autoscalers[name]["spec"]["scaleTargetRef"]["name"] == name
        assert autoscalers[name]["spec"]["minReplicas"] >= 2


def test_shutdown_grace_period_outlasts_the_services_own_drain(manifests: list[Manifest]) -> None:
    config = of_kind(manifests, "ConfigMap")["tinychat-config"]["data"]
    drain = float(config["SHUTDOWN_GRACE_SECONDS"])
    for name in ("gateway", "chat-service", "image-service", "rlm-service"):
        pod = dict(pod_specs(manifests))[name]
        assert pod["terminationGracePeriodSeconds"] > drain, name


def test_rlm_service_uses_the_sandbox_pool_and_holds_no_key_nor_docker_socket(
    manifests: list[Manifest],
) -> None:
    pod = dict(pod_specs(manifests))["rlm-service"]
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container.get("env", [])}
    assert env["RLM_SANDBOX"]["value"] == "pool"
    config = of_kind(manifests, "ConfigMap")["tinychat-config"]["data"]
    assert config["RLM_SANDBOX"] == "pool" and config["RLM_SANDBOX_POOL"] == "sandbox:8010"
    assert not {"OPENAI_API_KEY", "OPENAI_IMAGE_API_KEY"} & set(env)
    assert all("docker.sock" not in str(volume) for volume in pod.get("volumes", []))


def test_provider_keys_reach_only_the_services_that_call_the_providers(manifests: list[Manifest]) -> None:
    config = of_kind(manifests, "ConfigMap")["tinychat-config"]["data"]
    assert not any("KEY" in name or "PASSCODE" in name for name in config)
    holders: dict[str, set[str]] = {}
    for name, _, container in containers(manifests):
        for item in container.get("env", []):
            if "secretKeyRef" in item.get("valueFrom", {}):
                holders.setdefault(item["name"], set()).add(name.split("/")[0])
    assert holders == {
        "OPENAI_API_KEY": {"chat-service", "image-service"},
        "OPENAI_IMAGE_API_KEY": {"image-service"},
        "RLM_PASSCODE": {"gateway"},
        "INTERNAL_TOKEN": {"gateway", "chat-service", "image-service", "rlm-service"},
        "REDIS_PASSWORD": {"redis", "image-service", "rlm-service"},
        "AUTH_PASSWORD": {"gateway"},
        "AUTH_SECRET": {"gateway"},
    }


def allowed_peers(policy: Manifest, direction: str) -> set[str]:
    key = "from" if direction == "ingress" else "to"
    peers = set()
    for rule in policy["spec"].get(direction, []):
        if key not in rule:
            peers.add("*")
        for peer in rule.get(key, []):
            if "ipBlock" in peer:
                peers.add("outside")
            else:
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                peers.add(labels.get("app.kubernetes.io/name", "*"))
    return peers


def test_network_policies_allow_only_the_arrows_of_the_architecture(manifests: list[Manifest]) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    # Only the ingress controller: no pod can reach the gateway and forge X-Forwarded-For.
    assert allowed_peers(policies["gateway"], "ingress") == {"ingress-nginx"}
    for name in ("chat-service", "image-service", "rlm-service", "redis", "demo-model"):
        assert "*" not in allowed_peers(policies[name], "ingress"), name
    assert allowed_peers(policies["rlm-service"], "ingress") == {"gateway"}
    assert allowed_peers(policies["rlm-service"], "egress") == {"chat-service", "redis", "sandbox"}
    assert allowed_peers(policies["sandbox"], "ingress") == {"rlm-service"}
    assert allowed_peers(policies["chat-service"], "ingress") == {"gateway", "rlm-service"}
    assert allowed_peers(policies["redis"], "ingress") == {"rlm-service", "image-service"}
    assert allowed_peers(policies["redis"], "egress") == set()


def test_ingress_streams_sse_without_buffering_and_with_long_timeouts(manifests: list[Manifest]) -> None:
    (ingress,) = of_kind(manifests, "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "gateway"


def test_sandbox_runners_reach_nothing_not_even_the_cluster_dns(manifests: list[Manifest]) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    sandbox = policies["sandbox"]["spec"]
    assert set(sandbox["policyTypes"]) == {"Ingress", "Egress"}
    assert sandbox["egress"] == []
    assert [r["ports"] for r in sandbox["ingress"]] == [[{"protocol": "TCP", "port": 8010}]]
    labels = {"app.kubernetes.io/name": "sandbox"}
    for name, policy in policies.items():
        if name != "sandbox" and "Egress" in policy["spec"]["policyTypes"] and policy["spec"].get("egress"):
            assert not selects(policy["spec"]["podSelector"], labels), f"{name} lets the runners out"


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions In/NotIn) selects `labels`."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        inside = value in expression.get("values", [])
        if (expression["operator"] == "In" and not inside) or (expression["operator"] == "NotIn" and inside):
            return False
    return True


def test_sandbox_runners_carry_no_token_and_are_limited_as_a_whole(manifests: list[Manifest]) -> None:
    pod = dict(pod_specs(manifests))["sandbox"]
    (container,) = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert "runtimeClassName" not in pod  # gVisor is documented, off by default
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert not container.get("envFrom"), "the runners get no configuration (and no secret)"
    assert [e["name"] for e in container.get("env", [])] == ["SANDBOX_ALLOWED_PEERS"]
    (scratch,) = pod["volumes"]
    assert scratch["emptyDir"]["medium"] == "Memory" and scratch["emptyDir"]["sizeLimit"]
    text = (KUSTOMIZE_DIR / "sandbox.yaml").read_text()
    assert "runtimeClassName: gvisor" in text and "podPidsLimit" in text


def test_the_sandbox_service_is_headless_so_every_runner_is_found(manifests: list[Manifest]) -> None:
    service = of_kind(manifests, "Service")["sandbox"]["spec"]
    assert service["clusterIP"] == "None"
    assert [p["port"] for p in service["ports"]] == [8010]


def test_there_are_enough_runners_for_every_concurrent_job(manifests: list[Manifest]) -> None:
    # The sizing rule: runners >= MAX_CONCURRENT_RLM x rlm-service replicas.
    deployments = of_kind(manifests, "Deployment")
    config = of_kind(manifests, "ConfigMap")["tinychat-config"]["data"]
    needed = int(config["MAX_CONCURRENT_RLM"]) * deployments["rlm-service"]["spec"]["replicas"]
    assert deployments["sandbox"]["spec"]["replicas"] >= needed
