/**
 * Calls (docs/API.md "Calls"): the calls of this member's conversations as the server shows
 * them, the one this device is in (client/call-session.js), ringing, answering, declining,
 * rejoining after a reload, and each conversation's call records.
 * @module client/calls
 */
import { b64u } from '../protocol/bytes.js';
import { CallSession, mediaErrorMessage } from './call-session.js';

export { mediaErrorMessage } from './call-session.js';

/** Something the member must fix before a call can start (a permission, a missing device). */
export class MediaError extends Error {
  constructor(message, cause) {
    super(message);
    this.name = 'MediaError';
    this.cause = cause;
  }
}

/**
 * Tells the client's listeners with `calls` `{callId?}` (a call changed, a call rings, this
 * device's call started or ended).
 */
export class Calls {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** Calls of this member's conversations that are ringing or active, by id. @type {Map<string, object>} */
    this.live = new Map();
    /** This device's call. @type {CallSession|null} */
    this.session = null;
    /** How the last call of this device ended: `{callId, reason, message}`. */
    this.lastEnded = null;
    /** The join on its way: `{callId, promise}`. */
    this.joining = null;
    /** ICE options for tests and deployments that must relay (`?relay` in the page address). */
    this.iceTransportPolicy = 'all';
  }

  get me() {
    return this.client.account?.userId ?? null;
  }

  get deviceId() {
    return b64u(this.client.account.deviceId);
  }

  /** This member's part in a call. */
  mine(view) {
    return (view?.participants ?? []).find((p) => p.userId === this.me) ?? null;
  }

  /** Calls ringing for this member (on no device of theirs answered yet), newest first. */
  get ringing() {
    return [...this.live.values()]
      .filter((view) => view.state !== 'ended' && this.mine(view)?.state === 'ringing' && view.id !== this.session?.callId)
      .sort((a, b) => b.createdAt - a.createdAt);
  }

  /** The live call of a conversation, if any. */
  liveIn(convId) {
    return [...this.live.values()].find((view) => view.conversationId === convId && view.state !== 'ended') ?? null;
  }

  /** Loads the live calls (after `ready` and `catch-up`): rings again, or rejoins the call this device was in. */
  async load() {
    const { calls } = await this.client.api.get('/api/v1/calls/active');
    if (!this.client.account) return;
    this.live.clear();
    for (const view of calls ?? []) this.live.set(view.id, view);
    const mine = (calls ?? []).find((view) => {
      const part = this.mine(view);
      return part?.state === 'joined' && part.deviceId === this.deviceId;
    });
    if (mine && !this.session) {
      // This device was in the call (the page reloaded): back in, offering to everyone.
      await this.join(mine.id, { media: this.mine(mine).media }).catch((error) => {
        this.lastEnded = { callId: mine.id, reason: 'failed', message: error.message };
      });
    } else if (this.session) {
      const view = this.live.get(this.session.callId);
      if (view) this.session.update(view);
      else this.session.refresh().catch(() => {});
    }
    this.client.notify('calls', {});
  }

  /** A `call.updated` frame: the whole call live, a reference read back from the log. */
  async received(data) {
    const view = data?.participants ? data : await this.client.api.get(`/api/v1/calls/${encodeURIComponent(data.callId)}`).catch(() => null);
    if (!view) return;
    if (view.state === 'ended') this.live.delete(view.id);
    else this.live.set(view.id, view);
    if (this.session?.callId === view.id) this.session.update(view);
    this.client.notify('calls', { callId: view.id });
  }

  /** A `call.signal` frame for this device. */
  signal(data) {
    if (this.session && data?.callId === this.session.callId) this.session.receiveSignal(data);
  }

  /** This device's camera and microphone for a call, with the error a member can act on. */
  async localMedia(media) {
    if (!navigator.mediaDevices?.getUserMedia) throw new MediaError('This browser cannot make calls here (it needs HTTPS, or localhost).');
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: media === 'video' });
    } catch (error) {
      if (media === 'video' && (error?.name === 'NotFoundError' || error?.name === 'OverconstrainedError')) {
        throw new MediaError(mediaErrorMessage(error, 'video'), error);
      }
      throw new MediaError(mediaErrorMessage(error, media), error);
    }
  }

  async iceServers() {
    const answer = await this.client.api.get('/api/v1/calls/turn');
    return answer.iceServers ?? [];
  }

  /**
   * Calls the other members of a conversation. When they called at the same moment the answer
   * is their call, which this device then joins: one call either way.
   * @param {string} convId
   * @param {'audio'|'video'} media
   */
  async start(convId, media) {
    if (this.session) throw new Error('You are already in a call: hang up first.');
    const local = await this.localMedia(media);
    try {
      const iceServers = await this.iceServers();
      const view = await this.client.api.post('/api/v1/calls', { conversationId: convId, media, deviceId: this.deviceId });
      if (this.mine(view)?.state === 'joined' && this.mine(view).deviceId === this.deviceId) {
        return this.begin(view, { media, local, iceServers, joining: true });
      }
      if (view.state === 'ended') {
        local.getTracks().forEach((track) => track.stop());
        this.lastEnded = { callId: view.id, reason: view.reason, message: null };
        this.client.notify('calls', { callId: view.id });
        return null;
      }
      // Glare: the other side's call came first.
      local.getTracks().forEach((track) => track.stop());
      return this.join(view.id, { media });
    } catch (error) {
      local.getTracks().forEach((track) => track.stop());
      throw error;
    }
  }

  /**
   * Answers a ringing call (or joins one going on, or rejoins after a reload) on this device.
   * @param {string} callId
   * @param {{media?: 'audio'|'video'}} options
   */
  async join(callId, { media = 'video' } = {}) {
    if (this.session && this.session.callId !== callId) throw new Error('You are already in a call: hang up first.');
    if (this.session) return this.session;
    // A second load or click while joining (a `ready` and a `catch-up` close together) joins once.
    if (this.joining) {
      if (this.joining.callId === callId) return this.joining.promise;
      throw new Error('You are already joining a call.');
    }
    const promise = this.joinNow(callId, media);
    this.joining = { callId, promise };
    try {
      return await promise;
    } finally {
      this.joining = null;
    }
  }

  async joinNow(callId, media) {
    let local;
    try {
      local = await this.localMedia(media);
    } catch (error) {
      // No camera: answer with the microphone only.
      if (media !== 'video' || !(error instanceof MediaError) || !/No camera/.test(error.message)) throw error;
      media = 'audio';
      local = await this.localMedia('audio');
    }
    try {
      const iceServers = await this.iceServers();
      const view = await this.client.api.post(`/api/v1/calls/${encodeURIComponent(callId)}/join`, { deviceId: this.deviceId, media });
      return this.begin(view, { media, local, iceServers, joining: true });
    } catch (error) {
      local.getTracks().forEach((track) => track.stop());
      throw error;
    }
  }

  begin(view, { media, local, iceServers, joining }) {
    const session = new CallSession(this.client, view, { media, local, iceServers, iceTransportPolicy: this.iceTransportPolicy });
    this.session = session;
    this.lastEnded = null;
    session.addEventListener('ended', (event) => {
      if (this.session === session) this.session = null;
      this.lastEnded = { callId: session.callId, ...event.detail };
      this.client.notify('calls', { callId: session.callId });
    });
    session.addEventListener('change', () => this.client.notify('calls', { callId: session.callId }));
    this.live.set(view.id, view);
    session.update(view, { joining });
    this.client.notify('calls', { callId: view.id });
    return session;
  }

  /** Says no to a ringing call (every device of this member stops ringing). */
  async decline(callId) {
    const view = await this.client.api.post(`/api/v1/calls/${encodeURIComponent(callId)}/decline`);
    await this.received(view);
  }

  /** Hangs up this device's call. */
  async hangUp() {
    await this.session?.hangUp();
  }

  /**
   * A conversation's call records, newest first (`{calls}` as the server lists them).
   * @param {string} convId
   */
  async history(convId, { limit = 50 } = {}) {
    const answer = await this.client.api.get(`/api/v1/calls?conversationId=${encodeURIComponent(convId)}&limit=${limit}`);
    return answer.calls ?? [];
  }

  /** Signed out: ends the call here. */
  clear() {
    this.session?.end('left');
    this.session = null;
    this.live.clear();
    this.lastEnded = null;
  }
}
