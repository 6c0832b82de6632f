/**
 * The membership chain (docs/PROTOCOL.md section 5, CircleKit/MembershipOp.swift and
 * MembershipChain.swift): conversation settings, the canonical op bytes with the shape rules of
 * each action, op hashes and signatures, builders, and `MembershipChain`, which replays signed
 * ops under exactly the rules the server applies.
 * @module protocol/membership
 */
import {
  ProtocolError, Reader, concat, equal, field, fromUtf8, isUserId, random, u16, u32, u64, u8, utf8,
} from './bytes.js';
import * as ed25519 from './ed25519.js';
import { sha256 } from './primitives.js';

export const OP_VERSION = 1;
export const SETTINGS_VERSION = 1;
/** The settings version that carries a retention (written only when there is one). */
export const RETENTION_SETTINGS_VERSION = 2;
/** The longest retention: ten years, in days. */
export const MAXIMUM_RETENTION_DAYS = 3650;
/** The longest disappearing-message timer: one year, in seconds. */
export const MAXIMUM_TIMER = 365 * 24 * 3600;
/** A conversation holds at most this many members. */
export const MAXIMUM_MEMBERS = 500;
/** Actions by their byte value. */
export const ACTIONS = Object.freeze(['genesis', 'add', 'remove', 'role', 'settings', 'leave']);
/** Roles by their byte value; they compare in this order. */
export const ROLES = Object.freeze(['none', 'member', 'admin']);
/** Conversation kinds by their byte value. */
export const KINDS = Object.freeze(['direct', 'group']);

const SIGNATURE_LABEL = utf8('circle/v1/op');
const HASH_LABEL = utf8('circle/v1/op-hash');
const EMPTY = new Uint8Array(0);

function malformed(message) {
  return new ProtocolError('malformed', message);
}

function refused(message) {
  return new ProtocolError('refused', `refused: ${message}`);
}

function indexIn(list, value, what) {
  const index = list.indexOf(value);
  if (index < 0) throw malformed(`unknown ${what} ${value}`);
  return index;
}

/**
 * `u8(1) || u8(kind) || u32(disappearSeconds) || u8(readReceipts)`, or with a retention
 * `u8(2) || ... || u16(retentionDays)` (1 to 3650 days): one encoding for each value.
 * @param {{kind: 'direct'|'group', disappearSeconds?: number, readReceipts?: boolean, retentionDays?: number}} settings
 * @returns {Uint8Array}
 */
export function encodeSettings({ kind, disappearSeconds = 0, readReceipts = true, retentionDays = 0 }) {
  if (!Number.isInteger(disappearSeconds) || disappearSeconds < 0 || disappearSeconds > MAXIMUM_TIMER) {
    throw malformed('disappearing timer longer than a year');
  }
  if (!Number.isInteger(retentionDays) || retentionDays < 0 || retentionDays > MAXIMUM_RETENTION_DAYS) {
    throw malformed(`retention must be 0 to ${MAXIMUM_RETENTION_DAYS} days`);
  }
  const common = [u8(indexIn(KINDS, kind, 'conversation kind')), u32(disappearSeconds), u8(readReceipts ? 1 : 0)];
  return retentionDays > 0
    ? concat(u8(RETENTION_SETTINGS_VERSION), ...common, u16(retentionDays))
    : concat(u8(SETTINGS_VERSION), ...common);
}

/**
 * Parses settings, refusing other versions, kinds, timers over a year, flags other than 0 or 1
 * and a version 2 without a retention of 1 to 3650 days.
 * @param {Uint8Array} bytes
 * @returns {{kind: 'direct'|'group', disappearSeconds: number, readReceipts: boolean, retentionDays: number}}
 */
