"""The web client's encrypted file vault (Web/js/client/vault.js, Web/js/ui/vault*.js,
Web/js/ui/share-page.js) against a real `circle serve`, driven as a person would.

Files are random bytes written to temp files; what comes back (through the browser's own
downloads) is compared by SHA-256 with what went in. Share links are opened in fresh browser
contexts with no account. Every page must log no console errors and no CSP violations
(`watch.assert_clean()`); answers a test provokes on purpose (a dead link's 404, a wrong
password's 403) are taken off that list first, by status. Screenshots go to
test-artifacts/web/.
"""
import base64
import hashlib
import os
import re
import urllib.request
from urllib.parse import urlparse

from playwright.sync_api import expect

from conftest import screenshot
from test_client import BLANK, Browser, wait_until
from test_ui import (
    DESKTOP, LIVE_TIMEOUT, PHONE, check_accessibility, door_gone, drop_expected_http_errors, open_conversation_with, register,
    start_direct, unique,
)

UPLOAD_TIMEOUT = 120_000
MB = 1000 * 1000


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def random_file(tmp_path, name, size):
    """A file of `size` random bytes; returns (path, sha256 hex)."""
    path = tmp_path / name
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            handle.write(block)
            left -= len(block)
    return path, sha256_file(path)


def open_vault(page):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Vault").click()
    expect(page.get_by_role("heading", level=1, name="Vault")).to_be_visible()
    assert urlparse(page.url).path == "/vault"


def upload_item(page, name):
    return page.get_by_role("list", name="Uploads").get_by_role("listitem").filter(has_text=name).first


def expect_stages_done(item, timeout=UPLOAD_TIMEOUT):
    for stage in ("Encrypting", "Uploading", "Verifying"):
        expect(item.get_by_role("listitem").filter(has_text=stage)).to_contain_text(f"{stage}: done", timeout=timeout)
    expect(item).to_contain_text("Encrypted, uploaded and verified.")


def upload_new_file(page, tmp_path, name, size):
    """Uploads a new random file through the vault page's picker; returns its path and bytes."""
    path, original = random_file(tmp_path, name, size)
    page.get_by_label("Choose files").set_input_files(str(path))
    expect_stages_done(upload_item(page, name))
    return path, original


def file_row(page, name):
    return page.get_by_role("list", name="Your files").get_by_role("listitem").filter(has_text=name)


def file_menu(page, name, item):
    """Chooses `item` from the More menu of the file row of `name`."""
    file_row(page, name).get_by_role("button", name=f"More actions for {name}").click()
    page.get_by_role("menu", name=f"More actions for {name}").get_by_role("menuitem", name=item).click()


def download_from(page, button, tmp_path):
    """Clicks `button`, takes the browser's download; returns (suggested name, sha256)."""
    with page.expect_download(timeout=UPLOAD_TIMEOUT) as info:
        button.click()
    download = info.value
    target = tmp_path / f"got-{unique('d')}"
    download.save_as(target)
    return download.suggested_filename, sha256_file(target)


def watch_stage_states(page):
    """Records every state each upload stage shows (so progress seen mid-way is checked)."""
    page.evaluate("""() => {
      window.stageStates = [];
      new MutationObserver((records) => {
        for (const record of records) {
          const item = record.target.closest && record.target.closest('.upload-stage');
          if (item) window.stageStates.push(item.dataset.stage + ':' + item.textContent);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['data-state'] });
    }""")


