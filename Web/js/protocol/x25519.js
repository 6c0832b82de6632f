/**
 * X25519 agreement keys over WebCrypto, with Circle's explicit checks (docs/PROTOCOL.md
 * section 3): peer keys with the top bit clear, u < p and not of small order; an all-zero
 * shared secret is refused.
 * @module protocol/x25519
 */
import { concat, fromB64u, fromHex, random, ProtocolError } from './bytes.js';
import { ONE, P, P_MINUS_ONE, ZERO, isOneOf, lessThan, requireLength, weakKey } from './curve.js';

const subtle = crypto.subtle;
const PKCS8_PREFIX = fromHex('302e020100300506032b656e04220420');

/** u-coordinates of the points of small order. */
const SMALL_ORDER_U = [
  ZERO, ONE, P_MINUS_ONE,
  fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'),
  fromHex('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'),
];

/**
 * Throws a ProtocolError 'weak-key' unless `pub` is an X25519 public key Circle accepts:
 * 32 bytes, top bit clear, u < p, not of small order.
 * @param {Uint8Array} pub
 */
export function checkPublicKey(pub) {
  requireLength(pub, 32, 'an X25519 public key');
  if ((pub[31] & 0x80) !== 0 || !lessThan(pub, P)) throw weakKey('the X25519 public key is not a canonical encoding');
  if (isOneOf(pub, SMALL_ORDER_U)) throw weakKey('the X25519 public key is a point of small order');
}

/**
 * Imports a 32-byte private key: a non-extractable CryptoKey for deriveBits, and the public key.
 * @param {Uint8Array} raw
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>}
 */
export async function importPrivate(raw) {
  requireLength(raw, 32, 'an X25519 private key');
  const pkcs8 = concat(PKCS8_PREFIX, raw);
  try {
    const extractable = await subtle.importKey('pkcs8', pkcs8, { name: 'X25519' }, true, ['deriveBits']);
    const jwk = await subtle.exportKey('jwk', extractable);
    const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'X25519' }, false, ['deriveBits']);
    return { privateKey, publicKey: fromB64u(jwk.x) };
  } finally {
    pkcs8.fill(0);
  }
}

/**
 * A fresh key pair; `raw` is the private key's bytes (needed once, for the key bundle).
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array, raw: Uint8Array}>}
 */
export async function generate() {
  const raw = random(32);
  return { ...(await importPrivate(raw)), raw };
}

/**
 * X25519(privateKey, peerPublic) after checking the peer key; an all-zero result is refused.
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} peerPublic
 * @returns {Promise<Uint8Array>} 32 bytes
 */
export async function dh(privateKey, peerPublic) {
  checkPublicKey(peerPublic);
  let shared;
  try {
    const peer = await subtle.importKey('raw', peerPublic, { name: 'X25519' }, false, []);
    shared = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: peer }, privateKey, 256));
  } catch {
    throw new ProtocolError('weak-key', 'X25519 agreement failed');
  }
  if (shared.every((byte) => byte === 0)) throw weakKey('the X25519 result is all zero');
  return shared;
}
