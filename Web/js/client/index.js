/**
 * The headless Circle client for the browser: the equivalent of CircleKit's `ChatClient`
 * (account, directory and pins, verified membership chains, sender chains and envelopes,
 * receiving with replay protection, the realtime socket), kept in IndexedDB so a reload resumes
 * where it was. The UI talks to `CircleClient` only.
 * @module client
 */
import { b64u, concat, fromB64u, utf8 } from '../protocol/bytes.js';
import { CONTENT_TYPES } from '../protocol/message.js';
import { safetyHalf, safetyNumber } from '../protocol/safety.js';
import { Activity } from './activity.js';
import { Api, ApiError } from './api.js';
import { Calls } from './calls.js';
import { Chains } from './chains.js';
import { Directory } from './directory.js';
import { ForkError, RefusedError } from './errors.js';
import { EventStream } from './events.js';
import { KeyedMutex } from './locks.js';
import { Messaging } from './messaging.js';
import { Presence } from './presence.js';
import * as session from './session.js';
import { Store } from './store.js';
import { Typing } from './typing.js';
import { Vault, parseAttachment } from './vault.js';
import { conversationView, messageViews, settingsChanges } from './views.js';

export { ApiError } from './api.js';
export { MediaError } from './calls.js';
export { ForkError, KeyChangedError, RefusedError } from './errors.js';
export { SharedLink, UploadPausedError, parseAttachment } from './vault.js';

/** A conversation record as stored, with defaults for a conversation never seen before. */
function newConversationRecord(userId, convId) {
  return { userId, convId, ops: [], lastSeq: 0, readSeq: 0, reads: {}, maxHead: -1, title: null, myReceipts: undefined };
}

/**
 * One browser's Circle client.
 *
 * Events (CustomEvent, `detail` as shown): `connection` `{state}`, `conversations` `{}`,
 * `messages` `{convId}`, `alarm` `{kind: 'key-changed'|'fork', convId, userId?, message}`,
 * `signed-out` `{reason}`, `vault` `{type, fileId}` (a file of this account was created,
 * changed or deleted, here or on another device), `presence` `{userId?}` (client/presence.js),
 * `typing` `{convId}` (client/typing.js), `activity` `{entry}` and `alerts` `{}`
 * (client/activity.js), `calls` `{callId?}` (client/calls.js).
 */
export class CircleClient extends EventTarget {
  /** Use `CircleClient.open()`. @param {Store} store */
  constructor(store) {
    super();
    this.store = store;
    /** The signed-in account record, or null. */
    this.account = null;
    this.api = new Api({ onUnauthorized: () => this.signOut('unauthorized') });
    this.mutex = new KeyedMutex();
    this.directory = new Directory(this);
    this.chains = new Chains(this);
    this.messaging = new Messaging(this);
    this.vault = new Vault(this);
    this.presence = new Presence(this);
    this.typing = new Typing(this);
    this.activity = new Activity(this);
    this.calls = new Calls(this);
    /** Conversation records in memory (one object per conversation). @type {Map<string, object>} */
    this.records = new Map();
    this.loading = new Map();
    /** The server's last listing, by conversation id. */
    this.summaries = new Map();
    /** @type {EventStream|null} */
    this.stream = null;
    this.signingOut = null;
    /** Why the session is ending when this client ends it itself ('logout'). */
    this.leaving = null;
  }

  /**
   * Restores the device signed in on this browser from IndexedDB (and connects), or gives a
   * client with no session.
   * @returns {Promise<CircleClient>}
   */
  static async open() {
    const store = await Store.open();
    const client = new CircleClient(store);
    const userId = await store.currentUserId();
    const account = userId ? await store.getAccount(userId) : null;
    if (account?.token) await client.adopt(account);
    return client;
  }

  /** Whether a session is signed in on this browser. */
  get signedIn() {
    return this.account !== null;
  }

  /** The signed-in user: `{userId, username, displayName, isAdmin}`, or null. */
  get me() {
    const account = this.account;
    if (!account) return null;
    return { userId: account.userId, username: account.username, displayName: account.displayName, isAdmin: account.isAdmin };
  }

  /** The realtime connection: 'offline', 'connecting' or 'online'. */
  get connection() {
    return this.stream?.state ?? 'offline';
  }

  // MARK: Internals shared with the modules

