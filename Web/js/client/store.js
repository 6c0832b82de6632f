/**
 * The device's state in IndexedDB, per signed-in user: the session, the non-extractable
 * CryptoKeys (structured clone keeps them usable without exporting them), pins, verified
 * membership ops, this device's sender chains and outbox, received chains with their replay
 * bitmaps, decrypted messages, and the newest verified entry of the security activity chain.
 * It survives reloads; `wipe()` removes all of it.
 * @module client/store
 */

const DB_NAME = 'circle';
const DB_VERSION = 1;

/** Object stores and their keys. */
const STORES = {
  meta: { keyPath: 'key' },
  accounts: { keyPath: 'userId' },
  conversations: { keyPath: ['userId', 'convId'] },
  sending: { keyPath: ['userId', 'convId'] },
  received: { keyPath: ['userId', 'convId', 'chain'] },
  messages: { keyPath: ['userId', 'convId', 'id'] },
};

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** The key range of every record of one user (and, given, one conversation) in a compound-key store. */
function prefixRange(...prefix) {
  return IDBKeyRange.bound(prefix, [...prefix, []]);
}

/** IndexedDB access for one browser profile (one database, records keyed by user id). */
export class Store {
  /** @param {string} [name] the database name (tests may use another) */
  constructor(name = DB_NAME) {
    this.name = name;
    /** @type {IDBDatabase|null} */
    this.database = null;
    this.opening = null;
    /** Set by `wipe()`: this instance never opens the database again (late writes fail). */
    this.wiped = false;
  }

  /** Opens (or creates) the database. */
  static async open(name = DB_NAME) {
    const store = new Store(name);
    await store.db();
    return store;
  }

  /** @returns {Promise<IDBDatabase>} */
  async db() {
    if (this.wiped) throw new Error('signed out: this store was wiped');
    if (this.database) return this.database;
    if (!this.opening) {
      this.opening = new Promise((resolve, reject) => {
        const req = indexedDB.open(this.name, DB_VERSION);
        req.onupgradeneeded = () => {
          const db = req.result;
          for (const [store, options] of Object.entries(STORES)) {
            if (!db.objectStoreNames.contains(store)) db.createObjectStore(store, options);
          }
        };
        req.onsuccess = () => {
          const db = req.result;
          // Another tab deleting the database (a sign-out there) must not wait for this one.
          db.onversionchange = () => {
            db.close();
            if (this.database === db) this.database = null;
          };
          resolve(db);
        };
        req.onerror = () => reject(req.error);
        req.onblocked = () => reject(new Error('the Circle database is held open by an older tab'));
      }).then(
        (db) => {
          this.database = db;
          this.opening = null;
          return db;
        },
        (error) => {
          this.opening = null;
          throw error;
        },
      );
    }
    return this.opening;
  }

