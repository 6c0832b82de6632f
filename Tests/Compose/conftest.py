"""Fixtures for the compose test (scripts/compose-test.sh builds the images first).

The browser fixtures are Tests/Web's (Chromium with this machine's flags, pages that record what
went wrong); `circle` here is the compose project, started once for the session and taken down
with its volumes afterwards, its containers' logs kept in test-artifacts/compose/.
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WEB = HERE.parent / "Web"
ROOT = HERE.parents[1]

# Tests/Web's fixtures and helpers, under this folder's `conftest` name too (the helper modules
# imported from Tests/Web say `from conftest import ...`).
_spec = importlib.util.spec_from_file_location("web_conftest", WEB / "conftest.py")
web_conftest = importlib.util.module_from_spec(_spec)
sys.modules["web_conftest"] = web_conftest
_spec.loader.exec_module(web_conftest)
for _name in ("BUILD", "CircleServe", "free_port", "screenshot", "playwright_instance", "browser", "new_page", "PageWatch"):
    globals()[_name] = getattr(web_conftest, _name)
sys.path.insert(0, str(WEB))
sys.path.insert(0, str(HERE))

from stack import Stack  # noqa: E402


@pytest.fixture(scope="session")
def circle():
    stack = Stack(ROOT / "test-artifacts" / "compose", int(os.environ.get("CIRCLE_HTTP_PORT", "8080")))
    try:
        stack.up()
        yield stack
    finally:
        stack.save_logs()
        stack.down()
