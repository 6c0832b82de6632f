"""Managing vault files in the web client (Web/js/ui/vault.js, vault-file-dialogs.js, menu.js)
against a real `circle serve`: the quota shown, an expiry chosen at upload and changed later with
its countdown, the file's menu by keyboard, sharing a file with one member without making it
public, a link that leaves the file in its conversation, and access taken back.
"""
import re

from playwright.sync_api import expect

from conftest import screenshot
from test_ui import (
    DESKTOP, LIVE_TIMEOUT, SIGNED_IN_ACCOUNT, check_accessibility, drop_expected_http_errors, open_conversation_with, register, start_direct, unique,
)
from test_vault_ui import (
    MB, create_link, download_from, expect_stages_done, file_menu, file_row, open_vault, random_file, upload_item,
)


def server_files(page):
    """The server's records of the account's files (read with the session's token from IndexedDB)."""
    return page.evaluate("""async () => {
      const account = await (""" + SIGNED_IN_ACCOUNT + """)();
      const answer = await fetch('/api/v1/vault/files', { headers: { Authorization: `Bearer ${account.token}` } });
      return (await answer.json()).files;
    }""")


def test_expiry_quota_and_the_file_menu(new_page, circle, tmp_path):
    page, watch = new_page(circle.origin, **DESKTOP)
    register(page, circle.origin, unique("quinn"), "Quinn")
    open_vault(page)
    usage = page.get_by_text(re.compile(r"^[\d.]+ (bytes|KB|MB) of [\d.]+ (MB|GB|TB) used$"))
    expect(usage).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(usage).to_have_text(re.compile(r"^0 bytes of"))

    # Chosen before the upload: the file deletes itself after a day, and counts down.
    page.get_by_label("Delete automatically").select_option(label="After 1 day")
    name = "expiring.bin"
    path, _ = random_file(tmp_path, name, 1 * MB)
    page.get_by_label("Choose files").set_input_files(str(path))
    expect_stages_done(upload_item(page, name))
    row = file_row(page, name)
    expect(row).to_contain_text(re.compile(r"deleted in 2[34]:\d\d:\d\d"), timeout=LIVE_TIMEOUT)
    first = row.get_by_text(re.compile(r"^deleted in")).text_content()
    page.wait_for_timeout(1500)
    assert row.get_by_text(re.compile(r"^deleted in")).text_content() != first, "the countdown moves"
    expect(usage).to_have_text(re.compile(r"^1\.\d+ MB of"))

    # The finished upload makes way: only the file list shows it, in view without scrolling.
    expect(upload_item(page, name)).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(row).to_be_in_viewport()

    # The menu by keyboard: open with Enter, move with the arrows, Escape returns to the button.
    more = row.get_by_role("button", name=f"More actions for {name}")
    more.focus()
    page.keyboard.press("Enter")
    menu = page.get_by_role("menu", name=f"More actions for {name}")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("menuitem", name="Share with a member…")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(menu.get_by_role("menuitem", name="Delete…")).to_be_focused()
    check_accessibility(page, "vault file menu")
    screenshot(page, "vault-file-menu")
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(more).to_be_focused()

    # Changed later: an hour, then never.
    file_menu(page, name, "Delete automatically…")
    dialog = page.get_by_role("dialog", name=f"When {name} is deleted")
    dialog.get_by_label("Delete automatically").select_option(label="After 1 hour")
    dialog.get_by_role("button", name="Save").click()
    expect(row).to_contain_text(re.compile(r"deleted in (59|60):\d\d"), timeout=LIVE_TIMEOUT)
    expires = [f["expiresAt"] for f in server_files(page)]
    assert len(expires) == 1 and 0 < expires[0] - page.evaluate("Date.now()") <= 3_600_000
    file_menu(page, name, "Delete automatically…")
    dialog.get_by_label("Delete automatically").select_option(label="Never")
    dialog.get_by_role("button", name="Save").click()
    expect(row.get_by_text(re.compile(r"^deleted in"))).to_have_count(0, timeout=LIVE_TIMEOUT)
    assert [f["expiresAt"] for f in server_files(page)] == [0]
    screenshot(page, "vault-managed")
    watch.assert_clean()


