/**
 * The pins blob synced through the server (docs/PROTOCOL.md section 5.1):
 * `AES-GCM(HKDF(vmk, "circle/v1/pins"), pins, aad = "circle/v1/pins" || userId || u64(version))`,
 * so the server can neither read it nor serve one user's or one version's blob as another's.
 * The plaintext (the pins, JSON as CircleKit writes it) is the caller's.
 * @module protocol/pins
 */
import { concat, u64, utf8 } from './bytes.js';
import { aesGcmOpen, aesGcmSeal, hkdf } from './primitives.js';

const LABEL = utf8('circle/v1/pins');

/**
 * The pins key, `HKDF(vmk, "circle/v1/pins", 32)`, as a non-extractable AES-GCM CryptoKey.
 * @param {Uint8Array} vmk the vault master key from the bundle
 * @returns {Promise<CryptoKey>}
 */
export async function pinsKeyFromVmk(vmk) {
  const raw = await hkdf(vmk, LABEL, 32);
  try {
    return await crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  } finally {
    raw.fill(0);
  }
}

/** `"circle/v1/pins" || userId || u64(version)`. @param {string} userId @param {number|bigint} version @returns {Uint8Array} */
export function pinsAad(userId, version) {
  return concat(LABEL, utf8(userId), u64(version));
}

/**
 * Seals the pins as `nonce || ciphertext || tag`.
 * @param {CryptoKey|Uint8Array} pinsKey
 * @param {Uint8Array} plaintextBytes
 * @param {string} userId
 * @param {number|bigint} version the version this blob is written as
 * @param {Uint8Array} [nonce] fixed only in tests
 * @returns {Promise<Uint8Array>}
 */
export async function sealPins(pinsKey, plaintextBytes, userId, version, nonce) {
  return aesGcmSeal(pinsKey, plaintextBytes, pinsAad(userId, version), nonce);
}

/**
 * Opens a pins blob; another user's or another version's blob fails ('decryption-failed').
 * @param {CryptoKey|Uint8Array} pinsKey
 * @param {Uint8Array} blob
 * @param {string} userId
 * @param {number|bigint} version the version the server listed it under
 * @returns {Promise<Uint8Array>}
 */
export async function openPins(pinsKey, blob, userId, version) {
  return aesGcmOpen(pinsKey, blob, pinsAad(userId, version));
}
