"""The security activity log, live security alerts and the member dashboard in the web client,
against a real `circle serve`: a sign-in elsewhere raises a banner at once, "This was me"
closes it, the Activity page lists the entries with their address and checks the hash chain
in the browser (and warns when the server's history no longer extends what this device saw),
sessions are revoked from their sign-in, the log exports; the dashboard shows the people one
talks with and their presence, the vault's usage, the latest activity, and busy hides badges.
"""
import json
import re

from playwright.sync_api import expect

from conftest import screenshot
from test_ui import (DESKTOP, KEY_WORK_TIMEOUT, LIVE_TIMEOUT, SIGNED_IN_ACCOUNT, check_accessibility, dashboard, door_gone,
                     drop_expected_http_errors, register, send, sign_in, start_direct, unique)

# Replaces the hash this device remembers for the newest verified activity entry (IndexedDB
# `circle`, store `meta`, key `activity:<userId>`), as a server that rewrote history would
# make it disagree; resolves to the remembered entry's number.
FORGE_REMEMBERED_HEAD = """async () => {
  const db = await new Promise((resolve, reject) => {
    const open = indexedDB.open('circle');
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const ask = (request) => new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const meta = () => db.transaction(['meta'], 'readwrite').objectStore('meta');
  const current = await ask(meta().get('current'));
  const head = await ask(meta().get('activity:' + current.userId));
  head.hash = 'A'.repeat(43);
  await ask(meta().put(head));
  db.close();
  return head.seq;
}"""


# Runs client/activity-chain.js on the account's real chain (read with the session's token
# from IndexedDB): every hash recomputed, the check from nothing and from a remembered head, and
# the same check over pages where one entry was altered or removed on the way.
CHAIN_CHECKS = """async () => {
  const chainModule = await import('/js/client/activity-chain.js');
  const account = await (""" + SIGNED_IN_ACCOUNT + """)();
  const chain = account.userId;
  const fetchAfter = async (after) => (await fetch(`/api/v1/activity?after=${after}&limit=2`, {
    headers: { Authorization: `Bearer ${account.token}` },
  })).json();
  const all = (await (await fetch('/api/v1/activity?after=0', { headers: { Authorization: `Bearer ${account.token}` } })).json()).entries;
  let previous = 'A'.repeat(43);
  const recomputed = [];
  for (const entry of all) {
    recomputed.push(await chainModule.entryHash(previous, chain, entry) === entry.hash);
    previous = entry.hash;
  }
  const altered = (change) => async (after) => {
    const page = await fetchAfter(after);
    return { ...page, entries: change(page.entries.map((entry) => ({ ...entry }))) };
  };
  const second = all[1];
  return {
    count: all.length,
    recomputed,
    fromStart: await chainModule.checkExtends({ chain, remembered: null, fetchAfter }),
    fromSecond: await chainModule.checkExtends({ chain, remembered: { seq: 2, hash: second.hash }, fetchAfter }),
    forgotten: await chainModule.checkExtends({ chain, remembered: { seq: 2, hash: all[0].hash }, fetchAfter }),
    edited: await chainModule.checkExtends({
      chain, remembered: null,
      fetchAfter: altered((entries) => entries.map((entry) => (entry.seq === 3 ? { ...entry, details: '{"device":"elsewhere"}' } : entry))),
    }),
    removed: await chainModule.checkExtends({
      chain, remembered: null, fetchAfter: altered((entries) => entries.filter((entry) => entry.seq !== 3)),
    }),
    pageOk: await chainModule.pageChains(chain, [...all].reverse(), { seq: 0, hash: 'A'.repeat(43) }),
    pageEdited: await chainModule.pageChains(chain, [...all].reverse().map((entry) => (entry.seq === 2 ? { ...entry, alert: !entry.alert } : entry)),
      { seq: 0, hash: 'A'.repeat(43) }),
  };
}"""


def alert_banner(page, text):
    return page.get_by_role("alert").filter(has_text=text)


def history(page):
    return page.get_by_role("list", name="History")


