/**
 * Login keys, the key bundle, the kx-cert and the recovery key (docs/PROTOCOL.md sections 2
 * and 3, CircleKit/AccountKeys.swift).
 * @module protocol/account
 */
import { ProtocolError, concat, equal, fromHex, hex, random, u16, u32, u8, utf8 } from './bytes.js';
import * as ed25519 from './ed25519.js';
import { aesGcmOpen, aesGcmSeal, hkdf, pbkdf2, sha256 } from './primitives.js';
import { pinsKeyFromVmk } from './pins.js';
import { vaultWrapKey } from './vault.js';
import * as x25519 from './x25519.js';

/** The only KDF clients accept, and its bounds. */
export const KDF_NAME = 'PBKDF2-SHA256';
export const MINIMUM_ITERATIONS = 600_000;
export const MAXIMUM_ITERATIONS = 10_000_000;

export const BUNDLE_VERSION = 1;
export const BUNDLE_LABEL = 'circle/v1/bundle';
export const RECOVERY_LABEL = 'circle/v1/recovery-bundle';
const BUNDLE_LENGTH = 97;

/**
 * Refuses, before anything is sent, any KDF but PBKDF2-SHA256 and any iteration count below
 * 600,000 or above 10,000,000 (ProtocolError 'refused-kdf').
 * @param {{name: string, iterations: number}} kdf as prelogin returned it
 */
export function checkKdf(kdf) {
  const name = kdf?.name;
  const iterations = kdf?.iterations;
  if (name !== KDF_NAME) throw new ProtocolError('refused-kdf', `the server offered ${name}; only ${KDF_NAME} is accepted`);
  if (!Number.isSafeInteger(iterations)) throw new ProtocolError('refused-kdf', 'the iteration count is not an integer');
  if (iterations < MINIMUM_ITERATIONS) {
    throw new ProtocolError('refused-kdf', `the server offered ${iterations} iterations; at least ${MINIMUM_ITERATIONS} are required`);
  }
  if (iterations > MAXIMUM_ITERATIONS) throw new ProtocolError('refused-kdf', `${iterations} iterations is more than ${MAXIMUM_ITERATIONS}`);
}

/**
 * `SHA-256("circle/v1/origin-salt" || u16(len(origin)) || origin || serverId || username ||
 * salt)`, bound to the origin this page was loaded from, so keys derived here are useless at any
 * other server, whatever prelogin answer it replays. Without an origin (an account made before
 * the binding): `SHA-256("circle/v1/salt" || serverId || username || salt)`.
 * @param {string|null} origin the page's `location.origin`, or null for an unbound account
 * @param {string} serverId 32 lowercase hex digits
 * @param {string} username normalised (lowercase)
 * @param {Uint8Array} salt the server's 32-byte salt
 * @returns {Promise<Uint8Array>}
 */
export async function pbkdf2Salt(origin, serverId, username, salt) {
  if (origin === null || origin === undefined) return sha256(concat(utf8('circle/v1/salt'), utf8(serverId), utf8(username), salt));
  const bytes = utf8(origin);
  return sha256(concat(utf8('circle/v1/origin-salt'), u16(bytes.length), bytes, utf8(serverId), utf8(username), salt));
}

/**
 * PBKDF2 and then HKDF into `authKey` (sent to the server) and `kek` (opens the bundle; never
 * leaves the client). Checks the KDF first; the password is NFC-normalised, the username lowercased.
 * Slow on purpose (hundreds of milliseconds).
 * `origin` is the page's (null only for an account made before the binding, PROTOCOL 2).
 * @param {{origin: string|null, serverId: string, username: string, salt: Uint8Array, password: string, iterations: number, name?: string}} params
 * @returns {Promise<{authKey: Uint8Array, kek: Uint8Array}>}
 */
export async function deriveLoginKeys({ origin = null, serverId, username, salt, password, iterations, name = KDF_NAME }) {
  checkKdf({ name, iterations });
  if (!(salt instanceof Uint8Array) || salt.length !== 32) throw new ProtocolError('malformed', 'the server salt must be 32 bytes');
  const passwordBytes = utf8(password.normalize('NFC'));
  const master = await pbkdf2(passwordBytes, await pbkdf2Salt(origin, serverId, username.toLowerCase(), salt), iterations, 32);
  passwordBytes.fill(0);
  const params = concat(utf8(KDF_NAME), u32(iterations));
  try {
    return {
      authKey: await hkdf(master, concat(utf8('circle/v1/auth'), params), 32),
      kek: await hkdf(master, concat(utf8('circle/v1/kek'), params), 32),
    };
  } finally {
    master.fill(0);
  }
}

