// Writing a message: Enter sends, Shift+Enter starts a new line, Escape cancels an edit. Sending
// is blocked (with the reason shown and linked) while a member's key changed unacknowledged.

import { h, uid } from './dom.js';
import { icon } from './icons.js';

const MAX_LENGTH = 16000;

export class Composer {
  /**
   * `onSend(text)` and `onEdit(message, text)` return promises; a rejection keeps the text.
   * `onTyping(hasText)` hears every change of a new message's text (not of an edit).
   */
  constructor({ onSend, onEdit, onTyping }) {
    this.onSend = onSend;
    this.onEdit = onEdit;
    this.onTyping = onTyping;
    this.editing = null;
    this.blockedReason = null;
    this.sending = false;
    const inputId = uid('composer');
    this.hint = h('p', { class: 'composer-hint', id: `${inputId}-hint` }, 'Enter to send, Shift+Enter for a new line.');
    this.editBar = h('div', { class: 'composer-edit', hidden: true });
    this.input = h('textarea', {
      id: inputId,
      class: 'composer-input',
      rows: '1',
      maxlength: String(MAX_LENGTH),
      placeholder: 'Write an encrypted message',
      'aria-describedby': `${inputId}-hint`,
      onkeydown: (event) => this.keydown(event),
      oninput: () => {
        this.autosize();
        if (!this.editing) this.onTyping(this.input.value.trim() !== '');
      },
    });
    this.label = h('label', { for: inputId, class: 'visually-hidden' }, 'Message');
    this.sendButton = h('button', { type: 'submit', class: 'btn btn-primary composer-send' }, icon('send'), h('span', { class: 'send-label' }, 'Send'));
    this.element = h('form', { class: 'composer', 'aria-label': 'Write a message' },
      this.editBar,
      h('div', { class: 'composer-row' }, this.label, this.input, this.sendButton),
      this.hint,
    );
    this.element.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  keydown(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === 'Escape' && this.editing) {
      event.preventDefault();
      event.stopPropagation();
      this.cancelEdit();
    }
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  focus() {
    this.input.focus();
  }

  /** A reason (with an element id that explains it) blocks sending; null unblocks. */
  setBlocked(reason, describedBy) {
    this.blockedReason = reason;
    this.blockedBy = describedBy;
    const blocked = Boolean(reason);
    this.sendButton.disabled = blocked;
    this.input.setAttribute('aria-describedby', [this.hint.id, blocked && describedBy ? describedBy : null].filter(Boolean).join(' '));
    this.hint.textContent = blocked ? reason : 'Enter to send, Shift+Enter for a new line.';
    this.element.classList.toggle('composer-blocked', blocked);
  }

  startEdit(message) {
    this.editing = message;
    this.input.value = message.text;
    this.editBar.hidden = false;
    this.editBar.replaceChildren(
      h('span', {}, 'Editing your message. Escape cancels.'),
      h('button', { type: 'button', class: 'btn-text', onclick: () => this.cancelEdit() }, 'Cancel edit'),
    );
    this.sendButton.querySelector('.send-label').textContent = 'Save';
    this.autosize();
    this.input.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  cancelEdit() {
    this.editing = null;
    this.input.value = '';
    this.editBar.hidden = true;
    this.editBar.replaceChildren();
    this.sendButton.querySelector('.send-label').textContent = 'Send';
    this.setBlocked(this.blockedReason, this.blockedBy);
    this.autosize();
    this.input.focus();
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text || this.sending) return;
    if (this.blockedReason) return;
    const editing = this.editing;
    this.sending = true;
    this.input.value = '';
    this.autosize();
    if (!editing) this.onTyping(false);
    try {
      if (editing) {
        if (text !== editing.text) await this.onEdit(editing, text);
        this.cancelEdit();
      } else {
        await this.onSend(text);
      }
    } catch {
      if (!this.input.value) this.input.value = text;
      this.autosize();
    } finally {
      this.sending = false;
    }
  }
}
