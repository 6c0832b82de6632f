/**
 * The directory and the pins (PROTOCOL 5.1, CircleKit ChatClient+Directory and PinsBlob):
 * directory entries whose keys pass every check, trust on first use, a changed key held as a
 * pending change that blocks sending until the user accepts it, and the pins synced through the
 * server as an end-to-end encrypted, versioned blob merged like CircleKit merges it.
 * @module client/directory
 */
import { ProtocolError, b64u, equal, fromB64u, fromUtf8, utf8 } from '../protocol/bytes.js';
import * as ed25519 from '../protocol/ed25519.js';
import * as x25519 from '../protocol/x25519.js';
import { verifyKxCert } from '../protocol/account.js';
import { openPins, sealPins } from '../protocol/pins.js';
import { KeyChangedError } from './errors.js';

/** How long a directory answer is reused before it is asked again. */
const DIRECTORY_TTL_MS = 60_000;

/**
 * A checked directory entry.
 * @typedef {{userId: string, username: string, displayName: string, identityKey: Uint8Array, x25519Key: Uint8Array, left: boolean}} Entry
 */

/**
 * A pin: the identity key first seen (or accepted) for a contact.
 * @typedef {{username: string, identityKey: Uint8Array, verified: boolean, pendingChange: Uint8Array|null}} Pin
 */