export function decodeSettings(bytes) {
  const reader = new Reader(bytes);
  const version = reader.u8();
  if (version !== SETTINGS_VERSION && version !== RETENTION_SETTINGS_VERSION) throw malformed('unknown settings version');
  const kind = KINDS[reader.u8()];
  if (kind === undefined) throw malformed('unknown conversation kind');
  const disappearSeconds = reader.u32();
  const receipts = reader.u8();
  const retentionDays = version === RETENTION_SETTINGS_VERSION ? reader.u16() : 0;
  reader.done();
  if (disappearSeconds > MAXIMUM_TIMER) throw malformed('disappearing timer longer than a year');
  if (receipts > 1) throw malformed('read receipts flag must be 0 or 1');
  if (version === RETENTION_SETTINGS_VERSION && (retentionDays < 1 || retentionDays > MAXIMUM_RETENTION_DAYS)) {
    throw malformed(`retention must be 1 to ${MAXIMUM_RETENTION_DAYS} days (settings without one are version 1)`);
  }
  return { kind, disappearSeconds, readReceipts: receipts === 1, retentionDays };
}

/** The shape each action must have (checked on encode and on decode). */
function checkShape(op) {
  const require = (condition, why) => {
    if (!condition) throw malformed(why);
  };
  const isGenesis = op.action === 'genesis';
  require(isGenesis === (op.n === 0), 'only the genesis has n = 0');
  require(
    isGenesis ? op.convId.length === 0 && op.prevHash.length === 0 : op.convId.length === 32 && op.prevHash.length === 32,
    'convId and prevHash are 32 bytes, and empty only in the genesis',
  );
  require(isGenesis ? op.nonce.length === 16 : op.nonce.length === 0, 'a nonce of 16 bytes belongs to the genesis only');
  require(isUserId(op.actor), 'op actor is not a user id');
  require(op.target === '' || isUserId(op.target), 'op target is not a user id');
  const hasSettings = op.settings != null;
  switch (op.action) {
    case 'genesis':
      require(op.target === op.actor && op.targetFingerprint.length === 32 && op.role === 'admin' && hasSettings,
        'a genesis names its creator as admin with a fingerprint and settings');
      break;
    case 'add':
    case 'role':
      require(op.target !== '' && op.targetFingerprint.length === 32 && (op.role === 'member' || op.role === 'admin') && !hasSettings,
        'add and role ops name a target, its fingerprint and a role');
      break;
    case 'remove':
      require(op.target !== '' && op.targetFingerprint.length === 32 && op.role === 'none' && !hasSettings,
        'a remove names a target and its fingerprint');
      break;
    case 'settings':
      require(op.target === '' && op.targetFingerprint.length === 0 && op.role === 'none' && hasSettings,
        'a settings op carries settings only');
      break;
    case 'leave':
      require(op.target === op.actor && op.targetFingerprint.length === 0 && op.role === 'none' && !hasSettings,
        'a leave names the actor as its target');
      break;
    default:
      throw malformed('unknown op action');
  }
}

function normalised(op) {
  return {
    convId: op.convId ?? EMPTY,
    n: op.n,
    prevHash: op.prevHash ?? EMPTY,
    actor: op.actor,
    action: op.action,
    target: op.target ?? '',
    targetFingerprint: op.targetFingerprint ?? EMPTY,
    role: op.role ?? 'none',
    settings: op.settings ?? null,
    nonce: op.nonce ?? EMPTY,
    createdAt: op.createdAt,
  };
}

/**
 * The canonical bytes of an op (PROTOCOL 5); the op must have its action's shape.
 * Omitted byte fields are empty, `target` '' and `role` 'none'.
 * @param {object} op `{convId, n, prevHash, actor, action, target, targetFingerprint, role, settings, nonce, createdAt}`
 * @returns {Uint8Array}
 */
export function encodeOp(op) {
  const o = normalised(op);
  checkShape(o);
  return concat(
    u8(OP_VERSION),
    field(o.convId),
    u32(o.n),
    field(o.prevHash),
    field(utf8(o.actor)),
    u8(indexIn(ACTIONS, o.action, 'action')),
    field(utf8(o.target)),
    field(o.targetFingerprint),
    u8(indexIn(ROLES, o.role, 'role')),
    field(o.settings ? encodeSettings(o.settings) : EMPTY),
    field(o.nonce),
    u64(o.createdAt),
  );
}

/**
 * Parses op bytes and checks the shape of its action (not yet the chain rules).
 * @param {Uint8Array} bytes
 * @returns {object} the op (`settings` null when absent, `target` '' when empty)
 */
