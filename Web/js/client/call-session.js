/**
 * This device's part in one call (docs/API.md "Calls", PROTOCOL 10): its camera and microphone,
 * one CallPeer per other device in the call, the signals between them sealed to the recipient
 * and signed by this member (a signal that fails its check ends the call, closed), mute, camera
 * and screen-share state told to the others, heartbeats, and the state the call view shows.
 * @module client/call-session
 */
import { b64u, fromB64u, fromUtf8, utf8 } from '../protocol/bytes.js';
import { openCallSignal, sealCallSignal } from '../protocol/call-signal.js';
import { CallPeer } from './call-peer.js';

const HEARTBEAT_MS = 10_000;
const QUALITY_MS = 2_000;
/** Times one connection may start over after WebRTC refused a signal before the call ends failed. */
const MAX_CONNECTION_RESTARTS = 3;
// A signal the server could not take (network down, busy, restarting) is sealed and sent again
// this many times, after 0.5, 1, 2 and 4 s (or the server's Retry-After) before the call fails.
const SIGNAL_ATTEMPTS = 5;

/** Why getUserMedia failed, in words a member can act on. */
export function mediaErrorMessage(error, kind) {
  const what = kind === 'video' ? 'camera and microphone' : 'microphone';
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `Access to the ${what} was denied. Allow it in the browser's site settings, then try again.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return kind === 'video' ? 'No camera was found. Connect one, or start a voice call.' : 'No microphone was found. Connect one and try again.';
    case 'NotReadableError':
      return `The ${what} is in use by another application.`;
    default:
      return `The ${what} could not be opened: ${error?.message ?? error}`;
  }
}

/**
 * Events on the session (CustomEvent): `change` `{}` (anything the call view shows), `ended`
 * `{reason, message?}`.
 */
export class CallSession extends EventTarget {
  /**
   * @param {import('./index.js').CircleClient} client
   * @param {object} view the call as the server shows it
   * @param {{media: 'audio'|'video', local: MediaStream, iceServers: RTCIceServer[], iceTransportPolicy?: string}} options
   */
  constructor(client, view, { media, local, iceServers, iceTransportPolicy = 'all' }) {
    super();
    this.client = client;
    this.view = view;
    this.callId = view.id;
    this.media = media;
    this.local = local;
    this.iceServers = iceServers;
    this.iceTransportPolicy = iceTransportPolicy;
    this.account = client.account;
    this.deviceId = b64u(this.account.deviceId);
    /** @type {Map<string, CallPeer>} by `userId/deviceId` */
    this.peers = new Map();
    /** What each other member said about their media: `userId -> {audio, video, screen, verified}`. */
    this.remoteMedia = new Map();
    /** The peers' sealing keys, fetched once per call. */
    this.keys = new Map();
    /** The last signal number seen per sending device (replays are refused). */
    this.seenSeq = new Map();
    /** Connections started over after WebRTC refused a signal, per device. */
    this.restarts = new Map();
    /** This device's signal numbers: from the clock, so a reload continues above them. */
    this.seq = Date.now() * 1000;
    /** The last signal on its way to each device (they go one after another). */
    this.sending = new Map();
    this.muted = false;
    this.cameraOff = media !== 'video';
    /** The screen track while sharing. */
    this.screen = null;
    this.cameraTrack = local.getVideoTracks()[0] ?? null;
    this.quality = new Map();
    this.ended = null;
    this.startedAt = view.answeredAt ?? null;
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.qualityTimer = setInterval(() => this.measure(), QUALITY_MS);
    this.signalQueue = Promise.resolve();
    /** Set while the page goes away (a reload): the next page rejoins, so nothing fails the call. */
    this.pageLeaving = false;
    this.onPageHide = () => { this.pageLeaving = true; };
    this.onPageShow = () => { this.pageLeaving = false; };
    globalThis.addEventListener?.('pagehide', this.onPageHide);
    globalThis.addEventListener?.('pageshow', this.onPageShow);
  }

  notify(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  get me() {
    return this.account.userId;
  }

  /** Other members joined now, with their devices. */
  joinedOthers(view = this.view) {
    return (view.participants ?? []).filter((p) => p.state === 'joined' && p.deviceId && p.userId !== this.me);
  }

  /** Whether the peer (and this member) verified each other's safety numbers. */
  verifiedWith(userId) {
    return this.client.directory.trust(userId) === 'verified' && this.remoteMedia.get(userId)?.verified === true;
  }

  /** 'verified' when every other member verified and was verified, else 'not-verified'. */
  get security() {
    const others = this.joinedOthers();
    return others.length > 0 && others.every((p) => this.verifiedWith(p.userId)) ? 'verified' : 'not-verified';
  }

  /** 'connecting', 'connected' or 'reconnecting', over every peer. */
  get connection() {
    const states = [...this.peers.values()].map((peer) => peer.state);
    if (states.some((state) => state === 'reconnecting' || state === 'failed')) return 'reconnecting';
    if (states.length > 0 && states.every((state) => state === 'connected')) return 'connected';
    return 'connecting';
  }

  /**
   * The call changed on the server: peers for devices that joined (this device offers to the
   * devices already in the call when it joins; a device joining later offers to this one),
   * closed for devices that left; ends when the call ended or moved to another device.
   * @param {object} view
   * @param {{joining?: boolean}} [options] `joining`: this device just (re)joined and offers to everyone in the call
   */
  update(view, { joining = false } = {}) {
    if (this.ended) return;
    this.view = view;
    if (view.answeredAt && !this.startedAt) this.startedAt = view.answeredAt;
    const mine = (view.participants ?? []).find((p) => p.userId === this.me);
    if (view.state === 'ended') {
      this.end(view.reason ?? 'completed');
      return;
    }
    if (!mine || mine.state !== 'joined') {
      this.end('left');
      return;
    }
    if (mine.deviceId !== this.deviceId) {
      this.end('elsewhere', 'The call continues on another of your devices.');
      return;
    }
    const present = new Set();
    for (const p of this.joinedOthers(view)) {
      const key = `${p.userId}/${p.deviceId}`;
      present.add(key);
      if (joining && !this.peers.has(key)) this.connect(p.userId, p.deviceId, { offer: true });
    }
    for (const [key, peer] of this.peers) {
      if (!present.has(key)) {
        peer.close();
        this.peers.delete(key);
      }
    }
    this.notify('change');
  }

  /** A CallPeer to `userId` on `deviceId` (replacing one from an earlier page of that device). */
  connect(userId, deviceId, { offer }) {
    const key = `${userId}/${deviceId}`;
    const replaced = this.peers.get(key);
    replaced?.close();
    const polite = `${this.me}/${this.deviceId}` > key;
    const peer = new CallPeer({
      userId, deviceId, polite, iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy, local: this.local, replacing: Boolean(replaced),
    });
    this.peers.set(key, peer);
    peer.addEventListener('signal', (event) => {
      this.sendSignal(userId, deviceId, event.detail.message).catch((error) => {
        // 409: that device is not in the call (it left, or is between two pages of a reload):
        // this connection waits for it; the heartbeat's view drops it or its new page offers anew.
        if (error?.status === 409 && !this.ended) {
          console.warn(`call: a signal to ${key} was not relayed (${error.message})`);
          return;
        }
        this.failed(error);
      });
    });
    peer.addEventListener('track', () => this.notify('change'));
    peer.addEventListener('state', (event) => {
      if (event.detail.state === 'connected') this.sendMedia(userId, deviceId).catch(() => {});
      this.notify('change');
    });
    if (offer) peer.start();
    return peer;
  }

  // MARK: Signals

  async sealingKeys(userId) {
    if (!this.keys.has(userId)) this.keys.set(userId, this.client.directory.sealingKeys(userId, this.view.conversationId));
    try {
      return await this.keys.get(userId);
    } catch (error) {
      this.keys.delete(userId);
      throw error;
    }
  }

  /**
   * Seals, signs and sends one signal to one device, after the ones before it to that device:
   * the recipient refuses a number at or below one it has seen, and WebRTC wants them in order.
   */
  sendSignal(userId, deviceId, message) {
    const key = `${userId}/${deviceId}`;
    const previous = this.sending.get(key) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(() => this.sealAndSend(userId, deviceId, message));
    this.sending.set(key, next);
    return next;
  }

  async sealAndSend(userId, deviceId, message) {
    for (let attempt = 1; ; attempt += 1) {
      if (this.ended) return;
      try {
        await this.sealAndSendOnce(userId, deviceId, message);
        return;
      } catch (error) {
        if (!error?.transient || attempt >= SIGNAL_ATTEMPTS) throw error;
        // Sealed anew (a new number) each time: one that did arrive is never seen twice as a replay.
        const wait = error.retryAfter ? Math.min(error.retryAfter * 1000, 10_000) : 500 * 2 ** (attempt - 1);
        await new Promise((resolve) => { setTimeout(resolve, wait); });
      }
    }
  }

  async sealAndSendOnce(userId, deviceId, message) {
    const keys = await this.sealingKeys(userId);
    this.seq += 1;
    const address = {
      callId: fromB64u(this.callId), sender: this.me, senderDevice: this.account.deviceId,
      recipient: userId, recipientDevice: fromB64u(deviceId), seq: this.seq,
    };
    const wire = await sealCallSignal(address, keys.x25519Key, utf8(JSON.stringify(message)), this.account.identity.privateKey);
    await this.client.api.post(`/api/v1/calls/${encodeURIComponent(this.callId)}/signal`, {
      fromDevice: this.deviceId, toUser: userId, toDevice: deviceId, payload: b64u(wire),
    });
  }

  /** A `call.signal` frame for this device: checked and opened, then given to its peer, in order. */
  receiveSignal(data) {
    this.signalQueue = this.signalQueue.then(() => this.handleSignal(data)).catch((error) => this.failed(error));
    return this.signalQueue;
  }

  async handleSignal(data) {
    if (this.ended || data.callId !== this.callId || data.toDevice !== this.deviceId) return;
    const address = {
      callId: fromB64u(this.callId), sender: data.from, senderDevice: fromB64u(data.fromDevice),
      recipient: this.me, recipientDevice: this.account.deviceId,
    };
    const identity = (await this.sealingKeys(data.from)).identityKey;
    // A signal altered, re-signed or misaddressed by anyone (the server included) fails here.
    const { seq, plaintext } = await openCallSignal(address, fromB64u(data.payload), identity, this.account.x25519);
    const sender = `${data.from}/${data.fromDevice}`;
    if (seq <= (this.seenSeq.get(sender) ?? 0)) throw new Error('a call signal was replayed');
    this.seenSeq.set(sender, seq);
    const message = JSON.parse(fromUtf8(plaintext));
    if (!message || typeof message.type !== 'string') throw new Error('a call signal is not understood');
    if (message.type === 'media') {
      this.remoteMedia.set(data.from, {
        audio: message.audio !== false, video: message.video === true, screen: message.screen === true, verified: message.verified === true,
      });
      this.notify('change');
      return;
    }
    let peer = this.peers.get(sender);
    // An offer from a device not connected yet, or from a new page of it (a reload): a new connection.
    if (message.type === 'offer' && (!peer || (message.pc && peer.remoteId && message.pc !== peer.remoteId && !message.peerPc))) {
      peer = this.connect(data.from, data.fromDevice, { offer: false });
    }
    if (!peer) return;
    try {
      await peer.receive(message);
    } catch (error) {
      // WebRTC refused a description or candidate that was verified above: two incarnations of
      // a connection raced (a reload, a restart), not tampering. This side starts that
      // connection over; only a connection that keeps failing ends the call.
      if (this.ended || this.peers.get(sender) !== peer) return;
      const restarts = (this.restarts.get(sender) ?? 0) + 1;
      if (restarts > MAX_CONNECTION_RESTARTS) throw error;
      this.restarts.set(sender, restarts);
      console.warn(`call: the connection to ${sender} starts over (${error?.message ?? error})`);
      this.connect(data.from, data.fromDevice, { offer: true });
    }
  }

  /** Tells one device (or every one) what this device sends, and whether this member verified them. */
  async sendMedia(userId = null, deviceId = null) {
    const targets = userId ? [{ userId, deviceId }] : this.joinedOthers();
    await Promise.all(targets.map((target) => this.sendSignal(target.userId, target.deviceId, {
      type: 'media', audio: !this.muted, video: !this.cameraOff && Boolean(this.cameraTrack), screen: Boolean(this.screen),
      verified: this.client.directory.trust(target.userId) === 'verified',
    })));
  }

  // MARK: Controls

  setMuted(muted) {
    this.muted = muted;
    for (const track of this.local.getAudioTracks()) track.enabled = !muted;
    this.notify('change');
    return this.sendMedia();
  }

  setCameraOff(off) {
    this.cameraOff = off;
    if (this.cameraTrack) this.cameraTrack.enabled = !off;
    this.notify('change');
    return this.sendMedia();
  }

  /** Swaps the microphone or camera for another device (from the pickers). */
  async useDevice(kind, deviceId) {
    const constraints = kind === 'audio' ? { audio: { deviceId: { exact: deviceId } } } : { video: { deviceId: { exact: deviceId } } };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const track = kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    const previous = kind === 'audio' ? this.local.getAudioTracks()[0] : this.cameraTrack;
    if (kind === 'audio') track.enabled = !this.muted;
    else track.enabled = !this.cameraOff;
    await this.swapTrack(track, previous, { sent: kind === 'audio' || !this.screen });
    if (kind === 'video') this.cameraTrack = track;
    previous?.stop();
    this.notify('change');
  }

  /** Puts `track` in place of `previous` in the local stream and, when `sent`, on every connection. */
  async swapTrack(track, previous, { sent = true } = {}) {
    if (previous) this.local.removeTrack(previous);
    this.local.addTrack(track);
    if (sent) await Promise.all([...this.peers.values()].map((peer) => peer.replaceTrack(track, previous)));
  }

  /**
   * Shares the screen in place of the camera (or as the video of a voice call); stopping it,
   * here or from the browser's own bar, brings the camera back.
   */
  async shareScreen() {
    if (this.screen) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = stream.getVideoTracks()[0];
    track.addEventListener('ended', () => this.stopSharing().catch(() => {}));
    this.screen = track;
    await Promise.all([...this.peers.values()].map((peer) => peer.replaceTrack(track, this.cameraTrack)));
    this.notify('change');
    await this.sendMedia();
  }

  async stopSharing() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    screen.stop();
    if (this.cameraTrack) await Promise.all([...this.peers.values()].map((peer) => peer.replaceTrack(this.cameraTrack, screen)));
    this.notify('change');
    await this.sendMedia();
  }

  // MARK: Life

  async beat() {
    if (this.ended) return;
    try {
      await this.client.api.post(`/api/v1/calls/${encodeURIComponent(this.callId)}/heartbeat`);
    } catch (error) {
      // 409: this device is not in the call any more (ended, or moved to another device).
      if (error?.status === 409 || error?.status === 404) this.refresh().catch(() => {});
    }
  }

  /** Reads the call again (after a heartbeat was refused). */
  async refresh() {
    this.update(await this.client.api.get(`/api/v1/calls/${encodeURIComponent(this.callId)}`));
  }

  async measure() {
    if (this.ended) return;
    for (const [key, peer] of this.peers) {
      try {
        this.quality.set(key, await peer.quality());
      } catch {
        // A connection closing meanwhile.
      }
    }
    this.notify('change');
  }

  /** A signal that failed its check, or a connection that could not be made: the call ends, closed. */
  failed(error) {
    // A page that is unloading sees its requests cut off: that is not the call failing.
    if (this.ended || this.pageLeaving) return;
    const message = error?.code === 'bad-signature' || /replayed|signature/.test(String(error?.message))
      ? 'The call was ended: its signaling could not be verified (it may have been tampered with).'
      : `The call failed: ${error?.message ?? error}`;
    this.client.api.post(`/api/v1/calls/${encodeURIComponent(this.callId)}/leave`, { failed: true }).catch(() => {});
    this.end('failed', message);
  }

  /** Hangs up on this device. */
  async hangUp() {
    if (this.ended) return;
    const view = await this.client.api.post(`/api/v1/calls/${encodeURIComponent(this.callId)}/leave`).catch(() => null);
    this.end(view?.reason ?? 'left');
  }

  /** Stops everything local; `reason` as the server names it, or 'left', 'elsewhere'. */
  end(reason, message = null) {
    if (this.ended) return;
    this.ended = { reason, message };
    globalThis.removeEventListener?.('pagehide', this.onPageHide);
    globalThis.removeEventListener?.('pageshow', this.onPageShow);
    clearInterval(this.heartbeat);
    clearInterval(this.qualityTimer);
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
    for (const track of this.local.getTracks()) track.stop();
    this.screen?.stop();
    this.notify('ended', { reason, message });
  }
}
