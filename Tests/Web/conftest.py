"""Fixtures for the browser tests: a real `circle serve` and Debian's Chromium through Playwright.

- `circle` starts one `circle serve` for the session (the web client built into the binary,
  SQLite in a temp folder, a free loopback port, open registration so tests can sign up without an invite; `circle_with_invites` is the
  default invite-only policy) and stops it by pid.
- `browser` is Chromium with the flags this machine needs.
- `new_page(origin)` opens a page in a fresh context and records console errors, CSP
  violations, failed requests and every host the page talked to; `page_checks(page)` asserts
  none of those went wrong. Screenshots go to test-artifacts/web/ (not committed).
"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

# Assertions wait up to 20 s (Playwright's default is 5 s): the CI machine is loaded, and a
# wait that ends early only ever fails a test that would have passed.
expect.set_options(timeout=20_000)

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CIRCLE_BUILD_DIR", ROOT / ".build" / "debug"))
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM = os.environ.get("CIRCLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CircleServe:
    """One `circle serve` process on loopback; restartable on the same data and port."""

    def __init__(self, folder: Path, registration: str, extra=()):
        self.folder = folder
        self.extra = list(extra)
        self.port = free_port()
        self.registration = registration
        self.origin = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.log = open(folder / "circle.log", "ab")

    def start(self):
        args = [
            str(BUILD / "circle"), "serve",
            "--http-port", str(self.port),
            "--auth-registration", self.registration,
            "--http-public-url", self.origin,
            "--log-level", "warning",
            *self.extra,
        ]
        self.process = subprocess.Popen(args, cwd=self.folder, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"circle serve exited with {self.process.returncode}; see {self.folder / 'circle.log'}")
            try:
                with urllib.request.urlopen(self.origin + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("circle serve did not become ready within 60 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def cli(self, *args, input=None, state=None, timeout=120):
        """Runs the `circle` CLI against this server; returns the completed process."""
        env = dict(os.environ)
        if state:
            env["CIRCLE_STATE"] = str(state)
        return subprocess.run(
            [str(BUILD / "circle"), *args], cwd=self.folder, input=input, env=env,
            capture_output=True, text=True, timeout=timeout,
        )


def _serve(registration: str, extra=()):
    folder = Path(tempfile.mkdtemp(prefix="circle-web-"))
    server = CircleServe(folder, registration, extra).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def circle():
    yield from _serve("open")


@pytest.fixture(scope="session")
def circle_with_invites():
    yield from _serve("invite")


@pytest.fixture(scope="session")
def playwright_instance():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance):
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield browser
    browser.close()


class PageWatch:
    """What went wrong on a page: console errors, CSP violations, failed requests, other hosts."""

    def __init__(self, page, origin: str):
        self.origin_host = urlparse(origin).netloc
        self.console_errors = []
        self.csp_violations = []
        self.failed_requests = []
        self.foreign_requests = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"pageerror: {error}"))
        page.on("request", self._request)
        page.on("requestfailed", self._failed)

    def _console(self, message):
        if message.type == "error":
            text = message.text
            (self.csp_violations if "Content Security Policy" in text else self.console_errors).append(text)

    def _request(self, request):
        url = urlparse(request.url)
        if url.scheme in ("data", "blob"):
            return
        if url.netloc != self.origin_host:
            self.foreign_requests.append(request.url)

    def _failed(self, request):
        # A socket closed by a server restart is expected in the reconnect test; those tests
        # clear this list themselves.
        self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def assert_clean(self):
        assert not self.csp_violations, self.csp_violations
        assert not self.console_errors, self.console_errors
        assert not self.foreign_requests, self.foreign_requests


@pytest.fixture
def new_page(browser):
    """new_page(origin, **context_options) -> (page, watch); contexts close after the test."""
    contexts = []

    def open_page(origin: str, **options):
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        watch = PageWatch(page, origin)
        return page, watch

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str):
    """Saves a full-page screenshot for a person to look at (test-artifacts/web/, not committed)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def page(circle, new_page):
    """A page of the real server's origin for the protocol tests (which import the modules with
    `page.evaluate`); afterwards, no CSP violation and no error from a protocol module."""
    page, watch = new_page(circle.origin)
    page.goto(circle.origin + "/")
    yield page
    assert not watch.csp_violations, watch.csp_violations
    protocol_errors = [e for e in watch.console_errors if "/js/protocol/" in e]
    assert not protocol_errors, protocol_errors
