"""The browser's headless client (Web/js/client/) against a real `circle serve`.

Each page opens a static file of the server (no UI runs), imports `/js/client/index.js` and
drives a `CircleClient` kept on `window.circle`; what it dispatched is logged on `window.log`.
Users are new in every test (unique names), so the tests share one server.
"""
import base64
import hashlib
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from conftest import CircleServe

PASSWORD = "correct horse battery staple"
# A same-origin static file of the server as the page: no script of its own runs there. Chromium
# asks for /favicon.ico, which the server does not have; the tests answer it, so a 404 in the
# console means something else.
BLANK = "/js/client/api.js"

SETUP = """
    const { CircleClient } = await import('/js/client/index.js');
    if (!window.circle) {
      window.log = { messages: [], conversations: 0, alarms: [], signedOut: [], connection: [], frames: [] };
      window.circle = await CircleClient.open();
      const c = window.circle;
      c.addEventListener('messages', (e) => log.messages.push(e.detail.convId));
      c.addEventListener('conversations', () => { log.conversations += 1; });
      c.addEventListener('alarm', (e) => log.alarms.push(e.detail));
      c.addEventListener('signed-out', (e) => log.signedOut.push(e.detail.reason));
      c.addEventListener('connection', (e) => log.connection.push(e.detail.state));
      const handle = c.handleFrame.bind(c);
      c.handleFrame = (frame) => { log.frames.push(frame.type); return handle(frame); };
    }
    const circle = window.circle;
"""