export function decodeOp(bytes) {
  const reader = new Reader(bytes);
  if (reader.u8() !== OP_VERSION) throw malformed('unknown op version');
  const convId = reader.field(32);
  const n = reader.u32();
  const prevHash = reader.field(32);
  const actor = reader.field(36);
  const action = ACTIONS[reader.u8()];
  if (action === undefined) throw malformed('unknown op action');
  const target = reader.field(36);
  const targetFingerprint = reader.field(32);
  const role = ROLES[reader.u8()];
  if (role === undefined) throw malformed('unknown role');
  const settingsBytes = reader.field(64);
  const settings = settingsBytes.length === 0 ? null : decodeSettings(settingsBytes);
  const nonce = reader.field(16);
  const createdAt = reader.u64();
  reader.done();
  const op = {
    convId, n, prevHash, actor: fromUtf8(actor), action, target: fromUtf8(target), targetFingerprint, role, settings, nonce, createdAt,
  };
  checkShape(op);
  return op;
}

/** `H(op) = SHA-256("circle/v1/op-hash" || op)`. @param {Uint8Array} bytes @returns {Promise<Uint8Array>} */
export async function opHash(bytes) {
  return sha256(concat(HASH_LABEL, bytes));
}

/**
 * Signs an op with its actor's identity key: `Ed25519(identity, "circle/v1/op" || op)`.
 * @param {CryptoKey} identityPrivate
 * @param {object|Uint8Array} op an op object (encoded here) or its bytes
 * @returns {Promise<{op: Uint8Array, signature: Uint8Array}>} as the chain and the server take it
 */
export async function signOp(identityPrivate, op) {
  const bytes = op instanceof Uint8Array ? op : encodeOp(op);
  return { op: bytes, signature: await ed25519.sign(identityPrivate, concat(SIGNATURE_LABEL, bytes)) };
}

/**
 * Strict verification of an op's signature.
 * @param {Uint8Array} identityPub
 * @param {Uint8Array} opBytes
 * @param {Uint8Array} signature
 * @returns {Promise<boolean>}
 */
export async function verifyOpSignature(identityPub, opBytes, signature) {
  return ed25519.verify(identityPub, signature, concat(SIGNATURE_LABEL, opBytes));
}

/**
 * A new conversation's first op: the creator as its only admin, with the starting settings.
 * @param {{creator: string, creatorIdentity: Uint8Array, settings: object, createdAt?: number, nonce?: Uint8Array}} params
 * @returns {Promise<object>}
 */
export async function makeGenesis({ creator, creatorIdentity, settings, createdAt = Date.now(), nonce = random(16) }) {
  return {
    convId: EMPTY, n: 0, prevHash: EMPTY, actor: creator, action: 'genesis', target: creator,
    targetFingerprint: await ed25519.fingerprint(creatorIdentity), role: 'admin', settings, nonce, createdAt,
  };
}

/** The fields every op after the genesis takes from the chain's head. */
function nextOp(chain, actor, action, createdAt = Date.now()) {
  return {
    convId: chain.convId, n: chain.head + 1, prevHash: chain.epoch, actor, action,
    target: '', targetFingerprint: EMPTY, role: 'none', settings: null, nonce: EMPTY, createdAt,
  };
}

async function targetFingerprint({ targetFingerprint: given, targetIdentity }) {
  if (given) return given;
  if (!targetIdentity) throw malformed('the target needs its identity key or fingerprint');
  return ed25519.fingerprint(targetIdentity);
}

/**
 * An add on top of `chain`'s head.
 * @param {{convId: Uint8Array, head: number, epoch: Uint8Array}} chain usually a MembershipChain
 * @param {{actor: string, target: string, targetIdentity?: Uint8Array, targetFingerprint?: Uint8Array,
 *   role?: 'member'|'admin', createdAt?: number}} params
 * @returns {Promise<object>}
 */
export async function makeAdd(chain, { actor, target, role = 'member', createdAt, ...key }) {
  return { ...nextOp(chain, actor, 'add', createdAt), target, targetFingerprint: await targetFingerprint(key), role };
}

