"""compose.yaml started under podman-compose, as scripts/compose-test.sh runs it.

`Stack` brings the project up in the order compose.yaml's `depends_on` conditions ask for
(podman-compose 1.0.6 starts services in order but does not wait on conditions): PostgreSQL and
Redis healthy, then the one-shot migration finished with 0, then every service; it waits for
every Circle replica's /readyz (each container's address on the project's bridge network) and
for nginx. `down()` removes every container, volume and network the project made.
"""
import base64
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "circle-test"
LABEL = f"label=io.podman.compose.project={PROJECT}"
# Each Circle service's own port (Shared/CircleCore/ServiceName.swift).
PORTS = {"gateway": 8081, "messaging": 8082, "vault": 8083, "presence": 8084, "signaling": 8085, "cleanup": 8086}


class Stack:
    def __init__(self, log_folder: Path, http_port: int):
        self.log_folder = log_folder
        self.log_folder.mkdir(parents=True, exist_ok=True)
        self.log = open(log_folder / "compose.log", "ab")
        self.http_port = http_port
        self.origin = f"http://localhost:{http_port}"
        self.env = dict(os.environ)
        self.env.update({
            "AUTH_PEPPER": base64.b64encode(secrets.token_bytes(32)).decode(),
            "ACTIVITY_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "TURN_SECRET": secrets.token_urlsafe(32),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(18),
            "CIRCLE_TEST_METRICS_TOKEN": secrets.token_urlsafe(32),
            "CIRCLE_HTTP_PORT": str(http_port),
            "CIRCLE_PUBLIC_URL": self.origin,
        })
        self.compose_path = self.podman_for_compose()

    # -- commands ---------------------------------------------------------------------------

    def podman_for_compose(self) -> str:
        """A PATH whose `podman` drops `--requires`: podman-compose passes depends_on as
        --requires, and podman 4.3 (Debian 12) then cannot start a container whose required
        container has exited and has requirements of its own (the one-shot migrate: "depends on
        container ... not found in input list"). Docker has no such start-time link either; the
        order is kept by `up()`."""
        shim = ROOT / ".build" / "compose-test" / "bin"
        shim.mkdir(parents=True, exist_ok=True)
        podman = shim / "podman"
        podman.write_text('#!/bin/sh\n'
                          'for a; do shift; case $a in --requires=*) ;; *) set -- "$@" "$a" ;; esac; done\n'
                          'exec /usr/bin/podman "$@"\n')
        podman.chmod(0o755)
        return f"{shim}:{self.env['PATH']}"

    def compose(self, *args, replicas=None, timeout=300):
        """podman-compose on the project (with the `scale` command of compose_scale.py);
        `replicas` ({service: count}) is given as one more compose file."""
        files = ["-f", "compose.yaml", "-f", "deploy/compose.local.yaml"]
        if replicas:
            scale = self.log_folder / "scale.yaml"
            scale.write_text("services:\n" + "".join(
                f"  {service}:\n    deploy:\n      replicas: {count}\n" for service, count in replicas.items()))
            files += ["-f", str(scale)]
        command = [sys.executable, str(Path(__file__).with_name("compose_scale.py")), "-p", PROJECT, *files, *args]
        self.log.write(f"\n$ {' '.join(command)}\n".encode())
        self.log.flush()
        subprocess.run(command, cwd=ROOT, env={**self.env, "PATH": self.compose_path}, stdout=self.log,
                       stderr=subprocess.STDOUT, timeout=timeout, check=True)

    def podman(self, *args, timeout=60, check=True) -> str:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def containers(self, service: str) -> list[str]:
        """The project's running containers of one service, by name."""
        out = self.podman("ps", "--filter", LABEL, "--filter", f"label=com.docker.compose.service={service}",
                          "--format", "{{.Names}}")
        return sorted(out.split())

    def address(self, container: str) -> str:
        return self.podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container).strip()

    def replica_url(self, container: str, service: str) -> str:
        return f"http://{self.address(container)}:{PORTS[service]}"

    def scale(self, service: str, count: int):
        """`docker compose up -d --scale SERVICE=COUNT --no-recreate`, for podman-compose 1.0."""
        self.compose("scale", service, replicas={service: count})

    def exec(self, container: str, *command, timeout=60) -> str:
        return self.podman("exec", container, *command, timeout=timeout)

    # -- waiting ----------------------------------------------------------------------------

    def wait_healthy(self, container: str, seconds=90):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if subprocess.run(["podman", "healthcheck", "run", container], env=self.env,
                              capture_output=True).returncode == 0:
                return
            time.sleep(1)
        raise TimeoutError(f"{container} was not healthy within {seconds} s")

    @staticmethod
    def wait_http(url: str, seconds=90, what=""):
        deadline = time.time() + seconds
        last = None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError as error:
                last = error
            time.sleep(0.5)
        raise TimeoutError(f"{what or url} did not answer 200 within {seconds} s (last: {last})")

    def wait_ready(self, container: str, service: str, seconds=90):
        self.wait_http(self.replica_url(container, service) + "/readyz", seconds, f"{container} /readyz")

    # -- lifecycle --------------------------------------------------------------------------

    def up(self):
        self.down()  # what an earlier, interrupted run left
        self.compose("up", "-d", "postgres", "redis")
        self.wait_healthy(f"{PROJECT}_postgres_1")
        self.wait_healthy(f"{PROJECT}_redis_1")
        self.compose("up", "-d", "migrate")
        code = self.podman("wait", f"{PROJECT}_migrate_1", timeout=180).strip()
        if code != "0":
            raise RuntimeError(f"migrate exited with {code}: {self.podman('logs', f'{PROJECT}_migrate_1', check=False)}")
        self.compose("up", "-d")
        for service in PORTS:
            replicas = self.containers(service)
            if not replicas:
                raise RuntimeError(f"no {service} container is running")
            for container in replicas:
                self.wait_ready(container, service)
        self.wait_http(self.origin + "/nginx-health", what="nginx")
        self.wait_http(self.origin + "/readyz", what="the gateway through nginx")

    def save_logs(self):
        for name in self.podman("ps", "-a", "--filter", LABEL, "--format", "{{.Names}}", check=False).split():
            logs = subprocess.run(["podman", "logs", name], env=self.env, capture_output=True, timeout=30)
            (self.log_folder / f"{name}.log").write_bytes(logs.stdout + logs.stderr)

    def down(self):
        try:
            self.compose("down", "-v", timeout=180)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        # Anything compose does not know of any more (a replica scaled away by hand), then the
        # volumes and the network.
        for kind, listing in (("container", ["ps", "-a"]), ("volume", ["volume", "ls"]), ("network", ["network", "ls"])):
            names = self.podman(*listing, "--filter", LABEL, "--format", "{{.Name}}" if kind != "container" else "{{.Names}}",
                                check=False).split()
            if names:
                self.podman(kind, "rm", "-f", *names, check=False, timeout=120)