def test_vault_uploads_by_stage_lists_and_downloads_the_same_bytes(new_page, circle, tmp_path):
    page, watch = new_page(circle.origin, **DESKTOP)
    register(page, circle.origin, unique("vera"), "Vera")
    open_vault(page)
    expect(page.get_by_text("No files yet")).to_be_visible(timeout=LIVE_TIMEOUT)
    check_accessibility(page, "vault (empty)")

    # A 20 MB file through the keyboard-accessible picker.
    name = "twenty-megabytes.bin"
    path, original = random_file(tmp_path, name, 20 * MB)
    watch_stage_states(page)
    # The picker is the first stop after the heading, with a visible focus ring on its button.
    picker = page.get_by_label("Choose files")
    page.get_by_role("heading", level=1, name="Vault").focus()
    page.keyboard.press("Tab")
    expect(picker).to_be_focused()
    ring = page.locator(".dropzone .file-picker label").evaluate("el => getComputedStyle(el).outlineStyle")
    assert ring != "none"
    picker.set_input_files(str(path))
    item = upload_item(page, name)
    expect(item).to_contain_text("20.0 MB")
    expect_stages_done(item)
    states = page.evaluate("window.stageStates")
    # Progress was shown on the way: a percentage for encrypting and for uploading before done.
    assert any(re.match(r"encrypting:Encrypting: \d+%", s) for s in states), states[:20]
    assert any(re.match(r"uploading:Uploading: \d+%", s) for s in states), states[:20]
    assert any(s.startswith("verifying:Verifying: done") for s in states), states[-5:]

    row = file_row(page, name)
    expect(row).to_contain_text("20.0 MB", timeout=LIVE_TIMEOUT)
    expect(row).to_contain_text("Private")
    screenshot(page, "vault-after-upload")

    got_name, got = download_from(page, row.get_by_role("button", name="Download"), tmp_path)
    assert got_name == name
    assert got == original
    expect(row).to_contain_text("Decrypted and verified on this device.")

    # A file dropped on the drop zone (a synthetic drop carrying a DataTransfer).
    dropped_name = "dropped notes.txt"
    dropped = os.urandom(2 * MB + 12345)
    page.evaluate("""async ({ name, b64 }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], name, { type: 'text/plain' }));
      const zone = document.querySelector('.dropzone');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
      }
    }""", {"name": dropped_name, "b64": base64.b64encode(dropped).decode()})
    expect_stages_done(upload_item(page, dropped_name))
    dropped_row = file_row(page, dropped_name)
    expect(dropped_row).to_contain_text("2.01 MB", timeout=LIVE_TIMEOUT)
    got_name, got = download_from(page, dropped_row.get_by_role("button", name="Download"), tmp_path)
    assert got_name == dropped_name
    assert got == hashlib.sha256(dropped).hexdigest()

    # The server never saw the names: its listing has only sealed metadata.
    check_accessibility(page, "vault with files")
    screenshot(page, "vault")

    # Deleting asks first, then the file is gone.
    file_menu(page, dropped_name, "Delete…")
    page.get_by_role("dialog", name=f"Delete {dropped_name}?").get_by_role("button", name="Delete file").click()
    expect(dropped_row).to_have_count(0, timeout=LIVE_TIMEOUT)
    expect(file_row(page, name)).to_have_count(1)

    # The vault is its own address: loaded directly, it comes back with the file.
    page.goto(circle.origin + "/vault")
    expect(page.get_by_role("heading", level=1, name="Vault")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(file_row(page, name)).to_contain_text("20.0 MB", timeout=LIVE_TIMEOUT)
    watch.assert_clean()


def hold_second_patch(page):
    """Holds the upload's second PATCH back (as if the network stalled mid-way); returns the
    list of PATCH offsets sent and the list of held routes."""
    offsets, held, patches = [], [], []

    def on_request(request):
        if request.method == "PATCH" and "/api/v1/vault/uploads/" in request.url:
            offsets.append(int(request.headers["upload-offset"]))

    def route_patch(route):
        if route.request.method == "PATCH":
            patches.append(route.request.url)
            if len(patches) == 2:
                held.append(route)
                return
        route.continue_()

    page.on("request", on_request)
    page.route("**/api/v1/vault/uploads/*", route_patch)
    return offsets, held


def wait_held(page, held, offsets):
    for _ in range(400):
        if held:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"the second PATCH never came: {offsets}")


def release(page, held):
    page.unroute("**/api/v1/vault/uploads/*")
    for route in held:
        try:
            route.abort()
        except Exception:
            pass  # the page already gave up on it


