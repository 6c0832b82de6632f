/**
 * Hashes, HMAC, HKDF (RFC 5869, written out so extract and expand can be used apart), PBKDF2 and
 * AES-256-GCM over WebCrypto (docs/PROTOCOL.md section 1).
 * @module protocol/primitives
 */
import { ProtocolError, concat, random, u8 } from './bytes.js';

const subtle = crypto.subtle;
const HASH_LENGTH = 32;

/** SHA-256. @param {Uint8Array} data @returns {Promise<Uint8Array>} */
export async function sha256(data) {
  return new Uint8Array(await subtle.digest('SHA-256', data));
}

/** SHA-512. @param {Uint8Array} data @returns {Promise<Uint8Array>} */
export async function sha512(data) {
  return new Uint8Array(await subtle.digest('SHA-512', data));
}

/**
 * HMAC-SHA256. An empty key is the same as 32 zero bytes (both are zero-padded to the block),
 * which WebCrypto needs since it refuses empty HMAC keys.
 * @param {Uint8Array} key
 * @param {Uint8Array} data
 * @returns {Promise<Uint8Array>}
 */
export async function hmac(key, data) {
  const raw = key.length === 0 ? new Uint8Array(HASH_LENGTH) : key;
  const cryptoKey = await subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle.sign('HMAC', cryptoKey, data));
}

/**
 * HKDF-Extract (RFC 5869): HMAC(salt, ikm); an empty salt means 32 zero bytes.
 * @param {Uint8Array} salt
 * @param {Uint8Array} ikm
 * @returns {Promise<Uint8Array>} the pseudorandom key
 */
export async function hkdfExtract(salt, ikm) {
  return hmac(salt, ikm);
}

/**
 * HKDF-Expand (RFC 5869) with SHA-256.
 * @param {Uint8Array} prk at least 32 bytes
 * @param {Uint8Array} info
 * @param {number} length at most 255 * 32
 * @returns {Promise<Uint8Array>}
 */
export async function hkdfExpand(prk, info, length) {
  if (!Number.isInteger(length) || length < 0 || length > 255 * HASH_LENGTH) throw new RangeError('HKDF output too long');
  const out = new Uint8Array(length);
  let block = new Uint8Array(0);
  for (let counter = 1, offset = 0; offset < length; counter++) {
    block = await hmac(prk, concat(block, info, u8(counter)));
    out.set(block.subarray(0, Math.min(HASH_LENGTH, length - offset)), offset);
    offset += HASH_LENGTH;
  }
  return out;
}

/**
 * `HKDF(ikm, info, L)` of PROTOCOL 1: HKDF-SHA256 with an empty salt.
 * @param {Uint8Array} ikm
 * @param {Uint8Array} info
 * @param {number} length
 * @returns {Promise<Uint8Array>}
 */
export async function hkdf(ikm, info, length) {
  return hkdfExpand(await hkdfExtract(new Uint8Array(0), ikm), info, length);
}

/**
 * PBKDF2-HMAC-SHA256.
 * @param {Uint8Array} passwordBytes
 * @param {Uint8Array} salt
 * @param {number} iterations
 * @param {number} length in bytes
 * @returns {Promise<Uint8Array>}
 */
export async function pbkdf2(passwordBytes, salt, iterations, length) {
  const key = await subtle.importKey('raw', passwordBytes, 'PBKDF2', false, ['deriveBits']);
  const bits = await subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, key, length * 8);
  return new Uint8Array(bits);
}

/** AES-GCM nonce length in bytes. */
export const NONCE_LENGTH = 12;
/** AES-GCM tag length in bytes. */
export const TAG_LENGTH = 16;

/**
 * An AES-256-GCM CryptoKey (non-extractable) from 32 raw bytes; a CryptoKey is returned as is.
 * @param {Uint8Array|CryptoKey} key
 * @returns {Promise<CryptoKey>}
 */
export async function aesKey(key) {
  if (key instanceof Uint8Array) {
    if (key.length !== 32) throw new ProtocolError('malformed', 'an AES-256 key is 32 bytes');
    return subtle.importKey('raw', key, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  }
  return key;
}

/**
 * AES-256-GCM encryption with an explicit nonce: `ciphertext || tag`.
 * @param {Uint8Array|CryptoKey} key
 * @param {Uint8Array} nonce 12 bytes
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function aesGcmEncrypt(key, nonce, plaintext, aad) {
  if (nonce.length !== NONCE_LENGTH) throw new ProtocolError('malformed', 'an AES-GCM nonce is 12 bytes');
  const params = { name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: TAG_LENGTH * 8 };
  return new Uint8Array(await subtle.encrypt(params, await aesKey(key), plaintext));
}

/**
 * AES-256-GCM decryption of `ciphertext || tag`; any failure is a ProtocolError 'decryption-failed'.
 * @param {Uint8Array|CryptoKey} key
 * @param {Uint8Array} nonce 12 bytes
 * @param {Uint8Array} ciphertext
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function aesGcmDecrypt(key, nonce, ciphertext, aad) {
  const cryptoKey = await aesKey(key);
  if (nonce.length !== NONCE_LENGTH || ciphertext.length < TAG_LENGTH) throw decryptionFailed();
  try {
    const params = { name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: TAG_LENGTH * 8 };
    return new Uint8Array(await subtle.decrypt(params, cryptoKey, ciphertext));
  } catch {
    throw decryptionFailed();
  }
}

/**
 * Seals as `nonce || ciphertext || tag`, with a fresh random nonce unless one is given (vectors).
 * @param {Uint8Array|CryptoKey} key
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} aad
 * @param {Uint8Array} [nonce]
 * @returns {Promise<Uint8Array>}
 */
export async function aesGcmSeal(key, plaintext, aad, nonce = random(NONCE_LENGTH)) {
  return concat(nonce, await aesGcmEncrypt(key, nonce, plaintext, aad));
}

/**
 * Opens `nonce || ciphertext || tag`.
 * @param {Uint8Array|CryptoKey} key
 * @param {Uint8Array} sealed
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function aesGcmOpen(key, sealed, aad) {
  if (sealed.length < NONCE_LENGTH + TAG_LENGTH) throw decryptionFailed();
  return aesGcmDecrypt(key, sealed.subarray(0, NONCE_LENGTH), sealed.subarray(NONCE_LENGTH), aad);
}

function decryptionFailed() {
  return new ProtocolError('decryption-failed', 'decryption failed (wrong key or tampered data)');
}
