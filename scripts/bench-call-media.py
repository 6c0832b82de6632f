#!/usr/bin/env python3
"""Time from "accept" to the first decoded video frame on both sides, over N calls between two
Chromium pages (fake camera and microphone) on a real `circle serve` on loopback. Each page
polls getStats() every 10 ms and notes when inbound video `framesDecoded` first rises above 0;
times are wall-clock (performance.timeOrigin + now()) on one machine, so the two pages compare.

Usage: CIRCLE_BUILD_DIR=.build/release python3 scripts/bench-call-media.py [--calls 50]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "Web"))

from conftest import CHROMIUM, CHROMIUM_FLAGS, _serve  # noqa: E402
from test_ui import register, start_direct, unique  # noqa: E402

# Records the connections and, per page, when inbound video first decoded after `__armed`.
WATCH = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__connections = [];
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); window.__connections.push(this); }
  };
  window.__firstFrame = null;
  setInterval(async () => {
    if (window.__firstFrame !== null || !window.__armed) return;
    for (const pc of window.__connections) {
      if (pc.connectionState === 'closed') continue;
      const stats = await pc.getStats();
      let decoded = 0;
      stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') decoded += r.framesDecoded || 0; });
      if (decoded > 0 && window.__firstFrame === null) window.__firstFrame = performance.timeOrigin + performance.now();
    }
  }, 10);
})();
"""


CALLERS = 5

# The floor on this machine: the same media path with no signaling server, two peer connections
# in one page, from opening the fake camera to the first decoded frame.
FLOOR = """
async (runs) => {
  const times = [];
  for (let run = 0; run < runs; run++) {
    const start = performance.now();
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const a = new RTCPeerConnection(), b = new RTCPeerConnection();
    a.onicecandidate = (e) => { if (e.candidate) b.addIceCandidate(e.candidate); };
    b.onicecandidate = (e) => { if (e.candidate) a.addIceCandidate(e.candidate); };
    for (const track of stream.getTracks()) a.addTrack(track, stream);
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    for (;;) {
      let decoded = 0;
      (await b.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') decoded += r.framesDecoded || 0; });
      if (decoded > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    times.push(performance.now() - start);
    a.close(); b.close();
    for (const track of stream.getTracks()) track.stop();
  }
  return times;
}
"""


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * q + 0.999999) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright
    server = _serve("open")
    circle = next(server)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            def open_page():
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.add_init_script(WATCH)
                return page

            # One callee and several callers in turn: a member starts at most 10 calls a
            # minute (CallLimits.startsPerMinute), and each caller stays well under that.
            ben = open_page()
            ben_name = unique("ben")
            register(ben, circle.origin, ben_name, "Ben")
            callers = []
            for _ in range(CALLERS):
                caller = open_page()
                register(caller, circle.origin, unique("ana"), "Ana")
                start_direct(caller, ben_name, "Ben")
                callers.append(caller)
            caller_side, callee_side = [], []
            for index in range(args.calls):
                ana = callers[index % CALLERS]
                pages = [ana, ben]
                for page in pages:
                    page.evaluate("() => { window.__firstFrame = null; window.__armed = true; }")
                ana.get_by_role("button", name="Start a video call").click()
                accept = ben.get_by_role("alertdialog").get_by_role("button", name="Accept with video")
                accept.wait_for(timeout=20_000)
                accepted = ben.evaluate("""() => {
                  const at = performance.timeOrigin + performance.now();
                  document.querySelector('#incoming-call .call-accept').click();
                  return at;
                }""")
                deadline = time.time() + 20
                firsts = [None, None]
                while None in firsts and time.time() < deadline:
                    firsts = [page.evaluate("() => window.__firstFrame") for page in pages]
                    time.sleep(0.02)
                if None in firsts:
                    raise SystemExit(f"call {index + 1}: no frame within 20 s on {'the caller' if firsts[0] is None else 'the callee'}")
                caller_side.append(firsts[0] - accepted)
                callee_side.append(firsts[1] - accepted)
                for page in pages:
                    page.evaluate("() => { window.__armed = false; }")
                ana.get_by_role("button", name="Hang up").click()
                expect(ben.locator("#call-view")).to_have_count(0, timeout=20_000)
                expect(ana.locator("#call-view")).to_have_count(0, timeout=20_000)
                time.sleep(0.3)
            floor = ben.evaluate(FLOOR, min(args.calls, 20))
            both = [max(a, b) for a, b in zip(caller_side, callee_side)]
            for name, values in (("caller", caller_side), ("callee", callee_side), ("both sides", both)):
                print(f"accept to first decoded frame, {name}: {len(values)} calls, p50 {statistics.median(values):.0f} ms, "
                      f"p99 {percentile(values, 0.99):.0f} ms, max {max(values):.0f} ms (10 ms polling)")
            print(f"floor, two peer connections in one page (camera opened, offer, answer, ICE, DTLS, first frame; no server): "
                  f"{len(floor)} runs, p50 {statistics.median(floor):.0f} ms, p99 {percentile(floor, 0.99):.0f} ms, max {max(floor):.0f} ms")
            browser.close()
    finally:
        next(server, None)


if __name__ == "__main__":
    main()
