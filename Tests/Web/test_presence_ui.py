"""Presence and typing indicators in the web client, between two real browsers signed in to a
real `circle serve`: the presence dot on avatars with its state in words for screen readers,
the status menu (busy with a custom status, invisible), going offline when the page closes,
and "is typing…" under a conversation, with the account's typing preference honoured on both
sides.
"""
import json
import re

from playwright.sync_api import expect

from conftest import screenshot
from test_ui import (DESKTOP, KEY_WORK_TIMEOUT, LIVE_TIMEOUT, check_accessibility, dashboard, register, send,
                     start_direct, unique)


def sidebar(page):
    return page.get_by_role("complementary", name="Conversations")


def status_button(page):
    return page.get_by_role("banner").get_by_role("button", name=re.compile("^Your status"))


def set_status(page, state, emoji="", text=""):
    status_button(page).click()
    dialog = page.get_by_role("dialog", name="Set your status")
    dialog.get_by_role("radio", name=re.compile(f"^{state}")).check()
    dialog.get_by_label("Emoji").fill(emoji)
    dialog.get_by_label("Status", exact=True).fill(text)
    dialog.get_by_role("button", name="Save status").click()
    expect(dialog).to_have_count(0)


def typing_frames(page):
    """The typing frames the page's socket sends and receives, recorded from now on."""
    frames = {"sent": [], "received": []}

    def watch(socket):
        for direction in ("sent", "received"):
            socket.on(f"frame{direction}", lambda payload, direction=direction: record(direction, payload))

    def record(direction, payload):
        if isinstance(payload, str) and '"typing"' in payload:
            frame = json.loads(payload)
            if frame.get("type") == "typing":
                frames[direction].append(frame)

    page.on("websocket", watch)
    return frames


