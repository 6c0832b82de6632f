// The signed-in layout: a header (brand, connection state, navigation, sign out), the
// conversation list, and the main area showing the dashboard, a chat or the settings. On a
// phone only one of list and main area shows at a time.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { ConnectionIndicator } from './connection-indicator.js';
import { ConversationList } from './conversation-list.js';
import { openPrivacyNote } from './privacy-note.js';
import { vaultIcon } from './vault-common.js';

export class Shell {
  constructor({ me, connection, onNew, onSignOut }) {
    this.connection = new ConnectionIndicator(connection);
    this.conversationList = new ConversationList({ me, onNew });
    this.main = h('main', { class: 'content', id: 'main', tabindex: '-1' });
    this.chatsLink = h('a', { href: '/', 'data-route': true, class: 'nav-link' }, icon('lock'), h('span', {}, 'Chats'));
    this.vaultLink = h('a', { href: '/vault', 'data-route': true, class: 'nav-link' }, vaultIcon('vault'), h('span', {}, 'Vault'));
    this.settingsLink = h('a', { href: '/settings', 'data-route': true, class: 'nav-link' }, icon('settings'), h('span', {}, 'Settings'));
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
        h('nav', { class: 'topnav', 'aria-label': 'Main' },
          this.chatsLink,
          this.vaultLink,
          this.settingsLink,
          h('button', { type: 'button', class: 'nav-link', onclick: onSignOut }, icon('logout'), h('span', {}, 'Sign out')),
        ),
      ),
      this.workspace,
    );
    this.view = null;
  }

  /** Puts a view ({element, start?, destroy?}) in the main area; `kind` is home, chat, vault or settings. */
  show(kind, view) {
    if (this.view && this.view.destroy) this.view.destroy();
    this.view = view;
    this.workspace.dataset.view = kind;
    replace(this.main, view.element);
    const current = kind === 'settings' ? this.settingsLink : kind === 'vault' ? this.vaultLink : kind === 'home' || kind === 'chat' ? this.chatsLink : null;
    for (const link of [this.chatsLink, this.vaultLink, this.settingsLink]) {
      if (link === current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  destroy() {
    if (this.view && this.view.destroy) this.view.destroy();
    this.view = null;
  }
}

/** The dashboard's main area when no conversation is open. */
export function homeView({ me }) {
  return {
    element: h('div', { class: 'home' },
      h('div', { class: 'home-card' },
        icon('shieldCheck', 'home-icon'),
        h('h1', { class: 'page-title', id: 'home-title', tabindex: '-1' }, `Welcome, ${me.displayName || me.username}`),
        h('p', {}, 'Pick a conversation, or start one with New chat or New group. Everything you write is encrypted on this device before it leaves.'),
        h('ul', { class: 'home-facts' },
          h('li', {}, icon('lock'), 'Messages and conversation titles are end-to-end encrypted.'),
          h('li', {}, icon('shieldCheck'), 'Compare safety numbers to make sure nobody is in between.'),
          h('li', {}, icon('eye'), h('button', { type: 'button', class: 'btn-text', onclick: () => openPrivacyNote() }, 'What the server can see')),
        ),
      ),
    ),
  };
}
