/**
 * Typing indicators (docs/API.md, "Typing indicators"): `start` while the member types (at most
 * every 2 s), `stop` when the text is cleared or sent or after 3 s without typing; indicators of
 * others dropped on `stop` or when not renewed within their `expiresIn`. Nothing is sent or shown
 * while the member's server-side preference is off.
 * @module client/typing
 */

/** How often a `start` is repeated while typing goes on (the server forwards one per 2 s). */
export const RENEW_MS = 2_000;
/** Typing pauses this long: `stop`. */
export const IDLE_MS = 3_000;
const DEFAULT_EXPIRY_MS = 6_000;

/** Tells the client's listeners with `typing` `{convId}`. */
export class Typing {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** Who types where: convId -> Map(userId -> expiry timer). */
    this.others = new Map();
    /** This member's typing: convId -> {sentAt, idleTimer}. */
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
   * The composer's text changed: `start` (renewed every 2 s) while it holds text, `stop` when it
   * is empty or after 3 s without a change.
   * @param {string} convId
   * @param {boolean} hasText
   */
  input(convId, hasText) {
    if (!hasText) {
      this.stopped(convId);
      return;
    }
    if (!this.client.presence.typingEnabled) return;
    const now = Date.now();
    const mine = this.mine.get(convId) ?? { sentAt: 0, idleTimer: null };
    this.mine.set(convId, mine);
    if (now - mine.sentAt >= RENEW_MS && this.send(convId, 'start')) mine.sentAt = now;
    clearTimeout(mine.idleTimer);
    mine.idleTimer = setTimeout(() => this.stopped(convId), IDLE_MS);
  }

  /** The message was sent, the text cleared or the conversation left: `stop` if a `start` went out. */
  stopped(convId) {
    const mine = this.mine.get(convId);
    if (!mine) return;
    clearTimeout(mine.idleTimer);
    this.mine.delete(convId);
    if (mine.sentAt) this.send(convId, 'stop');
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
    for (const mine of this.mine.values()) clearTimeout(mine.idleTimer);
    const convIds = [...this.others.keys()];
    this.others.clear();
    this.mine.clear();
    for (const convId of convIds) this.client.notify('typing', { convId });
  }
}
