"""`circle destroy --everything` as an operator runs it: refused without the flag and the typed
phrase (changing nothing), then keys first and everything else, on an embedded server's data
folder made by `circle serve` itself; and with the vault in S3-compatible storage (the moto
server `make test` starts), every object and unfinished multipart upload of the bucket."""
import os
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from processes import Process, executable, free_port

S3 = os.environ.get("CIRCLE_TEST_S3_URL")


def run(args, cwd):
    return subprocess.run([executable("circle"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def serve_once(tmp_path, data, vault, env=None):
    """Starts `circle serve` on `data` until /readyz answers, then stops it."""
    port = free_port()
    server = Process([executable("circle"), "serve", "--http-port", str(port), "--sqlite-path", str(data / "circle.sqlite"),
                      "--auth-pepper-file", str(data / "pepper.key"), "--activity-key-file", str(data / "activity.key"),
                      *vault, "--log-level", "error"], log=tmp_path / "serve.log", cwd=tmp_path, env=env)
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"circle serve did not become ready:\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
    finally:
        server.stop()


def test_destroy_everything_refuses_without_confirmation_then_leaves_no_key_row_or_blob(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    serve_once(tmp_path, data, ["--vault-path", str(data / "vault")])
    pepper = data / "pepper.key"
    assert pepper.exists() and (data / "activity.key").exists()
    blob = data / "vault" / "files" / "00ff"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"\x00ciphertext")
    database = sqlite3.connect(data / "circle.sqlite")
    database.execute("INSERT INTO invites (code_hash, grants_admin, created_at, expires_at) VALUES ('h', 0, 0, 1)")
    database.commit()
    database.close()
    paths = ["--sqlite-path", str(data / "circle.sqlite"), "--auth-pepper-file", str(pepper),
             "--activity-key-file", str(data / "activity.key"), "--vault-path", str(data / "vault")]

    for refused in (["destroy", *paths], ["destroy", "--everything", *paths], ["destroy", "--everything", "--confirm", "destroy", *paths]):
        answer = run(refused, tmp_path)
        assert answer.returncode != 0 and "destroy everything" in answer.stderr + answer.stdout, answer
        assert pepper.exists() and blob.exists(), "a refused command changes nothing"

    answer = run(["destroy", "--everything", "--confirm", "destroy everything", *paths], tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert "keys destroyed" in answer.stdout and "pepper file destroyed" in answer.stdout, answer.stdout
    assert not pepper.exists() and not (data / "activity.key").exists()
    assert list((data / "vault").iterdir()) == []
    database = sqlite3.connect(data / "circle.sqlite")
    tables = [name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    left = {table: database.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}
    database.close()
    assert left.pop("schema_migrations") > 0 and left.pop("server_settings") > 0, "the schema stays"
    assert all(count == 0 for count in left.values()), left


def test_destroy_everything_empties_the_vault_bucket_in_s3_compatible_storage(tmp_path):
    if not S3:
        if os.environ.get("CI") == "true":
            pytest.fail("CIRCLE_TEST_S3_URL must be set under CI")
        pytest.skip("CIRCLE_TEST_S3_URL is not set (run `make test`)")
    import boto3
    from botocore.config import Config
    bucket = f"destroy-{os.getpid()}-{int(time.time())}"
    store = boto3.client("s3", endpoint_url=S3, region_name="us-east-1", config=Config(s3={"addressing_style": "path"}),
                         aws_access_key_id=os.environ["CIRCLE_TEST_S3_ACCESS_KEY"],
                         aws_secret_access_key=os.environ["CIRCLE_TEST_S3_SECRET_KEY"])
    store.create_bucket(Bucket=bucket)
    data = tmp_path / "data"
    # The secret by the environment, as the README advises; the rest on the command line.
    env = {**os.environ, "VAULT_S3_SECRET_KEY": os.environ["CIRCLE_TEST_S3_SECRET_KEY"]}
    vault = ["--vault-s3-endpoint", S3, "--vault-s3-bucket", bucket, "--vault-s3-access-key", os.environ["CIRCLE_TEST_S3_ACCESS_KEY"]]
    serve_once(tmp_path, data, vault, env=env)
    for key in ["files/ab/abcdef", "files/cd/cdef01", "tail.0011.42", "upload.0011"]:
        store.put_object(Bucket=bucket, Key=key, Body=b"\x00ciphertext")
    store.create_multipart_upload(Bucket=bucket, Key="files/ef/ef0123")
    answer = subprocess.run([executable("circle"), "destroy", "--everything", "--confirm", "destroy everything",
                             "--sqlite-path", str(data / "circle.sqlite"), "--auth-pepper-file", str(data / "pepper.key"),
                             "--activity-key-file", str(data / "activity.key"), *vault],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert answer.returncode == 0, answer.stderr
    assert f"4 objects deleted from bucket {bucket}" in answer.stdout, answer.stdout
    assert os.environ["CIRCLE_TEST_S3_SECRET_KEY"] not in answer.stdout + answer.stderr
    assert store.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert not store.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert not (data / "pepper.key").exists()
