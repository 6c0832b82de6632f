// The vault screen (/vault): the space used of the quota, a drop zone and a keyboard-accessible
// file picker with an expiry for what is added, each upload by stage (encrypting, uploading,
// verifying) with pause and resume, and the list of this account's files with their decrypted
// names, sizes, access and a countdown for those that expire; each file downloads, shares by link
// and has a menu: share with a member, who can open it, when it is deleted, delete.

import { h, replace, uid } from './dom.js';
import { alertSlot, describeError } from './errors.js';
import { announce, toast } from './announcer.js';
import { confirmDialog } from './dialog.js';
import { conversationTitle, countdown, fullTime, shortTime } from './format.js';
import { menuButton } from './menu.js';
import { UploadItem, formatBytes, percent, saveBlob, vaultIcon } from './vault-common.js';
import { expiryFrom, expirySelect, openAccessDialog, openExpiryDialog, openShareWithMember } from './vault-file-dialogs.js';
import { openShareDialog, linkState } from './vault-share.js';

/** How long a finished upload stays in the list of uploads (then only the file list shows it). */
const FINISHED_SHOWN_MS = 6000;

/**
 * Uploads started here live as long as the page (leaving the vault screen does not stop or hide
 * them), for one signed-in user.
 */
const registry = { userId: null, items: new Set() };
let current = null;

function uploadsOf(userId) {
  if (registry.userId !== userId) {
    for (const item of registry.items) item.controller?.abort();
    registry.userId = userId;
    registry.items = new Set();
  }
  return registry.items;
}

const LEVELS = {
  private: 'Private',
  conversation: 'In a conversation',
  public: 'Shared by link',
};

/** "Shared in Alice, Bob" for a file in a conversation whose title is known. */
function levelText(file, titles) {
  const where = file.conversationId ? titles.get(file.conversationId) : null;
  if (file.level === 'conversation') return where ? `Shared in ${where}` : LEVELS.conversation;
  if (file.level === 'public' && where) return `Shared by link and in ${where}`;
  return LEVELS[file.level] || file.level;
}

export class VaultView {
  constructor({ client }) {
    this.client = client;
    this.alert = alertSlot();
    this.destroyed = false;
    this.loading = null;
    this.reloadWanted = false;
    this.files = [];
    this.titles = new Map();
    this.countdownTimer = null;
    this.uploads = uploadsOf(client.me?.userId ?? null);

    const pickerId = uid('vault-files');
    const hintId = `${pickerId}-hint`;
    this.picker = h('input', {
      type: 'file', id: pickerId, multiple: true, class: 'visually-hidden file-input', 'aria-describedby': hintId,
      onchange: () => {
        const files = [...this.picker.files];
        this.picker.value = '';
        this.addFiles(files);
      },
    });
    const expiryId = uid('upload-expiry');
    this.uploadExpiry = expirySelect({ id: expiryId });
    this.dropZone = h('div', { class: 'dropzone', dataset: { active: 'false' } },
      vaultIcon('upload', 'dropzone-icon'),
      h('p', { class: 'dropzone-text' }, 'Drop files here to encrypt and upload them'),
      h('span', { class: 'file-picker' }, this.picker, h('label', { for: pickerId, class: 'btn btn-primary' }, 'Choose files')),
      h('p', { class: 'field-hint', id: hintId }, 'Each file is encrypted on this device with its own key before a byte leaves it. Its name is encrypted too.'),
      h('div', { class: 'field field-inline upload-expiry' }, h('label', { for: expiryId }, 'Delete automatically'), this.uploadExpiry),
    );
    this.dropZone.addEventListener('dragenter', (event) => this.dragOver(event));
    this.dropZone.addEventListener('dragover', (event) => this.dragOver(event));
    this.dropZone.addEventListener('dragleave', (event) => {
      if (!this.dropZone.contains(event.relatedTarget)) this.dropZone.dataset.active = 'false';
    });
    this.dropZone.addEventListener('drop', (event) => {
      event.preventDefault();
      this.dropZone.dataset.active = 'false';
      const files = [...(event.dataTransfer?.files ?? [])];
      if (files.length) this.addFiles(files);
    });

    this.uploadList = h('ul', { class: 'upload-list', 'aria-label': 'Uploads' });
    this.uploadSection = h('section', { class: 'vault-section', 'aria-labelledby': 'vault-uploads-title', hidden: true },
      h('h2', { id: 'vault-uploads-title' }, 'Uploads'),
      this.uploadList,
    );
    this.listStatus = h('p', { class: 'list-status', role: 'status' }, 'Loading your files…');
    this.fileList = h('ul', { class: 'file-list', 'aria-label': 'Your files' });
    this.usageMeter = h('meter', { min: '0', max: '1', value: '0', 'aria-labelledby': 'vault-usage-text' });
    this.usageText = h('span', { id: 'vault-usage-text' }, '');
    this.usage = h('div', { class: 'vault-usage', hidden: true }, this.usageText, this.usageMeter);

    this.element = h('div', { class: 'vault-page' },
      h('div', { class: 'vault-heading' },
        h('h1', { class: 'page-title', id: 'vault-title', tabindex: '-1' }, 'Vault'),
        h('p', { class: 'section-lead' }, 'Files you keep here are end-to-end encrypted: the server stores ciphertext it cannot read, and never learns their names.'),
        this.usage,
      ),
      this.alert.element,
      h('section', { class: 'vault-section', 'aria-labelledby': 'vault-add-title' },
        h('h2', { id: 'vault-add-title' }, 'Add files'),
        this.dropZone,
      ),
      this.uploadSection,
      h('section', { class: 'vault-section', 'aria-labelledby': 'vault-files-title' },
        h('h2', { id: 'vault-files-title' }, 'Your files'),
        this.listStatus,
        this.fileList,
      ),
    );
  }

