// The app controller: follows the route and the client's state, and switches between the vault
// door (signed out) and the signed-in shell. It listens to the client's events and passes them
// to whatever is on screen.

import { h, replace } from './dom.js';
import { Router, parseRoute, chatPath } from './router.js';
import { DoorScreen } from './door-screen.js';
import { Shell } from './shell.js';
import { DashboardView } from './dashboard.js';
import { ActivityView } from './activity.js';
import { ChatView } from './chat.js';
import { SettingsView } from './settings.js';
import { VaultView } from './vault.js';
import { SharePage } from './share-page.js';
import { openNewConversation } from './new-conversation.js';
import { describeError } from './errors.js';
import { toast, announce } from './announcer.js';
import { conversationTitle } from './format.js';
import { icon } from './icons.js';
import { callsRelayOnly, isPanicShortcut } from './prefs.js';
import { destroyedText } from './danger-zone.js';
import { setPageTitle, setUnreadCount, notifyNewMessages } from './attention.js';

const REFRESH_DEBOUNCE_MS = 60;
const SIGNED_OUT_TEXT = {
  logout: 'You signed out. Your vault is sealed.',
  revoked: 'This session was revoked from another device.',
  expired: 'Your session expired.',
  'password-changed': 'Your password was changed on another device.',
  unauthorized: 'The server no longer accepts this session.',
  panic: 'Locked. Everything Circle kept in this browser is erased; unlocking takes your password.',
  destroyed: 'Your account was destroyed.',
};

export class App {
  constructor(root, client) {
    this.root = root;
    this.client = client;
    client.calls.iceTransportPolicy = callsRelayOnly() ? 'relay' : 'all';
    this.door = null;
    this.shell = null;
    this.sharePage = null;
    this.conversations = null;
    this.alarms = [];
    this.pendingNotice = null;
    this.signingOut = false;
    this.refreshTimer = null;
    this.refreshWaiters = [];
    this.router = new Router((route) => this.route(route));
  }

  start() {
    const on = (type, handler) => this.client.addEventListener(type, (event) => handler(event.detail || {}));
    on('connection', ({ state }) => { if (this.shell) this.shell.connection.set(state || this.client.connection); });
    on('conversations', () => { if (this.shell) this.refreshConversations(); });
    on('messages', ({ convId }) => {
      if (!this.shell) return;
      const view = this.shell.view;
      if (view instanceof ChatView && (!convId || view.convId === convId)) view.onMessages();
      this.refreshConversations();
    });
    on('alarm', (detail) => this.alarm(detail));
    // The server's destruction this admin approved from an alert: its dialog showed the end.
    on('destroyed', ({ job }) => this.showSignedOut(destroyedText(job)));
    on('vault', () => {
      if (this.shell && this.shell.view instanceof VaultView) this.shell.view.refresh();
    });
    on('presence', () => {
      if (!this.shell) return;
      this.shell.status.update();
      this.shell.conversationList.render();
      this.tellView('onPresence');
    });
    on('typing', ({ convId }) => {
      if (!this.shell) return;
      this.shell.conversationList.render();
      const view = this.shell.view;
      if (view instanceof ChatView && view.convId === convId) view.onTyping();
    });
    on('activity', ({ entry }) => this.tellView('onActivity', entry));
    on('calls', ({ callId }) => {
      if (!this.shell) return;
      this.shell.calls.render();
      this.tellView('onCalls', callId);
    });
    on('alerts', () => {
      if (!this.shell) return;
      this.shell.alertBanners.render();
      this.tellView('onAlerts');
    });
    on('signed-out', ({ reason }) => {
      // An account's destruction: its dialog keeps showing the progress, then leaves itself.
      if (reason === 'destroyed') return;
      if (this.shell && !this.signingOut) this.showSignedOut(SIGNED_OUT_TEXT[reason] || (reason ? `You were signed out: ${reason}.` : 'You were signed out.'));
    });

    document.addEventListener('keydown', (event) => {
      if (!isPanicShortcut(event) || !this.client.signedIn) return;
      event.preventDefault();
      for (const dialog of document.querySelectorAll('dialog')) dialog.close();
      this.client.panic();
    }, { capture: true });

    replace(this.root);
    if (this.client.signedIn && parseRoute().name !== 'share') this.arrive();
    this.router.start();
  }

  /** Passes a client event to the view on screen when it handles it (`onPresence`, `onActivity`, ...). */
  tellView(method, ...args) {
    const view = this.shell && this.shell.view;
    if (view && typeof view[method] === 'function') view[method](...args);
  }

