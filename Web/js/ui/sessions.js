// The account's sessions: where it is signed in, with revoking one or all others.

import { h, replace } from './dom.js';
import { alertSlot } from './errors.js';
import { confirmDialog } from './dialog.js';
import { announce } from './announcer.js';
import { fullTime, toMillis } from './format.js';

export class SessionsSection {
  constructor({ client }) {
    this.client = client;
    this.alert = alertSlot();
    this.list = h('ul', { class: 'session-list', 'aria-labelledby': 'sessions-title' });
    this.revokeOthersButton = h('button', { type: 'button', class: 'btn btn-danger', onclick: () => this.revokeOthers() }, 'Sign out all other sessions');
    this.element = h('section', { class: 'settings-section', id: 'sessions', 'aria-labelledby': 'sessions-title' },
      h('h2', { id: 'sessions-title' }, 'Sessions'),
      h('p', { class: 'section-lead' }, 'Every device signed in to your account. The server sees each session\'s IP address and device name.'),
      this.alert.element,
      this.list,
      h('div', { class: 'actions actions-start' }, this.revokeOthersButton),
    );
    replace(this.list, h('li', { class: 'muted' }, 'Loading sessions…'));
  }

  async load() {
    try {
      const sessions = await this.client.sessions();
      const ordered = [...sessions].sort((a, b) => (b.current ? 1 : 0) - (a.current ? 1 : 0) || (toMillis(b.lastSeenAt) ?? 0) - (toMillis(a.lastSeenAt) ?? 0));
      replace(this.list, ordered.map((session) => this.row(session)));
      this.revokeOthersButton.disabled = !ordered.some((session) => !session.current);
    } catch (error) {
      replace(this.list);
      this.alert.show(error);
    }
  }

  row(session) {
    const label = session.deviceLabel || 'Unnamed device';
    return h('li', { class: ['session', session.current ? 'session-current' : ''] },
      h('div', { class: 'session-main' },
        h('p', { class: 'session-name' }, label, session.current ? h('span', { class: 'tag' }, 'This device') : null),
        h('p', { class: 'session-meta' },
          `IP ${session.ip || 'unknown'} · signed in ${fullTime(session.createdAt)} · last active ${fullTime(session.lastSeenAt)}`
          + (session.expiresAt ? ` · expires ${fullTime(session.expiresAt)}` : '')),
      ),
      session.current ? null : h('button', {
        type: 'button',
        class: 'btn btn-small btn-danger',
        'aria-label': `Revoke session ${label}`,
        onclick: () => this.revoke(session, label),
      }, 'Revoke'),
    );
  }

  async revoke(session, label) {
    const sure = await confirmDialog({
      title: 'Revoke this session?',
      message: `${label} is signed out at once and must sign in again with the password.`,
      confirmLabel: 'Revoke',
      danger: true,
    });
    if (!sure) return;
    this.alert.clear();
    try {
      await this.client.revokeSession(session.id);
      announce(`Session ${label} revoked.`);
      await this.load();
    } catch (error) {
      this.alert.show(error);
    }
  }

  async revokeOthers() {
    const sure = await confirmDialog({
      title: 'Sign out everywhere else?',
      message: 'Every other device is signed out at once. This one stays signed in.',
      confirmLabel: 'Sign out others',
      danger: true,
    });
    if (!sure) return;
    this.alert.clear();
    try {
      await this.client.revokeOthers();
      announce('All other sessions were signed out.');
      await this.load();
    } catch (error) {
      this.alert.show(error);
    }
  }
}