  /**
   * Runs `body(stores)` in one transaction over `names`; resolves with its result once the
   * transaction has committed (so a write is durable before the caller goes on).
   */
  async transaction(names, mode, body) {
    const db = await this.db();
    const tx = db.transaction(names, mode, { durability: 'strict' });
    const stores = Object.fromEntries(names.map((name) => [name, tx.objectStore(name)]));
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
    });
    let result;
    try {
      result = await body(stores);
    } catch (error) {
      try {
        tx.abort();
      } catch {
        // already finished
      }
      await done.catch(() => {});
      throw error;
    }
    await done;
    return result;
  }

  get(store, key) {
    return this.transaction([store], 'readonly', (s) => request(s[store].get(key)));
  }

  put(store, value) {
    return this.transaction([store], 'readwrite', (s) => request(s[store].put(value)));
  }

  // MARK: The signed-in user

  /** The user id signed in on this browser profile, or null. */
  async currentUserId() {
    const record = await this.get('meta', 'current');
    return record?.userId ?? null;
  }

  /** Records who is signed in (null: nobody). */
  setCurrentUserId(userId) {
    return this.put('meta', { key: 'current', userId });
  }

  /** The account record of `userId`: session, keys, pins, event position. */
  getAccount(userId) {
    return this.get('accounts', userId);
  }

  /** Saves the account record (written whole; CryptoKeys are structured-cloned, never exported). */
  putAccount(account) {
    return this.put('accounts', account);
  }

  /** The newest activity entry this device verified for `userId`: `{seq, hash}`, or null. */
  async getActivityHead(userId) {
    const record = await this.get('meta', `activity:${userId}`);
    return record ? { seq: record.seq, hash: record.hash } : null;
  }

  putActivityHead(userId, { seq, hash }) {
    return this.put('meta', { key: `activity:${userId}`, seq, hash });
  }

  // MARK: Conversations

  /** The stored state of one conversation: verified ops, last handled message, read markers. */
  getConversation(userId, convId) {
    return this.get('conversations', [userId, convId]);
  }

  putConversation(record) {
    return this.put('conversations', record);
  }

  /** Every stored conversation record of a user. */
  listConversations(userId) {
    return this.transaction(['conversations'], 'readonly', (s) => request(s.conversations.getAll(prefixRange(userId))));
  }

  /** Forgets a conversation (the user is no longer a member): its chains and messages too. */
  deleteConversation(userId, convId) {
    const names = ['conversations', 'sending', 'received', 'messages'];
    return this.transaction(names, 'readwrite', async (s) => {
      await request(s.conversations.delete([userId, convId]));
      await request(s.sending.delete([userId, convId]));
      await request(s.received.delete(prefixRange(userId, convId)));
      await request(s.messages.delete(prefixRange(userId, convId)));
    });
  }

  // MARK: Sender chain and outbox (written only under the sealing lock)

  /** This device's sending state of a conversation: `{chain, outbox}`. */
  async getSending(userId, convId) {
    return (await this.get('sending', [userId, convId])) ?? { userId, convId, chain: null, outbox: [] };
  }

  putSending(record) {
    return this.put('sending', record);
  }

  // MARK: Received chains

  /** A chain received in an envelope, by its address key, or undefined. */
  getReceived(userId, convId, chain) {
    return this.get('received', [userId, convId, chain]);
  }

  putReceived(record) {
    return this.put('received', record);
  }

  // MARK: Decrypted messages

  /** Every cached message of a conversation (unordered). */
  getMessages(userId, convId) {
    return this.transaction(['messages'], 'readonly', (s) => request(s.messages.getAll(prefixRange(userId, convId))));
  }

  /** Saves messages and the conversation record together (one commit: never one without the other). */
  saveReceived(conversation, messages, chains = []) {
    return this.transaction(['conversations', 'messages', 'received'], 'readwrite', async (s) => {
      for (const chain of chains) s.received.put(chain);
      for (const message of messages) s.messages.put(message);
      await request(s.conversations.put(conversation));
    });
  }

  putMessages(messages) {
    return this.transaction(['messages'], 'readwrite', async (s) => {
      for (const message of messages) s.messages.put(message);
    });
  }

  /** Removes cached messages by id (disappeared or deleted), plaintext included. */
  deleteMessages(userId, convId, ids) {
    return this.transaction(['messages'], 'readwrite', async (s) => {
      for (const id of ids) s.messages.delete([userId, convId, id]);
    });
  }

  // MARK: Sign-out

  /** Erases everything this origin stored for Circle, then deletes the database. */
  async wipe() {
    if (this.wiped) return;
    try {
      await this.transaction(Object.keys(STORES), 'readwrite', async (s) => {
        for (const store of Object.values(s)) store.clear();
      });
    } catch {
      // The database may be gone already; deleting it below is what matters.
    }
    this.wiped = true;
    this.close();
    await new Promise((resolve, reject) => {
      const req = indexedDB.deleteDatabase(this.name);
      req.onsuccess = () => resolve();
      req.onerror = () => reject(req.error);
      // Another tab still holds it open: its versionchange handler closes it, then this completes.
      req.onblocked = () => {};
    });
  }

  /** Closes the connection (the next call reopens it). */
  close() {
    if (this.database) this.database.close();
    this.database = null;
  }
}