  /** A returning user whose session is still open: the app at once, the door swinging away. */
  arrive() {
    this.ensureShell();
    const door = new DoorScreen({ client: this.client, onEnter: () => {} });
    door.element.classList.add('door-arrival');
    this.root.prepend(door.element);
    door.leave();
  }

  route(route) {
    if (route.name === 'share') {
      this.showShare(route);
      return;
    }
    this.leaveShare();
    if (this.door && (!this.client.signedIn || this.door.view === 'recoveryKey')) {
      this.door.show(route);
      return;
    }
    if (!this.client.signedIn) {
      this.showDoor(route);
      return;
    }
    if (route.name === 'invite' || route.name === 'register' || route.name === 'recover' || route.name === 'unknown') {
      this.router.navigate('/', { replace: true });
      return;
    }
    this.ensureShell();
    this.showRoute(route);
  }

  /** A share link's public page: the whole window, signed in or not. */
  showShare(route) {
    this.leaveShare();
    if (this.shell) this.destroyShell();
    this.door = null;
    for (const dialog of document.querySelectorAll('dialog')) dialog.close();
    this.sharePage = new SharePage({ linkId: route.params.linkId });
    replace(this.root, this.sharePage.element);
    this.sharePage.start();
  }

  leaveShare() {
    if (!this.sharePage) return;
    this.sharePage.destroy();
    this.sharePage.element.remove();
    this.sharePage = null;
  }

  showDoor(route) {
    if (this.shell) this.destroyShell();
    this.door = new DoorScreen({ client: this.client, onEnter: () => this.enter() });
    replace(this.root, this.door.element);
    this.door.show(route, { notice: this.pendingNotice });
    this.pendingNotice = null;
    this.door.focus();
  }

  /** After sign-in, registration or recovery: the app underneath at once, the door leaves. */
  enter() {
    const door = this.door;
    this.door = null;
    const route = parseRoute();
    const target = route.name === 'invite' || route.name === 'register' || route.name === 'recover' || route.name === 'unknown'
      ? { name: 'home', params: {} }
      : route;
    if (target !== route) history.replaceState(null, '', '/');
    this.ensureShell();
    this.showRoute(target);
    if (door) door.leave();
  }

  ensureShell() {
    if (this.shell) return;
    const me = this.client.me || { username: '', displayName: '' };
    this.shell = new Shell({
      me,
      client: this.client,
      connection: this.client.connection,
      onNew: (kind) => openNewConversation({
        client: this.client,
        kind,
        onCreated: async (convId) => {
          await this.refreshConversations();
          if (convId) this.router.navigate(chatPath(convId));
        },
      }),
      onSignOut: () => this.signOut(),
      getConversation: (convId) => this.conversation(convId),
    });
    this.root.append(this.shell.element);
    this.shell.alertBanners.render();
    this.refreshConversations();
  }

  destroyShell() {
    this.shell.destroy();
    this.shell.element.remove();
    this.shell = null;
    this.conversations = null;
    this.alarms = [];
    setUnreadCount(0);
  }

  showRoute(route) {
    const me = this.client.me || {};
    const shell = this.shell;
    if (route.name === 'chat') {
      const { convId } = route.params;
      shell.conversationList.setActive(convId);
      if (shell.view instanceof ChatView && shell.view.convId === convId) return;
      const view = new ChatView({
        client: this.client,
        me,
        convId,
        getConversation: () => this.conversation(convId),
        isListLoaded: () => this.conversations !== null,
        refreshConversations: () => this.refreshConversations(),
        alarms: this.alarms,
      });
      shell.show('chat', view);
      view.start();
      return;
    }
    shell.conversationList.setActive(null);
    if (route.name === 'vault') {
      if (shell.view instanceof VaultView) return;
      const view = new VaultView({ client: this.client });
      shell.show('vault', view);
      view.start();
      setPageTitle('Vault · Circle');
      this.focusHeading();
      return;
    }
    if (route.name === 'activity') {
      const view = new ActivityView({ client: this.client });
      shell.show('activity', view);
      view.start();
      setPageTitle('Security activity · Circle');
      this.focusHeading();
      return;
    }
    if (route.name === 'settings') {
      const view = new SettingsView({
        client: this.client, me, onSignOut: () => this.signOut(),
        onAccountDestroyed: (job) => this.showSignedOut(destroyedText(job)),
      });
      shell.show('settings', view);
      view.start({ section: route.params.section });
      setPageTitle('Settings · Circle');
      this.focusHeading();
      return;
    }
    const view = new DashboardView({ client: this.client, me, getConversations: () => this.conversations });
    shell.show('home', view);
    view.start();
    setPageTitle('Circle');
    this.focusHeading();
  }

