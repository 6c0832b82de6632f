/**
 * Messages (docs/PROTOCOL.md section 6, CircleKit/SenderChain.swift, MessageHeader.swift,
 * Padding.swift): the symmetric sender chain, the canonical header, padding to buckets, and
 * sealing and opening one message (AES-GCM with the header as associated data and the message
 * key's commitment after it, then the sender's identity signature over header and ciphertext).
 * @module protocol/message
 */
import {
  ProtocolError, Reader, concat, equal, field, fromUtf8, isUserId, random, u32, u64, u8, utf8,
} from './bytes.js';
import * as ed25519 from './ed25519.js';
import { aesGcmDecrypt, aesGcmEncrypt, hkdf, hmac, sha256 } from './primitives.js';

/** A chain carries at most this many messages; then the sender starts a new one. */
export const MAXIMUM_MESSAGES = 1000;
export const HEADER_VERSION = 1;
/** Message kinds by their byte value. */
export const KINDS = Object.freeze(['message', 'edit', 'delete']);
/** Content types inside the padded plaintext (4 to 6 are for the web client and the vault). */
export const CONTENT_TYPES = Object.freeze({ text: 1, edit: 2, delete: 3, attachment: 4, title: 5, settingsNotice: 6 });
export const MINIMUM_BUCKET = 64;
export const MAXIMUM_CONTENT = 64 * 1024;

const SIGNATURE_LABEL = utf8('circle/v1/msg-sig');
const MESSAGE_LABEL = utf8('circle/v1/msg');
const COMMITMENT_LABEL = utf8('circle/v1/msg-commit');
/** Bytes of the key commitment that ends every message ciphertext. */
export const COMMITMENT_SIZE = 32;

function malformed(message) {
  return new ProtocolError('malformed', message);
}

/**
 * One step of the chain: `mk_i = HMAC(ck_i, 0x01)`, `ck_{i+1} = HMAC(ck_i, 0x02)`.
 * @param {Uint8Array} ck
 * @returns {Promise<{messageKey: Uint8Array, nextChainKey: Uint8Array}>}
 */
export async function chainStep(ck) {
  return { messageKey: await hmac(ck, u8(1)), nextChainKey: await hmac(ck, u8(2)) };
}

function checkIndex(index, startIndex) {
  if (!Number.isInteger(index) || index < startIndex || index >= MAXIMUM_MESSAGES) {
    throw malformed(`message index ${index} outside the chain`);
  }
}

/**
 * `mk_index` from the chain key at `startIndex` (receivers derive keys on demand from the start).
 * @param {Uint8Array} startKey
 * @param {number} startIndex
 * @param {number} index at least startIndex, below 1,000
 * @returns {Promise<Uint8Array>}
 */
export async function messageKeyAt(startKey, startIndex, index) {
  checkIndex(index, startIndex);
  let ck = startKey;
  for (let i = startIndex; i < index; i++) ck = await hmac(ck, u8(2));
  return hmac(ck, u8(1));
}

/**
 * `key (32) || nonce (12) = HKDF(mk, "circle/v1/msg", 44)` and the key's commitment
 * `HKDF(mk, "circle/v1/msg-commit", 32)`.
 * @param {Uint8Array} mk
 * @returns {Promise<{key: Uint8Array, nonce: Uint8Array, commitment: Uint8Array}>}
 */
export async function keyAndNonce(mk) {
  const material = await hkdf(mk, MESSAGE_LABEL, 44);
  const commitment = await hkdf(mk, COMMITMENT_LABEL, COMMITMENT_SIZE);
  return { key: material.slice(0, 32), nonce: material.slice(32, 44), commitment };
}

/**
 * The sender's side of a chain: the next chain key and index. Persist `chainKey` and `index`
 * after `next()` and before the ciphertext leaves the device.
 */
export class SenderChain {
  /** @param {Uint8Array} chainKey 32 bytes @param {number} [index] */
  constructor(chainKey, index = 0) {
    if (!(chainKey instanceof Uint8Array) || chainKey.length !== 32) throw malformed('a chain key is 32 bytes');
    if (!Number.isInteger(index) || index < 0 || index > MAXIMUM_MESSAGES) throw malformed('chain index out of range');
    this.chainKey = chainKey;
    this.index = index;
  }

  /** A chain with a fresh random key. @returns {SenderChain} */
  static fresh() {
    return new SenderChain(random(32));
  }

  /** Whether the chain has carried its 1,000 messages. */
  get usedUp() {
    return this.index >= MAXIMUM_MESSAGES;
  }

