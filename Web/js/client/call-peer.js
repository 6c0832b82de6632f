/**
 * One media connection of a call: this device and one other device, over an RTCPeerConnection
 * negotiated by "perfect negotiation" (either side may offer: after a restart of ICE, a screen
 * shared or a reload; a collision is settled by the polite side giving way). Its signals are
 * sealed and signed end to end by the call session (client/call-session.js); this class only
 * speaks WebRTC.
 * @module client/call-peer
 */
import { b64u, random } from '../protocol/bytes.js';

/** How long ICE may stay disconnected before this side restarts it. */
export const RESTART_AFTER_MS = 5_000;

/** Candidates kept until the other end's description arrives (a few dozen per connection). */
const MAX_PENDING_CANDIDATES = 200;

/**
 * Events (CustomEvent): `signal` `{message}` (a JSON-able signal for the other device),
 * `track` `{}` (the remote stream changed), `state` `{state}` ('connecting', 'connected',
 * 'reconnecting', 'failed', 'closed').
 */
export class CallPeer extends EventTarget {
  /**
   * @param {{userId: string, deviceId: string, polite: boolean, iceServers: RTCIceServer[],
   *   iceTransportPolicy?: RTCIceTransportPolicy, local: MediaStream, replacing?: boolean}} options
   *   `replacing`: this connection takes over from one to the same device (it reloaded): until it
   *   connects the call is reconnecting, not connecting.
   */
  constructor({ userId, deviceId, polite, iceServers, iceTransportPolicy = 'all', local, replacing = false }) {
    super();
    this.userId = userId;
    this.deviceId = deviceId;
    this.polite = polite;
    /** This end's id: signals for another id were meant for an earlier page (a reload) and are dropped. */
    this.localId = b64u(random(8));
    /** The other end's id, once it spoke. */
    this.remoteId = null;
    this.remote = new MediaStream();
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.pendingCandidates = [];
    this.restartTimer = null;
    this.closing = false;
    this.state = replacing ? 'reconnecting' : 'connecting';
    this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    this.local = local;
    this.pc.onnegotiationneeded = () => this.negotiate();
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.send({ type: 'candidate', candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex });
    };
    this.pc.ontrack = ({ track }) => {
      if (!this.remote.getTracks().includes(track)) this.remote.addTrack(track);
      track.addEventListener('ended', () => {
        this.remote.removeTrack(track);
        this.notify('track');
      });
      this.notify('track');
    };
    this.pc.oniceconnectionstatechange = () => this.iceChanged();
    this.pc.onconnectionstatechange = () => this.iceChanged();
  }

  notify(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  send(message) {
    this.notify('signal', { message: { ...message, pc: this.localId, peerPc: this.remoteId } });
  }

  /** Starts the connection from this side: sends this device's tracks (an offer follows). */
  start() {
    for (const track of this.local.getTracks()) this.pc.addTrack(track, this.local);
  }

  async negotiate() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.send({ type: this.pc.localDescription.type, sdp: this.pc.localDescription.sdp });
    } catch {
      // A later negotiation (or the other side's offer) takes over.
    } finally {
      this.makingOffer = false;
    }
  }

  /**
   * A signal from the other device (already opened and checked). Returns false when it belongs
   * to another incarnation of this connection and was dropped.
   * @param {object} message
   */
  async receive(message) {
    if (message.peerPc && message.peerPc !== this.localId) return false;
    if (message.type === 'offer' || message.type === 'answer') {
      if (message.pc) this.remoteId = message.pc;
      const collision = message.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return true;
      await this.pc.setRemoteDescription({ type: message.type, sdp: message.sdp });
      if (message.type === 'offer') {
        // An answer uses the transceivers the offer made: add this device's tracks to them.
        const senders = this.pc.getSenders();
        for (const track of this.local.getTracks()) {
          if (!senders.some((sender) => sender.track === track)) this.pc.addTrack(track, this.local);
        }
        await this.pc.setLocalDescription();
        this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
      }
      for (const candidate of this.pendingCandidates.splice(0)) {
        if (!candidate.pc || candidate.pc === this.remoteId) await this.addCandidate(candidate);
      }
      return true;
    }
    if (message.type === 'candidate') {
      // A candidate of another incarnation of the other end (its page before a reload) would
      // not match this connection's description: dropped, not an error.
      if (message.pc && this.remoteId && message.pc !== this.remoteId) return false;
      if (!this.pc.remoteDescription) {
        if (this.pendingCandidates.length < MAX_PENDING_CANDIDATES) this.pendingCandidates.push(message);
      } else {
        await this.addCandidate(message);
      }
      return true;
    }
    return true;
  }

  async addCandidate({ candidate, sdpMid, sdpMLineIndex }) {
    try {
      await this.pc.addIceCandidate({ candidate, sdpMid, sdpMLineIndex });
    } catch (error) {
      if (!this.ignoreOffer) throw error;
    }
  }

  /**
   * Puts `track` in place of the one sent of its kind (a device switched, the screen shared or
   * stopped): no renegotiation when a sender of that kind exists, else the track is added.
   * @param {MediaStreamTrack} track
   * @param {MediaStreamTrack|null} previous
   */
  async replaceTrack(track, previous) {
    const sender = this.pc.getSenders().find((candidate) => candidate.track === previous)
      ?? this.pc.getSenders().find((candidate) => candidate.track?.kind === track.kind)
      ?? this.pc.getTransceivers().find((t) => t.receiver.track?.kind === track.kind && !t.sender.track && t.currentDirection !== 'stopped')?.sender;
    if (sender) {
      await sender.replaceTrack(track);
      // A transceiver that only received (a voice call answered with video) must send now.
      const transceiver = this.pc.getTransceivers().find((t) => t.sender === sender);
      if (transceiver && (transceiver.direction === 'recvonly' || transceiver.direction === 'inactive')) transceiver.direction = 'sendrecv';
    } else {
      this.pc.addTrack(track, this.local);
    }
  }

  /** Restarts ICE (a new offer follows, with fresh candidates), as after a network change. */
  restartIce() {
    this.pc.restartIce();
  }

  iceChanged() {
    const ice = this.pc.iceConnectionState;
    const connection = this.pc.connectionState;
    if (ice === 'connected' || ice === 'completed' || connection === 'connected') {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
      this.setState('connected');
    } else if (ice === 'disconnected' || ice === 'failed' || connection === 'failed') {
      this.setState('reconnecting');
      if (ice === 'failed') this.restartIce();
      if (!this.restartTimer) {
        this.restartTimer = setTimeout(() => {
          this.restartTimer = null;
          const now = this.pc.iceConnectionState;
          if (now === 'disconnected' || now === 'failed') this.restartIce();
        }, RESTART_AFTER_MS);
      }
    } else if (ice === 'closed' || connection === 'closed') {
      // Closed by the other side (its page went away): it may come back with a new connection.
      this.setState(this.closing ? 'closed' : 'reconnecting');
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.notify('state', { state });
  }

  /**
   * Round-trip time, packet loss and bitrates from `getStats()`: `{rttMs, lossPercent,
   * inKbps, outKbps, framesDecoded, frameWidth, frameHeight, relay}`.
   */
  async quality() {
    const stats = await this.pc.getStats();
    const now = performance.now();
    let rttMs = null, lost = 0, received = 0, bytesIn = 0, bytesOut = 0, framesDecoded = 0, frameWidth = 0, frameHeight = 0, relay = false;
    const candidates = new Map();
    let pair = null;
    stats.forEach((report) => {
      if (report.type === 'candidate-pair' && report.nominated && report.state === 'succeeded') pair = report;
      if (report.type === 'local-candidate' || report.type === 'remote-candidate') candidates.set(report.id, report);
      if (report.type === 'inbound-rtp') {
        lost += report.packetsLost ?? 0;
        received += report.packetsReceived ?? 0;
        bytesIn += report.bytesReceived ?? 0;
        if (report.kind === 'video') {
          framesDecoded += report.framesDecoded ?? 0;
          frameWidth = report.frameWidth ?? frameWidth;
          frameHeight = report.frameHeight ?? frameHeight;
        }
      }
      if (report.type === 'outbound-rtp') bytesOut += report.bytesSent ?? 0;
    });
    if (pair) {
      if (pair.currentRoundTripTime !== undefined) rttMs = Math.round(pair.currentRoundTripTime * 1000);
      relay = candidates.get(pair.localCandidateId)?.candidateType === 'relay' || candidates.get(pair.remoteCandidateId)?.candidateType === 'relay';
    }
    const previous = this.lastStats;
    this.lastStats = { at: now, bytesIn, bytesOut };
    const seconds = previous ? (now - previous.at) / 1000 : 0;
    const kbps = (bytes, before) => (seconds > 0 ? Math.max(0, Math.round(((bytes - before) * 8) / 1000 / seconds)) : null);
    return {
      rttMs, lossPercent: lost + received > 0 ? (100 * lost) / (lost + received) : 0,
      inKbps: previous ? kbps(bytesIn, previous.bytesIn) : null, outKbps: previous ? kbps(bytesOut, previous.bytesOut) : null,
      framesDecoded, frameWidth, frameHeight, relay,
    };
  }

  close() {
    this.closing = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.pc.onnegotiationneeded = null;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.close();
    this.setState('closed');
  }
}
