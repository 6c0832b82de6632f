"""The API contract, docs/openapi.yaml, held against the real server:
- `circle serve` serves exactly the repository's document at /api/v1/openapi.json;
- every answer the Swift service tests got (recorded with CIRCLE_API_RECORD, which `make test`
  sets) has a status the document lists for its route, and a JSON body its schema accepts;
- schemathesis fuzzes every operation of `circle serve` as a registered member, bounded in time:
  no 500, no status, content type, header or body the document does not describe.
(The routers and the document list the same routes: Tests/GatewayHTTPTests/APIContractTests.)"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from processes import ROOT, Process, api, circle_cli, executable, free_port, register, wait_ready

DOCUMENT = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
RECORD = Path(os.environ.get("CIRCLE_API_RECORD", ROOT / ".build" / "api-responses.jsonl"))
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def routes():
    """(method, compiled path, template) for every operation; literal segments before parameters."""
    table = []
    for template, item in DOCUMENT["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}/]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method in item:
            if method in METHODS:
                table.append((method.upper(), pattern, template))
    # /api/v1/calls/active before /api/v1/calls/{id}: fewer parameters first.
    table.sort(key=lambda entry: entry[2].count("{"))
    return table


ROUTES = routes()


def operation(method: str, path: str):
    for candidate, pattern, template in ROUTES:
        if candidate == method and pattern.match(path):
            return template, DOCUMENT["paths"][template][method.lower()]
    return None, None


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = DOCUMENT
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def check(entry) -> str | None:
    """What is wrong with one recorded answer, or None."""
    template, op = operation(entry["method"], entry["path"])
    if op is None:
        return None  # not an API route (a probe of an unknown path): nothing to hold it to
    responses = op["responses"]
    status = str(entry["status"])
    documented = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
    if documented is None:
        return f"{entry['method']} {template}: status {status} is not documented (documented: {sorted(responses)})"
    documented = resolve(documented)
    body = entry.get("body")
    if body is None or not body.strip():
        return None
    media = entry["contentType"].split(";")[0].strip()
    content = documented.get("content") or {}
    if media not in content:
        return f"{entry['method']} {template} {status}: content type {media} is not documented (documented: {sorted(content)})"
    schema = content[media].get("schema")
    if schema is None:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return f"{entry['method']} {template} {status}: the body is not JSON: {body[:200]}"
    rooted = {**schema, "components": DOCUMENT["components"]}
    errors = sorted(jsonschema.Draft202012Validator(rooted).iter_errors(value), key=lambda error: list(error.absolute_path))
    if errors:
        error = errors[0]
        where = "/".join(map(str, error.absolute_path))
        return f"{entry['method']} {template} {status}: at '{where}': {error.message[:300]}"
    return None


def test_every_answer_the_service_tests_got_is_described_by_the_document():
    if not RECORD.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{RECORD} is missing: `make test` records the Swift tests' answers there")
        pytest.skip(f"no recorded answers at {RECORD} (make test records them)")
    entries = [json.loads(line) for line in RECORD.read_text().splitlines() if line.strip()]
    checked = [entry for entry in entries if operation(entry["method"], entry["path"])[1] is not None]
    assert len(checked) > 1000, f"only {len(checked)} recorded answers were API calls"
    problems = {}
    for entry in checked:
        problem = check(entry)
        if problem:
            problems[problem] = problems.get(problem, 0) + 1
    covered = {operation(entry["method"], entry["path"])[0] + " " + entry["method"] for entry in checked}
    print(f"{len(checked)} answers checked over {len(covered)} operations")
    assert not problems, f"{len(problems)} kinds of answer break the document:\n" + "\n".join(
        f"{count} x {problem}" for problem, count in sorted(problems.items()))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`circle serve` on SQLite with two members (made by the CLI, keys client-side) and some of
    Ana's data, so the fuzzer reaches past "not found": a group with Ben and a message, a file in
    her vault and a share link to it."""
    tmp = tmp_path_factory.mktemp("openapi")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    process = Process([executable("circle"), "serve", "--http-port", port, "--auth-registration", "open",
                       "--log-level", "warning"], log=tmp / "circle.log", cwd=tmp)
    try:
        wait_ready(origin + "/readyz", process)
        ana_state, ben_state = tmp / "ana.json", tmp / "ben.json"
        ana = register(origin, "ana", ana_state)
        ben = register(origin, "ben", ben_state)
        conversation = circle_cli("chat", "create", "--group", "ben", state=ana_state).strip()
        circle_cli("chat", "send", conversation, "hello", "Ben", state=ana_state)
        (tmp / "notes.txt").write_text("the plan\n")
        file_id = circle_cli("vault", "put", str(tmp / "notes.txt"), state=ana_state).strip().splitlines()[-1]
        link = circle_cli("vault", "share", "--", file_id, state=ana_state).strip().splitlines()[-1]
        link_id = link.split("/s/")[1].split("#")[0]
        known = {"conversation": conversation, "file": file_id, "link": link_id, "ben": ben["userId"]}
        yield origin, ana, process, tmp, known
    finally:
        process.stop()


