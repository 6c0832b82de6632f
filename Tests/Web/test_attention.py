"""New messages while the member looks elsewhere (issue 19.7): the unread count in the tab's
title, and a notification when the page is hidden, naming only the conversation unless this
browser allows previews, asked for in Settings where it says what it shows. Chromium's own
Notification is replaced by a recorder (the page cannot read what the system showed); the page's
visibility is switched the same way."""
import time

from playwright.sync_api import expect

from conftest import screenshot
from test_ui import DESKTOP, LIVE_TIMEOUT, check_accessibility, door_gone, messages, register, send, start_direct, unique

RECORDER = """
window.__notes = [];
window.__hidden = false;
class RecordedNotification {
  constructor(title, options = {}) { window.__notes.push({ title, body: options.body || '' }); }
  static get permission() { return window.__permission || 'default'; }
  static requestPermission() { window.__permission = 'granted'; return Promise.resolve('granted'); }
  close() {}
}
window.Notification = RecordedNotification;
Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (window.__hidden ? 'hidden' : 'visible') });
Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.__hidden });
"""


def notes_when(page, count):
    """The recorded notifications once there are `count` (the page's CSP forbids wait_for_function)."""
    deadline = time.monotonic() + LIVE_TIMEOUT / 1000
    while time.monotonic() < deadline:
        notes = page.evaluate("window.__notes")
        if len(notes) >= count:
            return notes
        time.sleep(0.1)
    raise AssertionError(f"{count} notifications expected, got {page.evaluate('window.__notes')}")


def test_unread_count_in_the_title_and_notifications_when_hidden(new_page, circle):
    ana_name, ben_name = unique("ana"), unique("ben")
    ana, ana_watch = new_page(circle.origin, **DESKTOP)
    ben, ben_watch = new_page(circle.origin, **DESKTOP)
    ben.add_init_script(RECORDER)
    register(ana, circle.origin, ana_name, "Ana")
    register(ben, circle.origin, ben_name, "Ben")
    door_gone(ben)
    start_direct(ana, ben_name, "Ben")
    send(ana, "first hello")
    expect(messages(ana).get_by_text("first hello")).to_be_visible(timeout=LIVE_TIMEOUT)

    # Ben turns notifications on where the page says what they show.
    ben.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    section = ben.locator("#notifications")
    expect(section).to_contain_text("names only the conversation")
    section.get_by_role("button", name="Turn on notifications").click()
    expect(section.get_by_role("status")).to_contain_text("On:")
    expect(section.get_by_role("button", name="Turn on notifications")).to_be_hidden()
    check_accessibility(ben, "settings: notifications")
    screenshot(ben, "settings-notifications")

    # Looking at Settings, not the chat: the tab's title counts what is unread.
    expect(ben).to_have_title("(1) Settings · Circle", timeout=LIVE_TIMEOUT)
    send(ana, "second hello")
    expect(ben).to_have_title("(2) Settings · Circle", timeout=LIVE_TIMEOUT)
    assert ben.evaluate("window.__notes") == [], "no notification while the page is visible"

    # Hidden: a notification names the conversation, nothing of the message.
    ben.evaluate("window.__hidden = true")
    send(ana, "the secret plan")
    [note] = notes_when(ben, 1)
    assert note["title"] == "Ana" and note["body"] == "A new message.", note
    assert "secret" not in str(note)

    # With previews allowed in this browser: the sender and the text.
    ben.evaluate("window.__hidden = false")
    section.get_by_label("Show the sender and the text in notifications").check()
    ben.evaluate("window.__hidden = true")
    send(ana, "meet at noon")
    assert notes_when(ben, 2)[1] == {"title": "Ana", "body": "Ana: meet at noon"}

    # Reading the conversation clears the count.
    ben.evaluate("window.__hidden = false")
    ben.get_by_role("link", name="Ana").first.click()
    expect(messages(ben).get_by_text("meet at noon")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(ben).to_have_title("Ana · Circle", timeout=LIVE_TIMEOUT)
    ana_watch.assert_clean()
    ben_watch.assert_clean()
