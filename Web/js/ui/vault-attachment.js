// Attachments in a chat: the attach button (a keyboard-accessible file picker beside the
// composer), the uploads in progress above the composer (by stage, with pause, resume and
// cancel), and an attachment inside a message (name, size, Download).

import { h, uid } from './dom.js';
import { describeError } from './errors.js';
import { announce } from './announcer.js';
import { UploadItem, formatBytes, percent, saveBlob, vaultIcon } from './vault-common.js';

/** The paperclip beside the composer: a label for a visually hidden file input. */
export class AttachButton {
  constructor({ onFiles }) {
    const id = uid('attach');
    this.input = h('input', {
      type: 'file', id, multiple: true, class: 'visually-hidden file-input',
      onchange: () => {
        const files = [...this.input.files];
        this.input.value = '';
        if (files.length) onFiles(files);
      },
    });
    this.label = h('label', { for: id, class: 'btn-icon attach-button', title: 'Attach a file' },
      vaultIcon('paperclip'), h('span', { class: 'visually-hidden' }, 'Attach a file'));
    this.element = h('span', { class: 'file-picker attach-picker' }, this.input, this.label);
  }

  setDisabled(disabled) {
    this.input.disabled = disabled;
    this.element.classList.toggle('is-disabled', disabled);
  }
}

/** The attachment uploads of one conversation, shown above the composer. */
export class AttachmentUploads {
  constructor({ client, convId }) {
    this.client = client;
    this.convId = convId;
    this.items = new Set();
    this.list = h('ul', { class: 'upload-list attachment-uploads', 'aria-label': 'Files being sent' });
    this.element = h('div', { class: 'attachment-tray', hidden: true }, this.list);
  }

  add(file) {
    const item = new UploadItem({
      name: file.name || 'file',
      size: file.size,
      start: ({ signal, onProgress, onHandle }) => this.client.attach(this.convId, file, onProgress, { signal, onHandle }),
      resume: (handle, options) => this.client.resumeAttachment(this.convId, handle, options),
      onDone: () => setTimeout(() => item.remove(), 4000),
      onCancel: (handle) => this.client.cancelUpload(handle),
      onRemove: (gone) => {
        this.items.delete(gone);
        this.element.hidden = this.items.size === 0;
      },
    });
    this.items.add(item);
    this.list.append(item.element);
    this.element.hidden = false;
    announce(`Encrypting and sending ${file.name || 'a file'}.`);
    item.start();
  }
}

/** An attachment inside a message: its name, size and a Download button. */
export function attachmentView(message, { onDownload }) {
  const attachment = message.attachment;
  const nameId = uid('attachment');
  const status = h('span', { class: 'attachment-status', role: 'status' });
  const button = h('button', {
    type: 'button', class: 'btn btn-small attachment-download', dataset: { action: 'download' }, 'aria-describedby': nameId,
    onclick: async () => {
      button.disabled = true;
      status.textContent = 'Downloading…';
      try {
        await onDownload(message, ({ stage, done, total }) => {
          status.textContent = `${stage === 'downloading' ? 'Downloading' : 'Decrypting'}… ${percent(done, total)}%`;
        });
        status.textContent = 'Decrypted and verified.';
      } catch (error) {
        status.textContent = `Could not open it: ${describeError(error)}`;
      } finally {
        button.disabled = false;
      }
    },
  }, vaultIcon('download'), 'Download');
  return h('div', { class: 'attachment' },
    vaultIcon('file', 'attachment-icon'),
    h('div', { class: 'attachment-main' },
      h('span', { class: 'attachment-name', id: nameId }, attachment.name),
      h('span', { class: 'attachment-meta' }, [formatBytes(attachment.size), 'encrypted file'].join(' · ')),
      status),
    button,
  );
}

/** Downloads an attachment, checks it, and offers it to save. */
export async function downloadAttachment(client, convId, message, onProgress) {
  const { blob, name } = await client.downloadAttachment(convId, message.id, { onProgress });
  saveBlob(blob, name);
  announce(`${name} decrypted and saved.`);
}
