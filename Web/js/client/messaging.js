/**
 * Sending and receiving (PROTOCOL 6 and 7, CircleKit ChatClient+Messages): per-device sender
 * chains per (conversation, epoch, generation) announced in envelopes to every member (this
 * account's other devices included) after the checks of PROTOCOL 5.1; the next chain key and the
 * sealed bytes saved before the ciphertext leaves (a retry resends those bytes); receiving in the
 * PROTOCOL 6 order with a replay bitmap per chain; decrypted messages kept in the store until
 * deleted by their author or disappearing.
 * @module client/messaging
 */
import { ProtocolError, b64u, equal, fromB64u, fromUtf8, random, utf8 } from '../protocol/bytes.js';
import { fingerprint } from '../protocol/ed25519.js';
import { openEnvelope, sealEnvelope } from '../protocol/envelope.js';
import {
  CONTENT_TYPES, MAXIMUM_MESSAGES, ReplayWindow, SenderChain, chainStep, decodeHeader, headerHash, openMessage, pad, sealMessage,
} from '../protocol/message.js';
import { ApiError } from './api.js';
import { exclusive } from './locks.js';
import { ForkError, KeyChangedError, RefusedError } from './errors.js';
import { settingsAt } from './chains.js';

const PAGE_LIMIT = 200;

/** Which chain a message or envelope belongs to (CircleKit's ChainAddress.key). */
export function chainAddressKey(epoch, sender, deviceId, generation) {
  return `${b64u(epoch)}/${sender}/${b64u(deviceId)}/${generation}`;
}

/** The chain key `steps` steps after `chainKey`. */
async function advance(chainKey, steps) {
  let ck = chainKey;
  for (let i = 0; i < steps; i++) ck = (await chainStep(ck)).nextChainKey;
  return ck;
}

