// Sharing a vault file by link: expiry, an optional password and a download limit; the new link
// is shown once (its key lives only in the link), and the file's links are listed with their
// downloads, uses and a Revoke button.

import { h, field, replace, setBusy, uid } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog, confirmDialog } from './dialog.js';
import { announce } from './announcer.js';
import { fullTime } from './format.js';
import { vaultIcon } from './vault-common.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const EXPIRY_OPTIONS = [
  [HOUR, 'In 1 hour'],
  [DAY, 'In 1 day'],
  [7 * DAY, 'In 7 days'],
  [30 * DAY, 'In 30 days'],
  [0, 'Never'],
];
const OUTCOMES = { open: 'opened', download: 'downloaded', resume: 'resumed a download', refused: 'refused (wrong key or password)' };

/** live, revoked, expired or used-up. */
export function linkState(link, now = Date.now()) {
  if (link.revokedAt) return 'revoked';
  if (link.maxDownloads && link.downloads >= link.maxDownloads) return 'used-up';
  if (link.expiresAt && link.expiresAt <= now) return 'expired';
  return link.live === false ? 'revoked' : 'live';
}

const STATE_TEXT = { live: 'Live', revoked: 'Revoked', expired: 'Expired', 'used-up': 'Used up' };

/**
 * Opens the dialog that shares `file` by link and lists its links; `onChanged` runs when the
 * dialog closes after a link was created or revoked.
 */
export function openShareDialog({ client, file, onChanged }) {
  const share = shareState(client, file);
  openDialog({
    title: `Share ${file.name}`,
    className: 'dialog-share',
    description: 'Anyone with the link downloads and decrypts the file in their browser. The key travels in the part of the link after #, which browsers never send to the server.',
    initialFocus: 'select',
    onClose: () => { if (share.changed) onChanged?.(); },
    body: () => dialogBody(share),
  });
}

/** The dialog's controls and state, shared by the functions below. */
function shareState(client, file) {
  const expiryId = uid('link-expiry');
  return {
    client,
    file,
    alert: alertSlot(),
    expiryId,
    expiry: h('select', { id: expiryId, name: 'expiry' },
      EXPIRY_OPTIONS.map(([value, label]) => h('option', { value: String(value), selected: value === 7 * DAY }, label))),
    password: field({
      label: 'Password (optional)', name: 'link-password', type: 'password', autocomplete: 'new-password',
      hint: 'Then the link alone is not enough. Send the password another way than the link.',
    }),
    limit: field({
      label: 'Download limit (optional)', name: 'link-limit', type: 'number', min: '1', max: '1000000', step: '1', inputmode: 'numeric',
      class: 'input-short', hint: 'Empty for no limit.',
    }),
    result: h('div', { class: 'link-result', hidden: true }),
    list: h('ul', { class: 'link-list', 'aria-label': 'Links to this file' }),
    listStatus: h('p', { class: 'list-status', role: 'status' }, 'Loading links…'),
    /** Whether a link was created or revoked (the caller then refreshes). */
    changed: false,
  };
}

/** The dialog's content: the form, the place for a new link and the file's links; starts loading them. */
function dialogBody(share) {
  const form = linkForm(share);
  loadLinks(share);
  return h('div', {},
    form,
    share.result,
    h('section', { class: 'link-section', 'aria-labelledby': `${share.expiryId}-links` },
      h('div', { class: 'link-section-head' },
        h('h3', { id: `${share.expiryId}-links` }, 'Links'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => refreshLinks(share) }, 'Refresh links')),
      share.listStatus,
      share.list),
  );
}

/** The form that creates a link: expiry, optional password and download limit. */
function linkForm(share) {
  const form = h('form', { class: 'dialog-form share-form' },
    share.file.conversationId
      ? h('p', { class: 'field-hint' }, 'The file stays in its conversation too: a link adds whoever holds it.')
      : null,
    h('div', { class: 'field' }, h('label', { for: share.expiryId }, 'Link expires'), share.expiry),
    share.password.field,
    share.limit.field,
    share.alert.element,
    h('div', { class: 'actions actions-start' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, vaultIcon('link'), 'Create link')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    createLink(share, form);
  });
  return form;
}

/** The download limit entered (0 for none), or null after saying why it is not valid. */
function downloadLimit(share) {
  const max = share.limit.input.value.trim() ? Number(share.limit.input.value) : 0;
  if (!Number.isInteger(max) || max < 0 || max > 1_000_000) {
    share.alert.show('The download limit is a whole number from 1 to 1,000,000, or empty.');
    share.limit.input.focus();
    return null;
  }
  return max;
}

/** Creates a link from the form's values, shows it once and reloads the list. */
async function createLink(share, form) {
  share.alert.clear();
  const milliseconds = Number(share.expiry.value);
  const max = downloadLimit(share);
  if (max === null) return;
  setBusy(form, true);
  try {
    const url = await share.client.shareLink(share.file.id, {
      password: share.password.input.value || null,
      expiresAt: milliseconds ? Date.now() + milliseconds : 0,
      maxDownloads: max,
    });
    share.changed = true;
    share.password.input.value = '';
    announce('Link created.');
    showLink(share, url);
    await loadLinks(share);
  } catch (error) {
    share.alert.show(error);
  } finally {
    setBusy(form, false);
  }
}

