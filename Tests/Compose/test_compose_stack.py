"""compose.yaml, started for real under podman with two replicas of every Circle service, driven
through nginx as a member would (scripts/compose-test.sh builds the images and runs this).

- every replica answers /readyz on the project's network, and nginx, PostgreSQL, Redis and coturn
  run;
- two members invited with `circle invite create` in the gateway's container register in Chromium,
  talk, and one uploads a file and opens its share link in a fresh browser: the same bytes;
- messaging scales to 3 while a member sends, the third replica serves some of the sends, then it
  is stopped as compose scales back to 2; the other member gets every message once.
"""
import re
import threading
import time
import urllib.request

from playwright.sync_api import expect

from conftest import screenshot
from stack import PORTS, PROJECT
from test_ui import DESKTOP, LIVE_TIMEOUT, messages, open_conversation_with, register, send, start_direct, unique
from test_vault_ui import MB, create_link, download_shared, open_share, open_vault, upload_new_file

LINK = re.compile(r"https?://\S+/invite/\S+")


def invite(circle, admin=False) -> str:
    """An invite link, made as an operator does: `circle invite create` in a gateway container."""
    gateway = circle.containers("gateway")[0]
    out = circle.exec(gateway, "circle", "invite", "create", *(["--admin"] if admin else []))
    link = LINK.search(out)
    assert link, out
    assert link.group(0).startswith(circle.origin + "/"), out
    return link.group(0)[len(circle.origin):]


def member(circle, new_page, display, admin=False):
    page, watch = new_page(circle.origin, **DESKTOP)
    name = unique(display.split()[0].lower())
    register(page, circle.origin, name, display, path=invite(circle, admin))
    return page, watch, name


def test_every_service_runs_two_ready_replicas_behind_nginx(circle):
    for service in PORTS:
        replicas = circle.containers(service)
        assert len(replicas) == 2, (service, replicas)
        addresses = {circle.address(name) for name in replicas}
        assert len(addresses) == 2, (service, addresses)
        for name in replicas:
            with urllib.request.urlopen(circle.replica_url(name, service) + "/readyz", timeout=5) as answer:
                assert answer.status == 200, name
    for service in ("postgres", "redis", "nginx", "coturn"):
        assert len(circle.containers(service)) == 1, service
    # The migration ran once and finished.
    assert circle.podman("inspect", "-f", "{{.State.ExitCode}}", f"{PROJECT}_migrate_1").strip() == "0"
    # Through nginx: the gateway's API and the web client, and no service's metrics.
    with urllib.request.urlopen(circle.origin + "/api/v1/server", timeout=5) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(circle.origin + "/", timeout=5) as answer:
        assert b"<html" in answer.read(4096).lower()
    try:
        urllib.request.urlopen(circle.origin + "/metrics", timeout=5)
        raise AssertionError("nginx served /metrics")
    except urllib.error.HTTPError as error:
        assert error.code == 404


def test_members_talk_upload_and_share_a_link_through_nginx(circle, new_page, tmp_path):
    ana, ana_watch, _ = member(circle, new_page, "Ana Admin", admin=True)
    ben, ben_watch, ben_name = member(circle, new_page, "Ben Baker")

    start_direct(ana, ben_name, "Ben Baker")
    send(ana, "Hello Ben, through two gateways")
    open_conversation_with(ben, "Ana Admin")
    expect(messages(ben).get_by_text("Hello Ben, through two gateways")).to_be_visible(timeout=LIVE_TIMEOUT)
    send(ben, "Hi Ana, heard you")
    expect(messages(ana).get_by_text("Hi Ana, heard you")).to_be_visible(timeout=LIVE_TIMEOUT)

    # A file through the vault replicas (tus, encrypted in the page), then its share link in a
    # browser with no account: the same bytes come back.
    open_vault(ana)
    _, original_sha256 = upload_new_file(ana, tmp_path, "compose report.bin", 3 * MB)
    _, url = create_link(ana, "compose report.bin")
    assert url.startswith(circle.origin + "/s/"), url
    reader, reader_watch = open_share(new_page, circle, url)
    name, digest = download_shared(reader, "compose report.bin", tmp_path)
    assert name == "compose report.bin"
    assert digest == original_sha256
    for watch in (ana_watch, ben_watch, reader_watch):
        watch.assert_clean()


