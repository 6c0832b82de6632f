// The security activity page: the member's log, newest first and paged, updating live; each
// entry's time, kind, device, address, browser and details; "Revoke this session" on sign-ins
// whose session is still live; open alerts; the export; and the chain check: every entry shown
// must chain from the one before it, and the server's history must extend what this device
// verified before.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { alertSlot } from './errors.js';
import { confirmDialog } from './dialog.js';
import { announce } from './announcer.js';
import { fullTime, toMillis } from './format.js';
import { saveBlob } from './vault-common.js';
import { alertActions, liveSessions } from './alerts.js';
import { alertText, detailsText, deviceOf, kindLabel } from './activity-format.js';
import { sessionOf } from '../client/activity.js';

const PAGE_SIZE = 25;

/**
 * One entry of the log. `sessions` (the live sessions, or null) decides the session action;
 * `onRevoke(session, label)` revokes one; `compact` leaves out the browser and details.
 */
export function entryItem({ entry, sessions, onRevoke, compact = false }) {
  const device = deviceOf(entry);
  const when = toMillis(entry.at);
  const session = sessions ? sessionOf(entry, sessions) : null;
  const label = device || 'Unnamed device';
  const details = detailsText(entry);
  let action = null;
  if (session && session.current) action = h('span', { class: 'tag' }, 'This device');
  else if (session && onRevoke) {
    action = h('button', {
      type: 'button',
      class: 'btn btn-small btn-danger',
      'aria-label': `Revoke this session: ${label}, ${fullTime(when)}`,
      onclick: () => onRevoke(session, label),
    }, 'Revoke this session');
  }
  return h('li', { class: ['activity-entry', entry.alert ? 'activity-alert' : ''], dataset: { seq: String(entry.seq) } },
    h('div', { class: 'activity-main' },
      h('p', { class: 'activity-kind' },
        kindLabel(entry.kind),
        entry.alert ? h('span', { class: 'tag tag-alert' }, 'Alert') : null),
      h('p', { class: 'activity-meta' },
        h('time', { datetime: new Date(when ?? 0).toISOString() }, fullTime(when)),
        device ? ` · ${device}` : '',
        ` · IP ${entry.ip || 'unknown'}`),
      compact ? null : h('p', { class: 'activity-agent' }, entry.userAgent || 'Browser not recorded'),
      !compact && details ? h('p', { class: 'activity-details' }, details) : null,
      compact ? null : h('p', { class: 'activity-seq' }, `Entry ${entry.seq}`),
    ),
    action,
  );
}

export class ActivityView {
  constructor({ client }) {
    this.client = client;
    this.entries = [];
    this.anchor = null;
    this.more = false;
    this.sessions = null;
    this.destroyed = false;
    this.verifying = null;
    this.verifyAgain = false;
    this.alert = alertSlot();
    this.chainStatus = h('div', { class: 'chain-status', role: 'status' }, 'Checking the history…');
    this.pageStatus = h('p', { class: 'chain-page' });
    this.alertList = h('ul', { class: 'activity-alerts', 'aria-labelledby': 'activity-alerts-title' });
    this.alertSection = h('section', { class: 'activity-section', 'aria-labelledby': 'activity-alerts-title', hidden: true },
      h('h2', { id: 'activity-alerts-title' }, 'Open alerts'),
      this.alertList,
    );
    this.list = h('ol', { class: 'activity-list', 'aria-labelledby': 'activity-history-title' });
    this.olderButton = h('button', { type: 'button', class: 'btn', hidden: true, onclick: () => this.loadOlder() }, 'Show older entries');
    this.element = h('div', { class: 'activity-page' },
      h('h1', { class: 'page-title', id: 'activity-title', tabindex: '-1' }, 'Security activity'),
      h('p', { class: 'section-lead' },
        'Sign-ins, sessions, password and recovery changes, share links and deleted files, newest first. ',
        'The server keeps this log as a hash chain; this device checks that it was not rewritten.'),
      h('div', { class: 'activity-tools' },
        h('button', { type: 'button', class: 'btn', onclick: () => this.exportLog() }, 'Export'),
        h('button', { type: 'button', class: 'btn', onclick: () => this.verify() }, 'Check the history again'),
      ),
      this.chainStatus,
      this.alert.element,
      this.alertSection,
      h('section', { class: 'activity-section', 'aria-labelledby': 'activity-history-title' },
        h('h2', { id: 'activity-history-title' }, 'History'),
        this.pageStatus,
        this.list,
        h('div', { class: 'actions actions-start' }, this.olderButton),
      ),
    );
    replace(this.list, h('li', { class: 'muted' }, 'Loading activity…'));
  }

  async start() {
    this.renderAlerts();
    try {
      const [page, sessions] = await Promise.all([this.client.activity.page({ limit: PAGE_SIZE }), liveSessions(this.client)]);
      if (this.destroyed) return;
      this.sessions = sessions;
      this.take(page, { replacing: true });
    } catch (error) {
      if (!this.destroyed) this.alert.show(error);
    }
    this.renderAlerts();
    await this.verify();
  }

