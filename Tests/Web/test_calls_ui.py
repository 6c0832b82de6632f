"""Calls between real browsers (Chromium's fake camera, microphone and screen) through a real
`circle serve`: ringing, answering, media frames decoded on both sides, mute, camera off and
screen sharing seen by the other side, hanging up, the call records in the conversation,
declined, busy and missed calls, an ICE restart mid-call, a reload that rejoins, and signaling
altered on its way refused by the client, which ends the call closed with the reason.
"""
import base64
import json
import re
import shutil
import socket
import subprocess
import time
import uuid
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import expect

from conftest import _serve, screenshot
from test_ui import DESKTOP, LIVE_TIMEOUT, check_accessibility, register, start_direct, unique

# Records every RTCPeerConnection the page makes, so a test can read its getStats() (the
# connections themselves are the browser's own; nothing about them is replaced).
RECORD_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__connections = [];
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); window.__connections.push(this); }
  };
})();
"""

# framesDecoded of the open connections' inbound video, summed.
FRAMES_DECODED = """async () => {
  let frames = 0;
  for (const pc of window.__connections) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    stats.forEach((report) => { if (report.type === 'inbound-rtp' && report.kind === 'video') frames += report.framesDecoded || 0; });
  }
  return frames;
}"""

# The inbound video's frame width on the open connections (0 before any frame).
FRAME_WIDTH = """async () => {
  let width = 0;
  for (const pc of window.__connections) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    stats.forEach((report) => { if (report.type === 'inbound-rtp' && report.kind === 'video') width = Math.max(width, report.frameWidth || 0); });
  }
  return width;
}"""


def call_page(new_page, origin):
    page, watch = new_page(origin, **DESKTOP)
    page.add_init_script(RECORD_CONNECTIONS)
    return page, watch


def frames(page):
    return page.evaluate(FRAMES_DECODED)


def wait_for_frames_growing(page, within_s=10.0, more_than=None):
    """Waits until inbound video frames are decoded and growing; returns the count."""
    start = frames(page) if more_than is None else more_than
    deadline = time.time() + within_s
    while time.time() < deadline:
        now = frames(page)
        if now > start + 5:
            return now
        time.sleep(0.25)
    raise AssertionError(f"frames did not grow within {within_s} s (from {start} to {frames(page)})")


def pair(new_page, origin, names=("ana", "ben")):
    """Two members in a direct conversation, each on their own page (the caller's chat open)."""
    ben, ben_watch = call_page(new_page, origin)
    ana, ana_watch = call_page(new_page, origin)
    ana_name, ben_name = unique(names[0]), unique(names[1])
    register(ben, origin, ben_name, "Ben")
    register(ana, origin, ana_name, "Ana")
    start_direct(ana, ben_name, "Ben")
    return (ana, ana_watch, ana_name), (ben, ben_watch, ben_name)


def incoming(page):
    return page.get_by_role("alertdialog")


def call_view(page):
    return page.locator("#call-view")


def tile(page):
    return call_view(page).locator(".call-tile")


def start_call(page, media="video"):
    page.get_by_role("button", name="Start a video call" if media == "video" else "Start a voice call").click()
    expect(call_view(page)).to_be_visible()


def test_a_video_call_with_mute_camera_screen_share_and_hang_up(new_page, circle):
    (ana, ana_watch, _), (ben, ben_watch, _) = pair(new_page, circle.origin)
    conflicts = watch_conflicts(ana, ben)
    start_call(ana)
    expect(call_view(ana).get_by_role("status")).to_have_text("Ringing…")
    ring = incoming(ben)
    expect(ring).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(ring.get_by_role("heading")).to_have_text("Ana")
    check_accessibility(ben, "incoming call")
    ring.get_by_role("button", name="Accept with video").click()
    expect(ring).to_have_count(0)

    # Both sides decode the other's video within 10 s of the answer.
    wait_for_frames_growing(ana)
    wait_for_frames_growing(ben)
    expect(call_view(ana).get_by_role("status")).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(tile(ana).locator(".call-quality")).to_have_text(re.compile(r"^Connection (good|fair|poor)"), timeout=LIVE_TIMEOUT)
    expect(call_view(ana).locator(".call-security")).to_contain_text("not verified")
    check_accessibility(ana, "in a call")
    screenshot(ana, "call-video")

    # Mute and camera off reach the other side within a second.
    ben.get_by_role("button", name="Mute microphone").click()
    expect(tile(ana).locator('[data-badge="muted"]')).to_be_visible(timeout=1_500)
    ben.get_by_role("button", name="Turn camera off").click()
    expect(tile(ana).locator('[data-badge="camera-off"]')).to_be_visible(timeout=1_500)
    expect(ben.get_by_role("button", name="Turn camera on")).to_have_attribute("aria-pressed", "true")
    ben.get_by_role("button", name="Unmute microphone").click()
    ben.get_by_role("button", name="Turn camera on").click()
    expect(tile(ana).locator(".call-badge")).to_have_count(0, timeout=1_500)

    # Screen sharing replaces the camera: the other side is told and keeps decoding, now the screen.
    camera_width = ana.evaluate(FRAME_WIDTH)
    camera_label = ben.evaluate("() => window.__connections.flatMap((pc) => pc.getSenders()).find((s) => s.track && s.track.kind === 'video').track.label")
    ben.get_by_role("button", name="Share screen").click()
    expect(tile(ana).locator('[data-badge="sharing"]')).to_be_visible(timeout=LIVE_TIMEOUT)
    wait_for_frames_growing(ana)
    deadline = time.time() + 10
    while ana.evaluate(FRAME_WIDTH) == camera_width and time.time() < deadline:
        time.sleep(0.25)
    assert ana.evaluate(FRAME_WIDTH) != camera_width, "the screen's frames have their own size"
    # Stopping it from the browser's own bar (which ends the track: its `ended` event) brings
    # the camera back.
    ended = ben.evaluate("""(camera) => {
      let ended = 0;
      for (const pc of window.__connections) for (const sender of pc.getSenders()) {
        if (sender.track && sender.track.kind === 'video' && sender.track.label !== camera) { sender.track.dispatchEvent(new Event('ended')); ended++; }
      }
      return ended;
    }""", camera_label)
    assert ended == 1
    expect(ben.get_by_role("button", name="Share screen")).to_have_attribute("aria-pressed", "false")
    expect(tile(ana).locator('[data-badge="sharing"]')).to_have_count(0, timeout=LIVE_TIMEOUT)
    wait_for_frames_growing(ana)

    # Hanging up ends the call on both sides; the conversation shows its record.
    ana.get_by_role("button", name="Hang up").click()
    expect(call_view(ana)).to_have_count(0)
    expect(call_view(ben)).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(ana.locator(".message-call")).to_contain_text(re.compile(r"Video call, \d+ (s|min)"), timeout=LIVE_TIMEOUT)
    assert_only_late_heartbeats(conflicts, ana_watch, ben_watch)


@pytest.fixture(scope="module")
def quick_ring():
    """A server whose calls ring for 4 s (then they are missed)."""
    yield from _serve("open", ["--calls-ring-timeout", "4s"])


def watch_conflicts(*pages):
    """The 409 answers these pages get from now on (a list filled as they come)."""
    conflicts = []
    for page in pages:
        page.on("response", lambda response: conflicts.append(response.url) if response.status == 409 else None)
    return conflicts


def assert_only_late_heartbeats(conflicts, *watches, also=()):
    """A heartbeat may cross the end of its call (409: the call has ended); nothing else may fail
    (but what `also` names: URL endings). Chromium logs those as console errors, which are then
    expected."""
    assert all(url.endswith(("/heartbeat", *also)) for url in conflicts), conflicts
    for watch in watches:
        watch.console_errors[:] = [e for e in watch.console_errors if "status of 409" not in e]
        watch.assert_clean()


def test_declined_missed_and_busy_calls_say_so_and_leave_records(new_page, quick_ring):
    origin = quick_ring.origin
    (ana, ana_watch, _), (ben, ben_watch, ben_name) = pair(new_page, origin)
    conflicts = watch_conflicts(ana, ben)

    # Declined: Ben says no; Ana is told, and both see the record.
    start_call(ana, "audio")
    incoming(ben).get_by_role("button", name="Decline").click()
    expect(call_view(ana)).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(ana.locator(".toast").filter(has_text="The call was declined.")).to_be_visible()
    expect(ana.locator(".message-call").last).to_contain_text("Voice call, declined", timeout=LIVE_TIMEOUT)

    # Missed: nobody answers within the ring time; Ben's page stops ringing and shows the miss.
    ben.get_by_role("link", name=re.compile("^Ana")).first.click()
    start_call(ana, "video")
    expect(incoming(ben)).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(incoming(ben)).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(ana.locator(".toast").filter(has_text="No answer.")).to_be_visible()
    expect(ben.locator('.message-call[data-missed="true"]').last).to_contain_text("Missed video call", timeout=LIVE_TIMEOUT)
    expect(ana.locator(".message-call").last).to_contain_text("Video call, no answer")

    # Busy: Ben is in a call with Cyd; Ana's call ends at once as busy.
    cyd, cyd_watch = call_page(new_page, origin)
    register(cyd, origin, unique("cyd"), "Cyd")
    start_direct(cyd, ben_name, "Ben")
    conflicts += watch_conflicts(cyd)
    start_call(cyd, "audio")
    incoming(ben).get_by_role("button", name="Accept").click()
    expect(call_view(ben)).to_be_visible()
    ana.get_by_role("button", name="Start a voice call").click()
    expect(ana.locator(".toast").filter(has_text="Busy: they are in another call.")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(ana.locator(".message-call").last).to_contain_text("Voice call, busy", timeout=LIVE_TIMEOUT)
    expect(incoming(ben)).to_have_count(0)
    ben.get_by_role("button", name="Hang up").click()
    expect(call_view(cyd)).to_have_count(0, timeout=LIVE_TIMEOUT)
    # A candidate of Ben and Cyd's call may be in flight when it is hung up (409: ended).
    assert_only_late_heartbeats(conflicts, ana_watch, ben_watch, cyd_watch, also=("/signal",))


def test_an_ice_restart_mid_call_keeps_frames_coming(new_page, circle):
    (ana, _, _), (ben, _, _) = pair(new_page, circle.origin)
    start_call(ana)
    incoming(ben).get_by_role("button", name="Accept with video").click()
    wait_for_frames_growing(ana)
    wait_for_frames_growing(ben)
    # Either side may restart ICE (a network change); fresh candidates flow through signaling.
    before = ben.evaluate("() => window.__connections.filter((pc) => pc.connectionState !== 'closed').length")
    ben.evaluate("() => { for (const pc of window.__connections) if (pc.connectionState !== 'closed') pc.restartIce(); }")
    time.sleep(1)
    wait_for_frames_growing(ana)
    wait_for_frames_growing(ben)
    assert ben.evaluate("() => window.__connections.filter((pc) => pc.connectionState !== 'closed').length") == before, "the same connection, restarted"
    ana.evaluate("() => { for (const pc of window.__connections) if (pc.connectionState !== 'closed') pc.restartIce(); }")
    time.sleep(1)
    wait_for_frames_growing(ben)
    ana.get_by_role("button", name="Hang up").click()


def test_a_reload_rejoins_the_call_within_ten_seconds(new_page, circle):
    (ana, _, _), (ben, _, _) = pair(new_page, circle.origin)
    start_call(ana)
    incoming(ben).get_by_role("button", name="Accept with video").click()
    wait_for_frames_growing(ana)
    # Every text Ana's call status shows from now on.
    ana.evaluate("""() => {
      window.__statuses = [];
      const status = document.querySelector('#call-view .call-status');
      new MutationObserver(() => window.__statuses.push(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
    }""")
    started = time.time()
    ben.reload()
    # Ben's page comes back in the call; both decode again; the other side said it was
    # reconnecting meanwhile.
    try:
        expect(call_view(ben)).to_be_visible(timeout=10_000)
    except AssertionError as error:
        # What Ana's page saw says why (the call ended, failed, or was never rejoined).
        seen = {
            "ana statuses": ana.evaluate("() => window.__statuses"),
            "ana toasts": ana.locator(".toast").all_inner_texts(),
            "ana call records": ana.locator(".message-call").all_inner_texts(),
            "ben toasts": ben.locator(".toast").all_inner_texts(),
        }
        raise AssertionError(f"Ben's page did not come back in the call: {seen}") from error
    wait_for_frames_growing(ben, within_s=max(1.0, 10 - (time.time() - started)) + 5)
    wait_for_frames_growing(ana)
    assert time.time() - started < 15
    assert "Reconnecting…" in ana.evaluate("() => window.__statuses")
    expect(call_view(ana).get_by_role("status")).to_have_text(re.compile(r"^\d+:\d\d$"))
    ben.get_by_role("button", name="Hang up").click()
    expect(call_view(ana)).to_have_count(0, timeout=LIVE_TIMEOUT)


def test_signals_the_server_could_not_take_are_sent_again(new_page, circle):
    """A busy or restarting signaling service (503, 429, a dropped connection) costs a signal a
    retry, not the call: three of the first signals are refused once each, and the call connects
    with media both ways."""
    (ana, ana_watch, _), (ben, ben_watch, _) = pair(new_page, circle.origin)
    conflicts = watch_conflicts(ana, ben)
    answers = [503, 429, "reset"]
    seen = {"requests": 0, "refused": 0}

    def refuse_some(route):
        index = seen["requests"]
        seen["requests"] += 1
        if index % 2 == 1 or seen["refused"] == len(answers):
            route.continue_()
            return
        answer = answers[seen["refused"]]
        seen["refused"] += 1
        if answer == "reset":
            route.abort("connectionreset")
            return
        problem = {"type": f"urn:circle:problem:http-{answer}", "title": "Try again", "status": answer, "detail": "Send it again."}
        route.fulfill(status=answer, headers={"Retry-After": "1"} if answer == 429 else {},
                      content_type="application/problem+json", body=json.dumps(problem))

    for page in (ana, ben):
        page.route(re.compile(r"/api/v1/calls/[^/]+/signal$"), refuse_some)
    start_call(ana)
    incoming(ben).get_by_role("button", name="Accept with video").click()
    wait_for_frames_growing(ana, within_s=20)
    wait_for_frames_growing(ben, within_s=20)
    assert seen["refused"] == len(answers)
    expect(call_view(ana).get_by_role("status")).to_have_text(re.compile(r"^\d+:\d\d$"))
    ana.get_by_role("button", name="Hang up").click()
    expect(call_view(ben)).to_have_count(0, timeout=LIVE_TIMEOUT)
    for watch in (ana_watch, ben_watch):
        watch.console_errors[:] = [e for e in watch.console_errors if not re.search(r"status of (503|429)|ERR_CONNECTION_RESET", e)]
    # Candidates still on their way when Ana hung up are refused (409: the call has ended).
    assert_only_late_heartbeats(conflicts, ana_watch, ben_watch, also=("/signal",))


def tamper(page, how):
    """Alters the first signal this page sends, on its way to the server (as a server altering
    what it relays would): `flip` a byte of its sealed part, or `resign` it with another Ed25519
    key over the right address. Returns a counter of signals altered."""
    mallory = Ed25519PrivateKey.generate()
    done = {"count": 0}

    def handle(route):
        if done["count"] > 0:
            route.continue_()
            return
        done["count"] += 1
        body = json.loads(route.request.post_data)
        wire = bytearray(b64(body["payload"]))
        if how == "flip":
            wire[60] ^= 1
        else:
            call_id = re.search(r"/calls/([^/]+)/signal", route.request.url).group(1)
            sender = who_is(route.request, call_id, body["fromDevice"])
            seq, enc, ciphertext = bytes(wire[1:9]), bytes(wire[9:41]), bytes(wire[41:-64])
            info = (b"circle/v1/call-signal" + b64(call_id) + sender.encode() + b64(body["fromDevice"]) + body["toUser"].encode()
                    + b64(body["toDevice"]) + seq)
            wire[-64:] = mallory.sign(b"circle/v1/call-sig" + info + enc + ciphertext)
        body["payload"] = base64.urlsafe_b64encode(bytes(wire)).decode().rstrip("=")
        route.continue_(post_data=json.dumps(body))

    page.route(re.compile(r"/api/v1/calls/[^/]+/signal$"), handle)
    return done


def b64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def who_is(request, call_id, device):
    """The member whose device this is in the call (read with the page's own token)."""
    origin = re.match(r"https?://[^/]+", request.url).group(0)
    asked = urllib.request.Request(f"{origin}/api/v1/calls/{call_id}", headers={"authorization": request.headers["authorization"]})
    with urllib.request.urlopen(asked, timeout=10) as answer:
        view = json.loads(answer.read())
    return next(p["userId"] for p in view["participants"] if p.get("deviceId") == device)


@pytest.mark.parametrize("how", ["flip", "resign"])
def test_signaling_altered_on_its_way_is_refused_and_the_call_fails_closed(new_page, circle, how):
    (ana, ana_watch, _), (ben, ben_watch, _) = pair(new_page, circle.origin)
    conflicts = watch_conflicts(ana, ben)
    start_call(ana)
    # Ben's first signal (his offer, as the one who answers) is altered after it leaves his page.
    done = tamper(ben, how)
    incoming(ben).get_by_role("button", name="Accept with video").click()
    expect(ana.locator(".toast").filter(has_text="its signaling could not be verified")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(call_view(ana)).to_have_count(0)
    expect(call_view(ben)).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(ben.locator(".toast").filter(has_text="The call failed.")).to_be_visible()
    assert done["count"] == 1
    assert frames(ana) == 0, "no media flowed"
    expect(ana.locator(".message-call").last).to_contain_text("Video call, failed", timeout=LIVE_TIMEOUT)
    # Ben's candidates still on their way when the call ended closed are refused (409).
    assert_only_late_heartbeats(conflicts, ana_watch, ben_watch, also=("/signal",))


@pytest.mark.parametrize("error, text", [
    ("NotAllowedError", "Access to the camera and microphone was denied"),
    ("NotFoundError", "No camera was found. Connect one, or start a voice call."),
])
def test_a_denied_permission_or_a_missing_camera_is_said_clearly(new_page, circle, error, text):
    (ana, ana_watch, _), (ben, _, _) = pair(new_page, circle.origin)
    # The browser's answer to the camera request, as a user who said no (or has no camera) gets it.
    ana.evaluate("""(name) => {
      navigator.mediaDevices.getUserMedia = async () => { throw new DOMException('refused', name); };
    }""", error)
    ana.get_by_role("button", name="Start a video call").click()
    expect(ana.get_by_role("alert").filter(has_text=text)).to_be_visible()
    expect(call_view(ana)).to_have_count(0)
    expect(incoming(ben)).to_have_count(0)
    ana_watch.assert_clean()


def test_call_controls_work_from_the_keyboard(new_page, circle):
    (ana, _, _), (ben, _, _) = pair(new_page, circle.origin)
    ana.get_by_role("button", name="Start a voice call").focus()
    ana.keyboard.press("Enter")
    expect(call_view(ana)).to_be_visible()
    expect(incoming(ben).get_by_role("button", name="Accept")).to_be_focused(timeout=LIVE_TIMEOUT)
    ben.keyboard.press("Enter")
    expect(call_view(ben)).to_be_visible()
    # The hang-up button has focus when the call view opens; Shift+Tab reaches the others.
    expect(ben.get_by_role("button", name="Hang up")).to_be_focused()
    mute = ben.get_by_role("button", name="Mute microphone")
    for _ in range(4):
        ben.keyboard.press("Shift+Tab")
        if mute.evaluate("(button) => button === document.activeElement"):
            break
    expect(mute).to_be_focused()
    ben.keyboard.press("Space")
    expect(ben.get_by_role("button", name="Unmute microphone")).to_have_attribute("aria-pressed", "true")
    expect(tile(ana).locator('[data-badge="muted"]')).to_be_visible(timeout=LIVE_TIMEOUT)
    ben.get_by_role("button", name="Hang up").focus()
    ben.keyboard.press("Enter")
    expect(call_view(ana)).to_have_count(0, timeout=LIVE_TIMEOUT)


TURN_SECRET = "web-test-turn-secret-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    """Debian's coturn on loopback with the TURN REST API secret (loopback peers allowed: both
    browsers are on this machine)."""
    folder = tmp_path_factory.mktemp("coturn")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    relay = 51000 + (port % 1000) * 10
    log = open(folder / "coturn.log", "ab")
    process = subprocess.Popen(["timeout", "-k", "5", "600", shutil.which("turnserver") or "turnserver", "-n", "--use-auth-secret",
                                f"--static-auth-secret={TURN_SECRET}", "--realm=circle.test", "--no-tls", "--no-dtls", "--no-cli",
                                "--fingerprint", "--allow-loopback-peers", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
                                f"--listening-port={port}", f"--min-port={relay}", f"--max-port={relay + 9}",
                                f"--pidfile={folder / 'coturn.pid'}", f"--db={folder / 'coturn.db'}", "--log-file=stdout", "--simple-log"],
                               stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1)
    assert process.poll() is None, (folder / "coturn.log").read_text()
    yield port
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def circle_turn(coturn):
    yield from _serve("open", ["--turn-secret", TURN_SECRET, "--turn-urls", f"turn:127.0.0.1:{coturn}?transport=udp"])


# The selected candidate pair's local candidate type on each open connection.
SELECTED_TYPES = """async () => {
  const types = [];
  for (const pc of window.__connections) {
    if (pc.connectionState !== 'connected') continue;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
    if (pair) types.push(stats.get(pair.localCandidateId).candidateType);
  }
  return types;
}"""


def test_a_call_through_the_turn_relay_only(new_page, circle_turn):
    """Both members hide their address (Settings: relay only): the call connects through coturn
    with the credentials the server hands out, and carries frames."""
    (ana, ana_watch, _), (ben, ben_watch, _) = pair(new_page, circle_turn.origin)
    for page in (ana, ben):
        page.goto(circle_turn.origin + "/settings")
        page.get_by_label("Hide my network address in calls").check()
    ana.go_back()
    ana.get_by_role("heading", level=1, name="Ben").wait_for()
    start_call(ana)
    incoming(ben).get_by_role("button", name="Accept with video").click()
    wait_for_frames_growing(ana)
    wait_for_frames_growing(ben)
    assert ana.evaluate(SELECTED_TYPES) == ["relay"]
    assert ben.evaluate(SELECTED_TYPES) == ["relay"]
    expect(tile(ana).locator(".call-quality")).to_contain_text("via relay", timeout=LIVE_TIMEOUT)
    ana.get_by_role("button", name="Hang up").click()
    expect(call_view(ben)).to_have_count(0, timeout=LIVE_TIMEOUT)
