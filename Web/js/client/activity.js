/**
 * The member's security activity (docs/API.md, "Security activity"): pages of the log, open
 * alerts and "this was me", the export, and the chain check against what this device saw
 * before (client/activity-chain.js).
 * @module client/activity
 */
import { checkExtends, entryHash, pageChains } from './activity-chain.js';

const CHECK_PAGE = 500;
/** How long alert references wait for their entries (live, `activity.new`) before the alerts are read. */
const ALERT_WAIT_MS = 500;

/**
 * Tells the client's listeners with `activity` `{entry}` (a new entry of the log, live) and
 * `alerts` `{}` (the open alerts changed).
 */
export class Activity {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** Open alerts, newest first (entries as the API gives them), or null until loaded. */
    this.alerts = null;
    /** Alerts named by `security.alert` events and not seen whole yet. */
    this.pending = new Set();
    this.pendingTimer = null;
  }

  get chain() {
    return this.client.requireSession().userId;
  }

  /**
   * A page of the log, newest first: `{entries, more, head, anchor}`.
   * @param {{before?: number, limit?: number}} [options]
   */
  page({ before, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set('before', String(before));
    return this.client.api.get(`/api/v1/activity?${query}`);
  }

  /** Whether a page as shown chains (each entry from the one before it). */
  pageChains({ entries, anchor }) {
    return pageChains(this.chain, entries, anchor);
  }

  /**
   * Checks that the server's history extends the newest entry this device verified before, and
   * remembers the new head. Resolves `{ok: true, head: {seq, hash}}` or `{ok: false, seq}` (the
   * entry that changed or is missing).
   */
  async verify() {
    const account = this.client.requireSession();
    const { store } = this.client;
    const remembered = await store.getActivityHead(account.userId);
    const result = await checkExtends({
      chain: account.userId,
      remembered,
      fetchAfter: (after) => this.client.api.get(`/api/v1/activity?after=${after}&limit=${CHECK_PAGE}`),
    });
    if (result.ok && this.client.account === account && result.head.seq > 0) await store.putActivityHead(account.userId, result.head);
    return result;
  }

  /** The whole chain as the server exports it: `{chain, anchor, entries}`. */
  export() {
    return this.client.api.get('/api/v1/activity/export');
  }

  /** Loads the open alerts (after `ready`, and when an alert named in the event log arrives). */
  async loadAlerts() {
    const account = this.client.account;
    const { alerts } = await this.client.api.get('/api/v1/activity/alerts');
    if (this.client.account !== account) return;
    this.alerts = alerts;
    this.client.notify('alerts', {});
  }

  /** "This was me": the alert closes here and on every device. */
  async acknowledge(seq) {
    await this.client.api.post(`/api/v1/activity/alerts/${encodeURIComponent(seq)}/acknowledge`);
    this.closeAlert(seq);
  }

  closeAlert(seq) {
    if (!this.alerts?.some((alert) => alert.seq === seq)) return;
    this.alerts = this.alerts.filter((alert) => alert.seq !== seq);
    this.client.notify('alerts', {});
  }

  /**
   * A `security.alert` event: the whole entry, or `{seq, kind, at}` naming it. A named entry
   * usually follows live as `activity.new`; the open alerts are read only when it does not (a
   * reference read back from the log), a moment later and once for several.
   */
  alertEvent(data) {
    if (typeof data.hash === 'string' && typeof data.details === 'string') {
      this.addAlert(data);
      return;
    }
    if (!Number.isSafeInteger(data.seq)) return;
    this.pending.add(data.seq);
    clearTimeout(this.pendingTimer);
    this.pendingTimer = setTimeout(() => {
      const missing = [...this.pending].some((seq) => !this.alerts?.some((alert) => alert.seq === seq));
      this.pending.clear();
      if (missing && this.client.account) this.loadAlerts().catch(() => {});
    }, ALERT_WAIT_MS);
  }

  addAlert(entry) {
    if (!this.alerts || this.alerts.some((alert) => alert.seq === entry.seq)) return;
    this.alerts = [entry, ...this.alerts].sort((a, b) => b.seq - a.seq);
    this.client.notify('alerts', {});
  }

  /** An `activity.new` frame: a new entry of the log (an acknowledgement closes its alert everywhere). */
  async received(entry) {
    if (!entry || !Number.isSafeInteger(entry.seq)) return;
    if (entry.kind === 'alert.acknowledged') this.closeAlert(Number(detailsOf(entry).seq));
    if (entry.alert) this.addAlert(entry);
    await this.extendHead(entry);
    this.client.notify('activity', { entry });
  }

  /** Moves the remembered head along when a live entry chains from it. */
  async extendHead(entry) {
    const account = this.client.account;
    const remembered = await this.client.store.getActivityHead(account.userId);
    if (!remembered || entry.seq !== remembered.seq + 1) return;
    if (await entryHash(remembered.hash, account.userId, entry) !== entry.hash || this.client.account !== account) return;
    await this.client.store.putActivityHead(account.userId, { seq: entry.seq, hash: entry.hash });
  }

  clear() {
    clearTimeout(this.pendingTimer);
    this.pending.clear();
    this.alerts = null;
  }
}

/** An entry's details (JSON text) as an object; `{}` when it is not an object. */
export function detailsOf(entry) {
  try {
    const value = JSON.parse(entry.details || '{}');
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

/**
 * The live session an entry created (`sign-in`, `session.created`), from the account's sessions,
 * or null. The server records these entries without a session id (the session is made after
 * the entry in the same transaction, at the same time): a session created at the entry's time
 * is the one.
 * @param {object} entry
 * @param {{id: string, createdAt: number}[]} sessions
 */
export function sessionOf(entry, sessions) {
  if (entry.kind !== 'sign-in' && entry.kind !== 'session.created') return null;
  if (entry.sessionId) return sessions.find((session) => session.id === entry.sessionId) ?? null;
  return sessions.find((session) => session.createdAt === entry.at) ?? null;
}