def served_conversation_requests(circle, container) -> int:
    """How many /api/v1/conversations requests one messaging replica answered (its metrics)."""
    request = urllib.request.Request(circle.replica_url(container, "messaging") + "/metrics",
                                     headers={"Authorization": "Bearer " + circle.env["CIRCLE_TEST_METRICS_TOKEN"]})
    with urllib.request.urlopen(request, timeout=5) as answer:
        text = answer.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("hb_requests") and "conversations" in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_messaging_scales_to_three_and_back_while_a_member_sends(circle, new_page):
    ana, ana_watch, _ = member(circle, new_page, "Ana Scaler")
    ben, ben_watch, ben_name = member(circle, new_page, "Ben Reader")
    start_direct(ana, ben_name, "Ben Reader")
    send(ana, "before scaling")
    open_conversation_with(ben, "Ana Scaler")
    expect(messages(ben).get_by_text("before scaling")).to_be_visible(timeout=LIVE_TIMEOUT)

    third = f"{PROJECT}_messaging_3"
    sent = []
    phase = {"step": "scaling up", "error": None, "third_served": 0}

    def scale():
        try:
            circle.scale("messaging", 3)
            circle.wait_ready(third, "messaging")
            phase["step"] = "three replicas"
            up_at = len(sent)
            deadline = time.time() + 90
            # nginx re-resolves the service name every 5 s; keep three replicas until the third
            # has answered some of the sends (or the time runs out, which the test reports).
            while time.time() < deadline and (len(sent) - up_at < 10 or served_conversation_requests(circle, third) < 3):
                time.sleep(0.5)
            phase["third_served"] = served_conversation_requests(circle, third)
            phase["step"] = "scaling down"
            circle.scale("messaging", 2)
            phase["step"] = "two replicas"
        except Exception as error:  # reported by the main thread
            phase["error"] = error
            phase["step"] = "failed"

    scaler = threading.Thread(target=scale, name="scale-messaging")
    scaler.start()
    after_down, slowest = 0, 0.0
    deadline = time.time() + 240
    while time.time() < deadline and after_down < 10 and phase["step"] != "failed":
        text = f"scaled message {len(sent) + 1} ({phase['step']})"
        started = time.time()
        send(ana, text)
        # As a person does: the next one once this one has left the box and shows as sent.
        mine = messages(ana).get_by_role("listitem").filter(has_text=text)
        expect(mine).to_have_count(1, timeout=LIVE_TIMEOUT)
        expect(mine).not_to_contain_text("Sending…", timeout=LIVE_TIMEOUT)
        slowest = max(slowest, time.time() - started)
        sent.append(text)
        if phase["step"] == "two replicas":
            after_down += 1
        time.sleep(0.4)
    scaler.join(timeout=120)
    print(f"{len(sent)} messages sent while scaling, the slowest acknowledged in {slowest:.2f} s")
    assert phase["error"] is None, phase["error"]
    assert phase["step"] == "two replicas", phase
    assert phase["third_served"] >= 3, f"the third messaging replica served {phase['third_served']} requests"
    assert len(circle.containers("messaging")) == 2
    assert any("(three replicas)" in text for text in sent) and any("(two replicas)" in text for text in sent)

    def shown(page):
        texts = messages(page).get_by_role("listitem").all_inner_texts()
        return [int(m.group(1)) for m in (re.search(r"scaled message (\d+) \(", t) for t in texts) if m]

    # Every message was accepted (none left sending) and reached Ben once, in order.
    try:
        expect(messages(ana).get_by_text("Sending…")).to_have_count(0, timeout=LIVE_TIMEOUT)
        expect(messages(ben).get_by_text(sent[-1], exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)
    finally:
        screenshot(ana, "compose-scale-sender")
        screenshot(ben, "compose-scale-reader")
        print("sender shows", shown(ana), "reader shows", shown(ben))
    expected = list(range(1, len(sent) + 1))
    assert shown(ana) == expected, f"the sender shows {shown(ana)}"
    assert shown(ben) == expected, f"the reader shows {shown(ben)}"
    for watch in (ana_watch, ben_watch):
        watch.assert_clean()
