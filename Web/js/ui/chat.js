// One conversation: its header with the encryption state and, in a direct conversation, the
// other member's presence; alarm banners (fork, changed keys), the live message list with
// countdowns and the conversation's calls, who is typing, the call buttons, and the composer.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { alertSlot } from './errors.js';
import { confirmDialog } from './dialog.js';
import { announce } from './announcer.js';
import { conversationTitle, disappearLabel, retentionLabel, toMillis } from './format.js';
import { avatar, lastSeen, memberName, STATE_NAMES, stateOf, statusText, typingText } from './presence.js';
import { conversationTrust, changedMembers, otherMembers, trustBadge } from './trust.js';
import { MessageList } from './message-list.js';
import { Composer } from './composer.js';
import { openMembers } from './members.js';
import { openChatSettings } from './chat-settings.js';
import { openSafetyNumber } from './safety-number.js';
import { openPrivacyNote } from './privacy-note.js';
import { AttachButton, AttachmentUploads, attachmentView, downloadAttachment } from './vault-attachment.js';
import { CallButtons, callLine } from './call.js';
import { setPageTitle } from './attention.js';

const TICK_MS = 1000;
const MARK_READ_DELAY_MS = 250;

/** A change of the conversation's settings as a line among its messages ("Dana set messages to
 * disappear after 1 day"). */
function settingsItem(change) {
  const who = change.mine ? 'You' : change.actorName;
  let text;
  if (change.what === 'timer') {
    text = change.disappearSeconds > 0 ? `${who} set messages to disappear after ${disappearLabel(change.disappearSeconds)}` : `${who} turned off disappearing messages`;
  } else if (change.what === 'retention') {
    text = change.retentionDays > 0
      ? `${who} set messages to be deleted for everyone after ${retentionLabel(change.retentionDays)}`
      : `${who} set messages to be kept until deleted`;
  } else {
    text = `${who} turned read receipts ${change.readReceipts ? 'on' : 'off'}`;
  }
  return { kind: 'notice', id: change.id, sentAt: change.at, text, icon: change.what === 'receipts' ? 'eye' : 'timer', mine: false };
}