  destroy() {
    this.destroyed = true;
  }

  /** Adds a page (newest first) below what is shown, or in place of it. */
  take(page, { replacing = false } = {}) {
    this.entries = replacing ? page.entries : [...this.entries, ...page.entries];
    this.anchor = page.anchor;
    this.more = page.more;
    this.render();
  }

  async loadOlder() {
    const oldest = this.entries[this.entries.length - 1];
    if (!oldest) return;
    this.alert.clear();
    this.olderButton.disabled = true;
    try {
      const page = await this.client.activity.page({ before: oldest.seq, limit: PAGE_SIZE });
      if (this.destroyed) return;
      const first = this.entries.length;
      this.take(page);
      announce(`${page.entries.length} older entries shown.`);
      const next = this.list.children[first];
      if (next) next.querySelector('.activity-kind').focus({ preventScroll: false });
    } catch (error) {
      this.alert.show(error);
    } finally {
      this.olderButton.disabled = false;
    }
  }

  render() {
    replace(this.list, this.entries.length
      ? this.entries.map((entry) => entryItem({ entry, sessions: this.sessions, onRevoke: (session, label) => this.revoke(session, label) }))
      : h('li', { class: 'muted' }, 'No activity yet.'));
    for (const kind of this.list.querySelectorAll('.activity-kind')) kind.tabIndex = -1;
    this.olderButton.hidden = !this.more;
    this.checkPage();
  }

  /** Whether the entries shown chain one to the next (and the oldest kept one from the anchor). */
  async checkPage() {
    const entries = this.entries;
    if (!this.anchor || entries.length === 0) {
      this.pageStatus.textContent = '';
      return;
    }
    const ok = await this.client.activity.pageChains({ entries, anchor: this.anchor });
    if (this.destroyed || entries !== this.entries) return;
    this.pageStatus.className = ok ? 'chain-page' : 'chain-page chain-broken';
    this.pageStatus.textContent = ok
      ? `The ${entries.length} entries shown chain one to the next.`
      : 'The entries shown do not chain: the server changed or left out one of them.';
  }

  /** Checks that the server's history extends what this device verified before. */
  async verify() {
    if (this.verifying) {
      this.verifyAgain = true;
      return this.verifying;
    }
    this.verifying = (async () => {
      do {
        this.verifyAgain = false;
        try {
          const result = await this.client.activity.verify();
          if (this.destroyed) return;
          this.showVerification(result);
        } catch (error) {
          if (this.destroyed) return;
          replace(this.chainStatus, h('p', { class: 'chain-unknown' }, 'The history could not be checked now. '), h('span', {}, error.message || ''));
        }
      } while (this.verifyAgain && !this.destroyed);
    })();
    await this.verifying;
    this.verifying = null;
  }

  showVerification(result) {
    if (result.ok) {
      replace(this.chainStatus, h('p', { class: 'chain-ok' }, icon('shieldCheck'), ` History verified up to entry ${result.head.seq}.`));
    } else {
      replace(this.chainStatus, h('div', { class: 'callout callout-warning chain-warning' },
        icon('alert'),
        ` The server's history does not extend what this device saw before (entry ${result.seq} changed or is missing). `,
        'Someone with access to the server may have rewritten your security log.'));
    }
  }

  /** Called for each new entry of the log, live. */
  async onActivity(entry) {
    if (this.entries.some((shown) => shown.seq === entry.seq) || (this.entries[0] && entry.seq < this.entries[0].seq)) return;
    if (entry.kind === 'sign-in' || entry.kind === 'session.created' || entry.kind === 'session.revoked' || entry.kind === 'sign-out') {
      this.sessions = await liveSessions(this.client);
      if (this.destroyed) return;
    }
    this.entries = [entry, ...this.entries];
    this.render();
    this.verify();
  }

  /** Called when the open alerts changed. */
  onAlerts() {
    this.renderAlerts();
  }

  renderAlerts() {
    const alerts = this.client.activity.alerts || [];
    this.alertSection.hidden = alerts.length === 0;
    replace(this.alertList, alerts.map((entry) => h('li', { class: 'activity-alert-item' },
      h('p', {}, h('strong', {}, alertText(entry)), ` · ${fullTime(toMillis(entry.at))}`),
      alertActions({ client: this.client, entry, sessions: this.sessions }),
    )));
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
      this.sessions = await liveSessions(this.client);
      if (!this.destroyed) this.render();
    } catch (error) {
      this.alert.show(error);
    }
  }

  /** Downloads the whole chain as the server exports it (a JSON file). */
  async exportLog() {
    this.alert.clear();
    try {
      const exported = await this.client.activity.export();
      saveBlob(new Blob([JSON.stringify(exported, null, 2)], { type: 'application/json' }), 'circle-activity.json');
      announce('Activity exported.');
    } catch (error) {
      this.alert.show(error);
    }
  }
}
