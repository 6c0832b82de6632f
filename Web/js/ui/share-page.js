// The public page of a share link, /s/{linkId}#{linkKey}, for anyone (no account): the key is
// taken from the fragment and the fragment removed from the address bar and history at once;
// the password is asked for only when the link has one; the file is downloaded and decrypted
// in this browser and offered through a blob: URL. Revoked, expired and used-up links, and a
// wrong password, are said plainly.

import { h, field, replace, setBusy } from './dom.js';
import { describeError } from './errors.js';
import { announce } from './announcer.js';
import { fullTime } from './format.js';
import { formatBytes, percent, vaultIcon } from './vault-common.js';
import { icon } from './icons.js';
import { SharedLink } from '../client/vault.js';

const SHARE_PATH = /^\/s\/([^/?#]+)\/?$/;

/** Removes the fragment from the current address (and so from history), keeping the rest. */
function dropFragment() {
  if (!window.location.hash && !window.location.href.endsWith('#')) return;
  history.replaceState(history.state, '', window.location.pathname + window.location.search);
}

/** The key of the link this page was loaded with, taken (and removed) as this module loads. */
let captured = null;
{
  const match = SHARE_PATH.exec(window.location.pathname);
  if (match) {
    captured = { linkId: match[1], key: window.location.hash.slice(1) };
    dropFragment();
  }
}

/**
 * The link key for `linkId`: the one captured at load, else the current fragment (a link
 * followed inside the app); either way the fragment leaves the address at once.
 */
export function takeLinkKey(linkId) {
  let key = '';
  if (window.location.hash) {
    key = window.location.hash.slice(1);
    dropFragment();
  } else if (captured && captured.linkId === linkId) {
    key = captured.key;
  }
  captured = null;
  return key;
}

const GONE = 'This link no longer works. It may have expired, reached its download limit, or been revoked by the person who shared it (or it never existed). Ask them for a new link.';

export class SharePage {
  constructor({ linkId }) {
    this.linkId = linkId;
    this.key = takeLinkKey(linkId);
    this.link = null;
    this.objectUrl = null;
    this.body = h('div', { class: 'share-body' });
    this.status = h('p', { class: 'share-status', role: 'status' });
    this.element = h('main', { class: 'plain-page share-page', id: 'main' },
      h('div', { class: 'plain-card share-card' },
        h('p', { class: 'brand brand-large' }, icon('shield', 'brand-mark'), h('span', { class: 'brand-name' }, 'Circle')),
        h('h1', { class: 'page-title', id: 'share-title', tabindex: '-1' }, 'Encrypted file'),
        h('p', { class: 'section-lead' }, 'Someone shared a file with you. It is decrypted here, in your browser: the server only ever holds the encrypted bytes, and never sees the key in this link.'),
        this.status,
        this.body,
        h('p', { class: 'share-footer' },
          h('a', { href: '/', rel: 'noreferrer', referrerpolicy: 'no-referrer' }, 'What is Circle?')),
      ),
    );
  }

  start() {
    document.title = 'Encrypted file · Circle';
    this.element.querySelector('h1').focus({ preventScroll: true });
    this.inspect();
  }

  destroy() {
    this.link?.close();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
  }

  fail(text) {
    this.status.textContent = '';
    replace(this.body, h('div', { class: 'alert alert-error', role: 'alert' }, text));
  }

  async inspect() {
    if (!this.key) {
      this.fail('This link is incomplete: the key after the # is missing. Open the whole link again, exactly as you received it.');
      return;
    }
    this.status.textContent = 'Checking the link…';
    try {
      this.link = await SharedLink.inspect(this.linkId);
    } catch (error) {
      this.fail(error?.status === 404 ? GONE : describeError(error));
      return;
    }
    if (this.link.hasPassword) this.askPassword();
    else this.open(null);
  }

  askPassword(error = null) {
    this.status.textContent = '';
    const password = field({ label: 'Password', name: 'share-password', type: 'password', autocomplete: 'off', required: true,
      hint: 'The person who shared this file set a password. It is checked together with the link\u2019s key.' });
    const alertBox = h('div', { class: 'alert-slot' },
      error ? h('div', { class: 'alert alert-error', role: 'alert' }, error) : null);
    const form = h('form', { class: 'share-form' },
      password.field,
      alertBox,
      h('div', { class: 'actions actions-start' }, h('button', { type: 'submit', class: 'btn btn-primary' }, icon('key'), 'Unlock')),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const value = password.input.value;
      if (!value) return;
      setBusy(form, true);
      this.status.textContent = 'Checking the password…';
      const opened = await this.open(value, { quiet: true });
      if (!opened) {
        setBusy(form, false);
        password.input.value = '';
        password.input.focus();
      }
    });
    replace(this.body, form);
    password.input.focus();
    this.passwordForm = { form, alertBox };
  }

  /** Proves access and decrypts the name; resolves to whether it worked. */
  async open(password, { quiet = false } = {}) {
    if (!quiet) this.status.textContent = 'Opening the link…';
    try {
      const file = await this.link.open(this.key, password);
      this.showFile(file);
      return true;
    } catch (error) {
      if (error?.status === 403) {
        if (this.link.hasPassword) {
          this.status.textContent = '';
          replace(this.passwordForm.alertBox, h('div', { class: 'alert alert-error', role: 'alert' }, 'Wrong password. Check it with the person who shared the file and try again.'));
          announce('Wrong password.');
          return false;
        }
        this.fail('This link\u2019s key is wrong: the link is damaged or incomplete. Open the whole link again, exactly as you received it.');
        return false;
      }
      this.fail(error?.status === 404 ? GONE : describeError(error));
      return false;
    }
  }

  /** What the page says about the link's expiry and the downloads it has left. */
  linkNotes(file) {
    const notes = [];
    if (file.expiresAt) notes.push(`The link expires ${fullTime(file.expiresAt)}.`);
    if (file.downloadsLeft === 0) notes.push('That was the last download this link allows.');
    else if (file.downloadsLeft !== null) notes.push(`${file.downloadsLeft} ${file.downloadsLeft === 1 ? 'download is' : 'downloads are'} left.`);
    return notes.join(' ');
  }

  showFile(file) {
    this.status.textContent = '';
    const facts = [formatBytes(file.size), file.type || null].filter(Boolean).join(' · ');
    this.notes = h('p', { class: 'muted share-notes' }, this.linkNotes(file));
    this.progress = h('progress', { max: '100', value: '0', 'aria-label': `Downloading ${file.name}`, hidden: true });
    this.saveArea = h('div', { class: 'share-save' });
    this.downloadButton = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => this.download() }, vaultIcon('download'), 'Download and decrypt');
    replace(this.body,
      h('div', { class: 'share-file' },
        vaultIcon('file', 'file-icon'),
        h('div', { class: 'file-main' },
          h('h2', { class: 'file-name' }, file.name),
          h('span', { class: 'file-meta' }, facts))),
      this.notes,
      h('div', { class: 'actions actions-start' }, this.downloadButton),
      this.progress,
      this.saveArea,
    );
    announce(`${file.name}, ${formatBytes(file.size)}, ready to download.`);
    this.downloadButton.focus();
  }

  async download() {
    const file = this.link.file;
    this.downloadButton.disabled = true;
    this.progress.hidden = false;
    this.status.textContent = 'Downloading…';
    try {
      const blob = await this.link.download({
        onProgress: ({ stage, done, total }) => {
          const value = percent(done, total);
          this.progress.value = stage === 'downloading' ? value / 2 : 50 + value / 2;
          this.status.textContent = `${stage === 'downloading' ? 'Downloading' : 'Decrypting'}… ${value}%`;
        },
      });
      this.link.close();
      // This download counted one: the page says what is left now.
      if (file.downloadsLeft !== null) {
        file.downloadsLeft = Math.max(0, file.downloadsLeft - 1);
        this.notes.textContent = this.linkNotes(file);
      }
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = URL.createObjectURL(blob);
      this.progress.value = 100;
      this.status.textContent = 'Decrypted and verified in this browser.';
      const save = h('a', {
        class: 'btn btn-primary', href: this.objectUrl, download: file.name, rel: 'noreferrer', referrerpolicy: 'no-referrer',
      }, vaultIcon('download'), `Save ${file.name}`);
      replace(this.saveArea, save);
      this.downloadButton.hidden = true;
      announce(`${file.name} is decrypted. Save it with the Save button.`);
      save.focus();
    } catch (error) {
      this.progress.hidden = true;
      this.downloadButton.disabled = false;
      this.fail(error?.status === 404 ? GONE : `The download failed: ${describeError(error)}`);
    }
  }
}