def test_pause_then_resume_continues_from_the_servers_offset(new_page, circle, tmp_path):
    page, watch = new_page(circle.origin, **DESKTOP)
    register(page, circle.origin, unique("paula"), "Paula")
    open_vault(page)
    name = "paused.bin"
    path, original = random_file(tmp_path, name, 12 * MB)

    # The second PATCH is held back (as if the network stalled), so the upload is mid-way.
    offsets, held = hold_second_patch(page)
    page.get_by_label("Choose files").set_input_files(str(path))
    item = upload_item(page, name)
    pause = item.get_by_role("button", name="Pause")
    expect(pause).to_be_visible(timeout=LIVE_TIMEOUT)
    wait_held(page, held, offsets)
    expect(item.get_by_role("listitem").filter(has_text="Uploading")).to_contain_text(re.compile(r"Uploading: \d+%"))
    pause.click()
    expect(item).to_contain_text("Paused", timeout=LIVE_TIMEOUT)
    expect(item.get_by_role("listitem").filter(has_text="Uploading")).to_contain_text("Uploading: paused")
    screenshot(page, "vault-paused")
    release(page, held)
    acknowledged = offsets[1]
    assert acknowledged > 0 and offsets[0] == 0, offsets

    # Resume asks the server where it is and sends only the rest.
    before = len(offsets)
    item.get_by_role("button", name="Resume").click()
    expect_stages_done(item)
    resumed = offsets[before:]
    assert resumed and resumed[0] == acknowledged, (acknowledged, offsets)
    row = file_row(page, name)
    expect(row).to_contain_text("12.0 MB", timeout=LIVE_TIMEOUT)
    got_name, got = download_from(page, row.get_by_role("button", name="Download"), tmp_path)
    assert (got_name, got) == (name, original)
    watch.assert_clean()


def test_an_upload_cut_by_a_reload_resumes_once_the_file_is_chosen_again(new_page, circle, tmp_path):
    page, watch = new_page(circle.origin, **DESKTOP)
    register(page, circle.origin, unique("rene"), "Rene")
    open_vault(page)
    name = "interrupted.bin"
    path, original = random_file(tmp_path, name, 9 * MB)
    other, _ = random_file(tmp_path, "other.bin", 9 * MB - 1)
    offsets, held = hold_second_patch(page)
    page.get_by_label("Choose files").set_input_files(str(path))
    wait_held(page, held, offsets)
    page.reload()
    release(page, held)
    acknowledged = offsets[1]
    assert offsets[0] == 0 and acknowledged > 0, offsets

    # After the reload the page no longer has the file; the upload (its key and salt, kept in
    # IndexedDB) waits for it.
    expect(page.get_by_role("heading", level=1, name="Vault")).to_be_visible(timeout=LIVE_TIMEOUT)
    door_gone(page)
    item = upload_item(page, name)
    expect(item).to_contain_text("Interrupted before it finished", timeout=LIVE_TIMEOUT)
    picker = item.get_by_label(f"Choose {name} again to resume")
    check_accessibility(page, "vault with an interrupted upload")
    screenshot(page, "vault-interrupted")

    # Another file is refused; the same one goes on from the server's offset.
    picker.set_input_files(str(other))
    expect(item).to_contain_text("its size differs", timeout=LIVE_TIMEOUT)
    before = len(offsets)
    item.get_by_label(f"Choose {name} again to resume").set_input_files(str(path))
    expect_stages_done(item)
    assert offsets[before] == acknowledged, (acknowledged, offsets)
    row = file_row(page, name)
    expect(row).to_contain_text("9.00 MB", timeout=LIVE_TIMEOUT)
    got_name, got = download_from(page, row.get_by_role("button", name="Download"), tmp_path)
    assert (got_name, got) == (name, original)
    watch.assert_clean()


def create_link(page, name, password=None, limit=None, expiry=None):
    """Opens the share dialog of `name`, creates a link, returns (dialog, url)."""
    dialog = page.get_by_role("dialog", name=f"Share {name}")
    if not dialog.count():
        file_row(page, name).get_by_role("button", name="Share", exact=True).click()
    expect(dialog).to_be_visible()
    if expiry:
        dialog.get_by_label("Link expires").select_option(label=expiry)
    dialog.get_by_label("Password (optional)").fill(password or "")
    dialog.get_by_label("Download limit (optional)").fill(str(limit) if limit else "")
    previous = dialog.get_by_label("Share link").input_value() if dialog.get_by_label("Share link").count() else None
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Share link")
    expect(link).to_be_visible(timeout=LIVE_TIMEOUT)
    if previous:
        expect(link).not_to_have_value(previous)
    url = link.input_value()
    origin = "{0.scheme}://{0.netloc}".format(urlparse(page.url))
    assert re.fullmatch(re.escape(origin) + r"/s/[A-Za-z0-9_-]{22}#[A-Za-z0-9_-]{43}", url), url
    return dialog, url