export class ChatView {
  /**
   * `getConversation()` returns the freshest copy from the app's list (or undefined),
   * `refreshConversations()` reloads the list, `alarms` is the app's list of alarm events.
   */
  constructor({ client, me, convId, getConversation, isListLoaded, refreshConversations, alarms }) {
    this.client = client;
    this.isListLoaded = isListLoaded;
    this.me = me;
    this.convId = convId;
    this.getConversation = getConversation;
    this.refreshConversations = refreshConversations;
    this.alarms = alarms;
    this.alert = alertSlot();
    this.destroyed = false;
    this.loadingMessages = null;
    this.reloadWanted = false;
    this.messagesRequested = false;

    this.title = h('h1', { class: 'chat-title', id: 'chat-title', tabindex: '-1' }, 'Conversation');
    this.subtitle = h('p', { class: 'chat-subtitle' });
    this.presenceLine = h('p', { class: 'chat-presence', hidden: true });
    this.avatarSlot = h('span', { class: 'chat-avatar' });
    this.typingLine = h('p', { class: 'typing-indicator', role: 'status' });
    this.trustButton = h('button', { type: 'button', class: 'btn btn-small trust-button', onclick: () => this.openTrust() });
    this.banners = h('div', { class: 'chat-banners' });
    this.messageList = new MessageList({
      onEdit: (message) => this.composer.startEdit(message),
      onDelete: (message) => this.deleteMessage(message),
      showSenders: () => (this.getConversation() || {}).kind === 'group',
      renderAttachment: (message) => attachmentView(message, {
        onDownload: (shown, onProgress) => downloadAttachment(this.client, this.convId, shown, onProgress),
      }),
    });
    this.composer = new Composer({
      onSend: (text) => this.send(text),
      onEdit: (message, text) => this.edit(message, text),
      onTyping: (hasText) => this.client.typing.input(this.convId, hasText),
    });
    // Attachments: a file picker at the start of the composer's row, uploads above it.
    this.attachments = new AttachmentUploads({ client, convId });
    this.attach = new AttachButton({ onFiles: (files) => this.sendFiles(files) });
    this.callButtons = new CallButtons({ client, convId, onError: (error) => this.alert.show(error) });
    /** The conversation's call records, shown among its messages. */
    this.callRecords = [];
    this.composer.element.querySelector('.composer-row').prepend(this.attach.element);
    this.element = h('section', { class: 'chat', 'aria-labelledby': 'chat-title' },
      h('header', { class: 'chat-header' },
        h('a', { href: '/', 'data-route': true, class: 'btn-icon chat-back', 'aria-label': 'Back to conversations' }, icon('back')),
        this.avatarSlot,
        h('div', { class: 'chat-heading' }, this.title, this.subtitle, this.presenceLine),
        h('div', { class: 'chat-tools' },
          this.callButtons.element,
          this.trustButton,
          h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Members and safety numbers', onclick: () => this.openMembers() }, icon('users')),
          h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Conversation settings', onclick: () => this.openSettings() }, icon('settings')),
          h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'What the server can see', onclick: () => openPrivacyNote() }, icon('eye')),
        ),
      ),
      this.banners,
      this.alert.element,
      this.messageList.element,
      this.attachments.element,
      this.typingLine,
      this.composer.element,
    );
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.onVisible = () => {
      if (document.visibilityState === 'visible') this.scheduleMarkRead();
    };
    document.addEventListener('visibilitychange', this.onVisible);
  }

  /** First render: header from the cached conversation, then the messages and calls. */
  start({ focusComposer = true } = {}) {
    this.updateConversation();
    if (focusComposer) this.composer.focus();
  }

  destroy() {
    this.destroyed = true;
    this.client.typing.stopped(this.convId);
    clearInterval(this.timer);
    clearTimeout(this.markReadTimer);
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  /** Called when the conversation list changed: header, trust, banners, blocking. */
  updateConversation() {
    const conversation = this.getConversation();
    if (!conversation) {
      const missing = this.isListLoaded();
      this.title.textContent = missing ? 'Conversation not found' : 'Conversation';
      this.subtitle.textContent = missing ? 'It does not exist, or you are not one of its members.' : 'Loading…';
      this.element.classList.toggle('chat-missing', missing);
      return;
    }
    this.element.classList.remove('chat-missing');
    // A change of the settings shows as a line among the messages: draw them again.
    const settingsKey = JSON.stringify(conversation.settings || null);
    if (this.messagesRequested && this.settingsKey !== undefined && settingsKey !== this.settingsKey) this.loadMessages();
    this.settingsKey = settingsKey;
    if (!this.messagesRequested) this.loadMessages();
    if (!this.callsRequested) this.loadCalls();
    const title = conversationTitle(conversation, this.me);
    this.title.textContent = title;
    setPageTitle(`${title} · Circle`);
    const count = (conversation.members || []).length;
    const parts = ['End-to-end encrypted'];
    if (conversation.kind === 'group') parts.push(`${count} ${count === 1 ? 'member' : 'members'}`);
    const seconds = Number((conversation.settings || {}).disappearSeconds) || 0;
    if (seconds > 0) parts.push(`Disappearing after ${disappearLabel(seconds)}`);
    const days = Number((conversation.settings || {}).retentionDays) || 0;
    if (days > 0) parts.push(`Kept ${retentionLabel(days)}`);
    replace(this.subtitle, icon('lock'), ' ', parts.join(' · '));
    const trust = conversationTrust(conversation, this.me);
    replace(this.trustButton, trustBadge(trust));
    this.trustButton.setAttribute('aria-label', `Encryption: ${trust === 'verified' ? 'verified' : trust === 'changed' ? 'a key changed' : 'not verified'}. Compare safety numbers`);
    this.renderBanners(conversation);
    this.onPresence();
    this.onTyping();
  }

  /** The other member of a direct conversation, or null. */
  otherMember() {
    const conversation = this.getConversation();
    if (!conversation || conversation.kind !== 'direct') return null;
    return otherMembers(conversation, this.me)[0] || null;
  }

  /** Called when presence changed: the avatar's dot, the state, custom status and last seen. */
  onPresence() {
    const conversation = this.getConversation();
    if (!conversation) return;
    const other = this.otherMember();
    const view = other ? this.client.presence.of(other.userId) : undefined;
    replace(this.avatarSlot, avatar(conversationTitle(conversation, this.me), view, { group: conversation.kind === 'group' }));
    this.presenceLine.hidden = !other;
    if (!other) return;
    const state = stateOf(view);
    const parts = [STATE_NAMES[state]];
    const seen = lastSeen(view);
    if (seen) parts.push(seen);
    const status = statusText(view);
    if (status) parts.push(status);
    replace(this.presenceLine, h('span', { class: 'presence-dot', dataset: { state }, 'aria-hidden': 'true' }), parts.join(' · '));
  }

  /** Called when typing changed here: "Ana is typing…" under the messages. */
  onTyping() {
    const conversation = this.getConversation();
    const text = typingText(this.client.typing.typers(this.convId).map((userId) => memberName(conversation, userId)));
    if (this.typingLine.textContent !== text) this.typingLine.textContent = text;
  }

  renderBanners(conversation) {
    const banners = [];
    const forks = this.alarms.filter((alarm) => alarm.kind === 'fork' && alarm.convId === this.convId);
    if (forks.length) {
      const latest = forks[forks.length - 1];
      banners.push(h('div', { class: 'banner banner-danger', role: 'alert', id: 'fork-banner' },
        icon('alert'),
        h('div', { class: 'banner-text' },
          h('strong', {}, 'Fork alarm. '),
          `${latest.message || 'Members see different histories of this conversation.'} `,
          'Do not trust this conversation until its members compare safety numbers.'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.openMembers() }, 'Compare safety numbers'),
      ));
    }
    if (conversation.alarm) {
      banners.push(h('div', { class: 'banner banner-danger', role: 'alert', id: 'verify-banner' },
        icon('alert'),
        h('div', { class: 'banner-text' },
          h('strong', {}, 'This conversation failed verification. '),
          `${conversation.alarm}. Nothing can be sent or trusted here until its members compare safety numbers.`),
      ));
    }
    const changed = changedMembers(conversation, this.me);
    for (const member of changed) {
      const name = member.displayName || member.username;
      banners.push(h('div', { class: 'banner banner-warning', role: 'alert', id: `key-changed-${member.userId}` },
        icon('alert'),
        h('div', { class: 'banner-text' },
          h('strong', {}, `${name}'s key changed. `),
          'They may have reset their account, or someone may be trying to listen in. Sending is blocked until you acknowledge the new key.'),
        h('div', { class: 'banner-actions' },
          h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.openSafety(member) }, 'Compare safety number'),
          h('button', { type: 'button', class: 'btn btn-small btn-warning', onclick: () => this.acceptKey(member) }, 'Acknowledge new key'),
        ),
      ));
    }
    const previousIds = [...this.banners.children].map((child) => child.id).join(' ');
    const nextIds = banners.map((banner) => banner.id).join(' ');
    if (previousIds !== nextIds) replace(this.banners, banners);
    if (conversation.alarm) {
      this.composer.setBlocked('Sending is blocked: this conversation failed verification.', 'verify-banner');
    } else if (changed.length) {
      const names = changed.map((member) => member.displayName || member.username).join(', ');
      this.composer.setBlocked(`Sending is blocked: the key of ${names} changed.`, changed.map((member) => `key-changed-${member.userId}`).join(' '));
    } else {
      this.composer.setBlocked(null);
    }
    this.attach.setDisabled(Boolean(this.composer.blockedReason));
  }

  /** Called for the client's 'alarm' events about this conversation. */
  onAlarm() {
    const conversation = this.getConversation();
    if (conversation) this.renderBanners(conversation);
  }

  /** Called for the client's `calls` events: the buttons, and the records when one of ours changed. */
  onCalls(callId) {
    this.callButtons.update();
    const view = callId ? this.client.calls.live.get(callId) : null;
    if (!callId || !view || view.conversationId === this.convId || this.callRecords.some((record) => record.id === callId)) this.loadCalls();
  }

  /** Reads the conversation's call records (newest 50) and shows them among the messages. */
  async loadCalls() {
    // Only for a conversation this member is in (anyone else would be answered 404).
    if (!this.getConversation()) return;
    this.callsRequested = true;
    try {
      const records = await this.client.calls.history(this.convId);
      if (this.destroyed) return;
      this.callRecords = records;
      if (this.messagesRequested) this.loadMessages();
    } catch {
      // Shown on the next change; the messages do not depend on them.
    }
  }

  /** A call record as an entry of the message list. */
  callItem(view) {
    const me = this.me.userId;
    const mine = (view.participants || []).find((p) => p.userId === me);
    const missed = view.state === 'ended' && view.createdBy !== me && (mine?.state === 'missed' || mine?.state === 'busy');
    return { kind: 'call', id: `call-${view.id}`, sentAt: view.createdAt, text: callLine(view, me), media: view.media, missed, mine: false };
  }

  /** Called for the client's 'messages' events about this conversation. */
  onMessages() {
    this.loadMessages();
  }

  async loadMessages() {
    this.messagesRequested = true;
    if (this.loadingMessages) {
      this.reloadWanted = true;
      return;
    }
    this.loadingMessages = (async () => {
      do {
        this.reloadWanted = false;
        try {
          if (this.isListLoaded() && !this.getConversation()) continue;
          const messages = await this.client.messages(this.convId);
          if (this.destroyed) return;
          const calls = this.callRecords.map((view) => this.callItem(view));
          const notices = (await this.client.settingsChanges(this.convId)).map((change) => settingsItem(change));
          const extra = [...calls, ...notices];
          const shown = extra.length ? [...messages, ...extra].sort((a, b) => (toMillis(a.sentAt) ?? 0) - (toMillis(b.sentAt) ?? 0)) : messages;
          const fresh = this.messageList.update(shown).filter((message) => message.kind !== 'call' && message.kind !== 'notice');
          for (const message of fresh.slice(-3)) {
            const what = message.deleted ? 'deleted a message' : message.attachment ? `sent a file, ${message.text}` : message.text;
            announce(`${message.sender ? message.sender.displayName : 'Someone'}: ${what}`);
          }
          const conversation = this.getConversation();
          if (fresh.length || (conversation && conversation.unread > 0)) this.scheduleMarkRead();
        } catch (error) {
          if (!this.destroyed) this.alert.show(error);
        }
      } while (this.reloadWanted && !this.destroyed);
    })();
    await this.loadingMessages;
    this.loadingMessages = null;
  }

  scheduleMarkRead() {
    if (document.visibilityState !== 'visible' || this.destroyed) return;
    clearTimeout(this.markReadTimer);
    this.markReadTimer = setTimeout(() => {
      this.client.markRead(this.convId).catch(() => {});
    }, MARK_READ_DELAY_MS);
  }

  tick() {
    if (this.messageList.tick()) this.refreshConversations();
  }

  async send(text) {
    this.alert.clear();
    try {
      await this.client.send(this.convId, text);
    } catch (error) {
      this.alert.show(error);
      throw error;
    }
  }

  /** Sends files as attachments (each encrypted, uploaded, then announced in a message). */
  sendFiles(files) {
    this.alert.clear();
    if (this.composer.blockedReason) {
      this.alert.show(this.composer.blockedReason);
      return;
    }
    for (const file of files) this.attachments.add(file);
  }

  async edit(message, text) {
    this.alert.clear();
    try {
      await this.client.edit(this.convId, message.id, text);
      announce('Message edited.');
    } catch (error) {
      this.alert.show(error);
      throw error;
    }
  }

  async deleteMessage(message) {
    const sure = await confirmDialog({
      title: 'Delete for everyone?',
      message: 'The message is replaced by a note that it was deleted, for every member.',
      confirmLabel: 'Delete for everyone',
      danger: true,
    });
    if (!sure) return;
    this.alert.clear();
    try {
      await this.client.deleteMessage(this.convId, message.id);
      announce('Message deleted.');
      this.composer.focus();
    } catch (error) {
      this.alert.show(error);
    }
  }

  async acceptKey(member) {
    try {
      await this.client.acceptNewKey(member.userId);
      announce(`New key of ${member.displayName || member.username} acknowledged. Compare safety numbers to verify it.`);
      await this.refreshConversations();
      this.composer.focus();
    } catch (error) {
      this.alert.show(error);
    }
  }

  openTrust() {
    const conversation = this.getConversation();
    if (!conversation) return;
    const others = otherMembers(conversation, this.me);
    if (conversation.kind === 'direct' && others.length === 1) this.openSafety(others[0]);
    else this.openMembers();
  }

  openSafety(member) {
    openSafetyNumber({ client: this.client, member, onChanged: () => this.refreshConversations() });
  }

  openMembers() {
    openMembers({
      client: this.client,
      me: this.me,
      getConversation: this.getConversation,
      refresh: () => this.refreshConversations(),
    });
  }

  openSettings() {
    const conversation = this.getConversation();
    if (!conversation) return;
    openChatSettings({ client: this.client, conversation, refresh: () => this.refreshConversations() });
  }
}