  /**
   * The key and nonce of the current index, then advances (throws when used up).
   * @returns {Promise<{index: number, key: Uint8Array, nonce: Uint8Array}>}
   */
  async next() {
    if (this.usedUp) throw new ProtocolError('refused', 'the chain is used up; start a new one');
    const { messageKey, nextChainKey } = await chainStep(this.chainKey);
    const { key, nonce, commitment } = await keyAndNonce(messageKey);
    const index = this.index;
    this.chainKey = nextChainKey;
    this.index += 1;
    return { index, key, nonce, commitment };
  }

  /** The key and nonce of message `target` (at or after this index). @param {number} target */
  async keyAt(target) {
    return keyAndNonce(await messageKeyAt(this.chainKey, this.index, target));
  }
}

/**
 * Indices already accepted on one chain (a bitmap of 1,000 bits); the receiver records an index
 * only after the message opened.
 */
export class ReplayWindow {
  /** @param {Uint8Array} [bits] 125 bytes, as stored */
  constructor(bits) {
    this.bits = bits?.length === MAXIMUM_MESSAGES / 8 ? bits.slice() : new Uint8Array(MAXIMUM_MESSAGES / 8);
  }

  /** @param {number} index @returns {boolean} */
  has(index) {
    if (!Number.isInteger(index) || index < 0 || index >= MAXIMUM_MESSAGES) return false;
    return (this.bits[index >> 3] & (1 << (index & 7))) !== 0;
  }

  /** Records `index`; false if it was already there (a replay) or out of range. @param {number} index @returns {boolean} */
  add(index) {
    if (!Number.isInteger(index) || index < 0 || index >= MAXIMUM_MESSAGES || this.has(index)) return false;
    this.bits[index >> 3] |= 1 << (index & 7);
    return true;
  }
}

function checkHeader(h) {
  const isBytes = (value, length) => value instanceof Uint8Array && value.length === length;
  if (!isBytes(h.convId, 32) || !isBytes(h.epoch, 32) || !isBytes(h.deviceId, 16) || !isBytes(h.messageId, 16)
      || !(h.refersTo.length === 0 || h.refersTo.length === 16) || (h.kind === 'message') !== (h.refersTo.length === 0)) {
    throw malformed('a header field has the wrong length');
  }
  if (!isUserId(h.sender)) throw malformed('the sender is not a user id');
}

/**
 * The header's canonical bytes (PROTOCOL 6), after checking every length.
 * @param {{convId: Uint8Array, epoch: Uint8Array, sender: string, deviceId: Uint8Array, generation?: number,
 *   chainIndex: number, messageId: Uint8Array, sentAt: number, expiresAt?: number, kind?: 'message'|'edit'|'delete',
 *   refersTo?: Uint8Array}} header
 * @returns {Uint8Array}
 */
export function encodeHeader(header) {
  const h = { generation: 0, expiresAt: 0, kind: 'message', refersTo: new Uint8Array(0), ...header };
  const kind = KINDS.indexOf(h.kind);
  if (kind < 0) throw malformed('unknown message kind');
  checkHeader(h);
  return concat(
    u8(HEADER_VERSION), field(h.convId), field(h.epoch), field(utf8(h.sender)), field(h.deviceId), u32(h.generation),
    u32(h.chainIndex), field(h.messageId), u64(h.sentAt), u64(h.expiresAt), u8(kind), field(h.refersTo),
  );
}

/**
 * Parses header bytes, checking every length; unknown versions and kinds are refused.
 * @param {Uint8Array} bytes
 * @returns {object} the header object
 */
export function decodeHeader(bytes) {
  const reader = new Reader(bytes);
  if (reader.u8() !== HEADER_VERSION) throw malformed('unknown header version');
  const convId = reader.field(32);
  const epoch = reader.field(32);
  const sender = reader.field(36);
  const deviceId = reader.field(16);
  const generation = reader.u32();
  const chainIndex = reader.u32();
  const messageId = reader.field(16);
  const sentAt = reader.u64();
  const expiresAt = reader.u64();
  const kind = KINDS[reader.u8()];
  if (kind === undefined) throw malformed('unknown message kind');
  const refersTo = reader.field(16);
  reader.done();
  const header = {
    convId, epoch, sender: fromUtf8(sender), deviceId, generation, chainIndex, messageId, sentAt, expiresAt, kind, refersTo,
  };
  checkHeader(header);
  return header;
}

/** `SHA-256(header bytes)`: how an edit or delete names the original. @param {Uint8Array} headerBytes @returns {Promise<Uint8Array>} */
export async function headerHash(headerBytes) {
  return sha256(headerBytes);
}

/** The padded size for `length` bytes: 64, then powers of two. @param {number} length @returns {number} */
export function bucket(length) {
  let size = MINIMUM_BUCKET;
  while (size < length) size *= 2;
  return size;
}

/**
 * `u8(contentType) || u32(len) || content || zeros` up to the bucket; content at most 64 KiB.
 * @param {number} contentType
 * @param {Uint8Array} content
 * @returns {Uint8Array}
 */