  focusHeading() {
    const heading = this.shell && this.shell.main.querySelector('h1');
    if (heading) heading.focus({ preventScroll: true });
  }

  conversation(convId) {
    return this.conversations ? this.conversations.find((conversation) => conversation.id === convId) : undefined;
  }

  /** Reloads the conversation list (debounced); resolves when the new list is shown. */
  refreshConversations() {
    return new Promise((resolve) => {
      this.refreshWaiters.push(resolve);
      clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => this.loadConversations(), REFRESH_DEBOUNCE_MS);
    });
  }

  async loadConversations() {
    const waiters = this.refreshWaiters;
    this.refreshWaiters = [];
    try {
      const conversations = await this.client.conversations();
      if (this.shell) {
        this.noticeNewMessages(this.conversations, conversations);
        this.conversations = conversations;
        this.shell.conversationList.setConversations(conversations);
        const view = this.shell.view;
        if (view instanceof ChatView) view.updateConversation();
        this.tellView('onConversations');
      }
    } catch (error) {
      if (this.shell) toast(describeError(error), { kind: 'error' });
    }
    for (const resolve of waiters) resolve();
  }

  /** The unread count in the tab's title; a notification for conversations with new unread
   * messages while the page is hidden (not on the first load: those are not new). */
  noticeNewMessages(before, after) {
    setUnreadCount(after.reduce((sum, conversation) => sum + (Number(conversation.unread) || 0), 0));
    if (!before) return;
    const me = this.client.me;
    const own = this.client.presence.own;
    const busy = Boolean(own && own.chosen === 'busy');
    for (const conversation of after) {
      const earlier = before.find((other) => other.id === conversation.id);
      const added = (Number(conversation.unread) || 0) - (Number(earlier?.unread) || 0);
      if (added <= 0) continue;
      notifyNewMessages({
        convId: conversation.id, title: conversationTitle(conversation, me), count: added, busy,
        preview: async () => {
          const views = await this.client.messageViews(conversation.id);
          const newest = [...views].reverse().find((message) => !message.mine && !message.deleted && message.kind !== 'call');
          return newest ? { sender: newest.sender.displayName, text: newest.attachment ? `sent a file, ${newest.text}` : newest.text } : null;
        },
      }).catch(() => {});
    }
  }

  alarm(detail) {
    if (!this.shell) return;
    this.alarms.push(detail);
    const view = this.shell.view;
    const here = view instanceof ChatView && view.convId === detail.convId;
    if (here) view.onAlarm(detail);
    if (!here || detail.kind !== 'fork') {
      const conversation = this.conversation(detail.convId);
      const where = conversation ? ` in ${conversationTitle(conversation, this.client.me)}` : '';
      let text;
      if (detail.kind === 'fork') text = `Fork alarm${where}: ${detail.message || 'members see different histories.'}`;
      else if (detail.kind === 'pins-rollback') text = detail.message;
      else if (detail.kind === 'malformed-op') text = `${where ? `In ${where.slice(4)}: ` : ''}${detail.message}`;
      else text = `${detail.message || 'A member\'s key changed'}${where}. Sending to them is blocked until you acknowledge it.`;
      if (here) announce(text);
      else toast(text, { kind: 'error', timeout: 0 });
    }
    this.refreshConversations();
  }

  async signOut() {
    this.signingOut = true;
    try {
      await this.client.logout();
    } catch (error) {
      toast(describeError(error), { kind: 'error' });
      return;
    } finally {
      this.signingOut = false;
    }
    this.showSignedOut('You signed out. Your vault is sealed.');
  }

  showSignedOut(notice) {
    if (!this.shell && this.door) return;
    this.pendingNotice = notice;
    if (this.shell) this.destroyShell();
    this.door = null;
    for (const dialog of document.querySelectorAll('dialog')) dialog.close();
    this.router.navigate('/', { replace: true });
  }
}

/** Shown when the app cannot start at all (the client failed to load or open). */
export function showStartupError(root, error) {
  replace(root, h('main', { class: 'plain-page', id: 'main' },
    h('div', { class: 'plain-card', role: 'alert' },
      icon('alert', 'plain-icon'),
      h('h1', {}, 'Circle could not start'),
      h('p', {}, describeError(error)),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => window.location.reload() }, 'Reload'),
    ),
  ));
}