@pytest.fixture(scope="module")
def circle():
    """A server of this module's own (open registration), so its users start from nothing."""
    import tempfile
    from pathlib import Path
    server = CircleServe(Path(tempfile.mkdtemp(prefix="circle-web-client-")), "open").start()
    try:
        yield server
    finally:
        server.stop()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def wait_until(check, timeout=20.0, interval=0.1, what="condition"):
    """Polls `check()` until it returns something truthy; returns it."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


class Browser:
    """One browser context with one CircleClient."""

    def __init__(self, new_page, circle, name=None):
        self.circle = circle
        self.page, self.watch = new_page(circle.origin)
        self.page.route(circle.origin + "/favicon.ico", lambda route: route.fulfill(status=204, body=""))
        self.page.goto(circle.origin + BLANK)
        self.username = name or unique("u")
        self.display = self.username.capitalize()
        self.run("")

    def run(self, body, arg=None):
        """Runs `body` (async JS with `circle` and `a` = arg in scope) and returns its value."""
        return self.page.evaluate("async (a) => {" + SETUP + body + "}", arg)

    def error_of(self, body, arg=None):
        """Runs `body`, expecting it to throw: returns {name, code, status, slug, message}."""
        return self.run(
            "try { " + body + " } catch (e) { return { name: e.name, code: e.code ?? null, status: e.status ?? null,"
            " slug: e.slug ?? null, message: String(e.message) }; } return null;", arg)

    def register(self):
        stages = self.run("""
            const stages = [];
            const { recoveryKey } = await circle.register({ username: a.username, displayName: a.display, password: a.password,
                                                           deviceLabel: 'test', onStage: (s) => stages.push(s) });
            window.recoveryKey = recoveryKey;
            return stages;
        """, {"username": self.username, "display": self.display, "password": PASSWORD})
        assert "deriving" in stages
        self.user_id = self.run("return circle.me.userId;")
        return self

    def login(self, username, password=PASSWORD):
        self.username = username
        self.run("await circle.login({ username: a.username, password: a.password, deviceLabel: 'second' });",
                 {"username": username, "password": password})
        self.user_id = self.run("return circle.me.userId;")
        return self

    def wait_online(self):
        wait_until(lambda: self.run("return circle.connection;") == "online", what=f"{self.username} online")
        return self

    def messages(self, conv):
        return self.run("return await circle.messages(a);", conv)

    def cached(self, conv):
        """The messages as the client holds them, without asking the server (what live events brought)."""
        return self.run("return circle.messageViews(a, circle.account);", conv)

    def send(self, conv, text):
        return self.run("return await circle.send(a.conv, a.text);", {"conv": conv, "text": text})

    def wait_live_text(self, conv, text, timeout=20.0):
        """Waits until a message with `text` arrived through the socket (no listing asked)."""
        return wait_until(lambda: next((m for m in self.cached(conv) if m["text"] == text), None), timeout=timeout,
                          what=f"{self.username} to receive {text!r}")

    def message_log(self):
        return self.run("return log.messages.slice();")


def direct_pair(new_page, circle):
    alice = Browser(new_page, circle, unique("alice")).register().wait_online()
    bob = Browser(new_page, circle, unique("bob")).register().wait_online()
    conv = alice.run("return await circle.createDirect(a);", bob.username)
    return alice, bob, conv


def test_two_browsers_talk_live_with_edits_deletes_and_receipts(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    assert len(conv) == 43

    # Bob learns of the conversation live, with Alice as a verified-on-first-use member.
    wait_until(lambda: any(c["id"] == conv for c in bob.run("return await circle.conversations();")), what="bob lists the conversation")
    listed = next(c for c in bob.run("return await circle.conversations();") if c["id"] == conv)
    assert listed["kind"] == "direct" and listed["title"] == alice.display
    assert {m["username"]: m["role"] for m in listed["members"]} == {alice.username: "admin", bob.username: "admin"}
    assert {m["username"]: m["trust"] for m in listed["members"]}[alice.username] == "unverified"
    assert listed["settings"] == {"disappearSeconds": 0, "readReceipts": True, "retentionDays": 0}

    # Both ways, live.
    first = alice.send(conv, "hello bob")
    seen = bob.wait_live_text(conv, "hello bob")
    assert seen["mine"] is False and seen["sender"] == {"userId": alice.user_id, "displayName": alice.display}
    assert seen["id"] == first
    bob.send(conv, "hi alice")
    alice.wait_live_text(conv, "hi alice")
    assert [m["text"] for m in alice.messages(conv)] == ["hello bob", "hi alice"]
    assert [m["mine"] for m in alice.messages(conv)] == [True, False]

    # Edit by the author, seen live by the other side.
    alice.run("await circle.edit(a.conv, a.id, 'hello bob (edited)');", {"conv": conv, "id": first})
    edited = bob.wait_live_text(conv, "hello bob (edited)")
    assert edited["edited"] is True and edited["id"] == first

    # Only the author edits or deletes.
    refused = bob.error_of("await circle.edit(a.conv, a.id, 'not mine');", {"conv": conv, "id": first})
    assert refused and refused["name"] == "RefusedError", refused

    # Delete by the author.
    second = alice.send(conv, "to be deleted")
    bob.wait_live_text(conv, "to be deleted")
    alice.run("await circle.deleteMessage(a.conv, a.id);", {"conv": conv, "id": second})
    wait_until(lambda: next(m for m in bob.cached(conv) if m["id"] == second)["deleted"], what="bob sees the delete")
    gone = next(m for m in bob.messages(conv) if m["id"] == second)
    assert gone["text"] == "" and gone["deleted"] is True
    assert next(m for m in alice.messages(conv) if m["id"] == second)["deleted"] is True

    # Read receipts: Bob reads (his unread count drops to 0), Alice sees it.
    assert next(c for c in bob.run("return await circle.conversations();") if c["id"] == conv)["unread"] >= 1
    bob.run("await circle.messages(a); await circle.markRead(a);", conv)
    assert next(c for c in bob.run("return await circle.conversations();") if c["id"] == conv)["unread"] == 0
    mine = wait_until(lambda: next((m for m in alice.cached(conv) if m["id"] == first and m["status"] == "read"), None),
                      what="alice sees bob's receipt")
    assert mine["readBy"] == [bob.display]

    # Receipts off for Bob: his reads no longer reach Alice, and he sees none of hers.
    bob.run("await circle.setMyReceipts(a, false);", conv)
    third = alice.send(conv, "read quietly")
    bob.wait_live_text(conv, "read quietly")
    bob.run("await circle.markRead(a);", conv)
    alice.run("await circle.markRead(a);", conv)
    time.sleep(1.0)
    assert next(m for m in alice.messages(conv) if m["id"] == third)["status"] == "sent"
    assert all(m["readBy"] == [] for m in bob.messages(conv))

    # Safety numbers agree on both sides; verifying marks the contact.
    mine_number = alice.run("return await circle.safetyNumber(a);", bob.user_id)
    theirs_number = bob.run("return await circle.safetyNumber(a);", alice.user_id)
    assert mine_number["digits"] == theirs_number["digits"]
    assert len(mine_number["digits"].split(" ")) == 12 and mine_number["digits"].replace(" ", "").isdigit()
    alice.run("await circle.verify(a);", bob.user_id)
    listed = next(c for c in alice.run("return await circle.conversations();") if c["id"] == conv)
    assert {m["username"]: m["trust"] for m in listed["members"]}[bob.username] == "verified"

    assert alice.run("return log.alarms;") == [] and bob.run("return log.alarms;") == []
    alice.watch.assert_clean()
    bob.watch.assert_clean()


def test_messages_sent_at_once_are_each_posted_once(new_page, circle):
    """A send flushes the outbox first; a message already on its way must not be taken for a lost one."""
    alice, bob, conv = direct_pair(new_page, circle)
    posts = []
    alice.page.on("request", lambda request: posts.append(request.url)
                  if request.method == "POST" and request.url.endswith(f"/conversations/{conv}/messages") else None)
    texts = [f"at once {i}" for i in range(24)]
    # Four conversations' worth of typing at once: each sender sends its next message as soon as
    # the last one is stored, so new sends flush the outbox while others are between sealing and
    # posting.
    # Each send's local bookkeeping is slowed by 20 ms (as on a busy device) to widen the window.
    alice.run("""
        const messaging = circle.messaging;
        const remember = messaging.remember.bind(messaging);
        messaging.remember = async (...args) => { await new Promise((resolve) => setTimeout(resolve, 20)); return remember(...args); };
        const loops = [0, 1, 2, 3].map(async (first) => {
          for (let i = first; i < a.texts.length; i += 4) await circle.send(a.conv, a.texts[i]);
        });
        await Promise.all(loops);
    """, {"conv": conv, "texts": texts})
    for text in texts:
        bob.wait_live_text(conv, text)
    assert len(posts) == len(texts), f"{len(posts)} POSTs for {len(texts)} messages"
    assert sorted(m["text"] for m in bob.messages(conv)) == sorted(texts)


def test_non_member_gets_404s_and_no_events(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    carol = Browser(new_page, circle, unique("carol")).register().wait_online()
    carol.run("log.frames.length = 0; log.messages.length = 0;")

    alice.send(conv, "just between us")
    bob.wait_live_text(conv, "just between us")
    bob.send(conv, "indeed")
    alice.wait_live_text(conv, "indeed")
    time.sleep(1.0)

    # Through the client and straight at the API: 404 for everything, like an unknown id.
    failure = carol.error_of("await circle.messages(a);", conv)
    assert failure and failure["status"] == 404, failure
    statuses = carol.run("""
        const token = circle.account.token;
        const paths = ['', '/ops', '/messages', '/reads', `/envelopes?epoch=${'A'.repeat(43)}&sender=${circle.me.userId}`];
        const out = [];
        for (const path of paths) {
          const answer = await fetch(`/api/v1/conversations/${a}${path}`, { headers: { Authorization: `Bearer ${token}` } });
          out.push(answer.status);
        }
        const post = await fetch(`/api/v1/conversations/${a}/read`, { method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ seq: 1 }) });
        out.push(post.status);
        return out;
    """, conv)
    assert statuses == [404] * 6, statuses
    assert carol.run("return (await circle.conversations()).length;") == 0
    # Nothing of the conversation reached Carol's socket.
    assert carol.run("return log.frames.filter((t) => t !== 'ready');") == []
    assert carol.run("return log.messages;") == []
    # Carol's console shows the 404s the test caused on purpose; nothing else went wrong.
    assert not carol.watch.csp_violations and not carol.watch.foreign_requests
    alice.watch.assert_clean()
    bob.watch.assert_clean()


def test_reload_restores_session_and_sender_chain(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    alice.send(conv, "before reload")
    bob.wait_live_text(conv, "before reload")
    bob.send(conv, "reply before reload")
    alice.wait_live_text(conv, "reply before reload")
    chain_before = alice.run("""
        const s = await circle.store.getSending(circle.me.userId, a);
        return { generation: s.chain.generation, index: s.chain.index, outbox: s.outbox.length };
    """, conv)
    assert chain_before == {"generation": 0, "index": 1, "outbox": 0}

    alice.page.reload()
    assert alice.run("return circle.signedIn;") is True
    # The private keys came back from IndexedDB as CryptoKeys that cannot be exported.
    assert alice.run("const k = circle.account; return [k.identity.privateKey.extractable, k.x25519.privateKey.extractable,"
                     " k.pinsKey.extractable, k.identity.privateKey instanceof CryptoKey];") == [False, False, False, True]
    assert alice.run("return circle.me;")["username"] == alice.username
    alice.wait_online()
    # Decrypted history comes from the store (no listing needed), then new messages both ways.
    assert [m["text"] for m in alice.cached(conv)] == ["before reload", "reply before reload"]
    alice.send(conv, "after reload")
    bob.wait_live_text(conv, "after reload")
    # The same chain went on: next index, same generation, no new envelope.
    chain_after = alice.run("""
        const s = await circle.store.getSending(circle.me.userId, a);
        return { generation: s.chain.generation, index: s.chain.index, outbox: s.outbox.length };
    """, conv)
    assert chain_after == {"generation": 0, "index": 2, "outbox": 0}
    bob.send(conv, "reply after reload")
    alice.wait_live_text(conv, "reply after reload")
    assert [m["text"] for m in alice.messages(conv)] == ["before reload", "reply before reload", "after reload", "reply after reload"]
    assert [m["text"] for m in bob.messages(conv)] == ["before reload", "reply before reload", "after reload", "reply after reload"]
    alice.watch.assert_clean()
    bob.watch.assert_clean()


def cli_register(circle, tmp_path, username):
    state = tmp_path / f"{username}.json"
    answer = circle.cli("register", "--server", circle.origin, "--username", username, "--password-stdin",
                        input=PASSWORD + "\n", state=state, timeout=300)
    assert answer.returncode == 0, answer.stderr
    return state


def test_cli_and_browser_talk_both_ways(new_page, circle, tmp_path):
    cli_name = unique("cli")
    state = cli_register(circle, tmp_path, cli_name)
    web = Browser(new_page, circle, unique("web")).register().wait_online()

    # The browser starts the conversation and writes first; CircleKit reads it. (Ids made by the
    # browser may start with "-": the CLI takes them after "--".)
    conv = web.run("return await circle.createDirect(a);", cli_name)
    web.send(conv, "hello from the browser")
    read = circle.cli("chat", "read", "--", conv, state=state)
    assert read.returncode == 0, read.stderr
    assert f"{web.username}: hello from the browser" in read.stdout, read.stdout

    # CircleKit answers; the browser gets it live.
    sent = circle.cli("chat", "send", "--", conv, "hello", "from", "the", "CLI", state=state)
    assert sent.returncode == 0, sent.stderr
    got = web.wait_live_text(conv, "hello from the CLI")
    assert got["sender"]["displayName"] == cli_name and got["mine"] is False

    # An edit from the browser reaches CircleKit as an edit of the original.
    first = next(m for m in web.messages(conv) if m["text"] == "hello from the browser")
    web.run("await circle.edit(a.conv, a.id, 'hello again');", {"conv": conv, "id": first["id"]})
    read = circle.cli("chat", "read", "--", conv, state=state)
    assert read.returncode == 0, read.stderr
    assert "(edit) hello again" in read.stdout, read.stdout

    # A group made in the browser with the CLI user in it: the CLI sends into it.
    group = web.run("return await circle.createGroup('Team', [a]);", cli_name)
    sent = circle.cli("chat", "send", "--", group, "group hello", state=state)
    assert sent.returncode == 0, sent.stderr
    web.wait_live_text(group, "group hello")
    listed = next(c for c in web.run("return await circle.conversations();") if c["id"] == group)
    assert listed["title"] == "Team" and listed["kind"] == "group" and listed["myRole"] == "admin"

    # Settings signed by CircleKit (a retention: version 2) verify in the browser; a member of the
    # group who is not an admin is refused.
    shown = circle.cli("chat", "settings", "--", conv, state=state)
    assert shown.returncode == 0 and "messages kept: until deleted" in shown.stdout, shown.stdout + shown.stderr
    changed = circle.cli("chat", "settings", "--keep-days", "30", "--", conv, state=state)
    assert changed.returncode == 0 and "messages kept: 30 days" in changed.stdout, changed.stdout + changed.stderr
    deadline = time.time() + 20
    settings = None
    while time.time() < deadline:
        settings = web.run("await circle.chains.refresh(a); return (await circle.conversations()).find((c) => c.id === a).settings;", conv)
        if settings and settings.get("retentionDays") == 30:
            break
        time.sleep(0.3)
    assert settings == {"disappearSeconds": 0, "readReceipts": True, "retentionDays": 30}, settings
    refused = circle.cli("chat", "settings", "--keep-days", "7", "--", group, state=state)
    assert refused.returncode != 0, refused.stdout
    assert circle.cli("chat", "settings", "--keep-days", "3651", "--", conv, state=state).returncode != 0
    web.watch.assert_clean()


def forged_directory_entry(user_id, username, display):
    """A directory answer for `user_id` with other keys: a valid kx-cert under a new identity key."""
    identity = Ed25519PrivateKey.generate()
    agreement = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    identity_pub = identity.public_key().public_bytes(*raw)
    x_pub = agreement.public_key().public_bytes(*raw)
    cert = identity.sign(b"circle/v1/kx-cert" + user_id.encode() + x_pub)
    return {"userId": user_id, "username": username, "displayName": display,
            "identityKey": b64u(identity_pub), "x25519Key": b64u(x_pub), "kxCert": b64u(cert)}


def test_a_first_contact_is_verified_under_the_key_the_chain_recorded_not_the_directorys(new_page, circle):
    """Bob meets Carol in a group Alice made; the server's directory gives Bob another key for
    Carol (one it holds). Bob must not pin it: the chain recorded Carol's real key when Alice
    added her, so Bob is warned, nothing from Carol is verified under the server's key, and
    once the directory is honest Carol's next message opens."""
    alice = Browser(new_page, circle, unique("alice")).register().wait_online()
    bob = Browser(new_page, circle, unique("bob")).register().wait_online()
    carol = Browser(new_page, circle, unique("carol")).register().wait_online()
    forged = json.dumps(forged_directory_entry(carol.user_id, carol.username, carol.display))
    tamper = lambda route: route.fulfill(status=200, body=forged, headers={"Content-Type": "application/json"})
    bob.page.route(f"**/api/v1/directory/users/{carol.user_id}", tamper)
    bob.page.route(f"**/api/v1/directory/usernames/{carol.username}", tamper)
    conv = alice.run("return await circle.createGroup('trio', a);", [bob.username, carol.username])
    carol.send(conv, "from carol, genuinely")
    alice.wait_live_text(conv, "from carol, genuinely")
    texts = [m["text"] for m in bob.messages(conv)]
    assert "from carol, genuinely" not in texts, texts
    alarms = bob.run("return log.alarms;")
    assert any(a["kind"] == "key-changed" and a.get("userId") == carol.user_id for a in alarms), alarms
    assert bob.run("return circle.account.pins[a] ?? null;", carol.user_id) is None, "the server's key was pinned"

    bob.page.unroute(f"**/api/v1/directory/users/{carol.user_id}")
    bob.page.unroute(f"**/api/v1/directory/usernames/{carol.username}")
    bob.run("circle.directory.cache.clear();")
    carol.send(conv, "and again")
    wait_until(lambda: "and again" in [m["text"] for m in bob.messages(conv)], what="Carol's next message to open for Bob")
    assert bob.run("return circle.account.pins[a] !== undefined;", carol.user_id)


