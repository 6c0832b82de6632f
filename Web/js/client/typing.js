/**
 * Typing indicators (docs/API.md, "Typing indicators"): `start` while the member types (at most
 * every 2 s), `stop` when the text is cleared or sent or after 3 s without typing; indicators of
 * others dropped on `stop` or when not renewed within their `expiresIn`. Nothing is sent or shown
 * while the member's server-side preference is off.
 * @module client/typing
 */

/**
 * How often a `start` is repeated while typing goes on: the server forwards one per 2 s and drops
 * the rest, so starts are spaced a little more than that (as the server measures it).
 */
const RENEW_MS = 2_250;
/** Typing pauses this long: `stop`. */
const IDLE_MS = 3_000;
const DEFAULT_EXPIRY_MS = 6_000;

/** Tells the client's listeners with `typing` `{convId}`. */
export class Typing {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** Who types where: convId -> Map(userId -> expiry timer). */
    this.others = new Map();
    /**
     * This member's typing: convId -> {typing, started, lastStart, startTimer, idleTimer}
     * (`lastStart` outlives a stop: the server forwards one start per 2 s).
     */
    this.mine = new Map();
  }

  /** The user ids typing in a conversation now (never this member). */
  typers(convId) {
    if (!this.client.presence.typingEnabled) return [];
    return [...(this.others.get(convId)?.keys() ?? [])];
  }

  /** Conversations where someone is typing now. */
  conversations() {
    if (!this.client.presence.typingEnabled) return [];
    return [...this.others.keys()];
  }

  /**
   * The composer's text changed: `start` (renewed every 2.25 s, and never sooner after the last
   * one) while it holds text, `stop` when it is empty or after 3 s without a change.
   * @param {string} convId
   * @param {boolean} hasText
   */
  input(convId, hasText) {
    if (!hasText) {
      this.stopped(convId);
      return;
    }
    if (!this.client.presence.typingEnabled) return;
    const mine = this.mine.get(convId) ?? { typing: false, started: false, lastStart: 0, startTimer: null, idleTimer: null };
    this.mine.set(convId, mine);
    mine.typing = true;
    const wait = mine.lastStart + RENEW_MS - Date.now();
    if (wait <= 0) this.start(convId, mine);
    else if (!mine.startTimer) mine.startTimer = setTimeout(() => this.start(convId, mine), wait);
    clearTimeout(mine.idleTimer);
    mine.idleTimer = setTimeout(() => this.stopped(convId), IDLE_MS);
  }

  start(convId, mine) {
    clearTimeout(mine.startTimer);
    mine.startTimer = null;
    if (!mine.typing || !this.send(convId, 'start')) return;
    mine.started = true;
    mine.lastStart = Date.now();
  }

  /** The message was sent, the text cleared or the conversation left: `stop` if a `start` went out. */
  stopped(convId) {
    const mine = this.mine.get(convId);
    if (!mine || !mine.typing) return;
    clearTimeout(mine.idleTimer);
    clearTimeout(mine.startTimer);
    mine.startTimer = null;
    mine.typing = false;
    if (mine.started) this.send(convId, 'stop');
    mine.started = false;
  }

  send(convId, state) {
    return this.client.stream?.send({ type: 'typing', data: { conversationId: convId, state } }) ?? false;
  }

  /** A `typing` frame: `{conversationId, userId, state, expiresIn}`. */
  receive({ conversationId: convId, userId, state, expiresIn }) {
    if (typeof convId !== 'string' || typeof userId !== 'string' || userId === this.client.account?.userId) return;
    const here = this.others.get(convId) ?? new Map();
    clearTimeout(here.get(userId));
    if (state === 'start' && this.client.presence.typingEnabled) {
      const wait = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_EXPIRY_MS;
      here.set(userId, setTimeout(() => this.drop(convId, userId), wait));
      this.others.set(convId, here);
    } else {
      here.delete(userId);
      if (here.size === 0) this.others.delete(convId);
    }
    this.client.notify('typing', { convId });
  }

  /** A member's message arrived: they stopped typing there. */
  drop(convId, userId) {
    const here = this.others.get(convId);
    if (!here?.has(userId)) return;
    clearTimeout(here.get(userId));
    here.delete(userId);
    if (here.size === 0) this.others.delete(convId);
    this.client.notify('typing', { convId });
  }

  /** Forgets every indicator and timer (sign-out, or typing turned off). */
  clear() {
    for (const here of this.others.values()) for (const timer of here.values()) clearTimeout(timer);
    for (const mine of this.mine.values()) {
      clearTimeout(mine.idleTimer);
      clearTimeout(mine.startTimer);
    }
    const convIds = [...this.others.keys()];
    this.others.clear();
    this.mine.clear();
    for (const convId of convIds) this.client.notify('typing', { convId });
  }
}
