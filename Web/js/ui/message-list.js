// The messages of one conversation, updated in place by id so that focus and scroll position
// survive live updates. Each message shows its sender, text, time, edit mark, a countdown when
// it disappears, and for my own messages their delivery and read state.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { clockTime, fullTime, countdown, toMillis } from './format.js';

const NEAR_BOTTOM_PX = 96;

function statusText(message) {
  if (message.status === 'sending') return 'Sending…';
  if (message.status === 'read') {
    const names = message.readBy || [];
    return names.length ? `Read by ${names.join(', ')}` : 'Read';
  }
  return 'Sent';
}

export class MessageList {
  /**
   * `onEdit(message)` and `onDelete(message)` are called from each own message's buttons;
   * `renderAttachment(message)` draws a message's attachment (name, size, Download).
   */
  constructor({ onEdit, onDelete, showSenders, renderAttachment = null }) {
    this.onEdit = onEdit;
    this.renderAttachment = renderAttachment;
    this.onDelete = onDelete;
    this.showSenders = showSenders;
    this.items = new Map();
    this.messages = [];
    this.loaded = false;
    this.list = h('ol', { class: 'messages' });
    this.empty = h('p', { class: 'messages-empty' });
    this.element = h('div', { class: 'message-scroller', tabindex: '0', role: 'region', 'aria-label': 'Messages' }, this.empty, this.list);
  }

  /** Renders `messages` (oldest first) and returns those from others that were not shown before. */
  update(messages) {
    const now = Date.now();
    const visible = messages.filter((message) => !this.hasExpired(message, now));
    const nearBottom = this.element.scrollHeight - this.element.scrollTop - this.element.clientHeight < NEAR_BOTTOM_PX;
    const fresh = [];
    const seen = new Set();
    let previous = null;
    let sentByMe = false;
    for (const message of visible) {
      seen.add(message.id);
      let entry = this.items.get(message.id);
      const signature = JSON.stringify([message.kind, message.attachment ? message.attachment.fileId : null, message.text, message.edited, message.deleted, message.missing, message.missingCount, message.status, message.readBy, message.expiresAt, message.sender && message.sender.displayName]);
      if (!entry) {
        entry = { element: h('li', { class: 'message', dataset: { id: message.id } }), signature: null };
        this.items.set(message.id, entry);
        if (this.loaded && !message.mine && message.kind !== 'call') fresh.push(message);
        if (this.loaded && message.mine) sentByMe = true;
      }
      if (entry.signature !== signature) {
        this.fill(entry.element, message);
        entry.signature = signature;
      }
      const expectedNext = previous ? previous.nextSibling : this.list.firstChild;
      if (expectedNext !== entry.element) this.list.insertBefore(entry.element, expectedNext);
      previous = entry.element;
    }
    for (const [id, entry] of this.items) {
      if (!seen.has(id)) {
        entry.element.remove();
        this.items.delete(id);
      }
    }
    this.messages = visible;
    this.empty.textContent = visible.length ? '' : 'No messages yet. Say hello: only the members of this conversation can read it.';
    this.empty.hidden = visible.length > 0;
    if (!this.loaded || nearBottom || sentByMe) this.scrollToEnd();
    this.loaded = true;
    return fresh;
  }

  hasExpired(message, now) {
    const expires = toMillis(message.expiresAt);
    return expires !== null && expires <= now;
  }

  scrollToEnd() {
    this.element.scrollTop = this.element.scrollHeight;
  }