/**
 * Fresh private key material for a new account.
 * @returns {{identitySeed: Uint8Array, x25519Private: Uint8Array, vmk: Uint8Array}}
 */
export function generateAccountKeys() {
  return { identitySeed: random(32), x25519Private: random(32), vmk: random(32) };
}

/**
 * `u8(1) || identitySeed || x25519Private || vmk` (97 bytes).
 * @param {{identitySeed: Uint8Array, x25519Private: Uint8Array, vmk: Uint8Array}} keys
 * @returns {Uint8Array}
 */
export function encodeBundle({ identitySeed, x25519Private, vmk }) {
  for (const part of [identitySeed, x25519Private, vmk]) {
    if (!(part instanceof Uint8Array) || part.length !== 32) throw new ProtocolError('malformed', 'bundle keys are 32 bytes each');
  }
  return concat(u8(BUNDLE_VERSION), identitySeed, x25519Private, vmk);
}

function checkBundle(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== BUNDLE_LENGTH || bytes[0] !== BUNDLE_VERSION) {
    throw new ProtocolError('malformed', 'unknown bundle version');
  }
}

/**
 * Splits a bundle (copies), refusing any other length or version.
 * @param {Uint8Array} bytes
 * @returns {{identitySeed: Uint8Array, x25519Private: Uint8Array, vmk: Uint8Array}}
 */
export function decodeBundle(bytes) {
  checkBundle(bytes);
  return { identitySeed: bytes.slice(1, 33), x25519Private: bytes.slice(33, 65), vmk: bytes.slice(65, 97) };
}

function bundleAad(label, userId) {
  return concat(utf8(label), utf8(userId), u8(BUNDLE_VERSION));
}

function bundleBytes(bundle) {
  if (!(bundle instanceof Uint8Array)) return encodeBundle(bundle);
  checkBundle(bundle);
  return bundle;
}

async function openWithLabel(key, sealed, userId, label) {
  const plaintext = await aesGcmOpen(key, sealed, bundleAad(label, userId));
  checkBundle(plaintext);
  return plaintext;
}

/**
 * `AES-GCM(kek, bundle, aad = "circle/v1/bundle" || userId || u8(1))` as `nonce || ct || tag`.
 * @param {Uint8Array} kek
 * @param {Uint8Array|{identitySeed: Uint8Array, x25519Private: Uint8Array, vmk: Uint8Array}} bundle bytes or keys
 * @param {string} userId
 * @param {Uint8Array} [nonce] fixed only in tests
 * @returns {Promise<Uint8Array>}
 */
export async function sealBundle(kek, bundle, userId, nonce) {
  return aesGcmSeal(kek, bundleBytes(bundle), bundleAad(BUNDLE_LABEL, userId), nonce);
}

/**
 * Opens the sealed bundle: its 97 bytes (pass them to `unlockBundle`).
 * @param {Uint8Array} kek
 * @param {Uint8Array} sealed
 * @param {string} userId
 * @returns {Promise<Uint8Array>}
 */
export async function openBundle(kek, sealed, userId) {
  return openWithLabel(kek, sealed, userId, BUNDLE_LABEL);
}

/**
 * Imports the bundle's keys and refuses them ('weak-key') unless both public keys equal the
 * account's published ones. The caller's `bundleBytes` are left as they are. The vault master
 * key is only kept as the two non-extractable keys derived from it: `pinsKey` (PROTOCOL 5.1)
 * and `vaultWrapKey` (PROTOCOL 9.3, for vault.wrapFileKey / unwrapFileKey).
 * @param {Uint8Array} bundleBytes
 * @param {{userId: string, identityKey: Uint8Array, x25519Key: Uint8Array}} published
 * @returns {Promise<{userId: string, identity: {privateKey: CryptoKey, publicKey: Uint8Array},
 *   x25519: {privateKey: CryptoKey, publicKey: Uint8Array}, pinsKey: CryptoKey, vaultWrapKey: CryptoKey}>}
 */
export async function unlockBundle(bundleBytes, { userId, identityKey, x25519Key }) {
  const keys = decodeBundle(bundleBytes);
  try {
    const identity = await ed25519.importSeed(keys.identitySeed);
    const agreement = await x25519.importPrivate(keys.x25519Private);
    if (!equal(identity.publicKey, identityKey) || !equal(agreement.publicKey, x25519Key)) {
      throw new ProtocolError('weak-key', "the bundle's private keys do not match the account's public keys");
    }
    return {
      userId, identity, x25519: agreement, pinsKey: await pinsKeyFromVmk(keys.vmk), vaultWrapKey: await vaultWrapKey(keys.vmk),
    };
  } finally {
    keys.identitySeed.fill(0);
    keys.x25519Private.fill(0);
    keys.vmk.fill(0);
  }
}

