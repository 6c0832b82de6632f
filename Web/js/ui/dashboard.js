// The member's dashboard (the home screen): the people one shares a conversation with and their
// presence, one's own status, open security alerts, the latest security activity (live), the
// vault's usage, and how well this device and session are protected. A new administrator with
// nobody to talk to yet is told how to invite members.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { openPrivacyNote } from './privacy-note.js';
import { openStatusDialog } from './status-menu.js';
import { avatar, customStatus, lastSeen, STATE_NAMES, stateOf, statusText } from './presence.js';
import { alertActions, liveSessions } from './alerts.js';
import { alertText } from './activity-format.js';
import { entryItem } from './activity.js';
import { assessSecurity, LEVEL_NAMES } from './security-level.js';
import { formatBytes } from './vault-common.js';
import { fullTime, toMillis } from './format.js';
import { ACTIVITY_PATH } from './router.js';

const RECENT = 5;
const STATE_ORDER = { online: 0, busy: 1, away: 2, offline: 3 };

/** Everyone one shares a conversation with (verified members), once each. */
function contactsOf(conversations, me) {
  const people = new Map();
  for (const conversation of conversations || []) {
    for (const member of conversation.members || []) {
      if (member.userId !== me.userId && !people.has(member.userId)) people.set(member.userId, member);
    }
  }
  return [...people.values()];
}

function card(id, title, ...children) {
  return h('section', { class: 'dash-card', 'aria-labelledby': id }, h('h2', { id, class: 'dash-title' }, title), ...children);
}

export class DashboardView {
  /** `getConversations()` gives the app's conversation list (null until loaded). */
  constructor({ client, me, getConversations }) {
    this.client = client;
    this.me = me;
    this.getConversations = getConversations;
    this.destroyed = false;
    this.recent = null;
    this.sessions = null;
    this.own = h('div', { class: 'dash-own' });
    this.people = h('ul', { class: 'people-list', 'aria-labelledby': 'dash-people' });
    this.peopleNote = h('div', { class: 'dash-note' });
    this.alertList = h('ul', { class: 'activity-alerts', 'aria-labelledby': 'dash-alerts' });
    this.alertCard = card('dash-alerts', 'Open security alerts', this.alertList);
    this.activityList = h('ol', { class: 'activity-list activity-compact', 'aria-labelledby': 'dash-activity' });
    this.vault = h('div', { class: 'dash-vault' }, h('p', { class: 'muted' }, 'Loading…'));
    this.device = h('div', { class: 'dash-device' });
    this.element = h('div', { class: 'dashboard' },
      h('h1', { class: 'page-title', id: 'home-title', tabindex: '-1' }, `Welcome, ${me.displayName || me.username}`),
      this.alertCard,
      h('div', { class: 'dash-grid' },
        card('dash-status', 'Your status', this.own),
        card('dash-people', 'People', this.peopleNote, this.people),
        card('dash-activity', 'Recent security activity', this.activityList,
          h('p', { class: 'dash-more' }, h('a', { href: ACTIVITY_PATH, 'data-route': true }, 'All security activity'))),
        card('dash-vault', 'Vault', this.vault),
        card('dash-device', 'This device', this.device),
      ),
      h('ul', { class: 'home-facts' },
        h('li', {}, icon('lock'), 'Messages and conversation titles are end-to-end encrypted.'),
        h('li', {}, icon('shieldCheck'), 'Compare safety numbers to make sure nobody is in between.'),
        h('li', {}, icon('eye'), h('button', { type: 'button', class: 'btn-text', onclick: () => openPrivacyNote() }, 'What the server can see')),
      ),
    );
    replace(this.activityList, h('li', { class: 'muted' }, 'Loading…'));
  }

  start() {
    this.onPresence();
    this.onAlerts();
    this.renderDevice();
    this.loadActivity();
    this.loadVault();
    this.loadSessions();
  }

  destroy() {
    this.destroyed = true;
  }

  async loadActivity() {
    try {
      const page = await this.client.activity.page({ limit: RECENT });
      if (this.destroyed) return;
      this.recent = page.entries;
      this.renderActivity();
    } catch (error) {
      if (!this.destroyed) replace(this.activityList, h('li', { class: 'muted' }, `Could not load the activity: ${error.message}`));
    }
  }

  async loadVault() {
    try {
      const { used, quota } = await this.client.vaultUsage();
      if (this.destroyed) return;
      const share = quota > 0 ? Math.min(100, Math.round((used / quota) * 100)) : 0;
      replace(this.vault,
        h('p', {}, `${formatBytes(used)} of ${formatBytes(quota)} used`),
        h('progress', { class: 'vault-usage', max: '100', value: String(share), 'aria-label': `Vault usage, ${share}%` }),
        h('p', { class: 'dash-more' }, h('a', { href: '/vault', 'data-route': true }, 'Open the vault')));
    } catch (error) {
      if (!this.destroyed) replace(this.vault, h('p', { class: 'muted' }, `Could not load the vault: ${error.message}`));
    }
  }