/**
 * A remove on top of `chain`'s head (the target's fingerprint as recorded in the chain).
 * @param {{convId: Uint8Array, head: number, epoch: Uint8Array}} chain
 * @param {{actor: string, target: string, targetIdentity?: Uint8Array, targetFingerprint?: Uint8Array, createdAt?: number}} params
 * @returns {Promise<object>}
 */
export async function makeRemove(chain, { actor, target, createdAt, ...key }) {
  return { ...nextOp(chain, actor, 'remove', createdAt), target, targetFingerprint: await targetFingerprint(key) };
}

/**
 * A role change on top of `chain`'s head.
 * @param {{convId: Uint8Array, head: number, epoch: Uint8Array}} chain
 * @param {{actor: string, target: string, role: 'member'|'admin', targetIdentity?: Uint8Array,
 *   targetFingerprint?: Uint8Array, createdAt?: number}} params
 * @returns {Promise<object>}
 */
export async function makeRole(chain, { actor, target, role, createdAt, ...key }) {
  return { ...nextOp(chain, actor, 'role', createdAt), target, targetFingerprint: await targetFingerprint(key), role };
}

/**
 * A settings change on top of `chain`'s head (the kind must stay the same).
 * @param {{convId: Uint8Array, head: number, epoch: Uint8Array}} chain
 * @param {{actor: string, settings: object, createdAt?: number}} params
 * @returns {object}
 */
export function makeSettings(chain, { actor, settings, createdAt }) {
  return { ...nextOp(chain, actor, 'settings', createdAt), settings };
}

/**
 * The actor leaving, on top of `chain`'s head.
 * @param {{convId: Uint8Array, head: number, epoch: Uint8Array}} chain
 * @param {{actor: string, createdAt?: number}} params
 * @returns {object}
 */
export function makeLeave(chain, { actor, createdAt }) {
  return { ...nextOp(chain, actor, 'leave', createdAt), target: actor };
}

function requireKey(identity) {
  if (!(identity instanceof Uint8Array)) throw refused('no identity key is known for the actor');
}

/**
 * A conversation's membership as its verified chain of ops says. Build it with
 * `MembershipChain.replay(signedOps, identityKeyFor)` from the genesis, then `append` or `extend`.
 * A failed append or extend changes nothing of what was verified before it. Calls on one chain
 * must not overlap (await each).
 *
 * Rules (the server's too): the actor is a member whose identity key has the fingerprint recorded
 * when they joined, and the signature verifies; add by an admin, of a non-member, below 500
 * members, and in a direct conversation only as op 1, of the other party as admin; remove and
 * role by an admin, of another member with the recorded fingerprint, never in a direct
 * conversation, a role op changing the role; settings by an admin, same kind; leave by anyone
 * but the last admin while others remain.
 */
export class MembershipChain {
  constructor() {
    /** H(genesis). @type {Uint8Array} */
    this.convId = EMPTY;
    /** The current settings. */
    this.settings = null;
    /** userId -> {role, fingerprint}. @type {Map<string, {role: string, fingerprint: Uint8Array}>} */
    this.members = new Map();
    /** The verified ops, in order: `{op, signature}`. */
    this.ops = [];
    /** H(op) of each op: the epochs this chain passed through. @type {Uint8Array[]} */
    this.hashes = [];
    /** userId -> [{from, until}]: the op numbers of each stay (until null while a member). */
    this.stays = new Map();
  }