/** Sealing, sending, receiving and the decrypted message cache of the signed-in account. */
export class Messaging {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** Received chains in memory, by `${convId}|${addressKey}`. */
    this.received = new Map();
    /** Decrypted messages by conversation, then by message id. @type {Map<string, Map<string, object>>} */
    this.cache = new Map();
    /** Headers (base64url) of outbox entries being posted right now. */
    this.inFlight = new Set();
    this.expiryTimer = null;
    /** Outbox retries waiting, by conversation. */
    this.flushTimers = new Map();
    this.flushAttempts = new Map();
  }

  get account() {
    return this.client.account;
  }

  /** Forgets everything held in memory (after sign-out). */
  clear() {
    this.received.clear();
    this.cache.clear();
    this.inFlight.clear();
    clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    for (const timer of this.flushTimers.values()) clearTimeout(timer);
    this.flushTimers.clear();
    this.flushAttempts.clear();
  }

  sealLock(convId) {
    return `circle-seal:${this.account.userId}:${convId}`;
  }

  // MARK: The decrypted cache

  /** The cached messages of a conversation (loaded from the store once). @returns {Promise<Map<string, object>>} */
  async messagesOf(convId) {
    let map = this.cache.get(convId);
    if (!map) {
      const stored = await this.client.store.getMessages(this.account.userId, convId);
      map = this.cache.get(convId) ?? new Map(stored.map((message) => [message.id, message]));
      this.cache.set(convId, map);
    }
    return map;
  }

  /**
   * Removes the messages whose local expiry passed (PROTOCOL 6: at min(expiresAt, receipt +
   * timer)) and those older than the conversation's retention (PROTOCOL 5: sent or received
   * longer ago than its days, whichever was earlier), with their plaintext, and schedules the
   * next removal.
   * @returns {Promise<string[]>} the conversations that lost messages
   */
  async purgeExpired() {
    const now = Date.now();
    const touched = [];
    let next = Infinity;
    for (const [convId, map] of this.cache) {
      const gone = [];
      const chain = await this.client.chains.local(convId).catch(() => null);
      const keptFor = (chain?.settings?.retentionDays || 0) * 86_400_000;
      for (const message of map.values()) {
        const since = Math.min(message.sentAt || Infinity, message.receivedAt || Infinity);
        const retainedUntil = keptFor > 0 && Number.isFinite(since) ? since + keptFor : 0;
        const until = [message.localExpiresAt, retainedUntil].filter((at) => at > 0);
        const at = until.length ? Math.min(...until) : 0;
        if (at && at <= now) gone.push(message.id);
        else if (at) next = Math.min(next, at);
      }
      // An edit or delete never outlives the message it names.
      const expired = new Set(gone);
      for (const message of map.values()) {
        if (message.refersTo && expired.has(message.refersTo) && !expired.has(message.id)) gone.push(message.id);
      }
      if (!gone.length) continue;
      for (const id of gone) map.delete(id);
      await this.client.store.deleteMessages(this.account.userId, convId, gone);
      touched.push(convId);
    }
    this.scheduleExpiry(next);
    return touched;
  }

  scheduleExpiry(at) {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (!Number.isFinite(at)) return;
    // Timers longer than ~24.8 days overflow; wake up daily instead.
    const delay = Math.min(Math.max(0, at - Date.now()) + 50, 86_400_000);
    this.expiryTimer = setTimeout(async () => {
      this.expiryTimer = null;
      if (!this.account) return;
      const touched = await this.purgeExpired().catch(() => []);
      for (const convId of touched) this.client.notify('messages', { convId });
      if (touched.length) this.client.notify('conversations', {});
    }, delay);
  }

  /** Keeps the expiry timer in step after messages were added. */
  noteExpiry(message) {
    if (message.localExpiresAt) this.purgeExpired().catch(() => {});
  }

  // MARK: Sending

  /**
   * Encrypts and sends one item; resolves to the message id. A message that cannot reach the
   * server stays in the outbox (shown as 'sending') and is resent, byte for byte, on reconnect.
   * @param {string} convId
   * @param {{contentType: number, content: Uint8Array, kind?: 'message'|'edit'|'delete', refersTo?: Uint8Array,
   *   expiryCap?: number, text?: string}} item
   * @returns {Promise<string>}
   */
  async send(convId, { contentType, content, kind = 'message', refersTo = new Uint8Array(0), expiryCap = 0, text = '' }) {
    const padded = pad(contentType, content);
    await this.checkNotBlocked(convId);
    await this.flushOutbox(convId);
    for (let attempt = 0; attempt < 4; attempt++) {
      const stored = await exclusive(this.client.mutex, this.sealLock(convId),
        () => this.sealNext(convId, padded, { kind, refersTo, expiryCap }));
      // sealNext marked it in flight; the finally below releases it whatever happens.
      const key = b64u(stored.header);
      try {
        const local = {
          userId: this.account.userId, convId, id: stored.id, seq: null, sender: this.account.userId, kind, contentType, text,
          sentAt: stored.sentAt, expiresAt: stored.expiresAt, localExpiresAt: stored.expiresAt || 0,
          headerHash: await headerHash(stored.header), refersTo: refersTo.length ? b64u(refersTo) : null,
          refersToHash: kind === 'message' ? null : content.slice(0, 32), pending: true,
        };
        await this.remember(convId, [local]);
        this.client.notify('messages', { convId });
        const sent = await this.post(convId, stored);
        await this.dropFromOutbox(convId, stored.id);
        await this.confirm(convId, stored.id, sent.seq);
        return stored.id;
      } catch (error) {
        if (error?.slug === 'stale-epoch') {
          // The membership changed: this message was not stored; catch up and use a new chain.
          await this.dropFromOutbox(convId, stored.id, { staleEpoch: stored.epoch });
          await this.forget(convId, [stored.id]);
          this.client.chains.verified.delete(convId);
          continue;
        }
        if (error?.transient) {
          this.scheduleFlush(convId);
          return stored.id;
        }
        await this.dropFromOutbox(convId, stored.id);
        await this.forget(convId, [stored.id]);
        this.client.notify('messages', { convId });
        if (error?.slug === 'message-id-conflict') throw this.client.chains.fork(convId, 'the server holds a different message under one of this device\'s message ids');
        throw error;
      } finally {
        this.inFlight.delete(key);
      }
    }
    throw new RefusedError('the conversation kept changing; try again');
  }

  /**
   * Refuses to send while a member's key changed and the user has not decided (PROTOCOL 5.1):
   * the directory (answers up to a minute old) is compared with each pin, even while this
   * device's chain needs no new envelope.
   */
  async checkNotBlocked(convId) {
    const chain = await this.client.chains.local(convId);
    if (!chain) return;
    for (const userId of chain.members.keys()) {
      if (userId === this.account.userId) continue;
      try {
        await this.client.directory.entry({ userId });
      } catch (error) {
        if (!(error instanceof ApiError && error.transient)) throw error;
      }
      if (this.client.directory.blocked(userId)) {
        const error = new KeyChangedError({ userId, username: this.account.pins[userId]?.username, convId });
        this.client.raiseAlarm({ kind: 'key-changed', convId, userId, message: error.message });
        throw error;
      }
    }
  }

  /**
   * Seals the next message on this device's chain (under the sealing lock, reading the chain
   * state afresh from the store) and saves the advanced chain key and the sealed bytes before
   * anything is sent.
   */
  async sealNext(convId, padded, { kind, refersTo, expiryCap }) {
    const account = this.account;
    const chain = await this.client.chains.forSending(convId);
    if (!chain.isMember(account.userId)) throw new RefusedError('you are not a member of this conversation');
    const sending = await this.client.store.getSending(account.userId, convId);
    let own = sending.chain;
    if (!own || !equal(own.epoch, chain.epoch) || own.index >= MAXIMUM_MESSAGES || !own.announced) {
      own = await this.startChain(convId, chain, sending);
    }
    const sender = new SenderChain(own.chainKey, own.index);
    const step = await sender.next();
    const now = Date.now();
    const timer = chain.settings.disappearSeconds;
    let expiresAt = timer > 0 ? now + timer * 1000 : 0;
    if (expiryCap > 0) expiresAt = expiresAt === 0 ? expiryCap : Math.min(expiresAt, expiryCap);
    const messageId = random(16);
    const sealed = await sealMessage({
      convId: chain.convId, epoch: chain.epoch, sender: account.userId, deviceId: account.deviceId, generation: own.generation,
      chainIndex: step.index, messageId, sentAt: now, expiresAt, kind, refersTo,
    }, padded, step, account.identity.privateKey);
    sending.chain = { ...own, chainKey: sender.chainKey, index: sender.index };
    const stored = { id: b64u(messageId), epoch: chain.epoch, sentAt: now, expiresAt, ...sealed };
    sending.outbox = [...(sending.outbox ?? []), stored];
    await this.client.store.putSending(sending);
    // In flight from here on (before any other task runs): a concurrent send's flushOutbox must
    // not take it for a lost one and post it a second time.
    this.inFlight.add(b64u(stored.header));
    return stored;
  }

  /**
   * Starts this device's chain for the current epoch and announces it: an envelope to every
   * member at the head, each after the checks of PROTOCOL 5.1.
   */
  async startChain(convId, chain, sending) {
    const account = this.account;
    let generation = sending.chain && equal(sending.chain.epoch, chain.epoch) ? sending.chain.generation + 1 : 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const chainKey = random(32);
      const own = { epoch: chain.epoch, generation, chainKey, index: 0, announced: false };
      sending.chain = own;
      await this.client.store.putSending(sending);
      const envelopes = [];
      for (const [member, recorded] of [...chain.members].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        const keys = member === account.userId
          ? { identityKey: account.identity.publicKey, x25519Key: account.x25519.publicKey }
          : await this.client.directory.sealingKeys(member, convId);
        if (!equal(await fingerprint(keys.identityKey), recorded.fingerprint)) {
          const name = await this.client.directory.username(member);
          throw this.client.chains.fork(convId, `the chain records another identity key for ${name} than the one pinned`);
        }
        const address = { convId: chain.convId, epoch: chain.epoch, sender: account.userId, deviceId: account.deviceId, generation, recipient: member };
        const sealed = await sealEnvelope(address, keys.x25519Key, { chainKey, startIndex: 0 }, account.identity.privateKey);
        envelopes.push({
          epoch: b64u(chain.epoch), deviceId: b64u(account.deviceId), generation, recipient: member,
          enc: b64u(sealed.enc), ciphertext: b64u(sealed.ciphertext), signature: b64u(sealed.signature),
        });
      }
      try {
        await this.client.api.post(`/api/v1/conversations/${convId}/envelopes`, { envelopes });
      } catch (error) {
        if (error?.slug === 'envelope-conflict') {
          generation += 1;
          continue;
        }
        throw error;
      }
      own.announced = true;
      sending.chain = own;
      await this.client.store.putSending(sending);
      // This device reads its own messages on the key it just made (its envelope is for other devices).
      await this.keepReceived({
        userId: account.userId, convId, chain: chainAddressKey(chain.epoch, account.userId, account.deviceId, generation),
        startKey: chainKey, startIndex: 0, seen: new ReplayWindow().bits, cursorKey: null, cursorIndex: null,
      }, { save: true });
      return own;
    }
    throw new RefusedError('could not start a sender chain');
  }

  post(convId, stored) {
    return this.client.api.post(`/api/v1/conversations/${convId}/messages`, {
      header: b64u(stored.header), ciphertext: b64u(stored.ciphertext), signature: b64u(stored.signature),
    });
  }

  /** Removes an outbox entry (under the sealing lock); after a stale epoch, ends that epoch's chain. */
  dropFromOutbox(convId, id, { staleEpoch = null } = {}) {
    return exclusive(this.client.mutex, this.sealLock(convId), async () => {
      const sending = await this.client.store.getSending(this.account.userId, convId);
      sending.outbox = (sending.outbox ?? []).filter((entry) => entry.id !== id);
      if (staleEpoch && sending.chain && equal(sending.chain.epoch, staleEpoch)) sending.chain = { ...sending.chain, announced: false };
      await this.client.store.putSending(sending);
    });
  }

  /**
   * Resends messages saved but never confirmed, byte for byte. Ones that can no longer be
   * accepted (another epoch, no longer a member) are dropped; a text message among them is sent
   * again on the new chain.
   * @param {string} convId
   * @returns {Promise<boolean>} whether the outbox is now empty
   */
  async flushOutbox(convId) {
    const sending = await this.client.store.getSending(this.account.userId, convId);
    const resend = [];
    for (const entry of sending.outbox ?? []) {
      const key = b64u(entry.header);
      if (this.inFlight.has(key)) continue;
      this.inFlight.add(key);
      try {
        const sent = await this.post(convId, entry);
        await this.dropFromOutbox(convId, entry.id);
        await this.confirm(convId, entry.id, sent.seq);
      } catch (error) {
        if (error?.transient) {
          this.scheduleFlush(convId);
          return false;
        }
        await this.dropFromOutbox(convId, entry.id, { staleEpoch: error?.slug === 'stale-epoch' ? entry.epoch : null });
        const local = (await this.messagesOf(convId)).get(entry.id);
        await this.forget(convId, [entry.id]);
        if (error?.slug === 'message-id-conflict') {
          throw this.client.chains.fork(convId, 'the server holds a different message under one of this device\'s message ids');
        }
        if (error?.slug === 'stale-epoch' && local?.kind === 'message' && local.contentType === CONTENT_TYPES.text) resend.push(local.text);
        this.client.chains.verified.delete(convId);
      } finally {
        this.inFlight.delete(key);
      }
    }
    for (const text of resend) await this.send(convId, { contentType: CONTENT_TYPES.text, content: utf8(text), text });
    return true;
  }

  /**
   * Tries the outbox again later (backing off from 2 s to a minute) while the server cannot be
   * reached; a reconnect flushes it sooner.
   */
  scheduleFlush(convId) {
    if (this.flushTimers.has(convId)) return;
    const delay = Math.min(60_000, 2_000 * 2 ** (this.flushAttempts.get(convId) ?? 0));
    this.flushAttempts.set(convId, (this.flushAttempts.get(convId) ?? 0) + 1);
    this.flushTimers.set(convId, setTimeout(async () => {
      this.flushTimers.delete(convId);
      if (!this.account) return;
      try {
        if (await this.flushOutbox(convId)) this.flushAttempts.delete(convId);
      } catch {
        // Reported by the next send or catch-up.
      }
    }, delay));
  }

  /** Marks a sent message as stored by the server (its sequence number). */
  async confirm(convId, id, seq) {
    const map = await this.messagesOf(convId);
    const message = map.get(id);
    if (message) {
      message.seq = seq;
      message.pending = false;
      await this.client.store.putMessages([message]);
    }
    this.client.notify('messages', { convId });
  }

  /** Adds messages to the cache (memory and store). */
  async remember(convId, messages) {
    const map = await this.messagesOf(convId);
    for (const message of messages) map.set(message.id, message);
    await this.client.store.putMessages(messages);
    for (const message of messages) this.noteExpiry(message);
  }

  /** Removes messages from the cache (memory and store). */
  async forget(convId, ids) {
    const map = await this.messagesOf(convId);
    for (const id of ids) map.delete(id);
    await this.client.store.deleteMessages(this.account.userId, convId, ids);
  }

  /** Entries of the outbox (for status display). */
  async outbox(convId) {
    return (await this.client.store.getSending(this.account.userId, convId)).outbox ?? [];
  }

  // MARK: Receiving

  /**
   * Messages after the last one this device handled, checked and decrypted in order.
   * @param {string} convId
   * @returns {Promise<{added: number, refused: {seq: number, error: string}[]}>}
   */
  sync(convId) {
    return this.client.mutex.run(`recv:${convId}`, () => this.syncNow(convId));
  }

  async syncNow(convId) {
    const refused = [];
    let added = 0;
    for (;;) {
      const record = await this.client.conversation(convId);
      const page = await this.client.api.get(`/api/v1/conversations/${convId}/messages?after=${record.lastSeq}&limit=${PAGE_LIMIT}`);
      const batch = { messages: [], chains: new Map() };
      try {
        for (const listed of page.messages) {
          if (listed.seq <= record.lastSeq) continue;
          const outcome = await this.takeOrRefuse(convId, record, listed, batch);
          if (outcome.refused) refused.push({ seq: listed.seq, error: outcome.refused });
          added += outcome.added;
          record.lastSeq = Math.max(record.lastSeq, listed.seq);
        }
      } finally {
        // What was taken before a failure is kept; the failed message is tried again later.
        await this.commit(convId, record, batch);
      }
      if (!page.more || page.messages.length === 0) break;
    }
    return { added, refused };
  }

  /**
   * Takes one message; a message failing a check is refused (reported, never shown), while a
   * fork, a failure to reach the server or a lost membership is thrown without moving past it.
   */
  async takeOrRefuse(convId, record, listed, batch) {
    try {
      return { added: await this.take(convId, record, listed, batch), refused: null };
    } catch (error) {
      if (error instanceof ForkError || error instanceof ApiError) throw error;
      return { added: 0, refused: String(error?.message ?? error) };
    }
  }

  /**
   * One message from a `message.new` event: taken when it is the next one, else the gap is
   * filled from the listing first.
   * @returns {Promise<boolean>} whether anything changed
   */
  receiveEvent(listed) {
    const convId = listed.conversationId;
    return this.client.mutex.run(`recv:${convId}`, async () => {
      const record = await this.client.conversation(convId);
      if (listed.seq <= record.lastSeq) return false;
      if (listed.seq > record.lastSeq + 1) {
        await this.syncNow(convId);
        return true;
      }
      const batch = { messages: [], chains: new Map() };
      await this.takeOrRefuse(convId, record, listed, batch);
      record.lastSeq = Math.max(record.lastSeq, listed.seq);
      await this.commit(convId, record, batch);
      return true;
    });
  }

  /** Saves what one page or event changed: the messages, the chains' bitmaps, the conversation. */
  async commit(convId, record, batch) {
    const map = await this.messagesOf(convId);
    for (const message of batch.messages) map.set(message.id, message);
    await this.client.store.saveReceived(record, batch.messages, [...batch.chains.values()]);
    if (batch.messages.some((message) => message.localExpiresAt)) await this.purgeExpired();
    if (batch.deleted?.length) await this.eraseDeleted(convId, batch.deleted);
  }

  /** Opens one listed message and applies it to the cache batch; returns 1 when one was added. */
  async take(convId, record, listed, batch) {
    if (listed.deleted) return this.takeDeleted(convId, listed, batch);
    const opened = await this.open(convId, listed, batch);
    if (!opened) return 0;
    const map = await this.messagesOf(convId);
    const existing = map.get(opened.id) ?? batch.messages.find((message) => message.id === opened.id);
    const now = Date.now();
    const timer = opened.timer * 1000;
    const sentAtMine = opened.sender === this.account.userId ? Math.min(opened.sentAt, now) : now;
    const byTimer = timer > 0 ? (existing?.receivedAt ?? sentAtMine) + timer : 0;
    const original = opened.refersTo ? (map.get(opened.refersTo) ?? batch.messages.find((message) => message.id === opened.refersTo)) : null;
    const localExpiresAt = [opened.expiresAt, byTimer, original?.localExpiresAt ?? 0]
      .filter((value) => value > 0).reduce((a, b) => Math.min(a, b), Infinity);
    const message = {
      userId: this.account.userId, convId, id: opened.id, seq: listed.seq, sender: opened.sender, kind: opened.kind,
      contentType: opened.contentType, text: opened.text, sentAt: opened.sentAt, expiresAt: opened.expiresAt,
      localExpiresAt: Number.isFinite(localExpiresAt) ? localExpiresAt : 0, receivedAt: existing?.receivedAt ?? now,
      headerHash: opened.headerHash, refersTo: opened.refersTo, refersToHash: opened.refersToHash, pending: false,
      chain: opened.chain, chainIndex: opened.chainIndex,
    };
    if (opened.kind === 'message' && opened.contentType === CONTENT_TYPES.title) {
      const chain = await this.client.chains.local(convId);
      if (chain?.role(opened.sender) === 'admin' && listed.seq > (record.title?.seq ?? 0)) record.title = { text: opened.text, seq: listed.seq };
    }
    if (opened.kind === 'delete') {
      batch.deleted = [...(batch.deleted ?? []), message];
    }
    batch.messages.push(message);
    return 1;
  }

  /**
   * A message the server lists as deleted (its ciphertext gone, its header kept) becomes a
   * tombstone: no text, and shown as "deleted" only once the author's signed delete naming this
   * header's hash is here too (views.js), so the server cannot make up deleted messages. An
   * edit deleted with its original is kept only as its place in the sender's chain (never
   * shown), so the chain shows no gap there.
   */
  async takeDeleted(convId, listed, batch) {
    let bytes;
    let header;
    try {
      bytes = fromB64u(listed.header);
      header = decodeHeader(bytes);
    } catch {
      return 0;
    }
    if (b64u(header.convId) !== convId || header.sender !== listed.sender || b64u(header.messageId) !== listed.id) return 0;
    batch.messages.push({
      userId: this.account.userId, convId, id: listed.id, seq: listed.seq, sender: header.sender, kind: header.kind,
      contentType: CONTENT_TYPES.text, text: '', sentAt: header.sentAt, expiresAt: header.expiresAt,
      localExpiresAt: header.expiresAt || 0, receivedAt: Date.now(), headerHash: await headerHash(bytes),
      refersTo: null, refersToHash: null, pending: false, deleted: true, tombstone: true,
      chain: chainAddressKey(header.epoch, header.sender, header.deviceId, header.generation), chainIndex: header.chainIndex,
    });
    return 1;
  }

  /** A delete by the author erases the original's plaintext and its edits'. */
  async eraseDeleted(convId, deletes) {
    const map = await this.messagesOf(convId);
    const changed = [];
    for (const del of deletes) {
      const original = map.get(del.refersTo);
      if (!original || !applies(del, original)) continue;
      original.text = '';
      original.deleted = true;
      changed.push(original);
      for (const other of map.values()) {
        if (other.kind === 'edit' && other.refersTo === original.id && other.sender === original.sender) {
          other.text = '';
          changed.push(other);
        }
      }
    }
    if (changed.length) await this.client.store.putMessages(changed);
  }

  /**
   * The receiver's checks in PROTOCOL 6 order: parse the header; the epoch is on the verified
   * chain and the sender a member there; the signature under the sender's pinned key; the index
   * below 1,000 and not below the chain's start; not seen before; decrypt. Only then is the index
   * recorded. Deleted messages give null.
   */
  async open(convId, listed, batch) {
    if (listed.deleted) return null;
    const sealed = { header: fromB64u(listed.header), ciphertext: fromB64u(listed.ciphertext), signature: fromB64u(listed.signature) };
    const header = decodeHeader(sealed.header);
    if (b64u(header.convId) !== convId || header.sender !== listed.sender || b64u(header.messageId) !== listed.id) {
      throw new ProtocolError('refused', "the message's header does not match where the server filed it");
    }
    const chains = this.client.chains;
    let chain = (await chains.local(convId)) ?? (await chains.refresh(convId));
    if (!chain.containsEpoch(header.epoch)) {
      chain = await chains.refresh(convId);
      if (!chain.containsEpoch(header.epoch)) {
        throw chains.fork(convId, "a message names an epoch that this device's verified chain does not reach (a withheld or forked op)");
      }
    }
    if (!chain.memberAt(header.sender, header.epoch)) throw new ProtocolError('refused', "the sender was not a member at the message's epoch");
    const senderIdentity = await this.client.directory.recordedIdentity(header.sender, chain.fingerprintAt(header.sender, header.epoch), convId);
    const key = chainAddressKey(header.epoch, header.sender, header.deviceId, header.generation);
    let state = batch.chains.get(key) ?? (await this.receivedChain(convId, key));
    if (!state) {
      await this.fetchEnvelopes(convId, header.epoch, header.sender);
      state = await this.receivedChain(convId, key);
    }
    if (!state) throw new ProtocolError('refused', "no key for this message's chain has arrived");
    const replay = new ReplayWindow(state.seen);
    let base = { chainKey: state.startKey, startIndex: state.startIndex };
    if (state.cursorKey && state.cursorIndex !== null && state.cursorIndex <= header.chainIndex && header.chainIndex >= state.startIndex) {
      base = { chainKey: state.cursorKey, startIndex: state.cursorIndex };
    }
    const opened = await openMessage(sealed, senderIdentity, base, replay);
    let text = opened.content;
    let refersToHash = null;
    if (header.kind !== 'message') {
      const expected = header.kind === 'edit' ? CONTENT_TYPES.edit : CONTENT_TYPES.delete;
      if (opened.content.length < 32 || opened.contentType !== expected) {
        throw new ProtocolError('malformed', "an edit or delete must name the original's header hash");
      }
      refersToHash = opened.content.slice(0, 32);
      text = opened.content.slice(32);
    }
    const decoded = fromUtf8(text);
    // Only now is the index recorded; the cursor stays a little behind the newest index, for
    // messages that arrive out of order.
    replay.add(header.chainIndex);
    const next = { ...state, seen: replay.bits };
    const trailing = header.chainIndex >= 8 ? header.chainIndex - 8 : 0;
    if (trailing > (state.cursorIndex ?? state.startIndex) && trailing >= base.startIndex) {
      next.cursorKey = await advance(base.chainKey, trailing - base.startIndex);
      next.cursorIndex = trailing;
    }
    this.received.set(`${convId}|${key}`, next);
    batch.chains.set(key, next);
    return {
      id: listed.id, sender: header.sender, kind: header.kind, contentType: opened.contentType, text: decoded,
      sentAt: header.sentAt, expiresAt: header.expiresAt, headerHash: await headerHash(sealed.header),
      refersTo: header.refersTo.length ? b64u(header.refersTo) : null, refersToHash,
      timer: settingsAt(chain, header.epoch).disappearSeconds, chain: key, chainIndex: header.chainIndex,
    };
  }

  /** A received chain from memory or the store. */
  async receivedChain(convId, key) {
    const cacheKey = `${convId}|${key}`;
    if (this.received.has(cacheKey)) return this.received.get(cacheKey);
    const stored = await this.client.store.getReceived(this.account.userId, convId, key);
    if (stored) this.received.set(cacheKey, stored);
    return stored ?? null;
  }

  async keepReceived(record, { save }) {
    this.received.set(`${record.convId}|${record.chain}`, record);
    if (save) await this.client.store.putReceived(record);
  }

  /** Opens the envelopes addressed to this user for one sender and epoch, page after page. */
  async fetchEnvelopes(convId, epoch, sender) {
    let after = '';
    for (;;) {
      const list = await this.client.api.get(
        `/api/v1/conversations/${convId}/envelopes?epoch=${b64u(epoch)}&sender=${encodeURIComponent(sender)}${after}`);
      for (const wire of list.envelopes ?? []) {
        try {
          await this.accept(convId, wire);
        } catch {
          // One bad envelope does not stop the others; its messages are refused.
        }
      }
      if (!list.more || !list.next) return;
      after = `&after=${encodeURIComponent(list.next)}`;
    }
  }

  /**
   * Checks and opens one envelope (signed by its sender under the pinned key, addressed to this
   * user, in this conversation) and keeps its chain.
   */
  async accept(convId, wire) {
    const account = this.account;
    if (!wire?.sender || wire.recipient !== account.userId) return;
    if (wire.conversationId && wire.conversationId !== convId) return;
    const epoch = fromB64u(wire.epoch);
    const deviceId = fromB64u(wire.deviceId);
    const key = chainAddressKey(epoch, wire.sender, deviceId, wire.generation);
    if (await this.receivedChain(convId, key)) return;
    const address = { convId: fromB64u(convId), epoch, sender: wire.sender, deviceId, generation: wire.generation, recipient: account.userId };
    const envelope = { enc: fromB64u(wire.enc), ciphertext: fromB64u(wire.ciphertext), signature: fromB64u(wire.signature) };
    // Under the key the chain recorded for the sender at the envelope's epoch, never just the
    // directory's (a first contact would otherwise pin whatever the server hands out).
    const chains = this.client.chains;
    let chain = (await chains.local(convId)) ?? (await chains.refresh(convId));
    if (!chain.containsEpoch(epoch)) chain = await chains.refresh(convId);
    const recorded = chain.fingerprintAt(wire.sender, epoch);
    if (!recorded) throw new ProtocolError('refused', "the envelope's sender was not a member at its epoch");
    const senderIdentity = await this.client.directory.recordedIdentity(wire.sender, recorded, convId);
    const opened = await openEnvelope(address, envelope, senderIdentity, account.x25519);
    await this.keepReceived({
      userId: account.userId, convId, chain: key, startKey: opened.chainKey, startIndex: opened.startIndex,
      seen: new ReplayWindow().bits, cursorKey: null, cursorIndex: null,
    }, { save: true });
  }
}

/** Whether an edit or delete may apply to `original`: same author, named by id and header hash. */
export function applies(change, original) {
  return change.kind !== 'message' && original.kind === 'message' && original.sender === change.sender
    && change.refersTo === original.id && change.refersToHash && original.headerHash && equal(change.refersToHash, original.headerHash);
}
