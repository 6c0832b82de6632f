/**
 * HPKE (RFC 9180) for Circle's one suite, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
 * AES-256-GCM (kem 0x0020, kdf 0x0001, aead 0x0002), step by step as CircleKit/HPKE.swift
 * (docs/PROTOCOL.md section 4). Circle uses the base mode only; the psk, auth and auth-psk
 * setups exist so every RFC 9180 vector of the suite can be checked.
 * @module protocol/hpke
 */
import { ProtocolError, concat, u16, utf8 } from './bytes.js';
import { aesGcmDecrypt, aesGcmEncrypt, aesKey, hkdfExpand, hkdfExtract } from './primitives.js';
import * as x25519 from './x25519.js';

export const MODE_BASE = 0;
export const MODE_PSK = 1;
export const MODE_AUTH = 2;
export const MODE_AUTH_PSK = 3;

const KEM_ID = u16(0x0020);
const KDF_ID = u16(0x0001);
const AEAD_ID = u16(0x0002);
/** `"KEM" || kem_id`: the suite id of the KEM's labeled HKDF. */
export const KEM_SUITE = concat(utf8('KEM'), KEM_ID);
/** `"HPKE" || kem_id || kdf_id || aead_id`: the suite id of the key schedule. */
export const HPKE_SUITE = concat(utf8('HPKE'), KEM_ID, KDF_ID, AEAD_ID);
const VERSION = utf8('HPKE-v1');
const EMPTY = new Uint8Array(0);
const N_SECRET = 32;
const N_KEY = 32;
const N_NONCE = 12;

function labelBytes(label) {
  return typeof label === 'string' ? utf8(label) : label;
}

/**
 * LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" || suiteId || label || ikm).
 * @param {Uint8Array} suiteId KEM_SUITE or HPKE_SUITE
 * @param {Uint8Array} salt
 * @param {string|Uint8Array} label
 * @param {Uint8Array} ikm
 * @returns {Promise<Uint8Array>}
 */
export async function labeledExtract(suiteId, salt, label, ikm) {
  return hkdfExtract(salt, concat(VERSION, suiteId, labelBytes(label), ikm));
}

/**
 * LabeledExpand(prk, label, info, L) = HKDF-Expand(prk, u16(L) || "HPKE-v1" || suiteId || label || info, L).
 * @param {Uint8Array} suiteId
 * @param {Uint8Array} prk
 * @param {string|Uint8Array} label
 * @param {Uint8Array} info
 * @param {number} length
 * @returns {Promise<Uint8Array>}
 */
export async function labeledExpand(suiteId, prk, label, info, length) {
  return hkdfExpand(prk, concat(u16(length), VERSION, suiteId, labelBytes(label), info), length);
}

/**
 * DeriveKeyPair(ikm) of DHKEM(X25519): `raw` is the private key's bytes (skXm in the vectors).
 * @param {Uint8Array} ikm
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array, raw: Uint8Array}>}
 */
export async function deriveKeyPair(ikm) {
  const prk = await labeledExtract(KEM_SUITE, EMPTY, 'dkp_prk', ikm);
  const raw = await labeledExpand(KEM_SUITE, prk, 'sk', EMPTY, 32);
  return { ...(await x25519.importPrivate(raw)), raw };
}

async function extractAndExpand(dh, kemContext) {
  const prk = await labeledExtract(KEM_SUITE, EMPTY, 'eae_prk', dh);
  return labeledExpand(KEM_SUITE, prk, 'shared_secret', kemContext, N_SECRET);
}

/**
 * The state of one HPKE context: the key schedule's outputs (exposed for the vectors) and the
 * sequence number. `seal` and `open` must be called in order; a failed `open` does not advance.
 */
export class Context {
  constructor({ mode, sharedSecret, keyScheduleContext, secret, key, baseNonce, exporterSecret }) {
    this.mode = mode;
    this.sharedSecret = sharedSecret;
    this.keyScheduleContext = keyScheduleContext;
    this.secret = secret;
    this.key = key;
    this.baseNonce = baseNonce;
    this.exporterSecret = exporterSecret;
    /** The sequence number of the next seal or open. */
    this.seq = 0;
    this.cryptoKey = null;
  }