export function pad(contentType, content) {
  if (content.length > MAXIMUM_CONTENT) throw malformed(`content larger than ${MAXIMUM_CONTENT} bytes`);
  const unpadded = concat(u8(contentType), u32(content.length), content);
  const padded = new Uint8Array(bucket(unpadded.length));
  padded.set(unpadded);
  return padded;
}

/**
 * Reverses `pad`, refusing sizes that are not a bucket, lengths beyond it and non-zero padding.
 * @param {Uint8Array} padded
 * @returns {{contentType: number, content: Uint8Array}}
 */
export function unpad(padded) {
  if (padded.length < 5 || padded.length !== bucket(padded.length)) throw malformed('not a padded size');
  const reader = new Reader(padded);
  const contentType = reader.u8();
  const length = reader.u32();
  if (length > padded.length - 5) throw malformed('length beyond the padding');
  // The smallest bucket only: a sender that pads further sends a length signal of its own.
  if (padded.length !== bucket(5 + length)) throw malformed('padded beyond the smallest bucket');
  const content = reader.bytes(length);
  if (padded.subarray(5 + length).some((byte) => byte !== 0)) throw malformed('non-zero padding');
  return { contentType, content };
}

/**
 * Encrypts `padded` under the message key with the header as associated data, and signs
 * `"circle/v1/msg-sig" || header || ciphertext` with the identity key.
 * @param {object|Uint8Array} header a header object (encoded here) or its bytes
 * @param {Uint8Array} padded
 * @param {{key: Uint8Array, nonce: Uint8Array}} messageKey from SenderChain.next() or keyAndNonce()
 * @param {CryptoKey} identityPrivate
 * @returns {Promise<{header: Uint8Array, ciphertext: Uint8Array, signature: Uint8Array}>}
 */
export async function sealMessage(header, padded, { key, nonce, commitment }, identityPrivate) {
  if (!(commitment instanceof Uint8Array) || commitment.length !== COMMITMENT_SIZE) throw malformed('a message needs its key commitment');
  const headerBytes = header instanceof Uint8Array ? header : encodeHeader(header);
  const ciphertext = concat(await aesGcmEncrypt(key, nonce, padded, headerBytes), commitment);
  const signature = await ed25519.sign(identityPrivate, concat(SIGNATURE_LABEL, headerBytes, ciphertext));
  return { header: headerBytes, ciphertext, signature };
}

/**
 * Whether the sender's identity key signed exactly this header and ciphertext (strict).
 * @param {Uint8Array} senderIdentityPub
 * @param {{header: Uint8Array, ciphertext: Uint8Array, signature: Uint8Array}} sealed
 * @returns {Promise<boolean>}
 */
export async function verifyMessage(senderIdentityPub, { header, ciphertext, signature }) {
  return ed25519.verify(senderIdentityPub, signature, concat(SIGNATURE_LABEL, header, ciphertext));
}

/**
 * The receiver's cryptographic checks, in order: parse the header; the signature under the
 * sender's pinned identity key; the index below 1,000, not below the chain's start and (with a
 * window) not seen; the key commitment; decrypt; unpad. The caller checks first that the epoch
 * is on its chain and the sender a member there, picks the chain by the header's address, and
 * records the index only after this returns.
 * @param {{header: Uint8Array, ciphertext: Uint8Array, signature: Uint8Array}} sealed
 * @param {Uint8Array} senderIdentityPub
 * @param {{chainKey: Uint8Array, startIndex: number}} chain the chain as its envelope delivered it
 * @param {ReplayWindow} [replay]
 * @returns {Promise<{header: object, padded: Uint8Array, contentType: number, content: Uint8Array}>}
 */
export async function openMessage(sealed, senderIdentityPub, { chainKey, startIndex }, replay) {
  const header = decodeHeader(sealed.header);
  if (!(await verifyMessage(senderIdentityPub, sealed))) throw new ProtocolError('bad-signature', 'bad signature: message');
  checkIndex(header.chainIndex, startIndex);
  if (replay?.has(header.chainIndex)) throw malformed('replayed message');
  const { key, nonce, commitment } = await keyAndNonce(await messageKeyAt(chainKey, startIndex, header.chainIndex));
  const length = sealed.ciphertext.length - COMMITMENT_SIZE;
  if (length < 16) throw malformed('the ciphertext is too short');
  // The same ciphertext cannot open under two members' keys: only the committed one is used.
  if (!equal(sealed.ciphertext.subarray(length), commitment)) {
    throw new ProtocolError('refused', "the message's key commitment does not match this chain's key");
  }
  const padded = await aesGcmDecrypt(key, nonce, sealed.ciphertext.subarray(0, length), sealed.header);
  return { header, padded, ...unpad(padded) };
}
