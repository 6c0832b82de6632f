/**
 * Envelopes (docs/PROTOCOL.md section 7, CircleKit/Envelope.swift): a sender chain's key and
 * start index sealed with HPKE to one member's certified X25519 key, bound to its address
 * (conversation, epoch, sender, device, generation, recipient) and signed by the sender.
 * @module protocol/envelope
 */
import { ProtocolError, Reader, concat, isUserId, u32, u8, utf8 } from './bytes.js';
import * as ed25519 from './ed25519.js';
import * as hpke from './hpke.js';
import { MAXIMUM_MESSAGES } from './message.js';
import * as x25519 from './x25519.js';

export const ENVELOPE_VERSION = 1;
const INFO_LABEL = utf8('circle/v1/envelope');
const SIGNATURE_LABEL = utf8('circle/v1/env-sig');
const EMPTY = new Uint8Array(0);

function malformed(message) {
  return new ProtocolError('malformed', message);
}

/** Throws unless every field of the address has its length. */
function checkAddress({ convId, epoch, sender, deviceId, generation, recipient }) {
  const isBytes = (value, length) => value instanceof Uint8Array && value.length === length;
  if (!isBytes(convId, 32) || !isBytes(epoch, 32) || !isBytes(deviceId, 16) || !isUserId(sender) || !isUserId(recipient)
      || !Number.isInteger(generation)) {
    throw malformed('an envelope address field has the wrong length');
  }
}

/**
 * `"circle/v1/envelope" || convId || epoch || sender || deviceId || u32(generation) || recipient`.
 * @param {{convId: Uint8Array, epoch: Uint8Array, sender: string, deviceId: Uint8Array, generation: number, recipient: string}} address
 * @returns {Uint8Array}
 */
export function envelopeInfo(address) {
  checkAddress(address);
  const { convId, epoch, sender, deviceId, generation, recipient } = address;
  return concat(INFO_LABEL, convId, epoch, utf8(sender), deviceId, u32(generation), utf8(recipient));
}

/** `"circle/v1/env-sig" || info || enc || ct`. */
function signedBytes(info, enc, ciphertext) {
  return concat(SIGNATURE_LABEL, info, enc, ciphertext);
}

/**
 * Seals a chain's key and start index to `recipientX25519Pub`, which the caller has checked
 * (certified by the recipient's pinned identity key, a member at the head), and signs it.
 * @param {object} address `{convId, epoch, sender, deviceId, generation, recipient}`
 * @param {Uint8Array} recipientX25519Pub
 * @param {{chainKey: Uint8Array, startIndex: number}} chain
 * @param {CryptoKey} identityPrivate the sender's identity key
 * @param {{ephemeral?: {privateKey: CryptoKey, publicKey: Uint8Array}}} [options] a fixed ephemeral key, for vectors only
 * @returns {Promise<{enc: Uint8Array, ciphertext: Uint8Array, signature: Uint8Array}>}
 */
export async function sealEnvelope(address, recipientX25519Pub, { chainKey, startIndex }, identityPrivate, { ephemeral } = {}) {
  const info = envelopeInfo(address);
  if (!(chainKey instanceof Uint8Array) || chainKey.length !== 32) throw malformed('a chain key is 32 bytes');
  x25519.checkPublicKey(recipientX25519Pub);
  if (!Number.isInteger(startIndex) || startIndex < 0 || startIndex >= MAXIMUM_MESSAGES) throw malformed('start index beyond the chain');
  const plaintext = concat(u8(ENVELOPE_VERSION), chainKey, u32(startIndex));
  const { enc, ciphertext } = await hpke.seal(recipientX25519Pub, info, EMPTY, plaintext, { ephemeral });
  plaintext.fill(0);
  const signature = await ed25519.sign(identityPrivate, signedBytes(info, enc, ciphertext));
  return { enc, ciphertext, signature };
}

/**
 * Whether the sender's identity key signed exactly this address, enc and ciphertext (strict).
 * @param {object} address
 * @param {{enc: Uint8Array, ciphertext: Uint8Array, signature: Uint8Array}} envelope
 * @param {Uint8Array} senderIdentityPub
 * @returns {Promise<boolean>}
 */
export async function verifyEnvelope(address, { enc, ciphertext, signature }, senderIdentityPub) {
  return ed25519.verify(senderIdentityPub, signature, signedBytes(envelopeInfo(address), enc, ciphertext));
}

/**
 * Checks the sender's signature first (under their pinned identity key), then opens with the
 * recipient's key and parses. `address` is the one the receiver expects: an envelope replayed
 * into another conversation, epoch, generation or to another recipient fails.
 * @param {object} address `{convId, epoch, sender, deviceId, generation, recipient}`
 * @param {{enc: Uint8Array, ciphertext: Uint8Array, signature: Uint8Array}} envelope
 * @param {Uint8Array} senderIdentityPub
 * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} recipient the recipient's X25519 key pair
 * @returns {Promise<{chainKey: Uint8Array, startIndex: number}>}
 */
export async function openEnvelope(address, envelope, senderIdentityPub, recipient) {
  const info = envelopeInfo(address);
  if (!(await verifyEnvelope(address, envelope, senderIdentityPub))) throw new ProtocolError('bad-signature', 'bad signature: envelope');
  const plaintext = await hpke.open(recipient, envelope.enc, info, EMPTY, envelope.ciphertext);
  const reader = new Reader(plaintext);
  if (reader.u8() !== ENVELOPE_VERSION) throw malformed('unknown envelope version');
  const chainKey = reader.bytes(32);
  const startIndex = reader.u32();
  reader.done();
  plaintext.fill(0);
  if (startIndex >= MAXIMUM_MESSAGES) throw malformed('start index beyond the chain');
  return { chainKey, startIndex };
}
