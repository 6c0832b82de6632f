/**
 * The realtime socket `/api/v1/events` (docs/API.md): authenticates with its first frame
 * (`{"type":"auth","token":..,"since":N,"device":..}`, never the token in the URL), catches up, says
 * `ready`, then delivers live events; reconnects with backoff and jitter after a drop, a server
 * restart (1012), falling behind (4008) or too many frames (4029); after 4009 (newer sockets of
 * this device took its place: too many tabs) only once this page is looked at again; and stops
 * for good on 4001 (signed out or revoked).
 * @module client/events
 */

/** Close codes of the event socket. */
export const CloseCode = Object.freeze({ restarting: 1012, unauthorized: 4001, tooSlow: 4008, replaced: 4009, tooManyFrames: 4029 });

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 15_000;

/**
 * One realtime connection that keeps itself up. Frames are handed to `onFrame` one at a time
 * and in order: the next frame waits until the previous handler's promise settles.
 *
 * Events: `state` (detail `{state: 'offline'|'connecting'|'online'}`) and `unauthorized`.
 */
export class EventStream extends EventTarget {
  /**
   * @param {{token: () => string|null, since: () => number|null, device?: () => string|null,
   *          onFrame: (frame: object) => Promise<void>|void, url?: string}} options `since` is read at each
   *          (re)connect: the last event handled (null: start at the head); `device` names this device, which
   *          receives the call signals sent to it.
   */
  constructor({ token, since, device = () => null, onFrame, url = null }) {
    super();
    this.tokenOf = token;
    this.sinceOf = since;
    this.deviceOf = device;
    this.onFrame = onFrame;
    this.url = url ?? socketURL();
    /** @type {'offline'|'connecting'|'online'} */
    this.state = 'offline';
    this.socket = null;
    this.running = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.queue = Promise.resolve();
    this.onOnline = () => this.retryNow();
  }

  /** Starts connecting (no-op when already running). */
  start() {
    if (this.running) return;
    this.running = true;
    globalThis.addEventListener?.('online', this.onOnline);
    this.connect();
  }

  /** Closes the socket and stops reconnecting. */
  stop() {
    this.running = false;
    globalThis.removeEventListener?.('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onerror = null;
      try {
        socket.close(1000, 'client stopped');
      } catch {
        // already closed
      }
    }
    this.setState('offline');
  }

  /** Reconnects at once if waiting for a retry (the network came back). */
  retryNow() {
    if (!this.running || this.socket) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  /**
   * Sends a frame on the socket once it is ready (after `ready`); nothing is queued while it is
   * not, so this returns false then.
   * @param {object} frame
   */
  send(frame) {
    const socket = this.socket;
    if (this.state !== 'online' || !socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  /** Resolves once every frame received so far has been handled. */
  drained() {
    return this.queue;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }

  connect() {
    const token = this.tokenOf();
    if (!this.running || !token) return;
    this.setState('connecting');
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    // Authenticate at once (the server allows 10 seconds). `since` is the last event handled so
    // far: frames of an earlier socket still waiting are dropped below and come again on this one,
    // and an event handled meanwhile is recognised by its seq and skipped.
    socket.onopen = () => {
      if (this.socket !== socket) return;
      const current = this.tokenOf();
      if (!current) {
        socket.close(1000, 'signed out');
        return;
      }
      const since = this.sinceOf();
      const auth = { type: 'auth', token: current };
      if (since !== null && since !== undefined) auth.since = since;
      const device = this.deviceOf();
      if (device) auth.device = device;
      socket.send(JSON.stringify(auth));
    };
    socket.onmessage = (message) => {
      if (typeof message.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame?.type === 'ready' || frame?.type === 'resync-required') this.attempt = 0;
      this.queue = this.queue.then(async () => {
        if (this.socket !== socket) return;
        try {
          await this.onFrame(frame);
        } catch {
          // A handler failure is the client's to report; the stream goes on.
        }
        if (frame?.type === 'ready' && this.socket === socket) this.setState('online');
      });
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!this.running) return;
      if (event.code === CloseCode.unauthorized) {
        this.running = false;
        this.setState('offline');
        this.queue = this.queue.then(() => this.dispatchEvent(new CustomEvent('unauthorized', { detail: { reason: event.reason } })));
        return;
      }
      this.setState('offline');
      if (event.code === CloseCode.replaced) {
        // Reconnecting at once would close another tab's socket in turn: this page comes back
        // when its member looks at it.
        this.whenLookedAt(() => this.scheduleRetry(true));
        return;
      }
      this.scheduleRetry(event.code === CloseCode.restarting || event.code === CloseCode.tooSlow);
    };
  }

  /** Runs `then` once the page is focused or shown again (at once when it is focused now). */
  whenLookedAt(then) {
    if (globalThis.document?.hasFocus?.()) {
      then();
      return;
    }
    const again = () => {
      globalThis.removeEventListener?.('focus', again);
      globalThis.document?.removeEventListener?.('visibilitychange', shown);
      if (this.running && !this.socket) then();
    };
    const shown = () => { if (globalThis.document?.visibilityState === 'visible') again(); };
    globalThis.addEventListener?.('focus', again);
    globalThis.document?.addEventListener?.('visibilitychange', shown);
  }

  /** Waits before the next attempt: exponential from 250 ms to 15 s, with full jitter. */
  scheduleRetry(soon = false) {
    if (!this.running) return;
    const attempt = soon ? 0 : this.attempt;
    this.attempt = Math.min(this.attempt + 1, 10);
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }
}

/** `ws(s)://<this origin>/api/v1/events`. */
export function socketURL() {
  const { protocol, host } = globalThis.location;
  return `${protocol === 'https:' ? 'wss:' : 'ws:'}//${host}/api/v1/events`;
}