  /** base nonce XOR the big-endian sequence number. @param {number} seq @returns {Uint8Array} */
  nonce(seq = this.seq) {
    const out = this.baseNonce.slice();
    let value = BigInt(seq);
    for (let index = N_NONCE - 1; index >= 0 && value > 0n; index--) {
      out[index] ^= Number(value & 0xffn);
      value >>= 8n;
    }
    return out;
  }

  async aeadKey() {
    this.cryptoKey ??= await aesKey(this.key);
    return this.cryptoKey;
  }

  incrementSeq() {
    if (this.seq >= Number.MAX_SAFE_INTEGER) throw new ProtocolError('refused', 'HPKE sequence number overflow');
    this.seq += 1;
  }

  /** Encrypts the next message: `ciphertext || tag`. @param {Uint8Array} aad @param {Uint8Array} plaintext @returns {Promise<Uint8Array>} */
  async seal(aad, plaintext) {
    const ciphertext = await aesGcmEncrypt(await this.aeadKey(), this.nonce(), plaintext, aad);
    this.incrementSeq();
    return ciphertext;
  }

  /** Decrypts the next message; throws ProtocolError 'decryption-failed'. @param {Uint8Array} aad @param {Uint8Array} ciphertext @returns {Promise<Uint8Array>} */
  async open(aad, ciphertext) {
    const plaintext = await aesGcmDecrypt(await this.aeadKey(), this.nonce(), ciphertext, aad);
    this.incrementSeq();
    return plaintext;
  }

  /** Secret export: LabeledExpand(exporter_secret, "sec", exporterContext, L). @param {Uint8Array} exporterContext @param {number} length @returns {Promise<Uint8Array>} */
  async export(exporterContext, length) {
    return labeledExpand(HPKE_SUITE, this.exporterSecret, 'sec', exporterContext, length);
  }
}

async function keySchedule(mode, sharedSecret, info, psk = EMPTY, pskId = EMPTY) {
  const gotPsk = psk.length > 0;
  if (gotPsk !== (pskId.length > 0)) throw new ProtocolError('malformed', 'HPKE psk and psk_id go together');
  if (gotPsk !== (mode === MODE_PSK || mode === MODE_AUTH_PSK)) throw new ProtocolError('malformed', 'HPKE psk does not match the mode');
  const pskIdHash = await labeledExtract(HPKE_SUITE, EMPTY, 'psk_id_hash', pskId);
  const infoHash = await labeledExtract(HPKE_SUITE, EMPTY, 'info_hash', info);
  const keyScheduleContext = concat(new Uint8Array([mode]), pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE, sharedSecret, 'secret', psk);
  return new Context({
    mode,
    sharedSecret,
    keyScheduleContext,
    secret,
    key: await labeledExpand(HPKE_SUITE, secret, 'key', keyScheduleContext, N_KEY),
    baseNonce: await labeledExpand(HPKE_SUITE, secret, 'base_nonce', keyScheduleContext, N_NONCE),
    exporterSecret: await labeledExpand(HPKE_SUITE, secret, 'exp', keyScheduleContext, 32),
  });
}

/** Encap, or AuthEncap with `sender`: the shared secret and enc. */
async function encap(pkR, ephemeral, sender) {
  const enc = ephemeral.publicKey;
  let dh = await x25519.dh(ephemeral.privateKey, pkR);
  let kemContext = concat(enc, pkR);
  if (sender) {
    dh = concat(dh, await x25519.dh(sender.privateKey, pkR));
    kemContext = concat(kemContext, sender.publicKey);
  }
  return { enc, sharedSecret: await extractAndExpand(dh, kemContext) };
}

/** Decap, or AuthDecap with `pkS`. */
async function decap(enc, recipient, pkS) {
  if (!(enc instanceof Uint8Array) || enc.length !== 32) throw new ProtocolError('malformed', 'enc must be 32 bytes');
  let dh = await x25519.dh(recipient.privateKey, enc);
  let kemContext = concat(enc, recipient.publicKey);
  if (pkS) {
    dh = concat(dh, await x25519.dh(recipient.privateKey, pkS));
    kemContext = concat(kemContext, pkS);
  }
  return extractAndExpand(dh, kemContext);
}

