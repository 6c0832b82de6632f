"""Invitations from the browser (issue 19.3, 19.4): an admin's empty home says to invite the first
members and leads to the Invitations page; an invite made there (with a note and an expiry)
registers Ben in another browser and shows who used it; a revoked or used invite says so plainly
when its link is opened, before anyone types; and a registration that fails later keeps what was
typed, with the reason in view."""
import re

from playwright.sync_api import expect

from conftest import screenshot
from test_ui import DESKTOP, KEY_WORK_TIMEOUT, PASSWORD, check_accessibility, door_gone, drop_expected_http_errors, fill_registration, register, unique


def admin_link(server) -> str:
    made = server.cli("invite", "create", "--admin", "--http-public-url", server.origin)
    assert made.returncode == 0, made.stderr
    return re.search(r"https?://\S+", made.stdout).group(0)


def test_an_admin_invites_from_the_browser_and_sees_who_joined(new_page, circle_with_invites):
    server = circle_with_invites
    page, watch = new_page(server.origin, **DESKTOP)
    page.goto(admin_link(server))
    admin = unique("root")
    register(page, server.origin, admin, "Root", path=None)
    door_gone(page)

    # The empty home of a new admin says what to do next.
    invite_first = page.get_by_role("link", name="Invite your first members")
    expect(invite_first).to_be_visible()
    invite_first.click()
    section = page.locator("#invitations")
    expect(section.get_by_role("heading", name="Invitations")).to_be_visible()

    section.get_by_label("Note (only admins see it)").fill("Ben, from the book club")
    section.get_by_label("Valid for").select_option(label="30 days")
    section.get_by_role("button", name="Create invite").click()
    link_box = section.get_by_label("Invite link")
    expect(link_box).to_have_value(re.compile(rf"^{re.escape(server.origin)}/#/invite/[A-Za-z0-9_-]+$"))
    link = link_box.input_value()
    listed = section.locator(".invite-list li").first
    expect(listed.locator(".invite-note")).to_have_text("Ben, from the book club")
    expect(listed).to_contain_text("Open until")
    screenshot(page, "invitations")
    check_accessibility(page, "invitations")

    # Ben opens the link elsewhere: the page says the invite is good, and he joins.
    ben_page, ben_watch = new_page(server.origin, **DESKTOP)
    ben_page.goto(link)
    expect(ben_page.get_by_text(re.compile("This invite is valid until"))).to_be_visible()
    ben = unique("ben")
    register(ben_page, server.origin, ben, "Ben", path=None)
    ben_watch.assert_clean()

    page.reload()
    expect(page.locator("#invitations .invite-list")).to_contain_text(f"Used by Ben (@{ben})")

    # The same link again: said plainly before anyone types, and the form cannot be sent.
    late, late_watch = new_page(server.origin, **DESKTOP)
    late.goto(link)
    expect(late.get_by_role("alert")).to_contain_text("already used")
    expect(late.get_by_role("button", name="Create account")).to_be_disabled()

    # A spare invite, revoked: its link says so.
    section = page.locator("#invitations")
    section.get_by_label("Note (only admins see it)").fill("spare")
    section.get_by_role("button", name="Create invite").click()
    expect(section.get_by_label("Invite link")).to_have_value(re.compile("/#/invite/"))
    spare = section.get_by_label("Invite link").input_value()
    section.get_by_role("button", name="Revoke invite: spare").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(section.locator(".invite-list li").first).to_contain_text("Revoked")
    late.goto(spare)
    expect(late.get_by_role("alert")).to_contain_text("withdrawn")
    watch.assert_clean()
    late_watch.assert_clean()


def test_a_registration_that_fails_keeps_what_was_typed(new_page, circle_with_invites):
    server = circle_with_invites
    made = server.cli("invite", "create", "--http-public-url", server.origin)
    link = re.search(r"https?://\S+", made.stdout).group(0)
    taken = unique("tina")
    first, _ = new_page(server.origin, **DESKTOP)
    first.goto(admin_link(server))
    register(first, server.origin, taken, "Tina", path=None)

    page, watch = new_page(server.origin, viewport={"width": 1280, "height": 600})
    page.goto(link)
    fill_registration(page, taken, "Another Tina")
    page.get_by_role("button", name="Create account").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("taken", timeout=KEY_WORK_TIMEOUT)
    expect(alert).to_be_in_viewport()
    # Nothing typed is lost: change the name and send again.
    expect(page.get_by_label("Password", exact=True)).to_have_value(PASSWORD)
    expect(page.get_by_label("Repeat password")).to_have_value(PASSWORD)
    expect(page.get_by_label("Display name")).to_have_value("Another Tina")
    page.get_by_label("Username").fill(unique("tanya"))
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("heading", name="Save your recovery key").wait_for(timeout=KEY_WORK_TIMEOUT)
    drop_expected_http_errors(watch, 409)
    watch.assert_clean()
