"""First run, as a newcomer does it: the `circle` binary copied alone into an empty folder and
started there serves the whole web client (built into the binary), the first-admin invite it
prints opens registration in Chromium and makes an account, and `circle invite create` run later
on the same data prints links at the address the server serves (or the one it is told)."""
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect

from conftest import BUILD, free_port, screenshot
from test_ui import DESKTOP, check_accessibility, register

LINK = re.compile(r"https?://\S+/invite/\S+")


def test_a_copied_binary_serves_everything_from_an_empty_folder(new_page):
    folder = Path(tempfile.mkdtemp(prefix="circle-first-run-"))
    binary = folder / "circle"
    shutil.copy2(BUILD / "circle", binary)
    port = free_port()
    log = open(folder / "out.log", "wb")
    # Under `timeout`, so nothing outlives a killed test run.
    server = subprocess.Popen(["timeout", "-k", "5", "300", str(binary), "serve", "--http-port", str(port), "--log-level", "warning"],
                              cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not LINK.search((folder / "out.log").read_text()):
            assert server.poll() is None, (folder / "out.log").read_text()
            assert time.time() < deadline, "no first-admin invite printed within 60 s"
            time.sleep(0.1)
        printed = (folder / "out.log").read_text()
        link = LINK.search(printed).group(0)
        assert re.match(rf"http://localhost:{port}/(#/)?invite/", link), printed
        assert sorted(p.name for p in folder.iterdir()) == ["circle", "data", "out.log"], "nothing but its data beside the binary"

        # Every file the page needs comes from the binary; unchanged files revalidate to 304.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/js/app.js") as answer:
            assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
            etag = answer.headers["ETag"]
            assert etag and answer.read()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/js/app.js", headers={"If-None-Match": etag})
        try:
            urllib.request.urlopen(request)
            raise AssertionError("an unchanged file was sent again")
        except urllib.error.HTTPError as answer:
            assert answer.code == 304

        page, watch = new_page(f"http://localhost:{port}", **DESKTOP)
        page.goto(link)
        invite = page.get_by_label("Invite")
        expect(invite).to_have_value(link.rsplit("/", 1)[-1])
        screenshot(page, "first-run-invite")
        check_accessibility(page, "first run: the invite opens registration")
        register(page, f"http://localhost:{port}", "admin", "The Admin", path=None)
        watch.assert_clean()
        assert not watch.failed_requests, watch.failed_requests

        # Later, on the same data: links point where the server is, unless told otherwise.
        def invite_create(*flags):
            made = subprocess.run([str(binary), "invite", "create", *flags], cwd=folder, capture_output=True, text=True, timeout=60)
            assert made.returncode == 0, made.stderr
            return made.stdout.strip()

        assert re.match(rf"http://localhost:{port}/(#/)?invite/", invite_create())
        assert re.match(r"http://localhost:9443/(#/)?invite/", invite_create("--http-port", "9443"))
        assert re.match(r"https://circle.example/(#/)?invite/", invite_create("--http-public-url", "https://circle.example/"))
        refused = subprocess.run([str(binary), "invite", "create", "--http-port", "0"], cwd=folder, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "--http-port" in refused.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
