"""compose.yaml and deploy/ checked without a Docker engine.

- compose.yaml validates against the Compose Specification schema in Tests/Deploy/schemas/;
- every Circle service runs an executable this package builds, and sets only configuration
  keys that executable reads (the environment variables its --help names);
- nginx routes each API prefix to the compose service that owns it, on that service's port;
- `nginx -t` accepts deploy/nginx.conf;
- coturn (not a Circle executable: its own image) shares TURN_SECRET with circle-signaling, and
  deploy/turnserver.conf uses the TURN REST API secret, holds no secret and refuses private peers.
  (Tests/Deploy/test_turn.py runs coturn itself.)
"""
import ipaddress
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
    "/api/v1/destruction": ("cleanup", 8086),
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
    """The services run from Circle's image (coturn, postgres, redis and nginx have their own)."""
    for name, service in compose()["services"].items():
        if service.get("image") == "circle:latest":
            command = service.get("command") or []
            assert command and command[0] in EXECUTABLES, f"{name} runs {command}, not a Circle executable"
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


def test_the_tls_proxy_in_the_operations_guide_is_accepted_by_nginx():
    """deploy/OPERATIONS.md's TLS example, with a throwaway certificate and loopback ports."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    text = (ROOT / "deploy" / "OPERATIONS.md").read_text()
    block = text.split("```nginx\n", 1)[1].split("```", 1)[0]
    with tempfile.TemporaryDirectory() as prefix:
        os.makedirs(f"{prefix}/logs", exist_ok=True)
        made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{prefix}/key.pem",
                               "-out", f"{prefix}/cert.pem", "-days", "1", "-subj", "/CN=circle.example.org"],
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        block = re.sub(r"/etc/letsencrypt/\S+/fullchain\.pem", f"{prefix}/cert.pem", block)
        block = re.sub(r"/etc/letsencrypt/\S+/privkey\.pem", f"{prefix}/key.pem", block)
        block = block.replace("listen 443 ", "listen 127.0.0.1:18443 ").replace("listen 80;", "listen 127.0.0.1:18080;")
        config = Path(prefix) / "tls.conf"
        config.write_text("events {}\nhttp {\n" + block + "\n}\n")
        out = subprocess.run([nginx, "-t", "-p", prefix, "-c", str(config), "-g", f"pid {prefix}/nginx.pid;"],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "ssl_certificate" in block and "Upgrade" in block and "X-Forwarded-Proto https" in block


def test_dockerfile_builds_every_executable():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for exe in EXECUTABLES:
        assert re.search(rf"\b{re.escape(exe)}\b", text), f"the Dockerfile does not ship {exe}"


def turn_settings():
    """deploy/turnserver.conf as (option, value) pairs, comments left out."""
    pairs = []
    for line in (ROOT / "deploy" / "turnserver.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def test_coturn_and_signaling_share_the_turn_secret():
    services = compose()["services"]
    coturn, signaling = services["coturn"], services["signaling"]
    assert coturn["image"] != "circle:latest" and "dockerfile" in coturn["build"]
    assert (ROOT / coturn["build"]["dockerfile"]).exists()
    assert "./deploy/turnserver.conf:/etc/turnserver.conf:ro" in coturn["volumes"]
    # The same compose variable reaches both, and coturn's start appends it to its configuration.
    assert coturn["environment"]["TURN_SECRET"].startswith("${TURN_SECRET:?")
    assert signaling["environment"]["TURN_SECRET"].startswith("${TURN_SECRET:?")
    start = " ".join(coturn["command"])
    assert "static-auth-secret=$$TURN_SECRET" in start and "turnserver -c" in start
    # The TURN addresses signaling hands out name coturn's port.
    port = dict(turn_settings())["listening-port"]
    urls = signaling["environment"]["TURN_URLS"]
    assert f"turn:localhost:{port}?transport=udp" in urls


def test_turnserver_conf_uses_rest_credentials_and_refuses_private_peers():
    settings = turn_settings()
    keys = {key for key, _ in settings}
    assert {"use-auth-secret", "realm", "no-cli", "fingerprint", "no-tls", "no-dtls", "no-multicast-peers"} <= keys
    assert "static-auth-secret" not in keys, "the secret comes from the environment, never the repository"
    assert "allow-loopback-peers" not in keys and "allowed-peer-ip" not in keys
    denied = []
    for key, value in settings:
        if key == "denied-peer-ip":
            low, _, high = value.partition("-")
            denied.append((ipaddress.ip_address(low), ipaddress.ip_address(high or low)))
    for address in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.10",
                    "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1"]:
        ip = ipaddress.ip_address(address)
        assert any(low.version == ip.version and low <= ip <= high for low, high in denied), f"{address} is not denied"
    for address in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"]:
        ip = ipaddress.ip_address(address)
        assert not any(low.version == ip.version and low <= ip <= high for low, high in denied), f"{address} is denied"


def test_the_s3_override_points_vault_and_cleanup_at_a_bucket_it_creates():
    """deploy/compose.s3.yaml: valid Compose, setting only keys the executables read, and creating
    the very bucket (at the very endpoint) that vault and cleanup are given."""
    override = yaml.safe_load((ROOT / "deploy" / "compose.s3.yaml").read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(override)
    services = override["services"]
    creator = " ".join(services["minio-bucket"]["entrypoint"])
    for name, executable in [("vault", "circle-vault"), ("cleanup", "circle-cleanup")]:
        env = services[name]["environment"]
        assert set(env) <= help_env_names([executable]), f"{name} sets keys {executable} does not read"
        assert env["VAULT_S3_ENDPOINT"] == "http://minio:9000"
        assert f"store/{env['VAULT_S3_BUCKET']}" in creator
        assert services[name]["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"
        assert name in compose()["services"], f"the override adds {name} instead of changing it"
