"""The `circle vault` commands (CircleKit) against a real `circle serve`: put with progress, ls
with decrypted names, get (checked and decrypted), share and revoke, rm."""
import hashlib
import json
import os
import re
import urllib.error
import urllib.request
import uuid

import pytest

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def state(circle, tmp_path_factory):
    path = tmp_path_factory.mktemp("vault-cli") / "device.json"
    answer = circle.cli("register", "--server", circle.origin, "--username", "v" + uuid.uuid4().hex[:8], "--password-stdin",
                        input=PASSWORD + "\n", state=path, timeout=300)
    assert answer.returncode == 0, answer.stderr
    return path


def status(url):
    try:
        with urllib.request.urlopen(url) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_put_ls_get_share_revoke_rm(circle, state, tmp_path):
    original = tmp_path / "holiday photos.tar"
    original.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    put = circle.cli("vault", "put", str(original), "--type", "application/x-tar", state=state)
    assert put.returncode == 0, put.stderr
    file_id = put.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", file_id)
    assert "encrypting" in put.stderr and "uploading" in put.stderr and "verifying" in put.stderr

    listing = circle.cli("vault", "ls", state=state)
    assert listing.returncode == 0, listing.stderr
    assert file_id in listing.stdout and "holiday photos.tar" in listing.stdout

    copy = tmp_path / "copy.tar"
    got = circle.cli("vault", "get", file_id, "-o", str(copy), state=state)
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(original.read_bytes()).digest()

    # The server holds neither the name nor the plaintext.
    token = json.loads(state.read_text())["token"]
    request = urllib.request.Request(f"{circle.origin}/api/v1/vault/files/{file_id}/content", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as answer:
        stored = answer.read()
    assert original.read_bytes()[:4096] not in stored and b"holiday" not in stored

    shared = circle.cli("vault", "share", file_id, "--max-downloads", "3", state=state)
    assert shared.returncode == 0, shared.stderr
    link = shared.stdout.strip()
    match = re.fullmatch(re.escape(circle.origin) + r"/s/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})", link)
    assert match, link
    assert status(f"{circle.origin}/api/v1/vault/links/{match.group(1)}") == 200
    revoked = circle.cli("vault", "revoke", link, state=state)
    assert revoked.returncode == 0, revoked.stderr
    assert status(f"{circle.origin}/api/v1/vault/links/{match.group(1)}") == 404

    removed = circle.cli("vault", "rm", file_id, state=state)
    assert removed.returncode == 0, removed.stderr
    assert file_id not in circle.cli("vault", "ls", state=state).stdout
    missing = circle.cli("vault", "get", file_id, "-o", str(tmp_path / "gone"), state=state)
    assert missing.returncode != 0 and "404" in missing.stderr
    assert not (tmp_path / "gone").exists()
