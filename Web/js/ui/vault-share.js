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

export function openShareDialog({ client, file, onChanged }) {
  const alert = alertSlot();
  const expiryId = uid('link-expiry');
  const expiry = h('select', { id: expiryId, name: 'expiry' },
    EXPIRY_OPTIONS.map(([value, label]) => h('option', { value: String(value), selected: value === 7 * DAY }, label)));
  const password = field({
    label: 'Password (optional)', name: 'link-password', type: 'password', autocomplete: 'new-password',
    hint: 'Then the link alone is not enough. Send the password another way than the link.',
  });
  const limit = field({
    label: 'Download limit (optional)', name: 'link-limit', type: 'number', min: '1', max: '1000000', step: '1', inputmode: 'numeric',
    class: 'input-short', hint: 'Empty for no limit.',
  });
  const result = h('div', { class: 'link-result', hidden: true });
  const list = h('ul', { class: 'link-list', 'aria-label': 'Links to this file' });
  const listStatus = h('p', { class: 'list-status', role: 'status' }, 'Loading links…');
  let changed = false;

  const loadLinks = async () => {
    try {
      const links = await client.links(file.id);
      replace(list, links.slice().reverse().map((link) => linkItem(link)));
      listStatus.textContent = links.length ? '' : 'No links yet.';
    } catch (error) {
      listStatus.textContent = '';
      alert.show(error);
    }
  };

  const linkItem = (link) => {
    const state = linkState(link);
    const facts = [
      link.hasPassword ? 'password' : 'no password',
      link.expiresAt ? `expires ${fullTime(link.expiresAt)}` : 'no expiry',
      link.maxDownloads ? `${link.downloads} of ${link.maxDownloads} downloads` : `${link.downloads} ${link.downloads === 1 ? 'download' : 'downloads'}`,
    ].join(' · ');
    const uses = link.uses || [];
    const titleId = uid('link');
    return h('li', { class: 'link-item', dataset: { state }, 'aria-labelledby': titleId },
      h('div', { class: 'link-main' },
        h('span', { class: 'link-title', id: titleId }, `Link created ${fullTime(link.createdAt)}`),
        h('span', { class: `tag link-state link-state-${state}` }, STATE_TEXT[state]),
        h('span', { class: 'link-meta' }, facts),
        uses.length
          ? h('details', { class: 'link-uses' },
            h('summary', {}, `${uses.length} ${uses.length === 1 ? 'use' : 'uses'}`),
            h('ul', {}, uses.map((use) => h('li', {}, `${fullTime(use.at)}: ${OUTCOMES[use.outcome] || use.outcome}${use.ip ? ` from ${use.ip}` : ''}`))))
          : h('span', { class: 'link-meta' }, 'Not used yet'),
      ),
      state === 'live'
        ? h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-describedby': titleId, onclick: () => revoke(link) }, 'Revoke')
        : null,
    );
  };

  const revoke = async (link) => {
    const sure = await confirmDialog({
      title: 'Revoke this link?',
      message: 'Whoever holds it can no longer open the file. The server deletes the key it kept for the link.',
      confirmLabel: 'Revoke link',
      danger: true,
    });
    if (!sure) return;
    alert.clear();
    try {
      await client.revokeLink(link.id);
      changed = true;
      announce('Link revoked.');
      await loadLinks();
    } catch (error) {
      alert.show(error);
    }
  };

  const showLink = (url) => {
    const inputId = uid('share-url');
    const status = h('span', { class: 'copy-status', role: 'status' });
    const input = h('input', { id: inputId, type: 'text', readonly: true, value: url, class: 'mono link-url', spellcheck: 'false' });
    input.addEventListener('focus', () => input.select());
    const copy = async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(url);
        status.textContent = 'Copied.';
      } catch {
        status.textContent = 'Select the link and copy it.';
      }
    };
    replace(result,
      h('div', { class: 'field' },
        h('label', { for: inputId }, 'Share link'),
        input,
        h('p', { class: 'field-hint' }, 'Shown only now: Circle does not keep the key in this link. Anyone who has it (and the password, if you set one) can download the file.')),
      h('div', { class: 'recovery-actions' },
        h('button', { type: 'button', class: 'btn btn-small btn-primary', onclick: copy }, 'Copy link'),
        status));
    result.hidden = false;
    input.focus();
  };

  const create = async (form) => {
    alert.clear();
    const milliseconds = Number(expiry.value);
    const max = limit.input.value.trim() ? Number(limit.input.value) : 0;
    if (!Number.isInteger(max) || max < 0 || max > 1_000_000) {
      alert.show('The download limit is a whole number from 1 to 1,000,000, or empty.');
      limit.input.focus();
      return;
    }
    setBusy(form, true);
    try {
      const url = await client.shareLink(file.id, {
        password: password.input.value || null,
        expiresAt: milliseconds ? Date.now() + milliseconds : 0,
        maxDownloads: max,
      });
      changed = true;
      password.input.value = '';
      announce('Link created.');
      showLink(url);
      await loadLinks();
    } catch (error) {
      alert.show(error);
    } finally {
      setBusy(form, false);
    }
  };

  openDialog({
    title: `Share ${file.name}`,
    className: 'dialog-share',
    description: 'Anyone with the link downloads and decrypts the file in their browser. The key travels in the part of the link after #, which browsers never send to the server.',
    initialFocus: 'select',
    onClose: () => { if (changed) onChanged?.(); },
    body: () => {
      const form = h('form', { class: 'dialog-form share-form' },
        file.level === 'conversation'
          ? h('p', { class: 'callout callout-warning' }, 'A link takes this file out of its conversation: its members can no longer download it from there.')
          : null,
        h('div', { class: 'field' }, h('label', { for: expiryId }, 'Link expires'), expiry),
        password.field,
        limit.field,
        alert.element,
        h('div', { class: 'actions actions-start' },
          h('button', { type: 'submit', class: 'btn btn-primary' }, vaultIcon('link'), 'Create link')),
      );
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        create(form);
      });
      loadLinks();
      return h('div', {},
        form,
        result,
        h('section', { class: 'link-section', 'aria-labelledby': `${expiryId}-links` },
          h('div', { class: 'link-section-head' },
            h('h3', { id: `${expiryId}-links` }, 'Links'),
            h('button', { type: 'button', class: 'btn btn-small', onclick: () => { listStatus.textContent = 'Loading links…'; loadLinks(); } }, 'Refresh links')),
          listStatus,
          list),
      );
    },
  });
}
