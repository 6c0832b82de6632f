"""TURN for real: Debian's coturn against the credentials `GET /api/v1/calls/turn` hands out.

A `circle serve` (SQLite, open registration) is given the secret and the address of a coturn
on loopback; a member fetches credentials, and coturn's own client (turnutils_uclient)
allocates relays with them and sends packets through. coturn must refuse a wrong password and an
expired username, so the credentials' expiry is enforced by coturn and not only claimed. The
shipped deploy/turnserver.conf is run too: it accepts the same credentials and refuses loopback
peers. About 10 seconds.
"""
import base64
import hashlib
import hmac
import os
import re
import shutil
import socket
import subprocess
import time
from urllib.parse import urlparse

import pytest

from processes import ROOT, Process, api, executable, free_port, register, wait_ready

SECRET = "test-turn-secret-" + os.urandom(8).hex()
TTL_SECONDS = 600


def turn_password(username: str, secret: str = SECRET) -> str:
    """The TURN REST API password: base64(HMAC-SHA1(secret, username))."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stun_answers(port: int) -> bool:
    """Whether a STUN Binding request to 127.0.0.1:port gets its success response."""
    transaction = os.urandom(12)
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(request, ("127.0.0.1", port))
        try:
            answer = s.recv(2048)
        except OSError:
            return False
    return answer[:2] == b"\x01\x01" and answer[8:20] == transaction


def start_coturn(tmp, name: str, *options) -> tuple[Process, int]:
    """coturn on 127.0.0.1 with its own ports, pid file and database, once it answers STUN."""
    turnserver = shutil.which("turnserver")
    assert turnserver, "coturn is not installed (make test installs it: apt-get install coturn)"
    port = free_udp_port()
    relay = 50000 + (port % 1000) * 10  # a small relay range of its own
    process = Process([turnserver, *options, "-v",
                       "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
                       f"--min-port={relay}", f"--max-port={relay + 9}",
                       f"--static-auth-secret={SECRET}",
                       f"--pidfile={tmp / (name + '.pid')}", f"--db={tmp / (name + '.db')}"],
                      log=tmp / f"{name}.log")
    deadline = time.monotonic() + 15
    while not stun_answers(port):
        assert process.running, f"coturn exited:\n{process.output()[-3000:]}"
        assert time.monotonic() < deadline, f"coturn did not answer STUN within 15 s:\n{process.output()[-3000:]}"
        time.sleep(0.1)
    return process, port


def relay(port: int, username: str, password: str) -> subprocess.CompletedProcess:
    """turnutils_uclient: two clients allocate relays on coturn and send 3 packets each through
    them to each other (-y), without RTCP allocations (-c)."""
    return subprocess.run(["turnutils_uclient", "-y", "-c", "-n", "3", "-m", "1", "-z", "5",
                           "-u", username, "-w", password, "-p", str(port), "127.0.0.1"],
                          capture_output=True, text=True, timeout=30)


def relayed_everything(run: subprocess.CompletedProcess) -> bool:
    """Whether uclient exited 0 having received every packet it sent through the relays."""
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", run.stdout + run.stderr)
    return run.returncode == 0 and bool(totals) and int(totals[-1][0]) > 0 and totals[-1][0] == totals[-1][1]


def coturn_logged(coturn: Process, pattern: str, within: float = 3) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if re.search(pattern, coturn.output()):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("turn")


@pytest.fixture(scope="module")
def coturn(tmp):
    # The test relays between two clients on loopback, which coturn refuses unless told.
    process, port = start_coturn(tmp, "coturn", "-n", "--use-auth-secret", "--realm=circle.test",
                                 "--no-tls", "--no-dtls", "--no-cli", "--fingerprint",
                                 "--allow-loopback-peers", "--simple-log", "--log-file=stdout")
    yield process, port
    process.stop()


@pytest.fixture(scope="module")
def member(tmp, coturn):
    """A member of a `circle serve` that knows coturn, and the ICE servers the API gave them."""
    _, turn_port = coturn
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    server = Process([executable("circle"), "serve", "--http-port", port, "--auth-registration", "open",
                      "--log-level", "warning"], log=tmp / "circle.log", cwd=tmp,
                     env={"TURN_SECRET": SECRET, "TURN_TTL": f"{TTL_SECONDS}s",
                          "TURN_URLS": f"stun:127.0.0.1:{turn_port},turn:127.0.0.1:{turn_port}?transport=udp"})
    try:
        wait_ready(origin + "/readyz", server)
        state = register(origin, "ana", tmp / "ana.json")
        asked_at = int(time.time())
        status, ice = api("GET", origin + "/api/v1/calls/turn", token=state["token"])
        assert status == 200, ice
        yield state, ice, asked_at
    finally:
        server.stop()


def turn_entry(ice) -> dict:
    [entry] = [server for server in ice["iceServers"] if any(url.startswith("turn:") for url in server["urls"])]
    return entry


def turn_port_of(entry) -> int:
    return urlparse(entry["urls"][0].replace("turn:", "turn://", 1)).port


@pytest.fixture(scope="module")
def relayed_with_api_credentials(coturn, member):
    """One uclient run with the API's credentials against the coturn it names (about 5 s)."""
    _, ice, _ = member
    entry = turn_entry(ice)
    return relay(turn_port_of(entry), entry["username"], entry["credential"])