# A valid Ed25519 key plus a point of order 8 (see test_protocol_vectors.py).
MIXED_ORDER_KEY = bytes.fromhex("b154bd62188ae283dd187fefe8c31f5e276edf083b4cff11c9d5cff856c74440")


def test_a_mixed_order_identity_key_from_the_directory_is_not_pinned(new_page, circle):
    alice = Browser(new_page, circle, unique("alice")).register().wait_online()
    bob = Browser(new_page, circle, unique("bob")).register().wait_online()
    entry = forged_directory_entry(bob.user_id, bob.username, bob.display)
    entry["identityKey"] = b64u(MIXED_ORDER_KEY)
    forged = json.dumps(entry)
    tamper = lambda route: route.fulfill(status=200, body=forged, headers={"Content-Type": "application/json"})
    alice.page.route(f"**/api/v1/directory/usernames/{bob.username}", tamper)
    alice.page.route(f"**/api/v1/directory/users/{bob.user_id}", tamper)
    failure = alice.error_of("await circle.createDirect(a);", bob.username)
    assert failure and failure["code"] == "weak-key" and "prime-order" in failure["message"], failure
    assert alice.run("return circle.account.pins[a] ?? null;", bob.user_id) is None


def test_a_vault_download_refuses_another_files_entry_under_the_asked_for_id(new_page, circle):
    """The server answers for one file (entry and content) with another of the member's files,
    which would open under its own id and key: the download is refused."""
    alice = Browser(new_page, circle, unique("alice")).register().wait_online()
    ids = alice.run("""
        const wanted = await circle.vault.upload(new File(['the contract as signed'], 'contract.txt'));
        const decoy = await circle.vault.upload(new File(['a decoy the server prefers'], 'decoy.txt'));
        return [wanted.id, decoy.id];
    """)
    wanted, decoy = ids
    decoy_entry = alice.run("return await circle.api.get(`/api/v1/vault/files/${a}`);", decoy)

    def swap(route):
        if route.request.url.endswith("/content"):
            route.continue_(url=route.request.url.replace(wanted, decoy))
        else:
            route.fulfill(status=200, body=json.dumps(decoy_entry), headers={"Content-Type": "application/json"})

    alice.page.route(f"**/api/v1/vault/files/{wanted}**", swap)
    failure = alice.error_of("await circle.vault.download(a);", wanted)
    assert failure and "another file than the one asked for" in failure["message"], failure
    alice.page.unroute(f"**/api/v1/vault/files/{wanted}**")
    text = alice.run("return await (await circle.vault.download(a)).text();", wanted)
    assert text == "the contract as signed"


