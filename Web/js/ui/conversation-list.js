// The conversation list: search over decrypted titles and names (here, in the browser), unread
// badges, the last message's preview, and buttons to start a direct or group conversation.

import { h, replace, uid } from './dom.js';
import { icon } from './icons.js';
import { conversationTitle, initials, shortTime, fullTime, toMillis } from './format.js';
import { conversationTrust } from './trust.js';
import { chatPath } from './router.js';

export class ConversationList {
  /** `onNew(kind)` opens the new-conversation dialog for 'direct' or 'group'. */
  constructor({ me, onNew }) {
    this.me = me;
    this.conversations = null;
    this.activeId = null;
    this.query = '';
    const searchId = uid('search');
    this.search = h('input', {
      id: searchId,
      type: 'search',
      class: 'search-input',
      placeholder: 'Search conversations',
      autocomplete: 'off',
      oninput: () => { this.query = this.search.value; this.render(); },
      onkeydown: (event) => {
        if (event.key === 'Escape' && this.search.value) {
          event.stopPropagation();
          this.search.value = '';
          this.query = '';
          this.render();
        }
      },
    });
    this.list = h('ul', { class: 'conversation-list', 'aria-labelledby': 'conversations-title' });
    this.status = h('p', { class: 'list-status', role: 'status' });
    this.element = h('div', { class: 'sidebar-inner' },
      h('div', { class: 'sidebar-head' },
        h('h2', { id: 'conversations-title', class: 'sidebar-title' }, 'Conversations'),
        h('div', { class: 'sidebar-actions' },
          h('button', { type: 'button', class: 'btn btn-small', onclick: () => onNew('direct') }, icon('plus'), 'New chat'),
          h('button', { type: 'button', class: 'btn btn-small', onclick: () => onNew('group') }, icon('users'), 'New group'),
        ),
      ),
      h('div', { class: 'search' },
        h('label', { for: searchId, class: 'visually-hidden' }, 'Search conversations'),
        icon('search', 'search-icon'),
        this.search,
      ),
      this.status,
      this.list,
    );
    this.status.textContent = 'Loading conversations…';
  }

  setConversations(conversations) {
    this.conversations = [...conversations].sort((a, b) => (toMillis(b.updatedAt) ?? 0) - (toMillis(a.updatedAt) ?? 0));
    this.render();
  }

  setActive(convId) {
    this.activeId = convId;
    for (const link of this.list.querySelectorAll('a.conversation')) {
      if (link.dataset.id === convId) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  matches(conversation) {
    const query = this.query.trim().toLowerCase();
    if (!query) return true;
    const names = (conversation.members || []).flatMap((member) => [member.displayName, member.username]);
    return [conversationTitle(conversation, this.me), conversation.title, ...names]
      .some((text) => text && String(text).toLowerCase().includes(query));
  }

  render() {
    if (!this.conversations) return;
    const shown = this.conversations.filter((conversation) => this.matches(conversation));
    const hadFocus = this.list.contains(document.activeElement) ? document.activeElement.dataset.id : null;
    replace(this.list, shown.map((conversation) => h('li', {}, this.item(conversation))));
    if (hadFocus) {
      const again = [...this.list.querySelectorAll('a.conversation')].find((link) => link.dataset.id === hadFocus);
      if (again) again.focus();
    }
    if (this.conversations.length === 0) this.status.textContent = 'No conversations yet. Start one with New chat.';
    else if (shown.length === 0) this.status.textContent = `No conversation matches “${this.query.trim()}”.`;
    else this.status.textContent = this.query.trim() ? `${shown.length} of ${this.conversations.length} conversations` : '';
  }

  item(conversation) {
    const title = conversationTitle(conversation, this.me);
    const trust = conversationTrust(conversation, this.me);
    const last = conversation.lastMessage;
    const unread = Number(conversation.unread) || 0;
    const preview = last
      ? (conversation.kind === 'group' && last.senderName ? `${last.senderName}: ${last.preview ?? ''}` : (last.preview ?? ''))
      : 'No messages yet';
    const when = last ? last.sentAt : conversation.updatedAt;
    return h('a', {
      class: ['conversation', unread ? 'has-unread' : ''],
      href: chatPath(conversation.id),
      'data-route': true,
      dataset: { id: conversation.id },
      'aria-current': conversation.id === this.activeId ? 'page' : null,
    },
    h('span', { class: `avatar avatar-${conversation.kind}`, 'aria-hidden': 'true' }, conversation.kind === 'group' ? icon('users') : initials(title)),
    h('span', { class: 'conversation-main' },
      h('span', { class: 'conversation-top' },
        h('span', { class: 'conversation-title' }, title),
        when ? h('time', { class: 'conversation-time', datetime: new Date(toMillis(when) ?? 0).toISOString(), title: fullTime(when) }, shortTime(when)) : null,
      ),
      h('span', { class: 'conversation-bottom' },
        trust === 'changed' || conversation.alarm
          ? h('span', { class: 'conversation-alert' }, icon('alert'), h('span', { class: 'visually-hidden' }, conversation.alarm ? 'Failed verification. ' : 'Key changed. '))
          : null,
        h('span', { class: 'conversation-preview' }, preview),
        unread ? h('span', { class: 'badge' }, String(unread), h('span', { class: 'visually-hidden' }, ' unread')) : null,
      ),
    ));
  }
}
