"""compose.yaml, .env.example and the Dockerfiles agree with each other and with the
services' own settings classes, so a variable cannot be misspelled, undocumented, or given
a default that its service refuses at start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tinychat_chat.config import ChatSettings
from tinychat_common.settings import ServiceSettings
from tinychat_demo.config import DemoSettings
from tinychat_gateway.config import GatewaySettings
from tinychat_image.config import ImageSettings
from tinychat_rlm.config import RlmSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[ServiceSettings]] = {
    "gateway": GatewaySettings,
    "chat-service": ChatSettings,
    "image-service": ImageSettings,
    "rlm-service": RlmSettings,
    "demo-model": DemoSettings,
}
APP_SERVICES = tuple(SETTINGS)
PASSED_THROUGH = re.compile(r"^\$\{(?P<name>\w+):-(?P<default>.*)\}$")
DOCKERFILES = {
    "gateway": ROOT / "gateway" / "Dockerfile",
    "chat-service": ROOT / "chat-service" / "Dockerfile",
    "image-service": ROOT / "image-service" / "Dockerfile",
    "rlm-service": ROOT / "rlm-service" / "Dockerfile",
    "demo-model": ROOT / "demo-model" / "Dockerfile",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def environment(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][service].get("environment", {}).items()}


def test_only_the_gateway_publishes_a_port(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"gateway"}
    assert compose["services"]["gateway"]["ports"] == ["${BIND_ADDRESS:-0.0.0.0}:${PORT:-8000}:8000"]


def test_services_behind_the_gateway_sit_on_the_internal_network(compose: dict[str, Any]) -> None:
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("demo-model", "redis"):
        assert compose["services"][name]["networks"] == ["backend"], name
    assert compose["services"]["rlm-service"]["networks"] == ["backend", "sandbox"]
    for name in ("chat-service", "image-service"):
        assert "public" not in compose["services"][name]["networks"], name


def test_every_long_running_service_is_hardened(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name == "rlm-sandbox":  # builds the sandbox image and exits at once
            continue
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_every_variable_given_to_a_service_is_one_it_reads(compose: dict[str, Any]) -> None:
    for name, settings in SETTINGS.items():
        unknown = {v.lower() for v in environment(compose, name)} - set(settings.model_fields)
        assert not unknown, f"{name} does not read {sorted(unknown)}"


def test_every_compose_default_is_accepted_by_its_service(compose: dict[str, Any]) -> None:
    for name, settings in SETTINGS.items():
        values: dict[str, str] = {}
        for variable, value in environment(compose, name).items():
            if variable.endswith("_FILE"):
                continue  # a file secrets-init writes in the stack's volume
            match = PASSED_THROUGH.match(value)
            values[variable.lower()] = match["default"] if match else value
        settings(**values)  # raises ValidationError on a default the service refuses


# What compose sets itself, for the wiring between containers, rather than passing through.
WIRED_BY_COMPOSE = {"HOST", "PORT", "WEB_DIR", "CHAT_SERVICE_URL", "IMAGE_SERVICE_URL", "RLM_SERVICE_URL"}
WIRED_BY_COMPOSE |= {"DEMO_HOST", "DEMO_PORT"}
# Files in the `secrets` volume that secrets-init writes.
WIRED_BY_COMPOSE |= {"INTERNAL_TOKEN_FILE", "REDIS_PASSWORD_FILE", "AUTH_SECRET_FILE"}
# The demo model is the stack's stand-in for an outside API: it takes no internal token.
NOT_FOR_THE_DEMO = {"INTERNAL_TOKEN"}


def test_every_setting_a_service_reads_is_passed_through_with_its_default(compose: dict[str, Any]) -> None:
    for name, settings in SETTINGS.items():
        given = environment(compose, name)
        for field in settings.model_fields:
            variable = field.upper()
            if variable in WIRED_BY_COMPOSE or (name == "demo-model" and variable in NOT_FOR_THE_DEMO):
                continue
            assert variable in given, f"compose.yaml does not pass {variable} to {name}"
            match = PASSED_THROUGH.match(given[variable])
            assert match and match["name"] == variable, f"{name}: {variable} is not ${{{variable}:-…}}"


def test_chat_uses_the_demo_model_when_nothing_is_configured(compose: dict[str, Any]) -> None:
    chat = environment(compose, "chat-service")
    assert chat["OPENAI_API_URL"] == "${OPENAI_API_URL:-http://demo-model:8010/v1}"
    demo = environment(compose, "demo-model")
    assert (demo["DEMO_HOST"], demo["DEMO_PORT"]) == ("0.0.0.0", "8010")


def test_every_compose_variable_is_documented_in_env_example_and_back() -> None:
    compose_text = (ROOT / "compose.yaml").read_text() + (ROOT / "compose.docker-sandbox.yaml").read_text()
    in_compose = set(re.findall(r"\$\{(\w+)(?::-[^}]*)?\}", compose_text))
    documented = set(re.findall(r"^#?(\w+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert in_compose - documented == set(), "used in compose.yaml but not in .env.example"
    assert documented - in_compose == set(), "documented in .env.example but unused by compose.yaml"


def test_redis_holds_nothing_on_disk(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--save") + 1] == ""
    assert command[command.index("--appendonly") + 1] == "no"
    assert "${REDIS_IMAGE:-" in (ROOT / "compose.yaml").read_text()


@pytest.mark.parametrize("service", DOCKERFILES)
def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck(service: str) -> None:
    text = DOCKERFILES[service].read_text()
    assert text.startswith("#") and "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    final_stage = text.rsplit("\nFROM ", 1)[1]
    user = re.findall(r"^USER (\S+)", final_stage, re.MULTILINE)
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user and all(int(u.split(":")[0]) > 0 for u in user)
    assert "HEALTHCHECK" in final_stage and "urllib.request" in final_stage
    assert "pip install" not in final_stage and "apt-get" not in final_stage


def test_gateway_image_builds_the_web_assets_with_npm_ci() -> None:
    text = DOCKERFILES["gateway"].read_text()
    assert "ARG NODE_IMAGE=node:20-slim" in text
    assert "npm ci" in text and "COPY --from=web-assets" in text


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "web/node_modules", ".env", "**/.git"} <= set(ignored)


def test_the_sandbox_runners_share_a_network_with_rlm_service_only(compose: dict[str, Any]) -> None:
    assert compose["networks"]["sandbox"]["internal"] is True
    on_it = {
        name for name, service in compose["services"].items() if "sandbox" in service.get("networks", [])
    }
    assert on_it == {"sandbox", "rlm-service"}
    assert compose["services"]["sandbox"]["networks"] == ["sandbox"]
    assert environment(compose, "sandbox") == {"SANDBOX_ALLOWED_PEERS": "rlm-service"}


def test_a_sandbox_runner_is_locked_down_and_limited_as_a_whole(compose: dict[str, Any]) -> None:
    runner = compose["services"]["sandbox"]
    assert runner["user"] == "10002:10002"
    assert runner["read_only"] is True and runner["cap_drop"] == ["ALL"]
    assert runner["security_opt"] == ["no-new-privileges:true"]  # and Docker's default seccomp
    assert runner["mem_limit"] == runner["memswap_limit"] == "${RLM_SANDBOX_MEMORY:-512m}"
    assert runner["cpus"] == "${RLM_SANDBOX_CPUS:-1.0}"
    assert runner["pids_limit"] == 64
    (scratch,) = runner["tmpfs"]
    assert scratch.startswith("/tmp:size=") and "noexec" in scratch
    assert not runner.get("ports") and "container_name" not in runner  # --scale sandbox=N works
    # The sizing rule, out of the box: a runner for every job that may run at once.
    assert runner["scale"] == "${RLM_SANDBOX_RUNNERS:-3}"
    assert environment(compose, "rlm-service")["MAX_CONCURRENT_RLM"] == "${MAX_CONCURRENT_RLM:-3}"
    assert not runner.get("volumes")


def test_rlm_service_uses_the_pool_and_no_docker_socket_by_default(compose: dict[str, Any]) -> None:
    rlm = compose["services"]["rlm-service"]
    env = environment(compose, "rlm-service")
    assert env["RLM_SANDBOX"] == "${RLM_SANDBOX:-pool}"
    assert env["RLM_SANDBOX_POOL"] == "${RLM_SANDBOX_POOL:-sandbox:8010}"
    assert not any("docker.sock" in str(volume) for volume in rlm.get("volumes", []))
    assert "group_add" not in rlm
    assert rlm["depends_on"]["sandbox"]["condition"] == "service_healthy"


def test_the_docker_backend_is_an_override_that_mounts_the_socket() -> None:
    override = yaml.safe_load((ROOT / "compose.docker-sandbox.yaml").read_text())
    rlm = override["services"]["rlm-service"]
    assert rlm["environment"]["RLM_SANDBOX"] == "docker"
    assert any("docker.sock" in volume for volume in rlm["volumes"])
    assert "RISK" in (ROOT / "compose.docker-sandbox.yaml").read_text()


def test_the_sandbox_pool_image_runs_the_runner_server_as_a_non_root_user() -> None:
    text = (ROOT / "rlm-service" / "sandbox-pool.Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE) == ["10002:10002"]
    for name in ("runner.py", "pool_runner.py", "seccomp.py"):
        assert f"rlm-service/tinychat_rlm/sandbox/{name}" in text, name
    assert 'ENTRYPOINT ["python3", "-I", "/sandbox/pool_runner.py"]' in text
    assert "HEALTHCHECK" in text and "pip install" not in text