def fuzz_config(known: dict) -> str:
    """A schemathesis.toml that pins path parameters to Ana's real objects, each family of routes
    to its own kind of id (the rest of every request is still generated)."""
    families = [
        ("^/api/v1/conversations/", {"path.id": known["conversation"]}),
        ("^/api/v1/vault/files/", {"path.id": known["file"]}),
        ("^/api/v1/vault/links/", {"path.linkId": known["link"]}),
        ("^/api/v1/directory/users/", {"path.id": known["ben"]}),
        ("^/api/v1/directory/usernames/", {"path.name": "ben"}),
        ("^/c/", {"path.conversation": known["conversation"]}),
        ("^/s/", {"path.link": known["link"]}),
    ]
    blocks = []
    for pattern, parameters in families:
        pairs = ", ".join(f'"{key}" = "{value}"' for key, value in parameters.items())
        blocks.append(f"[[operations]]\ninclude-path-regex = '{pattern}'\nparameters = {{ {pairs} }}\n")
    return "\n".join(blocks)


def test_the_server_serves_the_repository_document(server):
    origin = server[0]
    status, served = api("GET", origin + "/api/v1/openapi.json")
    assert status == 200
    assert served == DOCUMENT


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(server):
    origin, member, process, tmp, known = server
    seed = os.environ.get("CIRCLE_FUZZ_SEED", "20261203")
    report = tmp / "schemathesis"
    config = tmp / "schemathesis.toml"
    config.write_text(fuzz_config(known))
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(ROOT / "docs" / "openapi.yaml"), "--url", origin,
        "-H", f"Authorization: Bearer {member['token']}",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_headers_conformance,response_schema_conformance",
        "--phases", "examples,coverage,fuzzing",
        # Signing out would end the session the rest of the run uses; the socket is not HTTP.
        "--exclude-operation-id", "authLogout", "--exclude-operation-id", "eventsSocket",
        "--max-examples", os.environ.get("CIRCLE_FUZZ_EXAMPLES", "25"), "--seed", seed,
        "--max-time", os.environ.get("CIRCLE_FUZZ_SECONDS", "150"),
        # One worker: with two, schemathesis's threads race in Python's linecache while building
        # strategies and the run sometimes ends in its own "Runtime Error" (not a finding).
        "--workers", "1", "--request-timeout", "10", "--no-color",
        # Message headers and ops have exact shapes the generator rarely hits by chance; it
        # still sends what it can, and the negative cases.
        "--suppress-health-check", "filter_too_much",
        "--report", "junit", "--report-dir", str(report),
    ]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=tmp,
                             env={**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
                                  "PYTHONPATH": str(Path(__file__).parent)})
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"schemathesis did not finish within 400 s:\n{(expired.stdout or '')[-4000:]}")
    print(run.stdout[-2500:])
    assert process.running, f"circle serve died under the fuzzer:\n{process.output()[-3000:]}"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.returncode == 0, f"schemathesis (seed {seed}) found problems:\n{run.stdout[-12000:]}\n{run.stderr[-2000:]}"
    assert not re.search(r"level=(error|critical)", process.output()), process.output()[-3000:]
