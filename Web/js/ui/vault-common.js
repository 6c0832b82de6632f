// Pieces shared by the vault screen, the chat's attachments and the public share page: file
// sizes, the vault's own line icons, saving a decrypted Blob through a blob: URL, and an upload
// shown by stage (encrypting, uploading, verifying) with pause, resume and cancel.

import { h, s, uid } from './dom.js';
import { describeError } from './errors.js';
import { announce } from './announcer.js';

const PATHS = {
  upload: 'M12 16V4M6 10l6-6 6 6M4 20h16',
  download: 'M12 4v12M6 10l6 6 6-6M4 20h16',
  file: 'M14 3H6v18h12V7zM14 3v4h4',
  paperclip: 'M21 11l-8.5 8.5a5 5 0 0 1-7-7L14 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 7',
  link: 'M10 14a4 4 0 0 0 6 0l3-3a4 4 0 0 0-6-6l-1 1M14 10a4 4 0 0 0-6 0l-3 3a4 4 0 0 0 6 6l1-1',
  trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13',
  pause: 'M8 5v14M16 5v14',
  play: 'M7 4l12 8-12 8z',
  close: 'M6 6l12 12M18 6L6 18',
  vault: 'M3 4h18v16H3zM12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM12 9V7M15 12h2M3 8h-1M3 16h-1',
};

/** A vault icon (decorative). */
export function vaultIcon(name, className = '') {
  return s('svg', { class: `icon ${className}`.trim(), viewBox: '0 0 24 24', 'aria-hidden': 'true', focusable: 'false' },
    s('path', { d: PATHS[name] || PATHS.file }));
}

/** "0 bytes", "999 bytes", "1.5 KB", "20.0 MB" (powers of 1,000, as file managers show). */
export function formatBytes(bytes) {
  const value = Number(bytes);
  if (!Number.isFinite(value) || value < 0) return '';
  if (value < 1000) return `${value} ${value === 1 ? 'byte' : 'bytes'}`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let scaled = value / 1000;
  let unit = 0;
  while (scaled >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit += 1;
  }
  return `${scaled.toFixed(scaled < 10 ? 2 : scaled < 100 ? 1 : 0)} ${units[unit]}`;
}

/** The percentage of done/total as a whole number (100 for an empty total). */
export function percent(done, total) {
  if (!total) return 100;
  return Math.max(0, Math.min(100, Math.floor((done / total) * 100)));
}

/**
 * Offers a decrypted Blob as a download: a blob: URL with the file's name on a link that is
 * clicked at once. The URL is released after a minute.
 */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: name || 'file', rel: 'noreferrer', referrerpolicy: 'no-referrer', hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const STAGES = [
  ['encrypting', 'Encrypting'],
  ['uploading', 'Uploading'],
  ['verifying', 'Verifying'],
];

/** The three stages of an upload, each with its progress bar and state text. */
export class StageList {
  constructor(fileName) {
    this.items = new Map();
    this.element = h('ol', { class: 'upload-stages' },
      STAGES.map(([stage, label]) => {
        const bar = h('progress', { max: '100', value: '0', 'aria-label': `${label} ${fileName}` });
        const state = h('span', { class: 'upload-stage-state' }, 'waiting');
        const item = h('li', { class: 'upload-stage', dataset: { stage, state: 'pending' } },
          h('span', { class: 'upload-stage-label' }, `${label}:`), ' ', state, bar);
        this.items.set(stage, { item, bar, state, label });
        return item;
      }));
  }

  /** Applies one progress report `{stage, done, total}`. */
  update({ stage, done, total }) {
    const entry = this.items.get(stage);
    if (!entry) return;
    const value = percent(done, total);
    const finished = total ? done >= total : true;
    entry.bar.value = value;
    entry.item.dataset.state = finished ? 'done' : 'active';
    entry.state.textContent = finished ? 'done' : `${value}%`;
    // Every stage before a later one is done (a resumed upload skips what the server holds).
    const order = STAGES.map(([name]) => name);
    if (stage === 'verifying') {
      for (const earlier of order.slice(0, order.indexOf(stage))) this.markDone(earlier);
    }
  }

  markDone(stage) {
    const entry = this.items.get(stage);
    if (!entry || entry.item.dataset.state === 'done') return;
    entry.bar.value = 100;
    entry.item.dataset.state = 'done';
    entry.state.textContent = 'done';
  }

  /** The active stages shown as paused (or failed). */
  halt(text) {
    for (const entry of this.items.values()) {
      if (entry.item.dataset.state === 'active') {
        entry.item.dataset.state = 'halted';
        entry.state.textContent = text;
      }
    }
  }
}

/**
 * One upload on screen: the file's name and size, its stages, and Pause / Resume / Cancel.
 * `start({signal, onProgress, onHandle})` and `resume(handle, {signal, onProgress})` do the
 * work (returning promises); `onDone(result, item)` runs after a verified upload, `onCancel(handle)`
 * abandons one.
 */