/** Directory look-ups and pins of the signed-in account (`client.account.pins`). */
export class Directory {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** @type {Map<string, {entry: Entry, at: number}>} */
    this.cache = new Map();
    /** A pins sync waiting for its turn, or null. */
    this.queuedSync = null;
  }

  get account() {
    return this.client.account;
  }

  /**
   * A directory entry whose keys are canonical, not of small order, and whose kx-cert verifies.
   * A key other than the pinned one is recorded as a pending change (and raises the alarm).
   * @param {{userId?: string, username?: string}} who
   * @param {{fresh?: boolean}} [options] `fresh`: ask the server even if a recent answer is cached
   * @returns {Promise<Entry>}
   */
  async entry({ userId, username }, { fresh = false } = {}) {
    if (userId && !fresh) {
      const cached = this.cache.get(userId);
      if (cached && Date.now() - cached.at < DIRECTORY_TTL_MS) return cached.entry;
    }
    const path = userId
      ? `/api/v1/directory/users/${encodeURIComponent(userId)}`
      : `/api/v1/directory/usernames/${encodeURIComponent(String(username).trim().toLowerCase())}`;
    const raw = await this.client.api.get(path);
    if (userId && raw.userId !== userId) throw new ProtocolError('refused', 'the directory answered for another user');
    const identityKey = fromB64u(raw.identityKey);
    const x25519Key = fromB64u(raw.x25519Key);
    ed25519.checkIdentityKey(identityKey);
    x25519.checkPublicKey(x25519Key);
    if (!(await verifyKxCert(identityKey, raw.userId, x25519Key, fromB64u(raw.kxCert)))) {
      throw new ProtocolError('bad-signature', `bad signature: the kx-cert of ${raw.username}`);
    }
    const entry = {
      userId: raw.userId, username: raw.username, displayName: raw.displayName || raw.username, identityKey, x25519Key, left: raw.left === true,
    };
    this.cache.set(entry.userId, { entry, at: Date.now() });
    await this.notice(entry);
    return entry;
  }

  /** Compares a directory answer with the pin: a different key becomes a pending change. */
  async notice(entry) {
    const pin = this.account?.pins[entry.userId];
    if (!pin) return;
    let changed = false;
    if (pin.username !== entry.username) {
      pin.username = entry.username;
      changed = true;
    }
    if (!equal(pin.identityKey, entry.identityKey) && !(pin.pendingChange && equal(pin.pendingChange, entry.identityKey))) {
      pin.pendingChange = entry.identityKey;
      changed = true;
      this.client.raiseAlarm({ kind: 'key-changed', userId: entry.userId, message: new KeyChangedError(entry).message });
    }
    if (changed) await this.client.saveAccount();
  }

  /** A display name for a user id, from the cache, the pins or the directory. */
  async displayName(userId) {
    if (userId === this.account?.userId) return this.account.displayName;
    try {
      return (await this.entry({ userId })).displayName;
    } catch {
      return this.account?.pins[userId]?.username ?? userId;
    }
  }

  /** Whether the member destroyed their account ("left the Circle"). */
  async hasLeft(userId) {
    if (userId === this.account?.userId) return false;
    try {
      return (await this.entry({ userId })).left === true;
    } catch {
      return false;
    }
  }

  /** A username for a user id (pins first, then the directory). */
  async username(userId) {
    if (userId === this.account?.userId) return this.account.username;
    const pin = this.account?.pins[userId];
    if (pin) return pin.username;
    try {
      return (await this.entry({ userId })).username;
    } catch {
      return userId;
    }
  }

  /**
   * The identity key to trust for a user: this account's own, the pin, or (first contact) the
   * directory's, pinned now.
   * @param {string} userId
   * @returns {Promise<Uint8Array>}
   */
  async pinnedIdentity(userId) {
    const account = this.account;
    if (userId === account.userId) return account.identity.publicKey;
    const pin = account.pins[userId];
    if (pin) return pin.identityKey;
    const entry = await this.entry({ userId });
    if (!account.pins[userId]) {
      account.pins[userId] = { username: entry.username, identityKey: entry.identityKey, verified: false, pendingChange: null };
      await this.client.saveAccount();
      this.syncPins().catch(() => {});
    }
    return account.pins[userId].identityKey;
  }

  /**
   * The identity key to verify `userId`'s messages and envelopes under: the one whose
   * fingerprint the conversation's chain recorded for them (PROTOCOL 5.1). A first contact is
   * pinned only when the directory's key has that fingerprint; a directory key (or a pin) with
   * another one is a key-change warning, never a new pin, and nothing verifies under it.
   * @param {string} userId
   * @param {Uint8Array} recorded the chain's fingerprint for them at the epoch in question
   * @param {string|null} [convId] for the alarm
   * @returns {Promise<Uint8Array>}
   */
  async recordedIdentity(userId, recorded, convId = null) {
    const account = this.account;
    if (userId === account.userId) return account.identity.publicKey;
    const pin = account.pins[userId];
    const entry = pin ? null : await this.entry({ userId });
    const key = pin ? pin.identityKey : entry.identityKey;
    if (!(recorded instanceof Uint8Array) || !equal(await ed25519.fingerprint(key), recorded)) {
      const username = pin?.username ?? entry.username;
      const error = new KeyChangedError({ userId, username, convId });
      this.client.raiseAlarm({
        kind: 'key-changed', userId, convId,
        message: `the identity key ${pin ? 'pinned' : 'the directory shows'} for ${username} is not the one this conversation recorded for them: `
          + 'their messages are not shown until the keys agree (compare safety numbers)',
      });
      throw error;
    }
    if (!account.pins[userId]) {
      account.pins[userId] = { username: entry.username, identityKey: key, verified: false, pendingChange: null };
      await this.client.saveAccount();
      this.syncPins().catch(() => {});
    }
    return key;
  }

  /**
   * The keys to seal to (PROTOCOL 5.1): the directory's, asked afresh, which must equal the pin;
   * a changed key (or one not yet accepted) blocks sending.
   * @param {string} userId
   * @param {string|null} [convId] for the alarm
   * @returns {Promise<{identityKey: Uint8Array, x25519Key: Uint8Array}>}
   */
  async sealingKeys(userId, convId = null) {
    const entry = await this.entry({ userId }, { fresh: true });
    const pinned = await this.pinnedIdentity(userId);
    const pin = this.account.pins[userId];
    if (!equal(pinned, entry.identityKey) || pin?.pendingChange) {
      const error = new KeyChangedError({ userId, username: entry.username, convId });
      this.client.raiseAlarm({ kind: 'key-changed', convId, userId, message: error.message });
      throw error;
    }
    return { identityKey: entry.identityKey, x25519Key: entry.x25519Key };
  }

  /**
   * The trust shown for a member: 'changed' while a new key waits for acceptance, 'verified'
   * after the user compared safety numbers, else 'unverified'.
   * @param {string} userId
   * @returns {'verified'|'unverified'|'changed'}
   */
  trust(userId) {
    if (userId === this.account?.userId) return 'verified';
    const pin = this.account?.pins[userId];
    if (!pin) return 'unverified';
    if (pin.pendingChange) return 'changed';
    return pin.verified ? 'verified' : 'unverified';
  }

  /** Whether sending to this user waits for the user's decision. */
  blocked(userId) {
    return Boolean(this.account?.pins[userId]?.pendingChange);
  }

  /**
   * Marks a contact verified after comparing safety numbers; refused while their key changed.
   * @param {string} userId
   */
  async verify(userId) {
    const entry = await this.entry({ userId }, { fresh: true });
    const pinned = await this.pinnedIdentity(userId);
    const pin = this.account.pins[userId];
    if (!equal(pinned, entry.identityKey)) throw new KeyChangedError({ userId, username: entry.username });
    pin.pendingChange = null;
    pin.verified = true;
    await this.client.saveAccount();
    await this.syncPins();
  }

  /**
   * Acknowledges a changed key: the pin takes the key the directory shows now (unverified, unless
   * it is the pinned key again), and sending resumes.
   * @param {string} userId
   */
  async acceptNewKey(userId) {
    const entry = await this.entry({ userId }, { fresh: true });
    await this.pinnedIdentity(userId);
    const pin = this.account.pins[userId];
    if (!equal(pin.identityKey, entry.identityKey)) {
      pin.identityKey = entry.identityKey;
      pin.verified = false;
    }
    pin.pendingChange = null;
    await this.client.saveAccount();
    await this.syncPins();
  }

  /**
   * Brings this device's pins and the server's blob together: takes what other devices pinned,
   * writes back what this one added, and on a version conflict fetches, merges and tries again.
   */
  syncPins() {
    // Calls made while a sync waits to start share it (it reads the pins when it starts).
    if (this.queuedSync) return this.queuedSync;
    const run = this.client.mutex.run('pins', async () => {
      this.queuedSync = null;
      for (let attempt = 0; attempt < 4; attempt++) {
        const account = this.account;
        if (!account) return;
        const remote = await this.client.api.get('/api/v1/account/pins');
        // Versions only grow: an older blob than this device has seen is the server rolling the
        // pins back (to a key before a change, or before a verification).
        const seen = account.pinsVersion ?? 0;
        if (!Number.isSafeInteger(remote.version) || remote.version < seen) {
          const message = `The server sent your pinned keys as version ${remote.version}, older than version ${seen} this device has seen. `
            + 'They were not used: the server, or someone who controls it, may be trying to undo a key change or a verification.';
          this.client.raiseAlarm({ kind: 'pins-rollback', message });
          throw new ProtocolError('refused', message);
        }
        let theirs = {};
        if (remote.blob) {
          const plaintext = await openPins(account.pinsKey, fromB64u(remote.blob), account.userId, remote.version);
          theirs = decodePins(plaintext);
        }
        const merged = mergePins(account.pins, theirs, (userId) => {
          this.client.raiseAlarm({
            kind: 'key-changed', userId, message: new KeyChangedError({ userId, username: theirs[userId]?.username }).message,
          });
        });
        account.pins = merged;
        account.pinsVersion = remote.version;
        await this.client.saveAccount();
        if (encodePins(merged) === encodePins(theirs)) return;
        const next = remote.version + 1;
        const blob = await sealPins(account.pinsKey, utf8(encodePins(merged)), account.userId, next);
        try {
          await this.client.api.put('/api/v1/account/pins', { version: next, blob: b64u(blob) });
        } catch (error) {
          if (error?.slug === 'version-conflict') continue;
          throw error;
        }
        account.pinsVersion = next;
        await this.client.saveAccount();
        return;
      }
      throw new ProtocolError('refused', 'the pins kept changing on another device; try again');
    });
    this.queuedSync = run;
    return run;
  }
}