  start() {
    current = this;
    for (const item of this.uploads) this.uploadList.append(item.element);
    this.showInterrupted();
    this.updateUploadSection();
    this.refresh();
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.countdownTimer);
    if (current === this) current = null;
  }

  dragOver(event) {
    if (![...(event.dataTransfer?.types ?? [])].includes('Files')) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
    this.dropZone.dataset.active = 'true';
  }

  // MARK: Uploads

  addFiles(files) {
    this.alert.clear();
    for (const file of files) this.addUpload(file);
  }

  track(item) {
    this.uploads.add(item);
    this.uploadList.append(item.element);
    this.updateUploadSection();
  }

  updateUploadSection() {
    this.uploadSection.hidden = this.uploads.size === 0;
  }

  /** What every upload item calls back into: the vault screen on show, if any. */
  callbacks() {
    const items = this.uploads;
    return {
      onDone: (result, item) => {
        current?.refresh();
        // A finished upload makes way for the file list; a focused one stays until dismissed.
        setTimeout(() => {
          if (item?.state === 'done' && !item.element.contains(document.activeElement)) item.remove();
        }, FINISHED_SHOWN_MS);
      },
      onCancel: (handle) => this.client.cancelUpload(handle),
      onRemove: (gone) => {
        items.delete(gone);
        current?.updateUploadSection();
      },
    };
  }

  addUpload(file) {
    const expiresAt = expiryFrom(this.uploadExpiry.value);
    const item = new UploadItem({
      name: file.name || 'file',
      size: file.size,
      start: ({ signal, onProgress, onHandle }) => this.client.upload(file, { signal, onProgress, onHandle, expiresAt }),
      resume: (handle, options) => this.client.resumeUpload(handle, options),
      ...this.callbacks(),
    });
    this.track(item);
    announce(`Encrypting and uploading ${file.name || 'a file'}.`);
    item.start();
  }

  /**
   * Unfinished uploads kept on this device that no item shows: paused ones (this page still
   * holds the file) and ones a reload interrupted (the file must be chosen again). An
   * attachment's upload, resumed here, also sends its message.
   */
  showInterrupted() {
    let pending = [];
    try {
      pending = this.client.pendingUploads();
    } catch {
      return;
    }
    const shown = new Set([...this.uploads].map((item) => item.handle));
    for (const upload of pending) {
      if (upload.active || shown.has(upload.handle)) continue;
      const conversation = upload.level === 'conversation' ? upload.conversationId : null;
      const item = new UploadItem({
        name: upload.name,
        size: upload.size,
        interrupted: upload.handle,
        held: upload.held,
        start: () => Promise.reject(new Error('nothing to start')),
        resume: (handle, options) => (conversation
          ? this.client.resumeAttachment(conversation, handle, options)
          : this.client.resumeUpload(handle, options)),
        ...this.callbacks(),
      });
      this.track(item);
    }
  }

  // MARK: Files

  /** Reloads the list of files (coalescing overlapping calls). */
  async refresh() {
    if (this.loading) {
      this.reloadWanted = true;
      return this.loading;
    }
    this.loading = (async () => {
      do {
        this.reloadWanted = false;
        try {
          const { files, used, quota } = await this.client.vaultListing();
          if (this.destroyed) return;
          this.files = files;
          this.showUsage(used, quota);
          if (files.some((file) => file.conversationId && !this.titles.has(file.conversationId))) await this.loadTitles();
          if (this.destroyed) return;
          this.render();
        } catch (error) {
          if (this.destroyed) return;
          this.listStatus.textContent = '';
          this.alert.show(error);
        }
      } while (this.reloadWanted && !this.destroyed);
    })();
    try {
      await this.loading;
    } finally {
      this.loading = null;
    }
    return undefined;
  }

  /** "12.3 MB of 1.00 GB used", with a meter. */
  showUsage(used, quota) {
    if (!Number.isFinite(used) || !Number.isFinite(quota) || quota <= 0) return;
    this.usage.hidden = false;
    this.usageMeter.max = String(quota);
    this.usageMeter.value = String(Math.min(used, quota));
    this.usageMeter.high = String(quota * 0.9);
    this.usageText.textContent = `${formatBytes(used)} of ${formatBytes(quota)} used`;
  }

  /** The titles of the conversations files are in (a file's level names its conversation). */
  async loadTitles() {
    try {
      for (const conversation of await this.client.conversations()) {
        if (!conversation.alarm) this.titles.set(conversation.id, conversationTitle(conversation, this.client.me));
      }
    } catch {
      // The level then reads "In a conversation".
    }
  }

  /** Updates each expiring file's countdown (each second); a file whose time is up reloads the list. */
  tick() {
    const now = Date.now();
    let gone = false;
    for (const element of this.fileList.querySelectorAll('[data-expires-at]')) {
      const remaining = Number(element.dataset.expiresAt) - now;
      if (remaining <= 0) gone = true;
      element.textContent = remaining > 0 ? `deleted in ${countdown(remaining)}` : 'deleted now';
    }
    if (gone) this.refresh();
  }

  render() {
    const focusedId = this.fileList.contains(document.activeElement) ? document.activeElement.closest('[data-file-id]')?.dataset.fileId : null;
    const focusedAction = focusedId ? document.activeElement.dataset.action : null;
    replace(this.fileList, this.files.map((file) => this.fileItem(file)));
    const count = this.files.length;
    this.listStatus.textContent = count ? `${count} ${count === 1 ? 'file' : 'files'}` : 'No files yet. Add one above: it is encrypted before it leaves this device.';
    if (focusedId) {
      const row = [...this.fileList.querySelectorAll('[data-file-id]')].find((element) => element.dataset.fileId === focusedId);
      const again = row?.querySelector(`[data-action="${focusedAction}"]`);
      if (again) again.focus();
    }
    clearInterval(this.countdownTimer);
    this.countdownTimer = null;
    if (this.files.some((file) => file.expiresAt)) this.countdownTimer = setInterval(() => this.tick(), 1000);
  }

  fileItem(file) {
    const nameId = uid('file-name');
    const liveLinks = (file.links || []).filter((link) => linkState(link) === 'live').length;
    const status = h('p', { class: 'file-progress', role: 'status' });
    const facts = [
      file.size !== null ? formatBytes(file.size) : null,
      levelText(file, this.titles),
      liveLinks ? `${liveLinks} live ${liveLinks === 1 ? 'link' : 'links'}` : null,
    ].filter(Boolean).join(' · ');
    const expiry = file.expiresAt
      ? h('span', { class: 'file-expiry', title: `Deleted ${fullTime(file.expiresAt)}` },
        ' · ', h('span', { dataset: { expiresAt: String(file.expiresAt) } }, `deleted in ${countdown(file.expiresAt - Date.now())}`))
      : null;
    const onChanged = () => this.refresh();
    const name = file.name ?? 'A file that could not be opened';
    const more = menuButton({
      label: 'More',
      name: `More actions for ${name}`,
      items: [
        { label: 'Share with a member…', onSelect: () => openShareWithMember({ client: this.client, file, onChanged }) },
        { label: 'Who can open it…', onSelect: () => openAccessDialog({ client: this.client, file, liveLinks, onChanged }) },
        { label: 'Delete automatically…', onSelect: () => openExpiryDialog({ client: this.client, file, onChanged }) },
        { label: 'Delete…', danger: true, onSelect: () => this.remove(file) },
      ],
    });
    more.querySelector('button').dataset.action = 'more';
    const actions = file.error
      ? h('div', { class: 'file-actions' },
        h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'delete' }, 'aria-describedby': nameId, onclick: () => this.remove(file) }, vaultIcon('trash'), 'Delete'))
      : h('div', { class: 'file-actions' },
        h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'download' }, 'aria-describedby': nameId, onclick: (event) => this.download(file, event.currentTarget, status) }, vaultIcon('download'), 'Download'),
        h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'share' }, 'aria-describedby': nameId, onclick: () => this.share(file) }, vaultIcon('link'), 'Share'),
        more);
    return h('li', { class: ['file-item', file.error ? 'file-broken' : ''], 'aria-labelledby': nameId, dataset: { fileId: file.id } },
      vaultIcon('file', 'file-icon'),
      h('div', { class: 'file-main' },
        h('span', { class: 'file-name', id: nameId }, name),
        h('span', { class: 'file-meta' },
          facts,
          expiry,
          file.createdAt ? h('time', { datetime: new Date(file.createdAt).toISOString(), title: fullTime(file.createdAt) }, ` · added ${shortTime(file.createdAt)}`) : null),
        file.error ? h('span', { class: 'file-error' }, `It does not open: ${file.error}`) : null,
        status,
      ),
      actions,
    );
  }

  async download(file, button, status) {
    this.alert.clear();
    button.disabled = true;
    status.textContent = 'Downloading…';
    try {
      const blob = await this.client.download(file.id, {
        onProgress: ({ stage, done, total }) => {
          status.textContent = `${stage === 'downloading' ? 'Downloading' : 'Decrypting'}… ${percent(done, total)}%`;
        },
      });
      saveBlob(blob, file.name);
      status.textContent = 'Decrypted and verified on this device.';
      announce(`${file.name} decrypted and saved.`);
    } catch (error) {
      status.textContent = '';
      this.alert.show(`${file.name}: ${describeError(error)}`);
    } finally {
      button.disabled = false;
    }
  }

  share(file) {
    openShareDialog({ client: this.client, file, onChanged: () => this.refresh() });
  }

  async remove(file) {
    const name = file.name ?? 'this file';
    const sure = await confirmDialog({
      title: `Delete ${name}?`,
      message: 'The encrypted file is removed from the server, and every share link to it stops working. This cannot be undone.',
      confirmLabel: 'Delete file',
      danger: true,
    });
    if (!sure) return;
    try {
      await this.client.deleteFile(file.id);
      announce(`${name} deleted.`);
      toast(`${name} deleted.`, { kind: 'success' });
      await this.refresh();
      this.element.querySelector('#vault-title')?.focus();
    } catch (error) {
      this.alert.show(error);
    }
  }
}