def test_a_rolled_back_pins_blob_is_refused_with_a_warning(new_page, circle):
    """The server serves an older pins blob (from before a verification) than the device has
    seen: the device refuses it, warns, and keeps its pins and version."""
    alice, bob, conv = direct_pair(new_page, circle)
    alice.send(conv, "pinned you")
    wait_until(lambda: alice.run("return (async () => (await circle.api.get('/api/v1/account/pins')).version)();") >= 1,
               what="pins synced")
    old = alice.run("return await circle.api.get('/api/v1/account/pins');")
    alice.run("await circle.verify(a);", bob.user_id)
    seen = alice.run("return circle.account.pinsVersion;")
    assert seen > old["version"], (seen, old["version"])
    alice.page.route("**/api/v1/account/pins", lambda route: route.fulfill(
        status=200, body=json.dumps(old), headers={"Content-Type": "application/json"}))
    failure = alice.error_of("await circle.directory.syncPins();")
    assert failure and failure["code"] == "refused" and "older than version" in failure["message"], failure
    alarms = alice.run("return log.alarms;")
    assert any(a["kind"] == "pins-rollback" for a in alarms), alarms
    assert alice.run("return circle.account.pinsVersion;") == seen
    assert alice.run("return circle.directory.trust(a);", bob.user_id) == "verified"
    alice.page.unroute("**/api/v1/account/pins")


