// The conversation list: search over decrypted titles and names (here, in the browser), unread
// badges (none while busy: do not disturb), the last message's preview or who is typing, the
// other member's presence in a direct conversation, and buttons to start a conversation.

import { h, replace, uid } from './dom.js';
import { icon } from './icons.js';
import { conversationTitle, shortTime, fullTime, toMillis } from './format.js';
import { avatar, memberName, statusText, typingText } from './presence.js';
import { conversationTrust } from './trust.js';
import { chatPath } from './router.js';

export class ConversationList {
  /** `onNew(kind)` opens the new-conversation dialog for 'direct' or 'group'; `client` gives presence and typing. */
  constructor({ me, client, onNew }) {
    this.me = me;
    this.client = client;
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
    const unread = this.client.presence.busy ? 0 : Number(conversation.unread) || 0;
    const typing = typingText(this.client.typing.typers(conversation.id).map((userId) => memberName(conversation, userId)));
    const preview = typing || (last
      ? (conversation.kind === 'group' && last.senderName ? `${last.senderName}: ${last.preview ?? ''}` : (last.preview ?? ''))
      : 'No messages yet');
    const other = conversation.kind === 'direct' ? (conversation.members || []).find((member) => member.userId !== this.me.userId) : null;
    const presence = other ? this.client.presence.of(other.userId) : undefined;
    const status = other ? statusText(presence) : '';
    const when = last ? last.sentAt : conversation.updatedAt;
    return h('a', {
      class: ['conversation', unread ? 'has-unread' : ''],
      href: chatPath(conversation.id),
      'data-route': true,
      dataset: { id: conversation.id },
      'aria-current': conversation.id === this.activeId ? 'page' : null,
    },
    avatar(title, presence, { group: conversation.kind === 'group' }),
    h('span', { class: 'conversation-main' },
      h('span', { class: 'conversation-top' },
        h('span', { class: 'conversation-title' }, title),
        status ? h('span', { class: 'conversation-status' }, status) : null,
        when ? h('time', { class: 'conversation-time', datetime: new Date(toMillis(when) ?? 0).toISOString(), title: fullTime(when) }, shortTime(when)) : null,
      ),
      h('span', { class: 'conversation-bottom' },
        trust === 'changed' || conversation.alarm
          ? h('span', { class: 'conversation-alert' }, icon('alert'), h('span', { class: 'visually-hidden' }, conversation.alarm ? 'Failed verification. ' : 'Key changed. '))
          : null,
        h('span', { class: ['conversation-preview', typing ? 'conversation-typing' : ''] }, preview),
        unread ? h('span', { class: 'badge' }, String(unread), h('span', { class: 'visually-hidden' }, ' unread')) : null,
      ),
    ));
  }
}