def open_share(new_page, circle, url):
    """The link in a fresh browser context (no account, nothing stored)."""
    page, watch = new_page(circle.origin, **DESKTOP)
    page.goto(url)
    expect(page.get_by_role("heading", level=1, name="Encrypted file")).to_be_visible(timeout=LIVE_TIMEOUT)
    # The key left the address bar (and so the history entry) as soon as it was read.
    key = url.partition("#")[2]
    assert "#" not in page.url and (not key or key not in page.url), page.url
    assert page.evaluate("location.hash") == ""
    return page, watch


def download_shared(page, name, tmp_path):
    page.get_by_role("button", name="Download and decrypt").click()
    save = page.get_by_role("link", name=f"Save {name}")
    expect(save).to_be_visible(timeout=UPLOAD_TIMEOUT)
    assert save.get_attribute("rel") == "noreferrer"
    assert save.get_attribute("href").startswith("blob:")
    return download_from(page, save, tmp_path)


GONE = "This link no longer works"


def test_share_links_open_in_a_fresh_browser_with_and_without_password(new_page, circle, tmp_path):
    owner, owner_watch = new_page(circle.origin, **DESKTOP)
    register(owner, circle.origin, unique("sam"), "Sam")
    open_vault(owner)
    name = "shared report.pdf"
    path, original = upload_new_file(owner, tmp_path, name, 1_500_000)

    # Without a password: the link alone opens it.
    dialog, plain_url = create_link(owner, name)
    check_accessibility(owner, "share dialog")
    screenshot(owner, "vault-share-dialog")
    page, watch = open_share(new_page, circle, plain_url)
    expect(page.get_by_role("heading", level=2, name=name)).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(page.get_by_text(re.compile(r"^1\.50 MB"))).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    check_accessibility(page, "share page")
    got_name, got = download_shared(page, name, tmp_path)
    assert (got_name, got) == (name, original)
    screenshot(page, "share-page")
    for link in page.locator("a[href]").all():
        assert link.get_attribute("rel") == "noreferrer", link.evaluate("a => a.outerHTML")
    watch.assert_clean()

    # With a password: a wrong one is refused, the right one opens it.
    dialog, password_url = create_link(owner, name, password="open sesame 42")
    page, watch = open_share(new_page, circle, password_url)
    password = page.get_by_label("Password")
    expect(password).to_be_visible(timeout=LIVE_TIMEOUT)
    check_accessibility(page, "share page (password)")
    password.fill("open sesame 41")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong password", timeout=LIVE_TIMEOUT)
    expect(page.get_by_role("button", name="Download and decrypt")).to_have_count(0)
    expect(password).to_be_focused()
    password.fill("open sesame 42")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("heading", level=2, name=name)).to_be_visible(timeout=LIVE_TIMEOUT)
    got_name, got = download_shared(page, name, tmp_path)
    assert (got_name, got) == (name, original)
    screenshot(page, "share-page-password")
    drop_expected_http_errors(watch, 403)
    watch.assert_clean()

    # The owner sees the links and what happened to them.
    dialog.get_by_role("button", name="Refresh links").click()
    links = dialog.get_by_role("list", name="Links to this file").get_by_role("listitem").filter(has_text="Link created")
    expect(links).to_have_count(2)
    with_password = links.filter(has_text=re.compile(r"^(?!.*no password).*password"))
    expect(with_password).to_contain_text("1 download", timeout=LIVE_TIMEOUT)
    with_password.get_by_text(re.compile(r"^\d+ uses \(1 refused\)$")).click()
    expect(with_password.get_by_text(re.compile(r"^1 refused \(wrong key or password\) from .+, last ")).first).to_be_visible()
    expect(with_password.get_by_text(re.compile(": downloaded from")).first).to_be_visible()
    owner_watch.assert_clean()


