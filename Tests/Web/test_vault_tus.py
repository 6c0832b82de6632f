"""A standard tus client (tuspy from PyPI) uploads to the vault of a real `circle serve`.

The server cannot read the payload, only check its length, so the bytes here are random ones of
a length a vault payload can have (PROTOCOL.md 9.1); what is checked is the tus protocol: creation
with metadata, chunked PATCHes (with and without sha256 checksums), resuming an interrupted upload
from another client instance, and the stored file's size and hash.
"""
import base64
import hashlib
import io
import json
import os
import urllib.request
import uuid

import pytest
from tusclient import client as tus
from tusclient.uploader import Uploader

from vaultformat import ciphertext_length

PASSWORD = "correct horse battery staple"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Sha256Uploader(Uploader):
    """tuspy's uploader with the sha256 checksum the server supports (tuspy defaults to sha1)."""
    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


@pytest.fixture(scope="module")
def member(circle, tmp_path_factory):
    """A member registered with the CLI; returns the session token from its state file."""
    state = tmp_path_factory.mktemp("tus") / "member.json"
    username = "tus" + uuid.uuid4().hex[:8]
    answer = circle.cli("register", "--server", circle.origin, "--username", username, "--password-stdin",
                        input=PASSWORD + "\n", state=state, timeout=300)
    assert answer.returncode == 0, answer.stderr
    return json.loads(state.read_text())["token"]


def metadata():
    return {"fileId": b64u(os.urandom(16)), "meta": b64u(os.urandom(12 + 256 + 16)), "wrap": b64u(os.urandom(60))}


def files(circle, token):
    request = urllib.request.Request(circle.origin + "/api/v1/vault/files", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())["files"]


def test_tuspy_uploads_in_chunks_with_and_without_checksums(circle, member):
    client = tus.TusClient(circle.origin + "/api/v1/vault/uploads", headers={"Authorization": f"Bearer {member}"})
    for uploader_class in (Uploader, Sha256Uploader):
        data = os.urandom(ciphertext_length(300_000))
        fields = metadata()
        uploader = uploader_class(client=client, file_stream=io.BytesIO(data), chunk_size=64 * 1024, metadata=fields,
                                  upload_checksum=uploader_class is Sha256Uploader)
        uploader.upload()
        assert uploader.offset == len(data)
        stored = {f["id"]: f for f in files(circle, member)}[fields["fileId"]]
        assert stored["size"] == len(data)
        assert stored["sha256"] == b64u(hashlib.sha256(data).digest())


def test_an_interrupted_upload_resumes_from_another_client(circle, member):
    client = tus.TusClient(circle.origin + "/api/v1/vault/uploads", headers={"Authorization": f"Bearer {member}"})
    data = os.urandom(ciphertext_length(500_000))
    fields = metadata()
    first = Uploader(client=client, file_stream=io.BytesIO(data), chunk_size=100_000, metadata=fields)
    first.upload(stop_at=200_000)
    assert first.offset == 200_000
    # A fresh client knows only the upload's URL; it asks the server for the offset and goes on.
    second = Sha256Uploader(client=client, file_stream=io.BytesIO(data), url=first.url, chunk_size=150_000, upload_checksum=True)
    assert second.get_offset() == 200_000
    second.upload()
    stored = {f["id"]: f for f in files(circle, member)}[fields["fileId"]]
    assert stored["sha256"] == b64u(hashlib.sha256(data).digest())


def test_tuspy_sha1_checksums_are_refused_plainly(circle, member):
    client = tus.TusClient(circle.origin + "/api/v1/vault/uploads", headers={"Authorization": f"Bearer {member}"})
    data = os.urandom(ciphertext_length(1000))
    uploader = Uploader(client=client, file_stream=io.BytesIO(data), metadata=metadata(), upload_checksum=True)
    with pytest.raises(Exception) as refused:
        uploader.upload()
    assert "400" in str(refused.value) or "checksum" in str(refused.value).lower()


def test_without_a_session_nothing_is_created(circle):
    client = tus.TusClient(circle.origin + "/api/v1/vault/uploads")
    uploader = Uploader(client=client, file_stream=io.BytesIO(os.urandom(ciphertext_length(10))), metadata=metadata())
    with pytest.raises(Exception) as refused:
        uploader.upload()
    assert "401" in str(refused.value)
