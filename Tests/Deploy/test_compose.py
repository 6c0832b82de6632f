"""compose.yaml and deploy/ checked without a Docker engine.

- compose.yaml validates against the Compose Specification schema in Tests/Deploy/schemas/;
- every Circle service runs an executable this package builds, and sets only configuration
  keys that executable reads (the environment variables its --help names);
- nginx routes each API prefix to the compose service that owns it, on that service's port;
- `nginx -t` accepts deploy/nginx.conf.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"
BUILD = Path(os.environ.get("CIRCLE_BUILD_DIR", ROOT / ".build" / "debug"))

# Which compose service owns which path prefix, and its port (ARCHITECTURE sections 1 and 11).
OWNERS = {
    "/api/v1/events": ("gateway", 8081),
    "/api/v1/conversations": ("messaging", 8082),
    "/api/v1/vault": ("vault", 8083),
    "/api/v1/presence": ("presence", 8084),
    "/api/v1/calls": ("signaling", 8085),
    "/": ("gateway", 8081),
}
EXECUTABLES = {"circle", "circle-gateway", "circle-messaging", "circle-vault",
               "circle-presence", "circle-signaling", "circle-cleanup"}
# Variables compose itself or the base images read; not Circle configuration.
NOT_CIRCLE = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_matches_the_specification():
    if not SCHEMA.exists():
        pytest.fail(f"the Compose schema is missing at {SCHEMA}")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(compose())


def help_env_names(command):
    """The environment variables an executable reads, as its --help lists them."""
    path = BUILD / command[0]
    assert path.exists(), f"{path} is not built (make test builds it)"
    out = subprocess.run([str(path), *command[1:], "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"\(env\s+([A-Z0-9_]+);", out.stdout))


def circle_services():
    for name, service in compose()["services"].items():
        command = service.get("command") or []
        if command and command[0] in EXECUTABLES:
            yield name, service, command


def test_every_circle_service_runs_a_built_executable_with_keys_it_reads():
    seen = set()
    for name, service, command in circle_services():
        seen.add(command[0])
        assert (BUILD / command[0]).exists(), f"{name} runs {command[0]}, which the package does not build"
        if command[0] == "circle":
            assert command[1:2] in (["serve"], ["migrate"]), f"{name}: unknown circle command {command}"
        known = help_env_names(command[:2] if command[0] == "circle" else command[:1])
        assert known, f"{name}: {command[0]} --help lists no environment variables"
        env = set((service.get("environment") or {}).keys())
        unknown = env - known - NOT_CIRCLE
        assert not unknown, f"{name} sets {sorted(unknown)}, which {command[0]} does not read"
    assert {"circle-gateway", "circle-messaging", "circle-vault", "circle-presence",
            "circle-signaling", "circle-cleanup", "circle"} <= seen


def test_each_service_scales_on_its_own_and_waits_for_migrations():
    services = compose()["services"]
    for name in ["gateway", "messaging", "vault", "presence", "signaling", "cleanup"]:
        service = services[name]
        assert "replicas" in service.get("deploy", {}), f"{name} has no replica count"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "ports" not in service, f"{name} should be reached through nginx only"


def nginx_routes():
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    upstreams = dict(re.findall(r"set \$(\w+)\s+([\w.-]+:\d+);", text))
    routes = {}
    for prefix, block in re.findall(r"location\s+(?:= )?(\S+)\s*\{(.*?)\}", text, re.S):
        target = re.search(r"proxy_pass http://\$(\w+);", block)
        if target:
            routes[prefix] = upstreams[target.group(1)]
    return routes


def test_nginx_routes_each_prefix_to_its_owner():
    routes = nginx_routes()
    services = compose()["services"]
    for prefix, (owner, port) in OWNERS.items():
        assert prefix in routes, f"nginx does not route {prefix}"
        host, target_port = routes[prefix].split(":")
        assert host == owner and int(target_port) == port, f"{prefix} goes to {routes[prefix]}, not {owner}:{port}"
        assert host in services


def test_nginx_accepts_the_configuration():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is not installed (make test installs it)"
    with tempfile.TemporaryDirectory() as prefix:
        os.makedirs(f"{prefix}/logs", exist_ok=True)
        out = subprocess.run(
            [nginx, "-t", "-p", prefix, "-c", str(ROOT / "deploy" / "nginx.conf"),
             "-g", f"pid {prefix}/nginx.pid;"],
            capture_output=True, text=True, timeout=30,
        )
    assert out.returncode == 0, out.stderr
    assert "syntax is ok" in out.stderr


def test_dockerfile_builds_every_executable():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for exe in EXECUTABLES:
        assert re.search(rf"\b{re.escape(exe)}\b", text), f"the Dockerfile does not ship {exe}"