def test_alerts_activity_page_and_chain_check(new_page, circle):
    page, watch = new_page(circle.origin, **DESKTOP)
    name = unique("ada")
    register(page, circle.origin, name, "Ada")
    door_gone(page)

    # A second sign-in elsewhere: the first browser shows the alert at once.
    other, other_watch = new_page(circle.origin, **DESKTOP)
    other.goto(circle.origin + "/")
    sign_in(other, name, device="Second browser")
    expect(dashboard(other)).to_be_visible(timeout=KEY_WORK_TIMEOUT)
    banner = alert_banner(page, "New sign-in on Second browser from 127.0.0.1")
    expect(banner).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(banner.get_by_role("button", name=re.compile("^This was me"))).to_be_visible()
    expect(banner.get_by_role("button", name=re.compile("^Revoke that session"))).to_be_visible()
    # The dashboard lists it too.
    expect(page.get_by_role("list", name="Open security alerts").get_by_role("listitem")).to_have_count(1)
    check_accessibility(page, "alert banner")
    screenshot(page, "alert-banner")
    banner.get_by_role("button", name=re.compile("^This was me")).click()
    expect(banner).to_have_count(0)
    expect(page.get_by_role("heading", name="Open security alerts")).to_be_hidden()

    # The Activity page: sign-ins with their address, the chain verified here.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", level=1, name="Security activity")).to_be_visible()
    assert page.url.endswith("/activity")
    expect(page.get_by_role("status").filter(has_text="History verified")).to_have_text(
        re.compile(r"History verified up to entry \d+\."), timeout=LIVE_TIMEOUT)
    entries = history(page).get_by_role("listitem")
    sign_in_entry = entries.filter(has_text="Signed in").filter(has_text="Second browser")
    expect(sign_in_entry).to_have_count(1)
    expect(sign_in_entry).to_contain_text("IP 127.0.0.1")
    expect(sign_in_entry.get_by_text("Alert", exact=True)).to_be_visible()
    expect(entries.filter(has_text="Session created")).to_contain_text("This device")
    expect(entries.filter(has_text="Alert confirmed: this was me")).to_have_count(1)
    expect(page.get_by_text(re.compile(r"^The \d+ entries shown chain one to the next\.$"))).to_be_visible()
    check_accessibility(page, "activity")
    screenshot(page, "activity")

    # The export is the whole chain, as the server gives it.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert download.value.suggested_filename == "circle-activity.json"
    assert [entry["kind"] for entry in exported["entries"]][:2] == ["session.created", "sign-in"], exported
    assert exported["anchor"]["seq"] == 0

    # Revoking that sign-in's session signs the other browser out, and the log says so live.
    sign_in_entry.get_by_role("button", name=re.compile("^Revoke this session: Second browser")).click()
    page.get_by_role("dialog", name="Revoke this session?").get_by_role("button", name="Revoke").click()
    expect(other.get_by_role("heading", level=1, name="Sign in")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(entries.filter(has_text="Session revoked")).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(sign_in_entry.get_by_role("button")).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text="History verified")).to_have_text(
        re.compile(r"History verified up to entry \d+\."), timeout=LIVE_TIMEOUT)

    # What this device remembers no longer matches the server's history: a clear warning.
    remembered = page.evaluate(FORGE_REMEMBERED_HEAD)
    page.reload()
    warning = page.get_by_text(re.compile(r"The server's history does not extend what this device saw before"))
    expect(warning).to_have_text(re.compile(
        rf"The server's history does not extend what this device saw before \(entry {remembered} changed or is missing\)"),
        timeout=LIVE_TIMEOUT)
    expect(page.get_by_text("History verified")).to_have_count(0)
    check_accessibility(page, "activity warning")
    screenshot(page, "activity-warning")
    watch.assert_clean()
    drop_expected_http_errors(other_watch, 401)
    other_watch.assert_clean()


