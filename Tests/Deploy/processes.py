"""Real processes for the deploy tests: Circle's executables (from CIRCLE_BUILD_DIR, as
Tests/Web/conftest.py finds them, so CI runs what it just built), coturn and nginx on free
loopback ports; each started under `timeout` so nothing outlives a killed test run, and stopped
by its own pid."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CIRCLE_BUILD_DIR", ROOT / ".build" / "debug"))
# The longest any process started here may live, whatever happens to the test run.
LIFETIME = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executable(name: str) -> str:
    path = BUILD / name
    assert path.exists(), f"{path} is not built (make test builds it; or set CIRCLE_BUILD_DIR)"
    return str(path)


class Process:
    """One child process with its output in `log`; `stop()` ends it by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, args, log: Path, env=None, cwd=None, lifetime=LIFETIME):
        self.log = log
        self.args = args
        with open(log, "ab") as out:
            # `timeout` passes our SIGTERM on to the child and kills it past `lifetime`.
            self.process = subprocess.Popen(["timeout", "-k", "5", str(lifetime), *map(str, args)],
                                            stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})}, cwd=cwd)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def sigkill(process: Process):
    """SIGKILL to the executable itself (not the `timeout` that wraps it), then waits for both."""
    wrapper = process.process.pid
    children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    assert children, "the executable runs under its `timeout` wrapper"
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    process.process.wait(timeout=10)
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text(), f"{child} still runs"


def wait_ready(url: str, process: Process, within: float = 60):
    """Waits until `url` answers 200, failing early if the process exits."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not process.running:
            raise AssertionError(f"{process.args[0]} exited with {process.process.returncode}:\n{process.output()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {within} s:\n{process.output()[-3000:]}")


def api(method: str, url: str, token: str = None, body=None, extra_headers=None):
    """One JSON request; returns (status, decoded body or None)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    headers.update(extra_headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode(errors="replace")


def circle_cli(*args, state: Path, input=None, timeout=120):
    """The `circle` CLI (CircleKit) with a device state file; fails the test on a non-zero exit."""
    answer = subprocess.run([executable("circle"), *args], input=input, capture_output=True, text=True,
                            env={**os.environ, "CIRCLE_STATE": str(state)}, timeout=timeout)
    assert answer.returncode == 0, f"circle {' '.join(args)}: {answer.stderr}"
    return answer.stdout


def register(server: str, username: str, state: Path) -> dict:
    """Registers a member with the CLI (keys made client-side); returns its device state
    (userId, token, deviceId, ...). The server must allow open registration."""
    circle_cli("register", "--server", server, "--username", username, "--password-stdin",
               state=state, input="correct horse battery staple\n")
    return json.loads(state.read_text())


def fresh_database(postgres: str, prefix: str) -> str:
    """A new database on the test PostgreSQL at `postgres`; its URL."""
    name = f"t_{prefix}_" + os.urandom(6).hex()
    psql = shutil.which("psql") or sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    subprocess.run([psql, postgres, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=30)
    return postgres.rsplit("/", 1)[0] + "/" + name


def nginx_config(tmp, listen: int, pools: dict) -> str:
    """deploy/nginx.conf on a loopback port, each `set $service host:port;` pointing at an
    upstream of the local replicas instead (nginx looks a variable's value up among its upstreams
    before asking a resolver)."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};").replace("worker_processes auto;", "worker_processes 1;")
    upstreams = ""
    for service, ports in pools.items():
        text, count = re.subn(rf"set \${service}\s+[\w.-]+:\d+;", f"set ${service} local_{service};", text)
        assert count == 1, f"deploy/nginx.conf has no `set ${service}`"
        upstreams += f"    upstream local_{service} {{ {' '.join(f'server 127.0.0.1:{p};' for p in ports)} }}\n"
    text = text.replace("http {\n", "http {\n" + upstreams, 1)
    path = tmp / "nginx.conf"
    path.write_text(text)
    return str(path)
