"""`circle destroy --everything` as an operator runs it: refused without the flag and the typed
phrase (changing nothing), then keys first and everything else, on an embedded server's data
folder made by `circle serve` itself."""
import sqlite3
import subprocess
import time
import urllib.request

from processes import Process, executable, free_port


def run(args, cwd):
    return subprocess.run([executable("circle"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_destroy_everything_refuses_without_confirmation_then_leaves_no_key_row_or_blob(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    server = Process([executable("circle"), "serve", "--http-port", str(port), "--sqlite-path", str(data / "circle.sqlite"),
                      "--auth-pepper-file", str(data / "pepper.key"), "--activity-key-file", str(data / "activity.key"),
                      "--vault-path", str(data / "vault"), "--log-level", "error"], log=tmp_path / "serve.log", cwd=tmp_path)
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("circle serve did not become ready")
    finally:
        server.stop()
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