def test_pins_sync_to_a_second_device_and_a_changed_key_blocks_sending(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    alice.send(conv, "pinned you")
    bob.wait_live_text(conv, "pinned you")
    # Alice's first device pinned Bob and synced the (encrypted) pins.
    wait_until(lambda: alice.run("return (async () => (await circle.api.get('/api/v1/account/pins')).version)();") >= 1,
               what="pins synced")

    # Alice's second device, whose server shows other keys for Bob from the start.
    forged = json.dumps(forged_directory_entry(bob.user_id, bob.username, bob.display))
    second = Browser(new_page, circle, alice.username)
    tamper = lambda route: route.fulfill(status=200, body=forged, headers={"Content-Type": "application/json"})
    second.page.route(f"**/api/v1/directory/users/{bob.user_id}", tamper)
    second.page.route(f"**/api/v1/directory/usernames/{bob.username}", tamper)
    second.login(alice.username)
    assert second.user_id == alice.user_id
    second.wait_online()
    # The pin came from the first device, so the forged key shows as a change: alarm, blocked.
    listed = next(c for c in second.run("return await circle.conversations();") if c["id"] == conv)
    assert {m["username"]: m["trust"] for m in listed["members"]}[bob.username] == "changed"
    alarms = second.run("return log.alarms;")
    assert any(a["kind"] == "key-changed" and a["userId"] == bob.user_id for a in alarms), alarms
    failure = second.error_of("await circle.send(a, 'should not go');", conv)
    assert failure and failure["code"] == "key-changed", failure
    assert "should not go" not in [m["text"] for m in bob.messages(conv)]

    # The first device, asked afresh with a tampered answer, refuses too (TOFU holds).
    alice.page.route(f"**/api/v1/directory/users/{bob.user_id}", tamper)
    alice.run("circle.directory.cache.clear();")
    failure = alice.error_of("await circle.send(a, 'nor this');", conv)
    assert failure and failure["code"] == "key-changed", failure
    alice.page.unroute(f"**/api/v1/directory/users/{bob.user_id}")

    # The directory shows the real key again; accepting resumes sending, and Bob reads it.
    second.page.unroute(f"**/api/v1/directory/users/{bob.user_id}")
    second.page.unroute(f"**/api/v1/directory/usernames/{bob.username}")
    second.run("await circle.acceptNewKey(a);", bob.user_id)
    listed = next(c for c in second.run("return await circle.conversations();") if c["id"] == conv)
    assert {m["username"]: m["trust"] for m in listed["members"]}[bob.username] == "unverified"
    second.send(conv, "from my second device")
    got = bob.wait_live_text(conv, "from my second device")
    assert got["sender"]["userId"] == alice.user_id
    # Messages sent before this device existed come from the listing, decrypted.
    assert "pinned you" in [m["text"] for m in second.messages(conv)]
    alice.run("await circle.acceptNewKey(a);", bob.user_id)
    alice.send(conv, "and from the first")
    bob.wait_live_text(conv, "and from the first")
    # Bob hears from both of Alice's devices, each on its own chain.
    assert [m["text"] for m in bob.messages(conv)] == ["pinned you", "from my second device", "and from the first"]
    bob.watch.assert_clean()


def test_login_refuses_a_weak_kdf_before_sending_anything(new_page, circle):
    alice = Browser(new_page, circle, unique("alice")).register()
    alice.run("await circle.logout();")
    posted = []
    alice.page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)

    def weak(route):
        answer = route.fetch()
        body = answer.json()
        body["kdf"]["iterations"] = 1000
        route.fulfill(response=answer, body=json.dumps(body))

    alice.page.route("**/api/v1/auth/prelogin", weak)
    failure = alice.error_of("await circle.login({ username: a, password: 'correct horse battery staple' });", alice.username)
    assert failure and failure["code"] == "refused-kdf", failure
    assert [url for url in posted if "/auth/login" in url] == []
    assert alice.run("return circle.signedIn;") is False