def test_the_chain_check_recomputes_every_hash_and_finds_changes(new_page, circle):
    page, watch = new_page(circle.origin, **DESKTOP)
    name = unique("cy")
    register(page, circle.origin, name, "Cy")
    other, other_watch = new_page(circle.origin, **DESKTOP)
    for device in ("Phone", "Laptop"):
        other.goto(circle.origin + "/")
        sign_in(other, name, device=device)
        expect(dashboard(other)).to_be_visible(timeout=KEY_WORK_TIMEOUT)
        other.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
        expect(other.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    result = page.evaluate(CHAIN_CHECKS)
    # session.created, then per device a sign-in and a sign-out: 5 entries, read two per page.
    assert result["count"] == 5, result
    assert result["recomputed"] == [True] * 5, result
    assert result["fromStart"] == {"ok": True, "head": result["fromStart"]["head"]} and result["fromStart"]["head"]["seq"] == 5
    assert result["fromSecond"]["ok"] is True and result["fromSecond"]["head"]["seq"] == 5
    assert result["forgotten"] == {"ok": False, "seq": 2}
    assert result["edited"] == {"ok": False, "seq": 3}
    assert result["removed"] == {"ok": False, "seq": 3}
    assert result["pageOk"] is True and result["pageEdited"] is False
    watch.assert_clean()
    other_watch.assert_clean()


def test_dashboard_people_vault_activity_and_busy_hides_badges(new_page, circle):
    ana, ana_watch = new_page(circle.origin, **DESKTOP)
    ben, ben_watch = new_page(circle.origin, **DESKTOP)
    ana_name, ben_name = unique("ana"), unique("ben")
    register(ana, circle.origin, ana_name, "Ana")
    register(ben, circle.origin, ben_name, "Ben")
    start_direct(ben, ana_name, "Ana")
    send(ben, "hello Ana")
    door_gone(ana)

    people = ana.get_by_role("list", name="People")
    expect(people.get_by_role("listitem")).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(people.get_by_text("Ben, online", exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(ana.get_by_text(re.compile(r"^0 bytes of [\d.]+ GB used$"))).to_be_visible()
    expect(ana.get_by_role("progressbar", name="Vault usage, 0%")).to_be_visible()
    recent = ana.get_by_role("list", name="Recent security activity")
    expect(recent.get_by_role("listitem").filter(has_text="Session created")).to_contain_text("IP 127.0.0.1")
    expect(ana.get_by_text(re.compile("^ ?Security level: High$"))).to_be_visible()
    expect(ana.get_by_text(re.compile(r"^This session: .+, signed in"))).to_be_visible()

    # Ben's status shows on Ana's dashboard as he changes it.
    ben.get_by_role("banner").get_by_role("button", name=re.compile("^Your status")).click()
    dialog = ben.get_by_role("dialog", name="Set your status")
    dialog.get_by_role("radio", name="Away").check()
    dialog.get_by_label("Status", exact=True).fill("Back at three")
    dialog.get_by_role("button", name="Save status").click()
    expect(people.get_by_text("Ben, away", exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(people.get_by_text("Back at three")).to_be_visible()

    # New activity reaches the dashboard live.
    other, other_watch = new_page(circle.origin, **DESKTOP)
    other.goto(circle.origin + "/")
    sign_in(other, ana_name, device="Tablet")
    expect(dashboard(other)).to_be_visible(timeout=KEY_WORK_TIMEOUT)
    expect(recent.get_by_role("listitem").filter(has_text="Signed in").filter(has_text="Tablet")).to_have_count(1, timeout=LIVE_TIMEOUT)
    alert_banner(ana, "New sign-in on Tablet").get_by_role("button", name=re.compile("^This was me")).click()
    expect(alert_banner(ana, "New sign-in on Tablet")).to_have_count(0)
    check_accessibility(ana, "dashboard")
    screenshot(ana, "dashboard")

    # Busy is do not disturb: no unread badge until Ana is back.
    conversation = ana.get_by_role("complementary", name="Conversations").get_by_role("link", name=re.compile("Ben"))
    expect(conversation.locator(".badge")).to_have_text("1 unread")
    ana.get_by_role("button", name="Set your status").click()
    ana.get_by_role("dialog", name="Set your status").get_by_role("radio", name="Busy (do not disturb)").check()
    ana.get_by_role("dialog", name="Set your status").get_by_role("button", name="Save status").click()
    expect(conversation.locator(".badge")).to_have_count(0, timeout=LIVE_TIMEOUT)
    send(ben, "still there?")
    expect(conversation).to_contain_text("still there?", timeout=LIVE_TIMEOUT)
    expect(conversation.locator(".badge")).to_have_count(0)
    ana.get_by_role("button", name="Set your status").click()
    ana.get_by_role("dialog", name="Set your status").get_by_role("radio", name="Online").check()
    ana.get_by_role("dialog", name="Set your status").get_by_role("button", name="Save status").click()
    expect(conversation.locator(".badge")).to_have_text("2 unread", timeout=LIVE_TIMEOUT)
    ana_watch.assert_clean()
    ben_watch.assert_clean()
    other_watch.assert_clean()


def test_a_new_admin_is_told_to_invite_members(new_page, circle_with_invites):
    server = circle_with_invites
    made = server.cli("invite", "create", "--admin", "--http-public-url", server.origin)
    assert made.returncode == 0, made.stderr
    code = re.search(r"https?://\S+", made.stdout).group(0).rsplit("/", 1)[-1]
    page, watch = new_page(server.origin, **DESKTOP)
    register(page, server.origin, unique("root"), "Root", path=f"/invite/{code}")
    door_gone(page)
    note = page.get_by_role("region", name="People")
    expect(note).to_contain_text("Nobody else is here yet.")
    expect(note.get_by_role("link", name="Invite your first members")).to_have_attribute("href", "/invitations")
    check_accessibility(page, "admin dashboard")
    screenshot(page, "dashboard-new-admin")
    watch.assert_clean()