  async loadSessions() {
    this.sessions = await liveSessions(this.client);
    if (this.destroyed) return;
    this.renderDevice();
    this.onAlerts();
    if (this.recent) this.renderActivity();
  }

  /** Called when the conversation list changed. */
  onConversations() {
    this.renderPeople();
  }

  /** Called when presence changed. */
  onPresence() {
    this.renderOwn();
    this.renderPeople();
  }

  /** Called for each new entry of the log, live. */
  onActivity(entry) {
    if (!this.recent || this.recent.some((shown) => shown.seq === entry.seq)) return;
    this.recent = [entry, ...this.recent].sort((a, b) => b.seq - a.seq).slice(0, RECENT);
    this.renderActivity();
    if (entry.kind === 'sign-in' || entry.kind === 'session.created') this.loadSessions();
  }

  /** Called when the open alerts changed. */
  onAlerts() {
    const alerts = this.client.activity.alerts || [];
    this.alertCard.hidden = alerts.length === 0;
    replace(this.alertList, alerts.map((entry) => h('li', { class: 'activity-alert-item' },
      h('p', {}, h('strong', {}, alertText(entry)), ` · ${fullTime(toMillis(entry.at))}`),
      alertActions({ client: this.client, entry, sessions: this.sessions }),
    )));
  }

  renderOwn() {
    const own = this.client.presence.own;
    const chosen = own && own.chosen ? own.chosen : 'online';
    const status = customStatus(own && own.status);
    replace(this.own,
      h('p', { class: 'dash-own-state' },
        h('span', { class: 'presence-dot', dataset: { state: chosen }, 'aria-hidden': 'true' }),
        ` ${STATE_NAMES[chosen] || chosen}`,
        status ? h('span', { class: 'dash-own-status' }, ` · ${status}`) : null),
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => openStatusDialog({ client: this.client }) }, 'Set your status'));
  }

  renderPeople() {
    const conversations = this.getConversations();
    if (!conversations) {
      replace(this.peopleNote, h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    const people = contactsOf(conversations, this.me)
      .map((member) => ({ member, view: this.client.presence.of(member.userId) }))
      .sort((a, b) => STATE_ORDER[stateOf(a.view)] - STATE_ORDER[stateOf(b.view)]
        || (a.member.displayName || a.member.username).localeCompare(b.member.displayName || b.member.username));
    replace(this.people, people.map(({ member, view }) => {
      const name = member.displayName || member.username;
      const line = statusText(view) || lastSeen(view);
      return h('li', { class: 'person' },
        avatar(name, view),
        h('span', { class: 'person-main' },
          h('span', { class: 'person-name' }, name),
          h('span', { class: 'person-meta' }, line || `@${member.username}`)),
      );
    }));
    if (people.length) replace(this.peopleNote);
    else if (this.me.isAdmin) {
      replace(this.peopleNote,
        h('p', {}, h('strong', {}, 'Nobody else is here yet. '), 'Make an invite for each person and send them its link.'),
        h('p', {}, h('a', { href: '/invitations', 'data-route': true, class: 'btn btn-primary' }, 'Invite your first members')),
        h('p', { class: 'muted' }, 'Once they have joined, start a conversation with New chat or New group.'));
    } else {
      replace(this.peopleNote, h('p', { class: 'muted' }, 'Start a conversation with New chat: the people you talk with appear here.'));
    }
  }

  renderActivity() {
    replace(this.activityList, this.recent.length
      ? this.recent.map((entry) => entryItem({ entry, sessions: this.sessions, compact: true }))
      : h('li', { class: 'muted' }, 'No activity yet.'));
  }

  renderDevice() {
    const assessment = assessSecurity();
    const current = this.sessions ? this.sessions.find((session) => session.current) : null;
    replace(this.device,
      h('p', { class: `dash-level level-${assessment.level}` },
        icon(assessment.level === 'low' ? 'alert' : 'shieldCheck'),
        ' Security level: ', h('strong', {}, LEVEL_NAMES[assessment.level])),
      h('ul', { class: 'dash-facts' },
        assessment.items.map((item) => h('li', { class: item.ok ? 'fact-ok' : 'fact-warn' }, `${item.name}: ${item.value}`)),
        current ? h('li', {}, `This session: ${current.deviceLabel || 'Unnamed device'}, signed in ${fullTime(current.createdAt)}`) : null,
      ),
      h('p', { class: 'dash-more' }, h('a', { href: '/sessions', 'data-route': true }, 'Sessions and password')));
  }
}
