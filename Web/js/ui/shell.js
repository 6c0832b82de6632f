// The signed-in layout: a header (brand, connection state, own status, navigation, sign out),
// security alert banners, calls (ringing or going on), the conversation list, and the main area showing the dashboard, a
// chat, the vault, the activity log or the settings. On a phone only one of list and main area
// shows at a time.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { ConnectionIndicator } from './connection-indicator.js';
import { ConversationList } from './conversation-list.js';
import { StatusButton } from './status-menu.js';
import { AlertBanners } from './alerts.js';
import { vaultIcon } from './vault-common.js';
import { ACTIVITY_PATH } from './router.js';
import { CallOverlay } from './call.js';

export class Shell {
  constructor({ me, client, connection, onNew, onSignOut, getConversation }) {
    this.connection = new ConnectionIndicator(connection);
    this.status = new StatusButton({ client });
    this.alertBanners = new AlertBanners({ client });
    this.calls = new CallOverlay({ client, me, getConversation });
    this.conversationList = new ConversationList({ me, client, onNew });
    this.main = h('main', { class: 'content', id: 'main', tabindex: '-1' });
    this.chatsLink = h('a', { href: '/', 'data-route': true, class: 'nav-link' }, icon('lock'), h('span', {}, 'Chats'));
    this.vaultLink = h('a', { href: '/vault', 'data-route': true, class: 'nav-link' }, vaultIcon('vault'), h('span', {}, 'Vault'));
    this.activityLink = h('a', { href: ACTIVITY_PATH, 'data-route': true, class: 'nav-link' }, icon('activity'), h('span', {}, 'Activity'));
    this.settingsLink = h('a', { href: '/settings', 'data-route': true, class: 'nav-link' }, icon('settings'), h('span', {}, 'Settings'));
    this.links = { home: this.chatsLink, chat: this.chatsLink, vault: this.vaultLink, activity: this.activityLink, settings: this.settingsLink };
    this.workspace = h('div', { class: 'workspace', dataset: { view: 'home' } },
      h('aside', { class: 'sidebar', 'aria-label': 'Conversations' }, this.conversationList.element),
      this.main,
    );
    this.element = h('div', { class: 'shell' },
      h('a', {
        class: 'skip-link',
        href: '#main',
        onclick: (event) => {
          event.preventDefault();
          this.main.focus();
        },
      }, 'Skip to content'),
      h('header', { class: 'topbar' },
        h('a', { href: '/', 'data-route': true, class: 'brand', 'aria-label': 'Circle, home' }, icon('shield', 'brand-mark'), h('span', { class: 'brand-name' }, 'Circle')),
        this.connection.element,
        this.status.element,
        h('nav', { class: 'topnav', 'aria-label': 'Main' },
          this.chatsLink,
          this.vaultLink,
          this.activityLink,
          this.settingsLink,
          h('button', { type: 'button', class: 'nav-link', onclick: onSignOut }, icon('logout'), h('span', {}, 'Sign out')),
        ),
      ),
      this.alertBanners.element,
      this.workspace,
      this.calls.element,
    );
    this.view = null;
  }

  /** Puts a view ({element, start?, destroy?}) in the main area; `kind` is home, chat, vault, activity or settings. */
  show(kind, view) {
    if (this.view && this.view.destroy) this.view.destroy();
    this.view = view;
    this.workspace.dataset.view = kind;
    replace(this.main, view.element);
    const current = this.links[kind] || null;
    for (const link of [this.chatsLink, this.vaultLink, this.activityLink, this.settingsLink]) {
      if (link === current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  destroy() {
    if (this.view && this.view.destroy) this.view.destroy();
    this.view = null;
    this.calls.destroy();
  }
}