def test_logout_wipes_indexeddb(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    alice.send(conv, "secret")
    bob.wait_live_text(conv, "secret")
    token = alice.run("return circle.account.token;")
    before = alice.run("return (await indexedDB.databases()).map((d) => d.name);")
    assert "circle" in before

    alice.run("await circle.logout();")
    assert alice.run("return log.signedOut;") == ["logout"]
    assert alice.run("return circle.signedIn;") is False
    assert alice.run("return (await indexedDB.databases()).map((d) => d.name);") == []
    # The token is dead on the server, and a reload finds nobody signed in.
    status = alice.run("""
        const answer = await fetch('/api/v1/account/me', { headers: { Authorization: `Bearer ${a}` } });
        return answer.status;
    """, token)
    assert status == 401
    alice.page.reload()
    assert alice.run("return circle.signedIn;") is False
    assert alice.run("return (await indexedDB.databases()).map((d) => d.name).filter((n) => n === 'circle');") in ([], ["circle"])
    assert alice.run("return await circle.store.currentUserId();") is None


def test_revoked_session_signs_out_and_wipes(new_page, circle):
    alice = Browser(new_page, circle, unique("alice")).register().wait_online()
    other = Browser(new_page, circle, alice.username).login(alice.username).wait_online()
    sessions = other.run("return await circle.sessions();")
    assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
    other.run("return await circle.revokeOthers();")
    wait_until(lambda: alice.run("return log.signedOut;") == ["revoked"], what="alice's tab signed out")
    assert alice.run("return circle.signedIn;") is False
    assert alice.run("return (await indexedDB.databases()).map((d) => d.name);") == []
    assert other.run("return circle.signedIn;") is True


def test_group_title_membership_and_rotation(new_page, circle):
    alice = Browser(new_page, circle, unique("alice")).register().wait_online()
    bob = Browser(new_page, circle, unique("bob")).register().wait_online()
    carol = Browser(new_page, circle, unique("carol")).register().wait_online()
    group = alice.run("return await circle.createGroup(a.title, a.members);", {"title": "Secret plans", "members": [bob.username]})
    alice.send(group, "welcome bob")
    bob.wait_live_text(group, "welcome bob")
    titled = wait_until(lambda: next((c for c in bob.run("return await circle.conversations();") if c["id"] == group), None),
                        what="bob lists the group")
    assert titled["title"] == "Secret plans" and titled["myRole"] == "member"
    # The title never reached the server in clear text.
    raw = alice.run("return await (await fetch(`/api/v1/conversations/${a}/messages`, "
                    "{ headers: { Authorization: `Bearer ${circle.account.token}` } })).text();", group)
    assert "Secret plans" not in raw

    alice.run("await circle.addMember(a.conv, a.user);", {"conv": group, "user": carol.username})
    alice.send(group, "welcome carol")
    carol.wait_live_text(group, "welcome carol")
    carol.send(group, "thanks")
    alice.wait_live_text(group, "thanks")
    bob.wait_live_text(group, "thanks")
    # History from before Carol joined stays unreadable to her (no envelope for that epoch).
    assert "welcome bob" not in [m["text"] for m in carol.messages(group)]

    # Removing Bob rotates every chain: he reads nothing after it.
    alice.run("await circle.removeMember(a.conv, a.user);", {"conv": group, "user": bob.user_id})
    alice.send(group, "bob is gone")
    carol.wait_live_text(group, "bob is gone")
    carol.send(group, "carol after removal")
    alice.wait_live_text(group, "carol after removal")
    failure = bob.error_of("await circle.messages(a);", group)
    assert failure and failure["status"] == 404, failure
    assert "bob is gone" not in [m["text"] for m in bob.cached(group)]
    own = alice.run("""
        const s = await circle.store.getSending(circle.me.userId, a);
        const chain = await circle.chains.local(a);
        return { index: s.chain.index, current: s.chain.epoch.every((b, i) => b === chain.epoch[i]) };
    """, group)
    assert own == {"index": 1, "current": True}  # a new chain for the new epoch: one message on it so far
    alice.watch.assert_clean()
    carol.watch.assert_clean()


def test_disappearing_messages_leave_both_sides(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    alice.run("await circle.setSettings(a, { disappearSeconds: 3 });", conv)
    wait_until(lambda: next((c for c in bob.run("return await circle.conversations();") if c["id"] == conv), {}).get("settings")
               == {"disappearSeconds": 3, "readReceipts": True, "retentionDays": 0}, what="bob sees the timer")
    alice.send(conv, "this will vanish")
    seen = bob.wait_live_text(conv, "this will vanish")
    assert seen["expiresAt"] and seen["expiresAt"] - seen["sentAt"] <= 3500
    wait_until(lambda: "this will vanish" not in [m["text"] for m in bob.cached(conv)], timeout=30, what="bob's copy to vanish")
    wait_until(lambda: "this will vanish" not in [m["text"] for m in alice.cached(conv)], timeout=30, what="alice's copy to vanish")
    stored = bob.run("return (await circle.store.getMessages(circle.me.userId, a)).map((m) => m.text);", conv)
    assert "this will vanish" not in stored
    alice.watch.assert_clean()
    bob.watch.assert_clean()


def test_reconnects_after_a_restart_without_losing_or_repeating(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    alice.send(conv, "one")
    bob.wait_live_text(conv, "one")

    circle.stop()
    wait_until(lambda: alice.run("return circle.connection;") != "online", what="alice notices the restart")
    # Sent while the server is down: kept in the outbox, shown as sending.
    alice.send(conv, "two (sent offline)")
    pending = next(m for m in alice.cached(conv) if m["text"] == "two (sent offline)")
    assert pending["status"] == "sending"
    circle.start()

    alice.wait_online()
    bob.wait_online()
    bob.wait_live_text(conv, "two (sent offline)", timeout=30)
    alice.send(conv, "three")
    bob.send(conv, "four")
    bob.wait_live_text(conv, "three")
    alice.wait_live_text(conv, "four")
    expected = ["one", "two (sent offline)", "three", "four"]
    assert [m["text"] for m in bob.messages(conv)] == expected
    assert [m["text"] for m in alice.messages(conv)] == expected
    assert [m["status"] for m in alice.messages(conv) if m["mine"]] == ["sent"] * 3
    # A socket closed by the restart is expected; nothing else.
    assert not alice.watch.csp_violations and not bob.watch.csp_violations


def test_fork_alarm_when_the_server_rolls_a_chain_back(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    alice.send(conv, "on the real chain")
    bob.wait_live_text(conv, "on the real chain")

    def rolled_back(route):
        answer = route.fetch()
        body = answer.json()
        body["ops"] = [op for op in body["ops"] if op["n"] == 0]
        body["head"] = 0
        route.fulfill(response=answer, body=json.dumps(body))

    bob.page.route(f"**/api/v1/conversations/{conv}/ops*", rolled_back)
    failure = bob.error_of("await circle.setSettings(a, { disappearSeconds: 60 });", conv)
    assert failure and failure["code"] == "fork", failure
    alarms = bob.run("return log.alarms;")
    assert any(a["kind"] == "fork" and a["convId"] == conv for a in alarms), alarms
    # Nothing was changed on the server's real chain by the refused attempt.
    listed = next(c for c in alice.run("return await circle.conversations();") if c["id"] == conv)
    assert listed["settings"]["disappearSeconds"] == 0


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def leave_op(conv_id: bytes, n: int, prev_hash: bytes, actor: str, created_at: int) -> bytes:
    """A leave op's bytes (PROTOCOL 5), with any createdAt, even one no client may accept."""
    def field(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data
    who = actor.encode()
    return (b"\x01" + field(conv_id) + n.to_bytes(4, "big") + field(prev_hash) + field(who) + b"\x05" + field(who)
            + field(b"") + b"\x00" + field(b"") + field(b"") + created_at.to_bytes(8, "big"))


def test_an_op_with_a_time_no_client_can_hold_is_refused_and_reported(new_page, circle):
    """A leave op with createdAt 2^60: the server refuses it; shown by a server anyway, the
    client reports it and keeps showing the conversation as of the op before."""
    alice = Browser(new_page, circle, unique("alice")).register().wait_online()
    bob = Browser(new_page, circle, unique("bob")).register().wait_online()
    conv = alice.run("return await circle.createGroup('bad op', a);", [bob.username])
    alice.send(conv, "before the bad op")
    bob.wait_live_text(conv, "before the bad op")
    listing = alice.run("return await circle.api.get(`/api/v1/conversations/${a}/ops?after=-1`);", conv)
    head = listing["ops"][-1]
    prev_hash = hashlib.sha256(b"circle/v1/op-hash" + unb64u(head["op"])).digest()
    bad = leave_op(unb64u(conv), head["n"] + 1, prev_hash, bob.user_id, 1 << 60)

    # The server refuses it (here as bob, with any signature: it does not parse).
    failure = bob.error_of("await circle.api.post(`/api/v1/conversations/${a.c}/ops`, { op: a.o, signature: a.s });",
                           {"c": conv, "o": b64u(bad), "s": b64u(bytes(64))})
    assert failure and failure["status"] == 422 and "2^53" in failure["message"], failure

    # A server that lists it anyway: the client reports it and still shows the conversation.
    def with_bad_op(route):
        answer = route.fetch()
        body = answer.json()
        if body["ops"] and body["ops"][-1]["n"] == head["n"] or not body["ops"]:
            body["ops"].append({"n": head["n"] + 1, "op": b64u(bad), "signature": b64u(bytes(64)), "createdAt": 0})
            body["head"] = head["n"] + 1
        route.fulfill(response=answer, body=json.dumps(body))

    alice.page.route(f"**/api/v1/conversations/{conv}/ops*", with_bad_op)
    alice.run("circle.chains.verified.delete(a);", conv)
    alice.run("await circle.chains.refresh(a);", conv)
    alarms = alice.run("return log.alarms;")
    assert any(a["kind"] == "malformed-op" and a["convId"] == conv and "2^53" in a["message"] for a in alarms), alarms
    assert "before the bad op" in [m["text"] for m in alice.messages(conv)]
    listed = next(c for c in alice.run("return await circle.conversations();") if c["id"] == conv)
    assert sorted(m["username"] for m in listed["members"]) == sorted([alice.username, bob.username]), listed
    alice.page.unroute(f"**/api/v1/conversations/{conv}/ops*")


def test_password_change_and_recovery(new_page, circle):
    alice, bob, conv = direct_pair(new_page, circle)
    alice.send(conv, "before the new password")
    bob.wait_live_text(conv, "before the new password")
    recovery_key = alice.run("return window.recoveryKey;")
    assert len(recovery_key) == 39 and recovery_key.count("-") == 7
    other = Browser(new_page, circle, alice.username).login(alice.username).wait_online()

    # A wrong current password is refused here, before the server is asked to change anything.
    failure = alice.error_of("await circle.changePassword({ currentPassword: 'wrong', newPassword: 'x' });")
    assert failure and "password" in failure["message"], failure
    alice.run("await circle.changePassword({ currentPassword: a.old, newPassword: a.new });",
              {"old": PASSWORD, "new": "a brand new passphrase"})
    wait_until(lambda: other.run("return log.signedOut;") == ["revoked"], what="the other session to end")
    alice.send(conv, "after the new password")
    bob.wait_live_text(conv, "after the new password")
    alice.run("await circle.logout();")

    # The old password no longer works; the new one does.
    failure = alice.error_of("await circle.login({ username: a.u, password: a.p });", {"u": alice.username, "p": PASSWORD})
    assert failure and failure["status"] == 401, failure
    alice.login(alice.username, "a brand new passphrase")
    assert [m["text"] for m in alice.messages(conv)] == ["before the new password", "after the new password"]
    alice.run("await circle.logout();")

    # The recovery key sets another password and signs in; history still opens.
    alice.run("await circle.recover({ username: a.u, recoveryKey: a.k, newPassword: 'recovered passphrase' });",
              {"u": alice.username, "k": recovery_key})
    assert alice.run("return circle.me.userId;") == alice.user_id
    alice.wait_online()
    assert [m["text"] for m in alice.messages(conv)] == ["before the new password", "after the new password"]
    alice.send(conv, "after recovery")
    bob.wait_live_text(conv, "after recovery")
    alice.run("await circle.logout();")
    alice.login(alice.username, "recovered passphrase")
    bob.watch.assert_clean()