def test_download_limit_and_revocation_end_a_link(new_page, circle, tmp_path):
    owner, owner_watch = new_page(circle.origin, **DESKTOP)
    register(owner, circle.origin, unique("lia"), "Lia")
    open_vault(owner)
    name = "once.bin"
    path, original = upload_new_file(owner, tmp_path, name, 700_000)

    # One download only: the first works, the second is refused.
    dialog, once_url = create_link(owner, name, limit=1, expiry="In 1 day")
    page, watch = open_share(new_page, circle, once_url)
    expect(page.get_by_text("1 download is left.")).to_be_visible(timeout=LIVE_TIMEOUT)
    got_name, got = download_shared(page, name, tmp_path)
    assert (got_name, got) == (name, original)
    # The page says the download was counted.
    expect(page.get_by_text("That was the last download this link allows.")).to_be_visible()
    expect(page.get_by_text("1 download is left.")).to_have_count(0)
    watch.assert_clean()
    again, again_watch = open_share(new_page, circle, once_url)
    expect(again.get_by_role("alert")).to_contain_text(GONE, timeout=LIVE_TIMEOUT)
    expect(again.get_by_role("button", name="Download and decrypt")).to_have_count(0)
    drop_expected_http_errors(again_watch, 404)
    again_watch.assert_clean()
    used = dialog.get_by_role("list", name="Links to this file").get_by_role("listitem").filter(has_text="1 of 1 downloads")
    dialog.get_by_role("button", name="Close").click()
    file_row(owner, name).get_by_role("button", name="Share", exact=True).click()
    expect(used).to_contain_text("Used up", timeout=LIVE_TIMEOUT)

    # A revoked link fails, though it was never used.
    dialog, revoked_url = create_link(owner, name)
    live = dialog.get_by_role("list", name="Links to this file").get_by_role("listitem").filter(has=owner.get_by_text("Live", exact=True))
    expect(live).to_have_count(1)
    live.get_by_role("button", name="Revoke").click()
    owner.get_by_role("dialog", name="Revoke this link?").get_by_role("button", name="Revoke link").click()
    expect(live).to_have_count(0, timeout=LIVE_TIMEOUT)
    page, watch = open_share(new_page, circle, revoked_url)
    expect(page.get_by_role("alert")).to_contain_text(GONE, timeout=LIVE_TIMEOUT)
    screenshot(page, "share-page-revoked")
    drop_expected_http_errors(watch, 404)
    watch.assert_clean()

    # A link cut short of its key says so.
    page, watch = open_share(new_page, circle, revoked_url.split("#")[0])
    expect(page.get_by_role("alert")).to_contain_text("the key after the # is missing")
    watch.assert_clean()
    owner_watch.assert_clean()


RANGED_DOWNLOADS = """
async ({ linkId, key }) => {
  const { SharedLink } = await import('/js/client/vault-links.js');
  const link = await SharedLink.inspect(linkId);
  await link.open(key);
  const size = link.file.storedSize;
  const url = `/api/v1/vault/links/${encodeURIComponent(linkId)}/content`;
  const statuses = [];
  let delivered = 0;
  const get = async (headers) => {
    const response = await fetch(url, { headers, cache: 'no-store' });
    const body = await response.arrayBuffer();
    if (response.ok) delivered += body.byteLength;
    statuses.push(response.status);
  };
  // What used to work: the access value with a suffix or offset range, never counted.
  await get({ 'Circle-Link-Access': link.access, Range: `bytes=-${size}` });
  await get({ 'Circle-Link-Access': link.access, Range: 'bytes=1-' });
  // Under the ticket: one copy, then every other way of asking for it again.
  for (const range of [`bytes=-${size}`, `bytes=-${size}`, `bytes=-${size * 4}`, 'bytes=1-', 'bytes=0-']) {
    await get({ 'Circle-Link-Ticket': link.ticket, Range: range });
  }
  return { statuses, delivered, size };
}
"""


