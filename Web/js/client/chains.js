/**
 * Conversations as verified membership chains (PROTOCOL 5, CircleKit ChatClient+Conversations):
 * each chain verified from the genesis this device pinned, the ops it verified kept so that any
 * other history the server shows later raises the fork alarm, and membership ops signed here.
 * @module client/chains
 */
import { b64u, equal, fromB64u } from '../protocol/bytes.js';
import {
  MembershipChain, decodeOp, makeAdd, makeGenesis, makeRemove, makeSettings, signOp,
} from '../protocol/membership.js';
import { ForkError, RefusedError } from './errors.js';

const OPS_PAGE_LIMIT = 100_000;

/** Whether an op's bytes parse (its signature and rules are checked when it is appended). */
function parses(bytes) {
  try {
    decodeOp(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The wire form of a signed op. */
export function wireOp(signed) {
  return { op: b64u(signed.op), signature: b64u(signed.signature) };
}

/**
 * The settings a chain had at `epoch` (the signed timer that applies to a message of that epoch).
 * @param {MembershipChain} chain
 * @param {Uint8Array} epoch
 * @returns {{kind: string, disappearSeconds: number, readReceipts: boolean}}
 */
export function settingsAt(chain, epoch) {
  const index = chain.indexOfEpoch(epoch);
  if (index < 0) return chain.settings;
  let settings = null;
  for (let n = 0; n <= index; n++) {
    const op = decodeOp(chain.ops[n].op);
    if (op.settings) settings = op.settings;
  }
  return settings ?? chain.settings;
}

/** The verified chains of the signed-in account, in memory and in the store. */
export class Chains {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** @type {Map<string, MembershipChain>} */
    this.verified = new Map();
    /** Malformed ops already reported (`convId:head`). */
    this.malformedReported = new Set();
  }

  get account() {
    return this.client.account;
  }

  /** Forgets the chains held in memory (after sign-out). */
  clear() {
    this.verified.clear();
  }

  /**
   * The chain as this device last verified it: from memory, or replayed from the stored ops
   * (null for a conversation it never verified).
   * @param {string} convId
   * @returns {Promise<MembershipChain|null>}
   */
  async local(convId) {
    const held = this.verified.get(convId);
    if (held) return held;
    const record = await this.client.conversation(convId);
    if (!record.ops.length) return null;
    const chain = await MembershipChain.replay(record.ops, (userId) => this.client.directory.pinnedIdentity(userId));
    this.verified.set(convId, chain);
    return chain;
  }

  /**
   * The conversation's chain, verified from its genesis and brought up to the server's head.
   * Ops verified before must come back byte-identical, and the head never goes back: otherwise
   * the fork alarm.
   * @param {string} convId
   * @returns {Promise<MembershipChain>}
   */
  refresh(convId) {
    return this.client.mutex.run(`chain:${convId}`, () => this.refreshNow(convId));
  }

  async refreshNow(convId) {
    const previous = await this.local(convId);
    // From the op before the head: the head op itself must come back unchanged.
    let after = previous ? previous.head - 1 : -1;
    const fresh = [];
    for (let pages = 0; pages < OPS_PAGE_LIMIT; pages++) {
      const page = await this.client.api.get(`/api/v1/conversations/${convId}/ops?after=${after}`);
      if (previous && page.head < previous.head) {
        throw this.fork(convId, `the server shows op ${page.head} as the head, but this device verified up to op ${previous.head}`);
      }
      for (const listed of page.ops) fresh.push({ op: fromB64u(listed.op), signature: fromB64u(listed.signature) });
      const last = page.ops[page.ops.length - 1];
      if (!last || last.n >= page.head) break;
      after = last.n;
    }
    const keyOf = (userId) => this.client.directory.pinnedIdentity(userId);
    // An op that does not parse (say a u64 no client can hold, PROTOCOL 1) stops the chain
    // before it: the conversation stays readable as of the op before, and the member is told.
    const readable = fresh.findIndex(({ op }) => !parses(op));
    const usable = readable < 0 ? fresh : fresh.slice(0, readable);
    let chain;
    try {
      if (previous) {
        // Extended in place: ops appended before a failure were each verified and stay.
        chain = previous;
        await chain.extend(usable, keyOf);
      } else {
        chain = await MembershipChain.replay(usable, keyOf);
        if (b64u(chain.convId) !== convId) throw this.fork(convId, 'the genesis the server listed is not the one this conversation is named after');
      }
    } catch (error) {
      if (error?.code === 'fork' && !(error instanceof ForkError)) throw this.fork(convId, error.message.replace(/^fork alarm: /, ''));
      throw error;
    }
    if (readable >= 0) this.reportMalformed(convId, chain.head, fresh[readable].op);
    const record = await this.client.conversation(convId);
    if (record.ops.length !== chain.ops.length) {
      record.ops = chain.ops.map(({ op, signature }) => ({ op, signature }));
      record.maxHead = Math.max(record.maxHead ?? -1, chain.head);
      await this.client.saveConversation(record);
    }
    this.verified.set(convId, chain);
    return chain;
  }

  /** Tells the member, once per conversation and op, that an op after `head` does not parse. */
  reportMalformed(convId, head, bytes) {
    let why = 'it does not parse';
    try {
      decodeOp(bytes);
    } catch (error) {
      why = String(error?.message ?? error);
    }
    const key = `${convId}:${head}`;
    if (this.malformedReported.has(key)) return;
    this.malformedReported.add(key);
    this.client.raiseAlarm({
      kind: 'malformed-op', convId,
      message: `A membership change after change ${head} of this conversation is malformed (${why}). `
        + 'The conversation is shown as of the last change that could be verified; sending may fail until it is resolved.',
    });
  }

  /** The fork alarm: raised to the UI and thrown. */
  fork(convId, why) {
    const error = new ForkError(why, convId);
    this.client.raiseAlarm({ kind: 'fork', convId, message: error.message });
    return error;
  }

  /**
   * The chain to seal under: the verified one when it is at least as new as every head seen,
   * else refreshed first.
   * @param {string} convId
   */
  async forSending(convId) {
    const held = await this.local(convId);
    const record = await this.client.conversation(convId);
    if (held && held.head >= (record.maxHead ?? -1) && this.verified.has(convId)) return held;
    return this.refresh(convId);
  }

  /**
   * Creates a conversation: every member's key is pinned (or checked against its pin) before it
   * is named in an op.
   * @param {'direct'|'group'} kind
   * @param {string[]} usernames the other members
   * @returns {Promise<string>} the conversation id
   */
  async create(kind, usernames, { disappearSeconds = 0, readReceipts = true } = {}) {
    const account = this.account;
    const mine = account.identity.publicKey;
    const genesis = await signOp(account.identity.privateKey,
      await makeGenesis({ creator: account.userId, creatorIdentity: mine, settings: { kind, disappearSeconds, readReceipts } }));
    const chain = await MembershipChain.replay([genesis], () => mine);
    const convId = b64u(chain.convId);
    const ops = [];
    const seen = new Set([account.userId]);
    for (const username of usernames) {
      const entry = await this.client.directory.entry({ username });
      if (seen.has(entry.userId)) continue;
      seen.add(entry.userId);
      const keys = await this.client.directory.sealingKeys(entry.userId, convId);
      const op = await makeAdd(chain, {
        actor: account.userId, target: entry.userId, targetIdentity: keys.identityKey, role: kind === 'direct' ? 'admin' : 'member',
      });
      const signed = await signOp(account.identity.privateKey, op);
      await chain.append(signed, mine);
      ops.push(signed);
    }
    if (kind === 'direct' && ops.length !== 1) throw new RefusedError('a direct conversation has exactly one other member');
    const created = await this.client.api.post('/api/v1/conversations', { genesis: wireOp(genesis), ops: ops.map(wireOp) });
    const record = await this.client.conversation(created.conversationId);
    record.ops = chain.ops.map(({ op, signature }) => ({ op, signature }));
    record.maxHead = chain.head;
    await this.client.saveConversation(record);
    this.verified.set(created.conversationId, chain);
    return created.conversationId;
  }

  /**
   * Signs the next op on the verified head and sends it; on a stale head, catches up and retries.
   * @param {string} convId
   * @param {(chain: MembershipChain) => Promise<object>|object} build the unsigned op
   */
  async append(convId, build) {
    const account = this.account;
    for (let attempt = 0; attempt < 3; attempt++) {
      const chain = await this.refresh(convId);
      if (!chain.isMember(account.userId)) throw new RefusedError('you are not a member of this conversation');
      const signed = await signOp(account.identity.privateKey, await build(chain));
      try {
        await this.client.api.post(`/api/v1/conversations/${convId}/ops`, wireOp(signed));
      } catch (error) {
        if (error?.slug === 'stale-head') continue;
        throw error;
      }
      const after = await this.refresh(convId);
      if (!after.ops.some((held) => equal(held.op, signed.op))) throw this.fork(convId, 'the op this device just added is not in the chain the server shows');
      return after;
    }
    throw new RefusedError('the conversation kept changing; try again');
  }

  /** Adds a member (admins). */
  async add(convId, username, role = 'member') {
    const entry = await this.client.directory.entry({ username });
    const keys = await this.client.directory.sealingKeys(entry.userId, convId);
    return this.append(convId, (chain) => makeAdd(chain, {
      actor: this.account.userId, target: entry.userId, targetIdentity: keys.identityKey, role,
    }));
  }

  /** Removes a member (admins, groups only): everyone's next message uses a new chain. */
  async remove(convId, userId) {
    return this.append(convId, (chain) => {
      const member = chain.members.get(userId);
      if (!member) throw new RefusedError('that user is not a member');
      return makeRemove(chain, { actor: this.account.userId, target: userId, targetFingerprint: member.fingerprint });
    });
  }

  /** Changes the disappearing timer, receipts or retention (admins); omitted values stay. */
  async setSettings(convId, { disappearSeconds, readReceipts, retentionDays }) {
    return this.append(convId, (chain) => makeSettings(chain, {
      actor: this.account.userId,
      settings: {
        kind: chain.kind,
        disappearSeconds: disappearSeconds ?? chain.settings.disappearSeconds,
        readReceipts: readReceipts ?? chain.settings.readReceipts,
        retentionDays: retentionDays ?? chain.settings.retentionDays ?? 0,
      },
    }));
  }
}
