// Modal dialogs on the native <dialog> element: focus stays inside while it is open, Escape
// closes it, and focus returns to whatever opened it.

import { h, uid } from './dom.js';

/**
 * Opens a modal dialog. `body` is a Node or a function (close) => Node.
 * Returns {dialog, close}. `onClose` runs once, however the dialog closes.
 */
export function openDialog({ title, body, description, className = '', onClose, initialFocus }) {
  const opener = document.activeElement;
  const titleId = uid('dialog-title');
  const descriptionId = description ? uid('dialog-desc') : undefined;
  let closed = false;

  const close = () => {
    if (closed) return;
    closed = true;
    if (dialog.open) dialog.close();
    dialog.remove();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    if (onClose) onClose();
  };

  const dialog = h('dialog', { class: ['dialog', className], 'aria-labelledby': titleId, 'aria-describedby': descriptionId },
    h('div', { class: 'dialog-header' },
      h('h2', { id: titleId, class: 'dialog-title' }, title),
      h('button', { type: 'button', class: 'btn-icon dialog-close', 'aria-label': 'Close', onclick: close }, '×'),
    ),
    description ? h('p', { id: descriptionId, class: 'dialog-description' }, description) : null,
  );
  const content = typeof body === 'function' ? body(close) : body;
  dialog.append(h('div', { class: 'dialog-body' }, content));
  dialog.addEventListener('close', close);
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    close();
  });
  document.body.append(dialog);
  dialog.showModal();
  const target = initialFocus ? dialog.querySelector(initialFocus) : null;
  if (target) target.focus();
  return { dialog, close };
}

/** Asks a yes/no question; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    openDialog({
      title,
      className: 'dialog-confirm',
      onClose: () => resolve(answer),
      initialFocus: '[data-autofocus]',
      body: (close) => h('div', {},
        h('p', {}, message),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', 'data-autofocus': true, onclick: close }, 'Cancel'),
          h('button', {
            type: 'button',
            class: danger ? 'btn btn-danger' : 'btn btn-primary',
            onclick: () => { answer = true; close(); },
          }, confirmLabel),
        ),
      ),
    });
  });
}