/**
 * The pins as CircleKit writes them: JSON with sorted keys, binary values as base64url.
 * @param {Record<string, Pin>} pins
 * @returns {string}
 */
export function encodePins(pins) {
  const out = {};
  for (const userId of Object.keys(pins).sort()) {
    const pin = pins[userId];
    const entry = { identityKey: b64u(pin.identityKey) };
    if (pin.pendingChange) entry.pendingChange = b64u(pin.pendingChange);
    entry.username = pin.username;
    entry.verified = Boolean(pin.verified);
    out[userId] = entry;
  }
  return JSON.stringify(out);
}

/** Parses decrypted pins; anything malformed throws. @param {Uint8Array} bytes @returns {Record<string, Pin>} */
export function decodePins(bytes) {
  const object = JSON.parse(fromUtf8(bytes));
  if (!object || typeof object !== 'object' || Array.isArray(object)) throw new ProtocolError('malformed', 'the pins blob is not an object');
  const pins = {};
  for (const [userId, pin] of Object.entries(object)) {
    const identityKey = fromB64u(pin.identityKey);
    ed25519.checkPublicKey(identityKey);
    pins[userId] = {
      username: String(pin.username ?? ''),
      identityKey,
      verified: pin.verified === true,
      pendingChange: pin.pendingChange ? fromB64u(pin.pendingChange) : null,
    };
  }
  return pins;
}

/**
 * CircleKit's merge: new contacts are taken; the same key keeps the stronger mark; a different
 * key is never taken silently but becomes a pending change to acknowledge.
 * @param {Record<string, Pin>} local
 * @param {Record<string, Pin>} remote
 * @param {(userId: string) => void} [onChange] told of each new pending change
 * @returns {Record<string, Pin>}
 */
export function mergePins(local, remote, onChange = () => {}) {
  const merged = { ...local };
  for (const [userId, theirs] of Object.entries(remote)) {
    const mine = merged[userId];
    if (!mine) {
      merged[userId] = { ...theirs };
      continue;
    }
    const next = { ...mine };
    if (equal(mine.identityKey, theirs.identityKey)) {
      next.verified = mine.verified || theirs.verified;
    } else if (!mine.pendingChange) {
      next.pendingChange = theirs.identityKey;
      onChange(userId);
    }
    merged[userId] = next;
  }
  return merged;
}