def test_the_api_hands_out_rest_credentials_for_the_member(coturn, member):
    _, turn_port = coturn
    state, ice, asked_at = member
    stun = [server for server in ice["iceServers"] if server["urls"] == [f"stun:127.0.0.1:{turn_port}"]]
    assert stun and "username" not in stun[0] and "credential" not in stun[0], ice
    entry = turn_entry(ice)
    assert entry["urls"] == [f"turn:127.0.0.1:{turn_port}?transport=udp"]
    expiry, _, user = entry["username"].partition(":")
    assert user == state["userId"]
    assert asked_at + TTL_SECONDS - 5 <= int(expiry) <= asked_at + TTL_SECONDS + 5
    assert ice["ttl"] == TTL_SECONDS and ice["expiresAt"] == int(expiry) * 1000
    assert entry["credential"] == turn_password(entry["username"])


def test_coturn_relays_packets_with_the_api_credentials(relayed_with_api_credentials):
    run = relayed_with_api_credentials
    assert relayed_everything(run), f"exit {run.returncode}:\n{run.stdout}{run.stderr}"


def test_coturn_refuses_a_wrong_password(coturn, member):
    process, port = coturn
    entry = turn_entry(member[1])
    wrong = turn_password(entry["username"], secret="not-the-secret-" + os.urandom(4).hex())
    run = relay(port, entry["username"], wrong)
    assert not relayed_everything(run) and "Cannot complete Allocation" in run.stdout + run.stderr, run.stdout
    assert coturn_logged(process, rf"user <{re.escape(entry['username'])}>: .*error 401"), "coturn logged no 401"


def test_coturn_refuses_an_expired_username_signed_with_the_same_secret(coturn, member, relayed_with_api_credentials):
    process, port = coturn
    state, ice, _ = member
    # The API's credential is exactly what turn_password makes, and coturn accepted it; the same
    # construction with an expiry a minute ago must be refused, so coturn checks the expiry.
    assert turn_password(turn_entry(ice)["username"]) == turn_entry(ice)["credential"]
    assert relayed_everything(relayed_with_api_credentials)
    expired = f"{int(time.time()) - 60}:{state['userId']}"
    run = relay(port, expired, turn_password(expired))
    assert not relayed_everything(run) and "Cannot complete Allocation" in run.stdout + run.stderr, run.stdout
    assert coturn_logged(process, rf"user <{re.escape(expired)}>: .*error 401"), "coturn logged no 401"


def test_the_shipped_config_accepts_rest_credentials_and_refuses_loopback_peers(tmp, member):
    # deploy/turnserver.conf as compose runs it, moved onto free loopback ports. Allocations
    # succeed with API-style credentials; relaying to a peer on 127.0.0.1 (the other client's
    # relay) is refused by its denied-peer-ip list.
    process, port = start_coturn(tmp, "shipped", "-c", ROOT / "deploy" / "turnserver.conf")
    try:
        username = f"{int(time.time()) + 600}:{member[0]['userId']}"
        run = relay(port, username, turn_password(username))
        output = run.stdout + run.stderr
        assert "403 (Forbidden IP)" in output and not relayed_everything(run), output
        assert coturn_logged(process, rf"user <{re.escape(username)}>: incoming packet ALLOCATE processed, success")
    finally:
        process.stop()
