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


def test_two_admins_destroy_the_whole_server_one_asks_the_other_approves_and_it_stops_empty(new_page, tmp_path):
    """The whole server from the browser: with two admins, the request waits for the second's
    approval (a refusal destroys nothing), then the approval destroys everything; the embedded
    server removes its key files and stops, and starts again empty with new keys."""
    import time
    from conftest import CircleServe
    from test_invitations import admin_link

    server = CircleServe(tmp_path, "invite").start()
    try:
        pepper = tmp_path / "data" / "pepper.key"
        old_pepper = pepper.read_bytes()
        eve_name, fay_name = unique("eve"), unique("fay")
        eve, eve_watch = new_page(server.origin, **DESKTOP)
        fay, fay_watch = new_page(server.origin, **DESKTOP)
        eve.goto(admin_link(server))
        register(eve, server.origin, eve_name, "Eve Admin", path=None)
        fay.goto(admin_link(server))
        register(fay, server.origin, fay_name, "Fay Admin", path=None)
        start_direct(eve, fay_name, "Fay Admin")
        send(eve, "the last message")

        def ask(page):
            page.get_by_role("link", name="Settings").click()
            zone = page.get_by_role("region", name="Danger zone")
            zone.get_by_role("button", name="Destroy the server").click()
            dialog = destroy_in_dialog(page, "Destroy the whole server", "destroy everything")
            expect(dialog.get_by_role("status")).to_contain_text("Waiting for another admin to approve", timeout=KEY_WORK_TIMEOUT)
            return dialog

        # Eve asks; Fay is alerted live and refuses: nothing is destroyed, Eve is told.
        dialog = ask(eve)
        check_accessibility(eve, "server destruction waiting")
        banner = fay.locator(".security-alert").filter(has_text="asked to destroy the whole server")
        expect(banner).to_be_visible(timeout=LIVE_TIMEOUT)
        banner.get_by_role("button", name=re.compile("^Review the request")).click()
        review = fay.get_by_role("dialog", name="Approve destroying the whole server?")
        expect(review.get_by_text("Another admin asked")).to_be_visible()
        check_accessibility(fay, "server destruction approval")
        screenshot(fay, "approve-server-destruction")
        review.get_by_role("button", name="Refuse").click()
        expect(dialog.get_by_role("alert")).to_contain_text("refused", timeout=LIVE_TIMEOUT)
        dialog.press("Escape")
        fay.reload()
        open_conversation_with(fay, "Eve Admin")
        expect(messages(fay).get_by_text("the last message")).to_be_visible(timeout=LIVE_TIMEOUT)

        # Eve asks again; Fay approves from her own danger zone.
        dialog = ask(eve)
        fay.get_by_role("link", name="Settings").click()
        fay.get_by_role("region", name="Danger zone").get_by_role("button", name="Review the request").click()
        review = fay.get_by_role("dialog", name="Approve destroying the whole server?")
        review.get_by_label("Your password").fill(PASSWORD)
        review.get_by_label('Type "destroy everything" to approve').fill("destroy everything")
        review.get_by_role("button", name="Approve and destroy").click()
        expect(review.get_by_role("status")).to_contain_text("done", timeout=LIVE_TIMEOUT)
        expect(dialog.get_by_role("status")).to_contain_text("done", timeout=LIVE_TIMEOUT)
        review.get_by_role("button", name="Done").click()
        expect(fay.get_by_text("The whole server was destroyed")).to_be_visible(timeout=LIVE_TIMEOUT)
        dialog.get_by_role("button", name="Done").click()
        expect(eve.get_by_text("The whole server was destroyed")).to_be_visible(timeout=LIVE_TIMEOUT)
        assert circle_databases(eve) == [] and circle_databases(fay) == []

        # The embedded server destroyed its own keys and stopped; it starts again empty.
        deadline = time.time() + 40
        while server.process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert server.process.returncode == 0, "circle serve stops after the server's destruction"
        assert not (tmp_path / "data" / "activity.key").exists()
        assert [path for path in (tmp_path / "data" / "vault").rglob("*") if path.is_file()] == [], "no blob is left"
        server.start()
        assert pepper.read_bytes() != old_pepper, "a new pepper"
        sign_in(eve, eve_name)
        expect(eve.get_by_role("alert")).to_contain_text("wrong", timeout=KEY_WORK_TIMEOUT)
        for watch in (eve_watch, fay_watch):
            drop_expected_http_errors(watch, 401)
            drop_expected_http_errors(watch, 409)
        eve_watch.assert_clean()
        fay_watch.assert_clean()
    finally:
        server.stop()


def test_an_admin_sets_how_long_messages_are_kept_and_every_device_drops_older_ones(new_page, circle):
    """A conversation's retention (issue 18): a signed settings op every member sees, as a line
    in the chat and in the header; a device whose clock passed it drops its copies by itself
    (the server stops serving them, tested in RetentionTests)."""
    ivy_name, jon_name = unique("ivy"), unique("jon")
    ivy, ivy_watch = new_page(circle.origin, **DESKTOP)
    jon, jon_watch = new_page(circle.origin, **DESKTOP)
    register(ivy, circle.origin, ivy_name, "Ivy Irons")
    register(jon, circle.origin, jon_name, "Jon Jones")
    start_direct(ivy, jon_name, "Jon Jones")
    send(ivy, "kept for a day")
    open_conversation_with(jon, "Ivy Irons")
    expect(messages(jon).get_by_text("kept for a day")).to_be_visible(timeout=LIVE_TIMEOUT)
    # Jon's clock is under the test's control from here (it runs as usual until moved).
    jon.clock.install()

    ivy.get_by_role("button", name="Conversation settings").click()
    settings = ivy.get_by_role("dialog", name="Conversation settings")
    expect(settings.get_by_text("deleted for everyone, already sent ones included")).to_be_visible()
    check_accessibility(ivy, "conversation settings with retention")
    settings.get_by_label("Keep messages").select_option(label="1 day")
    settings.get_by_role("button", name="Save").click()
    expect(settings).to_have_count(0)
    expect(ivy.get_by_text("Kept 1 day")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(messages(ivy).get_by_text("You set messages to be deleted for everyone after 1 day")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(messages(jon).get_by_text("Ivy Irons set messages to be deleted for everyone after 1 day")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(jon.get_by_text("Kept 1 day")).to_be_visible()
    expect(messages(jon).get_by_text("kept for a day")).to_be_visible()

    # A day and a bit later on Jon's device: the message is gone from it, plaintext included.
    jon.clock.fast_forward("25:00:00")
    expect(messages(jon).get_by_text("kept for a day")).to_have_count(0, timeout=LIVE_TIMEOUT)
    # Still signed in, in the same conversation: only the message went.
    expect(jon.get_by_role("heading", level=1, name="Ivy Irons")).to_be_visible()
    expect(messages(jon).get_by_text("Ivy Irons set messages to be deleted for everyone after 1 day")).to_be_visible()
    ivy_watch.assert_clean()
    jon_watch.assert_clean()
