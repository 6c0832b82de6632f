"""An account's destruction survives circle-cleanup being SIGKILLed (issue 18, "crypto-shredding
holds at every step"): the real processes of the scaled mode (gateway, messaging, vault and
cleanup replicas on one PostgreSQL and Redis, behind nginx running deploy/nginx.conf).

The keys go in the request's own transaction, so from the moment the job exists nothing stored
opens: the test checks that at each kill. The runner is killed with SIGKILL in the middle of the
messages step; two replicas then race for the job once the dead one's claim lapses (30 s), and
are killed as it leaves the step; a third run finishes it. The job ends with every batch counted
once, nothing of the account left in the database or the vault folder, and the other member's
data intact. About 80 seconds.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import time
import unicodedata
from pathlib import Path

import pytest

from processes import Process, api, circle_cli, executable, free_port, fresh_database, nginx_config, register, sigkill, wait_ready

POSTGRES = os.environ.get("CIRCLE_TEST_POSTGRES_URL")
REDIS = os.environ.get("CIRCLE_TEST_REDIS_URL")
if not (POSTGRES and REDIS) and os.environ.get("CI") != "true":
    pytest.skip("CIRCLE_TEST_POSTGRES_URL and CIRCLE_TEST_REDIS_URL are not set (run `make test`)",
                allow_module_level=True)

PASSWORD = "correct horse battery staple"
# Seeded copies of one real message, so the messages step runs many batches (200 each).
EXTRA_MESSAGES = 20_000


def auth_key(origin: str, server_id: str, username: str, salt: bytes, iterations: int) -> bytes:
    """PROTOCOL 2's authKey, written here from the text (independent of both clients)."""
    origin_bytes = origin.encode()
    pbkdf2_salt = hashlib.sha256(b"circle/v1/origin-salt" + len(origin_bytes).to_bytes(2, "big") + origin_bytes
                                 + server_id.encode() + username.encode() + salt).digest()
    master = hashlib.pbkdf2_hmac("sha256", unicodedata.normalize("NFC", PASSWORD).encode(), pbkdf2_salt, iterations, 32)
    prk = hmac.new(b"", master, hashlib.sha256).digest()
    info = b"circle/v1/auth" + b"PBKDF2-SHA256" + iterations.to_bytes(4, "big")
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Database:
    def __init__(self, url: str):
        self.url = url
        self.psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"

    def value(self, sql: str) -> str:
        done = subprocess.run([self.psql, self.url, "-qtA", "-c", sql], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def count(self, sql: str) -> int:
        return int(self.value(sql))


@pytest.fixture
def scaled(tmp_path):
    """Gateway, messaging, vault and a cleanup replica behind nginx on one fresh database."""
    assert POSTGRES and REDIS, "CIRCLE_TEST_POSTGRES_URL and CIRCLE_TEST_REDIS_URL must be set under CI"
    database = fresh_database(POSTGRES, "destruction")
    env = {
        "POSTGRES_URL": database, "REDIS_URL": REDIS, "REDIS_PREFIX": f"test:destruction:{os.urandom(4).hex()}:",
        "AUTH_PEPPER": base64.b64encode(os.urandom(32)).decode(),
        "ACTIVITY_KEYS": "t1:" + base64.b64encode(os.urandom(32)).decode(),
        "VAULT_PATH": str(tmp_path / "vault"), "LOG_LEVEL": "warning",
    }
    migrate = subprocess.run([executable("circle"), "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    processes, ports = [], {}

    def start(name, executable_name, extra_env=None, port=None):
        ports[name] = port or free_port()
        process = Process([executable(executable_name), "--http-port", ports[name]], log=tmp_path / f"{name}.log",
                          env={**env, **(extra_env or {})})
        processes.append(process)
        wait_ready(f"http://127.0.0.1:{ports[name]}/readyz", process)
        return process

    try:
        start("gateway", "circle-gateway", {"AUTH_REGISTRATION": "open"})
        start("messaging", "circle-messaging")
        start("vault", "circle-vault")
        # Both cleanup replicas share one port behind nginx; only one runs at a time here.
        ports["cleanup"] = free_port()
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        (tmp_path / "logs").mkdir(exist_ok=True)
        ports["nginx"] = free_port()
        config = nginx_config(tmp_path, ports["nginx"], {
            "gateway": [ports["gateway"]], "messaging": [ports["messaging"]], "vault": [ports["vault"]], "cleanup": [ports["cleanup"]],
        })
        front = Process([nginx, "-p", tmp_path, "-c", config, "-g", f"pid {tmp_path}/nginx.pid; daemon off;"], log=tmp_path / "nginx.log")
        processes.append(front)
        wait_ready(f"http://127.0.0.1:{ports['nginx']}/nginx-health", front)

        def start_cleanup(name, own_port=False):
            return start(name, "circle-cleanup", port=None if own_port else ports["cleanup"])

        yield {"tmp": tmp_path, "ports": ports, "db": Database(database), "start_cleanup": start_cleanup,
               "url": f"http://127.0.0.1:{ports['nginx']}"}
    finally:
        for process in reversed(processes):
            process.stop()


def no_key_left(db: Database, user_id: str):
    """Nothing the server keeps opens the account's data: no bundle, no envelope to it, no wrap."""
    assert db.count(f"SELECT count(*) FROM key_bundles WHERE user_id = '{user_id}'") == 0
    assert db.count(f"SELECT count(*) FROM key_envelopes WHERE recipient_id = '{user_id}'") == 0
    assert db.count(f"SELECT count(*) FROM vault_files WHERE owner_id = '{user_id}' AND length(wrap) > 0") == 0
    assert db.count(f"SELECT count(*) FROM pins WHERE user_id = '{user_id}'") == 0
    assert db.value(f"SELECT length(auth_verifier) FROM users WHERE id = '{user_id}'") == "0"


def test_sigkilled_cleanup_leaves_nothing_readable_and_the_job_finishes_once(scaled, tmp_path):
    url, db = scaled["url"], scaled["db"]
    ana_state, ben_state = tmp_path / "ana.json", tmp_path / "ben.json"
    ana = register(url, "ana", ana_state)
    register(url, "ben", ben_state)
    conversation = circle_cli("chat", "create", "ben", state=ana_state).strip()
    for text in ("one", "two", "three"):
        circle_cli("chat", "send", conversation, text, state=ana_state)
    circle_cli("chat", "send", conversation, "ben's own", state=ben_state)
    for index in range(3):
        path = tmp_path / f"file-{index}.bin"
        path.write_bytes(os.urandom(50_000 + index))
        circle_cli("vault", "put", str(path), state=ana_state)
    user_id = ana["userId"]
    columns = db.value("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
                       "WHERE table_name = 'messages' AND column_name NOT IN ('id', 'seq')")
    db.value(f"INSERT INTO messages (id, seq, {columns}) SELECT md5(random()::text || g), 100000 + g, {columns} "
             f"FROM (SELECT * FROM messages WHERE sender_id = '{user_id}' LIMIT 1) m, generate_series(1, {EXTRA_MESSAGES}) g")
    blobs = sorted((tmp_path / "vault").rglob("*"))
    assert sum(1 for blob in blobs if blob.is_file()) >= 3
    bens = db.count("SELECT count(*) FROM messages WHERE sender_id <> '" + user_id + "'")

    # Re-authenticate (the authKey derived here from the password) and start the destruction.
    cleanup = scaled["start_cleanup"]("cleanup-a")
    status, prelogin = api("POST", url + "/api/v1/auth/prelogin", body={"username": "ana"})
    assert status == 200 and prelogin["origin"] == url
    key = auth_key(prelogin["origin"], prelogin["serverId"], "ana", base64.urlsafe_b64decode(prelogin["salt"] + "=="),
                   prelogin["kdf"]["iterations"])
    token = ana["token"]
    status, _ = api("POST", url + "/api/v1/account/reauthenticate", token, {"authKey": b64url(key)})
    assert status == 200
    status, started = api("POST", url + "/api/v1/destruction", token, {"kind": "account", "confirm": "destroy my account"})
    assert status == 202, started
    job_id, watch = started["job"]["id"], started["watchToken"]
    no_key_left(db, user_id)

    def job():
        return json.loads(db.value(f"SELECT row_to_json(j) FROM destruction_jobs j WHERE id = '{job_id}'"))

    def wait_until(check, within, what):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            current = job()
            if check(current):
                return current
            time.sleep(0.02)
        raise AssertionError(f"{what} did not happen within {within} s: {job()}")

    # Killed in the middle of the messages step.
    wait_until(lambda j: j["step"] == "messages" and json.loads(j["progress"])["messages"] > 0, 60, "the messages step")
    sigkill(cleanup)
    midway = job()
    assert midway["step"] == "messages", midway
    no_key_left(db, user_id)
    # Two replicas race for the job once the claim lapses; one takes it over, and both are killed
    # as the job leaves the step.
    racers = [scaled["start_cleanup"]("cleanup-b"), scaled["start_cleanup"]("cleanup-c", own_port=True)]
    wait_until(lambda j: j["step"] != "messages", 90, "the messages step's end")
    for racer in racers:
        sigkill(racer)
    no_key_left(db, user_id)
    # The first replica again (restarted) finishes it.
    scaled["start_cleanup"]("cleanup-a-again")
    done = wait_until(lambda j: j["step"] == "done", 90, "the job's end")
    progress = json.loads(done["progress"])
    assert progress["messages"] == progress["messagesTotal"] == EXTRA_MESSAGES + 3, progress
    assert progress["files"] == progress["filesTotal"] == 3, progress

    # Nothing of the account is left; Ben's message is.
    assert db.count(f"SELECT count(*) FROM messages WHERE sender_id = '{user_id}'") == 0
    assert db.count(f"SELECT count(*) FROM vault_files WHERE owner_id = '{user_id}'") == 0
    assert not [blob for blob in blobs if blob.is_file() and blob.exists()], "every blob of the account is gone"
    assert db.count("SELECT count(*) FROM messages WHERE sender_id <> '" + user_id + "'") == bens
    assert db.count("SELECT count(*) FROM destruction_jobs") == 1
    finished = db.count("SELECT count(*) FROM activity_logs WHERE kind = 'destruction.finished'")
    assert finished == 1, "the end is recorded once"
    # The requester can still read how it went with the job's watch token.
    status, watched = api("GET", url + f"/api/v1/destruction/{job_id}", None, None, {"Circle-Job-Token": watch})
    assert status == 200 and watched["step"] == "done", watched
    # Ben still reads his conversation.
    assert "ben's own" in circle_cli("chat", "read", conversation, state=ben_state)