  fill(element, message) {
    if (message.kind === 'notice') {
      // A change of the conversation's settings: one line in the middle, for everyone.
      element.className = 'message message-call message-notice';
      replace(element, h('span', { class: 'message-call-line' },
        icon(message.icon || 'timer'), message.text, ' · ',
        h('time', { datetime: new Date(toMillis(message.sentAt) ?? Date.now()).toISOString(), title: fullTime(message.sentAt) }, clockTime(message.sentAt))));
      return;
    }
    if (message.kind === 'call') {
      // A call record: one line in the middle ("Missed video call", "Voice call, 12 min").
      element.className = 'message message-call';
      element.dataset.missed = message.missed ? 'true' : 'false';
      replace(element, h('span', { class: 'message-call-line' },
        icon(message.media === 'video' ? 'video' : 'phone'), message.text, ' · ',
        h('time', { datetime: new Date(toMillis(message.sentAt) ?? Date.now()).toISOString(), title: fullTime(message.sentAt) }, clockTime(message.sentAt))));
      return;
    }
    if (message.missing) {
      // Listed as deleted without its author's signed delete, or a gap in the sender's chain.
      const who = message.mine ? 'you' : (message.sender ? message.sender.displayName : 'a member');
      const count = message.missingCount || 1;
      const text = message.tombstone
        ? `A message from ${who} is missing: the server lists it as deleted, but ${message.mine ? 'you' : 'they'} did not delete it.`
        : `${count === 1 ? 'A message' : `${count} messages`} from ${who} ${count === 1 ? 'is' : 'are'} missing: the server did not deliver ${count === 1 ? 'it' : 'them'}.`;
      element.className = 'message message-call message-missing';
      replace(element, h('span', { class: 'message-call-line' }, icon('alert'), text));
      return;
    }
    const focusedAction = element.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    element.className = ['message', message.mine ? 'message-mine' : 'message-theirs', message.deleted ? 'message-deleted' : ''].filter(Boolean).join(' ');
    const sender = message.sender ? message.sender.displayName : '';
    const expires = toMillis(message.expiresAt);
    const meta = [
      h('time', { datetime: new Date(toMillis(message.sentAt) ?? Date.now()).toISOString(), title: fullTime(message.sentAt) }, clockTime(message.sentAt)),
    ];
    if (message.edited && !message.deleted) meta.push(h('span', { class: 'message-edited' }, 'edited'));
    if (expires !== null && !message.deleted) {
      meta.push(h('span', { class: 'message-expiry', dataset: { expires: String(expires) } },
        icon('timer'),
        h('span', { class: 'visually-hidden' }, 'Disappears in '),
        h('span', { class: 'expiry-value' }, countdown(expires - Date.now()))));
    }
    if (message.mine && !message.deleted) {
      meta.push(h('span', {
        class: `message-status status-${message.status || 'sent'}`,
        title: message.status === 'read' ? 'Read receipts are reported by the server, which could forge them.' : null,
      }, statusText(message)));
    }
    const attachment = message.attachment && !message.deleted && this.renderAttachment ? this.renderAttachment(message) : null;
    const actions = message.mine && !message.deleted && message.status !== 'sending'
      ? h('div', { class: 'message-actions' },
        attachment ? null : h('button', { type: 'button', class: 'btn-text', dataset: { action: 'edit' }, onclick: () => this.onEdit(message) }, 'Edit'),
        h('button', { type: 'button', class: 'btn-text btn-text-danger', dataset: { action: 'delete' }, onclick: () => this.onDelete(message) }, 'Delete'))
      : null;
    replace(element,
      h('div', { class: 'message-bubble' },
        !message.mine && this.showSenders() ? h('p', { class: 'message-sender' }, sender) : null,
        !message.mine && !this.showSenders() ? h('span', { class: 'visually-hidden' }, `${sender}: `) : null,
        message.mine ? h('span', { class: 'visually-hidden' }, 'You: ') : null,
        message.deleted
          ? h('p', { class: 'message-text message-text-deleted' }, 'This message was deleted.')
          : attachment || h('p', { class: 'message-text' }, message.text),
        h('p', { class: 'message-meta' }, meta),
      ),
      actions,
    );
    if (focusedAction) {
      const again = element.querySelector(`[data-action="${focusedAction}"]`);
      if (again) again.focus();
    }
  }

  /** Updates every countdown; drops messages whose time is up. Returns true if one expired. */
  tick() {
    const now = Date.now();
    let expired = false;
    for (const counter of this.list.querySelectorAll('.message-expiry')) {
      const remaining = Number(counter.dataset.expires) - now;
      if (remaining <= 0) {
        const item = counter.closest('.message');
        if (item) {
          this.items.delete(item.dataset.id);
          item.remove();
          expired = true;
        }
      } else {
        counter.querySelector('.expiry-value').textContent = countdown(remaining);
      }
    }
    if (expired) {
      this.messages = this.messages.filter((message) => this.items.has(message.id));
      this.empty.hidden = this.messages.length > 0;
      this.empty.textContent = this.messages.length ? '' : 'No messages yet. Say hello: only the members of this conversation can read it.';
    }
    return expired;
  }
}