async function setupS(mode, pkR, info, { ephemeral, psk, pskId, sender } = {}) {
  const { enc, sharedSecret } = await encap(pkR, ephemeral ?? (await x25519.generate()), sender);
  return { enc, context: await keySchedule(mode, sharedSecret, info, psk, pskId) };
}

async function setupR(mode, enc, recipient, info, { psk, pskId, pkS } = {}) {
  return keySchedule(mode, await decap(enc, recipient, pkS), info, psk, pskId);
}

/**
 * SetupBaseS: the sender's context and `enc`. The ephemeral key is fresh unless given (vectors).
 * @param {Uint8Array} pkR the recipient's X25519 public key (checked)
 * @param {Uint8Array} info
 * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} [ephemeral]
 * @returns {Promise<{enc: Uint8Array, context: Context}>}
 */
export async function setupBaseS(pkR, info, ephemeral) {
  return setupS(MODE_BASE, pkR, info, { ephemeral });
}

/**
 * SetupBaseR: the recipient's context from `enc`.
 * @param {Uint8Array} enc
 * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} recipient
 * @param {Uint8Array} info
 * @returns {Promise<Context>}
 */
export async function setupBaseR(enc, recipient, info) {
  return setupR(MODE_BASE, enc, recipient, info);
}

/** SetupPSKS (vectors only). @returns {Promise<{enc: Uint8Array, context: Context}>} */
export async function setupPSKS(pkR, info, psk, pskId, ephemeral) {
  return setupS(MODE_PSK, pkR, info, { ephemeral, psk, pskId });
}

/** SetupPSKR (vectors only). @returns {Promise<Context>} */
export async function setupPSKR(enc, recipient, info, psk, pskId) {
  return setupR(MODE_PSK, enc, recipient, info, { psk, pskId });
}

/** SetupAuthS with the sender's key pair (vectors only). @returns {Promise<{enc: Uint8Array, context: Context}>} */
export async function setupAuthS(pkR, info, sender, ephemeral) {
  return setupS(MODE_AUTH, pkR, info, { ephemeral, sender });
}

/** SetupAuthR with the sender's public key (vectors only). @returns {Promise<Context>} */
export async function setupAuthR(enc, recipient, info, pkS) {
  return setupR(MODE_AUTH, enc, recipient, info, { pkS });
}

/** SetupAuthPSKS (vectors only). @returns {Promise<{enc: Uint8Array, context: Context}>} */
export async function setupAuthPSKS(pkR, info, psk, pskId, sender, ephemeral) {
  return setupS(MODE_AUTH_PSK, pkR, info, { ephemeral, psk, pskId, sender });
}

/** SetupAuthPSKR (vectors only). @returns {Promise<Context>} */
export async function setupAuthPSKR(enc, recipient, info, psk, pskId, pkS) {
  return setupR(MODE_AUTH_PSK, enc, recipient, info, { psk, pskId, pkS });
}

/**
 * Single-shot base-mode seal to `pkR`.
 * @param {Uint8Array} pkR
 * @param {Uint8Array} info
 * @param {Uint8Array} aad
 * @param {Uint8Array} plaintext
 * @param {{ephemeral?: {privateKey: CryptoKey, publicKey: Uint8Array}}} [options]
 * @returns {Promise<{enc: Uint8Array, ciphertext: Uint8Array}>}
 */
export async function seal(pkR, info, aad, plaintext, { ephemeral } = {}) {
  const { enc, context } = await setupBaseS(pkR, info, ephemeral);
  return { enc, ciphertext: await context.seal(aad, plaintext) };
}

/**
 * Single-shot base-mode open.
 * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} recipient
 * @param {Uint8Array} enc
 * @param {Uint8Array} info
 * @param {Uint8Array} aad
 * @param {Uint8Array} ciphertext
 * @returns {Promise<Uint8Array>}
 */
export async function open(recipient, enc, info, aad, ciphertext) {
  const context = await setupBaseR(enc, recipient, info);
  return context.open(aad, ciphertext);
}