def test_presence_dots_status_menu_and_offline_when_the_page_closes(new_page, circle):
    ben_page, ben_watch = new_page(circle.origin, **DESKTOP)
    ana, ana_watch = new_page(circle.origin, **DESKTOP)
    ana_name, ben_name = unique("ana"), unique("ben")
    register(ben_page, circle.origin, ben_name, "Ben")
    ben_watch.assert_clean()
    ben_context = ben_page.context
    ben_page.close()

    register(ana, circle.origin, ana_name, "Ana")
    start_direct(ana, ben_name, "Ben")
    # Ben has no page open: offline, with when he was last seen.
    expect(sidebar(ana).get_by_text(re.compile(r"^Ben, offline, last seen"))).to_have_count(1, timeout=LIVE_TIMEOUT)
    header = ana.get_by_role("region", name="Ben")

    # Ben opens Circle again: Ana sees him come online, in the list and in the chat's header.
    ben = ben_context.new_page()
    ben.goto(circle.origin + "/")
    expect(dashboard(ben)).to_be_visible(timeout=KEY_WORK_TIMEOUT)
    expect(sidebar(ana).get_by_text("Ben, online", exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(header.locator(".chat-presence")).to_have_text("Online", timeout=LIVE_TIMEOUT)
    expect(sidebar(ana).locator(".conversation .presence-dot")).to_have_attribute("data-state", "online")

    # Auto-away: Ben's page hidden for a few seconds makes him away; visible again, online.
    ben.evaluate("""() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(sidebar(ana).get_by_text("Ben, away", exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)
    ben.evaluate("""() => {
      delete document.hidden;
      document.dispatchEvent(new Event('visibilitychange'));
    }""")
    expect(sidebar(ana).get_by_text("Ben, online", exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)

    # The status menu: busy (do not disturb) with a custom status, seen live by Ana.
    status_button(ben).click()
    dialog = ben.get_by_role("dialog", name="Set your status")
    expect(dialog.get_by_role("radio", name="Online")).to_be_checked()
    expect(dialog.get_by_label("Clear after")).to_have_value("never")
    expect(dialog.get_by_label("Clear after").locator("option")).to_have_text(
        ["Don't clear", "30 minutes", "1 hour", "4 hours", "Today", "This week"])
    dialog.get_by_role("radio", name="Busy (do not disturb)").check()
    dialog.get_by_label("Emoji").fill("🍕")
    dialog.get_by_label("Status", exact=True).fill("At lunch")
    dialog.get_by_label("Clear after").select_option("1h")
    check_accessibility(ben, "status menu")
    screenshot(ben, "status-menu")
    dialog.get_by_role("button", name="Save status").click()
    expect(dialog).to_have_count(0)
    expect(status_button(ben)).to_have_accessible_name("Your status: Busy (do not disturb), 🍕 At lunch. Change status")

    expect(sidebar(ana).get_by_text("Ben, busy", exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(sidebar(ana).locator(".conversation-status")).to_have_text("🍕 At lunch")
    expect(header.locator(".chat-presence")).to_have_text("Busy (do not disturb) · 🍕 At lunch")

    # Invisible: offline to everyone else, and no status shown.
    set_status(ben, "Invisible")
    expect(sidebar(ana).get_by_text(re.compile(r"^Ben, offline"))).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(sidebar(ana).locator(".conversation-status")).to_have_count(0)

    # Online again, then Ben closes his page: offline once the server hears the socket close.
    set_status(ben, "Online")
    expect(sidebar(ana).get_by_text("Ben, online", exact=True)).to_have_count(1, timeout=LIVE_TIMEOUT)
    ben.close()
    expect(sidebar(ana).get_by_text(re.compile(r"^Ben, offline"))).to_have_count(1, timeout=LIVE_TIMEOUT)
    expect(header.locator(".chat-presence")).to_have_text(re.compile(r"^Offline · last seen"))
    ana_watch.assert_clean()


def test_typing_indicators_follow_the_account_preference(new_page, circle):
    ana, ana_watch = new_page(circle.origin, **DESKTOP)
    ben, ben_watch = new_page(circle.origin, **DESKTOP)
    ana_frames, ben_frames = typing_frames(ana), typing_frames(ben)
    ana_name, ben_name = unique("ana"), unique("ben")
    register(ana, circle.origin, ana_name, "Ana")
    register(ben, circle.origin, ben_name, "Ben")
    start_direct(ana, ben_name, "Ben")
    send(ana, "hi Ben")
    ben.get_by_role("link", name=re.compile("Ana")).click()
    expect(ben.get_by_role("heading", level=1, name="Ana")).to_be_visible(timeout=LIVE_TIMEOUT)
    indicator = ana.locator(".typing-indicator")

    # Ben types: Ana sees it under the conversation and in the list; it goes when he sends.
    box = ben.get_by_role("textbox", name="Message")
    box.press_sequentially("hello there", delay=40)
    expect(indicator).to_have_text("Ben is typing…", timeout=LIVE_TIMEOUT)
    expect(indicator).to_have_attribute("role", "status")
    expect(sidebar(ana).locator(".conversation-typing")).to_have_text("Ben is typing…")
    screenshot(ana, "typing-indicator")
    box.press("Enter")
    expect(ana.get_by_role("region", name="Messages").get_by_text("hello there")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(indicator).to_have_text("", timeout=LIVE_TIMEOUT)
    expect(sidebar(ana).locator(".conversation-typing")).to_have_count(0)

    # Typing and clearing the text: a stop, and the indicator goes.
    box.press_sequentially("wait", delay=40)
    expect(indicator).to_have_text("Ben is typing…", timeout=LIVE_TIMEOUT)
    box.fill("")
    box.dispatch_event("input")
    expect(indicator).to_have_text("", timeout=LIVE_TIMEOUT)
    assert [frame["data"]["state"] for frame in ben_frames["sent"]][-1] == "stop"

    # Ben turns typing indicators off (kept by the server for his account): he sends none.
    ben.get_by_role("link", name="Settings").click()
    switch = ben.get_by_label("Send and show typing indicators")
    expect(switch).to_be_checked()
    switch.uncheck()
    expect(switch).to_be_enabled()
    expect(switch).not_to_be_checked()
    ben.reload()
    expect(ben.get_by_label("Send and show typing indicators")).not_to_be_checked(timeout=LIVE_TIMEOUT)
    ben.go_back()
    expect(ben.get_by_role("heading", level=1, name="Ana")).to_be_visible(timeout=LIVE_TIMEOUT)
    sent_before = len(ben_frames["sent"])
    ben.get_by_role("textbox", name="Message").press_sequentially("quiet", delay=40)
    ben.get_by_role("textbox", name="Message").press("Enter")
    expect(ana.get_by_role("region", name="Messages").get_by_text("quiet", exact=True)).to_be_visible(timeout=LIVE_TIMEOUT)
    assert len(ben_frames["sent"]) == sent_before, ben_frames["sent"][sent_before:]
    expect(indicator).to_have_text("")

    # Ben on again, Ana off: Ben's typing reaches Ana's device no more, and it shows nothing.
    ben.get_by_role("link", name="Settings").click()
    ben.get_by_label("Send and show typing indicators").check()
    expect(ben.get_by_label("Send and show typing indicators")).to_be_enabled()
    ben.go_back()
    ana.get_by_role("link", name="Settings").click()
    ana.get_by_label("Send and show typing indicators").uncheck()
    expect(ana.get_by_label("Send and show typing indicators")).to_be_enabled()
    ana.go_back()
    expect(ana.get_by_role("heading", level=1, name="Ben")).to_be_visible()
    received_before = len(ana_frames["received"])
    sent_before = len(ben_frames["sent"])
    ben.get_by_role("textbox", name="Message").press_sequentially("are you there", delay=40)
    ben.get_by_role("textbox", name="Message").press("Enter")
    expect(ana.get_by_role("region", name="Messages").get_by_text("are you there")).to_be_visible(timeout=LIVE_TIMEOUT)
    assert any(frame["data"]["state"] == "start" for frame in ben_frames["sent"][sent_before:])
    assert len(ana_frames["received"]) == received_before, ana_frames["received"][received_before:]
    expect(indicator).to_have_text("")
    ana_watch.assert_clean()
    ben_watch.assert_clean()