/**
 * `"circle/v1/kx-cert" || userId || x25519Pub`.
 * @param {string} userId
 * @param {Uint8Array} x25519Pub
 * @returns {Uint8Array}
 */
export function kxCertMessage(userId, x25519Pub) {
  return concat(utf8('circle/v1/kx-cert'), utf8(userId), x25519Pub);
}

/**
 * The identity key's signature certifying the agreement key.
 * @param {CryptoKey} identityPrivate
 * @param {string} userId
 * @param {Uint8Array} x25519Pub
 * @returns {Promise<Uint8Array>}
 */
export async function makeKxCert(identityPrivate, userId, x25519Pub) {
  return ed25519.sign(identityPrivate, kxCertMessage(userId, x25519Pub));
}

/**
 * Whether `cert` certifies `x25519Pub` for `userId` under `identityPub` (strict checks on the
 * signature, and the X25519 key must be one Circle accepts).
 * @param {Uint8Array} identityPub
 * @param {string} userId
 * @param {Uint8Array} x25519Pub
 * @param {Uint8Array} cert
 * @returns {Promise<boolean>}
 */
export async function verifyKxCert(identityPub, userId, x25519Pub, cert) {
  try {
    x25519.checkPublicKey(x25519Pub);
  } catch {
    return false;
  }
  return ed25519.verify(identityPub, cert, kxCertMessage(userId, x25519Pub));
}

/** 16 random bytes. @returns {Uint8Array} */
export function generateRecoveryKey() {
  return random(16);
}

/** "1a2b-3c4d-..." (8 groups of 4 hex digits). @param {Uint8Array} bytes 16 bytes @returns {string} */
export function formatRecoveryKey(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 16) throw new ProtocolError('malformed', 'a recovery key is 16 bytes');
  return hex(bytes).match(/.{4}/g).join('-');
}

/**
 * Reads a recovery key as typed: hex digits in either case, with any dashes and white space
 * between them; anything else, or other than 32 digits, throws ('malformed').
 * @param {string} text
 * @returns {Uint8Array} 16 bytes
 */
export function parseRecoveryKey(text) {
  if (typeof text !== 'string' || !/^[0-9a-fA-F\s-]*$/.test(text)) throw new ProtocolError('malformed', 'a recovery key has hex digits only');
  const digits = text.replace(/[\s-]/g, '');
  if (digits.length !== 32) throw new ProtocolError('malformed', 'a recovery key has 32 hex digits');
  return fromHex(digits);
}

/**
 * `recoveryAuthKey` (proves the key to the server) and `recoveryKek` (opens the recovery bundle).
 * @param {Uint8Array} key 16 bytes
 * @returns {Promise<{authKey: Uint8Array, kek: Uint8Array}>}
 */
export async function deriveRecoveryKeys(key) {
  if (!(key instanceof Uint8Array) || key.length !== 16) throw new ProtocolError('malformed', 'a recovery key is 16 bytes');
  return {
    authKey: await hkdf(key, utf8('circle/v1/recovery-auth'), 32),
    kek: await hkdf(key, utf8('circle/v1/recovery-kek'), 32),
  };
}

/**
 * `AES-GCM(recoveryKek, bundle, aad = "circle/v1/recovery-bundle" || userId || u8(1))`.
 * @param {Uint8Array} recoveryKek
 * @param {Uint8Array|{identitySeed: Uint8Array, x25519Private: Uint8Array, vmk: Uint8Array}} bundle
 * @param {string} userId
 * @param {Uint8Array} [nonce] fixed only in tests
 * @returns {Promise<Uint8Array>}
 */
export async function sealRecoveryBundle(recoveryKek, bundle, userId, nonce) {
  return aesGcmSeal(recoveryKek, bundleBytes(bundle), bundleAad(RECOVERY_LABEL, userId), nonce);
}

/**
 * Opens the recovery bundle: its 97 bytes.
 * @param {Uint8Array} recoveryKek
 * @param {Uint8Array} sealed
 * @param {string} userId
 * @returns {Promise<Uint8Array>}
 */
export async function openRecoveryBundle(recoveryKek, sealed, userId) {
  return openWithLabel(recoveryKek, sealed, userId, RECOVERY_LABEL);
}