  /**
   * Verifies a chain from its genesis: the first op must be the genesis, signed by its creator
   * under the key whose fingerprint it names; every later op must pass every rule.
   * @param {{op: Uint8Array, signature: Uint8Array}[]} signedOps
   * @param {(userId: string) => Uint8Array|Promise<Uint8Array>} identityKeyFor the actor's identity key as the caller knows it (pinned, or the directory's)
   * @returns {Promise<MembershipChain>}
   */
  static async replay(signedOps, identityKeyFor) {
    if (signedOps.length === 0) throw refused('a chain starts with a genesis op');
    const [genesis, ...rest] = signedOps;
    const op = decodeOp(genesis.op);
    if (op.action !== 'genesis') throw refused('a chain starts with a genesis op');
    const creatorIdentity = await identityKeyFor(op.actor);
    requireKey(creatorIdentity);
    if (!equal(await ed25519.fingerprint(creatorIdentity), op.targetFingerprint)) {
      throw refused("the genesis names another identity key than its creator's");
    }
    if (!(await verifyOpSignature(creatorIdentity, genesis.op, genesis.signature))) throw new ProtocolError('bad-signature', 'bad signature: genesis op');
    const chain = new MembershipChain();
    chain.convId = await opHash(genesis.op);
    chain.settings = op.settings;
    chain.members.set(op.actor, { role: 'admin', fingerprint: op.targetFingerprint });
    chain.ops.push({ op: genesis.op, signature: genesis.signature });
    chain.hashes.push(chain.convId);
    chain.stays.set(op.actor, [{ from: 0, until: null, fingerprint: op.targetFingerprint }]);
    for (const signed of rest) await chain.append(signed, await identityKeyFor(decodeOp(signed.op).actor));
    return chain;
  }

  /** 'direct' or 'group'. */
  get kind() {
    return this.settings.kind;
  }

  /** The head op's number. */
  get head() {
    return this.ops.length - 1;
  }

  /** H(head op): in every message header and envelope. */
  get epoch() {
    return this.hashes[this.hashes.length - 1];
  }

  /** @param {string} userId @returns {'none'|'member'|'admin'} */
  role(userId) {
    return this.members.get(userId)?.role ?? 'none';
  }

  /** Whether `userId` is a member at the head. @param {string} userId @returns {boolean} */
  isMember(userId) {
    return this.members.has(userId);
  }

  /** The index of `epoch` in this chain, or -1. */
  indexOfEpoch(epoch) {
    return this.hashes.findIndex((hash) => equal(hash, epoch));
  }

  /** Whether `epoch` is one this chain passed through (else unknown, or a fork). @param {Uint8Array} epoch @returns {boolean} */
  containsEpoch(epoch) {
    return this.indexOfEpoch(epoch) >= 0;
  }

  /**
   * Whether `userId` was a member at `epoch` (false for an epoch this chain does not contain).
   * @param {string} userId
   * @param {Uint8Array} epoch
   * @returns {boolean}
   */
  memberAt(userId, epoch) {
    const n = this.indexOfEpoch(epoch);
    if (n < 0) return false;
    return (this.stays.get(userId) ?? []).some((stay) => stay.from <= n && (stay.until === null || n < stay.until));
  }

  /**
   * The identity-key fingerprint this chain recorded for `userId` when they joined, for the stay
   * that covers `epoch`; null when they were not a member then (or the epoch is unknown). A
   * message or envelope of that epoch verifies under that key only (PROTOCOL 5.1).
   * @param {string} userId
   * @param {Uint8Array} epoch
   * @returns {Uint8Array|null}
   */
  fingerprintAt(userId, epoch) {
    const n = this.indexOfEpoch(epoch);
    if (n < 0) return null;
    const stay = (this.stays.get(userId) ?? []).find((s) => s.from <= n && (s.until === null || n < s.until));
    return stay?.fingerprint ?? null;
  }

  /** Same as memberAt (CircleKit's name). */
  wasMember(userId, epoch) {
    return this.memberAt(userId, epoch);
  }