export class UploadItem {
  constructor({ name, size, start, resume, onDone, onCancel, onRemove, interrupted = null, held = false }) {
    this.name = name;
    this.size = size;
    this.startWork = start;
    this.resumeWork = resume;
    this.onDone = onDone;
    this.onCancel = onCancel;
    this.onRemove = onRemove;
    this.handle = interrupted;
    this.controller = null;
    this.state = 'idle';
    const titleId = uid('upload');
    this.stages = new StageList(name);
    this.status = h('p', { class: 'upload-status', role: 'status' });
    this.pauseButton = h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.pause() }, vaultIcon('pause'), 'Pause');
    this.resumeButton = h('button', { type: 'button', class: 'btn btn-small btn-primary', hidden: true, onclick: () => this.resume() }, vaultIcon('play'), 'Resume');
    this.cancelButton = h('button', { type: 'button', class: 'btn btn-small btn-danger', onclick: () => this.cancel() }, vaultIcon('close'), 'Cancel');
    this.dismissButton = h('button', { type: 'button', class: 'btn btn-small', hidden: true, onclick: () => this.remove() }, 'Dismiss');
    this.picker = null;
    if (interrupted && !held) {
      // After a reload the page no longer holds the file: it must be chosen again.
      const id = uid('resume-file');
      const input = h('input', { type: 'file', id, class: 'visually-hidden file-input', onchange: () => {
        const [file] = input.files;
        input.value = '';
        if (file) this.resume(file);
      } });
      this.picker = h('span', { class: 'file-picker' }, input, h('label', { for: id, class: 'btn btn-small btn-primary' }, `Choose ${name} again to resume`));
    }
    this.element = h('li', { class: 'upload-item', 'aria-labelledby': titleId, dataset: { state: 'idle' } },
      h('div', { class: 'upload-head' },
        vaultIcon('file', 'upload-icon'),
        h('div', { class: 'upload-title' },
          h('span', { class: 'upload-name', id: titleId }, name),
          h('span', { class: 'upload-size' }, formatBytes(size))),
      ),
      this.stages.element,
      this.status,
      h('div', { class: 'upload-actions' }, this.picker, this.pauseButton, this.resumeButton, this.cancelButton, this.dismissButton),
    );
    if (interrupted && held) this.setState('paused', 'Paused. What the server already holds is kept; Resume continues from there.');
    else if (interrupted) this.setState('interrupted', 'Interrupted before it finished. Choose the same file again to go on from where it stopped.');
  }

  setState(state, text) {
    this.state = state;
    this.element.dataset.state = state;
    this.status.textContent = text || '';
    const running = state === 'running';
    this.pauseButton.hidden = !running;
    // A file chosen again after a reload: until one was accepted, resuming needs the picker.
    const needsFile = Boolean(this.picker) && !this.fileAccepted;
    this.resumeButton.hidden = needsFile || (state !== 'paused' && !(state === 'failed' && this.handle));
    this.cancelButton.hidden = !(running || state === 'paused' || state === 'interrupted' || (state === 'failed' && this.handle));
    this.dismissButton.hidden = !(state === 'done' || (state === 'failed' && !this.handle));
    if (this.picker) this.picker.hidden = !(needsFile && (state === 'interrupted' || state === 'failed'));
  }

  progress(report) {
    if (report.handle) this.handle = report.handle;
    // Progress means the file was accepted for this upload.
    if (this.picker) this.fileAccepted = true;
    this.stages.update(report);
  }

  /** Starts the upload. */
  async start() {
    await this.run(() => this.startWork({
      signal: this.controller.signal,
      onProgress: (report) => this.progress(report),
      onHandle: (handle) => { this.handle = handle; },
    }));
  }

  pause() {
    if (this.state !== 'running' || !this.controller) return;
    this.controller.abort();
  }

  async resume(file) {
    if (!this.handle || this.state === 'running') return;
    await this.run(() => this.resumeWork(this.handle, {
      file,
      signal: this.controller.signal,
      onProgress: (report) => this.progress(report),
    }));
  }

  async run(work) {
    this.controller = new AbortController();
    this.setState('running', 'Encrypting on this device and uploading…');
    this.working = work();
    try {
      const result = await this.working;
      this.stages.markDone('encrypting');
      this.stages.markDone('uploading');
      this.stages.markDone('verifying');
      this.setState('done', 'Encrypted, uploaded and verified.');
      announce(`${this.name} is encrypted, uploaded and verified.`);
      this.onDone?.(result, this);
    } catch (error) {
      if (error?.code === 'paused' || error?.name === 'AbortError') {
        if (error.handle) this.handle = error.handle;
        if (this.state === 'cancelling') return;
        if (!this.handle) {
          // Stopped before the server knew of it: nothing to resume.
          this.stages.halt('stopped');
          this.setState('failed', 'Stopped before the upload began.');
          return;
        }
        this.stages.halt('paused');
        this.setState('paused', 'Paused. What the server already holds is kept; Resume continues from there.');
        announce(`${this.name} paused.`);
        return;
      }
      this.stages.halt('stopped');
      this.setState('failed', `Failed: ${describeError(error)}`);
      announce(`${this.name} failed to upload.`);
    } finally {
      this.controller = null;
    }
  }

  async cancel() {
    const wasRunning = this.state === 'running';
    this.state = 'cancelling';
    this.element.dataset.state = 'cancelling';
    this.status.textContent = 'Cancelling…';
    if (wasRunning && this.controller) {
      this.controller.abort();
      // The upload stops at its next step; only then is its handle certain.
      await this.working?.catch(() => {});
    }
    try {
      if (this.handle) await this.onCancel?.(this.handle);
      announce(`${this.name} cancelled.`);
      this.remove();
    } catch (error) {
      this.setState('failed', `Could not cancel: ${describeError(error)}`);
    }
  }

  remove() {
    this.element.remove();
    this.onRemove?.(this);
  }
}