def test_ranged_requests_do_not_stretch_a_download_limit(new_page, circle, tmp_path):
    """A holder of a one-download link who asks for ranges (suffix, offset, whole) directly gets
    one copy of the ciphertext and no more; the share page then says the link is gone."""
    owner, owner_watch = new_page(circle.origin, **DESKTOP)
    register(owner, circle.origin, unique("rae"), "Rae")
    open_vault(owner)
    name = "ranged.bin"
    upload_new_file(owner, tmp_path, name, 300_000)
    _, url = create_link(owner, name, limit=1)
    link_id, key = url.split("/s/")[1].split("#")
    holder, holder_watch = new_page(circle.origin, **DESKTOP)
    holder.route(circle.origin + "/favicon.ico", lambda route: route.fulfill(status=204, body=""))
    holder.goto(circle.origin + BLANK)
    result = holder.evaluate(RANGED_DOWNLOADS, {"linkId": link_id, "key": key})
    statuses, size = result["statuses"], result["size"]
    assert statuses[:2] == [403, 403], statuses
    assert statuses[2] == 206 and all(status == 403 for status in statuses[3:]), statuses
    assert result["delivered"] < 2 * size, result
    drop_expected_http_errors(holder_watch, 403)
    holder_watch.assert_clean()
    page, watch = open_share(new_page, circle, url)
    expect(page.get_by_role("alert")).to_contain_text(GONE, timeout=LIVE_TIMEOUT)
    drop_expected_http_errors(watch, 404)
    watch.assert_clean()
    owner_watch.assert_clean()


def test_an_attachment_is_downloaded_by_the_other_member(new_page, circle, tmp_path):
    alice_name, bob_name = unique("ada"), unique("bea")
    alice, alice_watch = new_page(circle.origin, **DESKTOP)
    bob, bob_watch = new_page(circle.origin, **DESKTOP)
    register(alice, circle.origin, alice_name, "Ada Attach")
    register(bob, circle.origin, bob_name, "Bea Receive")
    start_direct(alice, bob_name, "Bea Receive")

    name = "holiday photos.zip"
    path, original = random_file(tmp_path, name, 3 * MB + 777)
    alice.get_by_label("Attach a file").set_input_files(str(path))
    sending = alice.get_by_role("list", name="Files being sent").get_by_role("listitem").filter(has_text=name).first
    expect(sending.get_by_role("listitem").filter(has_text="Verifying")).to_contain_text("Verifying: done", timeout=UPLOAD_TIMEOUT)
    mine = alice.get_by_role("region", name="Messages").get_by_role("listitem").filter(has_text=name)
    expect(mine).to_contain_text("3.00 MB", timeout=LIVE_TIMEOUT)

    link = bob.get_by_role("link", name=re.compile("Ada Attach"))
    expect(link).to_contain_text(f"Attachment: {name}", timeout=LIVE_TIMEOUT)
    open_conversation_with(bob, "Ada Attach")
    theirs = bob.get_by_role("region", name="Messages").get_by_role("listitem").filter(has_text=name)
    expect(theirs).to_contain_text("3.00 MB", timeout=LIVE_TIMEOUT)
    got_name, got = download_from(bob, theirs.get_by_role("button", name="Download"), tmp_path)
    assert (got_name, got) == (name, original)
    expect(theirs).to_contain_text("Decrypted and verified.")
    check_accessibility(bob, "chat with an attachment")
    screenshot(bob, "chat-attachment")

    # The sender opens it too; it is a conversation file in the sender's vault.
    got_name, got = download_from(alice, mine.get_by_role("button", name="Download"), tmp_path)
    assert (got_name, got) == (name, original)
    open_vault(alice)
    expect(file_row(alice, name)).to_contain_text("Shared in Bea Receive", timeout=LIVE_TIMEOUT)
    for watch in (alice_watch, bob_watch):
        watch.assert_clean()


