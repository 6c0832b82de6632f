"""The danger zone in the browser (docs/API.md "Destruction"): destroying an account, a
conversation and the panic lock, each as a person would do it, against a real `circle serve`,
with a second browser for the other member's side."""
import re

from playwright.sync_api import expect

from conftest import screenshot
from test_ui import (DESKTOP, KEY_WORK_TIMEOUT, LIVE_TIMEOUT, PASSWORD, check_accessibility, dashboard,
                     drop_expected_http_errors, messages, open_conversation_with, register, send, sign_in,
                     start_direct, unique)


def circle_databases(page):
    return page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name).filter((n) => n && n.startsWith('circle'))")


def destroy_in_dialog(page, title, phrase, password=PASSWORD):
    dialog = page.get_by_role("dialog", name=title)
    expect(dialog.get_by_text("This cannot be undone.")).to_be_visible()
    submit = dialog.locator("button[type=submit]")
    dialog.get_by_label("Your password").fill(password)
    dialog.get_by_label(f'Type "{phrase}" to confirm').fill(phrase[:-1])
    expect(submit).to_be_disabled()
    dialog.get_by_label(f'Type "{phrase}" to confirm').fill(phrase)
    expect(submit).to_be_enabled()
    submit.click()
    return dialog


def test_destroying_an_account_signs_out_wipes_the_device_and_shows_left_to_the_others(new_page, circle):
    ann_name, bea_name = unique("ann"), unique("bea")
    ann, ann_watch = new_page(circle.origin, **DESKTOP)
    bea, bea_watch = new_page(circle.origin, **DESKTOP)
    register(ann, circle.origin, ann_name, "Ann Archer")
    register(bea, circle.origin, bea_name, "Bea Baker")
    start_direct(ann, bea_name, "Bea Baker")
    send(ann, "before the end")
    open_conversation_with(bea, "Ann Archer")
    expect(messages(bea).get_by_text("before the end")).to_be_visible(timeout=LIVE_TIMEOUT)
    assert circle_databases(ann), "the browser keeps Circle's state while signed in"

    ann.get_by_role("link", name="Settings").click()
    zone = ann.get_by_role("region", name="Danger zone")
    expect(zone).to_be_visible()
    zone.get_by_role("button", name="Destroy my account").click()
    dialog = ann.get_by_role("dialog", name="Destroy my account")
    expect(dialog.get_by_text("not even with your password")).to_be_visible()
    check_accessibility(ann, "destroy account dialog")
    screenshot(ann, "destroy-account")

    # A wrong password is refused by the server and destroys nothing.
    destroy_in_dialog(ann, "Destroy my account", "destroy my account", password="not the password at all")
    expect(dialog.get_by_role("alert")).to_contain_text("password", timeout=KEY_WORK_TIMEOUT)
    drop_expected_http_errors(ann_watch, 403)

    destroy_in_dialog(ann, "Destroy my account", "destroy my account")
    expect(dialog.get_by_role("status")).to_contain_text("keys destroyed", timeout=KEY_WORK_TIMEOUT)
    expect(dialog.get_by_role("status")).to_contain_text("done", timeout=LIVE_TIMEOUT)
    expect(dialog.get_by_role("status")).to_contain_text("1 of 1 messages")
    dialog.get_by_role("button", name="Done").click()
    expect(ann.get_by_text("Your account was destroyed")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(ann.get_by_role("heading", name="Sign in")).to_be_visible()
    assert circle_databases(ann) == [], "nothing of Circle stays in this browser"

    # The account is gone: signing in again is refused like a wrong password.
    sign_in(ann, ann_name)
    expect(ann.get_by_role("alert")).to_contain_text("wrong", timeout=KEY_WORK_TIMEOUT)
    drop_expected_http_errors(ann_watch, 401)

    # Bea's conversation goes on and shows that Ann left. What Bea's device already received stays
    # hers (nobody can reach into another device); a new device of Bea's finds nothing of Ann's.
    bea.reload()
    open_conversation_with(bea, "Ann Archer")
    fresh, fresh_watch = new_page(circle.origin, **DESKTOP)
    fresh.goto(circle.origin + "/")
    sign_in(fresh, bea_name)
    expect(dashboard(fresh)).to_be_visible(timeout=KEY_WORK_TIMEOUT)
    open_conversation_with(fresh, "Ann Archer")
    expect(messages(fresh).get_by_text("before the end")).to_have_count(0)
    bea.get_by_role("button", name="Members and safety numbers").click()
    expect(bea.get_by_role("dialog", name="Members").get_by_text("Left the Circle")).to_be_visible(timeout=LIVE_TIMEOUT)
    ann_watch.assert_clean()
    bea_watch.assert_clean()
    fresh_watch.assert_clean()


def test_an_admin_destroys_a_conversation_for_everyone_and_the_panic_shortcut_locks_a_device(new_page, circle):
    cas_name, dan_name = unique("cas"), unique("dan")
    cas, cas_watch = new_page(circle.origin, **DESKTOP)
    dan, dan_watch = new_page(circle.origin, **DESKTOP)
    register(cas, circle.origin, cas_name, "Cas Cole")
    register(dan, circle.origin, dan_name, "Dan Dale")
    start_direct(cas, dan_name, "Dan Dale")
    send(cas, "soon gone")
    link = dan.get_by_role("link", name=re.compile("Cas Cole"))
    expect(link).to_contain_text("soon gone", timeout=LIVE_TIMEOUT)

    cas.get_by_role("button", name="Conversation settings").click()
    cas.get_by_role("dialog", name="Conversation settings").get_by_role("button", name="Destroy this conversation").click()
    dialog = destroy_in_dialog(cas, "Destroy this conversation", "destroy this conversation")
    expect(dialog.get_by_role("status")).to_contain_text("done", timeout=KEY_WORK_TIMEOUT)
    check_accessibility(cas, "destroy conversation dialog")
    dialog.get_by_role("button", name="Done").click()
    # Gone for both members, live.
    expect(link).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(cas.get_by_role("link", name=re.compile("Dan Dale"))).to_have_count(0, timeout=LIVE_TIMEOUT)

    # The panic shortcut: off until chosen; then one key press locks the device, no server call.
    dan.get_by_role("link", name="Settings").click()
    dan.get_by_label("Panic shortcut").select_option(label="Ctrl+Shift+L")
    assert circle_databases(dan)
    requests = []
    dan.on("request", lambda request: requests.append(request.url) if "/api/" in request.url else None)
    dan.keyboard.press("Control+Shift+L")
    expect(dan.get_by_text("Locked.")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(dan.get_by_role("heading", name="Sign in")).to_be_visible()
    assert circle_databases(dan) == []
    assert not [url for url in requests if "/auth/logout" in url], "the panic lock does not tell the server"
    # Unlocking again takes the password, and works: the server session was never touched.
    sign_in(dan, dan_name)
    expect(dashboard(dan)).to_be_visible(timeout=KEY_WORK_TIMEOUT)
    cas_watch.assert_clean()
    dan_watch.assert_clean()
