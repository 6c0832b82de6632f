/**
 * Ed25519 identity keys over WebCrypto, with Circle's strict checks before any use
 * (docs/PROTOCOL.md section 3): public keys and signature R values canonical and not of small
 * order, S below the group order L. Signatures are verify-only in the vectors: any valid one verifies.
 * @module protocol/ed25519
 */
import { concat, fromB64u, fromHex, ProtocolError } from './bytes.js';
import { L, ONE, P, P_MINUS_ONE, ZERO, isOneOf, lessThan, requireLength, weakKey } from './curve.js';
import { isInPrimeOrderSubgroup } from './edwards.js';
import { sha256 } from './primitives.js';

const subtle = crypto.subtle;
const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');

/** y-coordinates of the points of order 1, 2, 4 and 8 (sign bit cleared). */
const SMALL_ORDER_Y = [
  ZERO, ONE, P_MINUS_ONE,
  fromHex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'),
  fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'),
];

function clearingTopBit(bytes) {
  const copy = bytes.slice();
  copy[31] &= 0x7f;
  return copy;
}

/** Canonical point encoding: y < p, and x = 0 not marked negative. @param {Uint8Array} bytes @returns {boolean} */
export function isCanonicalPoint(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) return false;
  const y = clearingTopBit(bytes);
  if (!lessThan(y, P)) return false;
  const negative = (bytes[31] & 0x80) !== 0;
  return !(negative && isOneOf(y, [ONE, P_MINUS_ONE]));
}

/** Whether the encoding is one of the points of order 1, 2, 4 or 8. @param {Uint8Array} bytes @returns {boolean} */
export function isSmallOrderPoint(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) return true;
  return isOneOf(clearingTopBit(bytes), SMALL_ORDER_Y);
}

/**
 * Throws a ProtocolError 'weak-key' unless `pub` is an Ed25519 public key Circle accepts:
 * 32 bytes, canonical, not of small order.
 * @param {Uint8Array} pub
 */
export function checkPublicKey(pub) {
  requireLength(pub, 32, 'an Ed25519 public key');
  if (!isCanonicalPoint(pub)) throw weakKey('the Ed25519 public key is not a canonical encoding');
  if (isSmallOrderPoint(pub)) throw weakKey('the Ed25519 public key is a point of small order');
}

/**
 * Throws a ProtocolError 'weak-key' unless `pub` is an identity key Circle registers or pins:
 * as `checkPublicKey`, and in the prime-order subgroup (not a valid key plus a torsion point).
 * @param {Uint8Array} pub
 */
export function checkIdentityKey(pub) {
  checkPublicKey(pub);
  if (!isInPrimeOrderSubgroup(pub)) throw weakKey('the Ed25519 public key is not in the prime-order subgroup (it has a small-order component)');
}

/**
 * Throws a ProtocolError unless `sig` is 64 bytes with R canonical and not of small order, and S < L.
 * @param {Uint8Array} sig
 */
export function checkSignature(sig) {
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new ProtocolError('bad-signature', 'a signature is 64 bytes');
  const r = sig.subarray(0, 32);
  const s = sig.subarray(32, 64);
  if (!isCanonicalPoint(r)) throw new ProtocolError('bad-signature', 'the signature R is not a canonical encoding');
  if (isSmallOrderPoint(r)) throw new ProtocolError('bad-signature', 'the signature R is a point of small order');
  if (!lessThan(s, L)) throw new ProtocolError('bad-signature', 'the signature S is not below the group order');
}

/**
 * Imports a 32-byte seed: a non-extractable signing key, and the public key's bytes.
 * @param {Uint8Array} seed
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>}
 */
export async function importSeed(seed) {
  requireLength(seed, 32, 'an Ed25519 seed');
  const pkcs8 = concat(PKCS8_PREFIX, seed);
  try {
    const extractable = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
    const jwk = await subtle.exportKey('jwk', extractable);
    const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
    return { privateKey, publicKey: fromB64u(jwk.x) };
  } finally {
    pkcs8.fill(0);
  }
}

/**
 * Signs `message`.
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} message
 * @returns {Promise<Uint8Array>} 64 bytes
 */
export async function sign(privateKey, message) {
  return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, privateKey, message));
}

/**
 * Strict verification: the key and R canonical and not of small order, S < L, then the
 * signature itself. Never throws: false on any failure.
 * @param {Uint8Array} publicKey
 * @param {Uint8Array} signature
 * @param {Uint8Array} message
 * @returns {Promise<boolean>}
 */
export async function verify(publicKey, signature, message) {
  try {
    checkPublicKey(publicKey);
    checkSignature(signature);
    const key = await subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
    return await subtle.verify({ name: 'Ed25519' }, key, signature, message);
  } catch {
    return false;
  }
}

/** `SHA-256(identityPub)`: how membership ops name a member's key. @param {Uint8Array} pub @returns {Promise<Uint8Array>} */
export async function fingerprint(pub) {
  return sha256(pub);
}