def test_attachment_messages_carry_key_and_hash_and_a_changed_hash_is_refused(new_page, circle):
    """The client API underneath the chat: the attachment message's content, `messages()` with
    an `attachment` field (no key), `downloadAttachment` refusing bytes of another hash before
    opening them, and a deleted attachment taking its file along."""
    alice = Browser(new_page, circle, unique("al")).register().wait_online()
    bob = Browser(new_page, circle, unique("bo")).register().wait_online()
    conv = alice.run("return await circle.createDirect(a);", bob.username)
    sent = alice.run("""
        const data = new Uint8Array(200_000); crypto.getRandomValues(data.subarray(0, 65536));
        window.sentBytes = data;
        const stages = new Set();
        const { messageId, file } = await circle.attach(a, new File([data], 'plan.txt', { type: 'text/plain' }), (p) => stages.add(p.stage));
        const record = (await circle.messaging.messagesOf(a)).get(messageId);
        return { messageId, file, stages: [...stages], contentType: record.contentType, content: record.text };
    """, conv)
    assert set(sent["stages"]) == {"encrypting", "uploading", "verifying"}, sent["stages"]
    assert sent["contentType"] == 4 and sent["file"]["level"] == "conversation"
    content = sent["content"]
    assert re.fullmatch(
        r'\{"v":1,"fileId":"[A-Za-z0-9_-]{22}","fileKey":"[A-Za-z0-9_-]{43}","name":"plan\.txt","type":"text/plain",'
        r'"size":200000,"sha256":"[A-Za-z0-9_-]{43}"\}', content), content
    assert f'"fileId":"{sent["file"]["id"]}"' in content and f'"sha256":"{sent["file"]["sha256"]}"' in content

    def bobs_attachment():
        return next((m for m in bob.messages(conv) if m.get("attachment")), None)

    shown = wait_until(bobs_attachment, what="the attachment to reach Bob")
    assert shown["text"] == "plan.txt"
    assert shown["attachment"] == {"fileId": sent["file"]["id"], "name": "plan.txt", "type": "text/plain", "size": 200000,
                                   "sha256": sent["file"]["sha256"]}
    same = bob.run("""
        const { blob, name, size } = await circle.downloadAttachment(a.conv, a.id);
        const got = new Uint8Array(await blob.arrayBuffer());
        return { name, size, hash: [...new Uint8Array(await crypto.subtle.digest('SHA-256', got))] };
    """, {"conv": conv, "id": shown["id"]})
    wanted = alice.run("return [...new Uint8Array(await crypto.subtle.digest('SHA-256', window.sentBytes))];")
    assert same == {"name": "plan.txt", "size": 200000, "hash": wanted}

    # Bob's copy of the message names another hash: nothing is opened.
    refused = bob.error_of("""
        const record = (await circle.messaging.messagesOf(a.conv)).get(a.id);
        const value = JSON.parse(record.text);
        value.sha256 = value.sha256.startsWith('A') ? 'B' + value.sha256.slice(1) : 'A' + value.sha256.slice(1);
        record.text = JSON.stringify(value);
        await circle.downloadAttachment(a.conv, a.id);
    """, {"conv": conv, "id": shown["id"]})
    assert refused and refused["code"] == "refused" and "SHA-256" in refused["message"], refused

    # Deleting the message deletes the file: Bob can no longer fetch it.
    alice.run("await circle.deleteMessage(a.conv, a.id);", {"conv": conv, "id": sent["messageId"]})
    gone = bob.error_of("await circle.api.get('/api/v1/vault/files/' + a);", sent["file"]["id"])
    assert gone and gone["status"] == 404, gone
    assert alice.run("return (await circle.vaultFiles()).length;") == 0
    wait_until(lambda: bob.messages(conv) and not any(m.get("attachment") for m in bob.messages(conv)), what="the delete to reach Bob")
    for browser in (alice, bob):
        drop_expected_http_errors(browser.watch, 404)
        browser.watch.assert_clean()


def test_phone_layout_of_the_vault(new_page, circle, tmp_path):
    page, watch = new_page(circle.origin, **PHONE)
    register(page, circle.origin, unique("phil"), "Phil")
    door_gone(page)
    open_vault(page)
    upload_new_file(page, tmp_path, "phone.bin", 300_000)
    expect(file_row(page, "phone.bin")).to_be_visible(timeout=LIVE_TIMEOUT)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the vault is wider than the phone: {width}px"
    screenshot(page, "phone-vault")
    watch.assert_clean()


def test_the_server_serves_the_vault_and_share_addresses(circle):
    """The app's page at /vault and /s/{linkId}, with no referrer and the strict policy."""
    for path in ("/vault", "/s/AAAAAAAAAAAAAAAAAAAAAA"):
        with urllib.request.urlopen(circle.origin + path) as answer:
            assert answer.status == 200
            assert b'<script type="module" src="/js/app.js">' in answer.read()
            assert answer.headers["Referrer-Policy"] == "no-referrer"
            assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
            assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