  /**
   * Checks `signed` against every rule and appends it; on any failure nothing changes.
   * @param {{op: Uint8Array, signature: Uint8Array}} signed
   * @param {Uint8Array} actorIdentity the actor's identity key as the caller knows it
   */
  async append(signed, actorIdentity) {
    const op = decodeOp(signed.op);
    requireKey(actorIdentity);
    // The asynchronous work first; the rules then run and apply without yielding.
    const hash = await opHash(signed.op);
    const actorFingerprint = await ed25519.fingerprint(actorIdentity);
    const signatureValid = await verifyOpSignature(actorIdentity, signed.op, signed.signature);

    if (!equal(op.convId, this.convId)) throw refused('the op belongs to another conversation');
    if (op.n !== this.head + 1 || !equal(op.prevHash, this.epoch)) {
      throw refused(`the op is not on top of the head (op ${op.n}, head ${this.head})`);
    }
    const actor = this.members.get(op.actor);
    if (!actor) throw refused('the actor is not a member');
    if (!equal(actorFingerprint, actor.fingerprint)) throw refused("the actor's identity key is not the one recorded for them");
    if (!signatureValid) throw new ProtocolError('bad-signature', 'bad signature: membership op');

    const members = new Map(this.members);
    let settings = this.settings;
    const isAdmin = actor.role === 'admin';
    const target = members.get(op.target);
    switch (op.action) {
      case 'genesis':
        throw refused('a chain has one genesis');
      case 'add':
        if (!isAdmin) throw refused('only admins add members');
        if (target) throw refused('the target is already a member');
        if (members.size >= MAXIMUM_MEMBERS) throw refused(`a conversation holds at most ${MAXIMUM_MEMBERS} members`);
        if (this.kind === 'direct' && !(op.n === 1 && op.role === 'admin')) {
          throw refused('a direct conversation adds its one other party, as op 1, as admin');
        }
        members.set(op.target, { role: op.role, fingerprint: op.targetFingerprint });
        break;
      case 'remove':
        if (this.kind !== 'group') throw refused('nobody is removed from a direct conversation; they leave');
        if (!isAdmin) throw refused('only admins remove members');
        if (op.target === op.actor) throw refused('members leave rather than remove themselves');
        if (!target || !equal(target.fingerprint, op.targetFingerprint)) throw refused('the target is not a member with that key');
        members.delete(op.target);
        break;
      case 'role':
        if (this.kind !== 'group') throw refused('roles are fixed in a direct conversation');
        if (!isAdmin) throw refused('only admins change roles');
        if (op.target === op.actor) throw refused('admins do not change their own role');
        if (!target || !equal(target.fingerprint, op.targetFingerprint)) throw refused('the target is not a member with that key');
        if (target.role === op.role) throw refused('the member already has that role');
        members.set(op.target, { role: op.role, fingerprint: target.fingerprint });
        break;
      case 'settings':
        if (!isAdmin) throw refused('only admins change settings');
        if (op.settings.kind !== this.kind) throw refused("a conversation's kind never changes");
        settings = op.settings;
        break;
      case 'leave': {
        const otherAdmins = [...members].filter(([userId, member]) => userId !== op.actor && member.role === 'admin').length;
        if (isAdmin && otherAdmins === 0 && members.size > 1) throw refused('the last admin makes someone else admin before leaving');
        members.delete(op.actor);
        break;
      }
      default:
        throw malformed('unknown op action');
    }
    for (const userId of this.members.keys()) {
      if (!members.has(userId)) {
        const list = this.stays.get(userId);
        if (list?.length) list[list.length - 1] = { ...list[list.length - 1], until: op.n };
      }
    }
    for (const userId of members.keys()) {
      if (!this.members.has(userId)) {
        this.stays.set(userId, [...(this.stays.get(userId) ?? []), { from: op.n, until: null, fingerprint: members.get(userId).fingerprint }]);
      }
    }
    this.members = members;
    this.settings = settings;
    this.ops.push({ op: signed.op, signature: signed.signature });
    this.hashes.push(hash);
  }

  /**
   * Takes ops as the server lists them: ones already held must be byte-identical (else
   * ProtocolError 'fork': the server showed two histories), new ones are appended in order under
   * every rule. Ops appended before a failure stay (each was verified).
   * @param {{op: Uint8Array, signature: Uint8Array}[]} listed
   * @param {(userId: string) => Uint8Array|Promise<Uint8Array>} identityKeyFor
   */
  async extend(listed, identityKeyFor) {
    for (const signed of listed) {
      const op = decodeOp(signed.op);
      if (op.n <= this.head) {
        if (!equal(await opHash(signed.op), this.hashes[op.n])) {
          throw new ProtocolError('fork', `fork alarm: op ${op.n} differs from the one this device verified before`);
        }
        continue;
      }
      if (op.n === this.head + 1 && !equal(op.prevHash, this.epoch)) {
        throw new ProtocolError('fork', `fork alarm: op ${op.n} does not follow the op ${this.head} this device verified`);
      }
      await this.append(signed, await identityKeyFor(op.actor));
    }
  }
}