  /** Dispatches a CustomEvent. */
  notify(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Tells the UI of a key change or fork (the operation that found it also fails). */
  raiseAlarm({ kind, convId = null, userId, message }) {
    const detail = { kind, convId, message };
    if (userId) detail.userId = userId;
    this.notify('alarm', detail);
  }

  /** Saves the account record (session, keys, pins, event position). */
  async saveAccount() {
    if (this.account) await this.store.putAccount(this.account);
  }

  /** The record of a conversation (the same object on every call). */
  async conversation(convId) {
    const held = this.records.get(convId);
    if (held) return held;
    if (!this.loading.has(convId)) {
      const userId = this.account.userId;
      this.loading.set(convId, this.store.getConversation(userId, convId).then((stored) => {
        const record = this.records.get(convId) ?? stored ?? newConversationRecord(userId, convId);
        this.records.set(convId, record);
        this.loading.delete(convId);
        return record;
      }, (error) => {
        this.loading.delete(convId);
        throw error;
      }));
    }
    return this.loading.get(convId);
  }

  /** Saves a conversation record. */
  async saveConversation(record) {
    if (this.account) await this.store.putConversation(record);
  }

  requireSession() {
    if (!this.account) throw new RefusedError('not signed in');
    return this.account;
  }

  /** Makes `account` the signed-in one: saved, remembered as current, connected. */
  async adopt(account) {
    this.account = account;
    this.api.token = account.token;
    await this.store.putAccount(account);
    await this.store.setCurrentUserId(account.userId);
    this.presence.start();
    this.connect();
    this.restoreCaches().catch(() => {});
  }

  /** Loads the decrypted caches so disappearing messages are removed on time. */
  async restoreCaches() {
    const account = this.account;
    for (const record of await this.store.listConversations(account.userId)) {
      if (this.account !== account) return;
      if (!this.records.has(record.convId)) this.records.set(record.convId, record);
      await this.messaging.messagesOf(record.convId);
    }
    const touched = await this.messaging.purgeExpired();
    for (const convId of touched) this.notify('messages', { convId });
  }

  connect() {
    this.stream?.stop();
    const stream = new EventStream({
      token: () => this.account?.token ?? null,
      since: () => this.account?.lastEventSeq ?? null,
      device: () => (this.account ? b64u(this.account.deviceId) : null),
      onFrame: (frame) => this.handleFrame(frame),
    });
    stream.addEventListener('state', (event) => this.notify('connection', event.detail));
    stream.addEventListener('unauthorized', () => this.signOut('revoked'));
    this.stream = stream;
    stream.start();
  }

  /**
   * Ends the session here: stops the socket, forgets every key and message in memory, and
   * erases this browser's Circle database. Called on logout and when the server says the
   * session is over.
   * @param {string} reason 'logout', 'revoked' or 'unauthorized'
   */
  signOut(reason) {
    if (!this.account) return this.signingOut ?? Promise.resolve();
    if (this.signingOut) return this.signingOut;
    const why = this.leaving ?? reason;
    this.leaving = null;
    this.signingOut = (async () => {
      this.stream?.stop();
      this.stream = null;
      this.account = null;
      this.api.token = null;
      this.api.abandonSessionCalls();
      this.records.clear();
      this.summaries.clear();
      this.chains.clear();
      this.messaging.clear();
      this.vault.clear();
      this.typing.clear();
      this.presence.clear();
      this.activity.clear();
      this.calls.clear();
      this.directory.cache.clear();
      const old = this.store;
      this.store = new Store(old.name);
      try {
        await old.wipe();
      } finally {
        this.signingOut = null;
        this.notify('connection', { state: 'offline' });
        this.notify('signed-out', { reason: why });
      }
    })();
    return this.signingOut;
  }

  // MARK: Server and account

  /**
   * The server's identity: `{serverId, protocolVersion, mode, secureContext}`; `secureContext`
   * is false where the browser withholds WebCrypto (plain HTTP other than localhost).
   */
  async serverInfo() {
    const info = await this.api.call('GET', '/api/v1/server', undefined, { token: null });
    return { ...info, secureContext: globalThis.isSecureContext === true };
  }

  /**
   * Creates an account (keys made here; the password never leaves the page) and signs in.
   * @param {{invite?: string, username: string, displayName?: string, password: string, deviceLabel?: string,
   *   onStage?: (stage: 'deriving'|'verifying'|'unlocking') => void}} params
   * @returns {Promise<{recoveryKey: string}>} the recovery key, to show once
   */
  async register(params) {
    if (this.account) throw new RefusedError('already signed in: sign out first');
    const { account, recoveryKey } = await session.register(this.api, params);
    await this.adopt(account);
    return { recoveryKey };
  }

  /**
   * Signs in: refuses a weak KDF before sending anything else, derives keys, opens the bundle,
   * checks it against the directory and brings the synced pins along.
   * @param {{username: string, password: string, deviceLabel?: string,
   *   onStage?: (stage: 'deriving'|'verifying'|'unlocking') => void}} params
   */
  async login(params) {
    if (this.account) throw new RefusedError('already signed in: sign out first');
    const { account } = await session.login(this.api, params);
    await this.adopt(account);
    await this.directory.syncPins().catch(() => {});
  }

  /** Ends the session on the server and erases this browser's Circle data. */
  async logout() {
    if (!this.account) return;
    // The server's revocation (event, close code) must not be taken for a revocation from elsewhere.
    this.leaving = 'logout';
    this.stream?.stop();
    // Calls still on their way would reach a revoked session: abandon them first.
    const { token } = this.account;
    this.api.token = null;
    this.api.abandonSessionCalls();
    try {
      await this.api.call('POST', '/api/v1/auth/logout', undefined, { token });
    } catch {
      // Signed out here regardless; the server's session is revoked or expires.
    }
    await this.signOut('logout');
  }

  /** Invites (admins): `[{id, state, note, grantsAdmin, createdAt, expiresAt, usedAt?, usedBy?, revokedAt?}]`, newest first. */
  async invites() {
    this.requireSession();
    return (await this.api.get('/api/v1/admin/invites')).invites;
  }

  /** Creates an invite (admins): `{invite, link}`; the link is in this answer only. */
  async createInvite({ note, validForHours, grantsAdmin }) {
    this.requireSession();
    return this.api.post('/api/v1/admin/invites', { note, validForHours, grantsAdmin });
  }

  /** Revokes an unused invite (admins). */
  async revokeInvite(id) {
    this.requireSession();
    await this.api.delete(`/api/v1/admin/invites/${encodeURIComponent(id)}`);
  }

  /** Whether an invite can still be used: `{state, expiresAt?}` (no session needed). */
  async inviteState(code) {
    return this.api.call('GET', `/api/v1/auth/invites/${encodeURIComponent(code)}`, undefined, { token: null });
  }

  /** This account's live sessions: `[{id, deviceLabel, ip, createdAt, lastSeenAt, current}]`. */
  async sessions() {
    this.requireSession();
    return (await this.api.get('/api/v1/account/sessions')).sessions;
  }

  /** Ends one session (this one: signs out here too). */
  async revokeSession(id) {
    const account = this.requireSession();
    if (id === account.sessionId) this.leaving = 'logout';
    try {
      await this.api.delete(`/api/v1/account/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      this.leaving = null;
      throw error;
    }
    if (id === account.sessionId) {
      this.api.token = null;
      this.api.abandonSessionCalls();
      await this.signOut('logout');
    }
  }

  /** Ends every other session of this account; resolves to their ids. */
  async revokeOthers() {
    this.requireSession();
    return (await this.api.post('/api/v1/account/sessions/revoke-others')).revoked;
  }

  /**
   * Changes the password (every other session ends).
   * @param {{currentPassword: string, newPassword: string, onStage?: (stage: string) => void}} params
   */
  async changePassword(params) {
    const account = this.requireSession();
    const result = await session.changePassword(this.api, account, params);
    await this.saveAccount();
    return result;
  }

  /**
   * Destroys on purpose (docs/API.md "Destruction"): proves the password again, starts the job
   * (whose first step already made the data unreadable when the server answers), then follows it
   * to the end with the job's watch token, which outlives the sessions an account's destruction
   * ends. This browser's copy goes too: the whole local state for an account, the conversation's
   * for a conversation.
   * The whole server's destruction (`server`, admins only) waits for a second admin's approval
   * when the server has one; `onProgress` then sees the job `awaiting-approval` until it starts,
   * and the call fails if it is refused or lapses.
   * @param {{kind: 'account'|'conversation'|'files'|'links'|'server', conversationId?: string, password: string,
   *   confirm: string, onProgress?: (job: object) => void}} params
   * @returns {Promise<object>} the finished job
   */
  async destroy({ kind, conversationId, password, confirm, onProgress }) {
    const account = this.requireSession();
    await session.reauthenticate(this.api, account, password);
    const body = { kind, confirm };
    if (conversationId) body.conversationId = conversationId;
    const endsSessions = kind === 'account' || kind === 'server';
    // The server ends this session with the job's first step: whichever notices first signs out
    // for the right reason.
    if (endsSessions) this.leaving = 'destroyed';
    let started;
    try {
      // Its first step ends this session, which may be noticed before the answer arrives.
      started = await this.api.call('POST', '/api/v1/destruction', body, { outlivesSession: true });
    } catch (error) {
      if (endsSessions && this.account) this.leaving = null;
      throw error;
    }
    const { job, watchToken } = started;
    onProgress?.(job);
    let current = job;
    if (current.state === 'awaiting-approval') {
      // Nothing is destroyed yet: this session stays until another admin approves, and ends
      // (for the reason kept in `leaving`) the moment one does.
      try {
        current = await this.followJob(current, watchToken, onProgress, (polled) => polled.state !== 'awaiting-approval');
      } catch (error) {
        if (this.account) this.leaving = null;
        throw error;
      }
      if (current.state === 'cancelled' || current.state === 'lapsed') {
        if (this.account) this.leaving = null;
        throw new RefusedError(current.state === 'lapsed'
          ? 'no other admin approved within 15 minutes: nothing was destroyed'
          : 'another admin refused: nothing was destroyed');
      }
    }
    if (endsSessions) {
      await this.signOut('destroyed');
    } else if (kind === 'conversation') {
      await this.forgetConversation(conversationId);
      this.notify('conversations', {});
    }
    current = await this.followJob(current, watchToken, onProgress, (polled) => polled.state === 'done');
    if (kind === 'files') this.notify('vault', { type: 'deleted', fileId: null });
    return current;
  }

  /**
   * Polls a destruction job with its watch token until `until(job)` holds; a request waiting for
   * approval past its time fails as lapsed.
   */
  async followJob(job, watchToken, onProgress, until) {
    let current = job;
    for (let delay = 200; !until(current); delay = Math.min(delay * 2, 2000)) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      current = await this.api.call('GET', job.url, undefined, { token: null, headers: { 'Circle-Job-Token': watchToken } });
      onProgress?.(current);
    }
    return current;
  }

  /** One destruction job (the caller's, or for an admin the server's). */
  async destructionJob(id) {
    return this.api.call('GET', `/api/v1/destruction/${encodeURIComponent(id)}`);
  }

  /** The server's destruction waiting for this admin's approval, or null (admins only). */
  async pendingServerDestruction() {
    const { jobs } = await this.api.call('GET', '/api/v1/destruction');
    const me = this.account && this.account.userId;
    return jobs.find((job) => job.kind === 'server' && job.state === 'awaiting-approval' && job.requestedBy !== me) || null;
  }

  /**
   * A second admin approves the whole server's destruction: proves the password again, approves
   * (the keys step has run when the server answers, ending every session, this one too), then
   * follows the job to its end with the approver's own watch token.
   * @param {{jobId: string, password: string, confirm: string, onProgress?: (job: object) => void}} params
   */
  async approveServerDestruction({ jobId, password, confirm, onProgress }) {
    const account = this.requireSession();
    await session.reauthenticate(this.api, account, password);
    this.leaving = 'destroyed';
    let started;
    try {
      started = await this.api.call('POST', `/api/v1/destruction/${encodeURIComponent(jobId)}/approve`, { confirm }, { outlivesSession: true });
    } catch (error) {
      if (this.account) this.leaving = null;
      throw error;
    }
    onProgress?.(started.job);
    await this.signOut('destroyed');
    return this.followJob(started.job, started.watchToken, onProgress, (polled) => polled.state === 'done');
  }

  /** Refuses (or, for its requester, withdraws) the server's destruction waiting for approval. */
  async refuseServerDestruction(jobId) {
    return this.api.call('DELETE', `/api/v1/destruction/${encodeURIComponent(jobId)}`);
  }

  /**
   * The panic lock: forgets every key and message in memory and erases this browser's Circle
   * database at once, without a word to the server (the session stays valid there; the device
   * simply no longer holds anything). Unlocking again takes the password.
   */
  async panic() {
    if (!this.account) return;
    this.leaving = 'panic';
    const token = this.api.token;
    await this.signOut('panic');
    if (token) this.api.abandonSessionCalls();
  }

  /**
   * Sets a new password with the recovery key and signs in on this browser.
   * @param {{username: string, recoveryKey: string, newPassword: string, deviceLabel?: string,
   *   onStage?: (stage: string) => void}} params
   */
  async recover(params) {
    if (this.account) throw new RefusedError('already signed in: sign out first');
    const { account } = await session.recover(this.api, params);
    await this.adopt(account);
    await this.directory.syncPins().catch(() => {});
  }

  // MARK: Conversations

  /**
   * The conversations, newest activity first, each with its verified members and settings.
   * A conversation that fails verification is listed with `alarm` set and no members.
   */
  async conversations() {
    const account = this.requireSession();
    const { conversations: list } = await this.api.get('/api/v1/conversations');
    const views = await Promise.all(list.map((summary) => conversationView(this, account, summary)));
    this.presence.ensure(views.flatMap((view) => (view.members ?? []).map((member) => member.userId))).catch(() => {});
    return views.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  /**
   * A direct conversation with one contact: the one already held with them, else a new one.
   * @param {string} username
   * @returns {Promise<string>} the conversation id
   */
  async createDirect(username) {
    const account = this.requireSession();
    const entry = await this.directory.entry({ username });
    if (entry.userId === account.userId) throw new RefusedError('a direct conversation is with someone else');
    for (const convId of new Set([...this.records.keys(), ...this.chains.verified.keys()])) {
      const chain = await this.chains.local(convId).catch(() => null);
      if (chain?.kind === 'direct' && chain.isMember(account.userId) && chain.isMember(entry.userId)) return convId;
    }
    const convId = await this.chains.create('direct', [entry.username]);
    this.notify('conversations', {});
    return convId;
  }

  /**
   * A group with the given members; the title travels encrypted (a content type 5 message).
   * @param {string} title
   * @param {string[]} usernames
   * @returns {Promise<string>} the conversation id
   */
  async createGroup(title, usernames) {
    this.requireSession();
    const convId = await this.chains.create('group', usernames);
    const text = String(title ?? '').trim();
    if (text) {
      const record = await this.conversation(convId);
      record.title = { text, seq: 0 };
      await this.saveConversation(record);
      await this.messaging.send(convId, { contentType: CONTENT_TYPES.title, content: utf8(text), text });
    }
    this.notify('conversations', {});
    return convId;
  }

  /** Adds a member to a group (admins); their key is pinned or checked first. */
  async addMember(convId, username) {
    this.requireSession();
    await this.chains.add(convId, username);
    this.notify('conversations', {});
  }

  /** Removes a member from a group (admins); everyone's next message is on a new chain. */
  async removeMember(convId, userId) {
    this.requireSession();
    await this.chains.remove(convId, userId);
    this.notify('conversations', {});
  }

  /**
   * Changes the signed disappearing timer (seconds, 0 for off), read receipts or retention (days,
   * 0 keeps messages until deleted) (admins).
   */
  async setSettings(convId, { disappearSeconds, readReceipts, retentionDays } = {}) {
    this.requireSession();
    await this.chains.setSettings(convId, { disappearSeconds, readReceipts, retentionDays });
    if (retentionDays) await this.messaging.purgeExpired();
    this.notify('conversations', {});
  }

  /** This user's own receipts switch in one conversation: off neither sends nor sees receipts. */
  async setMyReceipts(convId, on) {
    this.requireSession();
    await this.api.put(`/api/v1/conversations/${convId}/preferences`, { readReceipts: Boolean(on) });
    const record = await this.conversation(convId);
    record.myReceipts = Boolean(on);
    await this.saveConversation(record);
    this.notify('conversations', {});
    this.notify('messages', { convId });
  }

  // MARK: Messages

  /**
   * The conversation's messages, decrypted and checked, oldest first (fetching what is new).
   * @param {string} convId
   */
  async messages(convId) {
    const account = this.requireSession();
    try {
      await this.messaging.sync(convId);
    } catch (error) {
      if (!(error instanceof ApiError && error.transient)) throw error;
    }
    await this.refreshReads(convId).catch(() => {});
    await this.messaging.purgeExpired();
    return messageViews(this, convId, account);
  }

  /** Brings the read markers up to date. */
  async refreshReads(convId) {
    const { reads } = await this.api.get(`/api/v1/conversations/${convId}/reads`);
    const record = await this.conversation(convId);
    for (const marker of reads) this.noteRead(record, marker);
    await this.saveConversation(record);
  }

  noteRead(record, { userId, seq }) {
    record.reads = record.reads ?? {};
    record.reads[userId] = Math.max(record.reads[userId] ?? 0, seq);
    if (userId === this.account?.userId) record.readSeq = Math.max(record.readSeq ?? 0, seq);
  }

  /** The conversation's setting changes (timer, read receipts) after its creation, oldest first. */
  settingsChanges(convId) {
    return settingsChanges(this, convId, this.requireSession());
  }

  /** The messages of a conversation as shown, from the cache only (no request). */
  messageViews(convId, account = this.account) {
    return messageViews(this, convId, account);
  }

  /**
   * Encrypts and sends a text message; resolves to its id. Offline, it waits in the outbox
   * (status 'sending') and goes out, byte for byte, once connected.
   * @param {string} convId
   * @param {string} text
   */
  async send(convId, text) {
    this.requireSession();
    const value = String(text);
    if (!value.trim()) throw new RefusedError('an empty message');
    const id = await this.messaging.send(convId, { contentType: CONTENT_TYPES.text, content: utf8(value), text: value });
    this.notify('conversations', {});
    return id;
  }

  /**
   * The cached original of an edit or delete: this user's own, a text message (or, to delete,
   * an attachment), confirmed.
   */
  async ownOriginal(convId, messageId, { attachments = false } = {}) {
    const account = this.requireSession();
    const original = (await this.messaging.messagesOf(convId)).get(messageId);
    const typeOk = original?.contentType === CONTENT_TYPES.text || (attachments && original?.contentType === CONTENT_TYPES.attachment);
    if (!original || original.kind !== 'message' || !typeOk) throw new RefusedError('no such message');
    if (original.sender !== account.userId) throw new RefusedError('only the author edits or deletes a message');
    if (original.pending) throw new RefusedError('the message is not sent yet');
    if (original.deleted) throw new RefusedError('the message was deleted');
    return original;
  }

  /** Replaces the text of one of this user's messages for everyone. */
  async edit(convId, messageId, text) {
    const original = await this.ownOriginal(convId, messageId);
    const value = String(text);
    await this.messaging.send(convId, {
      contentType: CONTENT_TYPES.edit, content: concat(original.headerHash, utf8(value)), kind: 'edit',
      refersTo: fromB64u(messageId), expiryCap: original.expiresAt, text: value,
    });
    this.notify('messages', { convId });
  }

  /**
   * Deletes one of this user's messages for everyone (its plaintext is erased here too); an
   * attachment's file is deleted from the vault as well.
   */
  async deleteMessage(convId, messageId) {
    const original = await this.ownOriginal(convId, messageId, { attachments: true });
    const attachment = original.contentType === CONTENT_TYPES.attachment ? parseAttachment(original.text) : null;
    const id = await this.messaging.send(convId, {
      contentType: CONTENT_TYPES.delete, content: original.headerHash, kind: 'delete', refersTo: fromB64u(messageId), text: '',
    });
    const record = (await this.messaging.messagesOf(convId)).get(id);
    if (record) await this.messaging.eraseDeleted(convId, [record]);
    this.notify('messages', { convId });
    if (attachment) {
      try {
        await this.vault.deleteFile(attachment.fileId);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
    }
  }

  /** Moves this user's read marker to the newest message handled here. */
  async markRead(convId) {
    this.requireSession();
    const record = await this.conversation(convId);
    if (record.lastSeq <= (record.readSeq ?? 0)) return;
    const seq = record.lastSeq;
    await this.api.post(`/api/v1/conversations/${convId}/read`, { seq });
    this.noteRead(record, { userId: this.account.userId, seq });
    await this.saveConversation(record);
    const summary = this.summaries.get(convId);
    if (summary) summary.unread = 0;
    this.notify('conversations', {});
  }

  // MARK: Vault (PROTOCOL 9, client/vault.js)

  /**
   * This account's vault files, decrypted, newest first: `[{id, name, type, size, storedSize,
   * sha256, level, conversationId, createdAt, expiresAt, links, error}]` (`size` is the content's,
   * `storedSize` the encrypted payload's; `links` a public file's share links).
   */
  vaultFiles() {
    return this.vault.list();
  }

  /** `{files, used, quota}`: the files as `vaultFiles` lists them, and the usage in bytes. */
  vaultListing() {
    return this.vault.listing();
  }

  /**
   * Changes one of this account's files: `{level?: 'private'|'public', expiresAt?}` (leaving
   * public ends its links; a conversation is `shareFileIn`). Resolves to the server's record.
   */
  async changeFile(fileId, change) {
    const view = await this.vault.changeFile(fileId, change);
    this.notify('vault', { type: 'changed', fileId });
    return view;
  }

  /**
   * Shares one of this account's files in a conversation: the file moves there (a public one
   * keeps its links) and an attachment message gives the members its key. Resolves to
   * `{messageId, file}`.
   * @param {string} fileId
   * @param {string} convId
   * @param {{onProgress?: Function, signal?: AbortSignal}} [options]
   */
  async shareFileIn(fileId, convId, options) {
    this.requireSession();
    const result = await this.vault.shareInConversation(fileId, convId, options);
    this.notify('vault', { type: 'changed', fileId });
    return result;
  }

  /** How much of the vault this account uses: `{used, quota}` in bytes. */
  async vaultUsage() {
    this.requireSession();
    const { used, quota } = await this.api.get('/api/v1/vault/files');
    return { used, quota };
  }

  /**
   * Encrypts and uploads a file, streaming it (tus, PATCHes of a few MiB with SHA-256 checksums),
   * then checks the server's hash of the stored file. `onProgress({stage, done, total, handle})`
   * with stage 'encrypting', 'uploading' or 'verifying'; aborting `signal` pauses (rejects with
   * UploadPausedError, whose `handle` goes to `resumeUpload`).
   * @param {Blob} file
   * @param {{level?: 'private'|'conversation', conversationId?: string, expiresAt?: number, name?: string,
   *   onProgress?: Function, signal?: AbortSignal, onHandle?: (handle: string) => void}} [options]
   */
  upload(file, options) {
    return this.vault.upload(file, options);
  }

  /**
   * Resumes an unfinished upload from the server's offset (HEAD). After a reload the file must be
   * given again (`{file}`); the final hash check refuses another file.
   * @param {string} handle
   * @param {{file?: Blob, onProgress?: Function, signal?: AbortSignal}} [options]
   */
  resumeUpload(handle, options) {
    return this.vault.resumeUpload(handle, options);
  }

  /** Unfinished uploads kept on this device: `[{handle, name, size, level, conversationId, createdAt, held, active}]`. */
  pendingUploads() {
    return this.vault.pendingUploads();
  }

  /** Abandons an unfinished upload (the server releases its bytes). */
  async cancelUpload(handle) {
    await this.vault.cancelUpload(handle);
  }

  /**
   * One of this account's files, decrypted and verified: a Blob of its content.
   * @param {string} fileId
   * @param {{onProgress?: Function, signal?: AbortSignal}} [options]
   */
  download(fileId, options) {
    return this.vault.download(fileId, options);
  }

  /** Deletes one of this account's files (its share links end with it). */
  async deleteFile(fileId) {
    await this.vault.deleteFile(fileId);
    this.notify('vault', { type: 'deleted', fileId });
  }

  /**
   * Creates a share link (the file becomes public); resolves to the full URL
   * `${location.origin}/s/${linkId}#${linkKey}`, whose key the server never sees.
   * @param {string} fileId
   * @param {{password?: string, expiresAt?: number, maxDownloads?: number}} [options]
   */
  async shareLink(fileId, options) {
    const url = await this.vault.shareLink(fileId, options);
    this.notify('vault', { type: 'changed', fileId });
    return url;
  }

  /** A file's share links with their uses. */
  links(fileId) {
    return this.vault.links(fileId);
  }

  /** Revokes a share link. */
  async revokeLink(linkId) {
    await this.vault.revokeLink(linkId);
    this.notify('vault', { type: 'changed', linkId });
  }

  /**
   * Sends a file to a conversation: uploaded as a conversation file, then an end-to-end message
   * of content type 4 carrying its id, key, name, type, size and SHA-256. Resolves to
   * `{messageId, file}`.
   * @param {string} convId
   * @param {Blob} file
   * @param {Function} [onProgress]
   * @param {{signal?: AbortSignal, onHandle?: (handle: string) => void}} [options]
   */
  attach(convId, file, onProgress, options = {}) {
    this.requireSession();
    return this.vault.attach(convId, file, { ...options, onProgress });
  }

  /** Resumes a paused attachment upload and sends its message. */
  resumeAttachment(convId, handle, options) {
    return this.vault.resumeAttachment(convId, handle, options);
  }

  /**
   * An attachment of a conversation, downloaded and checked against the SHA-256 in its message
   * before it is opened: `{blob, name, type, size}`.
   * @param {string} convId
   * @param {string} messageId
   * @param {{onProgress?: Function, signal?: AbortSignal}} [options]
   */
  downloadAttachment(convId, messageId, options) {
    return this.vault.downloadAttachment(convId, messageId, options);
  }

  // MARK: Trust

  /**
   * The safety number shared with a contact (PROTOCOL 5.2), from the pinned keys: 60 digits as
   * 12 groups of 5, and a payload for a QR code.
   * @param {string} userId
   * @returns {Promise<{digits: string, payload: string}>}
   */
  async safetyNumber(userId) {
    const account = this.requireSession();
    const theirs = await this.directory.pinnedIdentity(userId);
    const digits = safetyNumber(
      await safetyHalf(account.serverId, account.userId, account.identity.publicKey),
      await safetyHalf(account.serverId, userId, theirs),
    );
    const users = [account.userId, userId].sort().join(':');
    return { digits, payload: `circle-safety:1:${account.serverId}:${users}:${digits.replace(/ /g, '')}` };
  }

  /** Marks a contact verified after comparing safety numbers (refused while their key changed). */
  async verify(userId) {
    this.requireSession();
    await this.directory.verify(userId);
    this.notify('conversations', {});
  }

  /** Accepts a contact's changed identity key: sending to them resumes (unverified). */
  async acceptNewKey(userId) {
    this.requireSession();
    await this.directory.acceptNewKey(userId);
    this.notify('conversations', {});
  }

  // MARK: Events

  /** Handles one frame of the realtime socket (in order; the next waits for this one). */
  async handleFrame(frame) {
    const account = this.account;
    if (!account) return;
    if (frame.type === 'ready') {
      if (account.lastEventSeq === null && Number.isSafeInteger(frame.data?.lastSeq)) {
        account.lastEventSeq = frame.data.lastSeq;
        await this.saveAccount();
      }
      // A call this device was in (the page reloaded) is rejoined first: it cannot wait for catch-up.
      this.calls.load().catch(() => {});
      await this.catchUp().catch(() => {});
      this.presence.load().catch(() => {});
      this.activity.loadAlerts().catch(() => {});
      return;
    }
    if (frame.type === 'resync-required') {
      // Events were pruned: position at the head; `ready` follows and everything is re-listed.
      account.lastEventSeq = Number(frame.data?.lastSeq ?? account.lastEventSeq);
      await this.saveAccount();
      return;
    }
    if (frame.type === 'catch-up') {
      // Live delivery may have missed messages (the server's bus reconnected).
      await this.catchUp().catch(() => {});
      this.presence.load().catch(() => {});
      this.calls.load().catch(() => {});
      return;
    }
    if (frame.type === 'call.signal') {
      this.calls.signal(frame.data ?? {});
      return;
    }
    if (frame.type === 'presence') {
      this.presence.apply(frame.data);
      return;
    }
    if (frame.type === 'typing') {
      this.typing.receive(frame.data ?? {});
      return;
    }
    if (frame.type === 'activity.new') {
      await this.activity.received(frame.data).catch(() => {});
      return;
    }
    if (frame.type === 'message.new') {
      // Live only, without an event sequence number: the conversation's own sequence orders it.
      try {
        await this.handleEvent(frame.type, frame.data ?? {});
      } catch {
        // Read again from the conversation on the next catch-up or when it is opened.
      }
      return;
    }
    const seq = frame.seq;
    if (!Number.isSafeInteger(seq) || seq <= (account.lastEventSeq ?? Infinity)) return;
    try {
      await this.handleEvent(frame.type, frame.data ?? {});
    } catch {
      // A message that could not be handled now is listed again on the next catch-up.
    }
    if (this.account !== account) return;
    account.lastEventSeq = Math.max(account.lastEventSeq, seq);
    await this.saveAccount();
  }

  async handleEvent(type, data) {
    switch (type) {
      case 'message.new': {
        if (await this.messaging.receiveEvent(data)) {
          this.typing.drop(data.conversationId, data.sender);
          this.bumpSummary(data.conversationId, data);
          this.notify('messages', { convId: data.conversationId });
          this.notify('conversations', {});
        }
        break;
      }
      case 'call.updated':
        await this.calls.received(data);
        break;
      case 'envelope.new':
        // A live envelope is whole; one read back from the log only names it (fetched when a
        // message needs it).
        if (data.ciphertext) await this.messaging.accept(data.conversationId, data);
        break;
      case 'conversation.created':
      case 'conversation.op': {
        const convId = data.conversationId;
        const record = await this.conversation(convId);
        const head = Number(data.n ?? data.head ?? -1);
        if (head > (record.maxHead ?? -1)) {
          record.maxHead = head;
          await this.saveConversation(record);
        }
        try {
          await this.chains.refresh(convId);
        } catch (error) {
          if (error instanceof ApiError && error.status === 404) await this.forgetConversation(convId);
          else if (!(error instanceof ForkError)) throw error;
        }
        this.notify('conversations', {});
        break;
      }
      case 'conversation.read': {
        const record = await this.conversation(data.conversationId);
        this.noteRead(record, data);
        await this.saveConversation(record);
        if (data.userId === this.account?.userId) {
          const summary = this.summaries.get(data.conversationId);
          if (summary && data.seq >= summary.lastSeq) summary.unread = 0;
          this.notify('conversations', {});
        }
        this.notify('messages', { convId: data.conversationId });
        break;
      }
      case 'vault.file.created':
      case 'vault.file.changed':
      case 'vault.file.deleted':
        this.notify('vault', { type: type.slice('vault.file.'.length), fileId: data.fileId ?? data.id ?? null });
        break;
      case 'session.revoked':
        if (data.sessionId === this.account?.sessionId) await this.signOut('revoked');
        break;
      case 'conversation.destroyed':
        // Its admin destroyed it for everyone: its keys and messages go from this browser too.
        if (typeof data.conversationId === 'string') {
          await this.forgetConversation(data.conversationId);
          this.notify('conversations', {});
          this.notify('conversation-destroyed', { convId: data.conversationId });
        }
        break;
      case 'member.left':
        // A member destroyed their account: their entry is read again (it says `left`).
        if (typeof data.userId === 'string') {
          this.directory.cache.delete(data.userId);
          this.notify('conversations', {});
        }
        break;
      case 'security.alert':
        this.activity.alertEvent(data);
        break;
      default:
        break;
    }
  }

  /** Keeps the cached listing in step with a new message (for unread counts until re-listed). */
  bumpSummary(convId, message) {
    const summary = this.summaries.get(convId);
    if (!summary || message.seq <= summary.lastSeq) return;
    summary.lastSeq = message.seq;
    summary.updatedAt = Math.max(summary.updatedAt, message.createdAt ?? 0);
    if (message.sender !== this.account?.userId) summary.unread += 1;
  }

  /** The user is no longer a member: the conversation's local state goes. */
  async forgetConversation(convId) {
    this.records.delete(convId);
    this.chains.verified.delete(convId);
    this.messaging.cache.delete(convId);
    this.summaries.delete(convId);
    await this.store.deleteConversation(this.account.userId, convId);
  }

  /**
   * After (re)connecting: resends the outboxes and lists every conversation's messages after the
   * last one handled, so nothing sent while offline is lost or shown twice.
   */
  async catchUp() {
    const account = this.account;
    const { conversations: list } = await this.api.get('/api/v1/conversations');
    for (const summary of list) {
      if (this.account !== account) return;
      this.summaries.set(summary.id, summary);
      const record = await this.conversation(summary.id);
      try {
        if ((await this.messaging.outbox(summary.id)).length) await this.messaging.flushOutbox(summary.id);
        if (summary.lastSeq > record.lastSeq) {
          const { added } = await this.messaging.sync(summary.id);
          if (added) this.notify('messages', { convId: summary.id });
        }
      } catch {
        // Tried again on the next catch-up or when the conversation is opened.
      }
    }
    this.notify('conversations', {});
  }
}