def test_share_with_one_member_then_a_link_keeps_it_in_the_conversation(new_page, circle, tmp_path):
    ann_name, ben_name = unique("ann"), unique("ben")
    ann, ann_watch = new_page(circle.origin, **DESKTOP)
    ben, ben_watch = new_page(circle.origin, **DESKTOP)
    register(ann, circle.origin, ann_name, "Ann Owner")
    register(ben, circle.origin, ben_name, "Ben Friend")
    start_direct(ann, ben_name, "Ben Friend")

    open_vault(ann)
    name = "minutes.pdf"
    path, original = random_file(tmp_path, name, 2 * MB + 5)
    ann.get_by_label("Choose files").set_input_files(str(path))
    expect_stages_done(upload_item(ann, name))
    row = file_row(ann, name)
    expect(row).to_contain_text("Private", timeout=LIVE_TIMEOUT)

    # Shared with Ben alone: it arrives in our direct conversation; it is not public.
    file_menu(ann, name, "Share with a member…")
    dialog = ann.get_by_role("dialog", name=f"Share {name} with a member")
    check_accessibility(ann, "share with a member")
    dialog.get_by_label("Username").fill(ben_name)
    dialog.get_by_role("button", name="Share").click()
    expect(dialog).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(row).to_contain_text("Shared in Ben Friend", timeout=LIVE_TIMEOUT)
    assert [f["level"] for f in server_files(ann)] == ["conversation"]

    open_conversation_with(ben, "Ann Owner")
    theirs = ben.get_by_role("region", name="Messages").get_by_role("listitem").filter(has_text=name)
    expect(theirs).to_contain_text("2.00 MB", timeout=LIVE_TIMEOUT)
    got_name, got = download_from(ben, theirs.get_by_role("button", name="Download"), tmp_path)
    assert (got_name, got) == (name, original)

    # A link adds whoever holds it, and Ben keeps the file.
    create_link(ann, name)
    ann.get_by_role("dialog", name=f"Share {name}").get_by_role("button", name="Close").click()
    expect(row).to_contain_text("Shared by link and in Ben Friend", timeout=LIVE_TIMEOUT)
    got_name, got = download_from(ben, theirs.get_by_role("button", name="Download"), tmp_path)
    assert (got_name, got) == (name, original)

    # Only me again: the link ends and Ben can no longer download it.
    file_menu(ann, name, "Who can open it…")
    access = ann.get_by_role("dialog", name=f"Who can open {name}")
    expect(access.get_by_label("Anyone with a link")).to_be_checked()
    expect(access).to_contain_text("Its 1 live link stops working.")
    check_accessibility(ann, "who can open a file")
    screenshot(ann, "vault-access")
    access.get_by_label("Only me").check()
    access.get_by_role("button", name="Save").click()
    expect(access).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(row).to_contain_text("Private", timeout=LIVE_TIMEOUT)
    expect(row).not_to_contain_text("live link")
    assert [(f["level"], f.get("conversationId")) for f in server_files(ann)] == [("private", None)]
    theirs.get_by_role("button", name="Download").click()
    expect(theirs).to_contain_text("Could not open it", timeout=LIVE_TIMEOUT)

    # And back into the conversation from the same dialog: Ben opens it again.
    file_menu(ann, name, "Who can open it…")
    access.get_by_label("The members of a conversation").check()
    access.get_by_label("Conversation", exact=True).select_option(label="Ben Friend")
    access.get_by_role("button", name="Save").click()
    expect(access).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(row).to_contain_text("Shared in Ben Friend", timeout=LIVE_TIMEOUT)
    got_name, got = download_from(ben, theirs.last.get_by_role("button", name="Download"), tmp_path)
    assert (got_name, got) == (name, original)

    ann_watch.assert_clean()
    drop_expected_http_errors(ben_watch, 404)
    ben_watch.assert_clean()
