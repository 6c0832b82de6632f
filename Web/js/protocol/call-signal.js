/**
 * Call signals (docs/PROTOCOL.md section 10, CircleProtocol/CallSignal.swift): SDP, ICE
 * candidates and media state sealed with HPKE to the recipient's certified X25519 key, bound to
 * the call, both members, both devices and a sequence number, and signed by the sender, so the
 * relay can neither read nor replace them (a swapped DTLS fingerprint fails the signature).
 * @module protocol/call-signal
 */
import { ProtocolError, Reader, concat, isUserId, u64, u8, utf8 } from './bytes.js';
import * as ed25519 from './ed25519.js';
import * as hpke from './hpke.js';
import * as x25519 from './x25519.js';

export const CALL_SIGNAL_VERSION = 1;
/** The largest sealed plaintext: an SDP with many codecs and candidates fits. */
export const MAXIMUM_PLAINTEXT = 48 * 1024;
const INFO_LABEL = utf8('circle/v1/call-signal');
const SIGNATURE_LABEL = utf8('circle/v1/call-sig');
const EMPTY = new Uint8Array(0);
/** version, seq, enc, the AES-GCM tag and the signature. */
export const OVERHEAD = 1 + 8 + 32 + 16 + 64;

function malformed(message) {
  return new ProtocolError('malformed', message);
}

/** Throws unless every field of the address has its length and `seq` is a safe integer. */
function checkAddress({ callId, sender, senderDevice, recipient, recipientDevice, seq }) {
  const isBytes = (value, length) => value instanceof Uint8Array && value.length === length;
  if (!isBytes(callId, 16) || !isBytes(senderDevice, 16) || !isBytes(recipientDevice, 16) || !isUserId(sender) || !isUserId(recipient)
      || !Number.isSafeInteger(seq) || seq < 0) {
    throw malformed('a call signal address field has the wrong length');
  }
}

/**
 * `"circle/v1/call-signal" || callId || sender || senderDevice || recipient || recipientDevice || u64(seq)`.
 * @param {{callId: Uint8Array, sender: string, senderDevice: Uint8Array, recipient: string, recipientDevice: Uint8Array, seq: number}} address
 * @returns {Uint8Array}
 */
export function callSignalInfo(address) {
  checkAddress(address);
  const { callId, sender, senderDevice, recipient, recipientDevice, seq } = address;
  return concat(INFO_LABEL, callId, utf8(sender), senderDevice, utf8(recipient), recipientDevice, u64(seq));
}

/**
 * Seals `plaintext` (a signal's JSON) to `recipientX25519Pub`, which the caller has checked
 * (certified by the recipient's pinned identity key), and signs it.
 * @param {object} address `{callId, sender, senderDevice, recipient, recipientDevice, seq}`
 * @param {Uint8Array} recipientX25519Pub
 * @param {Uint8Array} plaintext
 * @param {CryptoKey} identityPrivate the sender's identity key
 * @param {{ephemeral?: {privateKey: CryptoKey, publicKey: Uint8Array}}} [options] a fixed ephemeral key, for vectors only
 * @returns {Promise<Uint8Array>} the wire form
 */
export async function sealCallSignal(address, recipientX25519Pub, plaintext, identityPrivate, { ephemeral } = {}) {
  const info = callSignalInfo(address);
  if (!(plaintext instanceof Uint8Array) || plaintext.length === 0 || plaintext.length > MAXIMUM_PLAINTEXT) {
    throw malformed(`a call signal holds 1 to ${MAXIMUM_PLAINTEXT} bytes`);
  }
  x25519.checkPublicKey(recipientX25519Pub);
  const { enc, ciphertext } = await hpke.seal(recipientX25519Pub, info, EMPTY, plaintext, { ephemeral });
  const signature = await ed25519.sign(identityPrivate, concat(SIGNATURE_LABEL, info, enc, ciphertext));
  return concat(u8(CALL_SIGNAL_VERSION), u64(address.seq), enc, ciphertext, signature);
}

/**
 * Reads the wire form: `{seq, enc, ciphertext, signature}` (a `seq` beyond 2^53 is refused).
 * @param {Uint8Array} wire
 */
export function parseCallSignal(wire) {
  if (!(wire instanceof Uint8Array) || wire.length <= OVERHEAD || wire.length > OVERHEAD + MAXIMUM_PLAINTEXT) {
    throw malformed('a call signal has an impossible length');
  }
  const reader = new Reader(wire);
  if (reader.u8() !== CALL_SIGNAL_VERSION) throw malformed('unknown call signal version');
  const seq = reader.u64();
  const enc = reader.bytes(32);
  const ciphertext = reader.bytes(wire.length - OVERHEAD + 16);
  const signature = reader.bytes(64);
  reader.done();
  return { seq, enc, ciphertext, signature };
}

/**
 * Checks the sender's signature (under their pinned identity key) over the address the
 * recipient expects, with the wire's `seq`, then opens. A signal for another call, device or
 * member, altered anywhere or re-signed by anyone else, fails.
 * @param {object} address `{callId, sender, senderDevice, recipient, recipientDevice}` (`seq` comes from the wire)
 * @param {Uint8Array} wire
 * @param {Uint8Array} senderIdentityPub
 * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} recipient the recipient's X25519 key pair
 * @returns {Promise<{seq: number, plaintext: Uint8Array}>}
 */
export async function openCallSignal(address, wire, senderIdentityPub, recipient) {
  const { seq, enc, ciphertext, signature } = parseCallSignal(wire);
  const info = callSignalInfo({ ...address, seq });
  if (!(await ed25519.verify(senderIdentityPub, signature, concat(SIGNATURE_LABEL, info, enc, ciphertext)))) {
    throw new ProtocolError('bad-signature', 'bad signature: call signal');
  }
  return { seq, plaintext: await hpke.open(recipient, enc, info, EMPTY, ciphertext) };
}
