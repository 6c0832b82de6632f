// Calls in the app: the incoming-call screen (with a ringtone, silent while busy), the in-call
// view (the others' video large, this device small, duration, mute, camera, screen sharing,
// microphone and camera pickers, hang up), what each other member sends (muted, camera off,
// sharing), the connection's quality and the call's security state, "reconnecting…", and how a
// call ended. The call lines of a conversation ("Missed call", "Call, 12 min") come from here too.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { announce, toast } from './announcer.js';
import { describeError } from './errors.js';
import { conversationTitle } from './format.js';

const TICK_MS = 1000;

/** "12:05" or "1:02:05". */
export function duration(milliseconds) {
  const total = Math.max(0, Math.floor(milliseconds / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

/** "12 min", "45 s", "1 h 5 min". */
function spokenDuration(milliseconds) {
  const minutes = Math.round(milliseconds / 60000);
  if (milliseconds < 60000) return `${Math.max(1, Math.round(milliseconds / 1000))} s`;
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** What a call record says in its conversation, for this member. */
export function callLine(view, me) {
  const mine = (view.participants ?? []).find((p) => p.userId === me);
  const kind = view.kind === 'broadcast' ? 'Broadcast' : view.media === 'video' ? 'Video call' : 'Voice call';
  if (view.state !== 'ended') return view.state === 'ringing' ? `${kind}, ringing` : `${kind} in progress`;
  const outgoing = view.createdBy === me;
  switch (view.reason) {
    case 'completed': return `${kind}, ${spokenDuration(view.durationMs ?? 0)}`;
    case 'missed': return outgoing ? `${kind}, no answer` : `Missed ${kind.toLowerCase()}`;
    case 'declined': return outgoing ? `${kind}, declined` : `${kind}, you declined`;
    case 'busy': return outgoing ? `${kind}, busy` : `Missed ${kind.toLowerCase()} (you were in another call)`;
    case 'cancelled': return outgoing || mine?.state !== 'missed' ? `${kind}, cancelled` : `Missed ${kind.toLowerCase()}`;
    case 'failed': return `${kind}, failed`;
    default: return kind;
  }
}

/** The words for how a call ended, shown once it has. */
const ENDED_TEXT = {
  completed: 'Call ended.',
  missed: 'No answer.',
  declined: 'The call was declined.',
  busy: 'Busy: they are in another call.',
  cancelled: 'Call cancelled.',
  failed: 'The call failed.',
  left: 'You left the call.',
  elsewhere: 'The call continues on another of your devices.',
};

/** A short ringing pattern from the Web Audio API (no file to load). */
class Ringtone {
  start() {
    if (this.timer) return;
    try {
      this.context = new AudioContext();
      this.context.resume().catch(() => {});
    } catch {
      return;
    }
    const ring = () => {
      const context = this.context;
      if (!context || context.state === 'closed') return;
      for (const offset of [0, 0.4]) {
        const oscillator = context.createOscillator();
        const gain = context.createGain();
        oscillator.frequency.value = 440 + offset * 100;
        gain.gain.setValueAtTime(0.0001, context.currentTime + offset);
        gain.gain.exponentialRampToValueAtTime(0.15, context.currentTime + offset + 0.05);
        gain.gain.exponentialRampToValueAtTime(0.0001, context.currentTime + offset + 0.35);
        oscillator.connect(gain).connect(context.destination);
        oscillator.start(context.currentTime + offset);
        oscillator.stop(context.currentTime + offset + 0.4);
      }
    };
    ring();
    this.timer = setInterval(ring, 2500);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.context?.close().catch(() => {});
    this.context = null;
  }
}

/** Quality in words, from round-trip time and loss. */
function qualityWord(quality) {
  if (!quality || quality.rttMs === null) return 'measuring';
  if (quality.rttMs < 200 && quality.lossPercent < 2) return 'good';
  if (quality.rttMs < 500 && quality.lossPercent < 8) return 'fair';
  return 'poor';
}

/**
 * The call layer over the app: nothing while no call rings or runs. `getConversation(convId)`
 * gives the app's copy of a conversation (for its title).
 */
export class CallOverlay {
  constructor({ client, me, getConversation }) {
    this.client = client;
    this.me = me;
    this.getConversation = getConversation;
    this.ringtone = new Ringtone();
    this.names = new Map();
    this.shownRing = null;
    this.endedNotice = null;
    this.tiles = new Map();
    this.element = h('div', { class: 'call-layer' });
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.onKey = (event) => {
      if (event.key === 'Escape' && this.incoming && !this.incoming.hidden) this.decline(this.shownRing);
    };
    document.addEventListener('keydown', this.onKey);
    this.render();
  }

  destroy() {
    clearInterval(this.timer);
    this.ringtone.stop();
    document.removeEventListener('keydown', this.onKey);
  }

  /** A member's display name (asked once, shown when known). */
  name(userId) {
    if (!this.names.has(userId)) {
      this.names.set(userId, null);
      this.client.directory.displayName(userId).then((name) => {
        this.names.set(userId, name);
        this.render();
      }).catch(() => {});
    }
    return this.names.get(userId) || 'Someone';
  }

  titleOf(view) {
    const conversation = this.getConversation(view.conversationId);
    if (conversation?.kind === 'group') return conversationTitle(conversation, this.me);
    return this.name(view.createdBy === this.me.userId
      ? (view.participants ?? []).find((p) => p.userId !== this.me.userId)?.userId ?? view.createdBy
      : view.createdBy);
  }

  /** Called on the client's `calls` events. */
  render() {
    const calls = this.client.calls;
    const session = calls.session;
    const ringing = session ? null : calls.ringing[0] ?? null;
    this.renderIncoming(ringing);
    if (session) this.renderCall(session);
    else this.closeCall();
    if (!session && calls.lastEnded && calls.lastEnded !== this.endedShown) {
      this.endedShown = calls.lastEnded;
      const { reason, message } = calls.lastEnded;
      const text = message || ENDED_TEXT[reason] || 'Call ended.';
      if (reason === 'failed') toast(text, { kind: 'error', timeout: 12000 });
      else toast(text);
      announce(text);
    }
  }

  // MARK: Ringing

  renderIncoming(view) {
    const busy = this.client.presence.busy;
    if (!view) {
      this.ringtone.stop();
      this.incoming?.remove();
      this.incoming = null;
      this.shownRing = null;
      return;
    }
    if (busy) this.ringtone.stop();
    else this.ringtone.start();
    const who = this.titleOf(view);
    if (this.shownRing?.id === view.id && this.incoming) {
      // The caller's name may have arrived since.
      if (this.incomingTitle.textContent !== who) this.incomingTitle.textContent = who;
      return;
    }
    this.shownRing = view;
    const what = view.kind === 'broadcast' ? 'is broadcasting' : view.media === 'video' ? 'is calling you (video)' : 'is calling you (voice)';
    const accept = h('button', { type: 'button', class: 'btn btn-primary call-accept', onclick: () => this.accept(view, view.media) },
      icon(view.media === 'video' ? 'video' : 'phone'), view.kind === 'broadcast' ? 'Watch' : view.media === 'video' ? 'Accept with video' : 'Accept');
    const voice = view.media === 'video' && view.kind !== 'broadcast'
      ? h('button', { type: 'button', class: 'btn call-accept-voice', onclick: () => this.accept(view, 'audio') }, icon('phone'), 'Accept voice only')
      : null;
    this.incoming?.remove();
    this.incoming = h('section', { class: 'incoming-call', id: 'incoming-call', role: 'alertdialog', 'aria-labelledby': 'incoming-title', 'aria-describedby': 'incoming-what' },
      h('div', { class: 'incoming-ring', 'aria-hidden': 'true' }, icon(view.media === 'video' ? 'video' : 'phone')),
      this.incomingTitle = h('h2', { id: 'incoming-title' }, who),
      h('p', { id: 'incoming-what' }, what, busy ? ' · silent while you are busy' : ''),
      h('div', { class: 'incoming-actions' },
        accept, voice,
        h('button', { type: 'button', class: 'btn btn-danger call-decline', onclick: () => this.decline(view) }, icon('phone', 'icon-hangup'), 'Decline'),
      ),
    );
    this.element.append(this.incoming);
    announce(`${who} ${what}`);
    accept.focus();
  }

  async accept(view, media) {
    this.ringtone.stop();
    try {
      await this.client.calls.join(view.id, { media });
    } catch (error) {
      toast(describeError(error), { kind: 'error', timeout: 12000 });
    }
  }

  async decline(view) {
    if (!view) return;
    this.ringtone.stop();
    try {
      await this.client.calls.decline(view.id);
    } catch (error) {
      toast(describeError(error), { kind: 'error' });
    }
  }

  // MARK: In a call

  closeCall() {
    if (!this.callView) return;
    this.callView.remove();
    this.callView = null;
    this.tiles.clear();
    this.session = null;
    this.returnFocus?.focus?.();
  }

  /** Builds the in-call view once per call, then updates it in place. */
  renderCall(session) {
    if (this.session !== session) {
      this.closeCall();
      this.session = session;
      this.returnFocus = document.activeElement;
      this.buildCall(session);
    }
    this.updateCall(session);
  }

  buildCall(session) {
    const view = session.view;
    this.callTitle = h('h2', { class: 'call-title', id: 'call-title' }, this.titleOf(view));
    this.callStatus = h('p', { class: 'call-status', role: 'status' });
    this.callSecurity = h('p', { class: 'call-security' });
    this.remoteArea = h('div', { class: 'call-remotes' });
    this.selfVideo = h('video', { class: 'call-self', autoplay: true, playsinline: true, 'aria-label': 'Your camera' });
    this.selfVideo.muted = true;
    this.muteButton = h('button', { type: 'button', class: 'btn-call', 'aria-pressed': 'false', onclick: () => this.toggleMute() });
    this.cameraButton = h('button', { type: 'button', class: 'btn-call', 'aria-pressed': 'false', onclick: () => this.toggleCamera() });
    this.shareButton = h('button', { type: 'button', class: 'btn-call', 'aria-pressed': 'false', onclick: () => this.toggleShare() });
    this.micPicker = h('select', { class: 'call-picker', 'aria-label': 'Microphone', onchange: (event) => this.pick('audio', event.target.value) });
    this.cameraPicker = h('select', { class: 'call-picker', 'aria-label': 'Camera', onchange: (event) => this.pick('video', event.target.value) });
    this.hangUpButton = h('button', { type: 'button', class: 'btn-call btn-hangup', 'aria-label': 'Hang up', onclick: () => this.hangUp() }, icon('phone', 'icon-hangup'));
    this.callView = h('section', { class: 'call-view', id: 'call-view', role: 'region', 'aria-labelledby': 'call-title' },
      h('header', { class: 'call-header' }, this.callTitle, this.callStatus, this.callSecurity),
      this.remoteArea,
      this.selfVideo,
      h('div', { class: 'call-controls', role: 'toolbar', 'aria-label': 'Call controls' },
        this.muteButton, this.cameraButton, this.shareButton, this.hangUpButton),
      h('div', { class: 'call-devices' },
        h('label', {}, icon('mic'), h('span', { class: 'visually-hidden' }, 'Microphone'), this.micPicker),
        h('label', {}, icon('video'), h('span', { class: 'visually-hidden' }, 'Camera'), this.cameraPicker)),
    );
    this.element.append(this.callView);
    this.fillPickers().catch(() => {});
    this.hangUpButton.focus();
  }

  async fillPickers() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const session = this.session;
    if (!session) return;
    const current = (kind) => (kind === 'audio' ? session.local.getAudioTracks()[0] : session.cameraTrack)?.getSettings?.().deviceId;
    for (const [picker, kind] of [[this.micPicker, 'audio'], [this.cameraPicker, 'video']]) {
      const options = devices.filter((device) => device.kind === `${kind}input`);
      replace(picker, options.map((device, index) => h('option', { value: device.deviceId, selected: device.deviceId === current(kind) },
        device.label || `${kind === 'audio' ? 'Microphone' : 'Camera'} ${index + 1}`)));
      picker.disabled = options.length < 2 || (kind === 'video' && !session.cameraTrack);
    }
  }

  async pick(kind, deviceId) {
    try {
      await this.session?.useDevice(kind, deviceId);
    } catch (error) {
      toast(describeError(error), { kind: 'error' });
    }
  }

  updateCall(session) {
    const view = session.view;
    this.callTitle.textContent = this.titleOf(view);
    this.callStatus.textContent = this.statusText(session);
    const security = session.security;
    replace(this.callSecurity, icon(security === 'verified' ? 'shield' : 'lock'),
      security === 'verified' ? ' Verified: end-to-end encrypted with the safety numbers you both checked' : ' End-to-end encrypted · not verified (compare safety numbers to verify)');
    this.callSecurity.dataset.security = security;
    // This device: the camera, or the screen while sharing.
    const selfStream = session.screen ? new MediaStream([session.screen]) : session.local;
    if (this.selfVideo.srcObject?.getTracks?.().join() !== selfStream.getTracks().join()) this.selfVideo.srcObject = selfStream;
    this.selfVideo.hidden = !session.screen && (session.cameraOff || !session.cameraTrack);
    this.setToggle(this.muteButton, session.muted, session.muted ? 'Unmute microphone' : 'Mute microphone', session.muted ? 'micOff' : 'mic');
    this.setToggle(this.cameraButton, session.cameraOff, session.cameraOff ? 'Turn camera on' : 'Turn camera off', session.cameraOff ? 'videoOff' : 'video');
    this.cameraButton.disabled = !session.cameraTrack;
    this.setToggle(this.shareButton, Boolean(session.screen), session.screen ? 'Stop sharing screen' : 'Share screen', 'monitor');
    this.shareButton.disabled = !navigator.mediaDevices?.getDisplayMedia;
    this.renderTiles(session);
  }

  setToggle(button, pressed, label, iconName) {
    button.setAttribute('aria-pressed', pressed ? 'true' : 'false');
    button.setAttribute('aria-label', label);
    button.title = label;
    if (button.dataset.icon !== iconName) {
      replace(button, icon(iconName));
      button.dataset.icon = iconName;
    }
  }

  statusText(session) {
    const view = session.view;
    if (view.state === 'ringing') return view.createdBy === this.me.userId ? 'Ringing…' : 'Connecting…';
    if (this.client.connection !== 'online' || session.connection === 'reconnecting') return 'Reconnecting…';
    if (session.connection === 'connecting') return 'Connecting…';
    return session.startedAt ? duration(Date.now() - session.startedAt) : 'Connected';
  }

  renderTiles(session) {
    const present = new Set();
    for (const [key, peer] of session.peers) {
      present.add(key);
      let tile = this.tiles.get(key);
      if (!tile) {
        const video = h('video', { class: 'call-remote-video', autoplay: true, playsinline: true });
        tile = {
          video,
          name: h('p', { class: 'call-tile-name' }),
          badges: h('p', { class: 'call-tile-badges' }),
          quality: h('p', { class: 'call-quality' }),
          placeholder: h('div', { class: 'call-tile-placeholder', 'aria-hidden': 'true' }),
        };
        tile.element = h('figure', { class: 'call-tile', dataset: { user: peer.userId, device: peer.deviceId } },
          video, tile.placeholder, h('figcaption', {}, tile.name, tile.badges, tile.quality));
        this.tiles.set(key, tile);
        this.remoteArea.append(tile.element);
      }
      if (tile.video.srcObject !== peer.remote) tile.video.srcObject = peer.remote;
      const media = session.remoteMedia.get(peer.userId) ?? { audio: true, video: session.view.media === 'video', screen: false };
      const name = this.name(peer.userId);
      tile.name.textContent = name;
      tile.video.setAttribute('aria-label', `${name}'s ${media.screen ? 'screen' : 'video'}`);
      const showsVideo = (media.video || media.screen) && peer.remote.getVideoTracks().length > 0;
      tile.element.classList.toggle('call-tile-novideo', !showsVideo);
      tile.placeholder.textContent = name.slice(0, 1).toUpperCase();
      const badges = [];
      if (!media.audio) badges.push(h('span', { class: 'call-badge', dataset: { badge: 'muted' } }, icon('micOff'), 'Muted'));
      if (!media.video && !media.screen) badges.push(h('span', { class: 'call-badge', dataset: { badge: 'camera-off' } }, icon('videoOff'), 'Camera off'));
      if (media.screen) badges.push(h('span', { class: 'call-badge', dataset: { badge: 'sharing' } }, icon('monitor'), 'Sharing screen'));
      if (peer.state === 'reconnecting') badges.push(h('span', { class: 'call-badge', dataset: { badge: 'reconnecting' } }, 'Reconnecting…'));
      const signature = badges.map((badge) => badge.dataset.badge).join(' ');
      if (tile.badges.dataset.shown !== signature) {
        replace(tile.badges, badges);
        tile.badges.dataset.shown = signature;
      }
      const quality = session.quality.get(key);
      const word = qualityWord(quality);
      tile.quality.dataset.quality = word;
      const parts = [`Connection ${word}`];
      if (quality?.rttMs !== null && quality?.rttMs !== undefined) parts.push(`${quality.rttMs} ms`);
      if (quality) parts.push(`${quality.lossPercent.toFixed(1)}% loss`);
      if (quality?.inKbps !== null && quality?.inKbps !== undefined) parts.push(`${quality.inKbps} kbps`);
      if (quality?.relay) parts.push('via relay');
      tile.quality.textContent = parts.join(' · ');
    }
    for (const [key, tile] of this.tiles) {
      if (!present.has(key)) {
        tile.element.remove();
        this.tiles.delete(key);
      }
    }
    this.remoteArea.dataset.count = String(this.tiles.size);
  }

  toggleMute() {
    this.session?.setMuted(!this.session.muted).catch(() => {});
    announce(this.session?.muted ? 'Microphone muted.' : 'Microphone on.');
  }

  toggleCamera() {
    this.session?.setCameraOff(!this.session.cameraOff).catch(() => {});
    announce(this.session?.cameraOff ? 'Camera off.' : 'Camera on.');
  }

  async toggleShare() {
    const session = this.session;
    if (!session) return;
    try {
      if (session.screen) await session.stopSharing();
      else await session.shareScreen();
      announce(session.screen ? 'Sharing your screen.' : 'Stopped sharing your screen.');
    } catch (error) {
      if (error?.name !== 'NotAllowedError') toast(describeError(error), { kind: 'error' });
    }
  }

  async hangUp() {
    try {
      await this.client.calls.hangUp();
    } catch (error) {
      toast(describeError(error), { kind: 'error' });
    }
  }

  tick() {
    if (this.session && this.callStatus) this.callStatus.textContent = this.statusText(this.session);
  }
}

/**
 * The call buttons of a conversation's header (voice, video; "Join" while its call goes on
 * without this device). `onError(error)` shows a failure in the conversation.
 */
export class CallButtons {
  constructor({ client, convId, onError }) {
    this.client = client;
    this.convId = convId;
    this.onError = onError;
    this.voice = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Start a voice call', onclick: () => this.start('audio') }, icon('phone'));
    this.video = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Start a video call', onclick: () => this.start('video') }, icon('video'));
    this.join = h('button', { type: 'button', class: 'btn btn-small btn-primary call-join', hidden: true, onclick: () => this.joinLive() }, icon('phone'), 'Join call');
    this.element = h('span', { class: 'call-buttons' }, this.join, this.voice, this.video);
    this.update();
  }

  update() {
    const calls = this.client.calls;
    const live = calls.liveIn(this.convId);
    const inThis = calls.session?.view.conversationId === this.convId;
    const mine = live ? calls.mine(live) : null;
    this.join.hidden = !live || inThis || mine?.state === 'ringing' || live.state === 'ended';
    const busy = Boolean(calls.session) || Boolean(live);
    this.voice.disabled = busy;
    this.video.disabled = busy;
  }

  async start(media) {
    try {
      await this.client.calls.start(this.convId, media);
    } catch (error) {
      this.onError(error);
    }
  }

  async joinLive() {
    const live = this.client.calls.liveIn(this.convId);
    if (!live) return;
    try {
      await this.client.calls.join(live.id, { media: live.media });
    } catch (error) {
      this.onError(error);
    }
  }
}