/** Shows a new link with a Copy button: this is the only time it is shown (Circle keeps no copy of its key). */
function showLink(share, url) {
  const inputId = uid('share-url');
  const status = h('span', { class: 'copy-status', role: 'status' });
  const input = h('input', { id: inputId, type: 'text', readonly: true, value: url, class: 'mono link-url', spellcheck: 'false' });
  input.addEventListener('focus', () => input.select());
  replace(share.result,
    h('div', { class: 'field' },
      h('label', { for: inputId }, 'Share link'),
      input,
      h('p', { class: 'field-hint' }, 'Shown only now: Circle does not keep the key in this link. Anyone who has it (and the password, if you set one) can download the file.')),
    h('div', { class: 'recovery-actions' },
      h('button', { type: 'button', class: 'btn btn-small btn-primary', onclick: () => copyLink(input, url, status) }, 'Copy link'),
      status));
  share.result.hidden = false;
  input.focus();
}

/** Copies a link to the clipboard, or asks for a manual copy where the browser refuses. */
async function copyLink(input, url, status) {
  input.select();
  try {
    await navigator.clipboard.writeText(url);
    status.textContent = 'Copied.';
  } catch {
    status.textContent = 'Select the link and copy it.';
  }
}

/** The Refresh button: says the links are loading, then loads them. */
function refreshLinks(share) {
  share.listStatus.textContent = 'Loading links…';
  loadLinks(share);
}

/** Fetches the file's links and lists them newest first. */
async function loadLinks(share) {
  try {
    const links = await share.client.links(share.file.id);
    replace(share.list, links.slice().reverse().map((link) => linkItem(share, link)));
    share.listStatus.textContent = links.length ? '' : 'No links yet.';
  } catch (error) {
    share.listStatus.textContent = '';
    share.alert.show(error);
  }
}

/** One link in the list: when it was made, its state, its limits, its uses and (while live) Revoke. */
function linkItem(share, link) {
  const state = linkState(link);
  const titleId = uid('link');
  return h('li', { class: 'link-item', dataset: { state }, 'aria-labelledby': titleId },
    h('div', { class: 'link-main' },
      h('span', { class: 'link-title', id: titleId }, `Link created ${fullTime(link.createdAt)}`),
      h('span', { class: `tag link-state link-state-${state}` }, STATE_TEXT[state]),
      h('span', { class: 'link-meta' }, linkFacts(link)),
      linkUses(link.uses || [], link.failures || [], link.failedAttempts || 0),
    ),
    state === 'live'
      ? h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-describedby': titleId, onclick: () => revokeLink(share, link) }, 'Revoke')
      : null,
  );
}

/** A link's password, expiry and downloads as one line. */
function linkFacts(link) {
  return [
    link.hasPassword ? 'password' : 'no password',
    link.expiresAt ? `expires ${fullTime(link.expiresAt)}` : 'no expiry',
    link.maxDownloads ? `${link.downloads} of ${link.maxDownloads} downloads` : `${link.downloads} ${link.downloads === 1 ? 'download' : 'downloads'}`,
  ].join(' · ');
}

/**
 * A link's uses (when, what happened, from where) and its refused opens (how many from each
 * address, and when last) folded under a summary, or a note that there are none.
 */
function linkUses(uses, failures, failedAttempts) {
  const total = uses.length + failedAttempts;
  if (!total) return h('span', { class: 'link-meta' }, 'Not used yet');
  const refused = failures.map((failure) => h('li', { class: 'link-refused' },
    `${failure.attempts} ${OUTCOMES.refused}${failure.ip ? ` from ${failure.ip}` : ''}, last ${fullTime(failure.lastAt)}`));
  return h('details', { class: 'link-uses' },
    h('summary', {}, `${total} ${total === 1 ? 'use' : 'uses'}${failedAttempts ? ` (${failedAttempts} refused)` : ''}`),
    h('ul', {}, [...refused, ...uses.map((use) => h('li', {}, `${fullTime(use.at)}: ${OUTCOMES[use.outcome] || use.outcome}${use.ip ? ` from ${use.ip}` : ''}`))]));
}

/** Revokes a link once confirmed, then reloads the list. */
async function revokeLink(share, link) {
  const sure = await confirmDialog({
    title: 'Revoke this link?',
    message: 'Whoever holds it can no longer open the file. The server deletes the key it kept for the link.',
    confirmLabel: 'Revoke link',
    danger: true,
  });
  if (!sure) return;
  share.alert.clear();
  try {
    await share.client.revokeLink(link.id);
    share.changed = true;
    announce('Link revoked.');
    await loadLinks(share);
  } catch (error) {
    share.alert.show(error);
  }
}
