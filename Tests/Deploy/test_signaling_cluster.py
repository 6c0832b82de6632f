"""Calls across two circle-signaling replicas (the scaled mode: PostgreSQL and Redis), behind
nginx running deploy/nginx.conf with /api/v1/calls spread over both.

Ana calls Ben through replica A; Ben answers and sends Ana a sealed signal through replica B;
the signal reaches the socket Ana's device holds on the gateway (which named that device in its
auth frame) and no other socket of hers. Needs CIRCLE_TEST_POSTGRES_URL and
CIRCLE_TEST_REDIS_URL (scripts/with-test-servers.sh, as `make test` runs it); skipped without
them, failed under CI. About 10 seconds.
"""
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from urllib.parse import urlparse
from urllib.request import urlopen

import pytest

from processes import Process, api, circle_cli, executable, free_port, fresh_database, nginx_config, register, wait_ready

POSTGRES = os.environ.get("CIRCLE_TEST_POSTGRES_URL")
REDIS = os.environ.get("CIRCLE_TEST_REDIS_URL")
if not (POSTGRES and REDIS) and os.environ.get("CI") != "true":
    pytest.skip("CIRCLE_TEST_POSTGRES_URL and CIRCLE_TEST_REDIS_URL are not set (run `make test`)",
                allow_module_level=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sealed_signal_shape(seq: int = 1) -> str:
    """Random bytes laid out as a sealed call signal (PROTOCOL 10): u8(1) || u64(seq) || enc (32)
    || ciphertext (here 40 bytes and the 16-byte tag) || signature (64). The relay checks only
    the shape; only the recipient could open or verify it."""
    return b64url(bytes([1]) + struct.pack(">Q", seq) + os.urandom(32) + os.urandom(40 + 16) + os.urandom(64))


class Socket:
    """A minimal WebSocket client (RFC 6455) for the realtime socket: text frames, pongs."""

    def __init__(self, url: str, auth: dict):
        address = urlparse(url)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=10)
        key = b64url(os.urandom(16)) + "=="
        self.sock.sendall((f"GET {address.path} HTTP/1.1\r\nHost: {address.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, f"the socket closed during the handshake: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.send(auth)

    def send(self, message: dict, opcode: int = 1):
        self._frame(opcode, json.dumps(message).encode())

    def _frame(self, opcode: int, payload: bytes):
        mask = os.urandom(4)
        length = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + struct.pack(">H", length))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the server closed the socket")
            data += chunk
        return data

    def receive(self, within: float):
        """The next JSON frame, or None when none arrives within `within` seconds."""
        deadline = time.monotonic() + within
        message = b""
        while True:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                first, second = self._exactly(2)
            except socket.timeout:
                return None
            self.sock.settimeout(10)  # the rest of a started frame comes promptly
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._exactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._exactly(8))[0]
            payload = self._exactly(length)
            opcode = first & 0x0F
            if opcode == 0x9:
                self._frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError(f"closed by the server: {payload[:2].hex()} {payload[2:]!r}")
            elif opcode in (0x0, 0x1):
                message += payload
                if first & 0x80:
                    return json.loads(message)

    def wait_for(self, frame_type: str, within: float = 15):
        """The next frame of `frame_type` (others skipped), or None."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            frame = self.receive(left)
            if frame and frame.get("type") == frame_type:
                return frame
        return None

    def close(self):
        self.sock.close()


def requests_served(port: int, method: str, route: str) -> int:
    """How many `method` requests for `route` a replica's /metrics has counted."""
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    labels = re.escape(f'http_route="{route}",http_request_method="{method}",')
    return sum(int(float(value)) for value in re.findall(rf"^hb_requests\{{{labels}[^}}]*\}} (\S+)$", text, re.M))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A gateway, messaging, two signaling replicas and nginx in front, on one fresh database."""
    assert POSTGRES and REDIS, "CIRCLE_TEST_POSTGRES_URL and CIRCLE_TEST_REDIS_URL must be set under CI"
    tmp = tmp_path_factory.mktemp("signaling-cluster")
    env = {
        "POSTGRES_URL": fresh_database(POSTGRES, "signaling"), "REDIS_URL": REDIS, "REDIS_PREFIX": f"test:signaling:{os.urandom(4).hex()}:",
        "AUTH_PEPPER": base64.b64encode(os.urandom(32)).decode(),
        "ACTIVITY_KEYS": "t1:" + base64.b64encode(os.urandom(32)).decode(),
        "LOG_LEVEL": "warning",
    }
    migrate = subprocess.run([executable("circle"), "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    processes, ports = [], {}

    def start(name, executable_name, extra_env=None):
        port = free_port()
        process = Process([executable(executable_name), "--http-port", port], log=tmp / f"{name}.log", env={**env, **(extra_env or {})})
        processes.append(process)
        ports[name] = port
        return process

    try:
        started = {
            "gateway": start("gateway", "circle-gateway", {"AUTH_REGISTRATION": "open"}),
            "messaging": start("messaging", "circle-messaging"),
            "signaling-a": start("signaling-a", "circle-signaling"),
            "signaling-b": start("signaling-b", "circle-signaling"),
        }
        for name, process in started.items():
            wait_ready(f"http://127.0.0.1:{ports[name]}/readyz", process)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        (tmp / "logs").mkdir(exist_ok=True)
        ports["nginx"] = free_port()
        config = nginx_config(tmp, ports["nginx"], {"gateway": [ports["gateway"]], "messaging": [ports["messaging"]],
                                                    "signaling": [ports["signaling-a"], ports["signaling-b"]]})
        front = Process([nginx, "-p", tmp, "-c", config, "-g", f"pid {tmp}/nginx.pid; daemon off;"],
                        log=tmp / "nginx.log")
        processes.append(front)
        wait_ready(f"http://127.0.0.1:{ports['nginx']}/nginx-health", front)
        yield tmp, ports
    finally:
        for process in reversed(processes):
            process.stop()


def test_a_call_rung_on_one_replica_is_answered_and_signalled_through_the_other(cluster):
    tmp, ports = cluster
    front = f"http://127.0.0.1:{ports['nginx']}"
    replica_a = f"http://127.0.0.1:{ports['signaling-a']}"
    replica_b = f"http://127.0.0.1:{ports['signaling-b']}"

    # Two members and their direct conversation, made by the CLI through nginx.
    ana = register(front, "ana", tmp / "ana.json")
    ben = register(front, "ben", tmp / "ben.json")
    conversation = circle_cli("chat", "create", "ben", state=tmp / "ana.json").strip()

    # Ana's device holds a socket on the gateway (through nginx) naming it; a second socket of
    # hers, straight to the gateway, names none.
    device_socket = Socket(f"ws://127.0.0.1:{ports['nginx']}/api/v1/events",
                           {"type": "auth", "token": ana["token"], "device": ana["deviceId"]})
    other_socket = Socket(f"ws://127.0.0.1:{ports['gateway']}/api/v1/events", {"type": "auth", "token": ana["token"]})
    try:
        assert device_socket.wait_for("ready"), "no ready frame"
        assert other_socket.wait_for("ready"), "no ready frame on the second socket"

        status, call = api("POST", replica_a + "/api/v1/calls", ana["token"],
                           {"conversationId": conversation, "media": "audio", "deviceId": ana["deviceId"]})
        assert status == 201 and call["state"] == "ringing", call

        status, joined = api("POST", f"{replica_b}/api/v1/calls/{call['id']}/join", ben["token"],
                             {"deviceId": ben["deviceId"], "media": "audio"})
        assert status == 200 and joined["state"] == "active", joined
        assert {(p["userId"], p["state"], p.get("deviceId")) for p in joined["participants"]} == {
            (ana["userId"], "joined", ana["deviceId"]), (ben["userId"], "joined", ben["deviceId"])}

        payload = sealed_signal_shape()
        status, problem = api("POST", f"{replica_b}/api/v1/calls/{call['id']}/signal", ben["token"],
                              {"fromDevice": ben["deviceId"], "toUser": ana["userId"], "toDevice": ana["deviceId"], "payload": payload})
        assert status == 202, problem

        frame = device_socket.wait_for("call.signal")
        assert frame, "the signal relayed by replica B never reached the caller's device socket"
        assert frame["data"] == {"callId": call["id"], "conversationId": conversation, "from": ben["userId"],
                                 "fromDevice": ben["deviceId"], "toDevice": ana["deviceId"], "payload": payload}
        # Signals go only to the socket that named the device.
        assert other_socket.wait_for("call.signal", within=1.5) is None

        # A signal that is not a sealed signal's shape is refused, whichever replica gets it.
        status, _ = api("POST", f"{replica_a}/api/v1/calls/{call['id']}/signal", ben["token"],
                        {"fromDevice": ben["deviceId"], "toUser": ana["userId"], "toDevice": ana["deviceId"], "payload": b64url(os.urandom(100))})
        assert status == 422
    finally:
        device_socket.close()
        other_socket.close()

    # nginx spreads /api/v1/calls over both replicas, and either answers for the same call.
    before = [requests_served(ports[name], "GET", "/api/v1/calls/{id}") for name in ("signaling-a", "signaling-b")]
    for _ in range(4):
        status, seen = api("GET", f"{front}/api/v1/calls/{call['id']}", ben["token"])
        assert status == 200 and seen["state"] == "active", seen
    after = [requests_served(ports[name], "GET", "/api/v1/calls/{id}") for name in ("signaling-a", "signaling-b")]
    assert all(a > b for a, b in zip(after, before)), f"requests per replica before {before}, after {after}"

    status, ended = api("POST", f"{front}/api/v1/calls/{call['id']}/leave", ana["token"])
    assert status == 200 and ended["state"] == "ended" and ended["reason"] == "completed", ended
