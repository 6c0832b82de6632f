/**
 * Presence (docs/API.md, "Presence"): the contacts' states, custom statuses and last seen, this
 * member's own view, and auto-away (after five minutes without input, or while the page is
 * hidden, `away`; `online` again on input), which never overrides busy or invisible. The server
 * sees presence and could forge it: the UI presents it as a hint.
 * @module client/presence
 */

/** Idle time after which an online member is set away. */
const IDLE_MS = 5 * 60_000;
const IDLE_CHECK_MS = 15_000;
/** A page hidden this long goes away (a page being closed never does: its timer dies with it). */
const HIDDEN_MS = 5_000;
const USERS_PER_CALL = 500;
const INPUT_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart'];
/** localStorage key: set while this browser's last away was chosen by the member, not automatic. */
const MANUAL_AWAY_KEY = 'circle.manualAway';

/**
 * Presence views by user id, and the member's own view (`chosen`, `hideLastSeen`, `typing`).
 * Tells the client's listeners with `presence` `{userId}` (own changes too).
 */
export class Presence {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** @type {Map<string, object>} */
    this.views = new Map();
    /** This member's own view, or null until loaded. */
    this.own = null;
    /** Members asked for since the contacts were loaded. */
    this.asked = new Set();
    this.lastInput = Date.now();
    this.idleTimer = null;
    this.hiddenTimer = null;
    this.restoring = null;
    this.onInput = () => this.input();
    this.onVisibility = () => this.visibilityChanged();
  }

  /** A contact's view (`{userId, state, status?, lastSeenAt?}`), or null when not known. */
  of(userId) {
    if (this.own && userId === this.own.userId) return this.own;
    return this.views.get(userId) ?? null;
  }

  /** Whether the member chose do not disturb: no sounds, no badges. */
  get busy() {
    return this.own?.chosen === 'busy';
  }

  /** Whether typing indicators are on (the server-side preference; on until loaded). */
  get typingEnabled() {
    return this.own ? this.own.typing !== false : true;
  }

  /** Loads the own view and the contacts' (after `ready` and `catch-up`). */
  async load() {
    const answer = await this.client.api.get('/api/v1/presence/contacts');
    if (!this.client.account) return;
    this.views.clear();
    this.asked.clear();
    for (const view of answer.contacts ?? []) this.views.set(view.userId, view);
    this.own = answer.own ?? null;
    this.client.notify('presence', {});
    this.visibilityChanged();
  }

  /**
   * Loads the views of members not known yet (a conversation with someone new was created or
   * joined after the contacts were loaded).
   * @param {string[]} userIds
   */
  async ensure(userIds) {
    const own = this.client.account?.userId;
    const missing = [...new Set(userIds)].filter((userId) => userId !== own && !this.views.has(userId) && !this.asked.has(userId));
    if (!this.own || missing.length === 0) return;
    for (const userId of missing) this.asked.add(userId);
    for (let start = 0; start < missing.length; start += USERS_PER_CALL) {
      const batch = missing.slice(start, start + USERS_PER_CALL);
      const { presence } = await this.client.api.get(`/api/v1/presence?users=${batch.map(encodeURIComponent).join(',')}`);
      for (const view of presence) if (!this.views.has(view.userId)) this.views.set(view.userId, view);
    }
    this.client.notify('presence', {});
  }

  /** A live `presence` frame: a contact's change, or this member's own view after a change. */
  apply(view) {
    if (!view || typeof view.userId !== 'string') return;
    if (view.userId === this.client.account?.userId) this.own = view;
    else this.views.set(view.userId, view);
    this.client.notify('presence', { userId: view.userId });
  }

  /**
   * Changes the own presence: any of `state` (online, away, busy, invisible), `status`
   * `{emoji, text, expiresAt?}`, `clearStatus`, `hideLastSeen`, `typing`.
   * `automatic` marks auto-away's own changes (an away picked by hand is not ended by input).
   * @returns {Promise<object>} the own view
   */
  async set(changes, { automatic = false } = {}) {
    if (!automatic && 'state' in changes) rememberManualAway(changes.state === 'away');
    const own = await this.client.api.put('/api/v1/presence', changes);
    if (this.client.account) this.apply(own);
    return own;
  }

  // MARK: Auto-away

  /** Starts following input and visibility (on sign-in). */
  start() {
    this.stop();
    this.lastInput = Date.now();
    for (const type of INPUT_EVENTS) document.addEventListener(type, this.onInput, { passive: true, capture: true });
    document.addEventListener('visibilitychange', this.onVisibility);
    this.idleTimer = setInterval(() => {
      if (Date.now() - this.lastInput >= IDLE_MS) this.goAway();
    }, IDLE_CHECK_MS);
  }

  /** Stops following input (on sign-out). */
  stop() {
    for (const type of INPUT_EVENTS) document.removeEventListener(type, this.onInput, { capture: true });
    document.removeEventListener('visibilitychange', this.onVisibility);
    clearInterval(this.idleTimer);
    clearTimeout(this.hiddenTimer);
    this.idleTimer = null;
    this.hiddenTimer = null;
  }

  /** Forgets everything (sign-out). */
  clear() {
    this.stop();
    this.views.clear();
    this.asked.clear();
    this.own = null;
  }

  input() {
    this.lastInput = Date.now();
    if (this.own?.chosen === 'away' && !manualAway() && !document.hidden) this.comeBack();
  }

  visibilityChanged() {
    clearTimeout(this.hiddenTimer);
    if (document.hidden) this.hiddenTimer = setTimeout(() => this.goAway(), HIDDEN_MS);
    else this.input();
  }

  /** Online, and idle or hidden: away (busy and invisible stay as chosen). */
  goAway() {
    if (this.own?.chosen !== 'online' || this.restoring) return;
    this.restoring = this.set({ state: 'away' }, { automatic: true }).catch(() => {}).finally(() => { this.restoring = null; });
  }

  /** Away by itself, and input came: online again. */
  comeBack() {
    if (this.restoring) return;
    this.restoring = this.set({ state: 'online' }, { automatic: true }).catch(() => {}).finally(() => { this.restoring = null; });
  }
}

function manualAway() {
  try {
    return localStorage.getItem(MANUAL_AWAY_KEY) === 'true';
  } catch {
    return false;
  }
}

function rememberManualAway(on) {
  try {
    if (on) localStorage.setItem(MANUAL_AWAY_KEY, 'true');
    else localStorage.removeItem(MANUAL_AWAY_KEY);
  } catch {
    // Without storage an away picked by hand ends at the next input.
  }
}
